//! The NATS intake: documents submitted on `parley.ingest.submit`.
//!
//! It is a NATS micro service (`parley-ingest`, endpoint `submit`), so
//! `nats micro ls` and the `$SRV.PING|INFO|STATS` subjects find it, and
//! replicas share the work as one queue group. A request is one of:
//!
//! - a protobuf `parley.v1.SubmitArticleRequest` (`Content-Type:
//!   application/protobuf`, or no header); the reply is a protobuf
//!   `SubmitArticleResponse`;
//! - JSON (`Content-Type: application/json`, or a body starting with `{`):
//!   `{"name": "a.txt", "text": "..."}`, or `"content"` holding base64 (the
//!   proto3 JSON of the request), with optional `"media_type"`,
//!   `"source_url"` and `"wait_for_events"`; the reply is the response in
//!   JSON with the proto field names (`{"documents": [{"document_id": ...,
//!   "event_ids": [...]}], "errors": [...]}`);
//! - the document itself, with `Content-Type: text/plain`, `text/html`,
//!   `application/rss+xml`, `application/atom+xml` or `application/xml`, its
//!   name in a `Parley-Name` header (and `Parley-Wait-For-Events: true` for
//!   receipts listing the events); the reply is JSON as above.
//!
//! A request that cannot be read, or that is over the client's rate, is
//! answered with the error in the reply body (a `DocumentError`) and the
//! micro-service error headers (`Nats-Service-Error`, `Nats-Service-Error-Code`
//! 400 or 429); nothing is ingested for it.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::service::ServiceExt;
use base64::Engine;
use futures::StreamExt;
use parley_domain::pb::{DocumentError, SubmitArticleRequest, SubmitArticleResponse};
use parley_runtime::ShutdownSignal;
use parley_runtime::limits::RateLimiter;
use prost::Message;

use crate::{Ingest, SUBMIT_SUBJECT};

/// Name of the NATS micro service (`$SRV.*.parley-ingest`).
pub const SERVICE_NAME: &str = "parley-ingest";
/// Queue group the replicas share the intake in.
const QUEUE_GROUP: &str = "parley-ingest";
/// Header naming a document sent as its own body.
pub const NAME_HEADER: &str = "Parley-Name";
/// Header giving the source URL of a document sent as its own body.
pub const SOURCE_HEADER: &str = "Parley-Source-Url";
/// Header asking (`true`) for receipts that list the events each document led to.
pub const WAIT_HEADER: &str = "Parley-Wait-For-Events";

/// What the intake accepts, said in every refusal of an unreadable request.
const EXPECTED: &str = "expected a protobuf parley.v1.SubmitArticleRequest, JSON {\"name\": ..., \"text\": ...}, \
     or the document itself with Content-Type text/plain, text/html or application/rss+xml and a Parley-Name header";

/// How a request was sent, and so how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
    /// The document as the body; answered in JSON.
    Document,
}

/// A request the intake could not take, with the micro-service error code.
struct Refusal {
    name: String,
    message: String,
    code: u16,
}

/// The fields of a JSON submission. Both the proto field names and proto3
/// JSON's lowerCamelCase are read.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    #[serde(default)]
    name: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, alias = "mediaType")]
    media_type: String,
    #[serde(default, alias = "sourceUrl")]
    source_url: String,
    #[serde(default, alias = "waitForEvents")]
    wait_for_events: bool,
}

