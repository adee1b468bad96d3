//! SQLite files for read models: state a service derives from the log and
//! would otherwise hold in memory (notify's journal, the resolver's events).
//!
//! Such a file is a cache. It is rebuilt from the log at every start, so
//! whatever an earlier run left in it (complete, half-written or damaged) is
//! deleted rather than trusted, and nothing in it needs to survive a crash:
//! no fsync, the rollback journal in memory. Memory stays bounded by the
//! page cache however long the log grows.
//!
//! Each file records the id of the log it was built from
//! ([`crate::EventLog::log_id`]). When the leftover file of an earlier run
//! names another log (the log was deleted or replaced while the state
//! directory stayed), the rebuild says so with a warning naming both.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Why a read-model file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// SQLite refused.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The state directory, the file or its lock.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Another process uses the state directory.
    #[error("{0} is in use by another process")]
    Locked(PathBuf),
}

/// An open read-model database and, when it lives in a state directory, the
/// lock that keeps other processes out while it is in use.
pub struct ReadModelFile {
    /// The connection, configured for a cache.
    pub conn: Connection,
    /// Held for as long as the file is in use.
    pub lock: Option<File>,
}

/// Table holding the id of the log a read model is built from.
const LOG_ID_TABLE: &str = "parley_read_model";

/// Opens an empty read-model database named `file_name` in `state_dir`
/// (created if needed; one process per directory) or, without one, in a
/// private temporary file SQLite deletes on close, for the log `log_id`.
/// `page_cache_kib` bounds the memory SQLite keeps.
pub fn open_read_model(
    state_dir: Option<&Path>,
    file_name: &str,
    page_cache_kib: i64,
    log_id: &str,
) -> Result<ReadModelFile, ReadModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadModelError::Io { path, source }
    };
    let (conn, lock) = match state_dir {
        None => (Connection::open("")?, None),
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let lock_path = dir.join(format!("{file_name}.lock"));
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io(&lock_path))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ReadModelError::Locked(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
            }
            let path = dir.join(file_name);
            warn_if_from_another_log(&path, log_id);
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&file)(e)),
                }
            }
            (Connection::open(&path)?, Some(lock))
        }
    };
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "journal_mode", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -page_cache_kib)?;
    conn.execute_batch(&format!(
        "CREATE TABLE {LOG_ID_TABLE} (log_id TEXT NOT NULL); INSERT INTO {LOG_ID_TABLE} VALUES ('{}');",
        log_id.replace('\'', "''")
    ))?;
    Ok(ReadModelFile { conn, lock })
}

/// The log id a leftover read-model file records, if it reads back.
fn recorded_log_id(path: &Path) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(&format!("SELECT log_id FROM {LOG_ID_TABLE}"), [], |row| {
        row.get(0)
    })
    .ok()
}

/// Warns when the leftover file at `path` was built from another log.
fn warn_if_from_another_log(path: &Path, log_id: &str) {
    if let Some(recorded) = recorded_log_id(path)
        && recorded != log_id
    {
        tracing::warn!(
            file = %path.display(),
            built_from = %recorded,
            log = %log_id,
            "read model belongs to another log (the log was deleted or replaced): rebuilding it \
             from this one"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leftover_file_is_discarded_and_a_second_process_is_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.sqlite3"), b"damaged").unwrap();
        let first = open_read_model(Some(dir.path()), "model.sqlite3", 1024, "log-a").unwrap();
        first
            .conn
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let again = open_read_model(Some(dir.path()), "model.sqlite3", 1024, "log-a");
        assert!(
            matches!(again, Err(ReadModelError::Locked(_))),
            "{:?}",
            again.err()
        );
        drop(first);
        let path = dir.path().join("model.sqlite3");
        assert_eq!(recorded_log_id(&path).as_deref(), Some("log-a"));
        let reopened = open_read_model(Some(dir.path()), "model.sqlite3", 1024, "log-b").unwrap();
        let tables: i64 = reopened
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "a cache starts empty but for its log id");
        assert_eq!(recorded_log_id(&path).as_deref(), Some("log-b"));
    }
}
