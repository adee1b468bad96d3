//! The schema of the embedded log, its migrations, and the `meta` table:
//! what the log knows about itself independently of its records, so that a
//! damaged table cannot pass for a shorter log.
//!
//! `meta` holds (key, value) text pairs:
//! - `log_id`: a random id given when the log is created (or salvaged); read
//!   models record it and are rebuilt when they belong to another log;
//! - `head`: the last sequence ever appended, updated in every append
//!   transaction; the records must run without a gap from 1 to it;
//! - `checksums_from`: the first sequence written with a checksum (1 for a
//!   log created with schema 2, the old head + 1 for one migrated from 1);
//! - `lost`: sequences a salvage could not copy (`3-5,9`), which readers
//!   expect to be absent.

use rusqlite::{Connection, OptionalExtension, params};

use super::SCHEMA_VERSION;
use crate::LogError;

/// Tables of schema 2 (schema 1 lacked `events.checksum` and `meta`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    agg_id      TEXT    NOT NULL,
    msg_id      TEXT    NOT NULL UNIQUE,
    headers     BLOB    NOT NULL,
    payload     BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL,
    checksum    INTEGER
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
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Creates the tables of a new file (version 0), or migrates one written by
/// schema 1: adds the checksum column (older rows keep none and are checked
/// by the other means) and the `meta` table. One transaction.
pub(super) fn create_or_migrate(conn: &mut Connection, version: i64) -> Result<(), LogError> {
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if version == 1 {
        tx.execute_batch("ALTER TABLE events ADD COLUMN checksum INTEGER;")?;
    }
    tx.execute_batch(SCHEMA)?;
    let head: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |row| {
        row.get(0)
    })?;
    let id = new_log_id();
    for (key, value) in [
        ("log_id", id),
        ("head", head.to_string()),
        ("checksums_from", (head + 1).to_string()),
        ("lost", String::new()),
    ] {
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// A fresh random log id.
pub(super) fn new_log_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What `meta` says about the log.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) log_id: String,
    pub(super) head: u64,
    pub(super) checksums_from: u64,
    pub(super) lost: Lost,
}

impl Meta {
    /// Reads `meta`; a missing or unreadable key is corruption.
    pub(super) fn load(conn: &Connection) -> Result<Self, LogError> {
        let get = |key: &str| -> Result<String, LogError> {
            let value: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(|e| meta_corrupt(format!("{key}: {e}")))?;
            value.ok_or_else(|| meta_corrupt(format!("{key} is missing")))
        };
        let number = |key: &str| -> Result<u64, LogError> {
            let text = get(key)?;
            text.parse()
                .map_err(|_| meta_corrupt(format!("{key} is {text:?}, not a number")))
        };
        Ok(Self {
            log_id: get("log_id")?,
            head: number("head")?,
            checksums_from: number("checksums_from")?,
            lost: Lost::parse(&get("lost")?).map_err(|e| meta_corrupt(format!("lost: {e}")))?,
        })
    }

    /// Writes every key (a new or salvaged log).
    pub(super) fn store(&self, conn: &Connection) -> Result<(), LogError> {
        for (key, value) in [
            ("log_id", self.log_id.clone()),
            ("head", self.head.to_string()),
            ("checksums_from", self.checksums_from.to_string()),
            ("lost", self.lost.to_string()),
        ] {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        Ok(())
    }
}

/// Records the new head inside an append transaction.
pub(super) fn store_head(conn: &Connection, head: u64) -> Result<(), LogError> {
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'head'")?
        .execute([head.to_string()])?;
    Ok(())
}

fn meta_corrupt(reason: String) -> LogError {
    LogError::Corrupt {
        file: String::new(),
        sequence: None,
        reason: format!(
            "the log's own record of its head and id (table meta) is damaged: {reason}"
        ),
    }
}

/// Sorted, disjoint ranges of sequences known to be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lost(Vec<(u64, u64)>);

impl Lost {
    /// Ranges from single sequences (any order, duplicates allowed).
    pub(super) fn from_sequences(mut sequences: Vec<u64>) -> Self {
        sequences.sort_unstable();
        sequences.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for sequence in sequences {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == sequence => *last = sequence,
                _ => ranges.push((sequence, sequence)),
            }
        }
        Self(ranges)
    }

    /// `3-5,9` (empty for none).
    fn parse(text: &str) -> Result<Self, String> {
        let mut sequences = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let first: u64 = first.parse().map_err(|_| format!("{part:?}"))?;
            let last: u64 = last.parse().map_err(|_| format!("{part:?}"))?;
            if last < first || last - first > 100_000_000 {
                return Err(format!("{part:?}"));
            }
            sequences.extend(first..=last);
        }
        Ok(Self::from_sequences(sequences))
    }

    /// The ranges, first to last.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// How many sequences are lost.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first sequence at or after `sequence` that is not lost.
    pub(super) fn skip(&self, sequence: u64) -> u64 {
        let mut next = sequence;
        for &(first, last) in &self.0 {
            if first <= next && next <= last {
                next = last + 1;
            }
        }
        next
    }

    /// The last sequence at or before `sequence` that is not lost (0: none).
    pub(super) fn last_present(&self, sequence: u64) -> u64 {
        let mut last = sequence;
        for &(first, end) in self.0.iter().rev() {
            if first <= last && last <= end {
                last = first.saturating_sub(1);
            }
        }
        last
    }

    /// How many lost sequences lie in `first..=last`.
    pub(super) fn count_in(&self, first: u64, last: u64) -> u64 {
        self.0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.max(first), b.min(last));
                if a <= b { b - a + 1 } else { 0 }
            })
            .sum()
    }
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (first, last)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if first == last {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{last}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_ranges_round_trip_and_skip() {
        let lost = Lost::from_sequences(vec![9, 3, 4, 5, 4]);
        assert_eq!(lost.to_string(), "3-5,9");
        assert_eq!(Lost::parse("3-5,9").unwrap(), lost);
        assert_eq!(Lost::parse("").unwrap(), Lost::default());
        assert!(Lost::parse("5-3").is_err());
        assert_eq!(lost.count(), 4);
        assert_eq!(lost.skip(3), 6);
        assert_eq!(lost.skip(9), 10);
        assert_eq!(lost.skip(2), 2);
        assert_eq!(lost.count_in(4, 9), 3);
        assert_eq!(lost.last_present(9), 8);
        assert_eq!(lost.last_present(5), 2);
        assert_eq!(Lost::from_sequences(vec![1, 2]).last_present(2), 0);
    }
}
