//! `parley up`: the whole system in one process, on one gRPC port.
//!
//! A newcomer should see Parley work without installing NATS, so by default
//! the log is the embedded SQLite backend in a data directory. The same three
//! services the deployments run as separate processes (ingest, resolver,
//! notify) run here as tasks over that one log, and one gRPC server answers
//! all their APIs plus health and reflection. `--nats URL` swaps the embedded
//! log for JetStream without changing anything else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parley_ingest::{Ingest, IngestGrpc};
use parley_log::EventLog;
use parley_log::jetstream::{JetStreamConfig, JetStreamLog};
use parley_log::sqlite::SqliteLog;
use parley_notify::Notify;
use parley_resolver::ResolverService;
use parley_runtime::GrpcServer;

use crate::display;
use crate::output::{say, warn};
use crate::sources::{self, FeedOptions};

/// Sample articles bundled into the binary for `--demo` (our own writing, in `examples/articles/`).
const DEMO_ARTICLES: &[(&str, &str)] = &[
    (
        "2025-04-02-riyadh.txt",
        include_str!("../../../examples/articles/2025-04-02-riyadh.txt"),
    ),
    (
        "2025-05-16-istanbul.txt",
        include_str!("../../../examples/articles/2025-05-16-istanbul.txt"),
    ),
    (
        "2025-06-27-washington.html",
        include_str!("../../../examples/articles/2025-06-27-washington.html"),
    ),
];

/// Flags of `parley up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address of the one gRPC server answering every Parley API.
    #[arg(long, env = "PARLEY_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc: SocketAddr,
    /// Data directory of the embedded log (with --nats, only the key sealing webhook secrets is kept there).
    #[arg(long, env = "PARLEY_DATA", default_value = "./parley-data")]
    pub data: PathBuf,
    /// Use a NATS JetStream server at this URL as the log instead of the embedded one.
    #[arg(long, env = "PARLEY_NATS_URL")]
    pub nats: Option<String>,
    /// JetStream stream holding the log (with --nats).
    #[arg(long, env = "PARLEY_STREAM", default_value = "PARLEY")]
    pub stream: String,
    /// Ingest the bundled sample articles and print every event a subscriber receives.
    #[arg(long, env = "PARLEY_DEMO")]
    pub demo: bool,
    /// Ingest every file in this folder, and any file dropped into it later.
    #[arg(long, env = "PARLEY_WATCH")]
    pub watch: Option<PathBuf>,
    /// RSS or Atom feed to poll (repeatable).
    #[arg(long = "feed", env = "PARLEY_FEEDS", value_delimiter = ',')]
    pub feeds: Vec<String>,
    /// Seconds between two polls of a feed.
    #[arg(long, env = "PARLEY_FEED_INTERVAL_SECS", default_value_t = 300.0)]
    pub feed_interval_secs: f64,
    /// Folder of extra knowledge-base TOML files extending the bundled one.
    #[arg(long, env = "PARLEY_KB_DIR")]
    pub kb_dir: Option<PathBuf>,
    /// Largest document accepted, in bytes.
    #[arg(long, env = "PARLEY_MAX_DOCUMENT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_document_bytes: usize,
    /// Most items read from one feed.
    #[arg(long, env = "PARLEY_MAX_FEED_ITEMS", default_value_t = 1000)]
    pub max_feed_items: usize,
    /// Most ingest requests per second from one client address (0: no limit).
    #[arg(long, env = "PARLEY_INGEST_RATE_PER_SEC", default_value_t = 50)]
    pub ingest_rate_per_sec: u32,
    /// TLS, authentication and request limits of the gRPC server.
    #[command(flatten)]
    pub security: parley_runtime::ServerSecurityArgs,
    /// Seconds allowed for draining on SIGTERM or Ctrl-C.
    #[arg(long, env = "PARLEY_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Logging and metrics.
    #[command(flatten)]
    pub telemetry: parley_telemetry::TelemetryArgs,
}

