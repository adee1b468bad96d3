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
//! unique, which deduplicates forever rather than within a window),
//! `consumers` (each durable consumer's cursor: the highest contiguous
//! settled sequence), `consumer_records` (per-record delivery state above the
//! cursor) and `blobs` (content-addressed bodies).
//!
//! Every SQLite call runs on tokio's blocking pool. Writes go through one
//! connection behind a mutex, so appends are serialised and each append (or
//! `append_many` call) is one transaction. Reads use a second connection,
//! which WAL lets run alongside the writer. Live (`Follow`) readers and
//! durable consumers wait on a `watch` channel carrying the last committed
//! sequence, then query the table from their own cursor in bounded batches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::{
    Acker, AggregateRef, AppendRequest, Appended, BlobRef, ConsumerOptions, Delivery,
    DurableConsumer, EventLog, ExpectedVersion, Filter, LogError, LogRecord, ReadMode,
    RecordStream, StartAt,
};

/// Data directory callers use when none is configured.
pub const DEFAULT_DATA_DIR: &str = "./parley-data";

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "log.sqlite3";

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Schema version this build writes; a database with a higher one is refused
/// (an older Parley must not guess at a newer layout).
pub const SCHEMA_VERSION: i64 = 1;

/// Largest payload of one record; bigger bodies go to the blob table.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Bucket name in [`BlobRef`]s, the JetStream backend's default, so blob
/// references in payloads mean the same on both backends.
pub const BLOB_BUCKET: &str = "parley-blobs";

/// Records per query of a reader or consumer: bounds memory and how long one
/// query holds the reader connection.
const BATCH: usize = 256;

/// How long a nak'ed record waits before it is delivered again (at most;
/// a shorter `ack_wait` wins).
const NAK_DELAY: Duration = Duration::from_secs(1);

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    agg_id      TEXT    NOT NULL,
    msg_id      TEXT    NOT NULL UNIQUE,
    headers     BLOB    NOT NULL,
    payload     BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_aggregate ON events (kind, agg_id, seq);
