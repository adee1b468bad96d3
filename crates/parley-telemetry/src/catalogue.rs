//! Every metric a Parley process exports, with its help text.
//!
//! Registered with the exporter at start-up so `/metrics` explains itself
//! (`# HELP` and `# TYPE` for each family: `promtool check metrics` passes),
//! and the one list an operator reads to know what is measured. A metric
//! recorded anywhere in Parley must be listed here (a test of the whole
//! binaries runs promtool on every process).

use metrics::Unit;

/// How a metric behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution with buckets (durations in seconds).
    Histogram,
}

/// One metric: name, kind and what it means (labels in the text).
pub struct Metric {
    /// Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The help text.
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn histogram(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Histogram,
        help,
    }
}

/// The catalogue.
pub const METRICS: &[Metric] = &[
    // gRPC, every process (parley-runtime's observe layer).
    counter(
        "parley_grpc_requests_total",
        "gRPC calls answered, by grpc_service, grpc_method and grpc_code.",
    ),
    histogram(
        "parley_grpc_request_duration_seconds",
        "Time from a gRPC request to the end of its response, by grpc_service and grpc_method (a server stream counts its whole life).",
    ),
    // The durable consumer loop (resolver) and notify's follower.
    counter(
        "parley_events_consumed_total",
        "Log records delivered to a service's consumer (redeliveries included), by service.",
    ),
    counter(
        "parley_consumer_records_total",
        "Records by outcome (done, skipped, retry, parked), by service.",
    ),
    histogram(
        "parley_processing_seconds",
        "Time to decode and handle one record with its effects appended, by service.",
    ),
    gauge(
        "parley_consumer_lag",
        "Log records a service has still to read (upper bound; 0 when caught up), by service.",
    ),
    counter(
        "parley_consumer_fetch_errors_total",
        "Failed fetches from the durable consumer (each retried), by service.",
    ),
    counter(
        "parley_poison_records_total",
        "Records parked as poison and never delivered again, by service.",
    ),
    counter(
        "parley_consumer_restarts_total",
        "Times a service's consumer loop was restarted after an error, by service.",
    ),
    counter(
        "parley_events_appended_total",
        "Domain events appended to the log, by service.",
    ),
    // Ingest.
    counter(
        "parley_documents_ingested_total",
        "Documents taken into the log (new ones; duplicates are counted apart).",
    ),
    counter(
        "parley_documents_duplicate_total",
        "Documents submitted again with the same content: nothing appended.",
    ),
    counter(
        "parley_documents_rejected_total",
        "Documents refused as unreadable (binary, empty, too large, malformed).",
    ),
    counter(
        "parley_ingest_rate_limited_total",
        "Submissions refused because their client was over PARLEY_INGEST_RATE_PER_SEC.",
    ),
    counter(
        "parley_reprocessed_changed_total",
        "Stored documents whose re-extraction changed their candidates.",
    ),
    // Resolver.
    counter(
        "parley_talks_events_total",
        "Talks events written by the resolver, by type (talks_held, ceasefire_agreed, ...) and kind (recorded, corroborated, amended, retracted).",
    ),
    counter(
        "parley_resolver_conflicts_total",
        "Appends that lost a race with another writer and were retried from fresh state.",
    ),
    // Notify.
    gauge(
        "parley_notify_journal_entries",
        "Deliveries (event versions) in notify's journal.",
    ),
    gauge("parley_notify_subscribers", "Open gRPC Subscribe streams."),
    gauge(
        "parley_notify_subscription_lag",
        "Deliveries of a stored subscription after its checkpoint, still to be confirmed, by subscription.",
    ),
    counter(
        "parley_notify_delivered_total",
        "Deliveries made, by channel (grpc, nats, webhook).",
    ),
    histogram(
        "parley_notify_delivery_latency_seconds",
        "Time from an event's recording in the log to its delivery, by channel (a backfill delivers old events: minutes or more).",
    ),
    counter(
        "parley_notify_webhook_attempts_total",
        "Webhook POST attempts, by outcome (success, timeout, status, connect, ...).",
    ),
    counter(
        "parley_notify_dead_letters_total",
        "Deliveries parked as dead letters after their last attempt.",
    ),
];

/// Registers every metric's help text (and the unit of the histograms) with
/// the installed recorder.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, Unit::Seconds, metric.help)
            }
        }
    }
}

/// The catalogue as the rows of a Markdown table (`| name | type | help |`),
/// as `deploy/README.md` shows it.
pub fn markdown_rows() -> String {
    METRICS
        .iter()
        .map(|m| {
            let kind = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            format!("| `{}` | {kind} | {} |\n", m.name, m.help)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deploy/README.md`'s metrics table is the catalogue; with
    /// `PARLEY_UPDATE_DOCS=1` the test rewrites it instead of failing.
    #[test]
    fn the_deploy_readme_lists_every_metric() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (before, rest) = readme.split_once("<!-- metrics:begin -->\n").unwrap();
        let (_, after) = rest.split_once("<!-- metrics:end -->").unwrap();
        let expected = format!(
            "{before}<!-- metrics:begin -->\n| metric | type | meaning |\n| --- | --- | --- |\n{}<!-- metrics:end -->{after}",
            markdown_rows()
        );
        if std::env::var_os("PARLEY_UPDATE_DOCS").is_some() {
            std::fs::write(path, &expected).unwrap();
            return;
        }
        assert!(
            readme == expected,
            "deploy/README.md's metrics table differs from the catalogue; run with PARLEY_UPDATE_DOCS=1"
        );
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for metric in METRICS {
            assert!(seen.insert(metric.name), "{} listed twice", metric.name);
            assert!(metric.name.starts_with("parley_"), "{}", metric.name);
            assert_eq!(
                metric.name.ends_with("_total"),
                metric.kind == Kind::Counter,
                "{}: only counters end in _total",
                metric.name
            );
            if metric.kind == Kind::Histogram {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
            }
        }
    }
}
