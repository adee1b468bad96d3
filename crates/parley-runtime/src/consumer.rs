//! The durable consumer loop every service runs.
//!
//! It decodes each record, hands it to the service's handler, and acks only
//! after the handler's own effects are in the log. A record that cannot be
//! decoded, or that keeps failing, is parked (terminated with a report naming
//! its sequence) so one poison message never stalls the service.
//!
//! The loop also reports, labelled with the service name (see [`metric`]):
//! records consumed, what became of them, how long handling took, and how far
//! the consumer is behind the head of the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::envelope::{DecodedRecord, decode_record};
use async_trait::async_trait;
use parley_log::{ConsumerOptions, Delivery, EventLog, LogError};

use crate::ShutdownSignal;

/// Names of the metrics the consumer loop reports, so dashboards, alerts and
/// tests spell them the same way. Every one carries a `service` label.
pub mod metric {
    /// Counter: records delivered to the loop (redeliveries included).
    pub const CONSUMED: &str = "parley_events_consumed_total";
    /// Counter: records by outcome, label `outcome` = `done`, `skipped`, `retry` or `parked`.
    pub const OUTCOMES: &str = "parley_consumer_records_total";
    /// Histogram (seconds): decoding plus the handler, per record.
    pub const PROCESSING: &str = "parley_processing_seconds";
    /// Gauge: records of the log after the one just handled (see [`super::ConsumerLoop`]).
    pub const LAG: &str = "parley_consumer_lag";
    /// Counter: failed fetches from the log (each is retried).
    pub const FETCH_ERRORS: &str = "parley_consumer_fetch_errors_total";
    /// Counter: records parked as poison (never delivered again).
    pub const POISON: &str = "parley_poison_records_total";
}

