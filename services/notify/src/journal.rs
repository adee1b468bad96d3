//! The notify read model: every change to every talks event, in log order.
//!
//! Subscribers keep a cursor (the last log sequence they were sent) and read
//! the journal after it; a watch channel wakes them when it grows. A slow
//! subscriber therefore holds no queue of its own beyond a small send buffer,
//! and one that fell behind catches up from the journal without loss.
//!
//! Besides the log-ordered entries, the journal indexes them per event (its
//! versions, in order) and numbers events by first appearance (their
//! *ordinal*), which is what history queries page over. The index holds
//! `Arc`s to the same entries, so it costs one pointer per change plus one id
//! per event on top of the entries themselves.
//!
//! Memory: everything is kept in memory and grows with the log (one entry per
//! talks-event change, carrying the event's full state). That is fine for the
//! volumes Parley sees (thousands of events a day at most: a million changes
//! is a few GiB only with very large evidence texts); bounding it would mean
//! keeping only the latest version's state and reading older ones back from
//! the log on demand.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use parley_domain::pb::{SubscribeResponse, TalksEvent, UpdateKind};
use parley_domain::{DecodedRecord, Event, decode_record, time};
use parley_log::{LogError, RecordStream};
use parley_runtime::{Handled, HandlerError, RecordHandler};
use tokio::sync::watch;

/// The journal of talks-event changes.
pub struct Journal {
    inner: RwLock<Inner>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Arc<SubscribeResponse>>,
    /// Per-event index, by event id.
    events: HashMap<String, EventHistory>,
    /// Event ids by ordinal (order of first appearance in the log).
    order: Vec<String>,
    applied: u64,
}

/// One change to an event as the journal recorded it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The journal entry (also what subscribers receive).
    pub entry: Arc<SubscribeResponse>,
    /// Why, for amendments and retractions that said so; empty otherwise.
    pub reason: String,
}

/// Everything the journal knows about one event, so history queries need not
/// scan the whole journal.
#[derive(Debug, Clone)]
pub struct EventHistory {
    /// Position of the event in first-recorded order, from 0; stable across
    /// replays of the same log, which makes it a safe pagination key.
    pub ordinal: u64,
    /// Every change, in log order; never empty.
    pub changes: Vec<Change>,
}

impl EventHistory {
    /// The latest change.
    pub fn latest(&self) -> &SubscribeResponse {
        &self.changes[self.changes.len() - 1].entry
    }

    /// The first change (when the event entered the log).
    pub fn first(&self) -> &SubscribeResponse {
        &self.changes[0].entry
    }

    /// The current state.
    pub fn state(&self) -> Option<&TalksEvent> {
        self.latest().event.as_ref()
    }
}

/// A read-locked view of the per-event index, for queries that look at many
/// events at once. Appends wait while a view is alive: keep it short.
pub struct EventsView<'a> {
    inner: &'a Inner,
}

impl EventsView<'_> {
    /// Number of distinct events.
    pub fn len(&self) -> usize {
        self.inner.order.len()
    }

    /// Whether no event is known.
    pub fn is_empty(&self) -> bool {
        self.inner.order.is_empty()
    }

    /// The event with this ordinal.
    pub fn by_ordinal(&self, ordinal: u64) -> Option<&EventHistory> {
        let id = self.inner.order.get(usize::try_from(ordinal).ok()?)?;
        self.inner.events.get(id)
    }

    /// The event with this id.
    pub fn get(&self, event_id: &str) -> Option<&EventHistory> {
        self.inner.events.get(event_id)
    }
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            changed: watch::channel(0).0,
        }
    }
}

impl Journal {
    /// Applies every record of a replay stream; returns how many records were read.
    pub async fn replay(&self, mut records: RecordStream) -> Result<u64, LogError> {
        let mut count = 0;
        while let Some(record) = records.next().await {
            let record = record?;
            count += 1;
            match decode_record(&record) {
                Ok(decoded) => {
                    self.apply(&decoded);
                }
                Err(e) => tracing::error!(error = %e, "skipping undecodable record during replay"),
            }
        }
        Ok(count)
    }

