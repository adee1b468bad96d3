//! The resolver's on-disk state: what grows with every document.
//!
//! Entities and a small key per event stay in memory (see
//! [`parley_resolve::Resolver`]); the full state of each event with every
//! evidence, the documents reporting it, which extractions were already
//! resolved and which events each document reported live in one local
//! SQLite file, so the service stays the same size however many documents
//! it has resolved.
//!
//! The file is a cache of the log, never a source of truth: it is created
//! empty when the service starts (an earlier file, complete, half-written or
//! damaged, is thrown away) and filled by replaying the log. By default it is
//! a private temporary database that SQLite unlinks as soon as it is created;
//! with a state directory it is `resolver-state.sqlite` there, guarded by a
//! lock file so two processes never share it. Memory used by SQLite is its
//! page cache ([`PAGE_CACHE_KIB`]).
//!
//! The resolver cannot decide anything on a state it failed to record: a
//! failed write or read of the file (disk full, I/O error, a damaged entry)
//! is reported as a typed [`parley_resolve::StoreError`]; the service then
//! stops deciding, reports NOT_SERVING, and the next start rebuilds the
//! state from the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parley_domain::model::TalksEvent;
use parley_resolve::EventStore;
use parley_resolve::StoreError as EventStoreError;
use rusqlite::{Connection, OptionalExtension, params};

/// SQLite page cache of the state file, in KiB.
pub const PAGE_CACHE_KIB: i64 = 2048;

/// Name of the state file inside a state directory.
pub const FILE_NAME: &str = "resolver-state.sqlite";

/// Why the state file could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("resolver state storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state directory or its lock file.
    #[error("resolver state directory {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Another process holds the state directory.
    #[error("resolver state directory {0} is in use by another process")]
    Locked(PathBuf),
    /// A stored event does not decode (the file was damaged while open).
    #[error("stored event does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

impl From<parley_log::read_model::ReadModelError> for StoreError {
    fn from(error: parley_log::read_model::ReadModelError) -> Self {
        use parley_log::read_model::ReadModelError;
        match error {
            ReadModelError::Sqlite(e) => Self::Sqlite(e),
            ReadModelError::Io { path, source } => Self::Io { path, source },
            ReadModelError::Locked(dir) => Self::Locked(dir),
        }
    }
}

