//! Verifying the embedded log: the bounded checks [`SqliteLog::open`] runs
//! at every start, the full walk of [`verify`] (`parley log verify`), and the
//! report a reader gives when it meets damage.
//!
//! At open, in this order, bounded in cost:
//! 1. SQLite's `PRAGMA quick_check` (page structure, record formats, NOT
//!    NULL), only on files up to [`QUICK_CHECK_MAX_BYTES`]: it reads the
//!    whole file, about 2.5 ms per MB measured here (BENCHMARKS.md), so a
//!    few seconds at the bound;
//! 2. the `meta` table reads back (log id, head, lost sequences);
//! 3. `max(seq)` is the recorded head and `count(*)` is the head less the
//!    lost sequences: two index lookups, whatever the size.
//!
//! Every record is then checked when it is read (its checksum, and that no
//! sequence is missing before it): a service replaying the log at start-up
//! reads them all, so a damaged record stops start-up with its sequence.
//! `parley log verify` also runs the full `PRAGMA integrity_check` (indexes
//! against the table) and reads every record.
//!
//! [`SqliteLog::open`]: super::SqliteLog::open

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::meta::{Lost, Meta};
use super::row::{RECORD_COLUMNS, RawRecord, raw_record};
use super::{DATABASE_FILE, configure, lock_dir};
use crate::{LogError, LogRecord};

/// Largest database file (bytes) whose pages [`super::SqliteLog::open`]
/// checks with `PRAGMA quick_check` at every start; above it, start-up
/// relies on the per-record checks of the replay and on `parley log
/// verify`.
pub const QUICK_CHECK_MAX_BYTES: u64 = 1 << 30;

/// Rows per query of a walk.
const WALK_BATCH: usize = 1024;

/// Runs `PRAGMA quick_check` on files up to [`QUICK_CHECK_MAX_BYTES`]; when
/// it finds damage, walks the records to name the first unreadable one.
pub(super) fn quick_check(conn: &Connection, path: &Path, meta: &Meta) -> Result<(), LogError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > QUICK_CHECK_MAX_BYTES {
        tracing::info!(
            file = %path.display(),
            size,
            "log larger than the quick_check bound: its records are checked as they are read"
        );
        return Ok(());
    }
    let problems = match pragma_check(conn, "quick_check") {
        Ok(problems) if problems.is_empty() => return Ok(()),
        Ok(problems) => problems.join("; "),
        Err(LogError::Corrupt { reason, .. }) => format!("it stops: {reason}"),
        Err(e) => format!("it stops: {e}"),
    };
    let mut problems = problems;
    if problems.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| problems.is_char_boundary(i))
            .unwrap_or(0);
        problems.truncate(cut);
        problems.push_str(" ...");
    }
    let reason = format!("SQLite's quick_check finds the file damaged ({problems})");
    let bad = walk(conn, meta, 1, meta.head, |_| Ok(())).unwrap_or_default();
    Err(match bad.first() {
        Some(first) => report(first.sequence, meta.head, &bad, &reason),
        None => LogError::Corrupt {
            file: String::new(),
            sequence: None,
            reason: format!(
                "{reason}; every record reads back, the damage is in SQLite's own pages. {REPAIR}"
            ),
        },
    }
    .in_file(path))
}

/// What to do about a damaged log, appended to every damage report.
const REPAIR: &str = "Stop Parley; `parley log verify --data DIR` reports every unreadable \
                      record, and `parley log salvage --data DIR --into NEW_DIR` copies every \
                      readable one into a new data directory";

/// `PRAGMA quick_check` or `integrity_check`: the problems found (none: ok).
fn pragma_check(conn: &Connection, pragma: &str) -> Result<Vec<String>, LogError> {
    let mut statement = conn.prepare(&format!("PRAGMA {pragma}(20)"))?;
    let lines = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines
        .into_iter()
        .filter(|line| line != "ok")
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect())
}

