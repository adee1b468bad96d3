//! The whole system end to end: a real `nats-server`, the three real service
//! binaries as separate processes, an article in over gRPC, events out to a
//! subscriber. Then the resolver is killed with SIGKILL and restarted: its
//! state after replay must equal its state before, and re-submitting the
//! article must not produce a single duplicate downstream.

use std::collections::HashMap;
use std::time::Duration;

use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::resolver_service_client::ResolverServiceClient;
use parley_domain::pb::{
    DescribeStateRequest, SubmitArticleRequest, SubscribeResponse, TalksEventType,
};
use parley_e2e::{ServiceProcess, receive_until, subscribe_all};
use parley_testkit::NatsServer;
use tonic::transport::Channel;

const ARTICLE: &str = include_str!("fixtures/riyadh_black_sea.txt");
const SECOND_ARTICLE: &str = include_str!("fixtures/istanbul_direct_talks.txt");
const STARTUP: Duration = Duration::from_secs(60);

fn submit_request() -> SubmitArticleRequest {
    SubmitArticleRequest {
        name: "riyadh_black_sea.txt".into(),
        content: ARTICLE.as_bytes().to_vec(),
        media_type: String::new(),
        source_url: String::new(),
        ..Default::default()
    }
}

fn codes(actors: &[parley_domain::pb::Actor]) -> Vec<String> {
    let mut codes: Vec<String> = actors.iter().map(|a| a.code.clone()).collect();
    codes.sort();
    codes
}

fn is_riyadh_talks(delivery: &SubscribeResponse) -> bool {
    delivery.event.as_ref().is_some_and(|e| {
        e.r#type() == TalksEventType::TalksHeld
            && codes(&e.parties) == ["UKR", "USA"]
            && e.date.as_ref().is_some_and(|d| d.date == "2025-03-31")
            && e.venue
                .as_ref()
                .is_some_and(|v| v.city == "Riyadh" && v.country == "SAU")
    })
}

