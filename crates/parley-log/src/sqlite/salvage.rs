//! Salvaging a damaged embedded log: every record that passes its checks is
//! copied, with its sequence, into a new data directory; the sequences that
//! could not be read are recorded there as lost (`meta.lost`), so the new
//! log verifies, readers skip them, and nothing downstream renumbers.
//!
//! What a lost record held is gone from the new log: an article whose
//! records were lost can be ingested again (its msg ids are no longer there),
//! and the services rebuild their read models from the new log.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::meta::{self, Lost, Meta};
use super::row::{checksum, encode_headers};
use super::verify::{LostRecords, open_as_is, walk};
use super::{DATABASE_FILE, configure, lock_dir, to_nanos};
use crate::checks::blob_ref;
use crate::{LogError, LogRecord};

/// What [`salvage`] did.
#[derive(Debug, Clone)]
pub struct SalvageReport {
    /// The damaged log's file.
    pub from: PathBuf,
    /// The new log's file.
    pub into: PathBuf,
    /// The head of both logs.
    pub head: u64,
    /// Records copied.
    pub copied: u64,
    /// Sequences lost in this salvage, in runs with their reason.
    pub lost: Vec<LostRecords>,
    /// Every sequence the new log records as lost (these and earlier ones).
    pub all_lost: Lost,
    /// Blobs copied.
    pub blobs_copied: u64,
    /// Keys of blobs that did not read back or whose digest did not match.
    pub blobs_lost: Vec<String>,
    /// Durable consumer positions copied (sequences keep their meaning;
    /// when records were lost, cursors start again from the beginning).
    pub consumers_copied: u64,
    /// What could not be copied besides records and blobs.
    pub warnings: Vec<String>,
}

impl SalvageReport {
    /// How many sequences this salvage lost.
    pub fn lost_count(&self) -> u64 {
        self.lost.iter().map(LostRecords::count).sum()
    }
}

impl std::fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "salvaged {} into {}: {} records copied, {} lost, head {}",
            self.from.display(),
            self.into.display(),
            self.copied,
            self.lost_count(),
            self.head
        )?;
        for run in &self.lost {
            writeln!(f, "  lost {run}")?;
        }
        if !self.blobs_lost.is_empty() {
            writeln!(f, "  blobs lost: {}", self.blobs_lost.join(", "))?;
        }
        for warning in &self.warnings {
            writeln!(f, "  warning: {warning}")?;
        }
        write!(
            f,
            "{} blobs and {} consumer positions copied",
            self.blobs_copied, self.consumers_copied
        )
    }
}