/// The cheap start-up check: the records end at the recorded head and
/// none is missing in between (counted). On a mismatch, walks the log to
/// name the first bad sequence and how many are unreadable.
pub(super) fn check_head(conn: &Connection, meta: &Meta) -> Result<(), LogError> {
    let counted: Result<(i64, i64), _> = conn.query_row(
        "SELECT coalesce(max(seq), 0), count(*) FROM events",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    );
    let (max, count) = match counted {
        Ok(counted) => counted,
        Err(e) => {
            // SQLite cannot even count: find the damage record by record.
            let reason = format!("the records do not count ({e})");
            let bad = walk(conn, meta, 1, meta.head, |_| Ok(()))?;
            return Err(match bad.first() {
                Some(first) => report(first.sequence, meta.head, &bad, &first.reason),
                None => LogError::Corrupt {
                    file: String::new(),
                    sequence: None,
                    reason: format!("{reason}. {REPAIR}"),
                },
            });
        }
    };
    let (max, count) = (max.max(0) as u64, count.max(0) as u64);
    let expected_max = meta.lost.last_present(meta.head);
    let expected_count = meta.head - meta.lost.count_in(1, meta.head);
    if max == expected_max && count == expected_count {
        return Ok(());
    }
    let to = meta.head.max(max);
    let bad = walk(conn, meta, 1, to, |_| Ok(()))?;
    let reason = format!(
        "the log's head is record {} and {expected_count} records should precede it, but the \
         table's last record is {max} and it holds {count}",
        meta.head
    );
    match bad.first() {
        Some(first) => Err(report(first.sequence, to, &bad, &reason)),
        None => Err(LogError::Corrupt {
            file: String::new(),
            sequence: None,
            reason: format!("{reason}. {REPAIR}"),
        }),
    }
}

/// The error a reader returns when `first_bad` (up to `head`) is missing:
/// walks from it to count every unreadable record.
pub(super) fn damage(
    conn: &Connection,
    meta: &Meta,
    first_bad: u64,
    head: u64,
    reason: &str,
) -> LogError {
    match walk(conn, meta, first_bad, head, |_| Ok(())) {
        Ok(bad) if !bad.is_empty() => report(first_bad, head, &bad, reason),
        _ => LogError::Corrupt {
            file: String::new(),
            sequence: Some(first_bad),
            reason: format!("{reason}. {REPAIR}"),
        },
    }
}

fn report(first_bad: u64, head: u64, bad: &[Bad], reason: &str) -> LogError {
    let ranges = LostRecords::group(bad);
    let summary = if bad.len() == 1 && bad[0].sequence == first_bad {
        format!("the only unreadable record up to the head ({head})")
    } else {
        let shown: Vec<String> = ranges.iter().take(5).map(ToString::to_string).collect();
        let more = if ranges.len() > 5 { "; ..." } else { "" };
        format!(
            "{} records up to the head ({head}) are unreadable: {}{more}",
            bad.len(),
            shown.join("; ")
        )
    };
    LogError::Corrupt {
        file: String::new(),
        sequence: Some(first_bad),
        reason: format!("{reason}; {summary}. {REPAIR}"),
    }
}

/// One unreadable sequence and why.
#[derive(Debug, Clone)]
pub(super) struct Bad {
    pub(super) sequence: u64,
    pub(super) reason: String,
}

/// Walks `from..=to` (skipping the sequences `meta` records as lost),
/// handing every record that passes its checks to `good`, and returns the
/// unreadable ones. Rows are read in batches; where a batch ends early or
/// skips a sequence, that sequence is looked up on its own, so a damaged
/// page costs the records on it and no more.
pub(super) fn walk(
    conn: &Connection,
    meta: &Meta,
    from: u64,
    to: u64,
    mut good: impl FnMut(LogRecord) -> Result<(), LogError>,
) -> Result<Vec<Bad>, LogError> {
    let mut bad = Vec::new();
    let mut next = meta.lost.skip(from.max(1));
    let mut batch_sql = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq \
         LIMIT {WALK_BATCH}"
    ))?;
    let mut one_sql = conn.prepare(&format!(
        "SELECT {RECORD_COLUMNS} FROM events WHERE seq = ?1"
    ))?;
    while next <= to {
        let (rows, ended) = read_batch(&mut batch_sql, next, to);
        let full = rows.len() == WALK_BATCH && !ended;
        for raw in rows {
            if raw.sequence < next {
                continue;
            }
            while next < raw.sequence {
                probe(&mut one_sql, next, meta, &mut good, &mut bad)?;
                next = meta.lost.skip(next + 1);
            }
            if raw.sequence == next {
                next = meta.lost.skip(raw.sequence + 1);
                check_row(raw, meta, &mut good, &mut bad)?;
            }
        }
        if !full && next <= to {
            // The scan stopped before `to`: look the next one up directly,
            // then scan again after it.
            probe(&mut one_sql, next, meta, &mut good, &mut bad)?;
            next = meta.lost.skip(next + 1);
        }
    }
    Ok(bad)
}

