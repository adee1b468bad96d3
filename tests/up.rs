//! `parley up` end to end: the real binary, the whole system in one process
//! on one gRPC port, over the embedded log (and over JetStream with `--nats`).
//!
//! - the end-to-end scenario (article in, events out, SIGKILL, replay, no duplicates);
//! - SIGKILL while 1,000 documents are being ingested: afterwards every
//!   document's events are in the log exactly once and no entity is split;
//! - `--watch` picks up files dropped in later; `--feed` polls with
//!   conditional GET and never ingests an item twice;
//! - a data directory already locked by another `parley up` is refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::resolver_service_client::ResolverServiceClient;
use parley_domain::pb::{
    DescribeStateRequest, SubmitArticleRequest, SubscribeResponse, TalksEventType,
};

use parley_e2e::{LogCensus, ServiceProcess, receive_until, subscribe_all, synthetic_article};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ARTICLE: &str = include_str!("fixtures/riyadh_black_sea.txt");
const STARTUP: Duration = Duration::from_secs(60);

fn article_request() -> SubmitArticleRequest {
    SubmitArticleRequest {
        name: "riyadh_black_sea.txt".into(),
        content: ARTICLE.as_bytes().to_vec(),
        media_type: String::new(),
        source_url: String::new(),
        ..Default::default()
    }
}

fn is_riyadh_talks(delivery: &SubscribeResponse) -> bool {
    delivery.event.as_ref().is_some_and(|e| {
        let mut parties: Vec<&str> = e.parties.iter().map(|a| a.code.as_str()).collect();
        parties.sort();
        e.r#type() == TalksEventType::TalksHeld
            && parties == ["UKR", "USA"]
            && e.venue.as_ref().is_some_and(|v| v.city == "Riyadh")
    })
}

