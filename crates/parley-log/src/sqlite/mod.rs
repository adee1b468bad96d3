//! The embedded backend of [`EventLog`]: one SQLite database in a data
//! directory, so Parley runs without a NATS server (`parley up`).
//!
//! Layout of the data directory (default [`DEFAULT_DATA_DIR`]):
//! - `LOCK`: held with an exclusive OS lock while a log is open, so two
//!   processes never write the same log;
//! - `log.sqlite3` (plus SQLite's `-wal` and `-shm`): WAL mode with
//!   `synchronous=FULL`, so an append that returned survives a crash or a
//!   power loss. `PRAGMA user_version` holds the schema version.
//!
//! Tables: `events` (the log: `seq` is the global sequence, `msg_id` is
//! unique, which deduplicates forever rather than within a window, and
//! `checksum` a CRC-32 of the record's fields and sequence), `consumers`
//! (each durable consumer's cursor: the highest contiguous settled
//! sequence), `consumer_records` (per-record delivery state above the
//! cursor), `blobs` (content-addressed bodies) and `meta` (the log's id, its
//! head and the sequences a salvage lost: see `meta.rs`).
//!
//! A damaged log is never silently shorter: [`SqliteLog::open`] runs bounded
//! checks and refuses a log that does not verify, every record read is
//! checked against its checksum, and a read that finds a sequence missing
//! before the head fails naming the file, the first bad sequence and how
//! many records are unreadable ([`verify`] tells how, and what each check
//! costs). [`verify`] and [`salvage`] are the repair path (`parley log
//! verify`, `parley log salvage`).
//!
//! Every SQLite call runs on tokio's blocking pool. Writes go through one
//! connection behind a mutex, so appends are serialised and each append (or
//! `append_many` call) is one transaction. Reads use a second connection,
//! which WAL lets run alongside the writer. Live (`Follow`) readers and
//! durable consumers wait on a `watch` channel carrying the last committed
//! sequence, then query the table from their own cursor in bounded batches.

mod append;
mod blobs;
mod consumer;
mod meta;
mod read;
mod row;
mod salvage;
mod verify;

pub use meta::Lost;
pub use salvage::{SalvageReport, salvage};
pub use verify::{LostRecords, VerifyReport, verify};

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::watch;

use consumer::ConsumerShared;
use meta::Meta;

use crate::{
    AggregateRef, AppendRequest, Appended, BlobRef, ConsumerOptions, DurableConsumer, EventLog,
    Filter, LogError, LogRecord, ReadMode, RecordStream, StartAt,
};

/// Data directory callers use when none is configured.
pub const DEFAULT_DATA_DIR: &str = "./parley-data";

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "log.sqlite3";

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Schema version this build writes; a database with a higher one is refused
/// (an older Parley must not guess at a newer layout).
pub const SCHEMA_VERSION: i64 = 2;

/// Largest payload of one record; bigger bodies go to the blob table.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Bucket name in [`BlobRef`]s, the JetStream backend's default, so blob
/// references in payloads mean the same on both backends.
pub const BLOB_BUCKET: &str = "parley-blobs";

/// Records per query of a reader or consumer: bounds memory and how long one
/// query holds the reader connection.
const BATCH: usize = 256;

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// [`EventLog`] in a local SQLite database. Cheap to clone: clones share the
/// connections; the directory lock is released when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// The database file, named in errors.
    path: PathBuf,
    /// What the log knew about itself when opened (its head moves on in
    /// `appended`).
    meta: Meta,
    writer: Mutex<Writer>,
    reader: Mutex<Connection>,
    /// Last committed sequence; readers and consumers wait on it.
    appended: watch::Sender<u64>,
    /// In-flight state of the durable consumers opened in this process, by name.
    consumers: Mutex<HashMap<String, Arc<ConsumerShared>>>,
    /// Held (locked) for as long as the log is open.
    _lock: File,
}

/// The write connection and what the next append needs to know.
struct Writer {
    conn: Connection,
    last_sequence: u64,
    /// Largest `recorded_at` so far: times never go backwards, so a read by
    /// time can start at the first record at or after it.
    last_time: i64,
}

