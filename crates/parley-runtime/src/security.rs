//! Who may talk to a Parley gRPC server, over what, and how much.
//!
//! A server has three independent guards, all configured from
//! [`ServerSecurityArgs`]:
//!
//! * **TLS** (rustls) when `PARLEY_TLS_CERT`/`PARLEY_TLS_KEY` are set, and
//!   **mutual TLS** when `PARLEY_TLS_CLIENT_CA` is set too: the handshake then
//!   refuses clients without a certificate signed by that CA.
//! * A **bearer token** (`PARLEY_GRPC_TOKEN`) checked on every request except
//!   `grpc.health.v1` (Kubernetes probes carry no credentials). The check
//!   compares SHA-256 digests in constant time, so timing reveals neither the
//!   token nor its length.
//! * A **request size limit** (`PARLEY_GRPC_MAX_REQUEST_BYTES`) on every
//!   method, enforced while the body streams in, so an oversized request is
//!   never buffered whole.
//!
//! With neither a token nor mTLS the server is open to anyone who can reach
//! it, so it refuses to listen anywhere but loopback unless the operator says
//! `PARLEY_INSECURE_LISTEN=true`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{Either, Ready, ready};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Largest request body accepted by default: above the ingest service's
/// default 10 MiB document limit plus framing, far below what hurts memory.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Path prefix of the health service, which never requires credentials.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Server-side security flags; flatten into a service's `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerSecurityArgs {
    /// PEM certificate chain of this server; enables TLS (with --tls-key).
    #[arg(long, env = "PARLEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of this server's certificate.
    #[arg(long, env = "PARLEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to; enables mutual TLS.
    #[arg(long, env = "PARLEY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Bearer token every request must carry (`authorization: Bearer <token>`); health checks are exempt.
    #[arg(long, env = "PARLEY_GRPC_TOKEN", hide_env_values = true)]
    pub grpc_token: Option<String>,
    /// Allow listening on a non-loopback address with no token and no mTLS (anyone reaching the port may call every method).
    #[arg(long, env = "PARLEY_INSECURE_LISTEN")]
    pub insecure_listen: bool,
    /// Largest gRPC request body accepted on any method, in bytes.
    #[arg(long, env = "PARLEY_GRPC_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub grpc_max_request_bytes: usize,
}

impl Default for ServerSecurityArgs {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            grpc_token: None,
            insecure_listen: false,
            grpc_max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// Why a server's security settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {what} {path} ({flag}): {source}")]
    Read {
        /// What the file was meant to hold.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The flag's environment variable, so the operator knows what to fix.
        flag: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A flag combination that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// No authentication is configured and the address is reachable from outside.
    #[error(
        "refusing to listen on {addr} without authentication: set PARLEY_GRPC_TOKEN \
         (and/or PARLEY_TLS_CERT, PARLEY_TLS_KEY, PARLEY_TLS_CLIENT_CA for mutual TLS), \
         listen on a loopback address, or set PARLEY_INSECURE_LISTEN=true to accept the risk"
    )]
    UnauthenticatedListen {
        /// The non-loopback address.
        addr: SocketAddr,
    },
}

/// Security settings with files read and validated, ready for [`crate::GrpcServer::with_security`].
#[derive(Clone)]
pub struct ServerSecurity {
    tls: Option<ServerTlsConfig>,
    mutual_tls: bool,
    token: Option<TokenDigest>,
    insecure_listen: bool,
    max_request_bytes: usize,
}

