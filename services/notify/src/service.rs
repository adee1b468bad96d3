//! `parley.v1.NotifyService` over gRPC.
//!
//! # Memory of a slow `Subscribe` stream
//!
//! A stream never has a queue of its own: its task reads the shared journal
//! from the stream's cursor in batches of at most [`BATCH`] entries (`Arc`s,
//! not copies) and hands them to a channel of [`SEND_BUFFER`] messages. When
//! the client reads slowly, tonic's HTTP/2 flow control fills, the channel
//! fills, and the task waits on `send` with its cursor where it is; the
//! journal keeps growing for everyone, but the stream holds at most
//! `BATCH + SEND_BUFFER` entries however far behind it is. So a lagging stream
//! is never cut off or skipped ahead (`lagged_from` stays 0): it catches up
//! from the journal at its own pace, and a client that disconnects resumes
//! exactly with `from_sequence = last sequence + 1`.
//!
//! # Server-side cursors
//!
//! A stored subscription of channel `grpc` is streamed by giving its id in
//! `SubscribeRequest.subscription_id`: the stream uses its filter and, without
//! a start, resumes after its cursor. The client moves that cursor with
//! `AcknowledgeSubscription(sequence)` once it has processed a delivery (the
//! cursor is a `SubscriptionCheckpointed` event on the log, so it survives
//! restarts and is the same on every replica); deliveries after the last
//! acknowledgement come again on the next stream: at least once, as with
//! EventStoreDB's persistent subscriptions.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use parley_domain::pb::notify_service_server::{NotifyService, NotifyServiceServer};
use parley_domain::pb::{
    AcknowledgeSubscriptionRequest, AcknowledgeSubscriptionResponse, Channel,
    CreateSubscriptionRequest, CreateSubscriptionResponse, DeleteSubscriptionRequest,
    DeleteSubscriptionResponse, ListDeadLettersRequest, ListDeadLettersResponse,
    ListSubscriptionsRequest, ListSubscriptionsResponse, PauseSubscriptionRequest,
    PauseSubscriptionResponse, RedriveDeadLettersRequest, RedriveDeadLettersResponse,
    ResumeSubscriptionRequest, ResumeSubscriptionResponse, SubscribeRequest, SubscribeResponse,
    WebhookFormat, subscribe_request::Start,
};
use parley_domain::time;
use parley_runtime::ShutdownSignal;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::Journal;
use crate::delivery::whole_records;
use crate::secrets::{SECRET_KEY_ENV, SecretKey};
use crate::signing;
use crate::subscriptions::{NewSubscription, Subscription, SubscriptionError, Subscriptions};
use crate::webhook;
use parley_domain::filter::Filter;

/// Entries sent to one subscriber before its sender waits for it to read.
const SEND_BUFFER: usize = 64;
/// Entries read from the journal per step.
const BATCH: usize = 256;

/// What the service accepts when subscriptions are created.
#[derive(Debug, Clone, Default)]
pub struct ChannelPolicy {
    /// A NATS connection is there (the NATS channel is accepted).
    pub nats_available: bool,
    /// Key sealing webhook secrets (webhooks are refused without one).
    pub secret_key: Option<SecretKey>,
    /// Webhooks to private addresses are allowed.
    pub allow_private: bool,
}

/// The gRPC face of the notify service.
#[derive(Clone)]
pub struct NotifyGrpc {
    journal: Arc<Journal>,
    subscriptions: Arc<Subscriptions>,
    policy: Arc<ChannelPolicy>,
    shutdown: ShutdownSignal,
}

impl NotifyGrpc {
    /// Serves streams from `journal` and stored subscriptions from `subscriptions`;
    /// streams end when `shutdown` fires.
    pub fn new(
        journal: Arc<Journal>,
        subscriptions: Arc<Subscriptions>,
        policy: ChannelPolicy,
        shutdown: ShutdownSignal,
    ) -> Self {
        Self {
            journal,
            subscriptions,
            policy: Arc::new(policy),
            shutdown,
        }
    }

    /// Wraps it in the tonic server type.
    pub fn into_server(self) -> NotifyServiceServer<Self> {
        NotifyServiceServer::new(self)
    }

    /// The stored grpc subscription `id`, or why it cannot be streamed.
    fn grpc_subscription(&self, id: &str) -> Result<Subscription, Status> {
        let subscription = self
            .subscriptions
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no subscription {id:?}")))?;
        if subscription.channel != Channel::Grpc {
            let channel = match subscription.channel {
                Channel::Nats => "NATS",
                _ => "webhook",
            };
            return Err(Status::failed_precondition(format!(
                "subscription {id} delivers by {channel}; only subscriptions of channel grpc are streamed"
            )));
        }
        Ok(subscription)
    }

