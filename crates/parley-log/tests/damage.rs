//! A damaged embedded log is never silently shorter: random bytes over its
//! pages (several deterministic seeds), a truncated file, a record changed
//! in place, and a schema-1 log all end in a refusal naming the file and
//! the first bad record, in a complete read, or in a salvage that names its
//! losses and leaves a log that verifies.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use futures::StreamExt;
use parley_log::sqlite::{DATABASE_FILE, SqliteLog, salvage, verify};
use parley_log::{
    AggregateRef, AppendRequest, ErrorClass, EventLog, ExpectedVersion, Filter, LogError, ReadMode,
    StartAt,
};

const RECORDS: u64 = 300;

fn payload(i: u64) -> Vec<u8> {
    format!("{i:05} ").repeat(300).into_bytes()
}

/// A closed log of [`RECORDS`] records of ~1.8 KB each.
async fn build(dir: &Path) {
    let log = SqliteLog::open(dir).unwrap();
    let requests = (0..RECORDS)
        .map(|i| AppendRequest {
            aggregate: AggregateRef::new(
                if i % 3 == 0 { "talks" } else { "article" },
                format!("a{i}"),
            )
            .unwrap(),
            expected: ExpectedVersion::NoStream,
            msg_id: format!("m{i}"),
            headers: vec![("event-type".into(), "test.v1".into())],
            payload: payload(i + 1).into(),
        })
        .collect();
    for result in log.append_many(requests).await {
        result.unwrap();
    }
}

/// Reads the whole log: every record, or the first error.
async fn read_all(log: &SqliteLog) -> Result<Vec<parley_log::LogRecord>, LogError> {
    let stream = log
        .read(StartAt::Beginning, Filter::all(), ReadMode::ToEnd)
        .await?;
    stream.collect::<Vec<_>>().await.into_iter().collect()
}

/// Deterministic bytes (xorshift).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

/// What opening and replaying a damaged log gives: `Ok(n)` for a complete,
/// intact replay of `n` records, or the first error.
async fn outcome(dir: &Path) -> Result<u64, LogError> {
    let log = SqliteLog::open(dir)?;
    let records = read_all(&log).await?;
    for record in &records {
        assert_eq!(
            &record.payload[..],
            &payload(record.sequence)[..],
            "record {} came back changed",
            record.sequence
        );
    }
    Ok(records.len() as u64)
}

