//! What every gRPC call leaves behind: a trace id in the logs, a count and a
//! duration in the metrics, and never an empty UNIMPLEMENTED.
//!
//! Each call runs inside a `grpc` span carrying `rpc.service`, `rpc.method`
//! and a `trace_id`: the caller's, read from a W3C `traceparent` header, or a
//! new random one. JSON log lines written while the call is handled carry
//! that id, so one request can be followed across the log. The id is sent
//! back in the `trace-id` response header.
//!
//! Metrics, labelled with the gRPC service and method:
//! - `parley_grpc_requests_total{grpc_service, grpc_method, grpc_code}`;
//! - `parley_grpc_request_duration_seconds{grpc_service, grpc_method}`, from
//!   the request to the end of the response (for a server stream, the life of
//!   the stream).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tonic::body::Body;
use tracing::Instrument;

/// Counter of finished calls.
pub const REQUESTS: &str = "parley_grpc_requests_total";
/// Histogram (seconds) of call durations.
pub const DURATION: &str = "parley_grpc_request_duration_seconds";
/// Response header carrying the call's trace id.
pub const TRACE_ID_HEADER: &str = "trace-id";

/// Tower layer adding spans, metrics and UNIMPLEMENTED messages to a server.
#[derive(Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe { inner }
    }
}

/// The service built by [`ObserveLayer`].
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    let valid = id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then_some(id)
}

/// A fresh random trace id (32 lower-case hex digits).
pub fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What is measured about one call until its response ends.
struct Call {
    service: String,
    method: String,
    started: Instant,
}

impl Call {
    fn finish(&self, code: i32) {
        let code = tonic::Code::from_i32(code);
        metrics::counter!(
            REQUESTS,
            "grpc_service" => self.service.clone(),
            "grpc_method" => self.method.clone(),
            "grpc_code" => format!("{code:?}"),
        )
        .increment(1);
        metrics::histogram!(
            DURATION,
            "grpc_service" => self.service.clone(),
            "grpc_method" => self.method.clone(),
        )
        .record(self.started.elapsed().as_secs_f64());
    }
}

/// The `grpc-status` in a header map, if any.
fn status_code(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl<S> tower_service::Service<http::Request<Body>> for Observe<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/').to_owned();
        let (service, method) = path.split_once('/').unwrap_or((path.as_str(), ""));
        let (service, method) = (service.to_owned(), method.to_owned());
        let trace_id = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of)
            .map(str::to_owned)
            .unwrap_or_else(new_trace_id);
        let span = tracing::info_span!(
            "grpc",
            rpc.service = %service,
            rpc.method = %method,
            trace_id = %trace_id,
        );
        let call = Call {
            service,
            method,
            started: Instant::now(),
        };
        let future = self.inner.call(request);
        Box::pin(
            async move {
                let mut response = future.await?;
                if let Ok(value) = http::HeaderValue::from_str(&trace_id) {
                    response.headers_mut().insert(TRACE_ID_HEADER, value);
                }
                // A trailers-only response (an error, or tonic's answer to an
                // unknown method) carries its status in the headers.
                if let Some(code) = status_code(response.headers()) {
                    if code == tonic::Code::Unimplemented as i32
                        && !response.headers().contains_key("grpc-message")
                    {
                        let message = format!("{} has no method {:?}", call.service, call.method);
                        let status = tonic::Status::unimplemented(message);
                        let mut headers = http::HeaderMap::new();
                        if status.add_header(&mut headers).is_ok()
                            && let Some(value) = headers.get("grpc-message")
                        {
                            response.headers_mut().insert("grpc-message", value.clone());
                        }
                    }
                    call.finish(code);
                    return Ok(response);
                }
                Ok(response.map(|body| {
                    Body::new(ObservedBody {
                        inner: body,
                        call: Some(call),
                    })
                }))
            }
            .instrument(span),
        )
    }
}

/// A response body that records the call when its trailers (or its end) arrive.
struct ObservedBody {
    inner: Body,
    call: Option<Call>,
}

impl ObservedBody {
    fn finish(&mut self, code: i32) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Dropped before its trailers: the client went away mid-response.
        self.finish(tonic::Code::Cancelled as i32);
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.finish(code);
                }
            }
            Some(Err(_)) => this.finish(tonic::Code::Internal as i32),
            // Ended without trailers: not a gRPC answer, but not an error either.
            None => this.finish(tonic::Code::Ok as i32),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_traceparent_or_are_new() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
        let id = new_trace_id();
        assert_eq!(id.len(), 32);
        assert!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).is_some());
        assert_ne!(new_trace_id(), id);
    }
}
