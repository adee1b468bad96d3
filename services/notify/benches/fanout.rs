//! Fan-out benchmark of the notify service.
//!
//! One stream of talks events is appended to a real log at a steady rate
//! while many gRPC subscribers (over a real loopback socket, spread over
//! several HTTP/2 connections) follow it live with mixed filters. We measure
//! the delay from just before `append` to the moment a subscriber has the
//! message decoded, for every delivery, and check that every subscriber got
//! exactly the events its filter matches.
//!
//! The path measured is the production one: log append → the notify
//! service's durable consumer → journal → per-subscriber task → tonic stream.
//!
//! ```sh
//! cargo bench -p parley-notify --bench fanout
//! # knobs: FANOUT_SUBSCRIBERS=1000 FANOUT_RATE=200 FANOUT_SECS=15 FANOUT_BACKEND=sqlite|nats
//! ```
//!
//! `FANOUT_BACKEND=nats` starts a throwaway nats-server (via parley-testkit)
//! and uses the JetStream log instead of the embedded SQLite one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parley_domain::Event;
use parley_domain::filter::Filter;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{self, SubscribeRequest, TalksEventType, subscribe_request::Start};
use parley_log::{AggregateRef, EventLog, ExpectedVersion};
use parley_notify::Notify;
use parley_runtime::{EnvelopeBuilder, GrpcServer, ShutdownSignal};
use tokio::sync::Mutex;

