//! Append throughput: `EventLog::append_many` versus raw async-nats.
//!
//! Starts its own nats-server (parley-testkit), then, in one run, appends N
//! records of ~500 bytes to distinct aggregates (expected version "no
//! stream", a msg id and one application header, as Parley's services do)
//! through `JetStreamLog::append_many`, and the same messages with the same
//! headers through raw async-nats JetStream publishes, pipelined with the
//! same in-flight window. Rounds alternate so drift hits both sides alike.
//!
//! Run: `cargo bench -p parley-log --bench append` (env `APPEND_N` changes N).

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use parley_log::jetstream::{JetStreamConfig, JetStreamLog};
use parley_log::{AggregateRef, AppendRequest, EventLog, ExpectedVersion};

const PAYLOAD_BYTES: usize = 500;
const ROUNDS: usize = 3;

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

async fn parley_round(log: &JetStreamLog, run: &str, n: usize) -> Duration {
    let batch = requests(run, n);
    let started = Instant::now();
    let results = log.append_many(batch).await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 0, "parley: {failed} appends failed");
    elapsed
}

async fn raw_round(context: &jetstream::Context, window: usize, run: &str, n: usize) -> Duration {
    // Built outside the timed section, like the parley side's requests.
    let batch = requests(run, n);
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for request in batch {
        if in_flight.len() >= window {
            let ack: jetstream::context::PublishAckFuture = in_flight.pop_front().unwrap();
            ack.into_future().await.expect("raw ack");
        }
        let subject = format!(
            "parley.evt.{}.{}",
            request.aggregate.kind, request.aggregate.id
        );
        let mut publish = PublishMessage::build()
            .payload(request.payload)
            .message_id(&request.msg_id)
            .expected_last_subject_sequence(0);
        for (name, value) in &request.headers {
            publish = publish.header(name.as_str(), value.as_str());
        }
        in_flight.push_back(
            context
                .send_publish(subject, publish)
                .await
                .expect("raw send"),
        );
    }
    for ack in in_flight {
        ack.into_future().await.expect("raw ack");
    }
    started.elapsed()
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("APPEND_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = parley_testkit::NatsServer::start()?;
    let config = JetStreamConfig::new(server.url());
    let window = config.max_ack_inflight;
    let log = JetStreamLog::connect(config).await?;
    // The raw side gets its own connection with the same context settings.
    let raw_client = async_nats::connect(server.url()).await?;
    let raw = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_ack_inflight(window)
        .backpressure_on_inflight(true)
        .build(raw_client);

    println!(
        "nats-server {} | {n} appends x {PAYLOAD_BYTES} B to distinct aggregates, \
         expected-version + msg-id headers, window {window}, {ROUNDS} rounds",
        log.server_version()
    );
    // Warm up both paths (connections, stream files, JIT-free but caches).
    raw_round(&raw, window, "warm-raw", 2_000).await;
    parley_round(&log, "warm-parley", 2_000).await;

    let (mut raw_total, mut parley_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let raw_time = raw_round(&raw, window, &format!("raw{round}"), n).await;
        let parley_time = parley_round(&log, &format!("parley{round}"), n).await;
        println!(
            "round {round}: raw {:>8.0} msgs/s | parley append_many {:>8.0} msgs/s | ratio {:.2}",
            rate(n, raw_time),
            rate(n, parley_time),
            raw_time.as_secs_f64() / parley_time.as_secs_f64()
        );
        raw_total += raw_time;
        parley_total += parley_time;
    }
    let total = n * ROUNDS;
    println!(
        "total: raw {:.0} msgs/s | parley append_many {:.0} msgs/s | ratio {:.2} (goal >= 0.8)",
        rate(total, raw_total),
        rate(total, parley_total),
        raw_total.as_secs_f64() / parley_total.as_secs_f64()
    );
    Ok(())
}