CREATE INDEX IF NOT EXISTS events_by_time ON events (recorded_at);
CREATE TABLE IF NOT EXISTS consumers (
    name   TEXT    PRIMARY KEY,
    cursor INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS consumer_records (
    name       TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    deliveries INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('delivered', 'acked', 'parked')),
    PRIMARY KEY (name, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    key  TEXT    PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB    NOT NULL
);
";

const RECORD_COLUMNS: &str = "seq, kind, agg_id, msg_id, headers, payload, recorded_at";

/// [`EventLog`] in a local SQLite database. Cheap to clone: clones share the
/// connections; the directory lock is released when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
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
    /// checks the schema version, and creates the tables.
    ///
    /// Fails with [`LogError::DataDir`] naming the directory when another
    /// process holds it, when it is not writable, or when a newer Parley
    /// wrote the database (which is then left untouched).
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let data_dir_error = |reason: String| LogError::DataDir {
            dir: dir.display().to_string(),
            reason,
        };
        if dir.exists() && !dir.is_dir() {
            return Err(data_dir_error(
                "exists but is not a directory; give a directory (it is created if missing)".into(),
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| data_dir_error(format!("cannot create it: {e}")))?;

        // The lock first: nothing below may touch a directory another
        // process is using.
        let lock_path = dir.join(LOCK_FILE);
        // A refusal below removes a lock file this call created, so a
        // refused directory is left exactly as it was found.
        let lock_existed = lock_path.exists();
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

        let path = dir.join(DATABASE_FILE);
        let db_error = |e: rusqlite::Error| data_dir_error(format!("{}: {e}", path.display()));
        let mut writer = Connection::open(&path).map_err(db_error)?;
        // Read the version before anything may write to the file.
        let version: i64 = writer
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db_error)?;
        if version > SCHEMA_VERSION {
            drop(writer);
            if !lock_existed {
                let _ = std::fs::remove_file(&lock_path);
            }
            return Err(data_dir_error(format!(
                "{} was written by a newer Parley (schema version {version}, this build knows up \
                 to {SCHEMA_VERSION}); upgrade Parley or use another data directory. Nothing was changed.",
                path.display()
            )));
        }
        let config_error = |e: String| data_dir_error(format!("{}: {e}", path.display()));
        configure(&writer, true).map_err(config_error)?;
        if version < SCHEMA_VERSION {
            // Version 0 is a new file; later versions will migrate here.
            let tx = writer.transaction().map_err(db_error)?;
            tx.execute_batch(SCHEMA).map_err(db_error)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
        }
        let (last_sequence, last_time): (i64, i64) = writer
            .query_row(
                "SELECT coalesce(max(seq), 0), coalesce(max(recorded_at), 0) FROM events",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(db_error)?;

        let reader = Connection::open(&path).map_err(db_error)?;
        configure(&reader, false).map_err(config_error)?;

        let last_sequence = last_sequence as u64;
        let (appended, _) = watch::channel(last_sequence);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                writer: Mutex::new(Writer {
                    conn: writer,
                    last_sequence,
                    last_time,
                }),
                reader: Mutex::new(reader),
                appended,
                consumers: Mutex::new(HashMap::new()),
                _lock: lock,
            }),
        })
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
            f(&mut writer)
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
            f(&reader)
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

    /// Checks a request and encodes it for the `events` table.
    fn prepare(&self, request: AppendRequest) -> Result<Prepared, LogError> {
        // The fields are public, so re-check what `AggregateRef::new` checks.
        let aggregate = AggregateRef::new(request.aggregate.kind, request.aggregate.id)?;
        if request.payload.len() > MAX_PAYLOAD {
            return Err(LogError::PayloadTooLarge {
                size: request.payload.len(),
                limit: MAX_PAYLOAD,
            });
        }
        if request.msg_id.is_empty() {
            return Err(LogError::Backend(
                "an append needs a non-empty msg id".into(),
            ));
        }
        let mut headers = request.headers;
        for (name, _) in &headers {
            if name.is_empty() || name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-") {
                return Err(LogError::Backend(format!(
                    "header {name:?}: empty names and the Nats- prefix are reserved"
                )));
            }
        }
        // Sorted, like the JetStream backend returns them.
        headers.sort();
        Ok(Prepared {
            aggregate,
            expected: request.expected,
            msg_id: request.msg_id,
            headers: encode_headers(&headers),
            payload: request.payload,
        })
    }

    /// Appends checked requests in one transaction; results in order.
    async fn append_prepared(
        &self,
        requests: Vec<Result<Prepared, LogError>>,
    ) -> Vec<Result<Appended, LogError>> {
        let count = requests.len();
        let outcome = self
            .write(move |writer| {
                let mut next = (writer.last_sequence, writer.last_time);
                let tx = writer
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let results: Vec<Result<Appended, LogError>> = requests
                    .into_iter()
                    .map(|request| request.and_then(|r| append_one(&tx, &mut next, &r)))
                    .collect();
                tx.commit()?;
                (writer.last_sequence, writer.last_time) = next;
                Ok((results, next.0))
            })
            .await;
        match outcome {
            Ok((results, last)) => {
                self.notify(last);
                results
            }
            // Nothing was committed: every request failed the same way.
            Err(e) => {
                let transient = e.is_transient();
                let message = e.to_string();
                (0..count)
                    .map(|_| {
                        Err(if transient {
                            LogError::Unavailable(message.clone())
                        } else {
                            LogError::Backend(message.clone())
                        })
                    })
                    .collect()
            }
        }
    }

    /// Records with `first <= seq <= last` passing `kinds`, at most `limit`.
    async fn range(
        &self,
        first: u64,
        last: u64,
        kinds: Arc<[String]>,
        limit: usize,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.read_with(move |conn| query_range(conn, first, last, &kinds, limit))
            .await
    }

    /// The consumer state shared by every handle of one durable name.
    fn consumer_shared(&self, name: &str) -> Arc<ConsumerShared> {
        let mut consumers = self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        consumers
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(ConsumerShared {
                    name: name.to_string(),
                    state: tokio::sync::Mutex::new(ConsumerState::default()),
                    settled: Notify::new(),
                })
            })
            .clone()
    }
}

/// An append request checked and encoded.
struct Prepared {
    aggregate: AggregateRef,
    expected: ExpectedVersion,
    msg_id: String,
    headers: Vec<u8>,
    payload: Bytes,
}

