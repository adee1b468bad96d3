//! Push delivery of stored subscriptions: NATS subjects and webhooks.
//!
//! # Who delivers: one lease holder
//!
//! Every notify replica follows the whole log and can serve gRPC streams, but
//! only one replica at a time pushes (NATS and webhooks). It holds the
//! *delivery lease*, a `DeliveryLeaseTaken` event on the `notify/delivery-lease`
//! aggregate, appended with an expected-version check: a replica takes the
//! lease only when it is free or expired, and only if nobody changed it since
//! it looked (a concurrent taker gets a wrong-expected-version error and stays
//! a follower). The holder renews it every third of its TTL. It delivers only
//! while `now < (time it last renewed) + TTL - margin` by its *own* monotonic
//! clock, and others take over only after `expires_at` by the wall clock, so
//! with clock skew below the margin two replicas never push at once. If they
//! ever did (a paused process, a large skew), receivers would see duplicates
//! carrying the same idempotency key, which at-least-once delivery allows.
//!
//! The lease is only taken and renewed (an event every third of the TTL)
//! while some push subscription is active, so an idle service appends nothing.
//!
//! One lease for all subscriptions, not one per subscription, is the simpler
//! correct scheme: push throughput is bound by the receivers, not by our CPU,
//! and per-subscription workers inside the holder already isolate a slow or
//! dead receiver. A replica restarted under the same replica id (default:
//! host name and gRPC port) takes its own lease back at once.
//!
//! # How: one worker per subscription
//!
//! Each active push subscription has one task reading the journal from its
//! cursor in bounded batches, in log order; it holds no queue of its own, so a
//! dead webhook only holds its own cursor back. After a delivery succeeds (a
//! NATS publish ack, a 2xx answer) or is parked in the dead-letter list, the
//! cursor moves on; it is written to the log as a `SubscriptionCheckpointed`
//! every `checkpoint_every` deliveries or `checkpoint_interval`, whichever
//! comes first, and when the worker stops. After a crash, delivery restarts
//! after the last checkpoint: changes in that window are delivered again with
//! the same idempotency key, and no change is skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use parley_domain::pb::{Channel, SubscribeResponse};
use parley_log::{ExpectedVersion, LogError};
use parley_runtime::ShutdownSignal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::format;
use crate::journal::Journal;
use crate::secrets::SecretKey;
use crate::subscriptions::{DeadLetter, Subscription, SubscriptionError, Subscriptions};
use crate::webhook::{WebhookRequest, WebhookSender};
use parley_domain::filter::Filter;

/// JetStream stream holding `parley.notify.>`.
pub const NOTIFY_STREAM: &str = "PARLEY_NOTIFY";
/// Subject prefix of the NATS channel.
pub const NOTIFY_SUBJECT_PREFIX: &str = "parley.notify";

/// Journal entries read per step (bounded: no per-subscription queue).
const BATCH: usize = 64;

