//! Appends to JetStream: a publish with `Nats-Msg-Id` and the expected
//! subject sequence, pipelined for batches; a conflict is confirmed by
//! looking for our msg id before it is reported (a retried publish that did
//! land looks like a conflict on nats-server 2.12+), and a lost ack is retried.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{
    context::{PublishAckFuture, PublishErrorKind},
    message::{PublishMessage, StreamMessage},
    publish::PublishAck,
    stream::RawMessageErrorKind,
};

use super::read::msg_id_of;
use super::{JetStreamLog, backend};
use crate::checks::{check_append, describe_expected};
use crate::{AggregateRef, AppendRequest, Appended, ExpectedVersion, LogError};

/// How many of an aggregate's records after the expected version we scan for
/// our msg id before calling a conflict a conflict.
const CONFIRM_SCAN_LIMIT: usize = 256;

/// How many times an append is retried after a timeout or broken pipe.
const PUBLISH_ATTEMPTS: usize = 3;

impl JetStreamLog {
    /// See [`crate::EventLog::append`].
    pub(super) async fn append_single(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let (subject, message) = self.prepare(&request)?;
        let first = match self.send(subject, message, &request).await {
            Ok(ack) => ack.into_future().await,
            Err(LogError::Unavailable(_)) => Err(
                async_nats::jetstream::context::PublishError::new(PublishErrorKind::BrokenPipe),
            ),
            Err(e) => return Err(e),
        };
        self.settle(&request, first).await
    }

    /// See [`crate::EventLog::append_many`].
    pub(super) async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, LogError>> {
        // Fast path: send every publish without waiting, keeping at most
        // `window` acks outstanding (more would wait on the context's
        // in-flight permits, which only awaited acks release), then settle
        // each answer in request order. One connection keeps the order of
        // records for one aggregate.
        let window = self.inner.config.max_ack_inflight.max(1);
        type AckFuture = std::pin::Pin<
            Box<
                dyn Future<
                        Output = Result<PublishAck, async_nats::jetstream::context::PublishError>,
                    > + Send,
            >,
        >;
        enum Slot {
            Pending(AckFuture),
            Done(Result<PublishAck, async_nats::jetstream::context::PublishError>),
            Failed(LogError),
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(requests.len());
        let mut in_flight: VecDeque<usize> = VecDeque::new();

        for request in &requests {
            if in_flight.len() >= window
                && let Some(oldest) = in_flight.pop_front()
            {
                resolve(&mut slots[oldest]).await;
            }
            let slot = match self.prepare(request) {
                Err(e) => Slot::Failed(e),
                Ok((subject, message)) => match self.send(subject, message, request).await {
                    Ok(ack) => {
                        in_flight.push_back(slots.len());
                        Slot::Pending(ack.into_future())
                    }
                    Err(LogError::Unavailable(_)) => {
                        Slot::Done(Err(async_nats::jetstream::context::PublishError::new(
                            PublishErrorKind::BrokenPipe,
                        )))
                    }
                    Err(e) => Slot::Failed(e),
                },
            };
            slots.push(slot);
        }

        async fn resolve(slot: &mut Slot) {
            if let Slot::Pending(future) = slot {
                let outcome = future.await;
                *slot = Slot::Done(outcome);
            }
        }

        let mut results = Vec::with_capacity(requests.len());
        for (request, mut slot) in requests.iter().zip(slots) {
            resolve(&mut slot).await;
            results.push(match slot {
                Slot::Done(Ok(ack)) => Ok(Appended {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                }),
                Slot::Done(outcome) => self.settle(request, outcome).await,
                Slot::Failed(e) => Err(e),
                Slot::Pending(_) => unreachable!("resolved above"),
            });
        }
        results
    }

    /// Checks a request and turns it into a subject plus publish message.
    fn prepare(&self, request: &AppendRequest) -> Result<(String, PublishMessage), LogError> {
        check_append(request, self.inner.max_payload)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            headers.append(name.as_str(), value.as_str());
        }
        let mut message = PublishMessage::build()
            .payload(request.payload.clone())
            .headers(headers)
            .message_id(&request.msg_id);
        match request.expected {
            ExpectedVersion::Any => {}
            ExpectedVersion::NoStream => message = message.expected_last_subject_sequence(0),
            ExpectedVersion::Exact(version) => {
                message = message.expected_last_subject_sequence(version)
            }
        }
        Ok((self.subject(&request.aggregate), message))
    }

