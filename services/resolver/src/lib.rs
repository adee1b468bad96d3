//! Parley's resolver service.
//!
//! It replays the whole log at boot to rebuild the resolver's state, then
//! consumes newly extracted documents through its durable consumer: each
//! document's mentions become canonical entities and its candidate events
//! become real-world events with one id across documents. Every decision is
//! appended to the log before the document is acked, so a crash loses
//! nothing and a replay rebuilds exactly the same state.
//!
//! Owns: the resolution service and its read model (the state file). Uses
//! `parley-resolve`, the domain and the runtime; must never import another
//! service, and links the extractor in tests only.

mod decisions;
mod grpc;
mod state;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley_log::{ConsumerOptions, EventLog, Filter};
use parley_runtime::{ConsumerLoop, GrpcServer, LogArgs, ShutdownSignal};

pub use decisions::{aggregate_of, decision_from_event, decision_to_event};
pub use grpc::ResolverGrpc;
pub use state::{ResolverState, StateError};

/// gRPC name of the resolver's API, as health reports it.
pub const RESOLVER_SERVICE: &str =
    <parley_domain::pb::resolver_service_server::ResolverServiceServer<ResolverGrpc> as tonic::server::NamedService>::NAME;

/// Durable consumer name of the resolver (replicas share it).
pub const CONSUMER: &str = "parley-resolver";

/// Command-line and environment configuration of `parley-resolver`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "parley-resolver",
    version,
    about = "Parley resolver service: canonical entities and one id per real event"
)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "PARLEY_GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc_addr: SocketAddr,
    /// Log connection.
    #[command(flatten)]
    pub log: LogArgs,
    /// Folder of extra knowledge-base TOML files extending the bundled one.
    #[arg(long, env = "PARLEY_KB_DIR")]
    pub kb_dir: Option<PathBuf>,
    /// TLS, authentication and request limits of the gRPC server.
    #[command(flatten)]
    pub security: parley_runtime::ServerSecurityArgs,
    /// Logging and metrics.
    #[command(flatten)]
    pub telemetry: parley_telemetry::TelemetryArgs,
    /// Seconds allowed for draining on SIGTERM.
    #[arg(long, env = "PARLEY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Folder for the state file (rebuilt from the log at each start); a
    /// private temporary file when unset.
    #[arg(long, env = STATE_DIR_ENV)]
    pub state_dir: Option<PathBuf>,
}

/// Environment variable naming the folder of the resolver's state file.
pub const STATE_DIR_ENV: &str = "PARLEY_RESOLVER_STATE_DIR";

/// The resolver's state and background consumer, independent of how it is served.
pub struct ResolverService {
    state: Arc<ResolverState>,
    consumer: tokio::task::JoinHandle<()>,
}

impl ResolverService {
    /// [`ResolverService::start_in`] with the state folder from
    /// `PARLEY_RESOLVER_STATE_DIR` (a private temporary file when unset).
    pub async fn start(
        log: Arc<dyn EventLog>,
        kb: &parley_kb::KnowledgeBase,
        shutdown: ShutdownSignal,
    ) -> anyhow::Result<Self> {
        let dir = std::env::var_os(STATE_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        Self::start_in(log, kb, dir.as_deref(), shutdown).await
    }

    /// Replays the log into a fresh resolver whose state file is in
    /// `state_dir`, then consumes new documents.
    pub async fn start_in(
        log: Arc<dyn EventLog>,
        kb: &parley_kb::KnowledgeBase,
        state_dir: Option<&Path>,
        shutdown: ShutdownSignal,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(ResolverState::open(log.clone(), kb, state_dir)?);
        let replayed = state.replay().await?;
        tracing::info!(records = replayed, "resolver state rebuilt from the log");
        let mut options =
            ConsumerOptions::new(CONSUMER, Filter::types([parley_domain::aggregate::ARTICLE]));
        // With the backoff between transient retries, 20 deliveries ride out about a
        // minute of log outage before a document would be parked as poison.
        options.max_deliver = 20;
        let handler = state.clone();
        let follower_state = state.clone();
        // The resolver's own loops stop at shutdown, and also when its state
        // fails (nothing may be decided on it); the process keeps serving.
        let shutdown = ShutdownSignal {
            token: shutdown.token.child_token(),
            grace: shutdown.grace,
        };
        let failed_state = state.clone();
        let halt = shutdown.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = halt.cancelled() => {}
                _ = failed_state.failed() => halt.cancel(),
            }
        });
        let consumer = tokio::spawn(async move {
            // Replicas share the document consumer; each follows the whole log for reads.
            // Both loops outlive a lost NATS node or connection: they retry with backoff
            // until shutdown instead of leaving a SERVING process that does nothing.
            let follower = retry_until_stopped("resolver log follower", &shutdown, || {
                follower_state.follow(shutdown.token.clone())
            });
            let consume = retry_until_stopped("resolver consumer", &shutdown, || {
                ConsumerLoop::new(log.clone(), options.clone(), "resolver")
                    .run(handler.clone(), shutdown.clone())
            });
            tokio::join!(follower, consume);
        });
        Ok(Self { state, consumer })
    }

    /// The gRPC service answering `parley.v1.ResolverService`.
    pub fn grpc(&self) -> ResolverGrpc {
        ResolverGrpc::new(self.state.clone())
    }

    /// Why the resolver's state failed, if it did (then it decides nothing
    /// more and its gRPC service should report NOT_SERVING).
    pub fn failure(&self) -> Option<String> {
        self.state.failure()
    }

    /// A future that ends when the resolver's state fails, with why
    /// (pending forever while it is healthy); it owns what it needs, so it
    /// can be spawned.
    pub fn failure_watch(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let state = self.state.clone();
        async move { state.failed().await }
    }

    /// Waits for the consumer to stop (after shutdown).
    pub async fn stopped(self) {
        let _ = self.consumer.await;
    }
}

