//! Parley's notify service.
//!
//! It follows the talks aggregates of the log, keeps a journal of every
//! change (the read model subscribers catch up from), and streams the changes
//! that match each subscriber's filter. A subscriber that falls behind never
//! slows the others: it simply reads the journal from where it stopped.

pub mod filter;
pub mod journal;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;

use parley_log::{ConsumerOptions, EventLog, Filter as LogFilter, ReadMode, StartAt};
use parley_runtime::{ConsumerLoop, GrpcServer, LogArgs, ShutdownSignal};
use tokio::task::JoinHandle;

pub use journal::Journal;
pub use service::NotifyGrpc;

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
    /// Logging and metrics.
    #[command(flatten)]
    pub telemetry: parley_telemetry::TelemetryArgs,
    /// Seconds allowed for draining on SIGTERM.
    #[arg(long, env = "PARLEY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

/// Durable consumer name of the notify service (replicas share it).
pub const CONSUMER: &str = "parley-notify";

/// The notify service's state and background work, independent of how it is served.
pub struct Notify {
    journal: Arc<Journal>,
    follower: JoinHandle<()>,
}

impl Notify {
    /// Replays the log into the journal, then follows it through the durable consumer.
    pub async fn start(log: Arc<dyn EventLog>, shutdown: ShutdownSignal) -> anyhow::Result<Self> {
        let journal = Arc::new(Journal::default());
        let replayed = journal
            .replay(
                log.read(
                    StartAt::Beginning,
                    LogFilter::types([parley_domain::aggregate::TALKS]),
                    ReadMode::ToEnd,
                )
                .await?,
            )
            .await?;
        tracing::info!(records = replayed, "notify read model rebuilt from the log");
        let consumer = ConsumerLoop::new(
            log.clone(),
            ConsumerOptions::new(
                CONSUMER,
                LogFilter::types([parley_domain::aggregate::TALKS]),
            ),
            "notify",
        );
        let handler = journal.clone();
        let follower = tokio::spawn(async move {
            if let Err(e) = consumer.run(handler, shutdown).await {
                tracing::error!(error = %e, "notify consumer failed");
            }
        });
        Ok(Self { journal, follower })
    }

    /// The gRPC service answering `parley.v1.NotifyService`.
    pub fn grpc(&self, shutdown: ShutdownSignal) -> NotifyGrpc {
        NotifyGrpc::new(self.journal.clone(), shutdown)
    }

    /// The read model.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Waits for the background follower to stop (after shutdown).
    pub async fn stopped(self) {
        let _ = self.follower.await;
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
        let log = config
            .log
            .connect(std::time::Duration::from_secs(60))
            .await?;
        let notify = Notify::start(log, shutdown.clone()).await?;
        let server = GrpcServer::new().add_service(notify.grpc(shutdown.clone()).into_server());
        let listener = parley_runtime::grpc::bind(config.grpc_addr).await?;
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
