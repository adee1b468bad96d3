//! Mapping between the extractor's Rust model and the protobuf schemas.
//!
//! The extractor and resolver work on plain Rust types; the log and the wire
//! carry protobuf. Enums map by their snake_case names (`talks_held` ↔
//! `TALKS_EVENT_TYPE_TALKS_HELD`), so the two sides cannot drift silently: a
//! name one side lacks maps to "unspecified" and is caught by the round-trip
//! tests below.

use crate::model as m;
use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pb;

fn snake_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn from_snake<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

fn to_pb_enum<T: Serialize>(
    value: &T,
    prefix: &str,
    from_str: impl Fn(&str) -> Option<i32>,
) -> i32 {
    from_str(&format!(
        "{prefix}{}",
        snake_name(value).to_ascii_uppercase()
    ))
    .unwrap_or(0)
}

fn from_pb_name<T: DeserializeOwned>(name: &str, prefix: &str) -> Option<T> {
    from_snake(
        &name
            .strip_prefix(prefix)
            .unwrap_or(name)
            .to_ascii_lowercase(),
    )
}

fn date_string(date: Option<NaiveDate>) -> String {
    date.map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn opt(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Protobuf event type of a model event type.
pub fn event_type_to_pb(t: m::EventType) -> pb::TalksEventType {
    pb::TalksEventType::try_from(to_pb_enum(&t, "TALKS_EVENT_TYPE_", |n| {
        pb::TalksEventType::from_str_name(n).map(|v| v as i32)
    }))
    .unwrap_or_default()
}

/// Model event type of a protobuf one (`None` for unspecified or unknown).
pub fn event_type_from_pb(t: pb::TalksEventType) -> Option<m::EventType> {
    from_pb_name(t.as_str_name(), "TALKS_EVENT_TYPE_")
}

/// Protobuf status of a model status.
pub fn status_to_pb(s: m::EventStatus) -> pb::EventStatus {
    pb::EventStatus::try_from(to_pb_enum(&s, "EVENT_STATUS_", |n| {
        pb::EventStatus::from_str_name(n).map(|v| v as i32)
    }))
    .unwrap_or_default()
}

/// Model status of a protobuf one.
pub fn status_from_pb(s: pb::EventStatus) -> m::EventStatus {
    from_pb_name(s.as_str_name(), "EVENT_STATUS_").unwrap_or_default()
}

fn date_to_pb(d: &m::EventDate) -> pb::EventDate {
    pb::EventDate {
        date: date_string(d.date),
        precision: to_pb_enum(&d.precision, "DATE_PRECISION_", |n| {
            pb::DatePrecision::from_str_name(n).map(|v| v as i32)
        }),
        end_date: date_string(d.end_date),
        expression: d.expression.clone(),
    }
}

fn date_from_pb(d: &pb::EventDate) -> m::EventDate {
    m::EventDate {
        date: parse_date(&d.date),
        precision: from_pb_name(d.precision().as_str_name(), "DATE_PRECISION_").unwrap_or_default(),
        end_date: parse_date(&d.end_date),
        expression: d.expression.clone(),
    }
}

fn actor_to_pb(a: &m::Actor) -> pb::Actor {
    pb::Actor {
        code: a.code.clone(),
        mention: a.mention.clone(),
        entity_id: a.entity_id.clone(),
    }
}

fn actor_from_pb(a: &pb::Actor) -> m::Actor {
    m::Actor {
        code: a.code.clone(),
        mention: a.mention.clone(),
        entity_id: a.entity_id.clone(),
    }
}

/// Protobuf evidence of model evidence.
pub fn evidence_to_pb(e: &m::Evidence) -> pb::Evidence {
    pb::Evidence {
        document_id: e.document_id.clone(),
        document_name: e.document_name.clone(),
        text: e.text.clone(),
        start: e.start,
        end: e.end,
        attributed_to: e.attributed_to.clone().unwrap_or_default(),
        attributed_to_id: e.attributed_to_id.clone().unwrap_or_default(),
    }
}

/// Model evidence of protobuf evidence.
pub fn evidence_from_pb(e: &pb::Evidence) -> m::Evidence {
    m::Evidence {
        document_id: e.document_id.clone(),
        document_name: e.document_name.clone(),
        text: e.text.clone(),
        start: e.start,
        end: e.end,
        attributed_to: opt(&e.attributed_to),
        attributed_to_id: opt(&e.attributed_to_id),
    }
}

/// Protobuf talks event of a model event.
pub fn event_to_pb(e: &m::TalksEvent) -> pb::TalksEvent {
    pb::TalksEvent {
        event_id: e.event_id.clone(),
        r#type: event_type_to_pb(e.event_type) as i32,
        status: status_to_pb(e.status) as i32,
        date: Some(date_to_pb(&e.date)),
        parties: e.parties.iter().map(actor_to_pb).collect(),
        mediators: e.mediators.iter().map(actor_to_pb).collect(),
        venue: Some(pb::Venue {
            city: e.venue.city.clone().unwrap_or_default(),
            country: e.venue.country.clone().unwrap_or_default(),
            place: e.venue.place.clone().unwrap_or_default(),
            lat: e.venue.lat,
            lon: e.venue.lon,
        }),
        participants: e
            .participants
            .iter()
            .map(|p| pb::Participant {
                entity_id: p.entity_id.clone(),
                name: p.name.clone(),
                affiliation: p.affiliation.clone().unwrap_or_default(),
                role: p.role.clone().unwrap_or_default(),
            })
            .collect(),
        scope: e
            .scope
            .iter()
            .map(|s| {
                to_pb_enum(s, "SCOPE_", |n| {
                    pb::Scope::from_str_name(n).map(|v| v as i32)
                })
            })
            .collect(),
        modality: to_pb_enum(&e.modality, "MODALITY_", |n| {
            pb::Modality::from_str_name(n).map(|v| v as i32)
        }),
        evidence: e.evidence.iter().map(evidence_to_pb).collect(),
        version: e.version,
        source_count: e.source_count,
        retracted: e.retracted,
        effective: e.effective.as_ref().map(date_to_pb),
        reported_on: date_string(e.reported_on),
    }
}

/// Model talks event of a protobuf one; `None` when its type is unknown to this build.
pub fn event_from_pb(e: &pb::TalksEvent) -> Option<m::TalksEvent> {
    let venue = e.venue.clone().unwrap_or_default();
    Some(m::TalksEvent {
        event_id: e.event_id.clone(),
        event_type: event_type_from_pb(e.r#type())?,
        status: status_from_pb(e.status()),
        date: e.date.as_ref().map(date_from_pb).unwrap_or_default(),
        parties: e.parties.iter().map(actor_from_pb).collect(),
        mediators: e.mediators.iter().map(actor_from_pb).collect(),
        venue: m::Venue {
            city: opt(&venue.city),
            country: opt(&venue.country),
            place: opt(&venue.place),
            lat: venue.lat,
            lon: venue.lon,
        },
        participants: e
            .participants
            .iter()
            .map(|p| m::Participant {
                entity_id: p.entity_id.clone(),
                name: p.name.clone(),
                affiliation: opt(&p.affiliation),
                role: opt(&p.role),
            })
            .collect(),
        scope: e
            .scope()
            .filter_map(|s| from_pb_name(s.as_str_name(), "SCOPE_"))
            .collect(),
        modality: from_pb_name(e.modality().as_str_name(), "MODALITY_").unwrap_or_default(),
        evidence: e.evidence.iter().map(evidence_from_pb).collect(),
        version: e.version,
        source_count: e.source_count,
        retracted: e.retracted,
        effective: e.effective.as_ref().map(date_from_pb),
        reported_on: parse_date(&e.reported_on),
    })
}

/// Protobuf person mention of a model mention.
pub fn mention_to_pb(p: &m::PersonMention) -> pb::PersonMention {
    pb::PersonMention {
        text: p.text.clone(),
        start: p.start,
        end: p.end,
        role: p.role.clone().unwrap_or_default(),
        affiliation: p.affiliation.clone().unwrap_or_default(),
        kb_id: p.kb_id.clone().unwrap_or_default(),
        source: p.source.clone(),
    }
}

/// Model person mention of a protobuf one.
pub fn mention_from_pb(p: &pb::PersonMention) -> m::PersonMention {
    m::PersonMention {
        text: p.text.clone(),
        start: p.start,
        end: p.end,
        role: opt(&p.role),
        affiliation: opt(&p.affiliation),
        kb_id: opt(&p.kb_id),
        source: p.source.clone(),
    }
}

/// `CandidatesExtracted` for a document's extraction.
pub fn extraction_to_pb(
    document_id: &str,
    document_name: &str,
    extraction: &m::Extraction,
) -> pb::CandidatesExtracted {
    pb::CandidatesExtracted {
        document_id: document_id.to_owned(),
        document_name: document_name.to_owned(),
        extractor_version: extraction.extractor_version.clone(),
        events: extraction
            .events
            .iter()
            .enumerate()
            .map(|(index, e)| pb::CandidateEvent {
                index: index as u32,
                event: Some(event_to_pb(e)),
            })
            .collect(),
        mentions: extraction.mentions.iter().map(mention_to_pb).collect(),
        reference_date: date_string(extraction.reference_date),
    }
}

/// The extraction a `CandidatesExtracted` event carries; candidates of unknown types are dropped.
pub fn extraction_from_pb(c: &pb::CandidatesExtracted) -> m::Extraction {
    m::Extraction {
        events: c
            .events
            .iter()
            .filter_map(|ce| ce.event.as_ref().and_then(event_from_pb))
            .collect(),
        mentions: c.mentions.iter().map(mention_from_pb).collect(),
        reference_date: parse_date(&c.reference_date),
        extractor_version: c.extractor_version.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> m::TalksEvent {
        m::TalksEvent {
            event_id: "evt-1".into(),
            event_type: m::EventType::CeasefireAgreed,
            status: m::EventStatus::Held,
            date: m::EventDate {
                date: parse_date("2025-03-18"),
                precision: m::DatePrecision::Day,
                end_date: parse_date("2025-04-17"),
                expression: "on Tuesday".into(),
            },
            parties: vec![m::Actor {
                code: "RUS".into(),
                mention: "Moscow".into(),
                entity_id: String::new(),
            }],
            mediators: vec![m::Actor {
                code: "USA".into(),
                mention: "Washington".into(),
                entity_id: "state-usa".into(),
            }],
            venue: m::Venue {
                city: Some("Jeddah".into()),
                country: Some("SAU".into()),
                place: None,
                lat: Some(21.54238),
                lon: Some(39.19797),
            },
            participants: vec![m::Participant {
                entity_id: "per-x".into(),
                name: "X Y".into(),
                affiliation: Some("RUS".into()),
                role: None,
            }],
            scope: vec![m::Scope::EnergyInfrastructure, m::Scope::Maritime],
            modality: m::Modality::Call,
            evidence: vec![m::Evidence {
                document_id: "doc-1".into(),
                document_name: "a.txt".into(),
                text: "Putin agreed.".into(),
                start: 3,
                end: 16,
                attributed_to: Some("the Kremlin".into()),
                attributed_to_id: None,
            }],
            version: 2,
            source_count: 2,
            retracted: false,
            effective: None,
            reported_on: parse_date("2025-03-19"),
        }
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        let event = sample();
        let back = event_from_pb(&event_to_pb(&event)).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn every_enum_value_maps_to_a_specified_protobuf_value() {
        use m::EventType::*;
        for t in [
            TalksAnnounced,
            TalksHeld,
            CeasefireProposed,
            CeasefireAgreed,
            CeasefireViolated,
            CeasefireEnded,
            AgreementReached,
        ] {
            assert_ne!(
                event_type_to_pb(t),
                pb::TalksEventType::Unspecified,
                "{t:?}"
            );
            assert_eq!(event_type_from_pb(event_type_to_pb(t)), Some(t));
        }
        use m::Scope::*;
        for s in [
            EnergyInfrastructure,
            Maritime,
            Full,
            Humanitarian,
            Holiday,
            Local,
        ] {
            assert_ne!(
                to_pb_enum(&s, "SCOPE_", |n| pb::Scope::from_str_name(n)
                    .map(|v| v as i32)),
                0,
                "{s:?}"
            );
        }
        use m::EventStatus::*;
        for s in [Planned, Ongoing, Held, Cancelled, Postponed, Alleged] {
            assert_eq!(status_from_pb(status_to_pb(s)), s);
        }
    }
}