impl std::fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLog")
            .field("dir", &self.inner.dir)
            .field("last_sequence", &*self.inner.appended.borrow())
            .finish()
    }
}

impl SqliteLog {
    /// Opens (creating if needed) the log in `dir`: locks the directory,
    /// checks the schema version, creates or migrates the tables, and
    /// verifies the file (see [`verify`]'s bounded checks).
    ///
    /// Fails with [`LogError::DataDir`] naming the directory when another
    /// process holds it, when it is not writable, or when a newer Parley
    /// wrote the database (which is then left untouched); with
    /// [`LogError::Corrupt`] naming the file, the first bad sequence and how
    /// many records are unreadable when the log does not verify.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let lock = lock_dir(dir)?;
        let data_dir_error = |reason: String| LogError::DataDir {
            dir: dir.display().to_string(),
            reason,
        };
        let path = dir.join(DATABASE_FILE);
        let db_error = |e: rusqlite::Error| data_dir_error(format!("{}: {e}", path.display()));
        let mut writer = Connection::open(&path).map_err(db_error)?;
        // Read the version before anything may write to the file.
        let version: i64 = writer
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db_error)?;
        if version > SCHEMA_VERSION {
            drop(writer);
            lock.release_if_new();
            return Err(data_dir_error(format!(
                "{} was written by a newer Parley (schema version {version}, this build knows up \
                 to {SCHEMA_VERSION}); upgrade Parley or use another data directory. Nothing was changed.",
                path.display()
            )));
        }
        let config_error = |e: String| data_dir_error(format!("{}: {e}", path.display()));
        configure(&writer, true).map_err(config_error)?;
        let in_file = |e: LogError| e.in_file(&path);
        meta::create_or_migrate(&mut writer, version).map_err(in_file)?;
        let meta = Meta::load(&writer).map_err(in_file)?;
        if version > 0 {
            verify::quick_check(&writer, &path, &meta)?;
        }
        verify::check_head(&writer, &meta).map_err(in_file)?;
        let last_time: i64 = writer
            .query_row(
                "SELECT coalesce(max(recorded_at), 0) FROM events",
                [],
                |row| row.get(0),
            )
            .map_err(db_error)?;

        let reader = Connection::open(&path).map_err(db_error)?;
        configure(&reader, false).map_err(config_error)?;

        let last_sequence = meta.head;
        let (appended, _) = watch::channel(last_sequence);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                path,
                meta,
                writer: Mutex::new(Writer {
                    conn: writer,
                    last_sequence,
                    last_time,
                }),
                reader: Mutex::new(reader),
                appended,
                consumers: Mutex::new(HashMap::new()),
                _lock: lock.file,
            }),
        })
    }

    /// The random id this log was given when it was created (or salvaged):
    /// read models record it, to tell when they were built from another log.
    pub fn log_id(&self) -> &str {
        &self.inner.meta.log_id
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The data directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `f` with the write connection on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut writer).map_err(|e| e.in_file(&inner.path))
        })
        .await
        .map_err(|e| LogError::Backend(format!("storage task failed: {e}")))?
    }

    /// Runs `f` with the read connection on the blocking pool.
    async fn read_with<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let reader = inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&reader).map_err(|e| e.in_file(&inner.path))
        })
        .await
        .map_err(|e| LogError::Backend(format!("storage task failed: {e}")))?
    }

    /// Wakes readers and consumers once `sequence` is committed.
    fn notify(&self, sequence: u64) {
        self.inner.appended.send_if_modified(|last| {
            let newer = sequence > *last;
            if newer {
                *last = sequence;
            }
            newer
        });
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        self.append_single(request).await
    }

    async fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<Appended, LogError>> {
        self.append_batch(requests).await
    }

    async fn last_sequence(&self) -> Result<u64, LogError> {
        Ok(*self.inner.appended.borrow())
    }

    async fn aggregate_version(&self, aggregate: &AggregateRef) -> Result<Option<u64>, LogError> {
        self.version_of(aggregate).await
    }

    async fn read_aggregate(&self, aggregate: &AggregateRef) -> Result<Vec<LogRecord>, LogError> {
        self.records_of(aggregate).await
    }

    async fn read(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        self.read_from(start, filter, mode).await
    }

    async fn consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        self.open_consumer(options).await
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        self.store_blob(bytes).await
    }

    async fn get_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        self.load_blob(blob).await
    }

    fn max_payload(&self) -> usize {
        MAX_PAYLOAD
    }

    fn log_id(&self) -> String {
        SqliteLog::log_id(self).to_string()
    }
}

