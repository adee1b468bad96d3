//! Parley's event log.
//!
//! The log is the source of truth: every service rebuilds its state by
//! replaying it. This crate hides the storage behind [`EventLog`] so the
//! services never see NATS (or, later, the embedded store) directly.
//!
//! Vocabulary:
//! - an *aggregate* ([`AggregateRef`]) is one consistency boundary, e.g. one
//!   article or one talks event; each has its own subject
//!   `<prefix>.<aggregate_type>.<aggregate_id>`;
//! - a *record* ([`LogRecord`]) is one message of the log with its global
//!   sequence (starting at 1);
//! - the *version* of an aggregate is the global sequence of its last record,
//!   which is what optimistic concurrency ([`ExpectedVersion`]) compares.
//!
//! Owns: the [`EventLog`] trait over bytes, its JetStream and embedded
//! SQLite backends, blobs, and the read-model file opener. Must never import
//! `parley-domain` (the log stores bytes; envelopes are the runtime's
//! business), the extractor, the knowledge base, or a service.

#![warn(missing_docs)]

mod checks;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod error;
pub mod jetstream;
pub mod read_model;
pub mod sqlite;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

pub use error::{ErrorClass, LogError};

/// A boxed stream of records, as returned by reads and subscriptions.
pub type RecordStream = Pin<Box<dyn Stream<Item = Result<LogRecord, LogError>> + Send>>;

/// Identifies one aggregate: its type ("article", "entity", "talks",
/// "subscription") and its id. Both must be valid NATS subject tokens
/// (no `.`, `*`, `>` or whitespace); [`AggregateRef::new`] checks this.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateRef {
    /// Aggregate type.
    pub kind: String,
    /// Aggregate id within its type.
    pub id: String,
}

impl AggregateRef {
    /// Builds a reference, refusing tokens that would break the subject layout.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Result<Self, LogError> {
        let aggregate = Self {
            kind: kind.into(),
            id: id.into(),
        };
        for token in [&aggregate.kind, &aggregate.id] {
            if !is_subject_token(token) {
                return Err(LogError::InvalidAggregate(format!(
                    "{:?} is not a valid subject token (use [A-Za-z0-9_-], no dots or wildcards)",
                    token
                )));
            }
        }
        Ok(aggregate)
    }
}

impl std::fmt::Display for AggregateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 200
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':')
}

/// Optimistic concurrency for an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check: append whatever the aggregate holds.
    Any,
    /// The aggregate must not exist yet.
    NoStream,
    /// The aggregate's last record must have exactly this global sequence.
    Exact(u64),
}

/// One append: a payload for one aggregate.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Target aggregate.
    pub aggregate: AggregateRef,
    /// Concurrency check.
    pub expected: ExpectedVersion,
    /// Deduplication id: the same id appended twice is stored once.
    /// Must be deterministic for retried commands.
    pub msg_id: String,
    /// Application headers (e.g. event type, schema version); names must not
    /// start with `Nats-`.
    pub headers: Vec<(String, String)>,
    /// The encoded payload (for Parley, a protobuf `EventBatch`).
    pub payload: Bytes,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global sequence of the record (the existing one for a duplicate).
    pub sequence: u64,
    /// True when the msg id was already in the log and nothing new was stored.
    pub duplicate: bool,
}

/// One record read back from the log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Global sequence, starting at 1.
    pub sequence: u64,
    /// Aggregate it belongs to.
    pub aggregate: AggregateRef,
    /// Deduplication id it was appended with.
    pub msg_id: Option<String>,
    /// Application headers.
    pub headers: Vec<(String, String)>,
    /// Payload bytes.
    pub payload: Bytes,
    /// When the log stored it.
    pub recorded_at: DateTime<Utc>,
}

impl LogRecord {
    /// First value of an application header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Sequence 1.
    Beginning,
    /// This sequence (inclusive).
    Sequence(u64),
    /// First record stored at or after this time.
    Time(DateTime<Utc>),
    /// Only records appended after the read starts.
    New,
}

/// Which aggregates a read or consumer sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// Aggregate types to include; empty means all.
    pub aggregate_types: Vec<String>,
}

impl Filter {
    /// Every record.
    pub fn all() -> Self {
        Self::default()
    }

    /// Records of these aggregate types only.
    pub fn types<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            aggregate_types: types.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether a record of this aggregate passes the filter.
    pub fn matches(&self, aggregate: &AggregateRef) -> bool {
        self.aggregate_types.is_empty() || self.aggregate_types.contains(&aggregate.kind)
    }
}

/// Whether a read stops at the end of the log or keeps following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Stop once the records present when the read started are delivered (replay).
    ToEnd,
    /// Deliver records as they are appended, forever (tail).
    Follow,
}