    /// Applies one record; records at or below the last applied sequence are ignored
    /// (redeliveries). Returns the number of journal entries added.
    pub fn apply(&self, record: &DecodedRecord) -> usize {
        let mut inner = self.inner.write().expect("journal lock poisoned");
        if record.sequence <= inner.applied {
            return 0;
        }
        inner.applied = record.sequence;
        let mut added = 0;
        for (_, event) in record.events() {
            let current = |id: &str| inner.events.get(id).and_then(|h| h.state()).cloned();
            let mut reason = String::new();
            let change = match event {
                Event::TalksEventRecorded(recorded) => {
                    recorded.event.clone().map(|e| (UpdateKind::Recorded, e))
                }
                Event::TalksEventCorroborated(c) => current(&c.event_id).map(|mut e| {
                    if let Some(evidence) = &c.evidence {
                        e.evidence.push(evidence.clone());
                    }
                    e.source_count = c.source_count;
                    if c.status != 0 {
                        e.status = c.status;
                    }
                    e.version = c.version;
                    (UpdateKind::Corroborated, e)
                }),
                Event::TalksEventAmended(amended) => {
                    reason.clone_from(&amended.reason);
                    amended.event.clone().map(|e| (UpdateKind::Amended, e))
                }
                Event::TalksEventRetracted(r) => {
                    reason.clone_from(&r.reason);
                    current(&r.event_id).map(|mut e| {
                        e.retracted = true;
                        e.version = r.version;
                        (UpdateKind::Retracted, e)
                    })
                }
                _ => None,
            };
            let Some((kind, state)) = change else {
                continue;
            };
            let event_id = state.event_id.clone();
            let entry = Arc::new(SubscribeResponse {
                sequence: record.sequence,
                idempotency_key: format!("{}:v{}", state.event_id, state.version),
                kind: kind as i32,
                event: Some(state),
                recorded_at: Some(time::to_timestamp(record.recorded_at)),
                lagged_from: 0,
            });
            inner.entries.push(entry.clone());
            let change = Change { entry, reason };
            let Inner { events, order, .. } = &mut *inner;
            match events.get_mut(&event_id) {
                Some(history) => history.changes.push(change),
                None => {
                    let ordinal = order.len() as u64;
                    order.push(event_id.clone());
                    events.insert(
                        event_id,
                        EventHistory {
                            ordinal,
                            changes: vec![change],
                        },
                    );
                }
            }
            added += 1;
        }
        let applied = inner.applied;
        drop(inner);
        self.changed.send_replace(applied);
        metrics::gauge!("parley_notify_journal_entries").set(self.len() as f64);
        added
    }

    /// Entries with a sequence greater than `cursor`, at most `limit`.
    pub fn after(&self, cursor: u64, limit: usize) -> Vec<Arc<SubscribeResponse>> {
        let inner = self.inner.read().expect("journal lock poisoned");
        let start = inner.entries.partition_point(|e| e.sequence <= cursor);
        inner.entries[start..].iter().take(limit).cloned().collect()
    }

    /// The cursor to start from to see every entry recorded at or after `time`.
    pub fn cursor_for_time(&self, time: DateTime<Utc>) -> u64 {
        let inner = self.inner.read().expect("journal lock poisoned");
        let start = inner.entries.partition_point(|e| {
            e.recorded_at
                .as_ref()
                .and_then(time::from_timestamp)
                .is_some_and(|t| t < time)
        });
        match start.checked_sub(1) {
            Some(i) => inner.entries[i].sequence,
            None => 0,
        }
    }

    /// Last log sequence applied.
    pub fn applied_sequence(&self) -> u64 {
        self.inner.read().expect("journal lock poisoned").applied
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .expect("journal lock poisoned")
            .entries
            .len()
    }

    /// Whether the journal is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current state of one event.
    pub fn event(&self, event_id: &str) -> Option<TalksEvent> {
        self.inner
            .read()
            .expect("journal lock poisoned")
            .events
            .get(event_id)
            .and_then(|h| h.state())
            .cloned()
    }

    /// Every change to one event, in log order.
    pub fn history(&self, event_id: &str) -> Option<EventHistory> {
        self.inner
            .read()
            .expect("journal lock poisoned")
            .events
            .get(event_id)
            .cloned()
    }

    /// Runs `f` over a consistent view of the per-event index (under the read lock).
    pub fn read_events<R>(&self, f: impl FnOnce(&EventsView<'_>) -> R) -> R {
        let inner = self.inner.read().expect("journal lock poisoned");
        f(&EventsView { inner: &inner })
    }

    /// Receives the applied sequence whenever it grows.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[async_trait]
impl RecordHandler for Journal {
    async fn handle(&self, record: &DecodedRecord) -> Result<Handled, HandlerError> {
        Ok(if self.apply(record) > 0 {
            Handled::Done
        } else {
            Handled::Skipped
        })
    }
}