/// Copies every readable record of the log in `dir` into a new log in
/// `into` (which must not hold a log yet), keeping sequences and recording
/// the unreadable ones as lost. `dir` is only read. Both directories are
/// locked meanwhile, so neither may be in use by a running Parley.
pub fn salvage(dir: &Path, into: &Path) -> Result<SalvageReport, LogError> {
    let source = open_as_is(dir)?;
    let target_path = into.join(DATABASE_FILE);
    if target_path.exists() {
        return Err(LogError::DataDir {
            dir: into.display().to_string(),
            reason: format!(
                "already holds a log ({DATABASE_FILE}); salvage into a new or empty directory"
            ),
        });
    }
    let _lock = lock_dir(into)?;
    let in_target = |e: LogError| e.in_file(&target_path);
    let mut target = Connection::open(&target_path).map_err(|e| in_target(e.into()))?;
    configure(&target, true).map_err(|reason| LogError::Storage {
        file: target_path.display().to_string(),
        reason,
    })?;
    meta::create_or_migrate(&mut target, 0).map_err(in_target)?;

    let tx = target.transaction().map_err(|e| in_target(e.into()))?;
    let mut copied = 0;
    let bad = {
        let mut insert = tx
            .prepare(
                "INSERT INTO events (seq, kind, agg_id, msg_id, headers, payload, recorded_at, \
                 checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| in_target(e.into()))?;
        walk(&source.conn, &source.meta, 1, source.meta.head, |record| {
            copy_record(&mut insert, &record).map_err(in_target)?;
            copied += 1;
            Ok(())
        })
        .map_err(|e| e.in_file(&source.path))?
    };
    let mut lost: Vec<u64> = bad.iter().map(|b| b.sequence).collect();
    for &(first, last) in source.meta.lost.ranges() {
        lost.extend(first..=last);
    }
    let all_lost = Lost::from_sequences(lost);
    Meta {
        log_id: meta::new_log_id(),
        head: source.meta.head,
        checksums_from: 1,
        lost: all_lost.clone(),
    }
    .store(&tx)
    .map_err(in_target)?;
    let mut warnings = Vec::new();
    // When records were lost, consumers start again from the beginning: a
    // lost record may be what a service derived from an older one (a
    // document's resolution), and only handling that older one again
    // derives it again. Their handlers are idempotent on what survived.
    let rewind = (!bad.is_empty()).then_some(0);
    let consumers_copied =
        copy_consumers(&source.conn, &tx, &all_lost, rewind).unwrap_or_else(|e| {
            warnings.push(format!(
                "consumer positions not copied ({e}): the services' consumers start from the \
             beginning of the new log"
            ));
            0
        });
    let (blobs_copied, blobs_lost) = copy_blobs(&source.conn, &tx, &mut warnings);
    tx.commit().map_err(|e| in_target(e.into()))?;
    Ok(SalvageReport {
        from: source.path.clone(),
        into: target_path,
        head: source.meta.head,
        copied,
        lost: LostRecords::group(&bad),
        all_lost,
        blobs_copied,
        blobs_lost,
        consumers_copied,
        warnings,
    })
}

fn copy_record(insert: &mut rusqlite::Statement<'_>, record: &LogRecord) -> Result<(), LogError> {
    let headers = encode_headers(&record.headers);
    let time = to_nanos(record.recorded_at);
    let sum = checksum(
        record.sequence,
        record.aggregate.kind.as_bytes(),
        record.aggregate.id.as_bytes(),
        record.msg_id.as_deref().unwrap_or_default().as_bytes(),
        &headers,
        &record.payload,
        time,
    );
    insert.execute(params![
        record.sequence as i64,
        record.aggregate.kind,
        record.aggregate.id,
        record.msg_id.as_deref().unwrap_or_default(),
        headers,
        &record.payload[..],
        time,
        i64::from(sum)
    ])?;
    Ok(())
}

/// Copies consumer cursors (at most `rewind`), and their per-record states
/// up to them except for lost sequences; returns how many consumers.
fn copy_consumers(
    source: &Connection,
    target: &Connection,
    lost: &Lost,
    rewind: Option<u64>,
) -> Result<u64, LogError> {
    let limit = rewind.map_or(i64::MAX, |r| r as i64);
    let consumers: Vec<(String, i64)> = source
        .prepare("SELECT name, cursor FROM consumers")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, cursor) in &consumers {
        target.execute(
            "INSERT INTO consumers (name, cursor) VALUES (?1, ?2)",
            params![name, (*cursor).min(limit)],
        )?;
    }
    let records: Vec<(String, i64, i64, String)> = source
        .prepare("SELECT name, seq, deliveries, state FROM consumer_records")?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    for (name, sequence, deliveries, state) in records {
        let sequence_u = sequence.max(0) as u64;
        if lost.skip(sequence_u) != sequence_u || sequence > limit {
            continue;
        }
        target.execute(
            "INSERT INTO consumer_records (name, seq, deliveries, state) VALUES (?1, ?2, ?3, ?4)",
            params![name, sequence, deliveries, state],
        )?;
    }
    Ok(consumers.len() as u64)
}

/// Copies every blob whose bytes match its key; returns (copied, lost keys).
fn copy_blobs(
    source: &Connection,
    target: &Connection,
    warnings: &mut Vec<String>,
) -> (u64, Vec<String>) {
    let keys: Vec<String> = match source
        .prepare("SELECT key FROM blobs ORDER BY key")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
    {
        Ok(keys) => keys,
        Err(e) => {
            warnings.push(format!(
                "the blob table does not read ({e}): no blob copied"
            ));
            return (0, Vec::new());
        }
    };
    let (mut copied, mut lost) = (0, Vec::new());
    for key in keys {
        let data: Result<Vec<u8>, _> =
            source.query_row("SELECT data FROM blobs WHERE key = ?1", [&key], |row| {
                row.get(0)
            });
        let blob = blob_ref(super::BLOB_BUCKET, data.as_deref().unwrap_or_default());
        let sound = data.is_ok() && blob.key == key;
        let stored = sound
            && target
                .execute(
                    "INSERT INTO blobs (key, size, data) VALUES (?1, ?2, ?3)",
                    params![key, blob.size as i64, data.as_deref().unwrap_or_default()],
                )
                .is_ok();
        if stored {
            copied += 1;
        } else {
            lost.push(key);
        }
    }
    (copied, lost)
}
