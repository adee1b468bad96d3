//! Parley's notify service.
//!
//! It follows the talks aggregates of the log, keeps a journal of every
//! change (the read model subscribers catch up from), and streams the changes
//! that match each subscriber's filter. A subscriber that falls behind never
//! slows the others: it simply reads the journal from where it stopped.
//!
//! Stored subscriptions ([`subscriptions`]) are events on the log too, so they
//! survive restarts; push channels (NATS subjects, signed webhooks) are
//! delivered by [`delivery`] with durable cursors, at least once, in log order.
//!
//! Every replica follows the *whole* log with its own ordered reader (not a
//! share of a competing durable consumer), so a gRPC stream can be served by
//! any replica; pushing is done by the one replica holding the delivery lease.
//!
//! Environment (besides the flags of [`Config`]):
//! - `PARLEY_NOTIFY_SECRET_KEY`: key sealing webhook secrets (webhooks are refused without it);
//! - `PARLEY_WEBHOOK_ALLOW_PRIVATE`, `PARLEY_WEBHOOK_MAX_ATTEMPTS`, `PARLEY_WEBHOOK_BACKOFF_MS`,
//!   `PARLEY_WEBHOOK_MAX_BACKOFF_MS`, `PARLEY_WEBHOOK_TIMEOUT_MS`: see [`webhook`];
//! - `PARLEY_NOTIFY_REPLICA_ID`, `PARLEY_NOTIFY_LEASE_MS`, `PARLEY_NOTIFY_CHECKPOINT_MS`: see [`delivery`];
//! - `PARLEY_NOTIFY_STATE_DIR`: folder of the journal's cache file (see [`journal`]).
//!
//! Owns: the journal, subscriptions, delivery (gRPC streams, NATS,
//! webhooks) and history queries. Uses the domain (model, filter language)
//! and the runtime; must never import the extractor, the knowledge base or
//! another service (delivery needs no NLP).

pub mod delivery;
pub mod format;
pub mod history;
pub mod journal;
mod lag;
pub mod secrets;
mod service;
pub mod signing;
pub mod subscriptions;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use parley_log::{EventLog, Filter as LogFilter, ReadMode, StartAt};
use parley_runtime::{GrpcServer, LogArgs, ShutdownSignal, decode_record};
use tokio::task::JoinHandle;

pub use delivery::{DeliveryOptions, NatsPublisher};
pub use journal::Journal;
pub use secrets::SecretKey;
pub use service::{ChannelPolicy, NotifyGrpc};
pub use subscriptions::Subscriptions;
pub use webhook::WebhookConfig;

/// Command-line and environment configuration of `parley-notify`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "parley-notify",
    version,
    about = "Parley notify service: streams matching talks events to subscribers"
)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "PARLEY_GRPC_ADDR", default_value = "127.0.0.1:50053")]
    pub grpc_addr: SocketAddr,
    /// Log connection.
    #[command(flatten)]
    pub log: LogArgs,
    /// TLS, authentication and request limits of the gRPC server.
    #[command(flatten)]
    pub security: parley_runtime::ServerSecurityArgs,
    /// Logging and metrics.
    #[command(flatten)]
    pub telemetry: parley_telemetry::TelemetryArgs,
    /// Seconds allowed for draining on SIGTERM.
    #[arg(long, env = "PARLEY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// NATS server for the NATS channel; defaults to the log's server.
    #[arg(long, env = "PARLEY_NOTIFY_NATS_URL")]
    pub notify_nats_url: Option<String>,
    /// Folder for the journal's cache file (rebuilt from the log at each
    /// start); a private temporary file when unset.
    #[arg(long, env = STATE_DIR_ENV)]
    pub state_dir: Option<PathBuf>,
}

/// Environment variable naming the journal's folder.
pub const STATE_DIR_ENV: &str = "PARLEY_NOTIFY_STATE_DIR";

