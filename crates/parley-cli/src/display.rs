//! Human-readable one-line summaries of deliveries, for terminals.
//!
//! JSON Lines are for programs; a person watching `parley up --demo` wants to
//! see at a glance what happened, between whom, where and when, and how many
//! sources report it.

use parley_domain::pb::{EventStatus, SubscribeResponse, TalksEvent, TalksEventType, UpdateKind};

/// Lower-case name of a proto enum value without its prefix (`TALKS_EVENT_TYPE_TALKS_HELD` → `talks_held`).
fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// One line: sequence, change kind, type, sides, mediators, place, date, status, sources and id.
pub fn delivery_line(delivery: &SubscribeResponse) -> String {
    let kind = enum_name(
        UpdateKind::try_from(delivery.kind)
            .unwrap_or_default()
            .as_str_name(),
        "UPDATE_KIND_",
    );
    match &delivery.event {
        Some(event) => format!(
            "#{:<5} {:<12} {}",
            delivery.sequence,
            kind,
            event_summary(event)
        ),
        None => format!("#{:<5} {kind}", delivery.sequence),
    }
}

/// The event part of [`delivery_line`].
pub fn event_summary(event: &TalksEvent) -> String {
    let kind = enum_name(
        TalksEventType::try_from(event.r#type)
            .unwrap_or_default()
            .as_str_name(),
        "TALKS_EVENT_TYPE_",
    );
    let codes = |actors: &[parley_domain::pb::Actor]| {
        actors
            .iter()
            .map(|a| a.code.as_str())
            .collect::<Vec<_>>()
            .join("+")
    };
    let mut line = format!("{kind:<20} {}", codes(&event.parties));
    if !event.mediators.is_empty() {
        line.push_str(&format!(" via {}", codes(&event.mediators)));
    }
    if let Some(venue) = event.venue.as_ref().filter(|v| !v.city.is_empty()) {
        line.push_str(&format!(" in {} ({})", venue.city, venue.country));
    }
    if let Some(date) = event.date.as_ref().filter(|d| !d.date.is_empty()) {
        line.push_str(&format!(" on {}", date.date));
        if !date.end_date.is_empty() && date.end_date != date.date {
            line.push_str(&format!("..{}", date.end_date));
        }
    }
    let status = enum_name(
        EventStatus::try_from(event.status)
            .unwrap_or_default()
            .as_str_name(),
        "EVENT_STATUS_",
    );
    if status != "unspecified" {
        line.push_str(&format!(" [{status}]"));
    }
    let mut sources: Vec<&str> = Vec::new();
    for evidence in &event.evidence {
        if !sources.contains(&evidence.document_name.as_str()) {
            sources.push(&evidence.document_name);
        }
    }
    line.push_str(&format!(
        " sources={} ({}) {} v{}",
        event.source_count,
        sources.join(", "),
        event.event_id,
        event.version
    ));
    if event.retracted {
        line.push_str(" RETRACTED");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::pb::{Actor, EventDate, Evidence, Venue};

    #[test]
    fn a_line_names_type_sides_place_date_and_sources() {
        let event = TalksEvent {
            event_id: "evt-1".into(),
            r#type: TalksEventType::TalksHeld as i32,
            status: EventStatus::Held as i32,
            parties: vec![
                Actor {
                    code: "RUS".into(),
                    ..Default::default()
                },
                Actor {
                    code: "UKR".into(),
                    ..Default::default()
                },
            ],
            mediators: vec![Actor {
                code: "TUR".into(),
                ..Default::default()
            }],
            venue: Some(Venue {
                city: "Istanbul".into(),
                country: "TUR".into(),
                ..Default::default()
            }),
            date: Some(EventDate {
                date: "2025-05-16".into(),
                ..Default::default()
            }),
            evidence: vec![Evidence {
                document_name: "a.txt".into(),
                ..Default::default()
            }],
            source_count: 1,
            version: 1,
            ..Default::default()
        };
        let line = delivery_line(&SubscribeResponse {
            sequence: 7,
            kind: UpdateKind::Recorded as i32,
            event: Some(event),
            ..Default::default()
        });
        assert!(line.starts_with("#7"), "{line}");
        for part in [
            "recorded",
            "talks_held",
            "RUS+UKR via TUR",
            "in Istanbul (TUR)",
            "on 2025-05-16",
            "[held]",
            "sources=1 (a.txt)",
            "evt-1 v1",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
    }
}
