//! Webhook delivery: URL checks (SSRF guard), signing, bounded attempts with backoff.
//!
//! # Signature scheme
//!
//! Every POST is signed as Standard Webhooks defines it (see [`crate::signing`])
//! and carries
//!
//! ```text
//! webhook-id: <subscription id>:<event id>:v<version>
//! webhook-timestamp: <unix seconds>
//! webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
//! Parley-Idempotency-Key: <event id>:v<version>
//! Parley-Subscription-Id: <subscription id>
//! Parley-Sequence: <log sequence of the change>
//! Parley-Attempt: <1-based attempt number>
//! ```
//!
//! A receiver recomputes the HMAC with the key its `whsec_` secret encodes,
//! compares in constant time, and refuses timestamps older than a few minutes
//! (replays). Deliveries are at least once: a receiver deduplicates on
//! `webhook-id`, which is the same for every retry and redelivery of one
//! change to one subscription.
//!
//! # Attempts
//!
//! A delivery succeeds on any 2xx answer. Anything else (another status, a
//! timeout, a refused connection, garbage that is not HTTP) is a failed
//! attempt; attempts are spaced by exponential backoff with full jitter and
//! bounded by a per-request timeout. After `max_attempts` the delivery is
//! parked in the subscription's dead-letter list and the subscription moves on.
//! Redirects are not followed and system proxies are not used: both would
//! bypass the address check.
//!
//! # SSRF guard
//!
//! A URL must be http(s) and its host must resolve only to public addresses:
//! loopback, private (RFC 1918), CGNAT, link-local, unique-local (fc00::/7),
//! unspecified, multicast and broadcast addresses are refused unless
//! `PARLEY_WEBHOOK_ALLOW_PRIVATE=true`. The check runs when the subscription is
//! created (a clear error to the caller) and again at every connection, inside
//! the HTTP client's resolver, so a host that later resolves elsewhere (DNS
//! rebinding) is still refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use crate::format::Body;
use crate::signing;

/// Environment variable allowing webhooks to private addresses (tests, on-premises receivers).
pub const ALLOW_PRIVATE_ENV: &str = "PARLEY_WEBHOOK_ALLOW_PRIVATE";
/// Environment variable with the attempts made before a delivery is parked.
pub const MAX_ATTEMPTS_ENV: &str = "PARLEY_WEBHOOK_MAX_ATTEMPTS";
/// Environment variable with the first backoff delay, in milliseconds.
pub const BACKOFF_MS_ENV: &str = "PARLEY_WEBHOOK_BACKOFF_MS";
/// Environment variable with the largest delay between attempts, in milliseconds.
pub const MAX_BACKOFF_MS_ENV: &str = "PARLEY_WEBHOOK_MAX_BACKOFF_MS";
/// Environment variable with the timeout of one attempt, in milliseconds.
pub const TIMEOUT_MS_ENV: &str = "PARLEY_WEBHOOK_TIMEOUT_MS";

