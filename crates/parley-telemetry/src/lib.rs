//! Logging, metrics and traces set up the same way in every Parley process.
//!
//! Operators get one switch for JSON logs, one address for Prometheus
//! scraping and, in builds with the `otlp` feature, one endpoint for
//! OpenTelemetry traces, whichever service they run.
//!
//! Owns: tracing and Prometheus setup and their flags. Must never import
//! another Parley crate.

pub mod catalogue;
pub mod json;

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, prelude::*};

/// Histogram buckets (seconds) for every `*_seconds` metric: from a cached
/// lookup (1 ms) through a slow webhook or a large document (30 s) to a
/// backfill delivering events recorded minutes or an hour ago.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// The name this process logs and exports traces under, when set before [`init`].
static SERVICE: OnceLock<String> = OnceLock::new();

/// Names this process (`parley-up`) in its JSON log lines and traces; without
/// it, `OTEL_SERVICE_NAME` or the executable's name (`parley-ingest`, ...).
pub fn set_service_name(name: &str) {
    let _ = SERVICE.set(name.to_owned());
}

/// The name this process logs under (see [`set_service_name`]).
pub fn service_name() -> String {
    if let Some(name) = SERVICE.get() {
        return name.clone();
    }
    std::env::var("OTEL_SERVICE_NAME").ok().unwrap_or_else(|| {
        std::env::args()
            .next()
            .and_then(|arg0| {
                std::path::Path::new(&arg0)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "parley".to_owned())
    })
}

/// Telemetry flags every binary flattens into its own clap arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TelemetryArgs {
    /// Log format: `text` for humans, `json` for log collectors.
    #[arg(long, env = "PARLEY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Log filter in `RUST_LOG` syntax (e.g. `info,parley_resolver=debug`).
    #[arg(long, env = "PARLEY_LOG", default_value = "info")]
    pub log: String,
    /// Address to serve Prometheus metrics on (`/metrics`); off when unset.
    #[arg(long, env = "PARLEY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// OTLP/gRPC endpoint to export traces to (e.g. `http://otel-collector:4317`);
    /// off when unset. Needs a build with the `otlp` feature.
    #[arg(long, env = "PARLEY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid log filter {filter:?} (PARLEY_LOG): {reason}")]
    Filter {
        /// The filter text.
        filter: String,
        /// Parser message.
        reason: String,
    },
    /// The metrics listener could not start.
    #[error("cannot serve metrics on {addr} (PARLEY_METRICS_ADDR): {reason}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// Trace export was asked for but cannot start (or is not built in).
    #[error("cannot export traces to {endpoint:?} (PARLEY_OTLP_ENDPOINT): {reason}")]
    Otlp {
        /// The endpoint.
        endpoint: String,
        /// What failed.
        reason: String,
    },
}

/// Installs the global tracing subscriber and, if asked, the Prometheus
/// exporter and the OTLP trace exporter.
///
/// Safe to call more than once (later calls keep the first subscriber), which
/// matters when several services run in one process or in tests. Call
/// [`shutdown`] before exiting so buffered spans are sent.
pub fn init(args: &TelemetryArgs) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&args.log).map_err(|e| TelemetryError::Filter {
        filter: args.log.clone(),
        reason: e.to_string(),
    })?;
    let traces = match &args.otlp_endpoint {
        Some(endpoint) => Some(otlp::layer(endpoint)?),
        None => None,
    };
    let logs = if args.log_format == "json" {
        fmt::layer()
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(json::JsonLines::new(service_name()))
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        // Colours only for a person at a terminal: escape codes would garble
        // log files, journald and container logs.
        use std::io::IsTerminal;
        fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed()
    };
    // The filter is global: it applies to the trace export as well as the logs.
    let result = tracing_subscriber::registry()
        .with(traces)
        .with(filter)
        .with(logs)
        .try_init();
    // An existing subscriber (tests, `parley up`) is fine: keep it.
    drop(result);
    if let Some(endpoint) = &args.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }

    if let Some(addr) = args.metrics_addr {
        let metrics_error = |reason: String| TelemetryError::Metrics { addr, reason };
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map_err(|e| metrics_error(e.to_string()))?
            .install()
            .map_err(|e| metrics_error(e.to_string()))?;
        catalogue::describe();
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    }
    Ok(())
}

