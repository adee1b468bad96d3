//! The one JSON form of an event, and of the messages that carry one.
//!
//! Every JSON that leaves Parley with an event in it is built here: the lines
//! of `parley subscribe`, `parley events list|export|show` and
//! `parley subscribe --format json`, webhook bodies (format `raw`), and the
//! bodies published on NATS subjects `parley.notify.<subscription>` (and any
//! future HTTP API). The form is the serde form of the [`model`](crate::model)
//! types, the vocabulary of the evaluation format:
//!
//! - field names and enum values are snake_case (`"type": "ceasefire_agreed"`,
//!   `"status": "held"`, `"precision": "day"`, `"scope": ["maritime"]`);
//! - days are `YYYY-MM-DD`, instants RFC 3339 in UTC;
//! - a missing optional value is `null`; `effective`, `reported_on` and an
//!   actor's empty `entity_id` are left out;
//! - objects are written with their keys in sorted order.
//!
//! The JSON Schemas of these forms are committed in `schemas/` (generated
//! by [`schemas`]; a test fails when they differ from the code).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::convert;
use crate::model::{Evidence, TalksEvent, UpdateKind};
use crate::pb;
use crate::time;

/// One change to an event as a subscriber receives it: a line of
/// `parley subscribe`, a webhook body (`raw`), a NATS body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Update {
    /// The event after the change; `null` when its type is unknown to this build.
    pub event: Option<TalksEvent>,
    /// `<event_id>:v<version>`: the same for a redelivery of the same change.
    pub idempotency_key: String,
    /// What changed.
    pub kind: UpdateKind,
    /// When the log stored the change.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Log sequence of the change (resume with `--from <sequence + 1>`).
    pub sequence: u64,
    /// The stored subscription it was delivered for (pushed deliveries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// A one-line readable summary (pushed deliveries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Update {
    /// The JSON of a delivery received over gRPC (`SubscribeResponse`).
    pub fn of(delivery: &pb::SubscribeResponse) -> Self {
        Self {
            event: delivery.event.as_ref().and_then(convert::event_from_pb),
            idempotency_key: delivery.idempotency_key.clone(),
            kind: convert::update_kind_from_pb(delivery.kind),
            recorded_at: delivery.recorded_at.as_ref().and_then(time::from_timestamp),
            sequence: delivery.sequence,
            subscription_id: None,
            summary: None,
        }
    }

    /// The same, pushed for `subscription_id` with a readable `summary`.
    pub fn pushed(mut self, subscription_id: &str, summary: String) -> Self {
        self.subscription_id = Some(subscription_id.to_owned());
        self.summary = Some(summary);
        self
    }
}

/// One row of the event history (`parley events list|export`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryRow {
    /// The event's current state; `null` when its type is unknown to this build.
    pub event: Option<TalksEvent>,
    /// Parley's id of the real-world event.
    pub event_id: String,
    /// Log sequence of its first report.
    pub first_sequence: u64,
    /// Log sequence of its latest change.
    pub last_sequence: u64,
    /// When it was first recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl HistoryRow {
    /// The JSON of a `HistoryEvent` row.
    pub fn of(row: &pb::HistoryEvent) -> Self {
        Self {
            event: row.event.as_ref().and_then(convert::event_from_pb),
            event_id: row
                .event
                .as_ref()
                .map(|e| e.event_id.clone())
                .unwrap_or_default(),
            first_sequence: row.first_sequence,
            last_sequence: row.last_sequence,
            recorded_at: row.recorded_at.as_ref().and_then(time::from_timestamp),
            updated_at: row.updated_at.as_ref().and_then(time::from_timestamp),
        }
    }
}

/// One version of an event (`parley events show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Version {
    /// The event as this version left it.
    pub event: Option<TalksEvent>,
    /// What changed.
    pub kind: UpdateKind,
    /// Why, for amendments and retractions that said so.
    pub reason: String,
    /// When the log stored it.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Its log sequence.
    pub sequence: u64,
    /// The event's version number.
    pub version: u64,
}

/// Everything known about one event (`parley events show`): its row, every
/// version, every source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventDetail {
    /// The current row.
    #[serde(flatten)]
    pub row: HistoryRow,
    /// Every source that ever reported it.
    pub sources: Vec<Evidence>,
    /// Every version, oldest first.
    pub versions: Vec<Version>,
}

impl EventDetail {
    /// The JSON of a `GetEventResponse`.
    pub fn of(response: &pb::GetEventResponse) -> Self {
        Self {
            row: HistoryRow::of(&response.current.clone().unwrap_or_default()),
            sources: response
                .sources
                .iter()
                .map(convert::evidence_from_pb)
                .collect(),
            versions: response
                .versions
                .iter()
                .map(|v| Version {
                    event: v.event.as_ref().and_then(convert::event_from_pb),
                    kind: convert::update_kind_from_pb(v.kind),
                    reason: v.reason.clone(),
                    recorded_at: v.recorded_at.as_ref().and_then(time::from_timestamp),
                    sequence: v.sequence,
                    version: v.version,
                })
                .collect(),
        }
    }
}

/// The JSON text of a value of this module, keys in sorted order.
pub fn to_string<T: Serialize>(value: &T) -> String {
    // Through `Value`, whose maps are sorted: one key order everywhere.
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The JSON Schema of every form, by the file name it is committed under in `schemas/`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn schema<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
    }
    vec![
        ("event.schema.json", schema::<TalksEvent>()),
        ("update.schema.json", schema::<Update>()),
        ("history-row.schema.json", schema::<HistoryRow>()),
        ("event-detail.schema.json", schema::<EventDetail>()),
    ]
}
