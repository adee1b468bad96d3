//! The NATS JetStream backend of [`EventLog`].
//!
//! Layout: one file-storage stream (default
//! `PARLEY`) holding subjects `<prefix>.>`, one subject per aggregate
//! (`<prefix>.<kind>.<id>`), and one object-store bucket for large bodies.
//!
//! - **Append** is a JetStream publish with `Nats-Msg-Id` (deduplication
//!   within the stream's duplicate window) and, for a version check,
//!   `Nats-Expected-Last-Subject-Sequence`. From nats-server 2.12 a retried
//!   publish carrying both headers is answered with "wrong last sequence"
//!   instead of a duplicate ack, so every conflict is confirmed by looking
//!   for our msg id among the aggregate's records before it is reported.
//! - **Reads** use ordered consumers (cheap, ephemeral, self-healing);
//!   aggregate lookups use direct gets.
//! - **Durable consumers** are pull consumers with explicit acks, a backoff
//!   schedule derived from `ack_wait`, and a bounded `max_ack_pending`.

mod append;
mod blobs;
mod consumer;
mod read;
mod verify;

pub use verify::StreamCheck;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self, Context,
    object_store::{self, ObjectStore},
    stream::{self, StorageType},
};
use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    AggregateRef, AppendRequest, Appended, BlobRef, ConsumerOptions, DurableConsumer, EventLog,
    Filter, LogError, LogRecord, ReadMode, RecordStream, StartAt,
};

pub use consumer::backoff_schedule;

/// Oldest server Parley runs on: `filter_subjects`, direct gets and KV on
/// 2.9 are missing or broken (see the crate's notes).
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 10, 0);

/// Room left in a message for our headers (`Nats-Msg-Id`, the expected
/// sequence and the application's own headers).
const HEADER_HEADROOM: usize = 8 * 1024;

/// Connection and layout settings of [`JetStreamLog`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Server URL(s), comma-separated for a cluster.
    pub url: String,
    /// Name of the one stream that holds the log.
    pub stream_name: String,
    /// Subject prefix; aggregates live at `<prefix>.<kind>.<id>`.
    pub subject_prefix: String,
    /// Stream (and object bucket) replicas: 1 for a single server, 3 in production clusters.
    pub replicas: usize,
    /// Caps the payload limit below the server's `max_payload`.
    pub max_payload: Option<usize>,
    /// Object-store bucket for large bodies.
    pub object_bucket: String,
    /// How long the server remembers msg ids for deduplication.
    pub duplicate_window: Duration,
    /// Timeout of JetStream API requests and publish acks.
    pub request_timeout: Duration,
    /// Publishes awaiting their ack at most (pipelining window; senders wait beyond it).
    pub max_ack_inflight: usize,
    /// Whether a consumer's `ack` waits for the server to confirm it. Slower
    /// (one round trip per record) but an acked record is never redelivered.
    pub confirm_acks: bool,
    /// Records the stream may be missing (deleted or removed from its
    /// start) before connecting is refused: 0 refuses any gap; after
    /// reading the report, an operator acknowledges a known loss with its count.
    pub accept_missing: u64,
    /// NATS credentials file (`.creds`), if the server requires one.
    pub credentials_file: Option<PathBuf>,
    /// Require TLS to the server.
    pub require_tls: bool,
    // TODO: client certificates / custom root CAs when a deployment needs them.
}

impl JetStreamConfig {
    /// Parley's defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_name: "PARLEY".to_string(),
            subject_prefix: "parley.evt".to_string(),
            replicas: 1,
            max_payload: None,
            object_bucket: "parley-blobs".to_string(),
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
            max_ack_inflight: 1024,
            confirm_acks: true,
            accept_missing: 0,
            credentials_file: None,
            require_tls: false,
        }
    }
}

/// [`EventLog`] on NATS JetStream. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct JetStreamLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: JetStreamConfig,
    client: async_nats::Client,
    context: Context,
    stream: stream::Stream,
    blobs: ObjectStore,
    max_payload: usize,
    server_version: String,
}

impl std::fmt::Debug for JetStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLog")
            .field("url", &self.inner.config.url)
            .field("stream", &self.inner.config.stream_name)
            .field("server_version", &self.inner.server_version)
            .finish()
    }
}

impl JetStreamLog {
    /// Connects, checks the server version, and creates (or updates) the
    /// stream and the blob bucket. Safe to call from every service at start.
    pub async fn connect(config: JetStreamConfig) -> Result<Self, LogError> {
        Self::connect_with_options(config, async_nats::ConnectOptions::new()).await
    }

