//! Parley's domain vocabulary, shared by every service.
//!
//! The log stores protobuf [`EventBatch`]es, one per command, on one subject
//! per aggregate. This crate is the single place that knows how envelopes are
//! built, named, encoded and decoded, so a replay in any service reads the
//! same facts the writer meant.

pub mod convert;
pub mod envelope;
pub mod ids;
pub mod time;

pub use envelope::{DecodeError, DecodedRecord, EnvelopeBuilder, append_events, decode_record};
pub use parley_proto::v1 as pb;
pub use parley_proto::v1::{DomainEvent, EventBatch, EventEnvelope, domain_event::Event};

/// Aggregate types: the second token of a log subject (`parley.evt.<type>.<id>`).
pub mod aggregate {
    /// One document: ingested, extracted, resolved.
    pub const ARTICLE: &str = "article";
    /// One canonical entity: registered, aliases, merges, splits.
    pub const ENTITY: &str = "entity";
    /// One real-world talks or ceasefire event: recorded, corroborated, amended, retracted.
    pub const TALKS: &str = "talks";
    /// One subscription: created, paused, resumed, deleted.
    pub const SUBSCRIPTION: &str = "subscription";
}

/// Version of the payload schemas this build writes and fully understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Header naming the payload types of a record, so readers can skip without decoding.
pub const HEADER_EVENT_TYPES: &str = "Parley-Event-Types";
/// Header carrying the schema version of a record.
pub const HEADER_SCHEMA_VERSION: &str = "Parley-Schema-Version";