const SCHEMA: &str = "
    CREATE TABLE events (event_id TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE sources (
        event_id TEXT NOT NULL,
        document_id TEXT NOT NULL,
        PRIMARY KEY (event_id, document_id)
    ) WITHOUT ROWID;
    CREATE TABLE handled (extraction_id TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE documents (document_id TEXT PRIMARY KEY, event_ids TEXT NOT NULL) WITHOUT ROWID;
";

/// The open state file, shared by the event store and the document table.
#[derive(Clone)]
pub struct StateFile {
    db: Arc<Mutex<Connection>>,
    /// Held while the file is in use, when it lives in a state directory.
    _lock: Option<Arc<std::fs::File>>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").finish_non_exhaustive()
    }
}

impl StateFile {
    /// An empty state: in `state_dir` (created if needed, previous content
    /// discarded) or, without one, in a private temporary file.
    /// `log_id` names the log it is built from (a leftover file built from
    /// another log is reported when discarded).
    pub fn open(state_dir: Option<&Path>, log_id: &str) -> Result<Self, StoreError> {
        let parley_log::read_model::ReadModelFile { conn, lock } =
            parley_log::read_model::open_read_model(state_dir, FILE_NAME, PAGE_CACHE_KIB, log_id)?;
        let lock = lock.map(Arc::new);
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            db: Arc::new(Mutex::new(conn)),
            _lock: lock,
        })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        f(&self.db.lock().expect("resolver state lock poisoned"))
    }

    /// The event store over this file.
    pub fn events(&self) -> SqliteEvents {
        SqliteEvents { file: self.clone() }
    }

    /// Whether the extraction with this id was already resolved.
    pub fn is_handled(&self, extraction_id: &str) -> Result<bool, StoreError> {
        self.with(|db| {
            Ok(db
                .prepare_cached("SELECT 1 FROM handled WHERE extraction_id = ?1")?
                .query_row([extraction_id], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    /// Records a resolved document: the extraction it came from and the
    /// events it reports (its latest resolution wins).
    pub fn record_document(
        &self,
        extraction_id: &str,
        document_id: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError> {
        let ids = serde_json::to_string(event_ids)?;
        self.with(|db| {
            db.prepare_cached("INSERT OR IGNORE INTO handled (extraction_id) VALUES (?1)")?
                .execute([extraction_id])?;
            db.prepare_cached(
                "INSERT OR REPLACE INTO documents (document_id, event_ids) VALUES (?1, ?2)",
            )?
            .execute(params![document_id, ids])?;
            Ok(())
        })
    }

    /// The events a resolved document reported at its latest resolution.
    pub fn document_events(&self, document_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let ids: Option<String> = self.with(|db| {
            Ok(db
                .prepare_cached("SELECT event_ids FROM documents WHERE document_id = ?1")?
                .query_row([document_id], |row| row.get(0))
                .optional()?)
        })?;
        Ok(ids.map(|ids| serde_json::from_str(&ids)).transpose()?)
    }

    /// Number of resolved documents.
    pub fn document_count(&self) -> Result<u64, StoreError> {
        self.with(|db| {
            Ok(db
                .prepare_cached("SELECT COUNT(*) FROM documents")?
                .query_row([], |row| row.get::<_, i64>(0))? as u64)
        })
    }
}

impl From<StoreError> for EventStoreError {
    /// A busy or locked file may answer later; a damaged entry is corrupt;
    /// anything else (I/O, a full disk, a missing table) is permanent.
    fn from(error: StoreError) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match &error {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, DatabaseBusy | DatabaseLocked) =>
            {
                Self::Retryable(error.to_string())
            }
            StoreError::Decode(_) => Self::Corrupt(error.to_string()),
            _ => Self::Permanent(error.to_string()),
        }
    }
}

/// The resolver's [`EventStore`] in the state file.
#[derive(Debug)]
pub struct SqliteEvents {
    file: StateFile,
}

impl SqliteEvents {
    fn try_load(&self, event_id: &str) -> Result<Option<TalksEvent>, StoreError> {
        let state: Option<Vec<u8>> = self.file.with(|db| {
            Ok(db
                .prepare_cached("SELECT state FROM events WHERE event_id = ?1")?
                .query_row([event_id], |row| row.get(0))
                .optional()?)
        })?;
        Ok(state.map(|s| serde_json::from_slice(&s)).transpose()?)
    }

    fn try_save(&self, event: &TalksEvent) -> Result<(), StoreError> {
        let state = serde_json::to_vec(event)?;
        self.file.with(|db| {
            db.prepare_cached("INSERT OR REPLACE INTO events (event_id, state) VALUES (?1, ?2)")?
                .execute(params![event.event_id, state])?;
            Ok(())
        })
    }
}

impl EventStore for SqliteEvents {
    fn load(&self, event_id: &str) -> Result<Option<TalksEvent>, EventStoreError> {
        Ok(self.try_load(event_id)?)
    }

    fn save(&mut self, event: &TalksEvent) -> Result<(), EventStoreError> {
        Ok(self.try_save(event)?)
    }

    fn add_source(&mut self, event_id: &str, document_id: &str) -> Result<bool, EventStoreError> {
        Ok(self.file.with(|db| {
            Ok(db
                .prepare_cached(
                    "INSERT OR IGNORE INTO sources (event_id, document_id) VALUES (?1, ?2)",
                )?
                .execute([event_id, document_id])?
                > 0)
        })?)
    }

    fn has_source(&self, event_id: &str, document_id: &str) -> Result<bool, EventStoreError> {
        Ok(self.file.with(|db| {
            Ok(db
                .prepare_cached("SELECT 1 FROM sources WHERE event_id = ?1 AND document_id = ?2")?
                .query_row([event_id, document_id], |_| Ok(()))
                .optional()?
                .is_some())
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real event, as the extractor reads it, under `id`.
    fn event(id: &str) -> TalksEvent {
        let kb = parley_kb::KnowledgeBase::bundled().unwrap();
        let doc = parley_extract::Document::from_text(
            "a.txt",
            chrono::NaiveDate::from_ymd_opt(2025, 5, 11),
            "Talks set\n\nRussia and Ukraine will meet in Istanbul on Thursday, officials said.",
        );
        let mut event = parley_extract::Extractor::new(&kb)
            .extract(&doc)
            .events
            .remove(0);
        event.event_id = id.into();
        event
    }

    #[test]
    fn events_sources_and_documents_round_trip_and_a_state_dir_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(Some(dir.path()), "test").unwrap();
        // A second process cannot share the folder.
        assert!(matches!(
            StateFile::open(Some(dir.path()), "test"),
            Err(StoreError::Locked(_))
        ));
        let mut events = file.events();
        let e = event("evt-1");
        events.save(&e).unwrap();
        assert_eq!(events.load("evt-1").unwrap(), Some(e.clone()));
        assert_eq!(events.load("evt-2").unwrap(), None);
        assert!(events.add_source("evt-1", "doc-a").unwrap());
        assert!(!events.add_source("evt-1", "doc-a").unwrap());
        assert!(events.has_source("evt-1", "doc-a").unwrap());
        assert!(!events.has_source("evt-1", "doc-b").unwrap());
        assert!(!file.is_handled("x1").unwrap());
        file.record_document("x1", "doc-a", &["evt-1".into()])
            .unwrap();
        file.record_document("x2", "doc-a", &[]).unwrap();
        assert!(file.is_handled("x1").unwrap() && file.is_handled("x2").unwrap());
        assert_eq!(file.document_events("doc-a").unwrap(), Some(vec![]));
        assert_eq!(file.document_count().unwrap(), 1);
        drop(events);
        drop(file);

        // Reopened (even over a damaged file): empty, to be rebuilt from the log.
        std::fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let file = StateFile::open(Some(dir.path()), "test").unwrap();
        assert_eq!(file.events().load("evt-1").unwrap(), None);
        assert!(!file.is_handled("x1").unwrap());
        assert_eq!(file.document_count().unwrap(), 0);
    }

    #[test]
    fn a_failing_file_is_a_typed_error_not_an_exit() {
        let file = StateFile::open(None, "test").unwrap();
        let mut events = file.events();
        events.save(&event("evt-1")).unwrap();
        // A damaged entry is corrupt.
        file.with(|db| {
            db.execute(
                "UPDATE events SET state = x'00ff' WHERE event_id = 'evt-1'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        assert!(matches!(
            events.load("evt-1"),
            Err(EventStoreError::Corrupt(_))
        ));
        // A file that lost its tables fails for good.
        file.with(|db| Ok(db.execute_batch("DROP TABLE events; DROP TABLE sources;")?))
            .unwrap();
        let error = events.save(&event("evt-2")).unwrap_err();
        assert!(matches!(error, EventStoreError::Permanent(_)), "{error:?}");
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("no such table"), "{error}");
        assert!(events.add_source("evt-2", "doc-a").is_err());
    }
}
