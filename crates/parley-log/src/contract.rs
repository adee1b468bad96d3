//! Backend-independent contract tests for [`EventLog`].
//!
//! Every backend must behave the same way for the services to be portable,
//! so the behaviour is written once here, as async functions over
//! `&dyn EventLog` that panic (like `assert!`) when the backend breaks the
//! contract. A backend's integration tests call each function against a
//! fresh log: `tests/jetstream.rs` does it for [`crate::jetstream`] with a
//! real nats-server, `tests/sqlite.rs` for [`crate::sqlite`].
//!
//! Test support only: compiled with the `contract-tests` feature, which
//! this crate's own tests turn on through a dev-dependency on itself.
//!
//! The functions create their own aggregates with unique names, so they also
//! pass on a log that already holds other records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    AggregateRef, AppendRequest, ConsumerOptions, EventLog, ExpectedVersion, Filter, LogError,
    LogRecord, ReadMode, StartAt,
};

/// How long a contract waits for something that should happen promptly.
const PATIENCE: Duration = Duration::from_secs(15);

/// A name no other test (in this or another process) uses: prefix, process
/// id, clock and a counter.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An append request with one `event-type` header.
pub fn request(
    aggregate: &AggregateRef,
    expected: ExpectedVersion,
    msg_id: &str,
    payload: &str,
) -> AppendRequest {
    AppendRequest {
        aggregate: aggregate.clone(),
        expected,
        msg_id: msg_id.to_string(),
        headers: vec![("event-type".to_string(), "test.v1".to_string())],
        payload: Bytes::from(payload.to_string()),
    }
}

/// Collects a `ToEnd` read, failing on errors or a read that never ends.
pub async fn read_all(
    log: &dyn EventLog,
    start: StartAt,
    filter: Filter,
) -> Result<Vec<LogRecord>, LogError> {
    let stream = log.read(start, filter, ReadMode::ToEnd).await?;
    let records: Vec<Result<LogRecord, LogError>> =
        tokio::time::timeout(PATIENCE, stream.collect())
            .await
            .expect("a ToEnd read must end");
    records.into_iter().collect()
}

/// Appends, then reads back through every read path: payloads, msg ids,
/// headers, sequences and versions agree.
pub async fn append_and_read_back(log: &dyn EventLog) {
    let aggregate = AggregateRef::new(unique("article"), unique("a")).unwrap();
    assert_eq!(log.aggregate_version(&aggregate).await.unwrap(), None);
    assert!(log.read_aggregate(&aggregate).await.unwrap().is_empty());

    let mut expected = ExpectedVersion::NoStream;
    let mut sequences = Vec::new();
    for i in 0..3 {
        let appended = log
            .append(request(
                &aggregate,
                expected,
                &unique("m"),
                &format!("body-{i}"),
            ))
            .await
            .unwrap();
        assert!(!appended.duplicate);
        if let Some(previous) = sequences.last() {
            assert!(appended.sequence > *previous, "sequences grow");
        }
        sequences.push(appended.sequence);
        expected = ExpectedVersion::Exact(appended.sequence);
    }

    assert_eq!(
        log.aggregate_version(&aggregate).await.unwrap(),
        sequences.last().copied()
    );
    assert!(log.last_sequence().await.unwrap() >= sequences[2]);

    let records = log.read_aggregate(&aggregate).await.unwrap();
    let got: Vec<u64> = records.iter().map(|r| r.sequence).collect();
    assert_eq!(got, sequences);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.aggregate, aggregate);
        assert_eq!(record.payload, Bytes::from(format!("body-{i}")));
        assert!(record.msg_id.is_some());
        assert_eq!(record.header("Event-Type"), Some("test.v1"));
        assert!(
            record.headers.iter().all(|(k, _)| !k.starts_with("Nats-")),
            "server headers are not application headers: {:?}",
            record.headers
        );
        let age = chrono::Utc::now() - record.recorded_at;
        assert!(age.num_seconds().abs() < 60, "recorded_at is now-ish");
    }

    let read = read_all(
        log,
        StartAt::Sequence(sequences[0]),
        Filter::types([aggregate.kind.clone()]),
    )
    .await
    .unwrap();
    assert_eq!(
        read.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        sequences
    );
    assert_eq!(read[1].payload, records[1].payload);
}