/// The Content-Type of a message, lower-cased, without parameters.
fn content_type(headers: Option<&HeaderMap>) -> Option<String> {
    let value = headers?.get("Content-Type")?.as_str();
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

/// Reads a request in whichever encoding it came in.
fn parse(
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> (Encoding, Result<SubmitArticleRequest, Refusal>) {
    let refuse = |message: String| Refusal {
        name: String::new(),
        message,
        code: 400,
    };
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    match content_type(headers).as_deref() {
        Some("application/json") => (Encoding::Json, parse_json(payload).map_err(refuse)),
        Some(
            media @ ("text/plain"
            | "text/html"
            | "application/xhtml+xml"
            | "application/rss+xml"
            | "application/atom+xml"
            | "application/xml"
            | "text/xml"),
        ) => (
            Encoding::Document,
            Ok(SubmitArticleRequest {
                name: header(NAME_HEADER),
                content: payload.to_vec(),
                media_type: media.to_owned(),
                source_url: header(SOURCE_HEADER),
                wait_for_events: header(WAIT_HEADER).eq_ignore_ascii_case("true"),
            }),
        ),
        Some("application/protobuf" | "application/x-protobuf" | "application/octet-stream")
        | None
            if !payload.trim_ascii_start().starts_with(b"{") =>
        {
            let decoded = SubmitArticleRequest::decode(payload).map_err(|e| {
                refuse(format!(
                    "message on {SUBMIT_SUBJECT} is not a protobuf parley.v1.SubmitArticleRequest: {e}; {EXPECTED}"
                ))
            });
            (Encoding::Protobuf, decoded)
        }
        None => (Encoding::Json, parse_json(payload).map_err(refuse)),
        Some(other) => (
            Encoding::Json,
            Err(refuse(format!(
                "message on {SUBMIT_SUBJECT} has Content-Type {other}, which the intake does not read; {EXPECTED}"
            ))),
        ),
    }
}

/// A JSON submission: `text` (a string) or `content` (base64), not both.
fn parse_json(payload: &[u8]) -> Result<SubmitArticleRequest, String> {
    let request: JsonRequest = serde_json::from_slice(payload).map_err(|e| {
        format!("message on {SUBMIT_SUBJECT} is not valid JSON for a submission: {e}; {EXPECTED}")
    })?;
    let content = match (request.text, request.content) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(content)) => base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|e| {
                format!(
                    "message on {SUBMIT_SUBJECT}: \"content\" is not base64 ({e}); send the text as \"text\" instead"
                )
            })?,
        (Some(_), Some(_)) => {
            return Err(format!(
                "message on {SUBMIT_SUBJECT}: give \"text\" or \"content\" (base64), not both"
            ));
        }
        (None, None) => Vec::new(),
    };
    Ok(SubmitArticleRequest {
        name: request.name,
        content,
        media_type: request.media_type,
        source_url: request.source_url,
        wait_for_events: request.wait_for_events,
    })
}

/// Who a NATS intake message is rate-limited as. NATS does not tell a
/// subscriber which connection published a message, but a request's reply
/// subject starts with its connection's inbox prefix (`_INBOX.<nuid>`), so
/// that prefix stands for the client; messages without a reply subject share
/// one budget. Account permissions and limits on the NATS server remain the
/// real control over who may publish at all.
fn client_key(reply: Option<&str>) -> String {
    match reply {
        Some(reply) => {
            let mut tokens = reply.splitn(3, '.');
            match (tokens.next(), tokens.next()) {
                (Some(first), Some(second)) => format!("{first}.{second}"),
                _ => reply.to_owned(),
            }
        }
        None => "(no reply subject)".to_owned(),
    }
}

/// The NATS intake's per-client limit: `per_second` submissions a second with
/// bursts of as many, 0 for none. Same setting as the gRPC limit.
pub fn rate_limiter(per_second: u32) -> Option<Arc<RateLimiter<String>>> {
    (per_second > 0).then(|| Arc::new(RateLimiter::new(per_second, per_second)))
}