/// Runs `parley up` until SIGTERM or Ctrl-C.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    parley_telemetry::set_service_name("parley-up");
    parley_telemetry::init(&args.telemetry)?;
    crate::output::log_as_json(args.telemetry.log_format == "json");
    let shutdown =
        parley_runtime::shutdown_on_signals(Duration::from_secs(args.shutdown_grace_secs));

    let security = args.security.load()?;
    let (log, nats, where_) = open_log(&args).await?;
    let kb = parley_kb::KnowledgeBase::load(args.kb_dir.as_deref())?;
    let limits = parley_extract::Limits {
        max_bytes: args.max_document_bytes,
        max_feed_items: args.max_feed_items,
    };

    // The resolver and notify rebuild their state from the log before serving.
    // Their read models live in SQLite files (rebuilt at each start): under
    // the data directory on the embedded log, so they cost disk, not memory
    // (a temporary directory may be RAM); with --nats they go to private
    // temporary files unless configured.
    let default_state = |service: &str| {
        args.nats
            .is_none()
            .then(|| args.data.join("state").join(service))
    };
    let resolver_state = std::env::var_os(parley_resolver::STATE_DIR_ENV)
        .filter(|dir| !dir.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| default_state("resolver"));
    let resolver = ResolverService::start_in(
        log.clone(),
        &kb,
        resolver_state.as_deref(),
        shutdown.clone(),
    )
    .await?;
    // `from_env` already read PARLEY_NOTIFY_STATE_DIR.
    let mut notify_start = parley_notify::NotifyStart::from_env()?;
    if notify_start.state_dir.is_none() {
        notify_start.state_dir = default_state("notify");
    }
    notify_start.nats = nats.clone();
    if notify_start.secret_key.is_none() {
        // Over the embedded log or NATS alike: webhooks work out of the box.
        notify_start.secret_key = Some(local_secret_key(&args.data)?);
    }
    let notify = Notify::start_with(log.clone(), notify_start, shutdown.clone()).await?;
    let ingest = Arc::new(Ingest::new(log.clone(), &kb, limits));

    let server = GrpcServer::new()
        .with_security(security)
        .add_service(
            IngestGrpc::new(ingest.clone(), args.max_document_bytes)
                .with_rate_limit(args.ingest_rate_per_sec)
                .into_server(),
        )
        .add_service(resolver.grpc().into_server())
        .add_service(notify.grpc(shutdown.clone()).into_server())
        .add_service(
            parley_notify::history::HistoryGrpc::new(notify.journal().clone()).into_server(),
        );
    let listener = parley_runtime::grpc::bind(args.grpc).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    say(&format!(
        "parley up: serving every API on {url} ({where_}) after {} ms",
        started.elapsed().as_millis()
    ));
    say(&format!(
        "parley up: try `parley ingest --server {url} FILE` and `parley subscribe --server {url}`"
    ));

    let mut tasks = tokio::task::JoinSet::new();
    // A part whose state fails reports NOT_SERVING; the others keep serving.
    {
        let serving = server.serving_state();
        let failure = resolver.failure_watch();
        tasks.spawn(async move {
            let reason = failure.await;
            warn(&format!("parley up: the resolver stopped: {reason}; the other services keep serving (restart to rebuild it from the log)"));
            serving.fail(parley_resolver::RESOLVER_SERVICE).await;
        });
    }
    if let Some(client) = nats {
        // Over NATS, the intake subject works as it does with the services.
        tasks.spawn(parley_ingest::intake::serve(
            client,
            ingest.clone(),
            parley_ingest::intake::rate_limiter(args.ingest_rate_per_sec),
            shutdown.clone(),
        ));
    }
    if args.demo {
        let journal = notify.journal().clone();
        let token = shutdown.token.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = print_deliveries(journal) => {}
            }
        });
        let ingest = ingest.clone();
        tasks.spawn(async move {
            for (name, text) in DEMO_ARTICLES {
                let response = ingest.submit(name, text.as_bytes(), None, None).await;
                for error in response.errors {
                    warn(&format!("parley up: {}: {}", error.name, error.message));
                }
            }
        });
    }
    if let Some(dir) = args.watch.clone() {
        let ingest = ingest.clone();
        let token = shutdown.token.clone();
        let max = args.max_document_bytes;
        tasks.spawn(async move {
            if let Err(e) = sources::watch_folder(dir, ingest, max, token).await {
                warn(&format!("parley up: --watch stopped: {e:#}"));
            }
        });
    }
    for feed in args.feeds.clone() {
        let options = FeedOptions {
            interval: Duration::from_secs_f64(args.feed_interval_secs.max(0.05)),
            max_bytes: args.max_document_bytes,
        };
        let ingest = ingest.clone();
        let token = shutdown.token.clone();
        tasks.spawn(async move {
            sources::poll_feed(feed, ingest, options, token).await;
        });
    }

    server.serve(listener, shutdown.clone()).await?;
    tasks.abort_all();
    let _ = tokio::time::timeout(shutdown.grace, async {
        resolver.stopped().await;
        notify.stopped().await;
    })
    .await;
    say("parley up: stopped");
    Ok(())
}

