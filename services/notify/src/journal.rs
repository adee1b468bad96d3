//! The notify read model: every change to every talks event, in log order.
//!
//! Subscribers keep a cursor (the last log sequence they were sent) and read
//! the journal after it; a watch channel wakes them when it grows. A slow
//! subscriber therefore holds no queue of its own beyond a small send buffer,
//! and one that fell behind catches up from the journal without loss.
//!
//! Besides the log-ordered entries, the journal indexes them per event (its
//! versions, in order) and numbers events by first appearance (their
//! *ordinal*), which is what history queries page over.
//!
//! Memory: the journal lives in a local SQLite file, not in memory, so the
//! process stays the same size however long the log grows. The file is a
//! cache of the log, never a source of truth: it is created empty each time
//! the journal opens (whatever was there before, even a corrupted file, is
//! thrown away) and filled by replaying the log. By default it is a private
//! temporary database that SQLite unlinks as soon as it is created (nothing
//! is left behind, even after a `kill -9`); with a state directory it is
//! `notify-journal.sqlite` there, guarded by a lock file so two processes
//! never share it. What stays in memory is bounded: SQLite's page cache
//! ([`PAGE_CACHE_KIB`]) and the most recent entries ([`TAIL_BUDGET_BYTES`]),
//! so live subscribers, which all read the same few newest entries, are
//! served without touching the file or decoding anything.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use parley_domain::pb::{SubscribeResponse, TalksEvent, UpdateKind};
use parley_domain::{Event, time};
use parley_log::{LogError, RecordStream};
use parley_runtime::{DecodedRecord, Handled, HandlerError, RecordHandler, decode_record};
use prost::Message;
use prost_types::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

/// SQLite page cache of the journal file, in KiB.
pub const PAGE_CACHE_KIB: i64 = 2048;

/// Estimated in-memory size of the newest entries kept decoded for live readers.
pub const TAIL_BUDGET_BYTES: usize = 2 << 20;

/// Name of the journal file inside a state directory.
pub const FILE_NAME: &str = "notify-journal.sqlite";

/// Why the journal could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused.
    #[error("journal storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state directory or its lock file.
    #[error("journal state directory {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Another process holds the state directory.
    #[error("journal state directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A stored entry does not decode (the file was damaged while open).
    #[error("journal entry does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl From<parley_log::read_model::ReadModelError> for JournalError {
    fn from(error: parley_log::read_model::ReadModelError) -> Self {
        use parley_log::read_model::ReadModelError;
        match error {
            ReadModelError::Sqlite(e) => Self::Sqlite(e),
            ReadModelError::Io { path, source } => Self::Io { path, source },
            ReadModelError::Locked(dir) => Self::Locked(dir),
        }
    }
}

/// The journal of talks-event changes.
pub struct Journal {
    db: Mutex<Connection>,
    tail: RwLock<Tail>,
    changed: watch::Sender<u64>,
    /// Held for the journal's lifetime when it lives in a state directory.
    _lock: Option<std::fs::File>,
}

/// What the journal keeps in memory: counters and the newest entries.
struct Tail {
    /// Newest entries, in log order.
    entries: VecDeque<Arc<SubscribeResponse>>,
    /// Estimated size of `entries`.
    bytes: usize,
    /// Every entry with a sequence above this one is in `entries`.
    uncached_through: u64,
    /// Last log sequence applied.
    applied: u64,
    /// Number of entries.
    len: u64,
    /// Number of distinct events (the next ordinal).
    events: u64,
}

impl Tail {
    /// Whether every entry after `cursor` is in memory.
    fn covers(&self, cursor: u64) -> bool {
        cursor >= self.uncached_through
    }

    fn push(&mut self, entry: Arc<SubscribeResponse>) {
        self.bytes += estimated_size(&entry);
        self.entries.push_back(entry);
        while self.bytes > TAIL_BUDGET_BYTES {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= estimated_size(&old);
            self.uncached_through = old.sequence;
        }
    }
}

/// Rough heap size of a decoded entry: strings and vectors of a decoded
/// message take about twice their encoded size.
fn estimated_size(entry: &SubscribeResponse) -> usize {
    2 * entry.encoded_len() + 256
}

