//! `parley.v1.NotifyService` over gRPC.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use parley_domain::pb::notify_service_server::{NotifyService, NotifyServiceServer};
use parley_domain::pb::{SubscribeRequest, SubscribeResponse, subscribe_request::Start};
use parley_domain::time;
use parley_runtime::ShutdownSignal;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::Journal;
use crate::filter::Filter;

/// Entries sent to one subscriber before its sender waits for it to read.
const SEND_BUFFER: usize = 64;
/// Entries read from the journal per step.
const BATCH: usize = 256;

/// The gRPC face of the notify service.
#[derive(Clone)]
pub struct NotifyGrpc {
    journal: Arc<Journal>,
    shutdown: ShutdownSignal,
}

impl NotifyGrpc {
    /// Serves subscriptions from `journal`; streams end when `shutdown` fires.
    pub fn new(journal: Arc<Journal>, shutdown: ShutdownSignal) -> Self {
        Self { journal, shutdown }
    }

    /// Wraps it in the tonic server type.
    pub fn into_server(self) -> NotifyServiceServer<Self> {
        NotifyServiceServer::new(self)
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
        let filter =
            Filter::parse(&request.filter).map_err(|e| Status::invalid_argument(e.to_string()))?;
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
            Some(Start::LiveOnly(_)) | None => self.journal.applied_sequence(),
        };
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        let journal = self.journal.clone();
        let token = self.shutdown.token.clone();
        let mut changes = journal.watch();
        metrics::gauge!("parley_notify_subscribers").increment(1.0);
        tokio::spawn(async move {
            'outer: loop {
                let batch = journal.after(cursor, BATCH);
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
                    metrics::counter!("parley_notify_delivered_total", "channel" => "grpc")
                        .increment(1);
                }
            }
            metrics::gauge!("parley_notify_subscribers").decrement(1.0);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