/// The end-to-end scenario, on whichever log `up` runs over.
async fn article_flows_through_parley_up(up: &mut ServiceProcess) -> anyhow::Result<()> {
    let channel = up.wait_serving(STARTUP).await?;

    // One port answers every API, and health knows each of them.
    let mut health = HealthClient::new(channel.clone());
    for service in [
        "parley.v1.IngestService",
        "parley.v1.ResolverService",
        "parley.v1.NotifyService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(status, 1, "{service} should be SERVING");
    }

    let mut deliveries = subscribe_all(channel.clone()).await?;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let receipt = ingest.submit_article(article_request()).await?.into_inner();
    assert!(receipt.errors.is_empty(), "{:?}", receipt.errors);
    assert!(!receipt.documents[0].duplicate);
    let mut received = Vec::new();
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            |r| r.iter().any(is_riyadh_talks)
        )
        .await,
        "no Riyadh talks delivered: {received:#?}\n{}",
        up.log()
    );

    // Whatever else the article yields arrives shortly after.
    receive_until(
        &mut deliveries,
        &mut received,
        Duration::from_secs(2),
        |_| false,
    )
    .await;
    let mut resolver = ResolverServiceClient::new(channel);
    let before = resolver
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert!(before.document_count >= 1, "{before:?}\n{}", up.log());

    // SIGKILL and restart: the same state, rebuilt from the log.
    up.kill();
    up.restart()?;
    let channel = up.wait_serving(STARTUP).await?;
    let mut resolver = ResolverServiceClient::new(channel.clone());
    let after = resolver
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert_eq!(
        (
            &before.digest,
            before.entity_count,
            before.event_count,
            before.document_count
        ),
        (
            &after.digest,
            after.entity_count,
            after.event_count,
            after.document_count
        ),
        "state after restart differs"
    );

    // Re-submitting is a duplicate; a fresh subscriber sees every event exactly once.
    let again = IngestServiceClient::new(channel.clone())
        .submit_article(article_request())
        .await?
        .into_inner();
    assert!(again.documents[0].duplicate, "{again:?}");
    let mut deliveries = subscribe_all(channel).await?;
    let mut replayed = Vec::new();
    receive_until(
        &mut deliveries,
        &mut replayed,
        Duration::from_secs(3),
        |_| false,
    )
    .await;
    let mut keys = HashSet::new();
    for delivery in &replayed {
        assert!(
            keys.insert(delivery.idempotency_key.clone()),
            "duplicate delivery {}",
            delivery.idempotency_key
        );
    }
    let before_keys: HashSet<String> = received.iter().map(|d| d.idempotency_key.clone()).collect();
    assert_eq!(
        keys, before_keys,
        "the replay after the restart differs from the live deliveries"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_up_serves_everything_on_one_port_over_the_embedded_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &[], dir.path())?;
    article_flows_through_parley_up(&mut up).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_up_runs_the_same_over_jetstream() -> anyhow::Result<()> {
    let nats = parley_testkit::NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let url = nats.url();
    let mut up = ServiceProcess::spawn_up(&dir.path().join("data"), &["--nats", &url], dir.path())?;
    article_flows_through_parley_up(&mut up).await?;
    // With --nats the data directory holds only the key sealing webhook
    // secrets (so webhooks work out of the box): no log, no read models.
    let written: Vec<String> = std::fs::read_dir(dir.path().join("data"))?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(written, ["notify-secret.key"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_in_use_is_refused_and_left_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut first = ServiceProcess::spawn_up(&data, &[], dir.path())?;
    first.wait_serving(STARTUP).await?;
    let before: Vec<_> = std::fs::read_dir(&data)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;

    let output = std::process::Command::new(parley_e2e::binary("parley")?)
        .args(["up", "--grpc", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("PARLEY_NATS_URL")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&data.display().to_string()) && stderr.to_lowercase().contains("lock"),
        "the error should name the directory and the lock: {stderr}"
    );
    let after: Vec<_> = std::fs::read_dir(&data)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        before.len(),
        after.len(),
        "the refused start changed the directory"
    );
    // The first instance is unaffected.
    first.wait_serving(Duration::from_secs(5)).await?;

    // A data "directory" that is a file is refused with its name.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x")?;
    let output = std::process::Command::new(parley_e2e::binary("parley")?)
        .args(["up", "--grpc", "127.0.0.1:0", "--data"])
        .arg(&file)
        .env_remove("PARLEY_NATS_URL")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not-a-dir"), "{stderr}");
    Ok(())
}

/// Health of one service on `channel` (1 SERVING, 2 NOT_SERVING).
async fn health_of(channel: &tonic::transport::Channel, service: &str) -> anyhow::Result<i32> {
    Ok(HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner()
        .status)
}

/// A part whose state fails (the resolver's state file loses its tables
/// under it) reports NOT_SERVING on health, and the other parts of the same
/// process keep serving: the process does not exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_reports_not_serving_and_the_others_keep_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut up = ServiceProcess::spawn_up(&data, &[], dir.path())?;
    let channel = up.wait_serving(STARTUP).await?;

    // Break the resolver's read model from outside, as a failing disk would.
    let state = data.join("state/resolver/resolver-state.sqlite");
    rusqlite::Connection::open(&state)?.execute_batch("DROP TABLE events; DROP TABLE sources;")?;

    // The next document's events cannot be recorded in it.
    let mut ingest = IngestServiceClient::new(channel.clone());
    let receipt = ingest.submit_article(article_request()).await?.into_inner();
    assert!(receipt.errors.is_empty(), "{:?}", receipt.errors);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while health_of(&channel, "parley.v1.ResolverService").await? != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resolver never reported NOT_SERVING\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health_of(&channel, "").await?, 2, "overall health");
    for service in ["parley.v1.IngestService", "parley.v1.NotifyService"] {
        assert_eq!(health_of(&channel, service).await?, 1, "{service}");
    }
    // The healthy parts still work: ingest takes a new document, notify streams.
    let receipt = ingest
        .submit_article(SubmitArticleRequest {
            name: "second.txt".into(),
            content: synthetic_article(7).into_bytes(),
            media_type: String::new(),
            source_url: String::new(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(receipt.errors.is_empty(), "{:?}", receipt.errors);
    assert!(!receipt.documents[0].duplicate);
    // The events decided before the failure reached the log: notify streams them.
    let mut deliveries = subscribe_all(channel.clone()).await?;
    let mut received = Vec::new();
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            |r| r.iter().any(is_riyadh_talks)
        )
        .await,
        "notify stopped streaming: {received:#?}\n{}",
        up.log()
    );
    assert!(
        up.log().contains("the resolver stopped"),
        "the reason is told: {}",
        up.log()
    );
    assert!(up.terminate(Duration::from_secs(20))?, "{}", up.log());
    Ok(())
}