/// Two writers with the same expected version: exactly one wins; the other
/// gets `WrongExpectedVersion` naming the winner's sequence.
pub async fn expected_version_conflict(log: &dyn EventLog) {
    let aggregate = AggregateRef::new("talks", unique("t")).unwrap();
    let first = log
        .append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "v1",
        ))
        .await
        .unwrap();

    // A new aggregate is created once.
    let err = log
        .append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "again",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { actual: Some(s), .. } if s == first.sequence),
        "{err:?}"
    );

    for round in 0..5 {
        let version = log.aggregate_version(&aggregate).await.unwrap().unwrap();
        let a = request(
            &aggregate,
            ExpectedVersion::Exact(version),
            &unique("a"),
            "a",
        );
        let b = request(
            &aggregate,
            ExpectedVersion::Exact(version),
            &unique("b"),
            "b",
        );
        let (ra, rb) = futures::join!(log.append(a), log.append(b));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("round {round}: exactly one writer must win, got {other:?}"),
        };
        assert!(!winner.duplicate);
        match loser {
            LogError::WrongExpectedVersion { actual, .. } => {
                assert_eq!(actual, Some(winner.sequence), "round {round}")
            }
            other => panic!("round {round}: wrong error {other:?}"),
        }
    }
    let records = log.read_aggregate(&aggregate).await.unwrap();
    assert_eq!(records.len(), 6, "one record per round plus the first");

    // Stale version after others wrote.
    let err = log
        .append(request(
            &aggregate,
            ExpectedVersion::Exact(first.sequence),
            &unique("m"),
            "stale",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::WrongExpectedVersion { .. }),
        "{err:?}"
    );
}

/// The same msg id twice is stored once, whatever the expected version
/// (covers nats-server 2.12+, which checks the version before dedup).
pub async fn dedup(log: &dyn EventLog) {
    for expected_kind in ["any", "no-stream", "exact"] {
        let aggregate = AggregateRef::new("article", unique("d")).unwrap();
        let base = log
            .append(request(
                &aggregate,
                ExpectedVersion::Any,
                &unique("base"),
                "base",
            ))
            .await
            .unwrap();
        // For "no-stream" use a fresh aggregate, the base would conflict.
        let (aggregate, expected, before) = match expected_kind {
            "any" => (aggregate, ExpectedVersion::Any, 1),
            "exact" => (aggregate, ExpectedVersion::Exact(base.sequence), 1),
            _ => (
                AggregateRef::new("article", unique("d")).unwrap(),
                ExpectedVersion::NoStream,
                0,
            ),
        };
        let msg_id = unique("dup");
        let first = log
            .append(request(&aggregate, expected, &msg_id, "once"))
            .await
            .unwrap();
        assert!(!first.duplicate, "{expected_kind}");
        let second = log
            .append(request(&aggregate, expected, &msg_id, "once"))
            .await
            .unwrap_or_else(|e| panic!("{expected_kind}: retry must not fail: {e}"));
        assert!(second.duplicate, "{expected_kind}");
        assert_eq!(second.sequence, first.sequence, "{expected_kind}");

        let records = log.read_aggregate(&aggregate).await.unwrap();
        assert_eq!(records.len(), before + 1, "{expected_kind}: stored once");

        // Through the pipelined path too.
        let results = log
            .append_many(vec![request(&aggregate, expected, &msg_id, "once")])
            .await;
        let third = results.into_iter().next().unwrap().unwrap();
        assert!(third.duplicate && third.sequence == first.sequence);
    }
}

