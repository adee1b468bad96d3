//! Where the resolver keeps the bulk of each event.
//!
//! An event's full state grows with every report of it (one evidence, with
//! its text, per source), so a long-running service cannot hold all of it in
//! memory. The [`Resolver`](crate::Resolver) keeps only a small matching key
//! per event (type, sides, dates, venue, version, status, number of sources)
//! and reads and writes everything else through an [`EventStore`]: in memory
//! for the offline pipeline and tests ([`MemoryEvents`]), in a local file for
//! the resolver service.

use std::collections::{BTreeMap, BTreeSet};

use parley_domain::model::TalksEvent;

/// Why an [`EventStore`] could not answer, sorted by what the caller can do.
///
/// A store is a cache rebuilt by replaying decisions, so whatever the kind,
/// a resolver whose store failed in the middle of
/// [`Resolver::apply`](crate::Resolver::apply) may hold a partly applied decision: the caller
/// stops deciding with it and rebuilds it from the log. The kind says
/// whether doing so in the same process is worth trying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// May succeed if tried again (the storage is busy or briefly unavailable).
    #[error("event store temporarily unavailable: {0}")]
    Retryable(String),
    /// Will not succeed in this process (an I/O error, a full disk, a
    /// missing table): stop using this store and rebuild it.
    #[error("event store failed: {0}")]
    Permanent(String),
    /// A stored entry does not decode: the storage was damaged.
    #[error("event store holds a damaged entry: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Retryable(_))
    }
}

/// Full states of events and the documents that report them.
///
/// Implementations are caches rebuilt by replaying decisions; a failure is
/// reported as a typed [`StoreError`], never by stopping the process or
/// answering wrongly.
pub trait EventStore: Send + std::fmt::Debug {
    /// The full state of an event, if stored.
    fn load(&self, event_id: &str) -> Result<Option<TalksEvent>, StoreError>;
    /// Stores (or replaces) the full state of `event.event_id`.
    fn save(&mut self, event: &TalksEvent) -> Result<(), StoreError>;
    /// Records that `document_id` reports the event; `false` if it was known.
    fn add_source(&mut self, event_id: &str, document_id: &str) -> Result<bool, StoreError>;
    /// Whether `document_id` reports the event (including sources an
    /// amendment later dropped from its evidence).
    fn has_source(&self, event_id: &str, document_id: &str) -> Result<bool, StoreError>;
}

/// An [`EventStore`] in memory: fine for a bounded run (offline, tests).
#[derive(Debug, Default, Clone)]
pub struct MemoryEvents {
    events: BTreeMap<String, TalksEvent>,
    sources: BTreeMap<String, BTreeSet<String>>,
}

impl EventStore for MemoryEvents {
    fn load(&self, event_id: &str) -> Result<Option<TalksEvent>, StoreError> {
        Ok(self.events.get(event_id).cloned())
    }

    fn save(&mut self, event: &TalksEvent) -> Result<(), StoreError> {
        self.events.insert(event.event_id.clone(), event.clone());
        Ok(())
    }

    fn add_source(&mut self, event_id: &str, document_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .sources
            .entry(event_id.to_owned())
            .or_default()
            .insert(document_id.to_owned()))
    }

    fn has_source(&self, event_id: &str, document_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .sources
            .get(event_id)
            .is_some_and(|s| s.contains(document_id)))
    }
}