/// Takes one request: checks the rate, reads it, ingests it.
async fn handle(
    ingest: &Ingest,
    rate_limiter: Option<&RateLimiter<String>>,
    message: &async_nats::Message,
) -> (Encoding, Result<SubmitArticleResponse, Refusal>) {
    // Every message draws on its client's budget, readable or not.
    let limited = rate_limiter.and_then(|l| l.check(&client_key(message.reply.as_deref())).err());
    let (encoding, parsed) = parse(message.headers.as_ref(), &message.payload);
    let request = match parsed {
        Ok(request) => request,
        Err(refusal) => return (encoding, Err(refusal)),
    };
    if let Some(limited) = limited {
        metrics::counter!("parley_ingest_rate_limited_total").increment(1);
        return (
            encoding,
            Err(Refusal {
                name: request.name,
                message: format!(
                    "rate limit of {} requests per second per client exceeded on {SUBMIT_SUBJECT} (PARLEY_INGEST_RATE_PER_SEC); retry in {} ms",
                    limited.per_second,
                    limited.retry_after.as_millis().max(1)
                ),
                code: 429,
            }),
        );
    }
    if request.content.is_empty() {
        let message = if encoding == Encoding::Protobuf && request.name.is_empty() {
            format!("message on {SUBMIT_SUBJECT} holds no document; {EXPECTED}")
        } else {
            "content is empty".to_owned()
        };
        return (
            encoding,
            Err(Refusal {
                name: request.name,
                message,
                code: 400,
            }),
        );
    }
    let media_type = (!request.media_type.is_empty()).then_some(request.media_type.as_str());
    let source_url = (!request.source_url.is_empty()).then_some(request.source_url.as_str());
    let mut response = ingest
        .submit(&request.name, &request.content, media_type, source_url)
        .await;
    if request.wait_for_events
        && let Err(e) = ingest
            .wait_for_events(&mut response, crate::WAIT_FOR_EVENTS)
            .await
    {
        tracing::warn!(error = %e, "cannot read the resolver's answer for an intake request");
    }
    (encoding, Ok(response))
}

/// The reply body in the request's encoding, and its headers.
fn reply(
    encoding: Encoding,
    outcome: Result<SubmitArticleResponse, Refusal>,
) -> (bytes::Bytes, HeaderMap) {
    let mut headers = HeaderMap::new();
    let response = match outcome {
        Ok(response) => response,
        Err(refusal) => {
            headers.insert(
                async_nats::service::NATS_SERVICE_ERROR,
                refusal.message.as_str(),
            );
            headers.insert(
                async_nats::service::NATS_SERVICE_ERROR_CODE,
                refusal.code.to_string().as_str(),
            );
            SubmitArticleResponse {
                documents: vec![],
                errors: vec![DocumentError {
                    name: refusal.name,
                    message: refusal.message,
                }],
            }
        }
    };
    let body = match encoding {
        Encoding::Protobuf => {
            headers.insert("Content-Type", "application/protobuf");
            response.encode_to_vec()
        }
        Encoding::Json | Encoding::Document => {
            headers.insert("Content-Type", "application/json");
            response_json(&response).to_string().into_bytes()
        }
    };
    (body.into(), headers)
}

/// A `SubmitArticleResponse` in JSON with the proto field names (which every
/// proto3 JSON parser accepts).
fn response_json(response: &SubmitArticleResponse) -> serde_json::Value {
    let documents: Vec<_> = response
        .documents
        .iter()
        .map(|d| {
            serde_json::json!({
                "document_id": d.document_id,
                "name": d.name,
                "duplicate": d.duplicate,
                "candidate_events": d.candidate_events,
                "sequence": d.sequence,
                "warnings": d.warnings,
                "event_ids": d.event_ids,
                "resolved": d.resolved,
            })
        })
        .collect();
    let errors: Vec<_> = response
        .errors
        .iter()
        .map(|e| serde_json::json!({ "name": e.name, "message": e.message }))
        .collect();
    serde_json::json!({ "documents": documents, "errors": errors })
}