/// `append_many` returns one result per request in order, keeps each
/// aggregate's order, and reports a failing request without failing the rest.
pub async fn append_many_in_order(log: &dyn EventLog) {
    let kind = unique("many");
    let aggregates: Vec<AggregateRef> = (0..10)
        .map(|i| AggregateRef::new(kind.clone(), format!("agg-{i}")).unwrap())
        .collect();
    let mut requests = Vec::new();
    for round in 0..10 {
        for aggregate in &aggregates {
            requests.push(request(
                aggregate,
                ExpectedVersion::Any,
                &unique("m"),
                &format!("{}-{round}", aggregate.id),
            ));
        }
    }
    // One request that must conflict: the aggregate exists by then.
    requests.push(request(
        &aggregates[0],
        ExpectedVersion::NoStream,
        &unique("m"),
        "conflict",
    ));
    let results = log.append_many(requests).await;
    assert_eq!(results.len(), 101);
    let (last, ok) = results.split_last().unwrap();
    assert!(
        matches!(last, Err(LogError::WrongExpectedVersion { .. })),
        "{last:?}"
    );
    let sequences: Vec<u64> = ok.iter().map(|r| r.as_ref().unwrap().sequence).collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in request order"
    );

    for aggregate in &aggregates {
        let records = log.read_aggregate(aggregate).await.unwrap();
        let payloads: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.payload.to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..10).map(|r| format!("{}-{r}", aggregate.id)).collect();
        assert_eq!(payloads, expected);
    }
    let all = read_all(log, StartAt::Beginning, Filter::types([kind]))
        .await
        .unwrap();
    assert_eq!(all.len(), 100);
}

