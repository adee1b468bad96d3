//! Embedded (SQLite) backend throughput: appends and a full replay.
//!
//! In a fresh temporary data directory, appends N records of ~500 bytes to
//! distinct aggregates (expected version "no stream", a msg id and one
//! application header, as Parley's services do):
//! - through `append_many` in batches of 1,000 (one transaction, one fsync
//!   per batch), and as one call of all N;
//! - through single `append`s (one fsync each), for a smaller count;
//!
//! then replays the whole log with a `ToEnd` read, and reopens the
//! directory (what a restart costs).
//!
//! Run: `cargo bench -p parley-log --bench embedded` (env `APPEND_N` changes N).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use parley_log::sqlite::SqliteLog;
use parley_log::{
    AggregateRef, AppendRequest, EventLog, ExpectedVersion, Filter, ReadMode, StartAt,
};

const PAYLOAD_BYTES: usize = 500;
const BATCH: usize = 1_000;
const SINGLE_APPENDS: usize = 500;

fn payload(i: usize) -> Bytes {
    let mut body = format!("{{\"n\":{i},\"text\":\"");
    while body.len() < PAYLOAD_BYTES - 2 {
        body.push_str("ceasefire talks resume ");
    }
    body.truncate(PAYLOAD_BYTES - 2);
    body.push_str("\"}");
    Bytes::from(body)
}

fn requests(run: &str, n: usize) -> Vec<AppendRequest> {
    (0..n)
        .map(|i| AppendRequest {
            aggregate: AggregateRef::new(format!("bench{run}"), format!("a{i}")).unwrap(),
            expected: ExpectedVersion::NoStream,
            msg_id: format!("{run}-{i}"),
            headers: vec![("parley-event-type".to_string(), "article.v1".to_string())],
            payload: payload(i),
        })
        .collect()
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn check(results: &[Result<parley_log::Appended, parley_log::LogError>]) {
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "{failed} appends failed");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("APPEND_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let log = SqliteLog::open(dir.path())?;
    println!(
        "sqlite (bundled, WAL, synchronous=FULL) in {} | {n} appends x {PAYLOAD_BYTES} B to \
         distinct aggregates, expected-version + msg-id + 1 header",
        dir.path().display()
    );

    // append_many in batches of BATCH.
    let batches: Vec<Vec<AppendRequest>> = requests("batched", n)
        .chunks(BATCH)
        .map(<[AppendRequest]>::to_vec)
        .collect();
    let started = Instant::now();
    for batch in batches {
        check(&log.append_many(batch).await);
    }
    let batched = started.elapsed();
    println!(
        "append_many, batches of {BATCH}: {:>8.0} appends/s ({:.2} s)",
        rate(n, batched),
        batched.as_secs_f64()
    );

    // append_many, everything in one call.
    let all = requests("one-call", n);
    let started = Instant::now();
    check(&log.append_many(all).await);
    let one_call = started.elapsed();
    println!(
        "append_many, one call of {n}: {:>8.0} appends/s ({:.2} s)",
        rate(n, one_call),
        one_call.as_secs_f64()
    );

    // Single appends: one transaction and one fsync each.
    let singles = requests("single", SINGLE_APPENDS);
    let started = Instant::now();
    for request in singles {
        log.append(request).await?;
    }
    let single = started.elapsed();
    println!(
        "append, one at a time ({SINGLE_APPENDS}): {:>8.0} appends/s ({:.2} ms each)",
        rate(SINGLE_APPENDS, single),
        single.as_secs_f64() * 1000.0 / SINGLE_APPENDS as f64
    );

    // Full replay of everything above.
    let total = log.last_sequence().await? as usize;
    let started = Instant::now();
    let mut stream = log
        .read(StartAt::Beginning, Filter::all(), ReadMode::ToEnd)
        .await?;
    let (mut count, mut bytes) = (0usize, 0usize);
    while let Some(record) = stream.next().await {
        let record = record?;
        count += 1;
        bytes += record.payload.len();
    }
    let replay = started.elapsed();
    assert_eq!(count, total);
    println!(
        "replay (read ToEnd) of {count} records: {:>8.0} records/s ({:.2} s, {:.1} MB/s)",
        rate(count, replay),
        replay.as_secs_f64(),
        bytes as f64 / 1e6 / replay.as_secs_f64()
    );

    // Filtered replay: one type out of three.
    let started = Instant::now();
    let stream = log
        .read(
            StartAt::Beginning,
            Filter::types(["benchbatched"]),
            ReadMode::ToEnd,
        )
        .await?;
    let filtered = stream.count().await;
    let filtered_time = started.elapsed();
    assert_eq!(filtered, n);
    println!(
        "replay of one type ({filtered} of {count}): {:>8.0} records/s ({:.2} s)",
        rate(filtered, filtered_time),
        filtered_time.as_secs_f64()
    );

    // Closing releases the directory lock; reopening shows what a restart costs.
    drop(log);
    let started = Instant::now();
    let reopened = SqliteLog::open(dir.path())?;
    assert_eq!(reopened.last_sequence().await? as usize, total);
    println!(
        "reopen with {total} records: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