/// Reference to a large body in the log's object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key (the lower-case hex SHA-256 of the bytes).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A record handed to a durable consumer; it must be acked once its effects are durable.
pub struct Delivery {
    /// The record.
    pub record: LogRecord,
    /// How many times it has been delivered (1 the first time).
    pub delivery_count: u64,
    /// Records matching this consumer still waiting behind this one, as the
    /// backend counted them when it handed this one out (`None` where it
    /// does not know): the consumer's exact lag.
    pub pending: Option<u64>,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("sequence", &self.record.sequence)
            .field("aggregate", &self.record.aggregate)
            .field("delivery_count", &self.delivery_count)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Delivery {
    /// Wraps a record with its backend-specific acknowledger.
    pub fn new(record: LogRecord, delivery_count: u64, acker: Box<dyn Acker>) -> Self {
        Self {
            record,
            delivery_count,
            pending: None,
            acker,
        }
    }

    /// Adds the backend's count of matching records waiting behind this one.
    pub fn with_pending(mut self, pending: u64) -> Self {
        self.pending = Some(pending);
        self
    }

    /// Done: never deliver again.
    pub async fn ack(self) -> Result<(), LogError> {
        self.acker.ack().await
    }

    /// Failed for now: deliver again after the backend's backoff.
    pub async fn nak(self) -> Result<(), LogError> {
        self.acker.nak().await
    }

    /// Poison: never deliver again to this consumer (the caller reports it).
    pub async fn term(self) -> Result<(), LogError> {
        self.acker.term().await
    }
}

/// Backend-specific acknowledgement of one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    /// See [`Delivery::ack`].
    async fn ack(&self) -> Result<(), LogError>;
    /// See [`Delivery::nak`].
    async fn nak(&self) -> Result<(), LogError>;
    /// See [`Delivery::term`].
    async fn term(&self) -> Result<(), LogError>;
}

/// Options of a durable consumer.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Durable name; one per service (replicas of a service share it).
    pub durable_name: String,
    /// Which records it receives.
    pub filter: Filter,
    /// Deliveries before a record is parked as poison.
    pub max_deliver: i64,
    /// Unacked records in flight at most.
    pub max_ack_pending: i64,
    /// How long a delivery may stay unacked before it is redelivered.
    pub ack_wait: std::time::Duration,
}

impl ConsumerOptions {
    /// Defaults suited to Parley's services.
    pub fn new(durable_name: impl Into<String>, filter: Filter) -> Self {
        Self {
            durable_name: durable_name.into(),
            filter,
            max_deliver: 5,
            max_ack_pending: 256,
            ack_wait: std::time::Duration::from_secs(30),
        }
    }
}

/// A durable consumer: remembers what was acked across restarts.
#[async_trait]
pub trait DurableConsumer: Send {
    /// Next delivery; `None` when the consumer is closed.
    async fn next(&mut self) -> Option<Result<Delivery, LogError>>;
}

/// The log. Backends: [`jetstream::JetStreamLog`] (and an embedded one later).
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one record, checking the expected version and deduplicating on msg id.
    ///
    /// A conflicting writer gets [`LogError::WrongExpectedVersion`] and must
    /// reload the aggregate and decide again. A retried append whose first try
    /// did land returns `duplicate: true` with the original sequence.
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError>;

    /// Appends many records, pipelined where the backend allows; results are
    /// in request order. Records for one aggregate keep their order.
    async fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<Appended, LogError>> {
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            results.push(self.append(request).await);
        }
        results
    }

    /// Global sequence of the last record (0 for an empty log).
    async fn last_sequence(&self) -> Result<u64, LogError>;

    /// Version of an aggregate: sequence of its last record, `None` if it has none.
    async fn aggregate_version(&self, aggregate: &AggregateRef) -> Result<Option<u64>, LogError>;

    /// Every record of one aggregate, in order.
    async fn read_aggregate(&self, aggregate: &AggregateRef) -> Result<Vec<LogRecord>, LogError>;

    /// Reads records in global order from a start position.
    async fn read(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError>;

    /// Opens (creating if needed) a durable consumer.
    async fn consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError>;

    /// Stores a large body in the object store, keyed by its SHA-256.
    async fn put_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError>;

    /// Loads a body stored with [`EventLog::put_blob`].
    async fn get_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError>;

    /// Largest payload one record may carry; bigger bodies go to the object store.
    fn max_payload(&self) -> usize;

    /// This log's identity, stable while the log exists and different for
    /// a log deleted and created again (or salvaged): read models record it
    /// and are rebuilt, with a warning, when they come from another log.
    fn log_id(&self) -> String;
}
