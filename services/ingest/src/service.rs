//! `parley.v1.IngestService` over gRPC, and the NATS intake subject.

use std::sync::Arc;

use futures::StreamExt;
use parley_domain::pb::ingest_service_server::{IngestService, IngestServiceServer};
use parley_domain::pb::{
    SubmitArticleRequest, SubmitArticleResponse, SubmitFeedRequest, SubmitFeedResponse,
};
use parley_runtime::ShutdownSignal;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::{Ingest, SUBMIT_SUBJECT};

/// The gRPC face of the ingest service.
#[derive(Clone)]
pub struct IngestGrpc {
    ingest: Arc<Ingest>,
    max_document_bytes: usize,
}

impl IngestGrpc {
    /// Serves `ingest`; requests over `max_document_bytes` are refused before reading.
    pub fn new(ingest: Arc<Ingest>, max_document_bytes: usize) -> Self {
        Self {
            ingest,
            max_document_bytes,
        }
    }

    /// Wraps it in the tonic server type, with a message limit matching the document limit.
    pub fn into_server(self) -> IngestServiceServer<Self> {
        let limit = self.max_document_bytes + 64 * 1024;
        IngestServiceServer::new(self).max_decoding_message_size(limit)
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

#[tonic::async_trait]
impl IngestService for IngestGrpc {
    async fn submit_article(
        &self,
        request: Request<SubmitArticleRequest>,
    ) -> Result<Response<SubmitArticleResponse>, Status> {
        let request = request.into_inner();
        self.check(&request.name, &request.content)?;
        let response = self
            .ingest
            .submit(
                &request.name,
                &request.content,
                non_empty(&request.media_type),
                non_empty(&request.source_url),
            )
            .await;
        Ok(Response::new(response))
    }

    async fn submit_feed(
        &self,
        request: Request<SubmitFeedRequest>,
    ) -> Result<Response<SubmitFeedResponse>, Status> {
        let request = request.into_inner();
        self.check(&request.name, &request.content)?;
        let response = self
            .ingest
            .submit(
                &request.name,
                &request.content,
                Some("application/rss+xml"),
                non_empty(&request.source_url),
            )
            .await;
        Ok(Response::new(SubmitFeedResponse {
            documents: response.documents,
            errors: response.errors,
        }))
    }
}

/// Answers `parley.ingest.submit` requests (protobuf `SubmitArticleRequest` in,
/// `SubmitArticleResponse` out) until shutdown. Requests in a queue group, so
/// replicas share the work.
pub async fn serve_nats(client: async_nats::Client, ingest: Arc<Ingest>, shutdown: ShutdownSignal) {
    let mut subscription = match client
        .queue_subscribe(SUBMIT_SUBJECT, "parley-ingest".to_owned())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, subject = SUBMIT_SUBJECT, "cannot subscribe to the intake subject");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            _ = shutdown.token.cancelled() => break,
            message = subscription.next() => match message { Some(m) => m, None => break },
        };
        let response = match SubmitArticleRequest::decode(message.payload.as_ref()) {
            Ok(request) if !request.content.is_empty() => {
                ingest
                    .submit(
                        &request.name,
                        &request.content,
                        non_empty(&request.media_type),
                        non_empty(&request.source_url),
                    )
                    .await
            }
            Ok(request) => SubmitArticleResponse {
                documents: vec![],
                errors: vec![parley_domain::pb::DocumentError {
                    name: request.name,
                    message: "content is empty".into(),
                }],
            },
            Err(e) => SubmitArticleResponse {
                documents: vec![],
                errors: vec![parley_domain::pb::DocumentError {
                    name: String::new(),
                    message: format!(
                        "message on {SUBMIT_SUBJECT} is not a protobuf parley.v1.SubmitArticleRequest: {e}"
                    ),
                }],
            },
        };
        if let Some(reply) = message.reply
            && let Err(e) = client.publish(reply, response.encode_to_vec().into()).await
        {
            tracing::warn!(error = %e, "could not reply to an intake request");
        }
    }
    let _ = subscription.unsubscribe().await;
}
