//! Notify push delivery across crashes and replicas, with the real
//! `parley-notify` binary on a real `nats-server` and a real HTTP receiver.
//!
//! - SIGKILL mid-delivery to a webhook, restart: every matching event is
//!   delivered at least once, none is skipped, duplicates carry the same
//!   idempotency key; the NATS channel holds each matching event exactly once
//!   (redeliveries are dropped by `Nats-Msg-Id`).
//! - Two replicas: a gRPC stream works on either; only the lease holder pushes;
//!   when it is killed the other takes over and nothing is skipped.
//! - A webhook receiver down for a minute: deliveries are retried through the
//!   outage and all arrive afterwards, in log order, with no dead letter.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::{
    Actor, Channel, CreateSubscriptionRequest, DomainEvent, EventBatch, EventEnvelope,
    ListSubscriptionsRequest, SubscribeRequest, TalksEvent, TalksEventRecorded, TalksEventType,
    Webhook, WebhookFormat, domain_event::Event, subscribe_request::Start,
};
use parley_testkit::NatsServer;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STARTUP: Duration = Duration::from_secs(60);

/// A `parley-notify` process with extra environment, restartable.
struct Notify {
    env: Vec<(String, String)>,
    child: Option<Child>,
    port: u16,
    log_path: std::path::PathBuf,
}

impl Notify {
    fn spawn(nats_url: &str, replica: &str, logs: &Path) -> anyhow::Result<Self> {
        Self::spawn_with_env(nats_url, replica, logs, &[])
    }

    /// Like [`Notify::spawn`], with `overrides` replacing or adding variables.
    fn spawn_with_env(
        nats_url: &str,
        replica: &str,
        logs: &Path,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = parley_testkit::free_port()?;
        let env = [
            ("PARLEY_NATS_URL", nats_url.to_owned()),
            ("PARLEY_GRPC_ADDR", format!("127.0.0.1:{port}")),
            ("PARLEY_LOG", "info".to_owned()),
            ("PARLEY_SHUTDOWN_GRACE_SECS", "3".to_owned()),
            ("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            ("PARLEY_WEBHOOK_BACKOFF_MS", "20".to_owned()),
            (
                "PARLEY_NOTIFY_SECRET_KEY",
                "e2e-notify-sealing-key".to_owned(),
            ),
            ("PARLEY_NOTIFY_REPLICA_ID", replica.to_owned()),
            ("PARLEY_NOTIFY_LEASE_MS", "2000".to_owned()),
            ("PARLEY_NOTIFY_CHECKPOINT_MS", "100".to_owned()),
        ]
        .into_iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .map(|(k, v)| (k.to_owned(), v))
        .chain(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
        let mut process = Self {
            env,
            child: None,
            port,
            log_path: logs.join(format!("parley-notify-{replica}.log")),
        };
        process.start()?;
        Ok(process)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(parley_e2e::binary("parley-notify")?)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning parley-notify")?;
        self.child = Some(child);
        Ok(())
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn client(&mut self) -> anyhow::Result<NotifyServiceClient<tonic::transport::Channel>> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("parley-notify exited with {status}:\n{}", self.log());
            }
            if let Ok(mut client) = NotifyServiceClient::connect(self.url()).await
                && client
                    .list_subscriptions(ListSubscriptionsRequest {})
                    .await
                    .is_ok()
            {
                return Ok(client);
            }
            if Instant::now() > deadline {
                bail!("parley-notify not serving:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    key: String,
    sequence: u64,
    body: Vec<u8>,
}

/// A bare HTTP/1.1 receiver on loopback that answers 200 after `delay`.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(&self, delay: Duration) -> anyhow::Result<String> {
        let (addr, _listening) = self.listen("127.0.0.1:0".parse()?, delay).await?;
        Ok(format!("http://{addr}/hook"))
    }

    /// Accepts on `addr` until the returned task is aborted; after that the
    /// port refuses connections (the receiver is down) until `listen` again.
    async fn listen(
        &self,
        addr: std::net::SocketAddr,
        delay: Duration,
    ) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(64)?;
        let addr = listener.local_addr()?;
        let hits = self.hits.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let hits = hits.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, hits, delay).await;
                });
            }
        });
        Ok((addr, accepting))
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn keys(&self) -> BTreeSet<String> {
        self.hits().into_iter().map(|h| h.key).collect()
    }
}

