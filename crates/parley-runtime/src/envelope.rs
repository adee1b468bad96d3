//! Building, writing and reading event envelopes over a log.
//!
//! The log stores bytes; the domain knows events. This module is where the
//! two meet: an [`EnvelopeBuilder`] wraps domain events for one aggregate,
//! [`append_events`] writes them as one `EventBatch` (one atomic log
//! message, with the headers readers use to skip without decoding), and
//! [`decode_record`] reads a record back into envelopes, skipping payloads
//! a newer writer added.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parley_log::{
    AggregateRef, AppendRequest, Appended, EventLog, ExpectedVersion, LogError, LogRecord,
};
use prost::Message;
use thiserror::Error;

use parley_domain::pb::{DomainEvent, EventBatch, EventEnvelope, domain_event::Event};
use parley_domain::{
    HEADER_EVENT_TYPES, HEADER_SCHEMA_VERSION, SCHEMA_VERSION, event_type_name, time,
};

/// Why a record could not be read as Parley events.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The bytes are not an `EventBatch`.
    #[error(
        "record {sequence} on {aggregate}: payload does not decode as parley.v1.EventBatch: {reason}"
    )]
    Malformed {
        /// Log sequence.
        sequence: u64,
        /// Aggregate (`type/id`).
        aggregate: String,
        /// Decoder message.
        reason: String,
    },
    /// Written by a newer Parley with a schema this build does not know.
    #[error(
        "record {sequence} on {aggregate}: schema version {version} is newer than this build's {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// Log sequence.
        sequence: u64,
        /// Aggregate.
        aggregate: String,
        /// Version found.
        version: u32,
    },
}

/// A record decoded into its envelopes. Envelopes whose payload variant is
/// unknown to this build (written by a newer writer) are counted, not returned.
#[derive(Debug, Clone)]
pub struct DecodedRecord {
    /// Log sequence.
    pub sequence: u64,
    /// Aggregate the record belongs to.
    pub aggregate: AggregateRef,
    /// When the log stored it.
    pub recorded_at: DateTime<Utc>,
    /// Envelopes whose payload this build understands.
    pub envelopes: Vec<EventEnvelope>,
    /// Event types of envelopes skipped because this build does not know them.
    pub skipped: Vec<String>,
}

impl DecodedRecord {
    /// Iterates over the known payloads with their envelopes.
    pub fn events(&self) -> impl Iterator<Item = (&EventEnvelope, &Event)> {
        self.envelopes.iter().filter_map(|envelope| {
            envelope
                .payload
                .as_ref()
                .and_then(|p| p.event.as_ref())
                .map(|event| (envelope, event))
        })
    }
}

/// Decodes a log record. Unknown payload variants are skipped (listed in
/// `skipped`) so an old reader keeps going past events from a newer writer.
pub fn decode_record(record: &LogRecord) -> Result<DecodedRecord, DecodeError> {
    if let Some(version) = record
        .header(HEADER_SCHEMA_VERSION)
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| *v > SCHEMA_VERSION)
    {
        return Err(DecodeError::NewerSchema {
            sequence: record.sequence,
            aggregate: record.aggregate.to_string(),
            version,
        });
    }
    let batch =
        EventBatch::decode(record.payload.as_ref()).map_err(|e| DecodeError::Malformed {
            sequence: record.sequence,
            aggregate: record.aggregate.to_string(),
            reason: e.to_string(),
        })?;
    let mut envelopes = Vec::with_capacity(batch.events.len());
    let mut skipped = Vec::new();
    for envelope in batch.events {
        let known = envelope.payload.as_ref().is_some_and(|p| p.event.is_some());
        if known {
            envelopes.push(envelope);
        } else {
            skipped.push(envelope.event_type.clone());
        }
    }
    Ok(DecodedRecord {
        sequence: record.sequence,
        aggregate: record.aggregate.clone(),
        recorded_at: record.recorded_at,
        envelopes,
        skipped,
    })
}

/// Builds envelopes for one aggregate with shared causation and correlation.
#[derive(Debug, Clone)]
pub struct EnvelopeBuilder {
    aggregate: AggregateRef,
    causation_id: String,
    correlation_id: String,
    source_document: String,
    occurred_at: Option<DateTime<Utc>>,
}

impl EnvelopeBuilder {
    /// Envelopes for `aggregate`.
    pub fn new(aggregate: AggregateRef) -> Self {
        Self {
            aggregate,
            causation_id: String::new(),
            correlation_id: String::new(),
            source_document: String::new(),
            occurred_at: None,
        }
    }

    /// The event that caused these.
    pub fn caused_by(mut self, causation_id: impl Into<String>) -> Self {
        self.causation_id = causation_id.into();
        self
    }