/// Applies one append inside the caller's transaction. `next` is (last
/// sequence, last time) and advances on success.
fn append_one(
    tx: &rusqlite::Transaction<'_>,
    next: &mut (u64, i64),
    request: &Prepared,
) -> Result<Appended, LogError> {
    // Deduplicate first, whatever the expected version: a retried append
    // that did land must not look like a conflict.
    let existing: Option<i64> = tx
        .prepare_cached("SELECT seq FROM events WHERE msg_id = ?1")?
        .query_row([&request.msg_id], |row| row.get(0))
        .optional()?;
    if let Some(sequence) = existing {
        return Ok(Appended {
            sequence: sequence as u64,
            duplicate: true,
        });
    }
    let version: Option<i64> = tx
        .prepare_cached("SELECT max(seq) FROM events WHERE kind = ?1 AND agg_id = ?2")?
        .query_row(
            params![request.aggregate.kind, request.aggregate.id],
            |row| row.get(0),
        )?;
    let version = version.map(|v| v as u64);
    let matches = match request.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => version.is_none(),
        // Like JetStream, an expected sequence of 0 means "no record yet".
        ExpectedVersion::Exact(expected) => version.unwrap_or(0) == expected,
    };
    if !matches {
        return Err(LogError::WrongExpectedVersion {
            aggregate: request.aggregate.to_string(),
            expected: describe_expected(request.expected),
            actual: version,
        });
    }
    let sequence = next.0 + 1;
    let time = now_nanos().max(next.1);
    tx.prepare_cached(
        "INSERT INTO events (seq, kind, agg_id, msg_id, headers, payload, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        sequence as i64,
        request.aggregate.kind,
        request.aggregate.id,
        request.msg_id,
        request.headers,
        &request.payload[..],
        time
    ])?;
    *next = (sequence, time);
    Ok(Appended {
        sequence,
        duplicate: false,
    })
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let prepared = self.prepare(request)?;
        self.append_prepared(vec![Ok(prepared)])
            .await
            .pop()
            .expect("one result per request")
    }

    async fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<Appended, LogError>> {
        let prepared = requests.into_iter().map(|r| self.prepare(r)).collect();
        self.append_prepared(prepared).await
    }

    async fn last_sequence(&self) -> Result<u64, LogError> {
        Ok(*self.inner.appended.borrow())
    }

    async fn aggregate_version(&self, aggregate: &AggregateRef) -> Result<Option<u64>, LogError> {
        let aggregate = AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        self.read_with(move |conn| {
            let version: Option<i64> = conn
                .prepare_cached("SELECT max(seq) FROM events WHERE kind = ?1 AND agg_id = ?2")?
                .query_row(params![aggregate.kind, aggregate.id], |row| row.get(0))?;
            Ok(version.map(|v| v as u64))
        })
        .await
    }

    async fn read_aggregate(&self, aggregate: &AggregateRef) -> Result<Vec<LogRecord>, LogError> {
        let aggregate = AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        self.read_with(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM events WHERE kind = ?1 AND agg_id = ?2 ORDER BY seq"
            ))?;
            let rows = statement.query_map(params![aggregate.kind, aggregate.id], raw_record)?;
            rows.map(|row| row?.into_record()).collect()
        })
        .await
    }

    async fn read(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        let kinds = check_filter(&filter)?;
        let last_at_start = *self.inner.appended.borrow();
        let first = match start {
            StartAt::Beginning => 1,
            StartAt::Sequence(sequence) => sequence.max(1),
            StartAt::New => last_at_start + 1,
            StartAt::Time(time) => {
                let nanos = to_nanos(time);
                let first: Option<i64> = self
                    .read_with(move |conn| {
                        Ok(conn
                            .prepare_cached("SELECT min(seq) FROM events WHERE recorded_at >= ?1")?
                            .query_row([nanos], |row| row.get(0))?)
                    })
                    .await?;
                first.map_or(last_at_start + 1, |s| s as u64)
            }
        };
        let reader = Reader {
            log: self.clone(),
            kinds,
            next: first,
            end: (mode == ReadMode::ToEnd).then_some(last_at_start),
            buffer: VecDeque::new(),
            changes: self.inner.appended.subscribe(),
            done: false,
        };
        let records = futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next_record().await?;
            Some((item, reader))
        });
        Ok(records.boxed())
    }

    async fn consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        if !is_consumer_name(&options.durable_name) {
            return Err(LogError::Backend(format!(
                "{:?} is not a valid durable name (use [A-Za-z0-9_-])",
                options.durable_name
            )));
        }
        let kinds = check_filter(&options.filter)?;
        let name = options.durable_name.clone();
        self.write(move |writer| {
            writer.conn.execute(
                "INSERT OR IGNORE INTO consumers (name, cursor) VALUES (?1, 0)",
                [&name],
            )?;
            Ok(())
        })
        .await?;
        let shared = self.consumer_shared(&options.durable_name);
        {
            let mut state = shared.state.lock().await;
            // A new filter: forget what was fetched under the old one; the
            // delivered-but-unacked records are reloaded from the table.
            if state.kinds != kinds {
                state.loaded = false;
                state.fresh.clear();
                state.in_flight.clear();
            }
            state.kinds = kinds;
            state.options = Some(options);
        }
        Ok(Box::new(SqliteConsumer {
            log: self.clone(),
            shared,
            changes: self.inner.appended.subscribe(),
        }))
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        let key = hex::encode(Sha256::digest(&bytes));
        let blob = BlobRef {
            bucket: BLOB_BUCKET.to_string(),
            key: key.clone(),
            size: bytes.len() as u64,
        };
        self.write(move |writer| {
            // Content-addressed: an existing row holds the same bytes.
            writer.conn.execute(
                "INSERT OR IGNORE INTO blobs (key, size, data) VALUES (?1, ?2, ?3)",
                params![key, bytes.len() as i64, &bytes[..]],
            )?;
            Ok(())
        })
        .await?;
        Ok(blob)
    }

    async fn get_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        if blob.bucket != BLOB_BUCKET {
            return Err(LogError::Blob {
                key: blob.key.clone(),
                reason: format!(
                    "bucket {:?} is not this log's bucket {BLOB_BUCKET:?}",
                    blob.bucket
                ),
            });
        }
        let key = blob.key.clone();
        let data: Option<Vec<u8>> = self
            .read_with(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT data FROM blobs WHERE key = ?1")?
                    .query_row([&key], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        let data = data.ok_or_else(|| LogError::Blob {
            key: blob.key.clone(),
            reason: "not found".into(),
        })?;
        let digest = hex::encode(Sha256::digest(&data));
        if digest != blob.key {
            return Err(LogError::Blob {
                key: blob.key.clone(),
                reason: format!("content digest is {digest}"),
            });
        }
        Ok(Bytes::from(data))
    }

    fn max_payload(&self) -> usize {
        MAX_PAYLOAD
    }
}

