//! Connecting to a Parley gRPC server with the same credentials it checks.
//!
//! The CLI (and any other client) flattens [`ClientSecurityArgs`] into its
//! flags and calls [`connect`]; the returned channel adds the bearer token to
//! every call, so generated clients use it unchanged:
//! `IngestServiceClient::new(connect(url, &args).await?)`.

use std::path::{Path, PathBuf};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// Client-side security flags; flatten into a client's command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientSecurityArgs {
    /// Bearer token sent with every request.
    #[arg(long = "grpc-token", env = "PARLEY_GRPC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA bundle to verify the server with (https:// URLs); the system roots when unset.
    #[arg(long = "tls-ca", env = "PARLEY_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(
        long = "tls-client-cert",
        env = "PARLEY_TLS_CLIENT_CERT",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(
        long = "tls-client-key",
        env = "PARLEY_TLS_CLIENT_KEY",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Server name to verify instead of the URL's host (e.g. when connecting by IP).
    #[arg(long = "tls-domain", env = "PARLEY_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
}

/// Why a client could not be set up or connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A CA, certificate or key file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file was meant to hold.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Settings that cannot work together (e.g. a CA with an http:// URL).
    #[error("{0}")]
    Invalid(String),
    /// The server could not be reached or the TLS handshake failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// What went wrong, each cause said once (see [`causes`]).
        reason: String,
    },
}

/// An error and its causes as one line, each distinct cause said once.
///
/// tonic and hyper wrap a refused connection in three layers, some of which
/// repeat their cause in their own text ("transport error: transport error:
/// tcp connect error: tcp connect error: Connection refused"); this keeps a
/// cause only when the text before it does not already say it.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        let said = parts.iter().any(|p| p.contains(&text));
        if !text.is_empty() && !said {
            // A wrapper that merely repeats its cause's text adds nothing.
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        next = error.source();
    }
    // Generic wrappers say nothing a person can act on when a cause follows.
    if parts.len() > 1 {
        parts.retain(|p| p != "transport error");
    }
    parts.join(": ")
}

/// Takes `server` as a URL, reading one without a scheme (`127.0.0.1:50051`,
/// `localhost:50051`) as `http://`.
pub fn normalize_url(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Clone, Default)]
pub struct TokenInterceptor {
    header: Option<MetadataValue<Ascii>>,
}

impl TokenInterceptor {
    /// An interceptor sending `token`, or nothing when `None`.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let header = token
            .map(|t| {
                let mut value: MetadataValue<Ascii> =
                    format!("Bearer {t}").parse().map_err(|_| {
                        ClientError::Invalid(
                            "PARLEY_GRPC_TOKEN has characters not allowed in a header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// A channel that authenticates every call; pass it to any generated client's `new`.
pub type AuthChannel = InterceptedService<Channel, TokenInterceptor>;

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

impl ClientSecurityArgs {
    /// The endpoint for `url` with TLS configured from these flags (no connection yet).
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, ClientError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| ClientError::Invalid(format!("{url:?} is not a valid URL: {e}")))?;
        let https = url.starts_with("https://");
        let wants_tls =
            self.tls_ca.is_some() || self.client_cert.is_some() || self.tls_domain.is_some();
        if !https {
            if wants_tls {
                return Err(ClientError::Invalid(format!(
                    "TLS settings (PARLEY_TLS_CA / PARLEY_TLS_CLIENT_CERT / PARLEY_TLS_DOMAIN) are given but {url} is not https://"
                )));
            }
            return Ok(endpoint);
        }
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca, "CA bundle")?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        if let Some(domain) = &self.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint
            .tls_config(tls)
            .map_err(|source| ClientError::Connect {
                url: url.to_owned(),
                reason: causes(&source),
            })
    }

    /// The interceptor that sends this token.
    pub fn interceptor(&self) -> Result<TokenInterceptor, ClientError> {
        TokenInterceptor::new(self.token.as_deref())
    }
}

/// Connects to `url` (`http://` or `https://`; no scheme means `http://`)
/// with the token and TLS settings of `args`.
pub async fn connect(url: &str, args: &ClientSecurityArgs) -> Result<AuthChannel, ClientError> {
    let url = &normalize_url(url);
    let endpoint = args.endpoint(url)?;
    let interceptor = args.interceptor()?;
    if args.token.is_some()
        && url.starts_with("http://")
        && !url.starts_with("http://127.")
        && !url.starts_with("http://localhost")
        && !url.starts_with("http://[::1]")
    {
        tracing::warn!(%url, "sending the bearer token in plaintext; use https://");
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            url: url.to_owned(),
            reason: causes(&source),
        })?;
    Ok(InterceptedService::new(channel, interceptor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose text repeats its cause's, as tonic's and hyper's do.
    #[derive(Debug)]
    struct Wrapper(&'static str, Option<Box<Wrapper>>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let refused = Wrapper(
            "transport error",
            Some(Box::new(Wrapper(
                "transport error",
                Some(Box::new(Wrapper(
                    "tcp connect error: Connection refused",
                    Some(Box::new(Wrapper("Connection refused", None))),
                ))),
            ))),
        );
        assert_eq!(causes(&refused), "tcp connect error: Connection refused");
        assert_eq!(causes(&Wrapper("alone", None)), "alone");
    }

    #[test]
    fn a_url_without_a_scheme_is_http() {
        assert_eq!(normalize_url("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(normalize_url(" https://h:1 "), "https://h:1");
    }
}
