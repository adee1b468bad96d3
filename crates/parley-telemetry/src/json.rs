//! JSON log lines for collectors: one object per line, flat, with the
//! process's service name and the trace id of the request being handled.
//!
//! ```json
//! {"timestamp":"2025-06-01T12:00:00.123456Z","level":"INFO","service":"parley-ingest",
//!  "target":"parley_ingest","message":"document rejected","document":"a.jpg",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","spans":["grpc"]}
//! ```
//!
//! The event's own fields sit at the top level; fields of the spans it
//! happened in (outermost first, inner ones winning) too, unless the event
//! has a field of the same name; `spans` names those spans. `service` is
//! always the process; an event's own `service` field (the resolver inside
//! `parley up`) is kept as `component`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The formatter: see the module documentation.
pub struct JsonLines {
    service: String,
}

impl JsonLines {
    /// Lines naming `service` as their `service` field.
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }
}

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("service".into(), self.service.clone().into());
        line.insert("target".into(), metadata.target().into());
        let mut own = Map::new();
        event.record(&mut Fields(&mut own));
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                spans.push(Value::String(span.name().to_owned()));
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields);
                }
            }
        }
        // The process's name stays `service`; an event's own `service` field
        // (a component inside `parley up`) becomes `component`.
        if let Some(component) = own.remove("service")
            && component != line["service"]
        {
            line.insert("component".into(), component);
        }
        line.extend(own);
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_flat_json_with_service_and_span_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::new("parley-test"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("grpc", trace_id = "abc123", rpc.method = "Submit");
            let _entered = span.enter();
            tracing::warn!(
                document = "a.jpg",
                count = 3,
                service = "resolver",
                "document rejected"
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["service"], "parley-test");
        assert_eq!(line["component"], "resolver");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "document rejected");
        assert_eq!(line["document"], "a.jpg");
        assert_eq!(line["count"], 3);
        assert_eq!(line["trace_id"], "abc123");
        assert_eq!(line["rpc.method"], "Submit");
        assert_eq!(line["spans"], serde_json::json!(["grpc"]));
    }
}