/// Reads one request (headers and Content-Length body), records it, answers 200.
async fn serve(
    mut socket: tokio::net::TcpStream,
    hits: Arc<Mutex<Vec<Hit>>>,
    delay: Duration,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[header_end..].to_vec();
    hits.lock().unwrap().push(Hit {
        key: headers
            .get("parley-idempotency-key")
            .cloned()
            .unwrap_or_default(),
        sequence: headers
            .get("parley-sequence")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        body,
    });
    tokio::time::sleep(delay).await;
    socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await?;
    Ok(())
}

/// Appends one recorded talks event to the log, as the resolver would.
async fn record(
    js: &async_nats::jetstream::Context,
    id: &str,
    kind: TalksEventType,
) -> anyhow::Result<u64> {
    let event = TalksEvent {
        event_id: id.to_owned(),
        r#type: kind as i32,
        parties: vec![Actor {
            code: "RUS".into(),
            ..Default::default()
        }],
        version: 1,
        source_count: 1,
        ..Default::default()
    };
    let batch = EventBatch {
        events: vec![EventEnvelope {
            event_id: format!("{id}:recorded"),
            aggregate_type: "talks".into(),
            aggregate_id: id.to_owned(),
            event_type: "parley.v1.TalksEventRecorded".into(),
            schema_version: 1,
            payload: Some(DomainEvent {
                event: Some(Event::TalksEventRecorded(TalksEventRecorded {
                    event: Some(event),
                })),
            }),
            ..Default::default()
        }],
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{id}:recorded").as_str());
    headers.insert("Parley-Schema-Version", "1");
    let ack = js
        .publish_with_headers(
            format!("parley.evt.talks.{id}"),
            headers,
            batch.encode_to_vec().into(),
        )
        .await?
        .await?;
    Ok(ack.sequence)
}

async fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn webhook(url: &str) -> CreateSubscriptionRequest {
    CreateSubscriptionRequest {
        name: "e2e".into(),
        filter: "type = ceasefire_*".into(),
        channel: Channel::Webhook as i32,
        webhook: Some(Webhook {
            url: url.to_owned(),
            secret: String::new(),
            format: WebhookFormat::Raw as i32,
        }),
        from_sequence: 0,
    }
}

/// Every NATS-channel message of one subscription, by idempotency key.
async fn nats_keys(
    js: &async_nats::jetstream::Context,
    subscription: &str,
) -> anyhow::Result<Vec<String>> {
    let stream = js.get_stream("PARLEY_NOTIFY").await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("parley.notify.{subscription}"),
            ..Default::default()
        })
        .await?;
    let pending = consumer.cached_info().num_pending as usize;
    let mut messages = consumer.messages().await?.take(pending);
    let mut keys = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message?;
        let key = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Parley-Idempotency-Key"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        keys.push(key);
    }
    Ok(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing_and_duplicates_keep_their_key() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let receiver = Receiver::default();
    let url = receiver.start(Duration::from_millis(40)).await?;
    let mut notify = Notify::spawn(&nats.url(), "crash", logs.path())?;
    let mut client = notify.client().await?;
    let hook = client
        .create_subscription(webhook(&url))
        .await?
        .into_inner()
        .subscription
        .context("created")?
        .subscription_id;
    let stream_sub = client
        .create_subscription(CreateSubscriptionRequest {
            channel: Channel::Nats as i32,
            filter: "type = ceasefire_*".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .subscription
        .context("created")?;
    assert_eq!(
        stream_sub.nats_subject,
        format!("parley.notify.{}", stream_sub.subscription_id)
    );

    let client_nats = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client_nats);
    let mut expected = Vec::new();
    for i in 0..60 {
        let (id, kind) = if i % 3 == 2 {
            (format!("evt-talks-{i:03}"), TalksEventType::TalksHeld)
        } else {
            (format!("evt-cf-{i:03}"), TalksEventType::CeasefireAgreed)
        };
        record(&js, &id, kind).await?;
        if kind == TalksEventType::CeasefireAgreed {
            expected.push(format!("{id}:v1"));
        }
    }

    // Kill it in the middle of the webhook deliveries (each takes >= 40 ms).
    wait_until("some deliveries", Duration::from_secs(60), || {
        receiver.hits().len() >= 10
    })
    .await?;
    notify.kill();
    let before_kill = receiver.hits().len();
    assert!(
        before_kill < expected.len(),
        "the kill should land mid-delivery"
    );
    notify.start()?;
    notify.client().await?;
    let wanted: BTreeSet<String> = expected.iter().cloned().collect();
    wait_until("every matching event", Duration::from_secs(90), || {
        receiver.keys().is_superset(&wanted)
    })
    .await
    .with_context(|| notify.log())?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let hits = receiver.hits();
    // Nothing that does not match, nothing unknown.
    assert_eq!(
        receiver.keys(),
        wanted,
        "only matching events are delivered"
    );
    // A duplicate is the same delivery: same key, same sequence, same body.
    let mut first: HashMap<&str, &Hit> = HashMap::new();
    for hit in &hits {
        match first.get(hit.key.as_str()) {
            Some(earlier) => {
                assert_eq!(earlier.sequence, hit.sequence, "{}", hit.key);
                assert_eq!(earlier.body, hit.body, "{}", hit.key);
            }
            None => {
                first.insert(&hit.key, hit);
            }
        }
    }
    // First deliveries come in log order.
    let order: Vec<String> = {
        let mut seen = BTreeSet::new();
        hits.iter()
            .filter(|h| seen.insert(h.key.clone()))
            .map(|h| h.key.clone())
            .collect()
    };
    assert_eq!(order, expected, "per-subscription log order");
    let duplicates = hits.len() - wanted.len();
    eprintln!(
        "webhook {hook}: {} requests for {} events ({duplicates} redelivered after SIGKILL at {before_kill})",
        hits.len(),
        wanted.len()
    );

    // The NATS channel: every matching event exactly once, in log order.
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let keys = nats_keys(&js, &stream_sub.subscription_id).await?;
        if keys.len() >= expected.len() || Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(keys, expected, "NATS channel: once each, in log order");

    // Subscriptions survived the SIGKILL (rebuilt by replay).
    let listed = notify
        .client()
        .await?
        .list_subscriptions(ListSubscriptionsRequest {})
        .await?
        .into_inner()
        .subscriptions;
    assert_eq!(listed.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_streams_and_push_once_with_failover() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let receiver = Receiver::default();
    let url = receiver.start(Duration::from_millis(5)).await?;
    let mut a = Notify::spawn(&nats.url(), "replica-a", logs.path())?;
    let mut b = Notify::spawn(&nats.url(), "replica-b", logs.path())?;
    let mut client_a = a.client().await?;
    let mut client_b = b.client().await?;
    client_a.create_subscription(webhook(&url)).await?;
    // Created on A, listed on B: both follow the whole log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_b
        .list_subscriptions(ListSubscriptionsRequest {})
        .await?
        .into_inner()
        .subscriptions
        .is_empty()
    {
        anyhow::ensure!(Instant::now() < deadline, "B never saw the subscription");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A gRPC stream on each replica.
    let mut streams = Vec::new();
    for client in [&mut client_a, &mut client_b] {
        streams.push(
            client
                .subscribe(SubscribeRequest {
                    filter: "type = ceasefire_*".into(),
                    start: Some(Start::FromSequence(1)),
                    ..Default::default()
                })
                .await?
                .into_inner(),
        );
    }
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await?);
    let mut expected = Vec::new();
    for i in 0..10 {
        let id = format!("evt-a-{i:02}");
        record(&js, &id, TalksEventType::CeasefireProposed).await?;
        expected.push(format!("{id}:v1"));
    }
    for stream in &mut streams {
        let mut keys = Vec::new();
        while keys.len() < expected.len() {
            let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
                .await??
                .context("stream ended")?;
            keys.push(message.idempotency_key);
        }
        assert_eq!(keys, expected, "each replica streams the whole log");
    }
    wait_until("first ten pushed", Duration::from_secs(30), || {
        receiver.keys().len() == 10
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.hits().len(),
        10,
        "one replica pushes: no double delivery"
    );

    // Kill the lease holder: the other replica must take over after the lease lapses.
    let (holder, survivor) = if a.log().contains("took the push-delivery lease") {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    anyhow::ensure!(
        holder.log().contains("took the push-delivery lease"),
        "no replica took the lease"
    );
    holder.kill();
    for i in 10..20 {
        let id = format!("evt-a-{i:02}");
        record(&js, &id, TalksEventType::CeasefireProposed).await?;
        expected.push(format!("{id}:v1"));
    }
    let wanted: BTreeSet<String> = expected.iter().cloned().collect();
    wait_until("the survivor takes over", Duration::from_secs(30), || {
        receiver.keys() == wanted
    })
    .await
    .with_context(|| survivor.log())?;
    assert!(survivor.log().contains("took the push-delivery lease"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receiver_down_for_a_minute_gets_every_event_afterwards() -> anyhow::Result<()> {
    const OUTAGE: Duration = Duration::from_secs(60);
    let nats = NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let receiver = Receiver::default();
    let (addr, listening) = receiver
        .listen("127.0.0.1:0".parse()?, Duration::ZERO)
        .await?;
    // Retries every 5 s at most, enough of them to outlast the outage (the
    // default schedule is longer and coarser; see `WebhookConfig`).
    let mut notify = Notify::spawn_with_env(
        &nats.url(),
        "outage",
        logs.path(),
        &[
            ("PARLEY_WEBHOOK_BACKOFF_MS", "250"),
            ("PARLEY_WEBHOOK_MAX_BACKOFF_MS", "5000"),
            ("PARLEY_WEBHOOK_MAX_ATTEMPTS", "60"),
        ],
    )?;
    let mut client = notify.client().await?;
    let hook = client
        .create_subscription(webhook(&format!("http://{addr}/hook")))
        .await?
        .into_inner()
        .subscription
        .context("created")?
        .subscription_id;

    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await?);
    let mut expected = Vec::new();
    let mut record_batch = async |from: usize, to: usize| -> anyhow::Result<()> {
        for i in from..to {
            let id = format!("evt-outage-{i:03}");
            record(&js, &id, TalksEventType::CeasefireAgreed).await?;
            expected.push(format!("{id}:v1"));
        }
        Ok(())
    };
    record_batch(0, 10).await?;
    wait_until("the first deliveries", Duration::from_secs(60), || {
        receiver.keys().len() >= 10
    })
    .await
    .with_context(|| notify.log())?;

    // Down: the port refuses connections for a minute while events keep coming.
    listening.abort();
    let _ = listening.await;
    record_batch(10, 30).await?;
    tokio::time::sleep(OUTAGE).await;
    assert_eq!(
        receiver.keys().len(),
        10,
        "nothing can arrive while the receiver is down"
    );
    assert!(
        notify.log().contains("webhook attempt failed"),
        "failed attempts are reported:\n{}",
        notify.log()
    );

    // Back on the same port: everything arrives, in log order.
    let (_, _listening) = receiver.listen(addr, Duration::ZERO).await?;
    let wanted: BTreeSet<String> = expected.iter().cloned().collect();
    wait_until(
        "every event after the outage",
        Duration::from_secs(60),
        || receiver.keys().is_superset(&wanted),
    )
    .await
    .with_context(|| notify.log())?;
    let order: Vec<String> = {
        let mut seen = BTreeSet::new();
        receiver
            .hits()
            .into_iter()
            .filter(|h| seen.insert(h.key.clone()))
            .map(|h| h.key)
            .collect()
    };
    assert_eq!(order, expected, "per-subscription log order");
    let dead = client
        .list_dead_letters(parley_domain::pb::ListDeadLettersRequest {
            subscription_id: hook,
        })
        .await?
        .into_inner()
        .dead_letters;
    assert!(dead.is_empty(), "no dead letter: {dead:?}");
    Ok(())
}
