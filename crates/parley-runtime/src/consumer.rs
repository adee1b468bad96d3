//! The durable consumer loop every service runs.
//!
//! It decodes each record, hands it to the service's handler, and acks only
//! after the handler's own effects are in the log. A record that cannot be
//! decoded, or that keeps failing, is parked (terminated with a report naming
//! its sequence) so one poison message never stalls the service.

use std::sync::Arc;

use async_trait::async_trait;
use parley_domain::{DecodedRecord, decode_record};
use parley_log::{ConsumerOptions, Delivery, EventLog, LogError};

use crate::ShutdownSignal;

/// What a handler did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its effects are appended.
    Done,
    /// Nothing to do (already handled, or not for this service).
    Skipped,
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// May succeed later (log unavailable, a conflict to retry).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed; park the record.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<LogError> for HandlerError {
    fn from(error: LogError) -> Self {
        if error.is_transient() || matches!(error, LogError::WrongExpectedVersion { .. }) {
            HandlerError::Transient(error.to_string())
        } else {
            HandlerError::Permanent(error.to_string())
        }
    }
}

/// A service's reaction to records of the log.
#[async_trait]
pub trait RecordHandler: Send + Sync + 'static {
    /// Handles one decoded record; must be idempotent (records can be redelivered).
    async fn handle(&self, record: &DecodedRecord) -> Result<Handled, HandlerError>;
}

/// Runs a durable consumer until shutdown.
pub struct ConsumerLoop {
    log: Arc<dyn EventLog>,
    options: ConsumerOptions,
    service: &'static str,
}

impl ConsumerLoop {
    /// A loop for `service` reading through `options`.
    pub fn new(log: Arc<dyn EventLog>, options: ConsumerOptions, service: &'static str) -> Self {
        Self {
            log,
            options,
            service,
        }
    }

    /// Consumes until the shutdown token fires; the record in hand is finished and acked first.
    pub async fn run<H: RecordHandler>(
        self,
        handler: Arc<H>,
        shutdown: ShutdownSignal,
    ) -> Result<(), LogError> {
        let mut consumer = self.log.consumer(self.options.clone()).await?;
        loop {
            let next = tokio::select! {
                _ = shutdown.token.cancelled() => break,
                next = consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    tracing::warn!(service = self.service, error = %e, "consumer fetch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
                None => break,
            };
            self.process(&*handler, delivery).await;
        }
        tracing::info!(service = self.service, "consumer stopped");
        Ok(())
    }

    async fn process<H: RecordHandler>(&self, handler: &H, delivery: Delivery) {
        let sequence = delivery.record.sequence;
        let started = std::time::Instant::now();
        metrics::counter!("parley_events_consumed_total", "service" => self.service).increment(1);
        let decoded = match decode_record(&delivery.record) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.park(delivery, &e.to_string()).await;
                return;
            }
        };
        for skipped in &decoded.skipped {
            tracing::warn!(service = self.service, sequence, event_type = %skipped, "skipping event type unknown to this build");
        }
        let outcome = handler.handle(&decoded).await;
        metrics::histogram!("parley_processing_seconds", "service" => self.service)
            .record(started.elapsed().as_secs_f64());
        let result = match outcome {
            Ok(_) => delivery.ack().await,
            Err(HandlerError::Transient(reason))
                if (delivery.delivery_count as i64) < self.options.max_deliver =>
            {
                tracing::warn!(service = self.service, sequence, attempt = delivery.delivery_count, %reason, "will retry");
                delivery.nak().await
            }
            Err(e) => {
                self.park(delivery, &e.to_string()).await;
                return;
            }
        };
        if let Err(e) = result {
            tracing::warn!(service = self.service, sequence, error = %e, "ack failed; the record will be redelivered");
        }
    }

    async fn park(&self, delivery: Delivery, reason: &str) {
        let sequence = delivery.record.sequence;
        tracing::error!(
            service = self.service,
            sequence,
            aggregate = %delivery.record.aggregate,
            attempts = delivery.delivery_count,
            %reason,
            "parking poison record; it will not be delivered again"
        );
        metrics::counter!("parley_poison_records_total", "service" => self.service).increment(1);
        if let Err(e) = delivery.term().await {
            tracing::warn!(service = self.service, sequence, error = %e, "could not park record");
        }
    }
}