/// The filters subscribers use, round-robin: broad, narrow, and matching nothing.
const FILTERS: [&str; 6] = [
    "",
    "type = ceasefire_*",
    "party = RUS",
    "party in (UKR, RUS) and not status = planned",
    "mediator = TUR or venue = Istanbul",
    "type = agreement_reached and party = ISR",
];
const TYPES: [TalksEventType; 5] = [
    TalksEventType::TalksHeld,
    TalksEventType::TalksAnnounced,
    TalksEventType::CeasefireAgreed,
    TalksEventType::CeasefireViolated,
    TalksEventType::AgreementReached,
];
const PARTIES: [[&str; 2]; 4] = [
    ["RUS", "UKR"],
    ["ISR", "HAMAS"],
    ["ARM", "AZE"],
    ["RUS", "USA"],
];
const VENUES: [&str; 3] = ["Istanbul", "Riyadh", "Doha"];
/// Subscriber streams per HTTP/2 connection (under hyper's default limit of 200).
const STREAMS_PER_CONNECTION: usize = 50;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Event number `n` of the stream: a deterministic mix of types, parties and places.
fn event(n: usize) -> pb::TalksEvent {
    // A small LCG so runs are repeatable without a random-number dependency.
    let mix = (n as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33;
    let pick = |k: u64, len: usize| ((mix / k) % len as u64) as usize;
    let actor = |code: &str| pb::Actor {
        code: code.into(),
        ..Default::default()
    };
    pb::TalksEvent {
        event_id: format!("bench-{n}"),
        r#type: TYPES[pick(1, TYPES.len())] as i32,
        status: if pick(7, 3) == 0 {
            pb::EventStatus::Planned
        } else {
            pb::EventStatus::Held
        } as i32,
        parties: PARTIES[pick(11, PARTIES.len())]
            .iter()
            .map(|c| actor(c))
            .collect(),
        mediators: if pick(13, 4) == 0 {
            vec![actor("TUR")]
        } else {
            vec![]
        },
        venue: Some(pb::Venue {
            city: VENUES[pick(17, VENUES.len())].into(),
            ..Default::default()
        }),
        evidence: vec![pb::Evidence {
            document_id: format!("doc-{n}"),
            document_name: format!("article-{n}.txt"),
            text: "Delegations met for a second day of talks, the ministry said.".into(),
            start: 0,
            end: 62,
            ..Default::default()
        }],
        version: 1,
        source_count: 1,
        ..Default::default()
    }
}

/// Nanoseconds since `base`, for the shared table of append times.
fn since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let subscribers: usize = env("FANOUT_SUBSCRIBERS", 1000);
    let rate: u64 = env("FANOUT_RATE", 200);
    let secs: u64 = env("FANOUT_SECS", 15);
    let backend: String = env("FANOUT_BACKEND", "sqlite".to_string());
    let warmup = rate as usize; // the first second is not measured
    let total = (rate * secs) as usize + warmup;

    // The log.
    let dir = tempfile::tempdir()?;
    let mut _nats = None;
    let log: Arc<dyn EventLog> = match backend.as_str() {
        "nats" => {
            let server = parley_testkit::NatsServer::start()?;
            let log = parley_log::jetstream::JetStreamLog::connect(
                parley_log::jetstream::JetStreamConfig::new(server.url()),
            )
            .await?;
            _nats = Some(server);
            Arc::new(log)
        }
        _ => Arc::new(parley_log::sqlite::SqliteLog::open(dir.path())?),
    };

    // The notify service, served on loopback.
    let shutdown = ShutdownSignal::new(Duration::from_secs(2));
    let notify = Notify::start(log.clone(), shutdown.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = GrpcServer::new().add_service(notify.grpc(shutdown.clone()).into_server());
    let serving = tokio::spawn(server.serve(listener, shutdown.clone()));

    // Append times, by event number, in ns since `base` (0 = not yet appended).
    let base = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let delivered = Arc::new(AtomicUsize::new(0));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));

    // What each filter should deliver, to check nothing is lost or duplicated.
    let filters: Vec<Filter> = FILTERS
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<_, _>>()?;
    let matching: Vec<usize> = filters
        .iter()
        .map(|f| (0..total).filter(|n| f.matches(&event(*n))).count())
        .collect();
    let expected: usize = (0..subscribers).map(|i| matching[i % FILTERS.len()]).sum();

    // Subscribers, live only, spread over connections.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?;
    let mut channel = None;
    let mut receivers = Vec::with_capacity(subscribers);
    let connect_started = Instant::now();
    for i in 0..subscribers {
        if i % STREAMS_PER_CONNECTION == 0 {
            channel = Some(endpoint.connect().await?);
        }
        let mut client = NotifyServiceClient::new(channel.clone().expect("connected above"));
        let mut stream = client
            .subscribe(SubscribeRequest {
                filter: FILTERS[i % FILTERS.len()].into(),
                start: Some(Start::LiveOnly(true)),
                ..Default::default()
            })
            .await?
            .into_inner();
        let (sent, delivered, histogram) = (sent.clone(), delivered.clone(), histogram.clone());
        let expect = matching[i % FILTERS.len()];
        receivers.push(tokio::spawn(async move {
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut got = 0;
            while let Ok(Some(message)) = stream.message().await {
                let now = since(base);
                let n: usize = message
                    .event
                    .as_ref()
                    .and_then(|e| e.event_id.strip_prefix("bench-"))
                    .and_then(|n| n.parse().ok())
                    .expect("bench event id");
                if n >= warmup {
                    let at = sent[n].load(Ordering::Acquire);
                    let _ = local.record(now.saturating_sub(at) / 1_000);
                }
                got += 1;
                delivered.fetch_add(1, Ordering::Relaxed);
                if got == expect {
                    break;
                }
            }
            histogram.lock().await.add(&local).expect("same bounds");
            got
        }));
    }
    println!(
        "{subscribers} subscribers connected in {:.2} s ({} connections); backend {backend}",
        connect_started.elapsed().as_secs_f64(),
        subscribers.div_ceil(STREAMS_PER_CONNECTION)
    );

    // The steady stream: one append every 1/rate s, each its own aggregate.
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut append_histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for n in 0..total {
        ticks.tick().await;
        let aggregate = AggregateRef::new(parley_domain::aggregate::TALKS, format!("bench-{n}"))?;
        let envelope = EnvelopeBuilder::new(aggregate.clone()).envelope(
            format!("bench-{n}-recorded"),
            Event::TalksEventRecorded(pb::TalksEventRecorded {
                event: Some(event(n)),
            }),
        );
        let t0 = since(base);
        sent[n].store(t0, Ordering::Release);
        parley_runtime::append_events(
            log.as_ref(),
            aggregate,
            ExpectedVersion::Any,
            format!("bench-{n}"),
            vec![envelope],
        )
        .await?;
        let _ = append_histogram.record((since(base) - t0) / 1_000);
    }
    let sending = started.elapsed();

    // Drain: wait for every expected delivery (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    shutdown.token.cancel();
    let mut received = 0;
    for r in receivers {
        received += r.await.unwrap_or(0);
    }
    let _ = serving.await;
    notify.stopped().await;

    let h = histogram.lock().await;
    let ms = |us: u64| us as f64 / 1_000.0;
    println!(
        "appended {total} events in {:.1} s ({:.0} events/s; target {rate}); append p50 {:.2} ms p99 {:.2} ms",
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64(),
        ms(append_histogram.value_at_quantile(0.5)),
        ms(append_histogram.value_at_quantile(0.99)),
    );
    println!(
        "deliveries: {received} of {expected} expected ({:.0}/s), all drained {:.1} s after the first append",
        received as f64 / drained.as_secs_f64(),
        drained.as_secs_f64()
    );
    println!(
        "append -> delivery over {} measured deliveries: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    );
    let p99 = ms(h.value_at_quantile(0.99));
    println!(
        "goal p99 < 50 ms: {}",
        if p99 < 50.0 { "met" } else { "NOT met" }
    );
    anyhow::ensure!(
        received == expected,
        "lost or extra deliveries: {received} of {expected}"
    );
    Ok(())
}