fn assert_loud(error: &LogError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "names the file: {message}"
    );
    assert!(
        matches!(error.class(), ErrorClass::Corrupt) || matches!(error, LogError::DataDir { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn random_damage_is_refused_or_harmless_never_a_shorter_log() {
    let (mut refused, mut intact) = (0, 0);
    for seed in 1..=8u64 {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path()).await;
        let path = dir.path().join(DATABASE_FILE);
        let size = std::fs::metadata(&path).unwrap().len();
        // Anywhere past the first page (the header page is SQLite's own
        // business: damage there refuses the file outright).
        let offset = 4096
            + noise(seed, 8).iter().fold(0u64, |a, b| a * 256 + *b as u64) % (size - 4096 - 512);
        overwrite(&path, offset, &noise(seed + 100, 512));
        match outcome(dir.path()).await {
            Ok(count) => {
                assert_eq!(count, RECORDS, "seed {seed}: a silent partial replay");
                intact += 1;
            }
            Err(error) => {
                eprintln!("seed {seed}: {error}");
                assert_loud(&error, &path);
                refused += 1;
                // The repair path: salvage names its losses, and the result
                // verifies and replays what it kept.
                let into = tempfile::tempdir().unwrap();
                let report = salvage(dir.path(), into.path()).unwrap();
                assert_eq!(report.copied + report.lost_count(), RECORDS, "{report}");
                let check = verify(into.path()).unwrap();
                assert!(check.is_ok(), "{check}");
                let log = SqliteLog::open(into.path()).unwrap();
                let kept = read_all(&log).await.unwrap();
                assert_eq!(kept.len() as u64, report.copied, "{report}");
                for run in &report.lost {
                    for sequence in run.first..=run.last {
                        assert!(kept.iter().all(|r| r.sequence != sequence));
                    }
                }
            }
        }
    }
    assert!(refused > 0, "some damage must be caught ({intact} intact)");
}

#[tokio::test]
async fn a_changed_record_fails_its_checksum_with_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let path = dir.path().join(DATABASE_FILE);
    {
        // Bytes changed inside a payload keep the page valid for SQLite.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE events SET payload = ?1 WHERE seq = 145",
            [payload(999)],
        )
        .unwrap();
    }
    let log = SqliteLog::open(dir.path()).unwrap();
    let error = read_all(&log).await.unwrap_err();
    assert_loud(&error, &path);
    assert!(
        matches!(
            error,
            LogError::Corrupt {
                sequence: Some(145),
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("checksum mismatch"), "{error}");
    drop(log);
    let report = verify(dir.path()).unwrap();
    assert_eq!(report.unreadable_count(), 1, "{report}");
    assert_eq!(report.unreadable[0].first, 145, "{report}");
}

#[tokio::test]
async fn deleted_rows_are_missing_sequences_not_the_end_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let path = dir.path().join(DATABASE_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("DELETE FROM events WHERE seq >= 145 AND seq <= 150", [])
            .unwrap();
    }
    let error = SqliteLog::open(dir.path()).unwrap_err();
    assert_loud(&error, &path);
    let message = error.to_string();
    assert!(message.contains("record 145"), "{message}");
    assert!(message.contains("6 records"), "{message}");

    let into = tempfile::tempdir().unwrap();
    let report = salvage(dir.path(), into.path()).unwrap();
    assert_eq!(report.lost_count(), 6, "{report}");
    assert_eq!((report.lost[0].first, report.lost[0].last), (145, 150));
    let log = SqliteLog::open(into.path()).unwrap();
    assert_eq!(read_all(&log).await.unwrap().len() as u64, RECORDS - 6);
    // The msg ids of the lost records are free again: re-ingesting works.
    let again = log
        .append(AppendRequest {
            aggregate: AggregateRef::new("article", "a145").unwrap(),
            expected: ExpectedVersion::Any,
            msg_id: "m145".into(),
            headers: vec![],
            payload: payload(1).into(),
        })
        .await
        .unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.sequence, RECORDS + 1);
}

#[tokio::test]
async fn a_truncated_log_is_refused_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path()).await;
    let path = dir.path().join(DATABASE_FILE);
    let size = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size / 2)
        .unwrap();
    let error = outcome(dir.path()).await.unwrap_err();
    assert_loud(&error, &path);
}

#[tokio::test]
async fn a_schema_1_log_is_migrated_and_still_verified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, \
             agg_id TEXT NOT NULL, msg_id TEXT NOT NULL UNIQUE, headers BLOB NOT NULL, \
             payload BLOB NOT NULL, recorded_at INTEGER NOT NULL);
             CREATE TABLE consumers (name TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
             CREATE TABLE consumer_records (name TEXT NOT NULL, seq INTEGER NOT NULL, \
             deliveries INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (name, seq)) WITHOUT ROWID;
             CREATE TABLE blobs (key TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
             INSERT INTO events VALUES (1, 'article', 'a', 'm1', x'', x'7878', 1);
             INSERT INTO events VALUES (2, 'article', 'b', 'm2', x'', x'7979', 2);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let log = SqliteLog::open(dir.path()).unwrap();
    let aggregate = AggregateRef::new("article", "c").unwrap();
    log.append(AppendRequest {
        aggregate,
        expected: ExpectedVersion::Any,
        msg_id: "m3".into(),
        headers: vec![],
        payload: "z".into(),
    })
    .await
    .unwrap();
    let records = read_all(&log).await.unwrap();
    assert_eq!(records.len(), 3);
    drop(log);
    assert!(verify(dir.path()).unwrap().is_ok());
}
