//! How far behind notify is, sampled once a second for the metrics.
//!
//! - `parley_consumer_lag{service="notify"}`: log records appended after the
//!   last one notify's follower applied, 0 once it has made no progress for
//!   two samples while the log answers (the records after it are then ones
//!   notify does not follow, such as articles);
//! - `parley_notify_subscription_lag{subscription}`: deliveries of each
//!   active push subscription (NATS or webhook) after its checkpoint, that
//!   is, not yet confirmed by its receiver (as of the last checkpoint,
//!   written every `PARLEY_NOTIFY_CHECKPOINT_MS` while it moves). A deleted
//!   or paused subscription's series drops to 0.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parley_log::EventLog;
use parley_runtime::ShutdownSignal;

use crate::journal::Journal;
use crate::subscriptions::Subscriptions;

/// Time between two samples.
const EVERY: Duration = Duration::from_secs(1);

/// Samples both lags until shutdown.
pub async fn report(
    log: Arc<dyn EventLog>,
    journal: Arc<Journal>,
    subscriptions: Arc<Subscriptions>,
    shutdown: ShutdownSignal,
) {
    let mut previous_applied = None;
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.token.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let applied = journal
            .applied_sequence()
            .max(subscriptions.applied_sequence());
        if let Ok(Ok(head)) = tokio::time::timeout(EVERY, log.last_sequence()).await {
            let lag = if previous_applied == Some(applied) {
                0
            } else {
                head.saturating_sub(applied)
            };
            metrics::gauge!("parley_consumer_lag", "service" => "notify").set(lag as f64);
        }
        previous_applied = Some(applied);

        let mut current = HashSet::new();
        for subscription in subscriptions.list() {
            if !subscription.is_push() || subscription.paused {
                continue;
            }
            let pending = journal.count_after(subscription.cursor());
            metrics::gauge!("parley_notify_subscription_lag", "subscription" => subscription.id.clone())
                .set(pending as f64);
            current.insert(subscription.id);
        }
        for gone in reported.difference(&current) {
            // No stale series left at its last value.
            metrics::gauge!("parley_notify_subscription_lag", "subscription" => gone.clone())
                .set(0.0);
        }
        reported = current;
    }
}
