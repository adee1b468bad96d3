//! Reads of the embedded log: by aggregate, and in global order from a
//! start position (`ToEnd` replays and `Follow` tails), in bounded batches.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use rusqlite::{Connection, params, params_from_iter};
use tokio::sync::watch;

use super::meta::Meta;
use super::row::{RECORD_COLUMNS, raw_record};
use super::{BATCH, SqliteLog, to_nanos, verify};
use crate::checks::check_filter;
use crate::{AggregateRef, Filter, LogError, LogRecord, ReadMode, RecordStream, StartAt};

impl SqliteLog {
    /// See [`crate::EventLog::aggregate_version`].
    pub(super) async fn version_of(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Option<u64>, LogError> {
        let aggregate = AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        self.read_with(move |conn| {
            let version: Option<i64> = conn
                .prepare_cached("SELECT max(seq) FROM events WHERE kind = ?1 AND agg_id = ?2")?
                .query_row(params![aggregate.kind, aggregate.id], |row| row.get(0))?;
            Ok(version.map(|v| v as u64))
        })
        .await
    }

    /// See [`crate::EventLog::read_aggregate`].
    pub(super) async fn records_of(
        &self,
        aggregate: &AggregateRef,
    ) -> Result<Vec<LogRecord>, LogError> {
        let aggregate = AggregateRef::new(aggregate.kind.clone(), aggregate.id.clone())?;
        let checksums_from = self.inner.meta.checksums_from;
        self.read_with(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM events WHERE kind = ?1 AND agg_id = ?2 ORDER BY seq"
            ))?;
            let rows = statement.query_map(params![aggregate.kind, aggregate.id], raw_record)?;
            rows.map(|row| row?.check(checksums_from)).collect()
        })
        .await
    }

    /// See [`crate::EventLog::read`].
    pub(super) async fn read_from(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        let kinds = kinds_of(&filter)?;
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

    /// Records with `first <= seq <= last` passing `kinds`, at most
    /// `limit`, each checked, and every sequence of the range accounted for
    /// (see [`scan`]).
    pub(super) async fn range(
        &self,
        first: u64,
        last: u64,
        kinds: Arc<[String]>,
        limit: usize,
    ) -> Result<Scan, LogError> {
        let meta = self.inner.meta.clone();
        let head = *self.inner.appended.borrow();
        self.read_with(move |conn| {
            scan(conn, first, last, &kinds, limit, &meta).map_err(|damage| match damage {
                ScanError::Log(LogError::Corrupt {
                    sequence: Some(sequence),
                    reason,
                    ..
                })
                | ScanError::Missing { sequence, reason } => {
                    verify::damage(conn, &meta, sequence, head.max(last), &reason)
                }
                ScanError::Log(e) => e,
            })
        })
        .await
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
                Ok(scan) => {
                    self.next = scan.scanned_to + 1;
                    self.buffer.extend(scan.records);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A filter's types, checked; they are compared with the `kind` column.
pub(super) fn kinds_of(filter: &Filter) -> Result<Arc<[String]>, LogError> {
    check_filter(filter)?;
    Ok(filter.aggregate_types.iter().cloned().collect())
}

/// ` AND kind IN (?n, ...)` with parameters from `first`, or nothing.
pub(super) fn kind_clause(count: usize, first: usize) -> String {
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
pub(super) fn count_range(
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

/// Rows one query looks at, matching the filter or not: bounds how long a
/// filtered read holds the connection when few records match.
const SCAN_ROWS: usize = 4 * BATCH;

/// What [`scan`] read.
pub(super) struct Scan {
    /// The checked records passing the filter, in order.
    pub(super) records: Vec<LogRecord>,
    /// Every sequence up to this one was looked at.
    pub(super) scanned_to: u64,
}

/// Why a scan stopped.
pub(super) enum ScanError {
    /// A record failed its checks (it names its sequence), or SQLite failed.
    Log(LogError),
    /// A sequence that must be there is not.
    Missing { sequence: u64, reason: String },
}

impl From<LogError> for ScanError {
    fn from(error: LogError) -> Self {
        ScanError::Log(error)
    }
}

impl From<rusqlite::Error> for ScanError {
    fn from(error: rusqlite::Error) -> Self {
        ScanError::Log(error.into())
    }
}

/// Reads `first..=last` in sequence order, up to `limit` records passing
/// `kinds`, checking every record it returns and that no sequence is
/// missing in between: the log has no gaps but the `lost` ones a salvage
/// recorded, so a row that does not come back (a damaged page cuts a table
/// scan short without an error) is reported, never taken for the end.
///
/// Rows of other kinds are looked at (for the sequence check) without
/// loading their headers and payloads.
pub(super) fn scan(
    conn: &Connection,
    first: u64,
    last: u64,
    kinds: &[String],
    limit: usize,
    meta: &Meta,
) -> Result<Scan, ScanError> {
    let wanted = kind_clause(kinds.len(), 3);
    let columns = if kinds.is_empty() {
        RECORD_COLUMNS.to_string()
    } else {
        let wanted = wanted.trim_start_matches(" AND ");
        format!(
            "seq, kind, agg_id, msg_id, CASE WHEN {wanted} THEN headers END, \
             CASE WHEN {wanted} THEN payload END, recorded_at, checksum"
        )
    };
    let sql = format!(
        "SELECT {columns} FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT {SCAN_ROWS}"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let parameters = range_parameters(first, last, kinds);
    let mut expected = meta.lost.skip(first);
    // SQLite failing mid-scan (a damaged page it notices) is the record it
    // was about to return being unreadable.
    let unreadable = |expected: u64| {
        move |e: rusqlite::Error| ScanError::Missing {
            sequence: expected,
            reason: format!("does not read ({e})"),
        }
    };
    let mut rows = statement
        .query(params_from_iter(parameters))
        .map_err(unreadable(expected))?;
    let mut records = Vec::new();
    let mut seen = 0;
    while let Some(row) = rows.next().map_err(unreadable(expected))? {
        seen += 1;
        let raw = raw_record(row)?;
        if raw.sequence != expected {
            return Err(ScanError::Missing {
                sequence: expected,
                reason: format!("missing (the next readable record is {})", raw.sequence),
            });
        }
        expected = meta.lost.skip(raw.sequence + 1);
        let sequence = raw.sequence;
        if kinds.is_empty() || raw.kind().is_some_and(|k| kinds.iter().any(|w| w == k)) {
            records.push(raw.check(meta.checksums_from)?);
            if records.len() == limit {
                return Ok(Scan {
                    records,
                    scanned_to: sequence,
                });
            }
        }
        if seen == SCAN_ROWS {
            return Ok(Scan {
                records,
                scanned_to: sequence,
            });
        }
    }
    if expected <= last {
        return Err(ScanError::Missing {
            sequence: expected,
            reason: "missing (no record after it reads back)".into(),
        });
    }
    Ok(Scan {
        records,
        scanned_to: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_clause_numbers_parameters() {
        assert_eq!(kind_clause(0, 3), "");
        assert_eq!(kind_clause(2, 3), " AND +kind IN (?3, ?4)");
    }
}
