//! Parley's ingest service.
//!
//! Documents come in over gRPC (`SubmitArticle`, `SubmitFeed`) or the NATS
//! subject `parley.ingest.submit`. Each is read (text, HTML, or one document
//! per feed item), its candidate events and person mentions are extracted,
//! and both facts are appended to the document's aggregate in one message,
//! so a document is never half-ingested. A document already in the log with
//! the same content appends nothing.
//!
//! Owns: intake over gRPC, NATS and feeds, and reprocessing. Uses the
//! extractor, the domain and the runtime; must never import another service
//! (services talk over NATS and gRPC).

mod ingest;
pub mod intake;
mod receipts;
mod reprocess;
mod service;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parley_log::EventLog;
use parley_runtime::{GrpcServer, LogArgs, ShutdownSignal};

pub use ingest::{Ingest, IngestError};
pub use receipts::WAIT_FOR_EVENTS;
pub use service::{IngestGrpc, PUSHBACK_METADATA, RATE_METADATA};

/// NATS subject where submissions arrive (request-reply): protobuf
/// `SubmitArticleRequest`s, JSON, or documents with a Content-Type (see [`intake`]).
pub const SUBMIT_SUBJECT: &str = "parley.ingest.submit";

/// Command-line and environment configuration of `parley-ingest`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "parley-ingest",
    version,
    about = "Parley ingest service: reads articles and feeds into the log"
)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "PARLEY_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Log connection.
    #[command(flatten)]
    pub log: LogArgs,
    /// Folder of extra knowledge-base TOML files extending the bundled one.
    #[arg(long, env = "PARLEY_KB_DIR")]
    pub kb_dir: Option<PathBuf>,
    /// Largest document accepted, in bytes.
    #[arg(long, env = "PARLEY_MAX_DOCUMENT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_document_bytes: usize,
    /// Most items read from one feed.
    #[arg(long, env = "PARLEY_MAX_FEED_ITEMS", default_value_t = 1000)]
    pub max_feed_items: usize,
    /// Most submissions per second from one client (0: no limit): over gRPC a
    /// client is its IP address, on the NATS intake its connection's inbox.
    #[arg(long, env = "PARLEY_INGEST_RATE_PER_SEC", default_value_t = 50)]
    pub ingest_rate_per_sec: u32,
    /// TLS, authentication and request limits of the gRPC server.
    #[command(flatten)]
    pub security: parley_runtime::ServerSecurityArgs,
    /// Logging and metrics.
    #[command(flatten)]
    pub telemetry: parley_telemetry::TelemetryArgs,
    /// Seconds allowed for draining on SIGTERM.
    #[arg(long, env = "PARLEY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
}

impl Config {
    /// Document limits from the flags.
    pub fn limits(&self) -> parley_extract::Limits {
        parley_extract::Limits {
            max_bytes: self.max_document_bytes,
            max_feed_items: self.max_feed_items,
        }
    }
}

/// A running `parley-ingest` process.
pub struct Application {
    listener: tokio::net::TcpListener,
    server: GrpcServer,
    shutdown: ShutdownSignal,
    nats_intake: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects to the log, loads the knowledge base, and binds the gRPC port.
    pub async fn build(config: &Config, shutdown: ShutdownSignal) -> anyhow::Result<Self> {
        let security = config.security.load()?;
        let kb = parley_kb::KnowledgeBase::load(config.kb_dir.as_deref())?;
        // Bound first: while the log is unreachable, probes hear NOT_SERVING on this port.
        let listener = parley_runtime::grpc::bind(config.grpc_addr).await?;
        let waiting = parley_runtime::grpc::NotServingYet::start(&listener).await?;
        let Some(jetstream) = config.log.connect_until_stopped(&shutdown).await? else {
            waiting.stop().await;
            anyhow::bail!(parley_runtime::STOPPED_BEFORE_READY);
        };
        let client = jetstream.client().clone();
        let log: Arc<dyn EventLog> = jetstream;
        let ingest = Arc::new(Ingest::new(log, &kb, config.limits()));
        let nats_intake = tokio::spawn(intake::serve(
            client,
            ingest.clone(),
            intake::rate_limiter(config.ingest_rate_per_sec),
            shutdown.clone(),
        ));
        let server = GrpcServer::new().with_security(security).add_service(
            IngestGrpc::new(ingest, config.max_document_bytes)
                .with_rate_limit(config.ingest_rate_per_sec)
                .into_server(),
        );
        waiting.stop().await;
        Ok(Self {
            listener,
            server,
            shutdown,
            nats_intake,
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown signal, then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "parley-ingest serving gRPC");
        self.server
            .serve(self.listener, self.shutdown.clone())
            .await?;
        let _ = tokio::time::timeout(self.shutdown.grace, self.nats_intake).await;
        Ok(())
    }
}