/// How long without a delivery before the consumer counts as caught up.
const IDLE: Duration = Duration::from_secs(2);
/// Least time between two reads of the log's head for the lag gauge.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the log's head; the gauge is skipped rather than the record delayed.
const LAG_SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// Only failures that would repeat whatever the log's health are
    /// permanent (poison); a backend error (a timeout, a leader election, a
    /// consumer limit while a node is lost) is retried with backoff, because
    /// parking a good record on an infrastructure hiccup would lose it.
    fn from(error: LogError) -> Self {
        match error {
            LogError::InvalidAggregate(_)
            | LogError::PayloadTooLarge { .. }
            | LogError::UnsupportedServer(_) => HandlerError::Permanent(error.to_string()),
            _ => HandlerError::Transient(error.to_string()),
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
///
/// Consumer lag (`parley_consumer_lag`) is the number of records matching
/// this consumer still waiting behind the one just handled, as the log
/// counted them ([`parley_log::Delivery::pending`]: JetStream's per-consumer
/// pending count, or the embedded log's own count), and 0 once nothing has
/// been delivered for two seconds while the log answers. For a delivery
/// without a count (a redelivery on the embedded log) it falls back to the
/// log's last sequence minus this record's, read at most once a second: an
/// upper bound, since records this consumer filters out count too.
pub struct ConsumerLoop {
    log: Arc<dyn EventLog>,
    options: ConsumerOptions,
    service: &'static str,
}

/// What one wait on the consumer produced.
enum Fetched {
    /// The shutdown token fired.
    Stop,
    /// The consumer's next item.
    Next(Option<Result<Delivery, LogError>>),
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
        let mut lag = LagGauge::new(self.log.clone(), self.service);
        loop {
            // Wait for the next record without dropping the fetch on every idle
            // tick: the same future is polled until it yields.
            let fetched = {
                let fetch = consumer.next();
                tokio::pin!(fetch);
                loop {
                    tokio::select! {
                        _ = shutdown.token.cancelled() => break Fetched::Stop,
                        next = &mut fetch => break Fetched::Next(next),
                        _ = tokio::time::sleep(IDLE) => lag.idle().await,
                    }
                }
            };
            let delivery = match fetched {
                Fetched::Stop | Fetched::Next(None) => break,
                Fetched::Next(Some(Ok(delivery))) => delivery,
                Fetched::Next(Some(Err(e))) => {
                    metrics::counter!(metric::FETCH_ERRORS, "service" => self.service).increment(1);
                    tracing::warn!(service = self.service, error = %e, "consumer fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let (sequence, pending) = (delivery.record.sequence, delivery.pending);
            self.process(&*handler, delivery).await;
            lag.handled(sequence, pending).await;
        }
        tracing::info!(service = self.service, "consumer stopped");
        Ok(())
    }

    async fn process<H: RecordHandler>(&self, handler: &H, delivery: Delivery) {
        let sequence = delivery.record.sequence;
        let started = Instant::now();
        metrics::counter!(metric::CONSUMED, "service" => self.service).increment(1);
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
        metrics::histogram!(metric::PROCESSING, "service" => self.service)
            .record(started.elapsed().as_secs_f64());
        let result = match outcome {
            Ok(handled) => {
                let outcome = match handled {
                    Handled::Done => "done",
                    Handled::Skipped => "skipped",
                };
                self.count(outcome);
                delivery.ack().await
            }
            Err(HandlerError::Transient(reason))
                if (delivery.delivery_count as i64) < self.options.max_deliver =>
            {
                // Back off before handing it back: a transient failure is usually the
                // log itself (a NATS node lost, a leader election), and retrying at once
                // would spend the whole poison budget within the outage.
                let delay = transient_backoff(delivery.delivery_count);
                tracing::warn!(service = self.service, sequence, attempt = delivery.delivery_count, retry_in_ms = delay.as_millis() as u64, %reason, "will retry");
                self.count("retry");
                tokio::time::sleep(delay).await;
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
        metrics::counter!(metric::POISON, "service" => self.service).increment(1);
        self.count("parked");
        if let Err(e) = delivery.term().await {
            tracing::warn!(service = self.service, sequence, error = %e, "could not park record");
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(metric::OUTCOMES, "service" => self.service, "outcome" => outcome)
            .increment(1);
    }
}

/// Keeps `parley_consumer_lag` up to date without a log round trip per record.
struct LagGauge {
    log: Arc<dyn EventLog>,
    service: &'static str,
    sampled: Option<Instant>,
}

impl LagGauge {
    fn new(log: Arc<dyn EventLog>, service: &'static str) -> Self {
        Self {
            log,
            service,
            sampled: None,
        }
    }

    /// After handling `sequence`: lag = the backend's `pending` count when
    /// it has one, else records appended after it (sampled).
    async fn handled(&mut self, sequence: u64, pending: Option<u64>) {
        if let Some(pending) = pending {
            self.set(pending);
            return;
        }
        if self
            .sampled
            .is_some_and(|at| at.elapsed() < LAG_SAMPLE_EVERY)
        {
            return;
        }
        self.sampled = Some(Instant::now());
        if let Some(last) = self.head().await {
            self.set(last.saturating_sub(sequence));
        }
    }

    /// Nothing delivered for a while: caught up, provided the log answers
    /// (an unreachable log leaves the last value in place).
    async fn idle(&mut self) {
        if self.head().await.is_some() {
            self.set(0);
        }
    }

    async fn head(&self) -> Option<u64> {
        match tokio::time::timeout(LAG_SAMPLE_TIMEOUT, self.log.last_sequence()).await {
            Ok(Ok(last)) => Some(last),
            Ok(Err(e)) => {
                tracing::debug!(service = self.service, error = %e, "cannot read the log head for the lag gauge");
                None
            }
            Err(_) => None,
        }
    }

    fn set(&self, lag: u64) {
        metrics::gauge!(metric::LAG, "service" => self.service).set(lag as f64);
    }
}

/// Delay before re-offering a record after its `attempt`-th transient failure:
/// 250 ms doubling, at most 5 s (well under the consumer's ack wait).
fn transient_backoff(attempt: u64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(5) as u32;
    (Duration::from_millis(250) * 2u32.pow(exponent)).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    //! The loop over the embedded log, with a recorder that captures metrics.

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };
    use parley_log::sqlite::SqliteLog;
    use parley_log::{AggregateRef, AppendRequest, ExpectedVersion, Filter};

    use super::*;

    /// One value per metric key (name and labels), shared with the handles it hands out.
    #[derive(Default)]
    struct Captured {
        values: Mutex<HashMap<String, Arc<Value>>>,
    }

    /// A counter, a gauge (f64 bits) or a histogram (observation count);
    /// gauges also keep their highest value (f64 bits of non-negative values order like the values).
    #[derive(Default)]
    struct Value(AtomicU64, AtomicU64);

    impl CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::Relaxed);
        }
    }

    impl GaugeFn for Value {
        fn increment(&self, value: f64) {
            self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + value);
        }
        fn decrement(&self, value: f64) {
            GaugeFn::increment(self, -value);
        }
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), Ordering::Relaxed);
            self.1.fetch_max(value.to_bits(), Ordering::Relaxed);
        }
    }

    impl HistogramFn for Value {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Captured {
        fn value(&self, key: &Key) -> Arc<Value> {
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.values.lock().unwrap().entry(name).or_default().clone()
        }

        /// The raw value of `name{labels}` (labels sorted, comma-separated), 0 if never touched.
        fn get(&self, name: &str) -> u64 {
            self.values
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |v| v.0.load(Ordering::Relaxed))
        }

        /// The highest value a gauge was set to.
        fn max_gauge(&self, name: &str) -> f64 {
            self.values
                .lock()
                .unwrap()
                .get(name)
                .map_or(0.0, |v| f64::from_bits(v.1.load(Ordering::Relaxed)))
        }
    }

    /// Lets the test keep the captured values while the recorder is installed.
    struct Shared(Arc<Captured>);

    impl Recorder for Shared {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.0.value(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.0.value(key))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.0.value(key))
        }
    }

    /// Counts the records it sees; fails the one on aggregate `article/retry` once.
    #[derive(Default)]
    struct Counting {
        seen: AtomicU64,
        failed_once: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl RecordHandler for Counting {
        async fn handle(&self, record: &DecodedRecord) -> Result<Handled, HandlerError> {
            self.seen.fetch_add(1, Ordering::SeqCst);
            if record.aggregate.id == "retry" && !self.failed_once.swap(true, Ordering::SeqCst) {
                return Err(HandlerError::Transient("not yet".into()));
            }
            Ok(Handled::Done)
        }
    }

    fn request(id: &str, payload: Option<&'static [u8]>) -> AppendRequest {
        let aggregate = AggregateRef::new("article", id).unwrap();
        let mut request = crate::envelope::append_request(
            aggregate,
            ExpectedVersion::Any,
            format!("msg-{id}"),
            Vec::new(),
        );
        if let Some(payload) = payload {
            request.payload = payload.into();
        }
        request
    }

    #[test]
    fn reports_consumed_outcomes_latency_and_lag() {
        let captured = Arc::new(Captured::default());
        let recorder = Shared(captured.clone());
        let dir = std::env::temp_dir().join(format!(
            "parley-consumer-metrics-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        // A current-thread runtime polls every task on this thread, where the
        // local recorder is installed.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handler = Arc::new(Counting::default());
        metrics::with_local_recorder(&recorder, || {
            runtime.block_on(async {
                let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open(&dir).unwrap());
                for (id, payload) in [
                    ("a", None),
                    ("poison", Some(&b"\xff\xff\xff not protobuf"[..])),
                    ("retry", None),
                    ("b", None),
                ] {
                    log.append(request(id, payload)).await.unwrap();
                }
                let mut options = ConsumerOptions::new("metrics-test", Filter::all());
                options.ack_wait = Duration::from_millis(200);
                let shutdown = ShutdownSignal::new(Duration::from_secs(1));
                let consumer = ConsumerLoop::new(log.clone(), options, "test");
                let task = tokio::spawn(consumer.run(handler.clone(), shutdown.clone()));
                // Three good records, one of them twice (the retry).
                let deadline = Instant::now() + Duration::from_secs(20);
                while captured.get("parley_consumer_records_total{outcome=done,service=test}") < 3 {
                    assert!(Instant::now() < deadline, "records not handled in time");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                // Idle long enough for the lag to drop to zero.
                tokio::time::sleep(IDLE + Duration::from_millis(500)).await;
                shutdown.token.cancel();
                task.await.unwrap().unwrap();
            })
        });
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(handler.seen.load(Ordering::SeqCst), 4, "a, retry twice, b");
        assert_eq!(
            captured.get("parley_events_consumed_total{service=test}"),
            5,
            "four records, one redelivered"
        );
        for (outcome, n) in [("done", 3), ("retry", 1), ("parked", 1), ("skipped", 0)] {
            assert_eq!(
                captured.get(&format!(
                    "parley_consumer_records_total{{outcome={outcome},service=test}}"
                )),
                n,
                "{outcome}"
            );
        }
        assert_eq!(captured.get("parley_poison_records_total{service=test}"), 1);
        // Every decoded record is timed (the poison one is not decodable).
        assert_eq!(captured.get("parley_processing_seconds{service=test}"), 4);
        // After the first record (sequence 1 of 4) three were still ahead ...
        assert_eq!(
            captured.max_gauge("parley_consumer_lag{service=test}"),
            3.0,
            "lag right after the first record"
        );
        // ... and none once the consumer idled.
        let lag = f64::from_bits(captured.get("parley_consumer_lag{service=test}"));
        assert_eq!(lag, 0.0, "caught up after idling");
    }
}