    /// The flow these belong to.
    pub fn correlated_with(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = correlation_id.into();
        self
    }

    /// The document these were derived from.
    pub fn from_document(mut self, document_id: impl Into<String>) -> Self {
        self.source_document = document_id.into();
        self
    }

    /// When the fact happened in the world (defaults to now).
    pub fn occurred_at(mut self, when: DateTime<Utc>) -> Self {
        self.occurred_at = Some(when);
        self
    }

    /// The aggregate these envelopes are for.
    pub fn aggregate(&self) -> &AggregateRef {
        &self.aggregate
    }

    /// One envelope. `event_id` must be deterministic where the command may be retried.
    pub fn envelope(&self, event_id: impl Into<String>, event: Event) -> EventEnvelope {
        let now = time::now();
        EventEnvelope {
            event_id: event_id.into(),
            aggregate_type: self.aggregate.kind.clone(),
            aggregate_id: self.aggregate.id.clone(),
            event_type: event_type_name(&event).to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: Some(self.occurred_at.map(time::to_timestamp).unwrap_or(now)),
            recorded_at: Some(now),
            causation_id: self.causation_id.clone(),
            correlation_id: self.correlation_id.clone(),
            source_document: self.source_document.clone(),
            payload: Some(DomainEvent { event: Some(event) }),
        }
    }
}

/// The append request for a batch of envelopes (one log message, atomic).
pub fn append_request(
    aggregate: AggregateRef,
    expected: ExpectedVersion,
    msg_id: impl Into<String>,
    envelopes: Vec<EventEnvelope>,
) -> AppendRequest {
    let types = envelopes
        .iter()
        .map(|e| e.event_type.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let payload = Bytes::from(EventBatch { events: envelopes }.encode_to_vec());
    AppendRequest {
        aggregate,
        expected,
        msg_id: msg_id.into(),
        headers: vec![
            (HEADER_EVENT_TYPES.to_owned(), types),
            (HEADER_SCHEMA_VERSION.to_owned(), SCHEMA_VERSION.to_string()),
        ],
        payload,
    }
}

/// Appends a batch of envelopes to their aggregate in one message.
pub async fn append_events(
    log: &dyn EventLog,
    aggregate: AggregateRef,
    expected: ExpectedVersion,
    msg_id: impl Into<String>,
    envelopes: Vec<EventEnvelope>,
) -> Result<Appended, LogError> {
    log.append(append_request(aggregate, expected, msg_id, envelopes))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::pb;

    fn record(payload: Vec<u8>, headers: Vec<(String, String)>) -> LogRecord {
        LogRecord {
            sequence: 7,
            aggregate: AggregateRef::new("talks", "evt-1").unwrap(),
            msg_id: None,
            headers,
            payload: Bytes::from(payload),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn a_batch_round_trips_through_a_record() {
        let builder = EnvelopeBuilder::new(AggregateRef::new("subscription", "s1").unwrap());
        let envelope = builder.envelope(
            "e1",
            Event::SubscriptionPaused(pb::SubscriptionPaused {
                subscription_id: "s1".into(),
            }),
        );
        let request = append_request(
            builder.aggregate().clone(),
            ExpectedVersion::Any,
            "m1",
            vec![envelope],
        );
        let decoded = decode_record(&record(request.payload.to_vec(), request.headers)).unwrap();
        assert_eq!(decoded.envelopes.len(), 1);
        assert_eq!(
            decoded.envelopes[0].event_type,
            "parley.v1.SubscriptionPaused"
        );
        assert!(decoded.skipped.is_empty());
    }

    #[test]
    fn garbage_is_a_clear_error_naming_the_sequence() {
        let err = decode_record(&record(vec![0xff, 0xff, 0xff], vec![])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("record 7"), "{text}");
        assert!(text.contains("talks/evt-1"), "{text}");
    }

    #[test]
    fn an_unknown_variant_from_a_newer_writer_is_skipped_not_fatal() {
        // A newer writer's variant decodes as an empty oneof.
        let batch = EventBatch {
            events: vec![EventEnvelope {
                event_id: "e9".into(),
                event_type: "parley.v1.SomethingNew".into(),
                payload: Some(DomainEvent { event: None }),
                ..Default::default()
            }],
        };
        let decoded = decode_record(&record(batch.encode_to_vec(), vec![])).unwrap();
        assert!(decoded.envelopes.is_empty());
        assert_eq!(decoded.skipped, vec!["parley.v1.SomethingNew".to_string()]);
    }

    #[test]
    fn a_newer_schema_version_is_refused() {
        let err = decode_record(&record(
            vec![],
            vec![(HEADER_SCHEMA_VERSION.into(), "99".into())],
        ))
        .unwrap_err();
        assert!(matches!(err, DecodeError::NewerSchema { version: 99, .. }));
    }
}