/// One change to an event as the journal recorded it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The journal entry (also what subscribers receive).
    pub entry: Arc<SubscribeResponse>,
    /// Why, for amendments and retractions that said so; empty otherwise.
    pub reason: String,
}

/// Everything the journal knows about one event.
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

/// What a history query needs of one event without reading all its versions:
/// when it entered the log and its latest change.
#[derive(Debug, Clone)]
pub struct EventSummary {
    /// Position in first-recorded order.
    pub ordinal: u64,
    /// Sequence of the record that first reported it.
    pub first_sequence: u64,
    /// When it was first recorded.
    pub first_recorded_at: Option<Timestamp>,
    /// Its latest change.
    pub latest: SubscribeResponse,
}

impl EventSummary {
    /// The current state.
    pub fn state(&self) -> Option<&TalksEvent> {
        self.latest.event.as_ref()
    }
}

/// Which way [`Journal::events_from`] walks the ordinals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Increasing ordinals (oldest first).
    Ascending,
    /// Decreasing ordinals (newest first).
    Descending,
}

const SCHEMA: &str = "
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        sequence INTEGER NOT NULL,
        ordinal INTEGER NOT NULL,
        at_secs INTEGER NOT NULL,
        at_nanos INTEGER NOT NULL,
        reason TEXT NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX entries_by_sequence ON entries (sequence, id);
    CREATE INDEX entries_by_ordinal ON entries (ordinal, id);
    CREATE TABLE events (
        ordinal INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        first_sequence INTEGER NOT NULL,
        first_secs INTEGER NOT NULL,
        first_nanos INTEGER NOT NULL,
        latest BLOB NOT NULL
    );
";

impl Default for Journal {
    /// A journal in a private temporary file.
    ///
    /// # Panics
    /// When SQLite cannot create a temporary database (no writable temp dir);
    /// use [`Journal::open`] to handle that.
    fn default() -> Self {
        Self::open(None, "").expect("cannot create the notify journal's temporary database")
    }
}