    /// Like [`JetStreamLog::connect`], starting from caller-built options that
    /// carry authentication and TLS (user/password, nkey, client certificates,
    /// private CAs); the config's creds file and TLS requirement still apply.
    pub async fn connect_with_options(
        config: JetStreamConfig,
        options: async_nats::ConnectOptions,
    ) -> Result<Self, LogError> {
        let mut options = options
            .name("parley-log")
            .request_timeout(Some(config.request_timeout));
        if let Some(path) = &config.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                LogError::Unavailable(format!("credentials {}: {e}", path.display()))
            })?;
        }
        if config.require_tls {
            options = options.require_tls(true);
        }
        // A cluster is given as a comma-separated list of URLs.
        let urls: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let client = options
            .connect(urls)
            .await
            .map_err(|e| LogError::Unavailable(format!("connecting to {}: {e}", config.url)))?;

        let info = client.server_info();
        check_server_version(&info.version, &config.url)?;
        let server_limit = info.max_payload.saturating_sub(HEADER_HEADROOM);
        let max_payload = config
            .max_payload
            .map_or(server_limit, |cap| cap.min(server_limit));

        let context = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .max_ack_inflight(config.max_ack_inflight.max(1))
            .backpressure_on_inflight(true)
            .build(client.clone());

        let stream_config = stream::Config {
            name: config.stream_name.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            storage: StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        context
            .create_or_update_stream(stream_config)
            .await
            .map_err(|e| backend("creating or updating the stream", e))?;
        let stream = context
            .get_stream(&config.stream_name)
            .await
            .map_err(|e| backend("opening the stream", e))?;

        let blobs = match context.get_object_store(&config.object_bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: config.object_bucket.clone(),
                    storage: StorageType::File,
                    num_replicas: config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| backend("creating the blob bucket", e))?,
        };

        let log = Self {
            inner: Arc::new(Inner {
                server_version: info.version.clone(),
                config,
                client,
                context,
                stream,
                blobs,
                max_payload,
            }),
        };
        log.refuse_unaccepted_gaps().await?;
        Ok(log)
    }

    /// The underlying NATS client (for health checks and benchmarks).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context the log publishes through.
    pub fn context(&self) -> &Context {
        &self.inner.context
    }

    /// The configuration in force.
    pub fn config(&self) -> &JetStreamConfig {
        &self.inner.config
    }

    /// Version string the server reported.
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// This log's identity: the stream's name and creation time, so a stream
    /// deleted and created again is another log.
    pub fn log_id(&self) -> String {
        let created = self.inner.stream.cached_info().created;
        format!(
            "{}@{}",
            self.inner.config.stream_name,
            created.unix_timestamp_nanos()
        )
    }

    /// Subject of an aggregate: `<prefix>.<kind>.<id>`.
    pub fn subject(&self, aggregate: &AggregateRef) -> String {
        format!(
            "{}.{}.{}",
            self.inner.config.subject_prefix, aggregate.kind, aggregate.id
        )
    }
}

#[async_trait]
impl EventLog for JetStreamLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        self.append_single(request).await
    }

    async fn append_many(&self, requests: Vec<AppendRequest>) -> Vec<Result<Appended, LogError>> {
        self.append_batch(requests).await
    }

    async fn last_sequence(&self) -> Result<u64, LogError> {
        self.stream_last_sequence().await
    }

    async fn aggregate_version(&self, aggregate: &AggregateRef) -> Result<Option<u64>, LogError> {
        self.version_of(aggregate).await
    }

    async fn read_aggregate(&self, aggregate: &AggregateRef) -> Result<Vec<LogRecord>, LogError> {
        self.records_of(aggregate).await
    }

    async fn read(
        &self,
        start: StartAt,
        filter: Filter,
        mode: ReadMode,
    ) -> Result<RecordStream, LogError> {
        self.read_from(start, filter, mode).await
    }

    async fn consumer(
        &self,
        options: ConsumerOptions,
    ) -> Result<Box<dyn DurableConsumer>, LogError> {
        self.open_consumer(options).await
    }

    async fn put_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        self.store_blob(bytes).await
    }

    async fn get_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        self.load_blob(blob).await
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    fn log_id(&self) -> String {
        JetStreamLog::log_id(self)
    }
}

/// Refuses servers older than [`MIN_SERVER_VERSION`].
fn check_server_version(version: &str, url: &str) -> Result<(), LogError> {
    let parsed = parse_version(version);
    match parsed {
        Some(found) if found >= MIN_SERVER_VERSION => Ok(()),
        _ => {
            let (major, minor, _) = MIN_SERVER_VERSION;
            Err(LogError::UnsupportedServer(format!(
                "nats-server {version} at {url} is older than {major}.{minor}, the minimum \
                 Parley supports (it needs filter_subjects and direct gets); upgrade the server \
                 or run scripts/install-tools for a local one"
            )))
        }
    }
}

/// `2.10.7`, `v2.12.0-RC.1` → (2, 10, 7) / (2, 12, 0).
fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+', ' ']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn backend(what: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Backend(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("v2.12.0-RC.1"), Some((2, 12, 0)));
        assert!(check_server_version("2.10.0", "nats://x").is_ok());
        let error = check_server_version("2.9.10", "nats://x:4222").unwrap_err();
        assert!(matches!(error, LogError::UnsupportedServer(_)));
        assert!(error.to_string().contains("2.9.10 at nats://x:4222"));
        assert!(check_server_version("garbage", "nats://x").is_err());
    }
}