fn is_istanbul_plan(delivery: &SubscribeResponse) -> bool {
    delivery.event.as_ref().is_some_and(|e| {
        e.r#type() == TalksEventType::TalksAnnounced
            && codes(&e.parties) == ["RUS", "USA"]
            && e.date.as_ref().is_some_and(|d| d.date == "2025-04-10")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn article_flows_through_three_services_and_survives_a_resolver_crash() -> anyhow::Result<()>
{
    let nats = NatsServer::start()?;
    let logs = tempfile_dir()?;
    let mut ingest = ServiceProcess::spawn("parley-ingest", &nats.url(), logs.path())?;
    let mut resolver = ServiceProcess::spawn("parley-resolver", &nats.url(), logs.path())?;
    let mut notify = ServiceProcess::spawn("parley-notify", &nats.url(), logs.path())?;
    let ingest_channel = ingest.wait_serving(STARTUP).await?;
    let resolver_channel = resolver.wait_serving(STARTUP).await?;
    notify.wait_serving(STARTUP).await?;

    let mut deliveries =
        subscribe_all(Channel::from_shared(notify.url())?.connect().await?).await?;
    let mut received = Vec::new();

    // A poison record lands in the resolver's input first: it must be parked, not stall it.
    let nats_client = async_nats::connect(nats.url()).await?;
    let jetstream = async_nats::jetstream::new(nats_client.clone());
    jetstream
        .publish(
            "parley.evt.article.poison",
            "not a protobuf batch \u{0}\u{ff}".into(),
        )
        .await?
        .await?;

    // An article goes in over gRPC ...
    let mut ingest_client = IngestServiceClient::new(ingest_channel);
    let receipt = ingest_client
        .submit_article(submit_request())
        .await?
        .into_inner();
    assert!(receipt.errors.is_empty(), "{:?}", receipt.errors);
    assert_eq!(receipt.documents.len(), 1);
    assert!(!receipt.documents[0].duplicate);
    assert!(receipt.documents[0].document_id.starts_with("doc-"));

    // ... and its events come out to the subscriber, resolved.
    let complete =
        |r: &[SubscribeResponse]| r.iter().any(is_riyadh_talks) && r.iter().any(is_istanbul_plan);
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            complete
        )
        .await,
        "expected the Riyadh talks and the Istanbul plan, got {received:#?}\nresolver log:\n{}",
        resolver.log()
    );
    for delivery in &received {
        assert!(delivery.sequence >= 1);
        let event = delivery.event.as_ref().unwrap();
        assert!(event.event_id.starts_with("evt-"), "{event:?}");
        assert_eq!(
            delivery.idempotency_key,
            format!("{}:v{}", event.event_id, event.version)
        );
    }
    let sybiha = received
        .iter()
        .filter_map(|d| d.event.as_ref())
        .flat_map(|e| &e.participants)
        .find(|p| p.name == "Andrii Sybiha");
    assert!(
        sybiha.is_some_and(|p| p.entity_id.starts_with("per-")),
        "Andrii Sybiha should be a resolved participant: {received:#?}"
    );

    // The resolver dies without warning and comes back: same state, rebuilt from the log.
    let mut resolver_client = ResolverServiceClient::new(resolver_channel);
    // A human override, recorded on the log: it must survive the replay below.
    let found = resolver_client
        .search_entities(parley_domain::pb::SearchEntitiesRequest {
            query: "Sybiha".into(),
            kind: 0,
            limit: 3,
        })
        .await?
        .into_inner();
    let sybiha_id = found.results[0].entity.as_ref().unwrap().entity_id.clone();
    resolver_client
        .add_alias(parley_domain::pb::AddAliasRequest {
            entity_id: sybiha_id.clone(),
            alias: "A. Sybiga".into(),
        })
        .await?;
    let bad = resolver_client
        .add_alias(parley_domain::pb::AddAliasRequest {
            entity_id: "per-nobody-at-all".into(),
            alias: "X".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::NotFound, "{bad:?}");
    let before = resolver_client
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert!(before.event_count >= 2, "{before:?}");
    resolver.kill();
    resolver.restart()?;
    let resolver_channel = resolver.wait_serving(STARTUP).await?;
    let mut resolver_client = ResolverServiceClient::new(resolver_channel);
    let after = resolver_client
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert_eq!(
        (
            before.digest,
            before.entity_count,
            before.event_count,
            before.document_count
        ),
        (
            after.digest.clone(),
            after.entity_count,
            after.event_count,
            after.document_count
        ),
        "resolver state after replay differs"
    );
    let sybiha_after = resolver_client
        .get_entity(parley_domain::pb::GetEntityRequest {
            entity_id: sybiha_id,
            ..Default::default()
        })
        .await?
        .into_inner()
        .entity
        .unwrap();
    assert!(
        sybiha_after.aliases.iter().any(|a| a == "A. Sybiga"),
        "{sybiha_after:?}"
    );

    // Re-submitting the same article appends nothing and delivers nothing new.
    let again = ingest_client
        .submit_article(submit_request())
        .await?
        .into_inner();
    assert_eq!(again.documents.len(), 1);
    assert!(again.documents[0].duplicate, "{again:?}");
    assert_eq!(
        again.documents[0].document_id,
        receipt.documents[0].document_id
    );
    let before_count = received.len();
    receive_until(
        &mut deliveries,
        &mut received,
        Duration::from_secs(3),
        |_| false,
    )
    .await;
    assert_eq!(
        received.len(),
        before_count,
        "duplicates downstream: {:#?}",
        &received[before_count..]
    );
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for delivery in &received {
        *keys.entry(&delivery.idempotency_key).or_default() += 1;
    }
    assert!(
        keys.values().all(|n| *n == 1),
        "duplicate deliveries: {keys:?}"
    );

    // The NATS intake subject works too, and the new article flows through the restarted resolver.
    let request = SubmitArticleRequest {
        name: "istanbul_direct_talks.txt".into(),
        content: SECOND_ARTICLE.as_bytes().to_vec(),
        media_type: String::new(),
        source_url: String::new(),
        ..Default::default()
    };
    let reply = nats_client
        .request(
            "parley.ingest.submit",
            prost::Message::encode_to_vec(&request).into(),
        )
        .await?;
    let reply: parley_domain::pb::SubmitArticleResponse = prost::Message::decode(reply.payload)?;
    assert_eq!(reply.documents.len(), 1, "{reply:?}");
    let istanbul = |d: &SubscribeResponse| {
        d.event.as_ref().is_some_and(|e| {
            e.r#type() == TalksEventType::TalksHeld
                && codes(&e.parties) == ["RUS", "UKR"]
                && codes(&e.mediators) == ["TUR"]
                && e.date.as_ref().is_some_and(|d| d.date == "2025-05-16")
        })
    };
    assert!(
        receive_until(
            &mut deliveries,
            &mut received,
            Duration::from_secs(30),
            |r| r.iter().any(istanbul)
        )
        .await,
        "expected the Istanbul talks after the restart, got {received:#?}\nresolver log:\n{}",
        resolver.log()
    );
    assert!(
        resolver.log().contains("parking poison record"),
        "the poison record should be parked and reported:\n{}",
        resolver.log()
    );

    let after_resubmit = resolver_client
        .describe_state(DescribeStateRequest {})
        .await?
        .into_inner();
    assert!(after_resubmit.event_count > after.event_count);
    assert!(after_resubmit.entity_count >= after.entity_count);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<tempfile::TempDir> {
    Ok(tempfile::tempdir()?)
}
