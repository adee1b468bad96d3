//! Logging and metrics set up the same way in every Parley process.
//!
//! Operators get one switch for JSON logs and one address for Prometheus
//! scraping, whichever service they run.

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

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
}

/// Installs the global tracing subscriber and, if asked, the Prometheus exporter.
///
/// Safe to call more than once (later calls keep the first subscriber), which
/// matters when several services run in one process or in tests.
pub fn init(args: &TelemetryArgs) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&args.log).map_err(|e| TelemetryError::Filter {
        filter: args.log.clone(),
        reason: e.to_string(),
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = if args.log_format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // An existing subscriber (tests, `parley up`) is fine: keep it.
    drop(result);

    if let Some(addr) = args.metrics_addr {
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| TelemetryError::Metrics {
                addr,
                reason: e.to_string(),
            })?;
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
    }
    Ok(())
}
