//! `parley.v1.IngestService` over gRPC (the NATS intake is in `intake`).

use std::net::IpAddr;
use std::sync::Arc;

use parley_domain::pb::ingest_service_server::{IngestService, IngestServiceServer};
use parley_domain::pb::{
    SubmitArticleRequest, SubmitArticleResponse, SubmitFeedRequest, SubmitFeedResponse,
};
use parley_runtime::limits::RateLimiter;
use tonic::{Request, Response, Status};

use crate::Ingest;

/// Metadata of a RESOURCE_EXHAUSTED refusal carrying the milliseconds to wait
/// before retrying (the name gRPC's retry policy reads).
pub const PUSHBACK_METADATA: &str = "grpc-retry-pushback-ms";
/// Metadata of a RESOURCE_EXHAUSTED refusal carrying the limit in requests
/// per second per client, so a client can pace itself.
pub const RATE_METADATA: &str = "parley-rate-limit-per-sec";

/// Who a request is rate-limited as: its peer IP address (all ports of a
/// host share one budget), or "unknown" for in-process transports.
type ClientKey = Option<IpAddr>;

/// The gRPC face of the ingest service.
#[derive(Clone)]
pub struct IngestGrpc {
    ingest: Arc<Ingest>,
    max_document_bytes: usize,
    rate_limiter: Option<Arc<RateLimiter<ClientKey>>>,
}

impl IngestGrpc {
    /// Serves `ingest`; requests over `max_document_bytes` are refused before reading.
    pub fn new(ingest: Arc<Ingest>, max_document_bytes: usize) -> Self {
        Self {
            ingest,
            max_document_bytes,
            rate_limiter: None,
        }
    }

    /// Limits each client (by IP address) to `per_second` submissions a
    /// second, with bursts of as many; 0 turns the limit off.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limiter =
            (per_second > 0).then(|| Arc::new(RateLimiter::new(per_second, per_second)));
        self
    }

    /// Refuses a client over its rate with RESOURCE_EXHAUSTED naming the limit.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(limiter) = &self.rate_limiter else {
            return Ok(());
        };
        let key = request.remote_addr().map(|addr| addr.ip());
        limiter.check(&key).map_err(|limited| {
            metrics::counter!("parley_ingest_rate_limited_total").increment(1);
            let retry_ms = limited.retry_after.as_millis().max(1);
            let mut status = Status::resource_exhausted(format!(
                "rate limit of {} requests per second per client exceeded (PARLEY_INGEST_RATE_PER_SEC); retry in {retry_ms} ms",
                limited.per_second,
            ));
            // For programs too: the delay (gRPC's retry pushback header) and the rate.
            let metadata = status.metadata_mut();
            metadata.insert(
                PUSHBACK_METADATA,
                tonic::metadata::MetadataValue::from(retry_ms as u64),
            );
            metadata.insert(
                RATE_METADATA,
                tonic::metadata::MetadataValue::from(limited.per_second),
            );
            status
        })
    }

    /// The path shared by `SubmitArticle` and `SubmitFeed`: rate limit,
    /// document checks, then ingestion.
    async fn submit<T>(
        &self,
        request: &Request<T>,
        document: Document<'_>,
    ) -> Result<SubmitArticleResponse, Status> {
        self.admit(request)?;
        self.check(document.name, document.content)?;
        let mut response = self
            .ingest
            .submit(
                document.name,
                document.content,
                document.media_type,
                non_empty(document.source_url),
            )
            .await;
        if document.wait_for_events {
            self.ingest
                .wait_for_events(&mut response, crate::WAIT_FOR_EVENTS)
                .await
                .map_err(|e| Status::unavailable(format!("reading the resolver's answer: {e}")))?;
        }
        Ok(response)
    }

    /// Wraps it in the tonic server type. tonic's own message limit is lifted
    /// so that the caller hears which setting refused a large request: the
    /// server's request guard (`PARLEY_GRPC_MAX_REQUEST_BYTES`, which also
    /// bounds the memory a request can take) or the document limit checked
    /// after decoding (`PARLEY_MAX_DOCUMENT_BYTES`), instead of tonic's
    /// anonymous "decoded message length too large".
    pub fn into_server(self) -> IngestServiceServer<Self> {
        IngestServiceServer::new(self).max_decoding_message_size(usize::MAX)
    }

    fn check(&self, name: &str, content: &[u8]) -> Result<(), Status> {
        if content.is_empty() {
            return Err(Status::invalid_argument(format!(
                "document {name:?}: content is empty"
            )));
        }
        if content.len() > self.max_document_bytes {
            return Err(Status::invalid_argument(format!(
                "document {name:?}: {} bytes exceeds the limit of {} bytes (PARLEY_MAX_DOCUMENT_BYTES)",
                content.len(),
                self.max_document_bytes
            )));
        }
        Ok(())
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// The fields of a submission that ingestion needs, whichever RPC brought it.
struct Document<'a> {
    name: &'a str,
    content: &'a [u8],
    media_type: Option<&'a str>,
    source_url: &'a str,
    wait_for_events: bool,
}

#[tonic::async_trait]
impl IngestService for IngestGrpc {
    async fn submit_article(
        &self,
        request: Request<SubmitArticleRequest>,
    ) -> Result<Response<SubmitArticleResponse>, Status> {
        let body = request.get_ref();
        let document = Document {
            name: &body.name,
            content: &body.content,
            media_type: non_empty(&body.media_type),
            source_url: &body.source_url,
            wait_for_events: body.wait_for_events,
        };
        let response = self.submit(&request, document).await?;
        Ok(Response::new(response))
    }