/// Answers `parley.ingest.submit` until shutdown, as the NATS micro service
/// `parley-ingest`. A client over `rate_limiter`'s budget is answered with an
/// error naming the limit and its document is not ingested.
pub async fn serve(
    client: async_nats::Client,
    ingest: Arc<Ingest>,
    rate_limiter: Option<Arc<RateLimiter<String>>>,
    shutdown: ShutdownSignal,
) {
    let service = client
        .service_builder()
        .description("Parley document intake: submit an article, a page or a feed")
        .queue_group(QUEUE_GROUP)
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await;
    let service = match service {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the NATS intake service");
            return;
        }
    };
    let endpoint = service
        .endpoint_builder()
        .name("submit")
        .add(SUBMIT_SUBJECT)
        .await;
    let mut endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(e) => {
            tracing::error!(error = %e, subject = SUBMIT_SUBJECT, "cannot subscribe to the intake subject");
            return;
        }
    };
    loop {
        let request = tokio::select! {
            _ = shutdown.token.cancelled() => break,
            request = endpoint.next() => match request { Some(r) => r, None => break },
        };
        let (encoding, outcome) = handle(&ingest, rate_limiter.as_deref(), &request.message).await;
        if request.message.reply.is_none() {
            continue;
        }
        let (body, headers) = reply(encoding, outcome);
        if let Err(e) = request.respond_with_headers(Ok(body), headers).await {
            tracing::warn!(error = %e, "could not reply to an intake request");
        }
    }
    let _ = endpoint.stop().await;
    let _ = service.stop().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", content_type);
        headers.insert(NAME_HEADER, "a.txt");
        headers
    }

    #[test]
    fn each_encoding_is_read() {
        let (encoding, request) = parse(None, br#"{"name": "a.txt", "text": "Talks."}"#);
        let request = request.ok().unwrap();
        assert_eq!(encoding, Encoding::Json);
        assert_eq!(
            (request.name.as_str(), request.content.as_slice()),
            ("a.txt", &b"Talks."[..])
        );

        let (_, request) = parse(
            None,
            br#"{"name": "b", "content": "VGFsa3Mu", "mediaType": "text/plain"}"#,
        );
        let request = request.ok().unwrap();
        assert_eq!(request.content, b"Talks.");
        assert_eq!(request.media_type, "text/plain");

        let (encoding, request) = parse(Some(&headers("text/plain; charset=utf-8")), b"Talks.");
        let request = request.ok().unwrap();
        assert_eq!(encoding, Encoding::Document);
        assert_eq!(request.name, "a.txt");
        assert_eq!(request.media_type, "text/plain");

        let proto = SubmitArticleRequest {
            name: "c".into(),
            content: b"x".to_vec(),
            ..Default::default()
        };
        let (encoding, request) = parse(None, &proto.encode_to_vec());
        assert_eq!(encoding, Encoding::Protobuf);
        assert_eq!(request.ok().unwrap(), proto);
    }

    #[test]
    fn unreadable_requests_say_what_was_expected() {
        let message = |headers: Option<&HeaderMap>, payload: &[u8]| match parse(headers, payload).1
        {
            Err(refusal) => refusal.message,
            Ok(request) => panic!("read {request:?}"),
        };
        assert!(message(None, b"{\"name\": 3}").contains("not valid JSON for a submission"));
        assert!(message(None, b"{\"title\": \"x\"}").contains("unknown field `title`"));
        assert!(message(Some(&headers("image/png")), b"x").contains("Content-Type image/png"));
        assert!(message(None, b"\xFF").ends_with(EXPECTED));
    }

    #[test]
    fn the_reply_is_in_the_request_encoding() {
        let refusal = || {
            Err(Refusal {
                name: "x".into(),
                message: "bad".into(),
                code: 400,
            })
        };
        let (body, headers) = reply(Encoding::Json, refusal());
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["errors"][0]["message"], "bad");
        assert_eq!(
            headers.get("Nats-Service-Error-Code").unwrap().as_str(),
            "400"
        );
        let (body, _) = reply(Encoding::Protobuf, refusal());
        let decoded = SubmitArticleResponse::decode(body).unwrap();
        assert_eq!(decoded.errors[0].message, "bad");
    }

    #[test]
    fn clients_are_told_apart_by_their_inbox() {
        assert_eq!(client_key(Some("_INBOX.abc.def")), "_INBOX.abc");
        assert_eq!(client_key(None), "(no reply subject)");
    }
}