    /// What a Subscribe streams: its own filter, or a stored subscription's
    /// filter and cursor.
    fn stream_source(&self, request: &SubscribeRequest) -> Result<(String, Option<u64>), Status> {
        if request.subscription_id.is_empty() {
            return Ok((request.filter.clone(), None));
        }
        if !request.filter.is_empty() {
            return Err(Status::invalid_argument(
                "give a filter or a subscription_id, not both (a stored subscription has its own filter)",
            ));
        }
        let subscription = self.grpc_subscription(&request.subscription_id)?;
        Ok((subscription.filter.clone(), Some(subscription.cursor())))
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NotifyService for NotifyGrpc {
    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let (filter, stored_cursor) = self.stream_source(&request)?;
        let filter = Filter::parse(&filter).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut cursor = match request.start {
            Some(Start::FromSequence(0)) => {
                return Err(Status::invalid_argument(
                    "from_sequence must be at least 1 (log sequences start at 1)",
                ));
            }
            Some(Start::FromSequence(seq)) => seq - 1,
            Some(Start::FromTime(ts)) => {
                let when = time::from_timestamp(&ts)
                    .ok_or_else(|| Status::invalid_argument("from_time is out of range"))?;
                self.journal.cursor_for_time(when)
            }
            Some(Start::LiveOnly(_)) => self.journal.applied_sequence(),
            None => stored_cursor.unwrap_or_else(|| self.journal.applied_sequence()),
        };
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        let journal = self.journal.clone();
        let token = self.shutdown.token.clone();
        let mut changes = journal.watch();
        metrics::gauge!("parley_notify_subscribers").increment(1.0);
        tokio::spawn(async move {
            'outer: loop {
                // Whole records only, so `cursor` never points into the middle of one.
                let batch = whole_records(&journal, cursor, BATCH);
                if batch.is_empty() {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tx.closed() => break,
                        changed = changes.changed() => if changed.is_err() { break },
                    }
                    continue;
                }
                for entry in batch {
                    cursor = entry.sequence;
                    let matches = entry.event.as_ref().is_some_and(|e| filter.matches(e));
                    if !matches {
                        continue;
                    }
                    tokio::select! {
                        _ = token.cancelled() => break 'outer,
                        sent = tx.send(Ok((*entry).clone())) => if sent.is_err() { break 'outer },
                    }
                    crate::delivery::observe_latency("grpc", &entry);
                }
            }
            metrics::gauge!("parley_notify_subscribers").decrement(1.0);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn create_subscription(
        &self,
        request: Request<CreateSubscriptionRequest>,
    ) -> Result<Response<CreateSubscriptionResponse>, Status> {
        let request = request.into_inner();
        Filter::parse(&request.filter).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let channel = Channel::try_from(request.channel).unwrap_or_default();
        let id = format!("sub-{}", uuid::Uuid::now_v7().simple());
        let mut new = NewSubscription {
            id: id.clone(),
            name: request.name,
            filter: request.filter,
            channel,
            ..Default::default()
        };
        let mut secret = String::new();
        match channel {
            Channel::Grpc => {}
            Channel::Nats => {
                if !self.policy.nats_available {
                    return Err(Status::failed_precondition(
                        "the NATS channel needs a NATS server: this notify service has no NATS connection \
                         (it runs on the embedded log); set PARLEY_NOTIFY_NATS_URL",
                    ));
                }
            }
            Channel::Webhook => {
                let hook = request.webhook.unwrap_or_default();
                let url = webhook::check_url(&hook.url, self.policy.allow_private)
                    .await
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let key = self.policy.secret_key.as_ref().ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "webhooks need a key to seal their signing secrets: set {SECRET_KEY_ENV} on the notify service"
                    ))
                })?;
                secret = if hook.secret.is_empty() {
                    signing::generate_secret()
                } else {
                    signing::check_secret(&hook.secret)
                        .map_err(|e| Status::invalid_argument(e.to_string()))?;
                    hook.secret
                };
                new.webhook_url = url.to_string();
                new.format = match WebhookFormat::try_from(hook.format) {
                    Ok(WebhookFormat::Unspecified) | Err(_) => WebhookFormat::Raw,
                    Ok(format) => format,
                };
                new.sealed_secret = key.seal(&id, &secret);
            }
            Channel::Unspecified => {
                return Err(Status::invalid_argument(
                    "channel is required: grpc, nats or webhook",
                ));
            }
        }
        new.start_after = if request.from_sequence > 0 {
            request.from_sequence - 1
        } else {
            self.subscriptions
                .log()
                .last_sequence()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?
        };
        let created = self.subscriptions.create(new).await.map_err(status)?;
        tracing::info!(subscription = %created.id, channel = ?created.channel, "subscription created");
        Ok(Response::new(CreateSubscriptionResponse {
            subscription: Some(created.to_pb()),
            webhook_secret: secret,
        }))
    }

    async fn list_subscriptions(
        &self,
        _request: Request<ListSubscriptionsRequest>,
    ) -> Result<Response<ListSubscriptionsResponse>, Status> {
        Ok(Response::new(ListSubscriptionsResponse {
            subscriptions: self
                .subscriptions
                .list()
                .iter()
                .map(|s| s.to_pb())
                .collect(),
        }))
    }

    async fn pause_subscription(
        &self,
        request: Request<PauseSubscriptionRequest>,
    ) -> Result<Response<PauseSubscriptionResponse>, Status> {
        let id = request.into_inner().subscription_id;
        let subscription = self.subscriptions.pause(&id).await.map_err(status)?;
        Ok(Response::new(PauseSubscriptionResponse {
            subscription: Some(subscription.to_pb()),
        }))
    }

    async fn resume_subscription(
        &self,
        request: Request<ResumeSubscriptionRequest>,
    ) -> Result<Response<ResumeSubscriptionResponse>, Status> {
        let id = request.into_inner().subscription_id;
        let subscription = self.subscriptions.resume(&id).await.map_err(status)?;
        Ok(Response::new(ResumeSubscriptionResponse {
            subscription: Some(subscription.to_pb()),
        }))
    }

    async fn delete_subscription(
        &self,
        request: Request<DeleteSubscriptionRequest>,
    ) -> Result<Response<DeleteSubscriptionResponse>, Status> {
        let id = request.into_inner().subscription_id;
        let subscription = self.subscriptions.delete(&id).await.map_err(status)?;
        Ok(Response::new(DeleteSubscriptionResponse {
            subscription: Some(subscription.to_pb()),
        }))
    }

    async fn acknowledge_subscription(
        &self,
        request: Request<AcknowledgeSubscriptionRequest>,
    ) -> Result<Response<AcknowledgeSubscriptionResponse>, Status> {
        let request = request.into_inner();
        let subscription = self.grpc_subscription(&request.subscription_id)?;
        let head = self.journal.applied_sequence();
        if request.sequence > head {
            return Err(Status::invalid_argument(format!(
                "sequence {} is beyond the log (its last sequence is {head})",
                request.sequence
            )));
        }
        let cursor = subscription.cursor();
        if request.sequence <= cursor {
            return Ok(Response::new(AcknowledgeSubscriptionResponse { cursor }));
        }
        let appended = self
            .subscriptions
            .checkpoint(&subscription.id, request.sequence, Vec::new())
            .await
            .map_err(status)?;
        self.subscriptions
            .wait_applied(appended)
            .await
            .map_err(status)?;
        Ok(Response::new(AcknowledgeSubscriptionResponse {
            cursor: request.sequence,
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let id = request.into_inner().subscription_id;
        let subscriptions = if id.is_empty() {
            self.subscriptions.list()
        } else {
            vec![
                self.subscriptions
                    .get(&id)
                    .ok_or_else(|| Status::not_found(format!("no subscription {id:?}")))?,
            ]
        };
        let mut dead_letters = Vec::new();
        for subscription in subscriptions {
            let mut letters: Vec<_> = subscription.dead_letters.values().cloned().collect();
            letters.sort_by_key(|l| l.sequence);
            dead_letters.extend(letters.into_iter().map(|l| parley_domain::pb::DeadLetter {
                subscription_id: subscription.id.clone(),
                sequence: l.sequence,
                idempotency_key: l.idempotency_key,
                attempts: l.attempts,
                last_error: l.last_error,
                parked_at: Some(time::to_timestamp(l.parked_at)),
            }));
        }
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<RedriveDeadLettersRequest>,
    ) -> Result<Response<RedriveDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let redriven = self
            .subscriptions
            .redrive(&request.subscription_id, &request.idempotency_keys)
            .await
            .map_err(status)?;
        Ok(Response::new(RedriveDeadLettersResponse { redriven }))
    }
}

/// gRPC status of a subscription command error.
fn status(error: SubscriptionError) -> Status {
    match error {
        SubscriptionError::NotFound(_) | SubscriptionError::NoDeadLetter { .. } => {
            Status::not_found(error.to_string())
        }
        SubscriptionError::Log(e) if e.is_transient() => Status::unavailable(e.to_string()),
        SubscriptionError::Log(parley_log::LogError::WrongExpectedVersion { .. }) => {
            Status::aborted(error.to_string())
        }
        SubscriptionError::NotApplied(_) => Status::unavailable(error.to_string()),
        SubscriptionError::Log(e) => Status::internal(e.to_string()),
    }
}