/// Settings of webhook delivery.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Attempts before a delivery is parked (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time (with jitter).
    pub initial_backoff: Duration,
    /// Largest delay between attempts.
    pub max_backoff: Duration,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Allow receivers on private, loopback and link-local addresses.
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            // 0.5 s doubling to 5 min, 15 attempts: a receiver may be down for
            // at least 14 minutes (about 28 without jitter) before a delivery
            // is parked as a dead letter.
            max_attempts: 15,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            allow_private: false,
        }
    }
}

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl WebhookConfig {
    /// Defaults overridden by `PARLEY_WEBHOOK_*` environment variables.
    pub fn from_env() -> Self {
        let mut config = Self::default();
        if let Some(n) = env_parse::<u32>(MAX_ATTEMPTS_ENV) {
            config.max_attempts = n.max(1);
        }
        if let Some(ms) = env_parse::<u64>(BACKOFF_MS_ENV) {
            config.initial_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = env_parse::<u64>(MAX_BACKOFF_MS_ENV) {
            config.max_backoff = Duration::from_millis(ms);
        }
        if let Some(ms) = env_parse::<u64>(TIMEOUT_MS_ENV) {
            config.timeout = Duration::from_millis(ms.max(1));
            config.connect_timeout = config.connect_timeout.min(config.timeout);
        }
        config.allow_private = std::env::var(ALLOW_PRIVATE_ENV)
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
            .unwrap_or(false);
        config
    }

    /// Delay after failed attempt `attempt` (1-based): full jitter over an exponential ceiling.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_backoff);
        // Full jitter (AWS architecture blog): uniform in [ceiling/2, ceiling], so
        // retries of many subscriptions spread out but never collapse to zero.
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Why a URL or an attempt was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not a URL, or not http(s).
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Resolves to an address the guard refuses.
    #[error(
        "webhook host {host} resolves to {addr}, a loopback/private/link-local address; refused (operators can set {ALLOW_PRIVATE_ENV}=true)"
    )]
    PrivateAddress {
        /// Host of the URL.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// The host does not resolve.
    #[error("webhook host {host} does not resolve: {reason}")]
    Unresolvable {
        /// Host of the URL.
        host: String,
        /// Resolver message.
        reason: String,
    },
}

/// Whether the guard refuses `ip` (loopback, private, link-local, unique-local, unspecified ...).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10: carrier-grade NAT, often internal.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Parses a webhook URL: http(s), with a host, no credentials.
pub fn parse_url(url: &str) -> Result<Url, WebhookError> {
    let invalid = |reason: &str| WebhookError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs are allowed"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not allowed (use the signing secret)",
        ));
    }
    Ok(parsed)
}

/// Checks a URL against the guard, resolving its host; used when a subscription is created.
pub async fn check_url(url: &str, allow_private: bool) -> Result<Url, WebhookError> {
    let parsed = parse_url(url)?;
    if allow_private {
        return Ok(parsed);
    }
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((bare, port)),
        )
        .await
        .map_err(|_| WebhookError::Unresolvable {
            host: host.clone(),
            reason: "lookup timed out".into(),
        })?
        .map_err(|e| WebhookError::Unresolvable {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(WebhookError::Unresolvable {
            host,
            reason: "no addresses".into(),
        });
    }
    if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return Err(WebhookError::PrivateAddress {
            host,
            addr: bad.ip(),
        });
    }
    Ok(parsed)
}

/// The HTTP client's resolver: drops refused addresses at every connection.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve_public(name.as_str().to_owned()))
    }
}

/// Resolves `host`, keeping only addresses the guard allows.
async fn resolve_public(
    host: String,
) -> Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await?
        .filter(|a| !is_forbidden(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves only to refused (private) addresses").into());
    }
    Ok(Box::new(addrs.into_iter()))
}

/// One POST to make.
#[derive(Debug, Clone)]
pub struct WebhookRequest<'a> {
    /// Where.
    pub url: &'a Url,
    /// Signing secret (never logged).
    pub secret: &'a str,
    /// The rendered body.
    pub body: &'a Body,
    /// Idempotency key of the delivery.
    pub idempotency_key: &'a str,
    /// Subscription id.
    pub subscription_id: &'a str,
    /// Log sequence of the change.
    pub sequence: u64,
    /// 1-based attempt number.
    pub attempt: u32,
}

/// Why one attempt failed; recorded, never fatal to the service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// The receiver answered with a non-2xx status.
    #[error("receiver answered HTTP {0}")]
    Status(u16),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connecting failed (refused, unreachable, TLS, refused address).
    #[error("connect failed: {0}")]
    Connect(String),
    /// Anything else (an answer that is not HTTP, a reset).
    #[error("request failed: {0}")]
    Other(String),
    /// The URL's literal address is refused by the guard.
    #[error("refused address {0}")]
    Refused(IpAddr),
}