/// Up to [`WALK_BATCH`] rows from `next`; `true` when the scan stopped on
/// an error (the rows before it are kept).
fn read_batch(
    statement: &mut rusqlite::Statement<'_>,
    next: u64,
    to: u64,
) -> (Vec<RawRecord>, bool) {
    let mut rows = Vec::new();
    let Ok(mut cursor) = statement.query([next as i64, to.min(i64::MAX as u64) as i64]) else {
        return (rows, true);
    };
    loop {
        match cursor.next() {
            Ok(Some(row)) => match raw_record(row) {
                Ok(raw) => rows.push(raw),
                Err(_) => return (rows, true),
            },
            Ok(None) => return (rows, false),
            Err(_) => return (rows, true),
        }
    }
}

/// Looks one sequence up on its own (a fresh descent of the b-tree).
fn probe(
    statement: &mut rusqlite::Statement<'_>,
    sequence: u64,
    meta: &Meta,
    good: &mut impl FnMut(LogRecord) -> Result<(), LogError>,
    bad: &mut Vec<Bad>,
) -> Result<(), LogError> {
    let found = statement
        .query([sequence as i64])
        .and_then(|mut rows| rows.next().and_then(|row| row.map(raw_record).transpose()));
    match found {
        Ok(Some(raw)) => check_row(raw, meta, good, bad),
        Ok(None) => {
            bad.push(Bad {
                sequence,
                reason: "missing".into(),
            });
            Ok(())
        }
        Err(e) => {
            bad.push(Bad {
                sequence,
                reason: format!("does not read: {e}"),
            });
            Ok(())
        }
    }
}

/// Hands a record that passes its checks to `good`, or notes why not.
fn check_row(
    raw: RawRecord,
    meta: &Meta,
    good: &mut impl FnMut(LogRecord) -> Result<(), LogError>,
    bad: &mut Vec<Bad>,
) -> Result<(), LogError> {
    let sequence = raw.sequence;
    let described = raw.describe();
    match raw.check(meta.checksums_from) {
        Ok(record) => good(record),
        Err(e) => {
            let reason = match (e, described) {
                (LogError::Corrupt { reason, .. }, Some(aggregate)) => {
                    format!("{reason} ({aggregate})")
                }
                (LogError::Corrupt { reason, .. }, None) => reason,
                (other, _) => other.to_string(),
            };
            bad.push(Bad { sequence, reason });
            Ok(())
        }
    }
}

/// A run of consecutive unreadable sequences with the same reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRecords {
    /// First sequence of the run.
    pub first: u64,
    /// Last sequence of the run.
    pub last: u64,
    /// Why they cannot be read.
    pub reason: String,
}

impl LostRecords {
    pub(super) fn group(bad: &[Bad]) -> Vec<LostRecords> {
        let mut runs: Vec<LostRecords> = Vec::new();
        for item in bad {
            match runs.last_mut() {
                Some(run) if run.last + 1 == item.sequence && run.reason == item.reason => {
                    run.last = item.sequence;
                }
                _ => runs.push(LostRecords {
                    first: item.sequence,
                    last: item.sequence,
                    reason: item.reason.clone(),
                }),
            }
        }
        runs
    }

    /// How many sequences the run covers.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

impl std::fmt::Display for LostRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "record {}: {}", self.first, self.reason)
        } else {
            write!(
                f,
                "records {} to {} ({}): {}",
                self.first,
                self.last,
                self.count(),
                self.reason
            )
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The database file.
    pub file: PathBuf,
    /// The log's id (`None` when `meta` is missing or damaged).
    pub log_id: Option<String>,
    /// The last sequence ever appended.
    pub head: u64,
    /// Records that read back and pass their checks.
    pub readable: u64,
    /// Records that do not, in runs.
    pub unreadable: Vec<LostRecords>,
    /// Sequences an earlier salvage already recorded as lost.
    pub previously_lost: Lost,
    /// What SQLite's `integrity_check` reports (empty: ok).
    pub integrity: Vec<String>,
    /// What is wrong with `meta`, if anything.
    pub meta_problem: Option<String>,
}