impl Default for ServerSecurity {
    /// No TLS, no token, loopback only, default size limit: the safe default.
    fn default() -> Self {
        Self {
            tls: None,
            mutual_tls: false,
            token: None,
            insecure_listen: false,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

impl std::fmt::Debug for ServerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token digest or key material.
        f.debug_struct("ServerSecurity")
            .field("mode", &self.mode())
            .field("insecure_listen", &self.insecure_listen)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

fn read_pem(path: &Path, what: &'static str, flag: &'static str) -> Result<Vec<u8>, SecurityError> {
    let bytes = std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_owned(),
        flag,
        source,
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(SecurityError::Invalid(format!(
            "{what} {} ({flag}) is not PEM: no -----BEGIN line",
            path.display()
        )));
    }
    Ok(bytes)
}

impl ServerSecurityArgs {
    /// Reads the PEM files and checks the flags fit together.
    pub fn load(&self) -> Result<ServerSecurity, SecurityError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = read_pem(cert, "TLS certificate", "PARLEY_TLS_CERT")?;
                let key = read_pem(key, "TLS private key", "PARLEY_TLS_KEY")?;
                let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
                if let Some(ca) = &self.tls_client_ca {
                    let ca = read_pem(ca, "client CA bundle", "PARLEY_TLS_CLIENT_CA")?;
                    // Client authentication is mandatory once a CA is given.
                    config = config
                        .client_ca_root(Certificate::from_pem(ca))
                        .client_auth_optional(false);
                }
                Some(config)
            }
            (None, None) if self.tls_client_ca.is_some() => {
                return Err(SecurityError::Invalid(
                    "PARLEY_TLS_CLIENT_CA needs PARLEY_TLS_CERT and PARLEY_TLS_KEY: mutual TLS is TLS first".into(),
                ));
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(SecurityError::Invalid(
                    "PARLEY_TLS_CERT is set but PARLEY_TLS_KEY is not".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(SecurityError::Invalid(
                    "PARLEY_TLS_KEY is set but PARLEY_TLS_CERT is not".into(),
                ));
            }
        };
        let token = match self.grpc_token.as_deref() {
            None => None,
            Some(t) if t.trim().is_empty() => {
                return Err(SecurityError::Invalid(
                    "PARLEY_GRPC_TOKEN is set but empty; unset it or give a real token".into(),
                ));
            }
            Some(t) if t.len() < 16 => {
                return Err(SecurityError::Invalid(format!(
                    "PARLEY_GRPC_TOKEN is {} characters; use at least 16 (e.g. `openssl rand -hex 32`)",
                    t.len()
                )));
            }
            Some(t) => Some(TokenDigest::of(t.as_bytes())),
        };
        if self.grpc_max_request_bytes < 1024 {
            return Err(SecurityError::Invalid(format!(
                "PARLEY_GRPC_MAX_REQUEST_BYTES is {}; below 1024 bytes even health checks fail",
                self.grpc_max_request_bytes
            )));
        }
        Ok(ServerSecurity {
            tls,
            mutual_tls: self.tls_client_ca.is_some(),
            token,
            insecure_listen: self.insecure_listen,
            max_request_bytes: self.grpc_max_request_bytes,
        })
    }
}

impl ServerSecurity {
    /// True when callers must prove who they are (token or client certificate).
    pub fn authenticates(&self) -> bool {
        self.token.is_some() || self.mutual_tls
    }

    /// One line for the start-up log naming what protects the server.
    pub fn mode(&self) -> &'static str {
        match (self.tls.is_some(), self.mutual_tls, self.token.is_some()) {
            (_, true, true) => "mutual TLS + bearer token",
            (_, true, false) => "mutual TLS",
            (true, false, true) => "TLS + bearer token",
            (false, false, true) => "bearer token over plaintext",
            (true, false, false) => "TLS without client authentication",
            (false, false, false) => "no authentication",
        }
    }