/// How the notify service delivers, beyond the log it reads.
#[derive(Debug, Clone, Default)]
pub struct NotifyStart {
    /// NATS connection for the NATS channel (refused without one).
    pub nats: Option<async_nats::Client>,
    /// Replicas of the `PARLEY_NOTIFY` stream.
    pub nats_stream_replicas: usize,
    /// Webhook attempts, timeouts, address policy.
    pub webhook: WebhookConfig,
    /// Key sealing webhook secrets (webhooks are refused without one).
    pub secret_key: Option<SecretKey>,
    /// Lease and checkpoint settings.
    pub delivery: DeliveryOptions,
    /// Folder of the journal's cache file; a private temporary file when `None`.
    pub state_dir: Option<PathBuf>,
}

impl NotifyStart {
    /// Settings from the environment (no NATS connection).
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            nats: None,
            nats_stream_replicas: 1,
            webhook: WebhookConfig::from_env(),
            secret_key: SecretKey::from_env()?,
            delivery: DeliveryOptions::from_env(None),
            state_dir: std::env::var_os(STATE_DIR_ENV)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// Aggregate types the notify service follows.
fn followed() -> LogFilter {
    LogFilter::types([
        parley_domain::aggregate::TALKS,
        parley_domain::aggregate::SUBSCRIPTION,
        subscriptions::LEASE_KIND,
    ])
}

/// The notify service's state and background work, independent of how it is served.
pub struct Notify {
    journal: Arc<Journal>,
    subscriptions: Arc<Subscriptions>,
    policy: ChannelPolicy,
    follower: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
}

impl Notify {
    /// [`Notify::start_with`] with settings from the environment and no NATS channel.
    pub async fn start(log: Arc<dyn EventLog>, shutdown: ShutdownSignal) -> anyhow::Result<Self> {
        Self::start_with(log, NotifyStart::from_env()?, shutdown).await
    }

    /// Replays the log into the read models, then follows it and starts push delivery.
    pub async fn start_with(
        log: Arc<dyn EventLog>,
        start: NotifyStart,
        shutdown: ShutdownSignal,
    ) -> anyhow::Result<Self> {
        let journal = Arc::new(Journal::open(start.state_dir.as_deref(), &log.log_id())?);
        let subscriptions = Arc::new(Subscriptions::new(log.clone()));
        let mut records = log
            .read(StartAt::Beginning, followed(), ReadMode::ToEnd)
            .await?;
        let mut replayed = 0u64;
        let mut last = 0u64;
        while let Some(record) = records.next().await {
            let record = record?;
            replayed += 1;
            last = record.sequence;
            match decode_record(&record) {
                Ok(decoded) => {
                    journal.apply(&decoded)?;
                    subscriptions.apply(&decoded);
                }
                Err(e) => tracing::error!(error = %e, "skipping undecodable record during replay"),
            }
        }
        tracing::info!(
            records = replayed,
            entries = journal.len(),
            subscriptions = subscriptions.list().len(),
            "notify read model rebuilt from the log"
        );
        let follower = tokio::spawn(follow(
            log.clone(),
            journal.clone(),
            subscriptions.clone(),
            last + 1,
            shutdown.clone(),
        ));
        tokio::spawn(lag::report(
            log.clone(),
            journal.clone(),
            subscriptions.clone(),
            shutdown.clone(),
        ));
        let nats = match start.nats {
            Some(client) => Some(NatsPublisher::new(client, start.nats_stream_replicas).await?),
            None => None,
        };
        let policy = ChannelPolicy {
            nats_available: nats.is_some(),
            secret_key: start.secret_key.clone(),
            allow_private: start.webhook.allow_private,
        };
        let dispatcher = delivery::Dispatcher::new(
            journal.clone(),
            subscriptions.clone(),
            nats,
            webhook::WebhookSender::new(start.webhook)?,
            start.secret_key,
            start.delivery,
        );
        let dispatcher = tokio::spawn(dispatcher.run(shutdown));
        Ok(Self {
            journal,
            subscriptions,
            policy,
            follower,
            dispatcher,
        })
    }

    /// The gRPC service answering `parley.v1.NotifyService`.
    pub fn grpc(&self, shutdown: ShutdownSignal) -> NotifyGrpc {
        NotifyGrpc::new(
            self.journal.clone(),
            self.subscriptions.clone(),
            self.policy.clone(),
            shutdown,
        )
    }

    /// The read model.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The stored subscriptions.
    pub fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.subscriptions
    }

