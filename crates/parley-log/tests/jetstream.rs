//! The JetStream backend against a real nats-server (started by
//! parley-testkit, one per test so tests stay independent).
//!
//! The backend-independent behaviour lives in `parley_log::contract`; this
//! file runs it here and adds what only a server can show: restarts,
//! crashes, two clients racing, the stream's configuration.

use std::time::Duration;

use parley_log::contract::{self, request, unique};
use parley_log::jetstream::{JetStreamConfig, JetStreamLog};
use parley_log::{
    AggregateRef, ConsumerOptions, EventLog, ExpectedVersion, Filter, LogError, StartAt,
};
use parley_testkit::NatsServer;

async fn start() -> (NatsServer, JetStreamLog) {
    let server = NatsServer::start().expect("nats-server starts (run scripts/install-tools)");
    let log = JetStreamLog::connect(JetStreamConfig::new(server.url()))
        .await
        .expect("connects");
    (server, log)
}

#[tokio::test]
async fn contract_append_and_read_back() {
    let (_server, log) = start().await;
    contract::append_and_read_back(&log).await;
}

#[tokio::test]
async fn contract_expected_version_conflict() {
    let (_server, log) = start().await;
    contract::expected_version_conflict(&log).await;
}

#[tokio::test]
async fn contract_dedup() {
    let (_server, log) = start().await;
    contract::dedup(&log).await;
}

#[tokio::test]
async fn contract_append_many_in_order() {
    let (_server, log) = start().await;
    contract::append_many_in_order(&log).await;
}

#[tokio::test]
async fn contract_read_from_sequence_time_and_follow() {
    let (_server, log) = start().await;
    contract::read_from_sequence_time_and_follow(&log).await;
}

#[tokio::test]
async fn contract_filter_by_aggregate_type() {
    let (_server, log) = start().await;
    contract::filter_by_aggregate_type(&log).await;
}

#[tokio::test]
async fn contract_refuses_invalid_input() {
    let (_server, log) = start().await;
    contract::refuses_invalid_input(&log).await;
}

#[tokio::test]
async fn contract_blob_round_trip() {
    let (_server, log) = start().await;
    contract::blob_round_trip(&log).await;
}

#[tokio::test]
async fn contract_durable_consumer_acks_and_redelivers() {
    let (_server, log) = start().await;
    contract::durable_consumer_acks_and_redelivers(&log).await;
}

/// Two separate connections race on one aggregate: every round has exactly
/// one winner, and the aggregate ends with one record per round.
#[tokio::test]
async fn two_clients_race_on_one_aggregate() {
    let (server, log_a) = start().await;
    let log_b = JetStreamLog::connect(JetStreamConfig::new(server.url()))
        .await
        .unwrap();
    let aggregate = AggregateRef::new("talks", unique("race")).unwrap();
    let mut version = log_a
        .append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "0",
        ))
        .await
        .unwrap()
        .sequence;
    for round in 0..20 {
        let expected = ExpectedVersion::Exact(version);
        let (a, b) = tokio::join!(
            log_a.append(request(&aggregate, expected, &unique("a"), "a")),
            log_b.append(request(&aggregate, expected, &unique("b"), "b")),
        );
        version = match (a, b) {
            (Ok(w), Err(LogError::WrongExpectedVersion { actual, .. }))
            | (Err(LogError::WrongExpectedVersion { actual, .. }), Ok(w)) => {
                assert_eq!(actual, Some(w.sequence));
                w.sequence
            }
            other => panic!("round {round}: {other:?}"),
        };
    }
    assert_eq!(log_b.read_aggregate(&aggregate).await.unwrap().len(), 21);
    assert_eq!(
        log_b.aggregate_version(&aggregate).await.unwrap(),
        Some(version)
    );
}

/// Connecting again (another service, or a restart) reuses the stream and
/// its data; the stream has the settings Parley relies on.
#[tokio::test]
async fn connect_is_idempotent_and_configures_the_stream() {
    let (server, log) = start().await;
    let aggregate = AggregateRef::new("article", unique("a")).unwrap();
    let appended = log
        .append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "x",
        ))
        .await
        .unwrap();

    let again = JetStreamLog::connect(JetStreamConfig::new(server.url()))
        .await
        .unwrap();
    assert_eq!(
        again.aggregate_version(&aggregate).await.unwrap(),
        Some(appended.sequence)
    );
    assert!(again.server_version().starts_with("2."));
    assert!(again.max_payload() > 100_000);

    let mut stream = again.context().get_stream("PARLEY").await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.subjects, vec!["parley.evt.>".to_string()]);
    assert!(config.allow_direct);
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
}