/// Settings of push delivery.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// This replica's id in the lease.
    pub replica_id: String,
    /// Lease time to live.
    pub lease_ttl: Duration,
    /// Checkpoint after this many deliveries.
    pub checkpoint_every: usize,
    /// Checkpoint at least this often while the cursor moves.
    pub checkpoint_interval: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            replica_id: format!("notify-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: Duration::from_secs(15),
            checkpoint_every: 100,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl DeliveryOptions {
    /// Defaults overridden by `PARLEY_NOTIFY_REPLICA_ID`, `PARLEY_NOTIFY_LEASE_MS`
    /// and `PARLEY_NOTIFY_CHECKPOINT_MS`.
    pub fn from_env(default_replica_id: Option<String>) -> Self {
        let mut options = Self::default();
        if let Some(id) = std::env::var("PARLEY_NOTIFY_REPLICA_ID")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or(default_replica_id)
        {
            options.replica_id = id;
        }
        if let Some(ms) = std::env::var("PARLEY_NOTIFY_LEASE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            options.lease_ttl = Duration::from_millis(ms.max(300));
        }
        if let Some(ms) = std::env::var("PARLEY_NOTIFY_CHECKPOINT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            options.checkpoint_interval = Duration::from_millis(ms.max(10));
        }
        options
    }
}

/// Publishes the NATS channel to JetStream.
#[derive(Clone)]
pub struct NatsPublisher {
    context: async_nats::jetstream::Context,
}

impl NatsPublisher {
    /// Creates (or updates) the `PARLEY_NOTIFY` stream on `client`'s server.
    pub async fn new(client: async_nats::Client, replicas: usize) -> anyhow::Result<Self> {
        let context = async_nats::jetstream::new(client);
        context
            .create_or_update_stream(async_nats::jetstream::stream::Config {
                name: NOTIFY_STREAM.to_owned(),
                subjects: vec![format!("{NOTIFY_SUBJECT_PREFIX}.>")],
                storage: async_nats::jetstream::stream::StorageType::File,
                num_replicas: replicas.max(1),
                duplicate_window: Duration::from_secs(120),
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("creating the {NOTIFY_STREAM} stream: {e}"))?;
        Ok(Self { context })
    }

    /// Publishes one delivery and waits for the stream's ack.
    ///
    /// `Nats-Msg-Id` is `<subscription>:<idempotency key>`: the stream's
    /// duplicate window is per stream, not per subject, so the subscription
    /// must be part of it or a second subscription's copy would be dropped.
    /// The bare key is in `Parley-Idempotency-Key`.
    pub async fn publish(
        &self,
        subscription_id: &str,
        delivery: &SubscribeResponse,
    ) -> Result<(), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{subscription_id}:{}", delivery.idempotency_key).as_str(),
        );
        headers.insert("Parley-Idempotency-Key", delivery.idempotency_key.as_str());
        headers.insert("Parley-Sequence", delivery.sequence.to_string().as_str());
        headers.insert("Content-Type", "application/json");
        let body = format::raw_json(subscription_id, delivery).to_string();
        let ack = self
            .context
            .publish_with_headers(
                format!("{NOTIFY_SUBJECT_PREFIX}.{subscription_id}"),
                headers,
                body.into(),
            )
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Whether this replica holds the lease, by its own clock.
#[derive(Default)]
struct LeaseState {
    held_until: Mutex<Option<Instant>>,
}

impl LeaseState {
    fn held(&self) -> bool {
        self.held_until
            .lock()
            .expect("lease lock")
            .is_some_and(|until| Instant::now() < until)
    }

    fn set(&self, until: Option<Instant>) {
        *self.held_until.lock().expect("lease lock") = until;
    }
}

/// Everything a worker needs.
struct Shared {
    journal: Arc<Journal>,
    subscriptions: Arc<Subscriptions>,
    nats: Option<NatsPublisher>,
    webhooks: WebhookSender,
    secret_key: Option<SecretKey>,
    options: DeliveryOptions,
    lease: LeaseState,
}

/// Runs the lease and the per-subscription workers.
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Worker {
    token: CancellationToken,
    handle: JoinHandle<()>,
}

impl Dispatcher {
    /// A dispatcher over the read models.
    pub fn new(
        journal: Arc<Journal>,
        subscriptions: Arc<Subscriptions>,
        nats: Option<NatsPublisher>,
        webhooks: WebhookSender,
        secret_key: Option<SecretKey>,
        options: DeliveryOptions,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                journal,
                subscriptions,
                nats,
                webhooks,
                secret_key,
                options,
                lease: LeaseState::default(),
            }),
        }
    }

    /// Runs until shutdown: keeps the lease, starts and stops workers.
    pub async fn run(self, shutdown: ShutdownSignal) {
        let shared = self.shared;
        let mut workers: HashMap<String, Worker> = HashMap::new();
        let mut changes = shared.subscriptions.watch();
        let renew_every = shared.options.lease_ttl / 3;
        let mut last_lease_attempt: Option<Instant> = None;
        loop {
            // No active push subscription, no lease: an idle service appends nothing.
            let pushing = shared
                .subscriptions
                .list()
                .iter()
                .any(|s| s.is_push() && !s.paused);
            let due = last_lease_attempt.is_none_or(|t| t.elapsed() >= renew_every);
            if pushing && due {
                last_lease_attempt = Some(Instant::now());
                keep_lease(&shared).await;
            } else if !pushing {
                shared.lease.set(None);
                last_lease_attempt = None;
            }
            let leader = shared.lease.held();
            // Stop workers that should not run; start the missing ones.
            let wanted: Vec<Subscription> = if leader {
                shared
                    .subscriptions
                    .list()
                    .into_iter()
                    .filter(|s| s.is_push() && !s.paused)
                    .collect()
            } else {
                Vec::new()
            };
            workers.retain(|id, worker| {
                let keep = wanted.iter().any(|s| &s.id == id) && !worker.handle.is_finished();
                if !keep {
                    worker.token.cancel();
                }
                keep
            });
            for subscription in wanted {
                if workers.contains_key(&subscription.id) {
                    continue;
                }
                let token = shutdown.token.child_token();
                let handle = tokio::spawn(run_worker(
                    shared.clone(),
                    subscription.id.clone(),
                    token.clone(),
                ));
                workers.insert(subscription.id, Worker { token, handle });
            }
            let tick = if leader {
                renew_every.min(Duration::from_millis(500))
            } else {
                renew_every.min(Duration::from_secs(1))
            };
            tokio::select! {
                _ = shutdown.token.cancelled() => break,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
        // Let workers write their last checkpoint.
        for (_, worker) in workers {
            worker.token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), worker.handle).await;
        }
    }
}