/// Runs `work` again, with backoff, each time it fails, until it ends cleanly or shutdown fires.
async fn retry_until_stopped<F, Fut, E>(what: &str, shutdown: &ShutdownSignal, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match work().await {
            Ok(()) => return,
            Err(e) if !shutdown.token.is_cancelled() => {
                tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "{what} failed; restarting it");
                metrics::counter!("parley_consumer_restarts_total", "service" => "resolver")
                    .increment(1);
            }
            Err(_) => return,
        }
        tokio::select! {
            _ = shutdown.token.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// A running `parley-resolver` process.
pub struct Application {
    listener: tokio::net::TcpListener,
    server: GrpcServer,
    service: ResolverService,
    shutdown: ShutdownSignal,
}

impl Application {
    /// Connects to the log, rebuilds state, and binds the gRPC port.
    pub async fn build(config: &Config, shutdown: ShutdownSignal) -> anyhow::Result<Self> {
        let security = config.security.load()?;
        let kb = parley_kb::KnowledgeBase::load(config.kb_dir.as_deref())?;
        // Bound first: while the log is unreachable, probes hear NOT_SERVING on this port.
        let listener = parley_runtime::grpc::bind(config.grpc_addr).await?;
        let waiting = parley_runtime::grpc::NotServingYet::start(&listener).await?;
        let Some(log) = config.log.connect_until_stopped(&shutdown).await? else {
            waiting.stop().await;
            anyhow::bail!(parley_runtime::STOPPED_BEFORE_READY);
        };
        let log: Arc<dyn EventLog> = log;
        let service =
            ResolverService::start_in(log, &kb, config.state_dir.as_deref(), shutdown.clone())
                .await?;
        let server = GrpcServer::new()
            .with_security(security)
            .add_service(service.grpc().into_server());
        waiting.stop().await;
        Ok(Self {
            listener,
            server,
            service,
            shutdown,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown signal, then drains.
    ///
    /// # Errors
    /// When the resolver's state fails: health turns NOT_SERVING, the
    /// server drains, and the error says why, so the process exits non-zero
    /// and its supervisor restarts it (the restart rebuilds the state).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "parley-resolver serving gRPC");
        let serving = self.server.serving_state();
        let state = self.service.state.clone();
        let shutdown = self.shutdown.clone();
        let watcher = tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.token.cancelled() => None,
                reason = state.failed() => {
                    serving.fail(RESOLVER_SERVICE).await;
                    shutdown.token.cancel();
                    Some(reason)
                }
            }
        });
        self.server
            .serve(self.listener, self.shutdown.clone())
            .await?;
        let _ = tokio::time::timeout(self.shutdown.grace, self.service.stopped()).await;
        if let Ok(Some(reason)) = watcher.await {
            anyhow::bail!("the resolver's state failed: {reason}");
        }
        Ok(())
    }
}
