//! The embedded (SQLite) backend: the shared contract, plus what only a
//! data directory can show: reopening, the directory lock, schema versions
//! and unwritable directories. Each test uses its own temporary directory.

use std::time::Duration;

use parley_log::contract::{self, request};
use parley_log::sqlite::{DATABASE_FILE, SCHEMA_VERSION, SqliteLog};
use parley_log::{
    AggregateRef, ConsumerOptions, DurableConsumer, EventLog, ExpectedVersion, Filter, LogError,
    ReadMode, StartAt,
};
use tempfile::TempDir;

fn open() -> (TempDir, SqliteLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path()).expect("opens");
    (dir, log)
}

#[tokio::test]
async fn contract_append_and_read_back() {
    let (_dir, log) = open();
    contract::append_and_read_back(&log).await;
}

#[tokio::test]
async fn contract_expected_version_conflict() {
    let (_dir, log) = open();
    contract::expected_version_conflict(&log).await;
}

#[tokio::test]
async fn contract_dedup() {
    let (_dir, log) = open();
    contract::dedup(&log).await;
}

#[tokio::test]
async fn contract_append_many_in_order() {
    let (_dir, log) = open();
    contract::append_many_in_order(&log).await;
}

#[tokio::test]
async fn contract_read_from_sequence_time_and_follow() {
    let (_dir, log) = open();
    contract::read_from_sequence_time_and_follow(&log).await;
}

#[tokio::test]
async fn contract_filter_by_aggregate_type() {
    let (_dir, log) = open();
    contract::filter_by_aggregate_type(&log).await;
}

#[tokio::test]
async fn contract_refuses_invalid_input() {
    let (_dir, log) = open();
    contract::refuses_invalid_input(&log).await;
}

#[tokio::test]
async fn contract_blob_round_trip() {
    let (_dir, log) = open();
    contract::blob_round_trip(&log).await;
}

#[tokio::test]
async fn contract_durable_consumer_acks_and_redelivers() {
    let (_dir, log) = open();
    contract::durable_consumer_acks_and_redelivers(&log).await;
}

/// The first sequence is 1 and it grows by one per stored record.
#[tokio::test]
async fn sequences_start_at_one() {
    let (_dir, log) = open();
    assert_eq!(log.last_sequence().await.unwrap(), 0);
    let aggregate = AggregateRef::new("article", "a").unwrap();
    let first = log
        .append(request(&aggregate, ExpectedVersion::NoStream, "m1", "x"))
        .await
        .unwrap();
    assert_eq!(first.sequence, 1);
    let second = log
        .append(request(&aggregate, ExpectedVersion::Exact(1), "m2", "y"))
        .await
        .unwrap();
    assert_eq!(second.sequence, 2);
    assert_eq!(log.last_sequence().await.unwrap(), 2);
}

/// Records, versions, dedup and consumer cursors survive closing and
/// reopening the directory; sequences continue where they stopped.
#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let aggregate = AggregateRef::new("talks", "t1").unwrap();
    let kind = "svc".to_string();
    let mut options = ConsumerOptions::new("resolver", Filter::types([kind.clone()]));
    options.ack_wait = Duration::from_secs(30);
    let mut consumed = Vec::new();
    {
        let log = SqliteLog::open(dir.path()).unwrap();
        let mut version = ExpectedVersion::NoStream;
        for i in 0..5 {
            let appended = log
                .append(request(
                    &aggregate,
                    version,
                    &format!("m{i}"),
                    &i.to_string(),
                ))
                .await
                .unwrap();
            version = ExpectedVersion::Exact(appended.sequence);
        }
        for i in 0..4 {
            let other = AggregateRef::new(kind.clone(), format!("a{i}")).unwrap();
            consumed.push(
                log.append(request(&other, ExpectedVersion::Any, &format!("s{i}"), "p"))
                    .await
                    .unwrap()
                    .sequence,
            );
        }
        let mut consumer = log.consumer(options.clone()).await.unwrap();
        let mut deliveries = Vec::new();
        for _ in 0..4 {
            deliveries.push(next_delivery(&mut consumer).await);
        }
        // Ack the first and the third: the cursor stays after the first.
        let mut deliveries = deliveries.into_iter();
        deliveries.next().unwrap().ack().await.unwrap();
        let second = deliveries.next().unwrap();
        deliveries.next().unwrap().ack().await.unwrap();
        drop(second);
    }

    let log = SqliteLog::open(dir.path()).unwrap();
    let records = log.read_aggregate(&aggregate).await.unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(&records[4].payload[..], b"4");
    assert_eq!(records[0].header("event-type"), Some("test.v1"));
    assert_eq!(log.aggregate_version(&aggregate).await.unwrap(), Some(5));
    assert_eq!(log.last_sequence().await.unwrap(), 9);
    let again = log
        .append(request(&aggregate, ExpectedVersion::Exact(5), "m0", "0"))
        .await
        .unwrap();
    assert!(again.duplicate, "dedup survives a restart");
    assert_eq!(again.sequence, 1);
    let next = log
        .append(request(&aggregate, ExpectedVersion::Exact(5), "m5", "5"))
        .await
        .unwrap();
    assert_eq!(next.sequence, 10);

    // Unacked deliveries come back at once (not after ack_wait), counted.
    let mut consumer = log.consumer(options).await.unwrap();
    let mut redelivered = Vec::new();
    for _ in 0..2 {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.delivery_count, 2, "{delivery:?}");
        redelivered.push(delivery.record.sequence);
        delivery.ack().await.unwrap();
    }
    redelivered.sort_unstable();
    assert_eq!(redelivered, vec![consumed[1], consumed[3]]);
    let extra = tokio::time::timeout(Duration::from_millis(500), consumer.next()).await;
    assert!(extra.is_err(), "acked records stay acked: {extra:?}");
}