/// What the stopped embedded log in `data` holds.
async fn census(data: &std::path::Path) -> anyhow::Result<LogCensus> {
    let log = parley_log::sqlite::SqliteLog::open(data)?;
    parley_e2e::census(&log).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_ingesting_a_thousand_documents_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    const DOCUMENTS: usize = 1000;
    let dir = tempfile::tempdir()?;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox)?;
    for i in 0..DOCUMENTS {
        std::fs::write(
            inbox.join(format!("bulletin-{i:04}.txt")),
            synthetic_article(i),
        )?;
    }
    let data = dir.path().join("data");
    let inbox_arg = inbox.display().to_string();
    let mut up = ServiceProcess::spawn_up(&data, &["--watch", &inbox_arg], dir.path())?;
    let channel = up.wait_serving(STARTUP).await?;

    // Kill it without warning once a good part of the folder is in.
    let mut resolver = ResolverServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let state = resolver
            .describe_state(DescribeStateRequest {})
            .await?
            .into_inner();
        if state.document_count >= 150 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingestion too slow: {state:?}\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    up.kill();

    // It comes back, re-reads the folder, and finishes the job.
    up.restart()?;
    let channel = up.wait_serving(STARTUP).await?;
    let mut resolver = ResolverServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let state = resolver
            .describe_state(DescribeStateRequest {})
            .await?
            .into_inner();
        if state.document_count as usize >= DOCUMENTS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every document resolved after the restart: {state:?}\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        up.terminate(Duration::from_secs(15))?,
        "unclean exit:\n{}",
        up.log()
    );

    let census = census(&data).await?;
    if let Err(problems) = census.exactly_once(DOCUMENTS) {
        panic!("after SIGKILL and restart:\n{problems}");
    }
    Ok(())
}