/// Takes, renews or observes the lease.
async fn keep_lease(shared: &Shared) {
    let subscriptions = &shared.subscriptions;
    let me = shared.options.replica_id.as_str();
    let ttl = shared.options.lease_ttl;
    let now = Utc::now();
    let current = subscriptions.lease();
    let (expected, term) = match &current {
        None => (ExpectedVersion::NoStream, 1),
        Some(lease) if lease.owner == me => (ExpectedVersion::Exact(lease.version), lease.term),
        Some(lease) if lease.expires_at < now => {
            (ExpectedVersion::Exact(lease.version), lease.term + 1)
        }
        Some(_) => {
            shared.lease.set(None);
            return;
        }
    };
    // A quarter of the TTL (at most 2 s) covers clock skew and the append's own latency.
    let margin = (ttl / 4).min(Duration::from_secs(2));
    let started = Instant::now();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
    match subscriptions
        .take_lease(me, expires_at, term, expected)
        .await
    {
        Ok(sequence) => {
            shared.lease.set(Some(started + ttl - margin));
            if current.as_ref().is_none_or(|l| l.owner != me) {
                tracing::info!(replica = me, term, "took the push-delivery lease");
            }
            // Apply before the next renewal so it expects the right version.
            let _ = subscriptions.wait_applied(sequence).await;
        }
        Err(SubscriptionError::Log(LogError::WrongExpectedVersion { .. })) => {
            tracing::info!(
                replica = me,
                "the push-delivery lease moved; following another replica"
            );
            shared.lease.set(None);
        }
        Err(e) => {
            // Keep what we had: it lapses on its own if renewals keep failing.
            tracing::warn!(replica = me, error = %e, "could not renew the push-delivery lease");
        }
    }
}

/// The channel a worker pushes to.
enum Target {
    Nats(NatsPublisher),
    Webhook {
        url: reqwest::Url,
        secret: String,
        format: parley_domain::pb::WebhookFormat,
    },
}

/// How one delivery ended.
enum Outcome {
    Delivered,
    Parked { attempts: u32, last_error: String },
    Stopped,
}

/// A batch of journal entries after `cursor` that never splits one log record.
pub(crate) fn whole_records(
    journal: &Journal,
    cursor: u64,
    limit: usize,
) -> Vec<Arc<SubscribeResponse>> {
    let mut batch = journal.after(cursor, limit);
    if batch.len() == limit
        && let (Some(first), Some(last)) = (batch.first(), batch.last())
    {
        let last = last.sequence;
        if first.sequence == last {
            // One record with more entries than the limit: take all of it.
            batch = journal.at_sequence(last);
        } else {
            batch.retain(|e| e.sequence != last);
        }
    }
    batch
}

