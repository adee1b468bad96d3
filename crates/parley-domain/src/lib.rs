//! Parley's domain: the vocabulary every other crate speaks.
//!
//! This crate owns
//! - the talks model ([`model`]): what happened, between whom, where and
//!   when, and the text it was read from — the one in-memory shape of an event
//!   from the extractor to the subscriber;
//! - the entity model ([`entity`]): canonical persons, states and organisations;
//! - ids ([`ids`]): documents, events and entities, derived from content so a
//!   retried command or a replay produces the same ones;
//! - the subscription filter language ([`filter`]);
//! - the mapping between the model and the protobuf schemas ([`convert`]) and
//!   the names of aggregates, payload types and record headers.
//!
//! It is pure: it depends on `parley-proto` and small pure crates only, and
//! must never import the log (`parley-log`), the extractor (`parley-extract`),
//! the knowledge base (`parley-kb`), the runtime, a service, tokio or a server.
//! Writing envelopes to a log and reading them back is the runtime's job
//! (`parley_runtime::envelope`).

#![warn(missing_docs)]

pub mod convert;
pub mod entity;
pub mod filter;
pub mod ids;
pub mod model;
pub mod time;

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

/// Fully qualified protobuf name of a payload variant, stored in the envelope.
pub fn event_type_name(event: &Event) -> &'static str {
    match event {
        Event::ArticleIngested(_) => "parley.v1.ArticleIngested",
        Event::CandidatesExtracted(_) => "parley.v1.CandidatesExtracted",
        Event::DocumentResolved(_) => "parley.v1.DocumentResolved",
        Event::EntityRegistered(_) => "parley.v1.EntityRegistered",
        Event::AliasLearned(_) => "parley.v1.AliasLearned",
        Event::EntitiesMerged(_) => "parley.v1.EntitiesMerged",
        Event::EntitySplit(_) => "parley.v1.EntitySplit",
        Event::TalksEventRecorded(_) => "parley.v1.TalksEventRecorded",
        Event::TalksEventCorroborated(_) => "parley.v1.TalksEventCorroborated",
        Event::TalksEventAmended(_) => "parley.v1.TalksEventAmended",
        Event::TalksEventRetracted(_) => "parley.v1.TalksEventRetracted",
        Event::SubscriptionCreated(_) => "parley.v1.SubscriptionCreated",
        Event::SubscriptionPaused(_) => "parley.v1.SubscriptionPaused",
        Event::SubscriptionResumed(_) => "parley.v1.SubscriptionResumed",
        Event::SubscriptionDeleted(_) => "parley.v1.SubscriptionDeleted",
        Event::SubscriptionCheckpointed(_) => "parley.v1.SubscriptionCheckpointed",
        Event::DeliveryDeadLettered(_) => "parley.v1.DeliveryDeadLettered",
        Event::DeadLettersRedriven(_) => "parley.v1.DeadLettersRedriven",
        Event::DeliveryLeaseTaken(_) => "parley.v1.DeliveryLeaseTaken",
    }
}
