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