/// `max_ack_pending` bounds unacked deliveries; acking frees room.
#[tokio::test]
async fn max_ack_pending_bounds_in_flight() {
    let (_dir, log) = open();
    let aggregate = AggregateRef::new("article", "a").unwrap();
    for i in 0..5 {
        log.append(request(
            &aggregate,
            ExpectedVersion::Any,
            &format!("m{i}"),
            "p",
        ))
        .await
        .unwrap();
    }
    let mut options = ConsumerOptions::new("notify", Filter::all());
    options.max_ack_pending = 2;
    let mut consumer = log.consumer(options).await.unwrap();
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    let blocked = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
    assert!(blocked.is_err(), "a third delivery waits: {blocked:?}");
    second.ack().await.unwrap();
    let third = next_delivery(&mut consumer).await;
    assert_eq!(third.record.sequence, 3);
    first.term().await.unwrap();
    third.ack().await.unwrap();
    assert_eq!(next_delivery(&mut consumer).await.record.sequence, 4);
}

/// A record nak'ed up to `max_deliver` times is parked and not delivered again.
#[tokio::test]
async fn max_deliver_parks_a_poison_record() {
    let (_dir, log) = open();
    let aggregate = AggregateRef::new("article", "poison").unwrap();
    log.append(request(&aggregate, ExpectedVersion::Any, "m", "p"))
        .await
        .unwrap();
    let mut options = ConsumerOptions::new("svc", Filter::all());
    options.max_deliver = 2;
    options.ack_wait = Duration::from_millis(100);
    let mut consumer = log.consumer(options).await.unwrap();
    for count in 1..=2 {
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.delivery_count, count);
        delivery.nak().await.unwrap();
    }
    let extra = tokio::time::timeout(Duration::from_millis(600), consumer.next()).await;
    assert!(extra.is_err(), "parked: {extra:?}");
}

/// A Follow read from the beginning of an empty log sees the first append.
#[tokio::test]
async fn follow_on_an_empty_log() {
    use futures::StreamExt;
    let (_dir, log) = open();
    let mut follow = log
        .read(StartAt::Beginning, Filter::all(), ReadMode::Follow)
        .await
        .unwrap();
    let aggregate = AggregateRef::new("article", "a").unwrap();
    log.append(request(&aggregate, ExpectedVersion::Any, "m", "p"))
        .await
        .unwrap();
    let record = tokio::time::timeout(Duration::from_secs(5), follow.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(record.sequence, 1);
}

/// A second open of a directory in use fails and names the directory.
#[tokio::test]
async fn second_open_is_refused() {
    let (dir, log) = open();
    let err = SqliteLog::open(dir.path()).unwrap_err();
    assert!(matches!(err, LogError::DataDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("already locked"), "{message}");
    drop(log);
    SqliteLog::open(dir.path()).expect("the lock is released on drop");
}

/// A database written by a newer schema is refused and left unchanged.
#[tokio::test]
async fn newer_schema_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (1);")
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteLog::open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LogError::DataDir { .. }), "{err:?}");
    assert!(message.contains("newer"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
    assert!(!dir.path().join(format!("{DATABASE_FILE}-wal")).exists());
}

/// A directory Parley cannot write is refused with its name: a path under
/// a regular file always, a read-only directory when not running as root.
#[tokio::test]
async fn unwritable_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("data");
    let err = SqliteLog::open(&under_file).unwrap_err();
    assert!(matches!(err, LogError::DataDir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&under_file.display().to_string()),
        "{err}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root ignores mode bits: only assert when they bite.
        let bites = std::fs::write(read_only.join("probe"), b"x").is_err();
        let result = SqliteLog::open(&read_only);
        if bites {
            let err = result.unwrap_err();
            assert!(matches!(err, LogError::DataDir { .. }), "{err:?}");
            assert!(err.to_string().contains("not writable"), "{err}");
            assert!(
                err.to_string().contains(&read_only.display().to_string()),
                "{err}"
            );
        }
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A file that is not a SQLite database is refused, naming it.
#[tokio::test]
async fn garbage_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DATABASE_FILE), vec![b'z'; 4096]).unwrap();
    let err = SqliteLog::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains(DATABASE_FILE), "{err}");
}

async fn next_delivery(consumer: &mut Box<dyn DurableConsumer>) -> parley_log::Delivery {
    tokio::time::timeout(Duration::from_secs(15), consumer.next())
        .await
        .expect("a delivery arrives")
        .expect("the consumer is open")
        .expect("no error")
}