    /// Sends one publish; the returned future resolves to the server's ack.
    async fn send(
        &self,
        subject: String,
        message: PublishMessage,
        request: &AppendRequest,
    ) -> Result<PublishAckFuture, LogError> {
        self.inner
            .context
            .send_publish(subject, message)
            .await
            .map_err(|e| match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => LogError::PayloadTooLarge {
                    size: request.payload.len(),
                    limit: self.inner.max_payload,
                },
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                    LogError::Unavailable(format!("publishing: {e}"))
                }
                _ => backend("publishing", e),
            })
    }

    /// Turns the server's answer to a publish into the append's result,
    /// confirming conflicts and retrying lost acks (the slow path).
    async fn settle(
        &self,
        request: &AppendRequest,
        first: Result<PublishAck, async_nats::jetstream::context::PublishError>,
    ) -> Result<Appended, LogError> {
        let mut outcome = first;
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let error = match outcome {
                Ok(ack) => {
                    return Ok(Appended {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(error) => error,
            };
            match error.kind() {
                PublishErrorKind::WrongLastSequence => {
                    // Pitfall 1: on 2.12+ a retry of an append that landed
                    // looks like a conflict. Look for our msg id first.
                    if let Some(sequence) = self.find_msg_id(request).await? {
                        return Ok(Appended {
                            sequence,
                            duplicate: true,
                        });
                    }
                    let actual = self.last_for_subject_leader(&request.aggregate).await?;
                    return Err(LogError::WrongExpectedVersion {
                        aggregate: request.aggregate.to_string(),
                        expected: describe_expected(request.expected),
                        actual,
                    });
                }
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                    // The publish may or may not have landed. With a version
                    // check a blind retry could be refused even though it
                    // landed, so confirm first; without one, dedup covers it.
                    if request.expected != ExpectedVersion::Any
                        && let Some(sequence) = self.find_msg_id(request).await?
                    {
                        return Ok(Appended {
                            sequence,
                            duplicate: true,
                        });
                    }
                    if attempt == PUBLISH_ATTEMPTS {
                        return Err(LogError::Unavailable(format!(
                            "append to {} not acknowledged after {attempt} attempts: {error}",
                            request.aggregate
                        )));
                    }
                    tracing::warn!(aggregate = %request.aggregate, %error, attempt, "retrying append");
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    let (subject, message) = self.prepare(request)?;
                    outcome = match self.send(subject, message, request).await {
                        Ok(ack) => ack.into_future().await,
                        Err(e) => return Err(e),
                    };
                }
                PublishErrorKind::StreamNotFound => {
                    return Err(LogError::Unavailable(format!(
                        "no stream answers for {}: {error}",
                        request.aggregate
                    )));
                }
                PublishErrorKind::MaxPayloadExceeded => {
                    return Err(LogError::PayloadTooLarge {
                        size: request.payload.len(),
                        limit: self.inner.max_payload,
                    });
                }
                _ => return Err(backend("publishing", error)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Looks for a record with the request's msg id among the aggregate's
    /// records after the expected version (they are few: only the writes that
    /// raced ours). Reads from the stream leader, so it sees every acked write.
    async fn find_msg_id(&self, request: &AppendRequest) -> Result<Option<u64>, LogError> {
        let subject = self.subject(&request.aggregate);
        let mut next = match request.expected {
            ExpectedVersion::Exact(version) => version + 1,
            ExpectedVersion::NoStream | ExpectedVersion::Any => 1,
        };
        if request.expected == ExpectedVersion::Any {
            // No lower bound: check the latest record only.
            let found = self.last_message_leader(&subject).await?;
            return Ok(found
                .filter(|m| msg_id_of(&m.headers) == Some(request.msg_id.as_str()))
                .map(|m| m.sequence));
        }
        for _ in 0..CONFIRM_SCAN_LIMIT {
            let result = self
                .inner
                .stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match result {
                Ok(message) => {
                    if msg_id_of(&message.headers) == Some(request.msg_id.as_str()) {
                        return Ok(Some(message.sequence));
                    }
                    next = message.sequence + 1;
                }
                Err(e) if raw_not_found(e.kind()) => return Ok(None),
                Err(e) => return Err(raw_get_error("confirming an append", e)),
            }
        }
        Ok(None)
    }

    async fn last_message_leader(&self, subject: &str) -> Result<Option<StreamMessage>, LogError> {
        match self
            .inner
            .stream
            .raw_message_builder()
            .last_by_subject(subject)
            .send()
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(e) if raw_not_found(e.kind()) => Ok(None),
            Err(e) => Err(raw_get_error("reading the last record", e)),
        }
    }

    async fn last_for_subject_leader(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Option<u64>, LogError> {
        Ok(self
            .last_message_leader(&self.subject(aggregate))
            .await?
            .map(|m| m.sequence))
    }
}

fn raw_not_found(kind: RawMessageErrorKind) -> bool {
    match kind {
        RawMessageErrorKind::NoMessageFound => true,
        RawMessageErrorKind::JetStream(error) => {
            error.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND
        }
        _ => false,
    }
}

/// A leader get that failed for another reason than "no such message" did
/// not reach the server (timeout, no responders while it restarts).
fn raw_get_error(what: &str, error: async_nats::jetstream::stream::RawMessageError) -> LogError {
    match error.kind() {
        RawMessageErrorKind::Other => LogError::Unavailable(format!("{what}: {error}")),
        _ => backend(what, error),
    }
}
