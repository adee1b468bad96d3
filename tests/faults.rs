//! Fault injection on the deployment shape: real `nats-server`s and the
//! three real service binaries, while 1,000 articles are being ingested:
//!
//! - the single NATS server is SIGKILLed and restarted;
//! - one node of a 3-node JetStream cluster (the log replicated 3 times) is
//!   SIGKILLed and stays down;
//! - ingest, resolver and notify are SIGKILLed and restarted in turn.
//!
//! Afterwards every article's events are in the log exactly once, no entity
//! is split, and a subscriber connected throughout has every recorded event.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::notify_service_client::NotifyServiceClient;
use parley_domain::pb::resolver_service_client::ResolverServiceClient;
use parley_domain::pb::{
    DescribeStateRequest, SubmitArticleRequest, SubscribeRequest, subscribe_request::Start,
};
use parley_e2e::{ServiceProcess, census, synthetic_article};
use parley_log::jetstream::{JetStreamConfig, JetStreamLog};
use parley_testkit::{NatsCluster, NatsServer};

const DOCUMENTS: usize = 1000;
const STARTUP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_during_a_thousand_articles_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let url = nats.url();
    ingest_through_a_fault(&url, 1, move |_| {
        nats.kill();
        std::thread::sleep(Duration::from_secs(2));
        nats.restart()?;
        Ok(nats)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_of_three_nats_nodes_during_a_thousand_articles_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    let mut cluster = NatsCluster::start(3)?;
    let url = cluster.url();
    ingest_through_a_fault(&url, 3, move |_| {
        cluster.kill(0);
        Ok(cluster)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_each_service_in_turn_during_a_thousand_articles_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    ingest_through_a_fault(&nats.url(), 1, |services| {
        // Each one SIGKILLed mid-stream and started again, one after the other.
        for service in [
            &mut services.ingest,
            &mut services.resolver,
            &mut services.notify,
        ] {
            service.kill();
            std::thread::sleep(Duration::from_millis(500));
            service.restart()?;
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    })
    .await
}

/// The three services of one deployment, for faults that strike them.
struct Services {
    ingest: ServiceProcess,
    resolver: ServiceProcess,
    notify: ServiceProcess,
}

/// Runs the three services on `url`, ingests 1,000 articles, applies `fault`
/// a third of the way in, and checks the log and a subscriber afterwards.
/// `fault` returns what must stay alive (the servers) until the end.
async fn ingest_through_a_fault<T>(
    url: &str,
    replicas: usize,
    fault: impl FnOnce(&mut Services) -> anyhow::Result<T>,
) -> anyhow::Result<()> {
    let logs = tempfile::tempdir()?;
    let replicas_env = replicas.to_string();
    let env = [("PARLEY_STREAM_REPLICAS", replicas_env.as_str())];
    let mut services = Services {
        ingest: ServiceProcess::spawn_with_env("parley-ingest", url, logs.path(), &env)?,
        resolver: ServiceProcess::spawn_with_env("parley-resolver", url, logs.path(), &env)?,
        notify: ServiceProcess::spawn_with_env("parley-notify", url, logs.path(), &env)?,
    };
    let ingest_channel = services.ingest.wait_serving(STARTUP).await?;
    let resolver_channel = services.resolver.wait_serving(STARTUP).await?;
    services.notify.wait_serving(STARTUP).await?;

    // A subscriber connected throughout (reconnecting, like a real client,
    // if notify itself goes down), collecting event ids.
    let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let seen_by_subscriber = seen.clone();
    let notify_url = services.notify.url();
    tokio::spawn(async move {
        loop {
            if let Ok(mut client) = NotifyServiceClient::connect(notify_url.clone()).await
                && let Ok(stream) = client
                    .subscribe(SubscribeRequest {
                        filter: String::new(),
                        start: Some(Start::FromSequence(1)),
                        ..Default::default()
                    })
                    .await
            {
                let mut stream = stream.into_inner();
                while let Ok(Some(delivery)) = stream.message().await {
                    if let Some(event) = delivery.event {
                        seen_by_subscriber.lock().unwrap().insert(event.event_id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // The client submits every article, retrying what the outage refuses,
    // like a real producer would.
    let submitted = Arc::new(AtomicUsize::new(0));
    let progress = submitted.clone();
    let mut client = IngestServiceClient::new(ingest_channel);
    let producer = tokio::spawn(async move {
        let mut retries = 0;
        for i in 0..DOCUMENTS {
            let request = SubmitArticleRequest {
                name: format!("bulletin-{i:04}.txt"),
                content: synthetic_article(i).into_bytes(),
                media_type: String::new(),
                source_url: String::new(),
                ..Default::default()
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                match client.submit_article(request.clone()).await {
                    Ok(response) if response.get_ref().errors.is_empty() => break,
                    outcome => {
                        retries += 1;
                        anyhow::ensure!(
                            tokio::time::Instant::now() < deadline,
                            "article {i} still refused after 120 s: {outcome:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            progress.fetch_add(1, Ordering::SeqCst);
        }
        anyhow::Ok(retries)
    });

    // The fault strikes once a third of the articles are in.
    while submitted.load(Ordering::SeqCst) < DOCUMENTS / 3 {
        anyhow::ensure!(!producer.is_finished(), "producer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_kill = submitted.load(Ordering::SeqCst);
    let _servers = tokio::task::block_in_place(|| fault(&mut services))?;
    anyhow::ensure!(
        at_kill < DOCUMENTS,
        "the fault must hit the ingestion, but all articles were in"
    );
    let retries = producer.await??;

    // Every article resolved: wait for the resolver to get through its backlog.
    let mut resolver_client = ResolverServiceClient::new(resolver_channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let state = resolver_client
            .describe_state(DescribeStateRequest {})
            .await
            .map(|r| r.into_inner());
        if let Ok(state) = &state
            && state.document_count as usize >= DOCUMENTS
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not every article resolved after the fault: {state:?}\n{}",
            services.resolver.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut config = JetStreamConfig::new(url.to_owned());
    config.stream_name = "PARLEY".into();
    config.replicas = replicas;
    let log = JetStreamLog::connect(config).await?;
    let census = census(&log).await?;
    if let Err(problems) = census.exactly_once(DOCUMENTS) {
        panic!("after the fault at article {at_kill} ({retries} client retries):\n{problems}");
    }

    // The subscriber that stayed connected has every recorded event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<String> = census
            .recorded
            .keys()
            .filter(|id| !seen.lock().unwrap().contains(*id))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} recorded events never reached the subscriber, e.g. {:?}\n{}",
            missing.len(),
            &missing[..missing.len().min(5)],
            services.notify.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Articles in the log the damage tests start from.
const DAMAGE_ARTICLES: usize = 300;

/// `parley up --data data` until it serves, or its exit and output when it
/// refuses to start.
async fn up_on(
    data: &std::path::Path,
    logs: &std::path::Path,
) -> anyhow::Result<Result<(ServiceProcess, tonic::transport::Channel), String>> {
    let mut up = ServiceProcess::spawn_up(data, &["--ingest-rate-per-sec", "0"], logs)?;
    match up.wait_serving(STARTUP).await {
        Ok(channel) => Ok(Ok((up, channel))),
        Err(_) => {
            let status = up.wait_exit(STARTUP)?;
            anyhow::ensure!(!status.success(), "a refusal exits with a failure");
            Ok(Err(up.log()))
        }
    }
}

/// Documents the resolver has rebuilt or resolved: once `at_least`, or
/// what it has after two minutes.
async fn documents_resolved(
    channel: tonic::transport::Channel,
    at_least: u64,
) -> anyhow::Result<u64> {
    let mut client = ResolverServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let count = client
            .describe_state(DescribeStateRequest {})
            .await?
            .into_inner()
            .document_count;
        if count >= at_least || tokio::time::Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Submits the synthetic articles `range`; returns how many were duplicates.
async fn submit(
    channel: tonic::transport::Channel,
    range: std::ops::Range<usize>,
) -> anyhow::Result<usize> {
    let mut ingest = IngestServiceClient::new(channel);
    let mut duplicates = 0;
    for i in range {
        let receipt = ingest
            .submit_article(SubmitArticleRequest {
                name: format!("bulletin-{i}.txt"),
                content: synthetic_article(i).into_bytes(),
                ..Default::default()
            })
            .await?
            .into_inner();
        duplicates += receipt.documents.iter().filter(|d| d.duplicate).count();
    }
    Ok(duplicates)
}

/// Copies a data directory (files and `state/`).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Runs `parley log ARGS`: exit success and output.
fn parley_log(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let output = std::process::Command::new(parley_e2e::binary("parley")?)
        .arg("log")
        .args(args)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

/// 300 articles through `parley up`, stopped; then random bytes over pages
/// of `log.sqlite3` (four deterministic seeds), a truncated file, and a
/// deleted log. Each ends in a refusal naming the file and the record, or a
/// replay of everything; a refused log is salvaged, the salvage names what
/// it lost, the salvaged log serves, and the lost articles ingest again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_embedded_log_is_refused_or_salvaged_never_silently_shorter() -> anyhow::Result<()>
{
    let root = tempfile::tempdir()?;
    let base = root.path().join("base");
    {
        let (mut up, channel) = up_on(&base, root.path())
            .await?
            .map_err(|log| anyhow::anyhow!("parley up refused a new directory: {log}"))?;
        submit(channel.clone(), 0..DAMAGE_ARTICLES).await?;
        let resolved = documents_resolved(channel, DAMAGE_ARTICLES as u64).await?;
        assert_eq!(resolved, DAMAGE_ARTICLES as u64, "{}", up.log());
        assert!(up.terminate(Duration::from_secs(20))?, "{}", up.log());
    }
    let log_file = base.join("log.sqlite3");
    let size = std::fs::metadata(&log_file)?.len();

    let (mut refused, mut salvaged) = (0, 0);
    for seed in 1..=4u64 {
        let case = root.path().join(format!("seed-{seed}"));
        copy_dir(&base, &case)?;
        let file = case.join("log.sqlite3");
        let offset = 4096 + seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (size - 4096 - 512);
        let noise: Vec<u8> = (0..512u64)
            .map(|i| {
                (seed
                    .wrapping_mul(31)
                    .wrapping_add(i)
                    .wrapping_mul(2_654_435_761)
                    >> 13) as u8
            })
            .collect();
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut handle = std::fs::OpenOptions::new().write(true).open(&file)?;
            handle.seek(SeekFrom::Start(offset))?;
            handle.write_all(&noise)?;
        }
        let logs = tempfile::tempdir_in(root.path())?;
        match up_on(&case, logs.path()).await? {
            Ok((mut up, channel)) => {
                // Served: then it replayed everything.
                let resolved = documents_resolved(channel, DAMAGE_ARTICLES as u64).await?;
                assert_eq!(
                    resolved, DAMAGE_ARTICLES as u64,
                    "seed {seed}: a silent partial replay"
                );
                up.terminate(Duration::from_secs(20))?;
            }
            Err(output) => {
                refused += 1;
                assert!(
                    output.contains(&file.display().to_string()),
                    "seed {seed}: {output}"
                );
                assert!(
                    output.contains("record ") || output.contains("quick_check"),
                    "seed {seed}: {output}"
                );
                let data = case.display().to_string();
                let (ok, report) = parley_log(&["verify", "--data", &data])?;
                assert!(!ok && report.contains("DAMAGED"), "seed {seed}: {report}");
                let into = root.path().join(format!("salvaged-{seed}"));
                let into_arg = into.display().to_string();
                let (ok, report) = parley_log(&["salvage", "--data", &data, "--into", &into_arg])?;
                assert!(ok, "seed {seed}: {report}");
                assert!(report.contains("records copied"), "{report}");
                let logs = tempfile::tempdir_in(root.path())?;
                let (mut up, channel) = up_on(&into, logs.path())
                    .await?
                    .map_err(|log| anyhow::anyhow!("the salvaged log is refused: {log}"))?;
                let rebuilt = documents_resolved(channel.clone(), 0).await?;
                // The lost articles are no longer in the log: they ingest
                // again (at most one new article per lost record); what the
                // resolver derived from a lost record is derived again.
                let lost: usize = report
                    .split(" lost,")
                    .next()
                    .and_then(|head| head.rsplit(' ').next())
                    .and_then(|n| n.parse().ok())
                    .expect("the salvage says how many records it lost");
                let duplicates = submit(channel.clone(), 0..DAMAGE_ARTICLES).await?;
                assert!(
                    duplicates + lost >= DAMAGE_ARTICLES,
                    "{duplicates} duplicates: {report}"
                );
                // Each lost record costs at most one document (a lost
                // resolver record can leave its document for the resolver
                // to retry and park); every other one is there.
                let resolved = documents_resolved(channel, DAMAGE_ARTICLES as u64).await?;
                assert!(
                    resolved + lost as u64 >= DAMAGE_ARTICLES as u64 && resolved >= rebuilt,
                    "seed {seed}: {resolved} resolved (rebuilt {rebuilt}): {report}\n{}",
                    up.log()
                );
                up.terminate(Duration::from_secs(20))?;
                salvaged += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "random damage over 4 seeds is caught at least once"
    );
    assert_eq!(salvaged, refused);

    // Truncated: refused, naming the file.
    let truncated = root.path().join("truncated");
    copy_dir(&base, &truncated)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(truncated.join("log.sqlite3"))?
        .set_len(size / 2)?;
    let output = up_on(&truncated, root.path())
        .await?
        .err()
        .expect("a truncated log is refused");
    assert!(
        output.contains(&truncated.join("log.sqlite3").display().to_string()),
        "{output}"
    );

    // Deleted: a loud warning naming what happened, and the read models of
    // the old log are rebuilt from the new one.
    let deleted = root.path().join("deleted");
    copy_dir(&base, &deleted)?;
    std::fs::remove_file(deleted.join("log.sqlite3"))?;
    let logs = tempfile::tempdir_in(root.path())?;
    let (mut up, channel) = up_on(&deleted, logs.path())
        .await?
        .map_err(|log| anyhow::anyhow!("refused: {log}"))?;
    assert_eq!(documents_resolved(channel, 0).await?, 0);
    up.terminate(Duration::from_secs(20))?;
    let output = up.log();
    assert!(
        output.contains(&format!(
            "parley up: WARNING: {} is missing but",
            deleted.join("log.sqlite3").display()
        )),
        "{output}"
    );
    assert!(output.contains("the log was deleted or moved"), "{output}");
    assert!(
        output.contains("read model belongs to another log"),
        "{output}"
    );
    Ok(())
}