/// State of one `read` stream.
struct Reader {
    log: SqliteLog,
    kinds: Arc<[String]>,
    /// Next sequence to look at.
    next: u64,
    /// Last sequence a `ToEnd` read delivers; `None` follows forever.
    end: Option<u64>,
    buffer: VecDeque<LogRecord>,
    changes: watch::Receiver<u64>,
    done: bool,
}

impl Reader {
    async fn next_record(&mut self) -> Option<Result<LogRecord, LogError>> {
        loop {
            if let Some(record) = self.buffer.pop_front() {
                return Some(Ok(record));
            }
            if self.done {
                return None;
            }
            // Everything up to `committed` is visible to the read connection.
            let committed = *self.changes.borrow_and_update();
            let upto = self.end.unwrap_or(committed);
            if self.next > upto {
                if self.end.is_some() {
                    self.done = true;
                    return None;
                }
                // Follow: sleep until the next commit.
                if self.changes.changed().await.is_err() {
                    return None;
                }
                continue;
            }
            match self
                .log
                .range(self.next, upto, self.kinds.clone(), BATCH)
                .await
            {
                Ok(records) => {
                    // A full batch may have more behind it; otherwise every
                    // sequence up to `upto` has been looked at.
                    self.next = match records.last() {
                        Some(last) if records.len() == BATCH => last.sequence + 1,
                        _ => upto + 1,
                    };
                    self.buffer.extend(records);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// In-process state of one durable consumer, shared by its handles.
struct ConsumerShared {
    name: String,
    state: tokio::sync::Mutex<ConsumerState>,
    /// Woken when a delivery is acked, nak'ed or termed.
    settled: Notify,
}

#[derive(Default)]
struct ConsumerState {
    options: Option<ConsumerOptions>,
    kinds: Arc<[String]>,
    /// Whether `scanned` and `in_flight` were loaded from the tables.
    loaded: bool,
    /// Highest sequence fetched for delivery (matching or not).
    scanned: u64,
    /// Fetched and recorded as delivered, not yet handed out.
    fresh: VecDeque<LogRecord>,
    /// Matching records in `scanned + 1..=counted_to`, not fetched yet (for
    /// the exact lag); each record is counted once, when it is first seen.
    unscanned: u64,
    /// Highest sequence included in `unscanned`'s count.
    counted_to: u64,
    /// Handed out and not settled: when to deliver again, and how often it was.
    in_flight: BTreeMap<u64, InFlight>,
}

impl ConsumerState {
    fn options(&self) -> &ConsumerOptions {
        self.options
            .as_ref()
            .expect("set when the consumer is opened")
    }
}

struct InFlight {
    due: Instant,
    deliveries: u64,
}

/// A durable consumer handle of [`SqliteLog`].
struct SqliteConsumer {
    log: SqliteLog,
    shared: Arc<ConsumerShared>,
    changes: watch::Receiver<u64>,
}

#[async_trait]
impl DurableConsumer for SqliteConsumer {
    async fn next(&mut self) -> Option<Result<Delivery, LogError>> {
        loop {
            let mut state = self.shared.state.lock().await;
            if !state.loaded
                && let Err(e) = self.load(&mut state).await
            {
                return Some(Err(e));
            }
            let now = Instant::now();

            // 1. Deliveries whose ack wait ran out, nak'ed ones, and those
            //    pending when the process stopped, oldest sequence first.
            let due = state
                .in_flight
                .iter()
                .find(|(_, f)| f.due <= now)
                .map(|(sequence, _)| *sequence);
            if let Some(sequence) = due {
                match self.redeliver(&mut state, sequence).await {
                    Ok(Some(delivery)) => return Some(Ok(delivery)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }

            // 2. Records never delivered, while under `max_ack_pending`.
            let max_pending = state.options().max_ack_pending.max(1) as usize;
            let pending = state.in_flight.len() + state.fresh.len();
            let has_room = pending < max_pending;
            if state.fresh.is_empty() && has_room {
                let committed = *self.changes.borrow_and_update();
                if committed > state.scanned {
                    let limit = (max_pending - pending).min(BATCH);
                    if let Err(e) = self.fetch(&mut state, committed, limit).await {
                        return Some(Err(e));
                    }
                    if state.fresh.is_empty() {
                        continue;
                    }
                }
            }
            if let Some(record) = state.fresh.pop_front() {
                let due = now + state.options().ack_wait;
                state
                    .in_flight
                    .insert(record.sequence, InFlight { due, deliveries: 1 });
                let pending = state.fresh.len() as u64 + state.unscanned;
                return Some(Ok(self.delivery(record, 1).with_pending(pending)));
            }

            // 3. Nothing to do: wait for an append (if there is room for
            //    it), a settled delivery, or the next ack wait to run out.
            let next_due = state.in_flight.values().map(|f| f.due).min();
            let settled = self.shared.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            drop(state);
            let timer = async {
                match next_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                _ = settled => {}
                _ = self.changes.changed(), if has_room => {}
            }
        }
    }
}

impl SqliteConsumer {
    /// Loads the cursor and the unsettled deliveries (due now: their
    /// consumer may have died with them) from the tables.
    async fn load(&self, state: &mut ConsumerState) -> Result<(), LogError> {
        let name = self.shared.name.clone();
        let (cursor, highest, delivered) = self
            .log
            .read_with(move |conn| {
                let cursor: i64 = conn
                    .prepare_cached("SELECT cursor FROM consumers WHERE name = ?1")?
                    .query_row([&name], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let highest: i64 = conn
                    .prepare_cached(
                        "SELECT coalesce(max(seq), 0) FROM consumer_records WHERE name = ?1",
                    )?
                    .query_row([&name], |row| row.get(0))?;
                let delivered = conn
                    .prepare_cached(
                        "SELECT seq, deliveries FROM consumer_records \
                         WHERE name = ?1 AND state = 'delivered' ORDER BY seq",
                    )?
                    .query_map([&name], |row| {
                        Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((cursor as u64, highest as u64, delivered))
            })
            .await?;
        let now = Instant::now();
        state.scanned = cursor.max(highest);
        state.counted_to = state.scanned;
        state.unscanned = 0;
        state.fresh.clear();
        state.in_flight = delivered
            .into_iter()
            .map(|(sequence, deliveries)| {
                (
                    sequence,
                    InFlight {
                        due: now,
                        deliveries,
                    },
                )
            })
            .collect();
        state.loaded = true;
        Ok(())
    }

    /// Fetches up to `limit` matching records after `scanned`, recording
    /// them as delivered in one transaction.
    async fn fetch(
        &self,
        state: &mut ConsumerState,
        committed: u64,
        limit: usize,
    ) -> Result<(), LogError> {
        if committed > state.counted_to {
            let (first, kinds) = (state.counted_to.max(state.scanned) + 1, state.kinds.clone());
            state.unscanned += self
                .log
                .read_with(move |conn| count_range(conn, first, committed, &kinds))
                .await?;
            state.counted_to = committed;
        }
        let records = self
            .log
            .range(state.scanned + 1, committed, state.kinds.clone(), limit)
            .await?;
        state.unscanned = state.unscanned.saturating_sub(records.len() as u64);
        let sequences: Vec<i64> = records.iter().map(|r| r.sequence as i64).collect();
        if !sequences.is_empty() {
            let name = self.shared.name.clone();
            self.log
                .write(move |writer| {
                    let tx = writer.conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT OR IGNORE INTO consumer_records (name, seq, deliveries, state) \
                             VALUES (?1, ?2, 1, 'delivered')",
                        )?;
                        for sequence in sequences {
                            insert.execute(params![name, sequence])?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })
                .await?;
        }
        state.scanned = match records.last() {
            Some(last) if records.len() == limit => last.sequence,
            _ => committed,
        };
        state.fresh.extend(records);
        Ok(())
    }

    /// Delivers an in-flight record again, or parks it once it reached
    /// `max_deliver` (`None`: nothing to deliver).
    async fn redeliver(
        &self,
        state: &mut ConsumerState,
        sequence: u64,
    ) -> Result<Option<Delivery>, LogError> {
        let deliveries = state.in_flight.get(&sequence).map_or(0, |f| f.deliveries);
        let max_deliver = state.options().max_deliver;
        if max_deliver > 0 && deliveries >= max_deliver as u64 {
            state.in_flight.remove(&sequence);
            tracing::warn!(
                consumer = %self.shared.name,
                sequence,
                deliveries,
                "record parked after max_deliver attempts"
            );
            settle(
                &self.log,
                &self.shared.name,
                &state.kinds,
                sequence,
                "parked",
            )
            .await?;
            return Ok(None);
        }
        let name = self.shared.name.clone();
        let found = self
            .log
            .range(sequence, sequence, Arc::from([]), 1)
            .await?
            .pop();
        let Some(record) = found else {
            state.in_flight.remove(&sequence);
            return Ok(None);
        };
        self.log
            .write(move |writer| {
                writer.conn.execute(
                    "UPDATE consumer_records SET deliveries = deliveries + 1 \
                     WHERE name = ?1 AND seq = ?2",
                    params![name, sequence as i64],
                )?;
                Ok(())
            })
            .await?;
        let ack_wait = state.options().ack_wait;
        let deliveries = deliveries + 1;
        if let Some(in_flight) = state.in_flight.get_mut(&sequence) {
            in_flight.deliveries = deliveries;
            in_flight.due = Instant::now() + ack_wait;
        }
        Ok(Some(self.delivery(record, deliveries)))
    }

    fn delivery(&self, record: LogRecord, deliveries: u64) -> Delivery {
        let acker = SqliteAcker {
            log: self.log.clone(),
            shared: self.shared.clone(),
            sequence: record.sequence,
        };
        Delivery::new(record, deliveries, Box::new(acker))
    }
}

/// Marks a delivered record `acked` or `parked` and moves the consumer's
/// cursor over every settled record right after it.
async fn settle(
    log: &SqliteLog,
    name: &str,
    kinds: &Arc<[String]>,
    sequence: u64,
    outcome: &'static str,
) -> Result<(), LogError> {
    let name = name.to_string();
    let kinds = kinds.clone();
    log.write(move |writer| {
        let tx = writer.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE consumer_records SET state = ?3 \
             WHERE name = ?1 AND seq = ?2 AND state = 'delivered'",
        )?
        .execute(params![name, sequence as i64, outcome])?;
        let mut cursor: i64 = tx
            .prepare_cached("SELECT cursor FROM consumers WHERE name = ?1")?
            .query_row([&name], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        // Acks may arrive out of order: the cursor is the highest sequence
        // with every matching record up to it settled.
        let next_sql = format!(
            "SELECT seq FROM events WHERE seq > ?1{} ORDER BY seq LIMIT 1",
            kind_clause(kinds.len(), 2)
        );
        loop {
            let next: Option<i64> = tx
                .prepare_cached(&next_sql)?
                .query_row(
                    params_from_iter(
                        std::iter::once(rusqlite::types::Value::from(cursor))
                            .chain(kinds.iter().map(|k| k.clone().into())),
                    ),
                    |row| row.get(0),
                )
                .optional()?;
            let Some(next) = next else { break };
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM consumer_records WHERE name = ?1 AND seq = ?2")?
                .query_row(params![name, next], |row| row.get(0))
                .optional()?;
            match state.as_deref() {
                Some("acked" | "parked") => cursor = next,
                _ => break,
            }
        }
        tx.execute(
            "UPDATE consumers SET cursor = ?2 WHERE name = ?1",
            params![name, cursor],
        )?;
        tx.execute(
            "DELETE FROM consumer_records WHERE name = ?1 AND seq <= ?2",
            params![name, cursor],
        )?;
        tx.commit()?;
        Ok(())
    })
    .await
}

/// Settles one delivery of a [`SqliteConsumer`].
struct SqliteAcker {
    log: SqliteLog,
    shared: Arc<ConsumerShared>,
    sequence: u64,
}

impl SqliteAcker {
    async fn finish(&self, outcome: &'static str) -> Result<(), LogError> {
        let mut state = self.shared.state.lock().await;
        state.in_flight.remove(&self.sequence);
        let result = settle(
            &self.log,
            &self.shared.name,
            &state.kinds,
            self.sequence,
            outcome,
        )
        .await;
        drop(state);
        self.shared.settled.notify_waiters();
        result
    }
}

#[async_trait]
impl Acker for SqliteAcker {
    async fn ack(&self) -> Result<(), LogError> {
        self.finish("acked").await
    }

    async fn nak(&self) -> Result<(), LogError> {
        let mut state = self.shared.state.lock().await;
        let delay = state
            .options
            .as_ref()
            .map_or(NAK_DELAY, |o| o.ack_wait.min(NAK_DELAY));
        if let Some(in_flight) = state.in_flight.get_mut(&self.sequence) {
            in_flight.due = Instant::now() + delay;
        }
        drop(state);
        self.shared.settled.notify_waiters();
        Ok(())
    }

    async fn term(&self) -> Result<(), LogError> {
        tracing::warn!(
            consumer = %self.shared.name,
            sequence = self.sequence,
            "record terminated (parked) by the consumer"
        );
        self.finish("parked").await
    }
}

impl From<rusqlite::Error> for LogError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // Another connection holds the lock for longer than the busy timeout.
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                LogError::Unavailable(format!("sqlite: {error}"))
            }
            _ => LogError::Backend(format!("sqlite: {error}")),
        }
    }
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

/// Validates a filter's types; they are compared with the `kind` column.
fn check_filter(filter: &Filter) -> Result<Arc<[String]>, LogError> {
    for kind in &filter.aggregate_types {
        AggregateRef::new(kind.clone(), "x")?;
    }
    Ok(filter.aggregate_types.iter().cloned().collect())
}

/// ` AND kind IN (?n, ...)` with parameters from `first`, or nothing.
fn kind_clause(count: usize, first: usize) -> String {
    if count == 0 {
        return String::new();
    }
    let placeholders: Vec<String> = (first..first + count).map(|i| format!("?{i}")).collect();
    format!(" AND +kind IN ({})", placeholders.join(", "))
}

/// The parameters of a `seq >= ?1 AND seq <= ?2` query followed by its
/// [`kind_clause`].
fn range_parameters(first: u64, last: u64, kinds: &[String]) -> Vec<rusqlite::types::Value> {
    [
        rusqlite::types::Value::from(first.min(i64::MAX as u64) as i64),
        rusqlite::types::Value::from(last.min(i64::MAX as u64) as i64),
    ]
    .into_iter()
    .chain(kinds.iter().map(|k| k.clone().into()))
    .collect()
}

/// Number of records in `first..=last` of the given kinds (all kinds if none).
fn count_range(
    conn: &Connection,
    first: u64,
    last: u64,
    kinds: &[String],
) -> Result<u64, LogError> {
    let sql = format!(
        "SELECT count(*) FROM events WHERE seq >= ?1 AND seq <= ?2{}",
        kind_clause(kinds.len(), 3)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let parameters = range_parameters(first, last, kinds);
    let count: i64 = statement.query_row(params_from_iter(parameters), |row| row.get(0))?;
    Ok(count as u64)
}

fn query_range(
    conn: &Connection,
    first: u64,
    last: u64,
    kinds: &[String],
    limit: usize,
) -> Result<Vec<LogRecord>, LogError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM events WHERE seq >= ?1 AND seq <= ?2{} \
         ORDER BY seq LIMIT {limit}",
        kind_clause(kinds.len(), 3)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let parameters = range_parameters(first, last, kinds);
    let rows = statement.query_map(params_from_iter(parameters), raw_record)?;
    rows.map(|row| row?.into_record()).collect()
}

/// A row of `events` before its headers are decoded.
struct RawRecord {
    sequence: i64,
    kind: String,
    id: String,
    msg_id: String,
    headers: Vec<u8>,
    payload: Vec<u8>,
    recorded_at: i64,
}

fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        sequence: row.get(0)?,
        kind: row.get(1)?,
        id: row.get(2)?,
        msg_id: row.get(3)?,
        headers: row.get(4)?,
        payload: row.get(5)?,
        recorded_at: row.get(6)?,
    })
}

impl RawRecord {
    fn into_record(self) -> Result<LogRecord, LogError> {
        Ok(LogRecord {
            sequence: self.sequence as u64,
            // Checked when appended.
            aggregate: AggregateRef {
                kind: self.kind,
                id: self.id,
            },
            msg_id: Some(self.msg_id),
            headers: decode_headers(&self.headers)?,
            payload: Bytes::from(self.payload),
            recorded_at: DateTime::from_timestamp_nanos(self.recorded_at),
        })
    }
}

/// Headers as (u32 length, bytes) pairs: no escaping, any text fits.
fn encode_headers(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        for text in [name, value] {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

fn decode_headers(mut bytes: &[u8]) -> Result<Vec<(String, String)>, LogError> {
    fn take(bytes: &mut &[u8]) -> Result<String, LogError> {
        let corrupt = || LogError::Backend("corrupt headers in the log".into());
        let (length, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(corrupt());
        }
        let (text, rest) = rest.split_at(length);
        *bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| corrupt())
    }
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn describe_expected(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".into(),
        ExpectedVersion::NoStream => "no stream".into(),
        ExpectedVersion::Exact(version) => version.to_string(),
    }
}

fn is_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let headers = vec![
            ("a".to_string(), "tab\tand\nnewline".to_string()),
            ("b".to_string(), String::new()),
        ];
        assert_eq!(decode_headers(&encode_headers(&headers)).unwrap(), headers);
        assert!(decode_headers(&[1, 0, 0]).is_err());
        assert!(decode_headers(&[9, 0, 0, 0, b'x']).is_err());
    }

    #[test]
    fn kind_clause_numbers_parameters() {
        assert_eq!(kind_clause(0, 3), "");
        assert_eq!(kind_clause(2, 3), " AND +kind IN (?3, ?4)");
    }
}