/// Sends the spans still buffered for OTLP export; a no-op without it.
/// Services call it last, after draining.
pub fn shutdown() {
    otlp::shutdown();
}

/// A boxed layer over the bare registry (the first one added).
type RegistryLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

#[cfg(feature = "otlp")]
mod otlp {
    //! OTLP/gRPC span export through `tracing-opentelemetry`.

    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::{RegistryLayer, TelemetryError};

    /// The provider, kept so [`shutdown`] can flush it.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// A layer exporting spans to `endpoint`, batched in the background.
    pub fn layer(endpoint: &str) -> Result<RegistryLayer, TelemetryError> {
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TelemetryError::Otlp {
                endpoint: endpoint.to_owned(),
                reason: e.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(super::service_name())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("parley");
        // A second init (tests, `parley up`) keeps the first provider.
        let _ = PROVIDER.set(provider);
        Ok(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("parley-telemetry: flushing traces failed: {e}");
        }
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    //! Without the `otlp` feature, asking for trace export is a configuration error.

    use super::{RegistryLayer, TelemetryError};

    pub fn layer(endpoint: &str) -> Result<RegistryLayer, TelemetryError> {
        Err(TelemetryError::Otlp {
            endpoint: endpoint.to_owned(),
            reason: "this build has no OTLP support (cargo feature `otlp` of parley-telemetry)"
                .into(),
        })
    }

    pub fn shutdown() {}
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn args() -> TelemetryArgs {
        TelemetryArgs {
            log_format: "text".into(),
            log: "info".into(),
            metrics_addr: None,
            otlp_endpoint: None,
        }
    }

    #[test]
    fn a_bad_log_filter_names_its_variable() {
        let error = init(&TelemetryArgs {
            log: "info,=[".into(),
            ..args()
        })
        .unwrap_err();
        assert!(error.to_string().contains("PARLEY_LOG"), "{error}");
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn trace_export_without_the_feature_is_refused_by_name() {
        let error = init(&TelemetryArgs {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            ..args()
        })
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("PARLEY_OTLP_ENDPOINT"), "{message}");
        assert!(message.contains("otlp"), "{message}");
    }

    #[cfg(feature = "otlp")]
    #[tokio::test]
    async fn trace_export_starts_without_a_collector() {
        // The exporter connects lazily: no collector is needed to start.
        init(&TelemetryArgs {
            otlp_endpoint: Some("http://127.0.0.1:1".into()),
            ..args()
        })
        .unwrap();
        tracing::info_span!("a span").in_scope(|| tracing::info!("inside"));
        shutdown();
    }

    /// The whole `/metrics` page, fetched with a bare HTTP/1.1 request.
    fn scrape(addr: SocketAddr) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_are_served_with_latency_buckets() {
        // Pick a free port, then hand it to the exporter.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        init(&TelemetryArgs {
            metrics_addr: Some(addr),
            ..args()
        })
        .unwrap();
        metrics::counter!("parley_events_consumed_total", "service" => "test").increment(2);
        metrics::histogram!("parley_processing_seconds", "service" => "test").record(0.003);

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let page = loop {
            // Blocking I/O off the runtime, whose workers serve the endpoint.
            let scraped = tokio::task::spawn_blocking(move || scrape(addr)).await;
            if let Ok(page) = scraped
                && page.contains("parley_processing_seconds")
            {
                break page;
            }
            assert!(std::time::Instant::now() < deadline, "no metrics on {addr}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(
            page.contains(r#"parley_events_consumed_total{service="test"} 2"#),
            "{page}"
        );
        // A histogram with buckets, not a summary: 3 ms falls in le=0.005.
        assert!(
            page.contains(r#"parley_processing_seconds_bucket{service="test",le="0.005"} 1"#),
            "{page}"
        );
        assert!(
            page.contains(r#"parley_processing_seconds_bucket{service="test",le="0.0025"} 0"#),
            "{page}"
        );
    }
}