impl Journal {
    /// An empty journal: in `state_dir` (created if needed, previous content
    /// discarded) or, without one, in a private temporary file.
    /// `log_id` names the log it is built from (a leftover file built from
    /// another log is reported when discarded).
    pub fn open(state_dir: Option<&Path>, log_id: &str) -> Result<Self, JournalError> {
        let parley_log::read_model::ReadModelFile { conn, lock } =
            parley_log::read_model::open_read_model(state_dir, FILE_NAME, PAGE_CACHE_KIB, log_id)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            db: Mutex::new(conn),
            tail: RwLock::new(Tail {
                entries: VecDeque::new(),
                bytes: 0,
                uncached_through: 0,
                applied: 0,
                len: 0,
                events: 0,
            }),
            changed: watch::channel(0).0,
            _lock: lock,
        })
    }

    /// Applies every record of a replay stream; returns how many records were read.
    pub async fn replay(&self, mut records: RecordStream) -> Result<u64, LogError> {
        let mut count = 0;
        while let Some(record) = records.next().await {
            let record = record?;
            count += 1;
            match decode_record(&record) {
                Ok(decoded) => {
                    self.apply(&decoded)
                        .map_err(|e| LogError::Backend(e.to_string()))?;
                }
                Err(e) => tracing::error!(error = %e, "skipping undecodable record during replay"),
            }
        }
        Ok(count)
    }

    /// Applies one record; records at or below the last applied sequence are ignored
    /// (redeliveries). Returns the number of journal entries added. On error
    /// nothing of the record is applied, so it can be applied again.
    pub fn apply(&self, record: &DecodedRecord) -> Result<usize, JournalError> {
        let mut db = self.db.lock().expect("journal lock poisoned");
        let (applied, mut next_ordinal) = {
            let tail = self.tail.read().expect("journal lock poisoned");
            (tail.applied, tail.events)
        };
        if record.sequence <= applied {
            return Ok(0);
        }
        let recorded_at = time::to_timestamp(record.recorded_at);
        let tx = db.transaction()?;
        let mut added = Vec::new();
        for (_, event) in record.events() {
            let mut reason = String::new();
            let current = |id: &str| latest_state(&tx, id);
            let change = match event {
                Event::TalksEventRecorded(recorded) => {
                    recorded.event.clone().map(|e| (UpdateKind::Recorded, e))
                }
                Event::TalksEventCorroborated(c) => current(&c.event_id)?.map(|mut e| {
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
                    current(&r.event_id)?.map(|mut e| {
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
            let entry = SubscribeResponse {
                sequence: record.sequence,
                idempotency_key: format!("{}:v{}", state.event_id, state.version),
                kind: kind as i32,
                event: Some(state),
                recorded_at: Some(recorded_at),
                lagged_from: 0,
            };
            let body = entry.encode_to_vec();
            let known: Option<i64> = tx
                .prepare_cached("SELECT ordinal FROM events WHERE event_id = ?1")?
                .query_row([&event_id], |row| row.get(0))
                .optional()?;
            let ordinal = match known {
                Some(ordinal) => {
                    tx.prepare_cached("UPDATE events SET latest = ?2 WHERE ordinal = ?1")?
                        .execute(params![ordinal, body])?;
                    ordinal
                }
                None => {
                    let ordinal = to_sql(next_ordinal);
                    next_ordinal += 1;
                    tx.prepare_cached(
                        "INSERT INTO events (ordinal, event_id, first_sequence, first_secs, first_nanos, latest)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        ordinal,
                        event_id,
                        to_sql(record.sequence),
                        recorded_at.seconds,
                        recorded_at.nanos,
                        body
                    ])?;
                    ordinal
                }
            };
            tx.prepare_cached(
                "INSERT INTO entries (sequence, ordinal, at_secs, at_nanos, reason, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                to_sql(record.sequence),
                ordinal,
                recorded_at.seconds,
                recorded_at.nanos,
                reason,
                body
            ])?;
            added.push(Arc::new(entry));
        }
        tx.commit()?;
        let count = added.len();
        let len = {
            let mut tail = self.tail.write().expect("journal lock poisoned");
            tail.applied = record.sequence;
            tail.events = next_ordinal;
            tail.len += count as u64;
            for entry in added {
                tail.push(entry);
            }
            tail.len
        };
        drop(db);
        self.changed.send_replace(record.sequence);
        metrics::gauge!("parley_notify_journal_entries").set(len as f64);
        Ok(count)
    }

    /// Entries with a sequence greater than `cursor`, at most `limit`.
    ///
    /// A storage error is logged and reads as "nothing new yet": the caller's
    /// cursor stays put and the next change retries.
    pub fn after(&self, cursor: u64, limit: usize) -> Vec<Arc<SubscribeResponse>> {
        {
            let tail = self.tail.read().expect("journal lock poisoned");
            if tail.covers(cursor) {
                let start = tail.entries.partition_point(|e| e.sequence <= cursor);
                return tail.entries.range(start..).take(limit).cloned().collect();
            }
        }
        self.read_entries(
            "SELECT body FROM entries WHERE sequence > ?1 ORDER BY sequence, id LIMIT ?2",
            cursor,
            limit,
        )
    }

    /// The entries of the record at `sequence` (empty if it added none).
    pub fn at_sequence(&self, sequence: u64) -> Vec<Arc<SubscribeResponse>> {
        {
            let tail = self.tail.read().expect("journal lock poisoned");
            if tail.covers(sequence.saturating_sub(1)) {
                return tail
                    .entries
                    .iter()
                    .filter(|e| e.sequence == sequence)
                    .cloned()
                    .collect();
            }
        }
        self.read_entries(
            "SELECT body FROM entries WHERE sequence = ?1 ORDER BY id LIMIT ?2",
            sequence,
            usize::MAX,
        )
    }

    fn read_entries(&self, sql: &str, sequence: u64, limit: usize) -> Vec<Arc<SubscribeResponse>> {
        let db = self.db.lock().expect("journal lock poisoned");
        let read = || -> Result<Vec<Arc<SubscribeResponse>>, JournalError> {
            let mut statement = db.prepare_cached(sql)?;
            let mut rows = statement.query(params![to_sql(sequence), to_sql(limit as u64)])?;
            let mut entries = Vec::new();
            while let Some(row) = rows.next()? {
                let body: Vec<u8> = row.get(0)?;
                entries.push(Arc::new(SubscribeResponse::decode(body.as_slice())?));
            }
            Ok(entries)
        };
        read().unwrap_or_else(|e| {
            tracing::error!(error = %e, sequence, "cannot read the notify journal");
            Vec::new()
        })
    }

    /// Number of entries with a sequence greater than `cursor` (a storage
    /// error is logged and reads as 0).
    pub fn count_after(&self, cursor: u64) -> u64 {
        {
            let tail = self.tail.read().expect("journal lock poisoned");
            if tail.covers(cursor) {
                let start = tail.entries.partition_point(|e| e.sequence <= cursor);
                return (tail.entries.len() - start) as u64;
            }
        }
        let db = self.db.lock().expect("journal lock poisoned");
        db.prepare_cached("SELECT count(*) FROM entries WHERE sequence > ?1")
            .and_then(|mut statement| {
                statement.query_row(params![to_sql(cursor)], |row| row.get::<_, i64>(0))
            })
            .map(|count| count.max(0) as u64)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, cursor, "cannot count the notify journal");
                0
            })
    }

    /// The cursor to start from to see every entry recorded at or after `time`.
    pub fn cursor_for_time(&self, time: DateTime<Utc>) -> u64 {
        let db = self.db.lock().expect("journal lock poisoned");
        let len = self.len() as i64;
        let at = |id: i64| -> rusqlite::Result<(i64, Timestamp)> {
            db.prepare_cached("SELECT sequence, at_secs, at_nanos FROM entries WHERE id = ?1")?
                .query_row([id], |row| {
                    Ok((
                        row.get(0)?,
                        Timestamp {
                            seconds: row.get(1)?,
                            nanos: row.get(2)?,
                        },
                    ))
                })
        };
        // Binary search over entry ids (1..=len, in log order) for the first
        // entry recorded at or after `time`.
        let search = || -> rusqlite::Result<u64> {
            let (mut low, mut high) = (1, len + 1);
            while low < high {
                let mid = low + (high - low) / 2;
                let (_, ts) = at(mid)?;
                if time::from_timestamp(&ts).is_some_and(|t| t < time) {
                    low = mid + 1;
                } else {
                    high = mid;
                }
            }
            Ok(match low {
                1 => 0,
                first => from_sql(at(first - 1)?.0),
            })
        };
        search().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the notify journal; starting live");
            self.applied_sequence()
        })
    }

    /// Last log sequence applied.
    pub fn applied_sequence(&self) -> u64 {
        self.tail.read().expect("journal lock poisoned").applied
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tail.read().expect("journal lock poisoned").len as usize
    }

    /// Whether the journal is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct events.
    pub fn event_count(&self) -> u64 {
        self.tail.read().expect("journal lock poisoned").events
    }

    /// Current state of one event.
    pub fn event(&self, event_id: &str) -> Result<Option<TalksEvent>, JournalError> {
        let db = self.db.lock().expect("journal lock poisoned");
        latest_state(&db, event_id)
    }

    /// Every change to one event, in log order.
    pub fn history(&self, event_id: &str) -> Result<Option<EventHistory>, JournalError> {
        let db = self.db.lock().expect("journal lock poisoned");
        let Some(ordinal) = db
            .prepare_cached("SELECT ordinal FROM events WHERE event_id = ?1")?
            .query_row([event_id], |row| row.get::<_, i64>(0))
            .optional()?
        else {
            return Ok(None);
        };
        let mut statement =
            db.prepare_cached("SELECT body, reason FROM entries WHERE ordinal = ?1 ORDER BY id")?;
        let mut rows = statement.query([ordinal])?;
        let mut changes = Vec::new();
        while let Some(row) = rows.next()? {
            let body: Vec<u8> = row.get(0)?;
            changes.push(Change {
                entry: Arc::new(SubscribeResponse::decode(body.as_slice())?),
                reason: row.get(1)?,
            });
        }
        Ok((!changes.is_empty()).then(|| EventHistory {
            ordinal: from_sql(ordinal),
            changes,
        }))
    }

    /// Up to `limit` events in ordinal order starting at ordinal `from`
    /// (included) and going `direction`. History queries page with it in
    /// small batches, so appends never wait long behind a query.
    pub fn events_from(
        &self,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<EventSummary>, JournalError> {
        let db = self.db.lock().expect("journal lock poisoned");
        let sql = match direction {
            Direction::Ascending => {
                "SELECT ordinal, first_sequence, first_secs, first_nanos, latest FROM events
                 WHERE ordinal >= ?1 ORDER BY ordinal LIMIT ?2"
            }
            Direction::Descending => {
                "SELECT ordinal, first_sequence, first_secs, first_nanos, latest FROM events
                 WHERE ordinal <= ?1 ORDER BY ordinal DESC LIMIT ?2"
            }
        };
        let mut statement = db.prepare_cached(sql)?;
        let mut rows = statement.query(params![to_sql(from), to_sql(limit as u64)])?;
        let mut events = Vec::new();
        while let Some(row) = rows.next()? {
            let body: Vec<u8> = row.get(4)?;
            events.push(EventSummary {
                ordinal: from_sql(row.get(0)?),
                first_sequence: from_sql(row.get(1)?),
                first_recorded_at: Some(Timestamp {
                    seconds: row.get(2)?,
                    nanos: row.get(3)?,
                }),
                latest: SubscribeResponse::decode(body.as_slice())?,
            });
        }
        Ok(events)
    }

    /// Receives the applied sequence whenever it grows.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Latest state of one event, as stored.
fn latest_state(db: &Connection, event_id: &str) -> Result<Option<TalksEvent>, JournalError> {
    let body: Option<Vec<u8>> = db
        .prepare_cached("SELECT latest FROM events WHERE event_id = ?1")?
        .query_row([event_id], |row| row.get(0))
        .optional()?;
    Ok(match body {
        Some(body) => SubscribeResponse::decode(body.as_slice())?.event,
        None => None,
    })
}

/// SQLite integers are signed: sequences and counts above `i64::MAX` saturate.
fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn from_sql(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl RecordHandler for Journal {
    async fn handle(&self, record: &DecodedRecord) -> Result<Handled, HandlerError> {
        let added = self
            .apply(record)
            .map_err(|e| HandlerError::Transient(e.to_string()))?;
        Ok(if added > 0 {
            Handled::Done
        } else {
            Handled::Skipped
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use parley_domain::pb::{self, Evidence};
    use parley_log::{AggregateRef, EventLog, ExpectedVersion, Filter, ReadMode, StartAt};
    use parley_runtime::EnvelopeBuilder;

    fn evidence(doc: &str, text_len: usize) -> Evidence {
        Evidence {
            document_id: doc.into(),
            text: "x".repeat(text_len),
            ..Default::default()
        }
    }

    /// Record `i` of a small synthetic log: events recorded, corroborated
    /// (with large evidence so the in-memory tail overflows), retracted.
    fn event_of(i: usize) -> (String, Event) {
        let id = format!("evt-{}", i % 7);
        let event = match i {
            _ if i < 7 => Event::TalksEventRecorded(pb::TalksEventRecorded {
                event: Some(pb::TalksEvent {
                    event_id: id.clone(),
                    version: 1,
                    source_count: 1,
                    evidence: vec![evidence(&format!("doc-{i}"), 100)],
                    ..Default::default()
                }),
            }),
            _ if i.is_multiple_of(11) => Event::TalksEventRetracted(pb::TalksEventRetracted {
                event_id: id.clone(),
                reason: format!("reason {i}"),
                version: i as u64,
            }),
            _ => Event::TalksEventCorroborated(pb::TalksEventCorroborated {
                event_id: id.clone(),
                evidence: Some(evidence(&format!("doc-{i}"), 2_000)),
                source_count: i as u32,
                version: i as u64,
                ..Default::default()
            }),
        };
        (id, event)
    }

    fn decoded(i: usize) -> DecodedRecord {
        let (id, event) = event_of(i);
        let builder = EnvelopeBuilder::new(AggregateRef::new("talks", &id).unwrap());
        DecodedRecord {
            sequence: i as u64 + 1,
            aggregate: builder.aggregate().clone(),
            recorded_at: Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap()
                + chrono::Duration::seconds(i as i64),
            envelopes: vec![builder.envelope(format!("m{i}"), event)],
            skipped: vec![],
        }
    }

    /// Every page of `after` from every cursor, as comparable values.
    fn pages(journal: &Journal, last: u64) -> Vec<Vec<SubscribeResponse>> {
        (0..=last)
            .map(|cursor| {
                journal
                    .after(cursor, 5)
                    .into_iter()
                    .map(|e| (*e).clone())
                    .collect()
            })
            .collect()
    }

    const RECORDS: usize = 400;

    #[test]
    fn entries_evicted_from_memory_are_read_back_from_disk() {
        let journal = Journal::default();
        for i in 0..RECORDS {
            assert_eq!(journal.apply(&decoded(i)).unwrap(), 1);
            // A redelivery adds nothing.
            assert_eq!(journal.apply(&decoded(i)).unwrap(), 0);
        }
        assert_eq!(journal.len(), RECORDS);
        assert_eq!(journal.event_count(), 7);
        {
            let tail = journal.tail.read().unwrap();
            assert!(tail.uncached_through > 0, "the tail never overflowed");
            assert!(tail.bytes <= TAIL_BUDGET_BYTES);
            assert!(tail.entries.len() < RECORDS);
        }
        // Old cursors come from disk, recent ones from memory: both in log order, whole.
        for cursor in [0, 1, 57, tail_start(&journal) - 1, RECORDS as u64 - 3] {
            let page = journal.after(cursor, 10);
            let expected: Vec<u64> = (cursor + 1..=(cursor + 10).min(RECORDS as u64)).collect();
            assert_eq!(
                page.iter().map(|e| e.sequence).collect::<Vec<_>>(),
                expected,
                "cursor {cursor}"
            );
        }
        assert_eq!(journal.at_sequence(3)[0].sequence, 3);
        assert!(journal.at_sequence(RECORDS as u64 + 1).is_empty());
        // Per-event history: every version in order, reasons kept.
        let history = journal.history("evt-0").unwrap().unwrap();
        assert_eq!(history.ordinal, 0);
        let versions: Vec<u64> = history
            .changes
            .iter()
            .map(|c| c.entry.event.as_ref().unwrap().version)
            .collect();
        assert_eq!(versions[0], 1);
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(
            history
                .changes
                .iter()
                .any(|c| c.reason.starts_with("reason "))
        );
        // Corroborations accumulate evidence on the stored state.
        let state = journal.event("evt-1").unwrap().unwrap();
        assert_eq!(
            state.evidence.len(),
            history_len(&journal, "evt-1") - retractions(&journal, "evt-1")
        );
        assert!(journal.history("nope").unwrap().is_none());
        // Time → cursor: the entry recorded at second 100 has sequence 101.
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 0, 1, 40).unwrap();
        assert_eq!(journal.cursor_for_time(at), 100);
        assert_eq!(
            journal.cursor_for_time(Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap()),
            0
        );
    }

    fn tail_start(journal: &Journal) -> u64 {
        journal.tail.read().unwrap().uncached_through
    }

    fn history_len(journal: &Journal, id: &str) -> usize {
        journal.history(id).unwrap().unwrap().changes.len()
    }

    fn retractions(journal: &Journal, id: &str) -> usize {
        journal
            .history(id)
            .unwrap()
            .unwrap()
            .changes
            .iter()
            .filter(|c| c.entry.kind == UpdateKind::Retracted as i32)
            .count()
    }

    #[test]
    fn events_are_listed_by_ordinal_both_ways() {
        let journal = Journal::default();
        for i in 0..30 {
            journal.apply(&decoded(i)).unwrap();
        }
        let up = journal.events_from(2, Direction::Ascending, 3).unwrap();
        assert_eq!(up.iter().map(|e| e.ordinal).collect::<Vec<_>>(), [2, 3, 4]);
        let down = journal
            .events_from(u64::MAX, Direction::Descending, 100)
            .unwrap();
        assert_eq!(
            down.iter().map(|e| e.ordinal).collect::<Vec<_>>(),
            [6, 5, 4, 3, 2, 1, 0]
        );
        let evt0 = down.last().unwrap();
        assert_eq!(evt0.first_sequence, 1);
        assert_eq!(
            evt0.latest.sequence,
            journal.history("evt-0").unwrap().unwrap().latest().sequence
        );
    }

    async fn sqlite_log(dir: &Path) -> parley_log::sqlite::SqliteLog {
        let log = parley_log::sqlite::SqliteLog::open(dir).unwrap();
        for i in 0..RECORDS {
            let (id, event) = event_of(i);
            let aggregate = AggregateRef::new("talks", &id).unwrap();
            let envelope = EnvelopeBuilder::new(aggregate.clone()).envelope(format!("m{i}"), event);
            parley_runtime::append_events(
                &log,
                aggregate,
                ExpectedVersion::Any,
                format!("m{i}"),
                vec![envelope],
            )
            .await
            .unwrap();
        }
        log
    }

    async fn replayed(log: &parley_log::sqlite::SqliteLog, dir: Option<&Path>) -> Journal {
        let journal = Journal::open(dir, "test").unwrap();
        let stream = log
            .read(
                StartAt::Beginning,
                Filter::types(["talks"]),
                ReadMode::ToEnd,
            )
            .await
            .unwrap();
        assert_eq!(journal.replay(stream).await.unwrap(), RECORDS as u64);
        journal
    }

    #[tokio::test]
    async fn a_journal_rebuilt_from_the_log_reads_the_same_and_never_trusts_old_files() {
        let log_dir = tempfile::tempdir().unwrap();
        let log = sqlite_log(log_dir.path()).await;
        let state = tempfile::tempdir().unwrap();

        // Live: followed record by record, in a state directory.
        let live = Journal::open(Some(state.path()), "test").unwrap();
        let mut records = log
            .read(
                StartAt::Beginning,
                Filter::types(["talks"]),
                ReadMode::ToEnd,
            )
            .await
            .unwrap();
        while let Some(record) = records.next().await {
            live.apply(&decode_record(&record.unwrap()).unwrap())
                .unwrap();
        }
        let expected = pages(&live, RECORDS as u64);
        assert_eq!(expected[0].len(), 5);
        let expected_history = live.history("evt-3").unwrap().unwrap();

        // A second process cannot use the same folder while the first lives.
        assert!(matches!(
            Journal::open(Some(state.path()), "test"),
            Err(JournalError::Locked(_))
        ));
        drop(live);

        // Reopened after a crash that left a damaged file: rebuilt from the log, same pages.
        std::fs::write(state.path().join(FILE_NAME), b"not a database at all").unwrap();
        let reopened = replayed(&log, Some(state.path())).await;
        assert_eq!(pages(&reopened, RECORDS as u64), expected);
        drop(reopened);

        // A leftover complete file from another log is not trusted either.
        let other = Journal::open(Some(state.path()), "test").unwrap();
        other.apply(&decoded(0)).unwrap();
        drop(other);
        let rebuilt = replayed(&log, Some(state.path())).await;
        assert_eq!(pages(&rebuilt, RECORDS as u64), expected);
        drop(rebuilt);

        // And in a private temporary file.
        let temporary = replayed(&log, None).await;
        assert_eq!(pages(&temporary, RECORDS as u64), expected);
        let history = temporary.history("evt-3").unwrap().unwrap();
        assert_eq!(history.ordinal, expected_history.ordinal);
        assert_eq!(history.changes.len(), expected_history.changes.len());
        for (a, b) in history.changes.iter().zip(&expected_history.changes) {
            assert_eq!(*a.entry, *b.entry);
            assert_eq!(a.reason, b.reason);
        }
    }
}