/// Opens the log `parley up` runs over, and says which one it is; with
/// `--nats`, also the NATS client the notify service's NATS channel uses.
async fn open_log(
    args: &UpArgs,
) -> anyhow::Result<(Arc<dyn EventLog>, Option<async_nats::Client>, String)> {
    match &args.nats {
        Some(url) => {
            let mut config = JetStreamConfig::new(url.clone());
            config.stream_name = args.stream.clone();
            let log = JetStreamLog::connect(config)
                .await
                .with_context(|| format!("cannot use the JetStream log at {url} (--nats)"))?;
            let client = log.client().clone();
            Ok((
                Arc::new(log),
                Some(client),
                format!("log: JetStream at {url}"),
            ))
        }
        None => {
            warn_if_log_deleted(&args.data);
            let data = args.data.clone();
            let log = tokio::task::spawn_blocking(move || SqliteLog::open(&data)).await??;
            Ok((
                Arc::new(log),
                None,
                format!("log: embedded, in {}", args.data.display()),
            ))
        }
    }
}

/// Says loudly when the data directory lost its log but kept what was
/// built from it (the read models under `state/`, the webhook secret key):
/// the log about to be created is a new, empty one.
fn warn_if_log_deleted(data: &std::path::Path) {
    let log = data.join(parley_log::sqlite::DATABASE_FILE);
    if log.exists() {
        return;
    }
    let left: Vec<String> = ["state", SECRET_KEY_FILE]
        .iter()
        .map(|name| data.join(name))
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if left.is_empty() {
        return;
    }
    let message = format!(
        "{} is missing but {} remain: the log was deleted or moved. Starting a NEW, EMPTY log: \
         its history is gone, and the read models are rebuilt from the empty log. If the log \
         was moved by mistake, stop now and put it back",
        log.display(),
        left.join(" and ")
    );
    tracing::warn!("{message}");
    eprintln!("parley up: WARNING: {message}");
}

/// The webhook secret key's file in the data directory.
const SECRET_KEY_FILE: &str = "notify-secret.key";

/// The key sealing webhook secrets when `PARLEY_NOTIFY_SECRET_KEY` is not
/// set: random, created once, kept in the data directory (owner-only; beside
/// the embedded log, or alone there with `--nats`), so webhooks work out of
/// the box and their secrets survive restarts.
fn local_secret_key(data: &std::path::Path) -> anyhow::Result<parley_notify::secrets::SecretKey> {
    use std::io::Read;
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let path = data.join(SECRET_KEY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .context("cannot read /dev/urandom to create the webhook secret key")?;
            let text = hex::encode(bytes);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(
                &mut options
                    .open(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
                text.as_bytes(),
            )?;
            text
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parley_notify::secrets::SecretKey::parse(&text)
        .with_context(|| format!("{}: not a valid key", path.display()))
}

/// Prints one line per delivery from the start of the log, as a subscriber
/// sees it (read from the notify read model in-process, so it works whatever
/// TLS or token the gRPC port requires).
async fn print_deliveries(journal: Arc<parley_notify::Journal>) {
    let mut changes = journal.watch();
    let mut cursor = 0;
    loop {
        let batch = journal.after(cursor, 256);
        if batch.is_empty() {
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        }
        for delivery in batch {
            cursor = delivery.sequence;
            let line = display::delivery_line(&delivery);
            if crate::output::line(format_args!("{line}")).is_err() {
                // Nobody reads stdout any more (`parley up --demo | head`).
                return;
            }
        }
    }
}