async fn run_worker(shared: Arc<Shared>, id: String, token: CancellationToken) {
    let Some(subscription) = shared.subscriptions.get(&id) else {
        return;
    };
    let target = match target_of(&shared, &subscription) {
        Ok(target) => target,
        Err(reason) => {
            tracing::error!(subscription = %id, %reason, "cannot deliver this subscription");
            // Wait for a change (e.g. deletion) rather than spinning.
            token.cancelled().await;
            return;
        }
    };
    let filter = match Filter::parse(&subscription.filter) {
        Ok(filter) => filter,
        Err(e) => {
            tracing::error!(subscription = %id, error = %e, "stored filter does not parse");
            token.cancelled().await;
            return;
        }
    };
    let mut cursor = subscription.cursor();
    let mut checkpointed = cursor;
    let mut redrive_done: Vec<String> = Vec::new();
    let mut since_checkpoint = 0usize;
    let mut last_checkpoint = Instant::now();
    let mut journal_changes = shared.journal.watch();
    let mut subscription_changes = shared.subscriptions.watch();
    tracing::info!(subscription = %id, cursor, "push delivery started");
    'run: loop {
        if token.is_cancelled() || !shared.lease.held() {
            break;
        }
        // Redriven dead letters first: the owner asked for them explicitly.
        let queued: Vec<DeadLetter> = shared
            .subscriptions
            .get(&id)
            .map(|s| s.redrive)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| !redrive_done.contains(&l.idempotency_key))
            .collect();
        for letter in queued {
            let entry = shared
                .journal
                .at_sequence(letter.sequence)
                .into_iter()
                .find(|e| e.idempotency_key == letter.idempotency_key);
            if let Some(entry) = entry {
                match deliver(&shared, &id, &target, &entry, &token).await {
                    Outcome::Delivered => {}
                    Outcome::Parked {
                        attempts,
                        last_error,
                    } => {
                        let round = Utc::now().timestamp_millis() as u64;
                        if !park(&shared, &id, &entry, attempts, last_error, round, &token).await {
                            break 'run;
                        }
                    }
                    Outcome::Stopped => break 'run,
                }
            } else {
                tracing::warn!(subscription = %id, key = %letter.idempotency_key, "redriven delivery is not in the journal; dropping it");
            }
            redrive_done.push(letter.idempotency_key);
            since_checkpoint += 1;
        }

        let batch = whole_records(&shared.journal, cursor, BATCH);
        if batch.is_empty() {
            if (cursor > checkpointed || !redrive_done.is_empty())
                && last_checkpoint.elapsed() >= shared.options.checkpoint_interval
            {
                write_checkpoint(&shared, &id, cursor, &mut redrive_done).await;
                checkpointed = cursor;
                since_checkpoint = 0;
                last_checkpoint = Instant::now();
            }
            tokio::select! {
                _ = token.cancelled() => break,
                _ = journal_changes.changed() => {}
                _ = subscription_changes.changed() => {}
                _ = tokio::time::sleep(shared.options.checkpoint_interval) => {}
            }
            continue;
        }
        for entry in batch {
            let matches = entry.event.as_ref().is_some_and(|e| filter.matches(e));
            if matches {
                if !shared.lease.held() {
                    break 'run;
                }
                match deliver(&shared, &id, &target, &entry, &token).await {
                    Outcome::Delivered => {}
                    Outcome::Parked {
                        attempts,
                        last_error,
                    } => {
                        if !park(&shared, &id, &entry, attempts, last_error, 0, &token).await {
                            break 'run;
                        }
                    }
                    Outcome::Stopped => break 'run,
                }
                since_checkpoint += 1;
            }
            // Only whole records are in the batch, so the cursor never splits one.
            cursor = entry.sequence;
            if since_checkpoint >= shared.options.checkpoint_every
                || (cursor > checkpointed
                    && last_checkpoint.elapsed() >= shared.options.checkpoint_interval)
            {
                write_checkpoint(&shared, &id, cursor, &mut redrive_done).await;
                checkpointed = cursor;
                since_checkpoint = 0;
                last_checkpoint = Instant::now();
            }
        }
    }
    // The cursor only ever points after whole, finished records: safe to record.
    if (cursor > checkpointed || !redrive_done.is_empty())
        && shared.subscriptions.get(&id).is_some()
    {
        write_checkpoint(&shared, &id, cursor, &mut redrive_done).await;
    }
    tracing::info!(subscription = %id, cursor, "push delivery stopped");
}

async fn write_checkpoint(shared: &Shared, id: &str, cursor: u64, redrive_done: &mut Vec<String>) {
    match shared
        .subscriptions
        .checkpoint(id, cursor, redrive_done.clone())
        .await
    {
        Ok(_) => redrive_done.clear(),
        // Not fatal: the next checkpoint covers it; a crash before then redelivers the window.
        Err(e) => tracing::warn!(subscription = %id, error = %e, "checkpoint failed"),
    }
}