    async fn submit_feed(
        &self,
        request: Request<SubmitFeedRequest>,
    ) -> Result<Response<SubmitFeedResponse>, Status> {
        let body = request.get_ref();
        let document = Document {
            name: &body.name,
            content: &body.content,
            media_type: Some("application/rss+xml"),
            source_url: &body.source_url,
            wait_for_events: body.wait_for_events,
        };
        let response = self.submit(&request, document).await?;
        Ok(Response::new(SubmitFeedResponse {
            documents: response.documents,
            errors: response.errors,
        }))
    }

    async fn reprocess(
        &self,
        request: Request<parley_domain::pb::ReprocessRequest>,
    ) -> Result<Response<parley_domain::pb::ReprocessResponse>, Status> {
        let request = request.into_inner();
        let since = match request.since {
            Some(ts) => Some(
                parley_domain::time::from_timestamp(&ts)
                    .ok_or_else(|| Status::invalid_argument("since is out of range"))?,
            ),
            None => None,
        };
        let response = self
            .ingest
            .reprocess(since, request.dry_run)
            .await
            .map_err(|e| Status::unavailable(format!("reprocess: the log failed: {e}")))?;
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    //! Over a real socket, so the peer address the limiter keys on is real.

    use std::time::Duration;

    use parley_domain::pb::ingest_service_client::IngestServiceClient;
    use parley_runtime::{GrpcServer, ShutdownSignal};
    use tonic::Code;
    use tonic::transport::Channel;

    use super::*;

    const ARTICLE: &str = "2024-03-01\nThe parties agreed to a ceasefire in Geneva.\n";

    /// A served ingest over a throwaway SQLite log; dropped with the test.
    struct Served {
        client: IngestServiceClient<Channel>,
        shutdown: ShutdownSignal,
        dir: std::path::PathBuf,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.shutdown.token.cancel();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn serve(rate_per_second: u32, max_document_bytes: usize) -> Served {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "parley-ingest-service-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let log: Arc<dyn parley_log::EventLog> =
            Arc::new(parley_log::sqlite::SqliteLog::open(&dir).unwrap());
        let kb = parley_kb::KnowledgeBase::bundled().unwrap();
        let limits = parley_extract::Limits {
            max_bytes: max_document_bytes,
            max_feed_items: 100,
        };
        let ingest = Arc::new(Ingest::new(log, &kb, limits));
        let service = IngestGrpc::new(ingest, max_document_bytes).with_rate_limit(rate_per_second);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = ShutdownSignal::new(Duration::from_secs(1));
        tokio::spawn(
            GrpcServer::new()
                .add_service(service.into_server())
                .serve(listener, shutdown.clone()),
        );
        let client = IngestServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        Served {
            client,
            shutdown,
            dir,
        }
    }

    fn article(name: &str, content: &str) -> SubmitArticleRequest {
        SubmitArticleRequest {
            name: name.into(),
            content: content.as_bytes().to_vec(),
            media_type: "text/plain".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_client_over_its_rate_is_refused_with_the_limit_named() {
        let mut served = serve(3, 1 << 20).await;
        for i in 0..3 {
            served
                .client
                .submit_article(article(&format!("a{i}.txt"), ARTICLE))
                .await
                .expect("within the burst");
        }
        // Both RPCs draw on the same per-client budget.
        let refused = served
            .client
            .submit_feed(SubmitFeedRequest {
                name: "feed.xml".into(),
                content: b"<rss/>".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            refused.message().contains("3 requests per second")
                && refused.message().contains("PARLEY_INGEST_RATE_PER_SEC"),
            "{refused:?}"
        );
        let pushback: u64 = refused
            .metadata()
            .get(PUSHBACK_METADATA)
            .expect("the delay in metadata")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=334).contains(&pushback), "{pushback}");
        assert_eq!(
            refused
                .metadata()
                .get(RATE_METADATA)
                .map(|v| v.to_str().unwrap()),
            Some("3")
        );
        // The budget refills at the configured rate.
        tokio::time::sleep(Duration::from_millis(400)).await;
        served
            .client
            .submit_article(article("late.txt", ARTICLE))
            .await
            .expect("refilled");
    }

    #[tokio::test]
    async fn without_a_rate_limit_every_request_is_served() {
        let mut served = serve(0, 1 << 20).await;
        for i in 0..20 {
            served
                .client
                .submit_article(article(&format!("b{i}.txt"), ARTICLE))
                .await
                .expect("no limit");
        }
    }

    #[tokio::test]
    async fn both_rpcs_check_the_document_the_same_way() {
        let mut served = serve(0, 64).await;
        let big = "x".repeat(65);
        let article_err = served
            .client
            .submit_article(article("big.txt", &big))
            .await
            .unwrap_err();
        let feed_err = served
            .client
            .submit_feed(SubmitFeedRequest {
                name: "big.xml".into(),
                content: big.clone().into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        for err in [&article_err, &feed_err] {
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(
                err.message()
                    .contains("limit of 64 bytes (PARLEY_MAX_DOCUMENT_BYTES)"),
                "{err:?}"
            );
        }
        let empty = served
            .client
            .submit_feed(SubmitFeedRequest {
                name: "empty.xml".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(empty.message().contains("content is empty"), "{empty:?}");
    }
}
