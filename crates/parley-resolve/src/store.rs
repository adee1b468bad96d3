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

/// Full states of events and the documents that report them.
///
/// Implementations are caches rebuilt by replaying decisions: they have no
/// way to report a failure and should stop the process rather than answer
/// wrongly (the state is rebuilt from the log on restart).
pub trait EventStore: Send + std::fmt::Debug {
    /// The full state of an event, if stored.
    fn load(&self, event_id: &str) -> Option<TalksEvent>;
    /// Stores (or replaces) the full state of `event.event_id`.
    fn save(&mut self, event: &TalksEvent);
    /// Records that `document_id` reports the event; `false` if it was known.
    fn add_source(&mut self, event_id: &str, document_id: &str) -> bool;
    /// Whether `document_id` reports the event (including sources an
    /// amendment later dropped from its evidence).
    fn has_source(&self, event_id: &str, document_id: &str) -> bool;
}

/// An [`EventStore`] in memory: fine for a bounded run (offline, tests).
#[derive(Debug, Default, Clone)]
pub struct MemoryEvents {
    events: BTreeMap<String, TalksEvent>,
    sources: BTreeMap<String, BTreeSet<String>>,
}

impl EventStore for MemoryEvents {
    fn load(&self, event_id: &str) -> Option<TalksEvent> {
        self.events.get(event_id).cloned()
    }

    fn save(&mut self, event: &TalksEvent) {
        self.events.insert(event.event_id.clone(), event.clone());
    }

    fn add_source(&mut self, event_id: &str, document_id: &str) -> bool {
        self.sources
            .entry(event_id.to_owned())
            .or_default()
            .insert(document_id.to_owned())
    }

    fn has_source(&self, event_id: &str, document_id: &str) -> bool {
        self.sources
            .get(event_id)
            .is_some_and(|s| s.contains(document_id))
    }
}