/// Records a parked delivery; retries the append until it lands or the worker stops.
async fn park(
    shared: &Shared,
    id: &str,
    entry: &SubscribeResponse,
    attempts: u32,
    last_error: String,
    round: u64,
    token: &CancellationToken,
) -> bool {
    let letter = DeadLetter {
        sequence: entry.sequence,
        idempotency_key: entry.idempotency_key.clone(),
        attempts,
        last_error,
        parked_at: Utc::now(),
    };
    tracing::warn!(subscription = %id, key = %letter.idempotency_key, attempts, error = %letter.last_error, "delivery parked in the dead-letter list");
    metrics::counter!("parley_notify_dead_letters_total").increment(1);
    let mut delay = Duration::from_millis(200);
    loop {
        match shared.subscriptions.dead_letter(id, &letter, round).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(subscription = %id, error = %e, "could not record a dead letter; retrying");
                tokio::select! {
                    _ = token.cancelled() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn target_of(shared: &Shared, subscription: &Subscription) -> Result<Target, String> {
    match subscription.channel {
        Channel::Nats => shared
            .nats
            .clone()
            .map(Target::Nats)
            .ok_or_else(|| "the NATS channel needs a NATS connection".to_owned()),
        Channel::Webhook => {
            let url = reqwest::Url::parse(&subscription.webhook_url).map_err(|e| e.to_string())?;
            let key = shared
                .secret_key
                .as_ref()
                .ok_or_else(|| format!("{} is not set", crate::secrets::SECRET_KEY_ENV))?;
            let secret = key
                .open(&subscription.id, &subscription.sealed_secret)
                .map_err(|e| e.to_string())?;
            Ok(Target::Webhook {
                url,
                secret,
                format: subscription.format,
            })
        }
        other => Err(format!("{other:?} is not a push channel")),
    }
}

/// Counts a delivery on `channel` and records how long after its append it went out.
pub(crate) fn observe_latency(channel: &'static str, entry: &SubscribeResponse) {
    if let Some(recorded) = entry
        .recorded_at
        .as_ref()
        .and_then(parley_domain::time::from_timestamp)
    {
        let seconds = (Utc::now() - recorded).num_microseconds().unwrap_or(0) as f64 / 1e6;
        metrics::histogram!("parley_notify_delivery_latency_seconds", "channel" => channel)
            .record(seconds.max(0.0));
    }
    metrics::counter!("parley_notify_delivered_total", "channel" => channel).increment(1);
}

async fn deliver(
    shared: &Shared,
    id: &str,
    target: &Target,
    entry: &SubscribeResponse,
    token: &CancellationToken,
) -> Outcome {
    match target {
        Target::Nats(publisher) => {
            // Our own infrastructure: retry until it works or the worker stops
            // (this subscription waits; the others do not).
            let mut delay = Duration::from_millis(100);
            loop {
                match publisher.publish(id, entry).await {
                    Ok(()) => {
                        observe_latency("nats", entry);
                        return Outcome::Delivered;
                    }
                    Err(e) => {
                        tracing::warn!(subscription = %id, error = %e, "NATS publish failed; retrying");
                        tokio::select! {
                            _ = token.cancelled() => return Outcome::Stopped,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        Target::Webhook {
            url,
            secret,
            format,
        } => {
            let body = format::webhook_body(*format, id, entry);
            let config = shared.webhooks.config();
            let mut last_error = String::new();
            for attempt in 1..=config.max_attempts {
                if token.is_cancelled() || !shared.lease.held() {
                    return Outcome::Stopped;
                }
                let request = WebhookRequest {
                    url,
                    secret,
                    body: &body,
                    idempotency_key: &entry.idempotency_key,
                    subscription_id: id,
                    sequence: entry.sequence,
                    attempt,
                };
                let result = tokio::select! {
                    _ = token.cancelled() => return Outcome::Stopped,
                    result = shared.webhooks.attempt(&request) => result,
                };
                match result {
                    Ok(()) => {
                        metrics::counter!("parley_notify_webhook_attempts_total", "outcome" => "success").increment(1);
                        observe_latency("webhook", entry);
                        return Outcome::Delivered;
                    }
                    Err(e) => {
                        metrics::counter!("parley_notify_webhook_attempts_total", "outcome" => e.outcome()).increment(1);
                        tracing::info!(subscription = %id, key = %entry.idempotency_key, attempt, error = %e, "webhook attempt failed");
                        last_error = e.to_string();
                    }
                }
                if attempt < config.max_attempts {
                    tokio::select! {
                        _ = token.cancelled() => return Outcome::Stopped,
                        _ = tokio::time::sleep(config.backoff(attempt)) => {}
                    }
                }
            }
            Outcome::Parked {
                attempts: config.max_attempts,
                last_error,
            }
        }
    }
}