    /// Largest request body accepted, in bytes.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    pub(crate) fn tls(&self) -> Option<&ServerTlsConfig> {
        self.tls.as_ref()
    }

    /// Refuses an unauthenticated listener that is reachable from other hosts,
    /// and logs the auth mode either way.
    pub fn check_listen(&self, addr: SocketAddr) -> Result<(), SecurityError> {
        let loopback = addr.ip().is_loopback();
        if self.authenticates() {
            if self.tls.is_none() && !loopback {
                tracing::warn!(%addr, mode = self.mode(), "the bearer token travels in plaintext; set PARLEY_TLS_CERT and PARLEY_TLS_KEY");
            } else {
                tracing::info!(%addr, mode = self.mode(), "gRPC authentication on");
            }
            return Ok(());
        }
        if loopback {
            tracing::info!(%addr, mode = self.mode(), "gRPC without authentication; listening on loopback only");
            return Ok(());
        }
        if self.insecure_listen {
            tracing::warn!(
                %addr,
                mode = self.mode(),
                "INSECURE: gRPC without authentication on a non-loopback address (PARLEY_INSECURE_LISTEN=true); \
                 anyone who can reach this port can call every method"
            );
            return Ok(());
        }
        Err(SecurityError::UnauthenticatedListen { addr })
    }

    pub(crate) fn layer(&self) -> GuardLayer {
        GuardLayer {
            token: self.token.clone(),
            max_request_bytes: self.max_request_bytes,
        }
    }
}

/// SHA-256 of the expected token: comparing digests keeps the comparison
/// constant-time regardless of the presented token's length.
#[derive(Clone)]
struct TokenDigest(Arc<[u8; 32]>);

impl TokenDigest {
    fn of(token: &[u8]) -> Self {
        Self(Arc::new(Sha256::digest(token).into()))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(digest.ct_eq(&*self.0))
    }
}

/// Tower layer that checks the bearer token and caps request bodies.
#[derive(Clone)]
pub(crate) struct GuardLayer {
    token: Option<TokenDigest>,
    max_request_bytes: usize,
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            token: self.token.clone(),
            max_request_bytes: self.max_request_bytes,
        }
    }
}

/// The service built by [`GuardLayer`].
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    token: Option<TokenDigest>,
    max_request_bytes: usize,
}

impl<S> Guard<S> {
    /// `None` when the request may pass, the refusal otherwise.
    fn refuse(&self, request: &http::Request<Body>) -> Option<Status> {
        let token = self.token.as_ref()?;
        if request.uri().path().starts_with(HEALTH_PREFIX) {
            return None;
        }
        let Some(header) = request.headers().get(http::header::AUTHORIZATION) else {
            return Some(Status::unauthenticated(
                "missing credentials: send `authorization: Bearer <token>` (PARLEY_GRPC_TOKEN)",
            ));
        };
        let presented = header.as_bytes();
        let presented = presented
            .strip_prefix(b"Bearer ")
            .or_else(|| presented.strip_prefix(b"bearer "));
        match presented {
            Some(p) if token.matches(p) => None,
            Some(_) => Some(Status::unauthenticated(
                "invalid bearer token (PARLEY_GRPC_TOKEN)",
            )),
            None => Some(Status::unauthenticated(
                "the authorization header is not `Bearer <token>` (PARLEY_GRPC_TOKEN)",
            )),
        }
    }
}

impl<S> tower_service::Service<http::Request<Body>> for Guard<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(status) = self.refuse(&request) {
            tracing::debug!(
                path = request.uri().path(),
                message = status.message(),
                "gRPC request refused"
            );
            return Either::Left(ready(Ok(status.into_http())));
        }
        let limit = self.max_request_bytes;
        let request = request.map(|body| Body::new(LimitedBody::new(body, limit)));
        Either::Right(self.inner.call(request))
    }
}

/// A request body that fails with RESOURCE_EXHAUSTED once more than `limit`
/// bytes have arrived, naming the limit and its flag.
struct LimitedBody {
    inner: Body,
    seen: usize,
    limit: usize,
}

impl LimitedBody {
    fn new(inner: Body, limit: usize) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
        }
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            this.seen = this.seen.saturating_add(data.len());
            if this.seen > this.limit {
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "request larger than the limit of {} bytes (PARLEY_GRPC_MAX_REQUEST_BYTES)",
                    this.limit
                )))));
            }
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