impl AttemptError {
    /// Metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            AttemptError::Status(_) => "http_error",
            AttemptError::Timeout => "timeout",
            AttemptError::Connect(_) => "connect_error",
            AttemptError::Other(_) => "error",
            AttemptError::Refused(_) => "refused",
        }
    }
}

/// Sends webhook requests with one shared connection pool.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
}

impl WebhookSender {
    /// A sender with `config`'s timeouts and address policy.
    pub fn new(config: WebhookConfig) -> Result<Self, reqwest::Error> {
        // reqwest is built without a bundled crypto provider: use ring, once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("parley-notify/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(4);
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            client: builder.build()?,
            config: Arc::new(config),
        })
    }

    /// The settings.
    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// Makes one attempt; Ok on a 2xx answer. The response body is not read.
    pub async fn attempt(&self, request: &WebhookRequest<'_>) -> Result<(), AttemptError> {
        if !self.config.allow_private
            && let Some(host) = request.url.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            && is_forbidden(ip)
        {
            return Err(AttemptError::Refused(ip));
        }
        let timestamp = chrono::Utc::now().timestamp();
        let id = signing::message_id(request.subscription_id, request.idempotency_key);
        let signature = signing::signature(
            &signing::signing_key(request.secret),
            &id,
            timestamp,
            &request.body.bytes,
        );
        let mut builder = self
            .client
            .post(request.url.clone())
            .header(reqwest::header::CONTENT_TYPE, request.body.content_type)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("Parley-Idempotency-Key", request.idempotency_key)
            .header("Parley-Subscription-Id", request.subscription_id)
            .header("Parley-Sequence", request.sequence.to_string())
            .header("Parley-Attempt", request.attempt.to_string());
        for (name, value) in &request.body.headers {
            builder = builder.header(*name, value.as_str());
        }
        let response = builder
            .body(request.body.bytes.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    AttemptError::Timeout
                } else if e.is_connect() {
                    AttemptError::Connect(error_chain(&e))
                } else {
                    AttemptError::Other(error_chain(&e))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status.as_u16()))
        }
    }
}

/// An error with its sources (the URL is the owner's own; the secret is never part of it).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(
                is_forbidden(bad.parse().unwrap()),
                "{bad} should be refused"
            );
        }
        for good in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good} should pass");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert!(matches!(
            check_url("ftp://example.com/x", false).await,
            Err(WebhookError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("not a url", false).await,
            Err(WebhookError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("http://127.0.0.1:8080/hook", false).await,
            Err(WebhookError::PrivateAddress { .. })
        ));
        assert!(matches!(
            check_url("http://[::1]/hook", false).await,
            Err(WebhookError::PrivateAddress { .. })
        ));
        assert!(matches!(
            check_url("http://localhost:9/hook", false).await,
            Err(WebhookError::PrivateAddress { .. })
        ));
        assert!(check_url("http://127.0.0.1:8080/hook", true).await.is_ok());
        assert!(matches!(
            check_url("https://user:pw@example.com/", true).await,
            Err(WebhookError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn the_default_schedule_rides_out_a_fourteen_minute_outage() {
        // Even with the shortest jitter, the attempts span at least 14 minutes
        // before a delivery is parked.
        let config = WebhookConfig::default();
        let shortest: Duration = (1..config.max_attempts)
            .map(|attempt| {
                let ceiling = config
                    .initial_backoff
                    .saturating_mul(1 << (attempt - 1).min(20))
                    .min(config.max_backoff);
                ceiling / 2
            })
            .sum();
        assert!(shortest >= Duration::from_secs(14 * 60), "{shortest:?}");
        for attempt in 1..config.max_attempts {
            let delay = config.backoff(attempt);
            assert!(delay <= config.max_backoff, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let config = WebhookConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..10 {
            let ceiling =
                (Duration::from_millis(100) * (1 << (attempt - 1))).min(config.max_backoff);
            let delay = config.backoff(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
    }
}
