//! The notify read model: every change to every talks event, in log order.
//!
//! Subscribers keep a cursor (the last log sequence they were sent) and read
//! the journal after it; a watch channel wakes them when it grows. A slow
//! subscriber therefore holds no queue of its own beyond a small send buffer,
//! and one that fell behind catches up from the journal without loss.

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
    events: HashMap<String, TalksEvent>,
    applied: u64,
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
            let change = match event {
                Event::TalksEventRecorded(recorded) => {
                    recorded.event.clone().map(|e| (UpdateKind::Recorded, e))
                }
                Event::TalksEventCorroborated(c) => {
                    inner.events.get(&c.event_id).cloned().map(|mut e| {
                        if let Some(evidence) = &c.evidence {
                            e.evidence.push(evidence.clone());
                        }
                        e.source_count = c.source_count;
                        if c.status != 0 {
                            e.status = c.status;
                        }
                        e.version = c.version;
                        (UpdateKind::Corroborated, e)
                    })
                }
                Event::TalksEventAmended(amended) => {
                    amended.event.clone().map(|e| (UpdateKind::Amended, e))
                }
                Event::TalksEventRetracted(r) => {
                    inner.events.get(&r.event_id).cloned().map(|mut e| {
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
            inner.events.insert(state.event_id.clone(), state.clone());
            let entry = SubscribeResponse {
                sequence: record.sequence,
                idempotency_key: format!("{}:v{}", state.event_id, state.version),
                kind: kind as i32,
                event: Some(state),
                recorded_at: Some(time::to_timestamp(record.recorded_at)),
                lagged_from: 0,
            };
            inner.entries.push(Arc::new(entry));
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
            .cloned()
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