    /// Waits for the background follower and delivery to stop (after shutdown).
    pub async fn stopped(self) {
        let _ = self.dispatcher.await;
        let _ = self.follower.await;
    }
}

/// Follows the whole log from `next` into both read models, reopening the
/// reader after an error. Each replica reads everything on its own.
async fn follow(
    log: Arc<dyn EventLog>,
    journal: Arc<Journal>,
    subscriptions: Arc<Subscriptions>,
    mut next: u64,
    shutdown: ShutdownSignal,
) {
    loop {
        let mut records = match log
            .read(StartAt::Sequence(next), followed(), ReadMode::Follow)
            .await
        {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, next, "cannot follow the log; retrying");
                tokio::select! {
                    _ = shutdown.token.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => continue,
                }
            }
        };
        loop {
            let record = tokio::select! {
                _ = shutdown.token.cancelled() => return,
                record = records.next() => record,
            };
            match record {
                Some(Ok(record)) => {
                    metrics::counter!("parley_events_consumed_total", "service" => "notify")
                        .increment(1);
                    match decode_record(&record) {
                        Ok(decoded) => {
                            if let Err(e) = journal.apply(&decoded) {
                                // Nothing of the record was applied: read it again.
                                tracing::error!(error = %e, sequence = record.sequence, "cannot store a journal entry; retrying");
                                break;
                            }
                            subscriptions.apply(&decoded);
                        }
                        Err(e) => tracing::error!(error = %e, "skipping undecodable record"),
                    }
                    next = record.sequence + 1;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, next, "log reader failed; reopening");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            _ = shutdown.token.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
    }
}

/// A running `parley-notify` process: built, bound, ready to serve.
pub struct Application {
    listener: tokio::net::TcpListener,
    server: GrpcServer,
    notify: Notify,
    shutdown: ShutdownSignal,
}

impl Application {
    /// Connects to the log, rebuilds state, and binds the gRPC port (port 0 picks a free one).
    pub async fn build(config: &Config, shutdown: ShutdownSignal) -> anyhow::Result<Self> {
        let security = config.security.load()?;
        // Bound first: while the log is unreachable, probes hear NOT_SERVING on this port.
        let listener = parley_runtime::grpc::bind(config.grpc_addr).await?;
        let waiting = parley_runtime::grpc::NotServingYet::start(&listener).await?;
        let Some(log) = config.log.connect_until_stopped(&shutdown).await? else {
            waiting.stop().await;
            anyhow::bail!(parley_runtime::STOPPED_BEFORE_READY);
        };
        let mut start = NotifyStart::from_env()?;
        // The log is JetStream: the NATS channel uses the same server unless told otherwise.
        let nats_url = config
            .notify_nats_url
            .clone()
            .unwrap_or_else(|| config.log.nats_url.clone());
        // Same auth and TLS as the log's connection.
        let options = config.log.connect_options().await?.name("parley-notify");
        let urls: Vec<&str> = nats_url.split(',').map(str::trim).collect();
        start.nats = Some(options.connect(urls).await?);
        start.nats_stream_replicas = config.log.stream_replicas;
        // Stable across restarts of this process, distinct for replicas on one host.
        start.delivery =
            DeliveryOptions::from_env(Some(format!("{}:{}", hostname(), config.grpc_addr.port())));
        start.state_dir.clone_from(&config.state_dir);
        let notify = Notify::start_with(log, start, shutdown.clone()).await?;
        let server = GrpcServer::new()
            .with_security(security)
            .add_service(notify.grpc(shutdown.clone()).into_server());
        let server =
            server.add_service(history::HistoryGrpc::new(notify.journal().clone()).into_server());
        waiting.stop().await;
        Ok(Self {
            listener,
            server,
            notify,
            shutdown,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown signal, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "parley-notify serving gRPC");
        self.server
            .serve(self.listener, self.shutdown.clone())
            .await?;
        let _ = tokio::time::timeout(self.shutdown.grace, self.notify.stopped()).await;
        Ok(())
    }
}

/// Host name for the default replica id (`HOSTNAME`, then /etc/hostname).
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "notify".to_owned())
}
