//! Fault injection on the deployment shape: a real `nats-server` and the
//! three real service binaries. The NATS server is restarted while 1,000
//! articles are being ingested; afterwards every article's events are in the
//! log exactly once, no entity is split, and a subscriber that was connected
//! throughout has received every recorded event.

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
use parley_testkit::NatsServer;

const DOCUMENTS: usize = 1000;
const STARTUP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_during_a_thousand_articles_loses_and_duplicates_nothing()
-> anyhow::Result<()> {
    let mut nats = NatsServer::start()?;
    let logs = tempfile::tempdir()?;
    let mut ingest = ServiceProcess::spawn("parley-ingest", &nats.url(), logs.path())?;
    let mut resolver = ServiceProcess::spawn("parley-resolver", &nats.url(), logs.path())?;
    let mut notify = ServiceProcess::spawn("parley-notify", &nats.url(), logs.path())?;
    let ingest_channel = ingest.wait_serving(STARTUP).await?;
    let resolver_channel = resolver.wait_serving(STARTUP).await?;
    let notify_channel = notify.wait_serving(STARTUP).await?;

    // A subscriber connected throughout, collecting event ids.
    let seen: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    let mut stream = NotifyServiceClient::new(notify_channel)
        .subscribe(SubscribeRequest {
            filter: String::new(),
            start: Some(Start::FromSequence(1)),
        })
        .await?
        .into_inner();
    let seen_by_subscriber = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(delivery)) = stream.message().await {
            if let Some(event) = delivery.event {
                seen_by_subscriber.lock().unwrap().insert(event.event_id);
            }
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

    // Restart NATS (SIGKILL, as a crash) once a third of the articles are in.
    while submitted.load(Ordering::SeqCst) < DOCUMENTS / 3 {
        anyhow::ensure!(!producer.is_finished(), "producer stopped early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nats.kill();
    let at_kill = submitted.load(Ordering::SeqCst);
    anyhow::ensure!(
        at_kill < DOCUMENTS,
        "the outage must hit the ingestion, but all articles were in"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart()?;
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
            "not every article resolved after the NATS restart: {state:?}\n{}",
            resolver.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut config = JetStreamConfig::new(nats.url());
    config.stream_name = "PARLEY".into();
    let log = JetStreamLog::connect(config).await?;
    let census = census(&log).await?;
    if let Err(problems) = census.exactly_once(DOCUMENTS) {
        panic!("after a NATS restart at article {at_kill} ({retries} client retries):\n{problems}");
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
            notify.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