impl VerifyReport {
    /// Whether the log verifies: every record readable, SQLite content, `meta` sound.
    pub fn is_ok(&self) -> bool {
        self.unreadable.is_empty() && self.integrity.is_empty() && self.meta_problem.is_none()
    }

    /// How many records are unreadable.
    pub fn unreadable_count(&self) -> u64 {
        self.unreadable.iter().map(LostRecords::count).sum()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.display();
        if self.is_ok() {
            write!(
                f,
                "{file}: ok, {} records up to {}",
                self.readable, self.head
            )?;
            if !self.previously_lost.is_empty() {
                write!(
                    f,
                    " ({} lost before, in a salvage: {})",
                    self.previously_lost.count(),
                    self.previously_lost
                )?;
            }
            return Ok(());
        }
        writeln!(
            f,
            "{file}: DAMAGED: {} of {} records are unreadable, {} readable",
            self.unreadable_count(),
            self.head - self.previously_lost.count_in(1, self.head),
            self.readable
        )?;
        if let Some(problem) = &self.meta_problem {
            writeln!(f, "  meta: {problem}")?;
        }
        for line in &self.integrity {
            writeln!(f, "  integrity_check: {line}")?;
        }
        for run in &self.unreadable {
            writeln!(f, "  {run}")?;
        }
        write!(
            f,
            "Repair: `parley log salvage --data {} --into NEW_DIR` copies every readable record",
            self.file.parent().unwrap_or(Path::new(".")).display()
        )
    }
}

/// The log of a data directory, opened for checking only: locked, never
/// migrated or written.
pub(super) struct Opened {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) meta: Meta,
    pub(super) meta_problem: Option<String>,
    pub(super) _lock: super::DirLock,
}

/// Opens `dir`'s log as it is, to verify or salvage it. `meta` comes from
/// the file where it reads back; otherwise the head is the last record
/// found and checksums are checked where present.
pub(super) fn open_as_is(dir: &Path) -> Result<Opened, LogError> {
    let path = dir.join(DATABASE_FILE);
    if !path.is_file() {
        return Err(LogError::DataDir {
            dir: dir.display().to_string(),
            reason: format!("holds no log ({DATABASE_FILE} is missing)"),
        });
    }
    let lock = lock_dir(dir)?;
    let conn = Connection::open(&path).map_err(|e| LogError::from(e).in_file(&path))?;
    configure(&conn, false).map_err(|reason| LogError::Storage {
        file: path.display().to_string(),
        reason,
    })?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| LogError::from(e).in_file(&path))?;
    let loaded = if version >= 2 {
        Meta::load(&conn).map_err(|e| e.to_string())
    } else {
        Err(String::new())
    };
    let max: u64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |row| {
            row.get::<_, i64>(0)
        })
        .map(|m| m.max(0) as u64)
        .unwrap_or(0);
    let (meta, meta_problem) = match loaded {
        Ok(mut meta) => {
            meta.head = meta.head.max(max);
            (meta, None)
        }
        Err(problem) => (
            Meta {
                log_id: String::new(),
                head: max,
                checksums_from: u64::MAX,
                lost: Lost::default(),
            },
            (!problem.is_empty()).then_some(problem),
        ),
    };
    Ok(Opened {
        conn,
        path,
        meta,
        meta_problem,
        _lock: lock,
    })
}

/// Checks every record of the log in `dir` and SQLite's `integrity_check`,
/// changing nothing. Refuses a directory a running Parley holds.
pub fn verify(dir: &Path) -> Result<VerifyReport, LogError> {
    let opened = open_as_is(dir)?;
    let integrity = match pragma_check(&opened.conn, "integrity_check") {
        Ok(problems) => problems,
        Err(e) => vec![e.to_string()],
    };
    let mut readable = 0;
    let bad = walk(&opened.conn, &opened.meta, 1, opened.meta.head, |_| {
        readable += 1;
        Ok(())
    })
    .map_err(|e| e.in_file(&opened.path))?;
    Ok(VerifyReport {
        file: opened.path.clone(),
        log_id: (!opened.meta.log_id.is_empty()).then(|| opened.meta.log_id.clone()),
        head: opened.meta.head,
        readable,
        unreadable: LostRecords::group(&bad),
        previously_lost: opened.meta.lost.clone(),
        integrity,
        meta_problem: opened.meta_problem,
    })
}