/// A smaller configured payload cap is honoured.
#[tokio::test]
async fn max_payload_override() {
    let server = NatsServer::start().unwrap();
    let mut config = JetStreamConfig::new(server.url());
    config.max_payload = Some(1000);
    let log = JetStreamLog::connect(config).await.unwrap();
    assert_eq!(log.max_payload(), 1000);
    let aggregate = AggregateRef::new("article", unique("a")).unwrap();
    let mut big = request(&aggregate, ExpectedVersion::Any, &unique("m"), "");
    big.payload = vec![0u8; 1001].into();
    assert!(matches!(
        log.append(big).await,
        Err(LogError::PayloadTooLarge {
            size: 1001,
            limit: 1000
        })
    ));
}

/// Nothing listens: connect fails as `Unavailable` (transient), not a panic.
#[tokio::test]
async fn connect_to_nothing_is_unavailable() {
    let port = parley_testkit::free_port().unwrap();
    let err = JetStreamLog::connect(JetStreamConfig::new(format!("nats://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// A crash (SIGKILL) and restart keeps acknowledged records, and the same
/// `JetStreamLog` reconnects and keeps working.
#[tokio::test]
async fn restart_after_crash_keeps_data() {
    let (mut server, log) = start().await;
    let aggregate = AggregateRef::new("article", unique("a")).unwrap();
    let mut version = ExpectedVersion::NoStream;
    for i in 0..20 {
        let appended = log
            .append(request(&aggregate, version, &unique("m"), &i.to_string()))
            .await
            .unwrap();
        version = ExpectedVersion::Exact(appended.sequence);
    }
    server.kill();
    server.restart().unwrap();

    let records = eventually(|| log.read_aggregate(&aggregate)).await;
    assert_eq!(records.len(), 20);
    assert_eq!(&records[19].payload[..], b"19");
    let next = eventually(|| log.append(request(&aggregate, version, &unique("m"), "after"))).await;
    assert_eq!(next.sequence, 21);
}

/// Acks survive a server restart; unacked records are redelivered to the
/// consumer handle the service already holds.
#[tokio::test]
async fn durable_consumer_survives_server_restart() {
    let (mut server, log) = start().await;
    let kind = unique("svc");
    let mut sequences = Vec::new();
    for i in 0..4 {
        let aggregate = AggregateRef::new(kind.clone(), format!("a{i}")).unwrap();
        sequences.push(
            log.append(request(&aggregate, ExpectedVersion::Any, &unique("m"), "p"))
                .await
                .unwrap()
                .sequence,
        );
    }
    let mut options = ConsumerOptions::new("resolver", Filter::types([kind.clone()]));
    options.ack_wait = Duration::from_secs(1);
    let mut consumer = log.consumer(options.clone()).await.unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..4 {
        deliveries.push(next_delivery(&mut consumer).await);
    }
    let unacked = deliveries.split_off(2);
    for delivery in deliveries {
        delivery.ack().await.unwrap();
    }
    drop(unacked);

    server.restart().unwrap();

    // The old handle keeps going after the reconnect.
    let mut redelivered = Vec::new();
    while redelivered.len() < 2 {
        let delivery = next_delivery(&mut consumer).await;
        assert!(delivery.delivery_count >= 2, "{delivery:?}");
        redelivered.push(delivery.record.sequence);
        delivery.ack().await.unwrap();
    }
    redelivered.sort_unstable();
    assert_eq!(redelivered, sequences[2..].to_vec());

    // A new handle (the service restarted too) sees only new records.
    drop(consumer);
    let mut consumer = log.consumer(options).await.unwrap();
    let aggregate = AggregateRef::new(kind.clone(), "late").unwrap();
    let late = eventually(|| {
        log.append(request(
            &aggregate,
            ExpectedVersion::Any,
            &unique("m"),
            "late",
        ))
    })
    .await;
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.record.sequence, late.sequence);
    assert_eq!(delivery.delivery_count, 1);
    delivery.ack().await.unwrap();
}

/// Records stay readable from a new connection after a graceful restart,
/// and reads by time still work on the restored stream.
#[tokio::test]
async fn restart_keeps_data_for_new_connections() {
    let (mut server, log) = start().await;
    let kind = unique("keep");
    for i in 0..10 {
        let aggregate = AggregateRef::new(kind.clone(), format!("a{i}")).unwrap();
        log.append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "p",
        ))
        .await
        .unwrap();
    }
    let last = log.last_sequence().await.unwrap();
    drop(log);
    server.restart().unwrap();
    let log = JetStreamLog::connect(JetStreamConfig::new(server.url()))
        .await
        .unwrap();
    assert_eq!(log.last_sequence().await.unwrap(), last);
    let all = contract::read_all(&log, StartAt::Beginning, Filter::types([kind]))
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
}

async fn next_delivery(
    consumer: &mut Box<dyn parley_log::DurableConsumer>,
) -> parley_log::Delivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, consumer.next()).await {
            Ok(Some(Ok(delivery))) => return delivery,
            // Transient while the server restarts.
            Ok(Some(Err(e))) if e.is_transient() => continue,
            Ok(other) => panic!("consumer: {other:?}"),
            Err(_) => panic!("no delivery within 30 s"),
        }
    }
}