/// SQLite's errors by what a caller can do about them. The file is added by
/// [`LogError::in_file`] where the connection is known.
impl From<rusqlite::Error> for LogError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let storage = |reason: String| LogError::Storage {
            file: String::new(),
            reason,
        };
        let corrupt = |reason: String| LogError::Corrupt {
            file: String::new(),
            sequence: None,
            reason,
        };
        match error.sqlite_error_code() {
            // Another connection holds the lock for longer than the busy timeout.
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                LogError::Unavailable(format!("sqlite: {error}"))
            }
            Some(ErrorCode::DiskFull) => storage(format!(
                "the disk is full ({error}); free space on it, then retry"
            )),
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::OutOfMemory,
            ) => storage(format!("sqlite: {error}")),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                corrupt(format!("sqlite: {error}"))
            }
            _ => match error {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::Utf8Error(..) => {
                    corrupt(format!("a stored value does not read back: {error}"))
                }
                _ => LogError::Backend(format!("sqlite: {error}")),
            },
        }
    }
}

/// The exclusive lock of a data directory, held while its log is open.
struct DirLock {
    file: File,
    path: PathBuf,
    /// Whether the lock file was there before: a refusal removes one this
    /// call created, so a refused directory is left as it was found.
    existed: bool,
}

impl DirLock {
    fn release_if_new(self) {
        if !self.existed {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates `dir` if needed and takes its lock: nothing may touch a
/// directory another process is using. Checks that it is writable.
fn lock_dir(dir: &Path) -> Result<DirLock, LogError> {
    let data_dir_error = |reason: String| LogError::DataDir {
        dir: dir.display().to_string(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(data_dir_error(
            "exists but is not a directory; give a directory (it is created if missing)".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| data_dir_error(format!("cannot create it: {e}")))?;
    let lock_path = dir.join(LOCK_FILE);
    let existed = lock_path.exists();
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            data_dir_error(format!(
                "not writable ({e}); choose a directory Parley may write to"
            ))
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(data_dir_error(format!(
                "already locked by another `parley up`{holder}; stop it or use another data directory"
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(data_dir_error(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )));
        }
    }
    // The lock file may pre-date a permission change: probe for real.
    check_writable(dir).map_err(|e| {
        data_dir_error(format!(
            "not writable ({e}); choose a directory Parley may write to"
        ))
    })?;
    // Who holds the lock, for the message a second process prints.
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());
    Ok(DirLock {
        file: lock,
        path: lock_path,
        existed,
    })
}

/// Pragmas of every connection; only the writer switches the journal mode.
fn configure(conn: &Connection, writer: bool) -> Result<(), String> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    if writer {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal mode is {mode}, not WAL"));
        }
    }
    // FULL: a commit is on disk (WAL fsynced) before the append returns.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())
}

/// Creates and removes a file: the only reliable test (ACLs, read-only
/// mounts, root) of whether SQLite will be able to write its files.
fn check_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".parley-write-probe-{}", std::process::id()));
    File::create(&probe)?;
    std::fs::remove_file(&probe)
}

fn now_nanos() -> i64 {
    to_nanos(Utc::now())
}

/// Nanoseconds since the epoch, saturating outside 1677..2262.
fn to_nanos(time: DateTime<Utc>) -> i64 {
    time.timestamp_nanos_opt()
        .unwrap_or(if time.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}