/// Reads start at a sequence or a time, and a `New` + `Follow` read sees
/// records appended after it started, in order.
pub async fn read_from_sequence_time_and_follow(log: &dyn EventLog) {
    let kind = unique("seq");
    let agg = |id: &str| AggregateRef::new(kind.clone(), id).unwrap();
    let a = log
        .append(request(&agg("a"), ExpectedVersion::Any, &unique("m"), "a"))
        .await
        .unwrap();
    let b = log
        .append(request(&agg("b"), ExpectedVersion::Any, &unique("m"), "b"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = log
        .append(request(&agg("c"), ExpectedVersion::Any, &unique("m"), "c"))
        .await
        .unwrap();

    let filter = Filter::types([kind.clone()]);
    let seqs = |records: Vec<LogRecord>| records.iter().map(|r| r.sequence).collect::<Vec<_>>();
    let from_b = read_all(log, StartAt::Sequence(b.sequence), filter.clone())
        .await
        .unwrap();
    assert_eq!(seqs(from_b), vec![b.sequence, c.sequence]);
    let from_start = read_all(log, StartAt::Beginning, filter.clone())
        .await
        .unwrap();
    assert_eq!(seqs(from_start), vec![a.sequence, b.sequence, c.sequence]);
    let from_time = read_all(log, StartAt::Time(cut), filter.clone())
        .await
        .unwrap();
    assert_eq!(seqs(from_time), vec![c.sequence]);
    let past_end = read_all(
        log,
        StartAt::Sequence(c.sequence + 1_000_000),
        filter.clone(),
    )
    .await
    .unwrap();
    assert!(past_end.is_empty());
    let new_to_end = read_all(log, StartAt::New, filter.clone()).await.unwrap();
    assert!(new_to_end.is_empty());

    // Follow from New: only later appends, as they happen.
    let mut follow = log
        .read(StartAt::New, filter.clone(), ReadMode::Follow)
        .await
        .unwrap();
    let mut later = Vec::new();
    for id in ["d", "e", "f"] {
        later.push(
            log.append(request(&agg(id), ExpectedVersion::Any, &unique("m"), id))
                .await
                .unwrap()
                .sequence,
        );
    }
    let mut seen = Vec::new();
    while seen.len() < later.len() {
        let record = tokio::time::timeout(PATIENCE, follow.next())
            .await
            .expect("followed records arrive")
            .expect("a Follow read does not end")
            .unwrap();
        seen.push(record.sequence);
    }
    assert_eq!(seen, later);

    // Follow from the beginning: history, then the tail.
    let mut follow = log
        .read(StartAt::Beginning, filter, ReadMode::Follow)
        .await
        .unwrap();
    let g = log
        .append(request(&agg("g"), ExpectedVersion::Any, &unique("m"), "g"))
        .await
        .unwrap();
    let mut count = 0;
    loop {
        let record = tokio::time::timeout(PATIENCE, follow.next())
            .await
            .expect("followed records arrive")
            .unwrap()
            .unwrap();
        count += 1;
        if record.sequence == g.sequence {
            break;
        }
    }
    assert_eq!(count, 7, "a, b, c, d, e, f, g");
}

/// A filter on aggregate types sees those types only.
pub async fn filter_by_aggregate_type(log: &dyn EventLog) {
    let (x, y, z) = (unique("x"), unique("y"), unique("z"));
    for (i, kind) in [&x, &y, &z, &x, &y, &z].into_iter().enumerate() {
        let aggregate = AggregateRef::new(kind.clone(), format!("id{i}")).unwrap();
        log.append(request(&aggregate, ExpectedVersion::Any, &unique("m"), "p"))
            .await
            .unwrap();
    }
    let only_x = read_all(log, StartAt::Beginning, Filter::types([x.clone()]))
        .await
        .unwrap();
    assert_eq!(only_x.len(), 2);
    assert!(only_x.iter().all(|r| r.aggregate.kind == x));

    let x_and_z = read_all(
        log,
        StartAt::Beginning,
        Filter::types([x.clone(), z.clone()]),
    )
    .await
    .unwrap();
    assert_eq!(x_and_z.len(), 4);
    assert!(
        x_and_z
            .iter()
            .all(|r| r.aggregate.kind == x || r.aggregate.kind == z)
    );

    let all = read_all(log, StartAt::Beginning, Filter::all())
        .await
        .unwrap();
    let mine = all
        .iter()
        .filter(|r| [&x, &y, &z].contains(&&r.aggregate.kind))
        .count();
    assert_eq!(mine, 6);
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));

    let none = read_all(log, StartAt::Beginning, Filter::types([unique("none")]))
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Tokens that would break the subject layout are refused, however the
/// aggregate was built; oversized payloads too.
pub async fn refuses_invalid_input(log: &dyn EventLog) {
    for bad in ["a.b", "a*", ">", "a b", ""] {
        assert!(matches!(
            AggregateRef::new("article", bad),
            Err(LogError::InvalidAggregate(_))
        ));
        // Built by hand, bypassing the constructor.
        let aggregate = AggregateRef {
            kind: "article".into(),
            id: bad.into(),
        };
        let err = log
            .append(request(&aggregate, ExpectedVersion::Any, &unique("m"), "p"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LogError::InvalidAggregate(_)),
            "{bad:?}: {err:?}"
        );
        assert!(log.aggregate_version(&aggregate).await.is_err());
    }
    let filter = Filter::types(["bad.type"]);
    assert!(
        log.read(StartAt::Beginning, filter, ReadMode::ToEnd)
            .await
            .is_err()
    );

    let aggregate = AggregateRef::new("article", unique("big")).unwrap();
    let mut big = request(&aggregate, ExpectedVersion::Any, &unique("m"), "");
    big.payload = Bytes::from(vec![b'x'; log.max_payload() + 1]);
    let err = log.append(big).await.unwrap_err();
    assert!(matches!(err, LogError::PayloadTooLarge { .. }), "{err:?}");
    let mut fits = request(&aggregate, ExpectedVersion::Any, &unique("m"), "");
    fits.payload = Bytes::from(vec![b'x'; log.max_payload()]);
    log.append(fits).await.unwrap();
}

/// Blobs round-trip (small and larger than a record may be), are
/// content-addressed, and a missing one is an error.
pub async fn blob_round_trip(log: &dyn EventLog) {
    let small = Bytes::from(unique("small blob"));
    let blob = log.put_blob(small.clone()).await.unwrap();
    assert_eq!(blob.size, small.len() as u64);
    assert_eq!(blob.key.len(), 64);
    assert_eq!(log.get_blob(&blob).await.unwrap(), small);
    assert_eq!(
        log.put_blob(small.clone()).await.unwrap(),
        blob,
        "same bytes, same ref"
    );

    // Larger than one record: 2.5 × max_payload of varied bytes.
    let size = log.max_payload() * 5 / 2;
    let seed = unique("large");
    let large: Bytes = seed
        .bytes()
        .cycle()
        .take(size)
        .enumerate()
        .map(|(i, b)| b ^ (i as u8))
        .collect();
    let large_ref = log.put_blob(large.clone()).await.unwrap();
    assert_ne!(large_ref.key, blob.key);
    let back = log.get_blob(&large_ref).await.unwrap();
    assert_eq!(back.len(), large.len());
    assert!(back == large);

    let mut missing = blob.clone();
    missing.key = "0".repeat(64);
    assert!(matches!(
        log.get_blob(&missing).await,
        Err(LogError::Blob { .. })
    ));
}

/// A durable consumer delivers matching records; acked ones are not seen
/// again, unacked and nak'ed ones come back with a higher delivery count,
/// and a second consumer handle with the same name resumes where the first
/// stopped.
pub async fn durable_consumer_acks_and_redelivers(log: &dyn EventLog) {
    let kind = unique("dur");
    let mut sequences = Vec::new();
    for i in 0..6 {
        let aggregate = AggregateRef::new(kind.clone(), format!("a{i}")).unwrap();
        sequences.push(
            log.append(request(&aggregate, ExpectedVersion::Any, &unique("m"), "p"))
                .await
                .unwrap()
                .sequence,
        );
    }
    // Noise of another type must not reach the consumer.
    let other = AggregateRef::new(unique("other"), "x").unwrap();
    log.append(request(&other, ExpectedVersion::Any, &unique("m"), "noise"))
        .await
        .unwrap();

    let mut options = ConsumerOptions::new(unique("svc"), Filter::types([kind.clone()]));
    options.ack_wait = Duration::from_secs(1);
    options.max_deliver = 5;
    let mut consumer = log.consumer(options.clone()).await.unwrap();
    let mut first_round = Vec::new();
    for i in 0..6 {
        let delivery = tokio::time::timeout(PATIENCE, consumer.next())
            .await
            .expect("delivery arrives")
            .unwrap()
            .unwrap();
        assert_eq!(delivery.delivery_count, 1);
        assert_eq!(delivery.record.aggregate.kind, kind);
        // The exact lag: matching records still behind this one, the noise
        // of another type not counted.
        assert_eq!(delivery.pending, Some(5 - i), "{delivery:?}");
        first_round.push(delivery);
    }
    let seen: Vec<u64> = first_round.iter().map(|d| d.record.sequence).collect();
    assert_eq!(seen, sequences);

    // Ack 0..3, nak 3, leave 4 and 5 unacked (they time out after ack_wait).
    let mut rest = first_round.split_off(3);
    for delivery in first_round {
        delivery.ack().await.unwrap();
    }
    rest.remove(0).nak().await.unwrap();
    drop(rest);
    drop(consumer);

    // The same durable name resumes: only 3, 4, 5 come back, redelivered.
    let mut consumer = log.consumer(options).await.unwrap();
    let mut again = Vec::new();
    while again.len() < 3 {
        let delivery = tokio::time::timeout(PATIENCE, consumer.next())
            .await
            .expect("redelivery arrives")
            .unwrap()
            .unwrap();
        assert!(delivery.delivery_count >= 2, "{delivery:?}");
        again.push(delivery.record.sequence);
        delivery.ack().await.unwrap();
    }
    again.sort_unstable();
    assert_eq!(again, sequences[3..].to_vec());
    // Nothing else is pending.
    let extra = tokio::time::timeout(Duration::from_millis(2500), consumer.next()).await;
    assert!(extra.is_err(), "no further deliveries: {extra:?}");
}