/// Retries an operation while the client reconnects after a restart.
async fn eventually<T, F, Fut>(mut operation: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LogError>>,
{
    let mut last = None;
    for _ in 0..100 {
        match operation().await {
            Ok(value) => return value,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still failing after a restart: {last:?}");
}

/// On a 3-node cluster with 3 replicas the log keeps accepting appends and
/// reads while one node is down, and the node catches up after a restart.
#[tokio::test]
async fn three_node_cluster_survives_a_node_loss() {
    let mut cluster = parley_testkit::NatsCluster::start(3).expect("cluster starts");
    let mut config = JetStreamConfig::new(cluster.url());
    config.replicas = 3;
    let log = eventually(|| JetStreamLog::connect(config.clone())).await;
    let aggregate = AggregateRef::new("talks", unique("c")).unwrap();
    let first = log
        .append(request(
            &aggregate,
            ExpectedVersion::NoStream,
            &unique("m"),
            "1",
        ))
        .await
        .unwrap();

    // Lose a node the client is not necessarily connected to; writes go on
    // as long as a majority (2 of 3) is up.
    cluster.kill(2);
    let mut version = first.sequence;
    for i in 0..5 {
        let appended = eventually(|| {
            log.append(request(
                &aggregate,
                ExpectedVersion::Exact(version),
                &format!("{}-{i}", aggregate.id),
                "during",
            ))
        })
        .await;
        version = appended.sequence;
    }
    cluster.restart(2).unwrap();
    let records = eventually(|| log.read_aggregate(&aggregate)).await;
    assert_eq!(records.len(), 6);
    assert_eq!(
        log.aggregate_version(&aggregate).await.unwrap(),
        Some(version)
    );
}

/// Messages deleted from the stream are missing records: connecting
/// refuses the stream, naming the first missing sequence and every deleted
/// one, until the operator acknowledges exactly that loss.
#[tokio::test]
async fn a_stream_with_deleted_messages_is_refused_until_the_loss_is_acknowledged() {
    let (server, log) = start().await;
    let aggregate = AggregateRef::new("article", unique("gap")).unwrap();
    for i in 0..10 {
        log.append(request(
            &aggregate,
            ExpectedVersion::Any,
            &unique("m"),
            &i.to_string(),
        ))
        .await
        .unwrap();
    }
    let mut stream = log.context().get_stream("PARLEY").await.unwrap();
    for sequence in [4, 7] {
        assert!(stream.delete_message(sequence).await.unwrap());
    }
    let _ = stream.info().await;

    let check = log.check_stream().await.unwrap();
    assert_eq!(check.missing(), 2, "{check}");
    let error = JetStreamLog::connect(JetStreamConfig::new(server.url()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LogError::Corrupt {
                sequence: Some(4),
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("stream PARLEY at nats://"), "{message}");
    assert!(message.contains("2 of 10 records are missing"), "{message}");
    assert!(message.contains("deleted: 4, 7"), "{message}");
    assert!(
        message.contains("PARLEY_ACCEPT_MISSING_RECORDS=2"),
        "{message}"
    );

    let mut acknowledged = JetStreamConfig::new(server.url());
    acknowledged.accept_missing = 2;
    JetStreamLog::connect(acknowledged).await.unwrap();
}
