//! Durable consumers on JetStream: pull consumers with explicit acks, a
//! backoff schedule derived from `ack_wait`, and a bounded `max_ack_pending`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    message::AckKind,
};
use async_trait::async_trait;
use futures::StreamExt;

use super::{JetStreamLog, backend};
use crate::checks::check_consumer_name;
use crate::{Acker, ConsumerOptions, Delivery, DurableConsumer, LogError};

impl JetStreamLog {
    /// See [`crate::EventLog::consumer`].
    pub(super) async fn open_consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        check_consumer_name(&options.durable_name)?;
        let backoff = backoff_schedule(options.ack_wait, options.max_deliver);
        let config = pull::Config {
            durable_name: Some(options.durable_name.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliver,
            max_ack_pending: options.max_ack_pending,
            filter_subjects: self.filter_subjects(&options.filter)?,
            backoff: backoff.clone(),
            ..Default::default()
        };
        // Create-or-update; if the update is refused (a field that cannot
        // change), keep using the consumer as it is.
        let consumer: PullConsumer = match self.inner.stream.create_consumer(config).await {
            Ok(consumer) => consumer,
            Err(create_error) => self
                .inner
                .stream
                .get_consumer(&options.durable_name)
                .await
                .map_err(|_| backend("creating a durable consumer", create_error))?,
        };
        let batch = options.max_ack_pending.clamp(1, 256) as usize;
        Ok(Box::new(JetStreamConsumer {
            log: self.clone(),
            consumer,
            messages: None,
            batch,
            backoff: backoff.into(),
        }))
    }
}

/// A durable pull consumer: pulls in batches over one long-lived pull
/// stream and re-opens it after an error.
struct JetStreamConsumer {
    log: JetStreamLog,
    consumer: PullConsumer,
    messages: Option<pull::Stream>,
    batch: usize,
    backoff: Arc<[Duration]>,
}

#[async_trait]
impl DurableConsumer for JetStreamConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, LogError>> {
        loop {
            if self.messages.is_none() {
                match self
                    .consumer
                    .stream()
                    .max_messages_per_batch(self.batch)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                {
                    Ok(messages) => self.messages = Some(messages),
                    Err(e) => {
                        // Likely a server restart: let the caller see it,
                        // and pace the retries.
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        return Some(Err(LogError::Unavailable(format!(
                            "opening the consumer's pull stream: {e}"
                        ))));
                    }
                }
            }
            let messages = self.messages.as_mut()?;
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) if e.kind() == pull::MessagesErrorKind::MissingHeartbeat => {
                    // Not terminal (server busy or reconnecting): keep going.
                    continue;
                }
                Some(Err(e)) => {
                    self.messages = None;
                    return Some(Err(LogError::Unavailable(format!("consumer: {e}"))));
                }
                None => return None,
            };
            let record = match self.log.consumer_message_record(&message) {
                Ok(record) => record,
                Err(e) => {
                    // Not ours to understand: stop its redelivery, report it.
                    let _ = message.ack_with(AckKind::Term).await;
                    return Some(Err(e));
                }
            };
            let (delivery_count, pending) = match message.info() {
                Ok(info) => (info.delivered.max(1) as u64, info.pending),
                Err(e) => return Some(Err(backend("parsing delivery metadata", e))),
            };
            let (_, acker) = message.split();
            let acker = JetStreamAcker {
                acker,
                delivery_count,
                backoff: self.backoff.clone(),
                confirm: self.log.inner.config.confirm_acks,
            };
            return Some(Ok(
                Delivery::new(record, delivery_count, Box::new(acker)).with_pending(pending)
            ));
        }
    }
}

struct JetStreamAcker {
    acker: jetstream::message::Acker,
    delivery_count: u64,
    backoff: Arc<[Duration]>,
    confirm: bool,
}

#[async_trait]
impl Acker for JetStreamAcker {
    async fn ack(&self) -> Result<(), LogError> {
        let result = if self.confirm {
            self.acker.double_ack().await
        } else {
            self.acker.ack().await
        };
        result.map_err(|e| LogError::Unavailable(format!("ack: {e}")))
    }

    async fn nak(&self) -> Result<(), LogError> {
        // Redeliver after the same backoff an ack timeout would get.
        let index = (self.delivery_count as usize)
            .saturating_sub(1)
            .min(self.backoff.len().saturating_sub(1));
        let delay = self.backoff.get(index).copied();
        self.acker
            .ack_with(AckKind::Nak(delay))
            .await
            .map_err(|e| LogError::Unavailable(format!("nak: {e}")))
    }

    async fn term(&self) -> Result<(), LogError> {
        self.acker
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| LogError::Unavailable(format!("term: {e}")))
    }
}

/// Redelivery delays: `ack_wait`, doubling, at most 4 steps, capped at 10
/// minutes, and fewer steps than `max_deliver` (the server requires it).
pub fn backoff_schedule(ack_wait: Duration, max_deliver: i64) -> Vec<Duration> {
    let steps = if max_deliver <= 0 {
        4
    } else {
        (max_deliver as usize - 1).min(4)
    };
    let cap = Duration::from_secs(600).max(ack_wait);
    (0..steps)
        .map(|i| (ack_wait * 2u32.pow(i as u32)).min(cap))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_has_fewer_steps_than_max_deliver() {
        let schedule = backoff_schedule(Duration::from_secs(1), 3);
        assert_eq!(
            schedule,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(backoff_schedule(Duration::from_secs(1), -1).len(), 4);
        assert!(backoff_schedule(Duration::from_secs(1), 1).is_empty());
        let long = backoff_schedule(Duration::from_secs(400), 10);
        assert!(long.iter().all(|d| *d <= Duration::from_secs(600)));
    }
}