/// A feed server on loopback: serves `feed` with an ETag, answers 304 to a
/// matching If-None-Match, and counts both.
async fn feed_server(
    feed: Arc<std::sync::Mutex<String>>,
) -> anyhow::Result<(String, Arc<AtomicUsize>, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/feed.xml", listener.local_addr()?);
    let full = Arc::new(AtomicUsize::new(0));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (full2, not_modified2) = (full.clone(), not_modified.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let feed = feed.clone();
            let (full, not_modified) = (full2.clone(), not_modified2.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request).to_lowercase();
                let body = feed.lock().unwrap().clone();
                let etag = format!("\"{}\"", body.len());
                let response = if request.contains(&format!("if-none-match: {etag}")) {
                    not_modified.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    full.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((url, full, not_modified))
}

fn rss(items: &[(usize, &str)]) -> String {
    let items: String = items
        .iter()
        .map(|(i, text)| {
            format!(
                "<item><guid>urn:test:item-{i}</guid><title>Item {i}</title>\
                 <pubDate>Wed, 02 Apr 2025 10:00:00 GMT</pubDate>\
                 <description>{text}</description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Test wire</title>\
         <link>http://example.invalid/</link><description>t</description>{items}</channel></rss>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_folders_and_polled_feeds_ingest_each_item_once() -> anyhow::Result<()> {
    let first = "Russian and Ukrainian delegations met in Istanbul on Tuesday for ceasefire talks, officials said.";
    let second =
        "Armenian and Azerbaijani negotiators met in Doha on Monday for talks, diplomats said.";
    let feed = Arc::new(std::sync::Mutex::new(rss(&[(1, first)])));
    let (url, full, not_modified) = feed_server(feed.clone()).await?;

    let dir = tempfile::tempdir()?;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox)?;
    let data = dir.path().join("data");
    let inbox_arg = inbox.display().to_string();
    let mut up = ServiceProcess::spawn_up(
        &data,
        &[
            "--watch",
            &inbox_arg,
            "--feed",
            &url,
            "--feed-interval-secs",
            "0.3",
        ],
        dir.path(),
    )?;
    let channel = up.wait_serving(STARTUP).await?;
    let mut resolver = ResolverServiceClient::new(channel.clone());
    let documents = |n: u64| {
        let mut resolver = resolver.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let state = resolver
                    .describe_state(DescribeStateRequest {})
                    .await?
                    .into_inner();
                if state.document_count >= n || tokio::time::Instant::now() > deadline {
                    return anyhow::Ok(state.document_count);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(documents(1).await?, 1, "the feed's item\n{}", up.log());

    // A file dropped into the folder later is picked up.
    std::fs::write(inbox.join("dropped.txt"), ARTICLE)?;
    assert_eq!(documents(2).await?, 2, "the dropped file\n{}", up.log());

    // Unchanged feed: conditional GETs answered 304, nothing new.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        not_modified.load(Ordering::SeqCst) >= 2,
        "no conditional GET seen"
    );
    // The feed gains an item: only that one is new.
    *feed.lock().unwrap() = rss(&[(1, first), (2, second)]);
    assert_eq!(documents(3).await?, 3, "the new feed item\n{}", up.log());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(full.load(Ordering::SeqCst) >= 2);
    let state = resolver
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert_eq!(state.document_count, 3, "an item was ingested twice");

    // After a restart the feed is fetched again in full, and still nothing is ingested twice.
    up.kill();
    up.restart()?;
    up.wait_serving(STARTUP).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(up.terminate(Duration::from_secs(15))?);
    let census = census(&data).await?;
    assert_eq!(census.ingested.len(), 3, "{:?}", census.ingested);
    assert!(
        census.ingested.values().all(|n| *n == 1),
        "{:?}",
        census.ingested
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprocess_appends_only_what_a_better_extractor_changes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let article = "date 2025-05-02\nTalks in the south\n\nArmenian and Azerbaijani negotiators \
                   met in Zorvanik on Tuesday for peace talks, officials said.\n";
    let submit = || SubmitArticleRequest {
        name: "zorvanik.txt".into(),
        content: article.as_bytes().to_vec(),
        media_type: String::new(),
        source_url: String::new(),
        ..Default::default()
    };

    // First run: the shipped knowledge base does not know the town, so no venue.
    let mut up = ServiceProcess::spawn_up(&data, &[], dir.path())?;
    let channel = up.wait_serving(STARTUP).await?;
    IngestServiceClient::new(channel.clone())
        .submit_article(submit())
        .await?;
    let mut deliveries = subscribe_all(channel).await?;
    let mut received = Vec::new();
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            |r| !r.is_empty()
        )
        .await,
        "{}",
        up.log()
    );
    let first = received[0].event.clone().unwrap();
    assert!(
        first.venue.as_ref().is_none_or(|v| v.city.is_empty()),
        "{first:?}"
    );
    assert!(up.terminate(Duration::from_secs(15))?);
    drop(up);

    // A better extractor: the same system with a knowledge base that knows the town.
    let kb = dir.path().join("kb");
    std::fs::create_dir(&kb)?;
    std::fs::write(
        kb.join("cities.toml"),
        "[[city]]\nname = \"Zorvanik\"\ncountry = \"ARM\"\n",
    )?;
    let kb_arg = kb.display().to_string();
    let mut up = ServiceProcess::spawn_up(&data, &["--kb-dir", &kb_arg], dir.path())?;
    let channel = up.wait_serving(STARTUP).await?;
    let mut deliveries = subscribe_all(channel).await?;
    let reprocess = |extra: &[&str]| {
        std::process::Command::new(parley_e2e::binary("parley").unwrap())
            .args(["reprocess", "--server", &up.url()])
            .args(extra)
            .output()
    };
    let dry = reprocess(&["--dry-run"])?;
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dry.stderr).contains("1 changed"),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let run = reprocess(&["--since", "2000-01-01"])?;
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("1 changed"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Subscribers see the same event, amended, as a new version.
    let mut received = Vec::new();
    let amended = |r: &[SubscribeResponse]| {
        r.iter().any(|d| {
            d.kind == parley_domain::pb::UpdateKind::Amended as i32
                && d.event.as_ref().is_some_and(|e| {
                    e.event_id == first.event_id
                        && e.version == first.version + 1
                        && e.venue
                            .as_ref()
                            .is_some_and(|v| v.city == "Zorvanik" && v.country == "ARM")
                })
        })
    };
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            amended
        )
        .await,
        "no amendment delivered: {received:#?}\n{}",
        up.log()
    );

    // Nothing changes the second time, and no event is duplicated.
    let again = reprocess(&[])?;
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 changed"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(up.terminate(Duration::from_secs(15))?);
    let census = census(&data).await?;
    assert_eq!(census.recorded.len(), 1, "{:?}", census.recorded);
    assert_eq!(
        census.resolved.values().sum::<usize>(),
        2,
        "one resolution per extraction"
    );
    Ok(())
}
