//! Resolver decisions as log events, and back.
//!
//! Every decision the resolver takes (or a human takes through it) becomes a
//! protobuf event on the aggregate it concerns; replaying those events
//! through [`decision_from_event`] and `Resolver::apply` rebuilds the state.

use parley_domain::pb;
use parley_domain::{Event, aggregate, convert, ids};
use parley_log::{AggregateRef, LogError};
use parley_resolve::{Decision, EntityKind, ResolvedPerson};

fn opt(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Protobuf kind of an entity kind.
pub fn kind_to_pb(kind: EntityKind) -> pb::EntityKind {
    match kind {
        EntityKind::Person => pb::EntityKind::Person,
        EntityKind::State => pb::EntityKind::State,
        EntityKind::Organisation => pb::EntityKind::Organisation,
        EntityKind::Place => pb::EntityKind::Place,
    }
}

fn kind_from_pb(kind: pb::EntityKind) -> EntityKind {
    match kind {
        pb::EntityKind::State => EntityKind::State,
        pb::EntityKind::Organisation => EntityKind::Organisation,
        pb::EntityKind::Place => EntityKind::Place,
        pb::EntityKind::Person | pb::EntityKind::Unspecified => EntityKind::Person,
    }
}

/// The aggregate a decision is recorded on.
pub fn aggregate_of(decision: &Decision) -> Result<AggregateRef, LogError> {
    let (kind, id) = match decision {
        Decision::RegisterEntity { entity_id, .. }
        | Decision::LearnAlias { entity_id, .. }
        | Decision::SplitEntity { entity_id, .. } => (aggregate::ENTITY, entity_id.as_str()),
        Decision::MergeEntities { into, .. } => (aggregate::ENTITY, into.as_str()),
        Decision::RecordEvent { event } | Decision::AmendEvent { event, .. } => {
            (aggregate::TALKS, event.event_id.as_str())
        }
        Decision::CorroborateEvent { event_id, .. } | Decision::RetractEvent { event_id, .. } => {
            (aggregate::TALKS, event_id.as_str())
        }
        Decision::DocumentResolved { document_id, .. } => {
            (aggregate::ARTICLE, document_id.as_str())
        }
    };
    AggregateRef::new(kind, ids::subject_token(id))
}

/// Counts a talks decision just appended in `parley_talks_events_total`,
/// labelled with its kind and, where the decision carries it, its type
/// (a retraction names only the event: type `unknown`).
pub fn count_talks_decision(decision: &Decision) {
    let (kind, event_type) = match decision {
        Decision::RecordEvent { event } => ("recorded", event.event_type.as_str()),
        Decision::CorroborateEvent { reported_type, .. } => {
            ("corroborated", reported_type.as_str())
        }
        Decision::AmendEvent { event, .. } => ("amended", event.event_type.as_str()),
        Decision::RetractEvent { .. } => ("retracted", "unknown"),
        _ => return,
    };
    metrics::counter!("parley_talks_events_total", "type" => event_type, "kind" => kind)
        .increment(1);
}

/// The log event recording a decision.
pub fn decision_to_event(decision: &Decision) -> Event {
    match decision {
        Decision::RegisterEntity {
            entity_id,
            kind,
            name,
            aliases,
            code,
            origin,
            document_id,
        } => Event::EntityRegistered(pb::EntityRegistered {
            entity_id: entity_id.clone(),
            kind: kind_to_pb(*kind) as i32,
            name: name.clone(),
            aliases: aliases.clone(),
            code: code.clone().unwrap_or_default(),
            origin: origin.clone(),
            document_id: document_id.clone().unwrap_or_default(),
        }),
        Decision::LearnAlias {
            entity_id,
            alias,
            reason,
            document_id,
        } => Event::AliasLearned(pb::AliasLearned {
            entity_id: entity_id.clone(),
            alias: alias.clone(),
            reason: reason.clone(),
            document_id: document_id.clone().unwrap_or_default(),
        }),
        Decision::MergeEntities {
            into,
            merged,
            reason,
            decided_by,
        } => Event::EntitiesMerged(pb::EntitiesMerged {
            into_entity_id: into.clone(),
            merged_entity_id: merged.clone(),
            reason: reason.clone(),
            decided_by: decided_by.clone(),
        }),
        Decision::SplitEntity {
            entity_id,
            new_entity_id,
            new_name,
            aliases,
            reason,
            decided_by,
        } => Event::EntitySplit(pb::EntitySplit {
            entity_id: entity_id.clone(),
            new_entity_id: new_entity_id.clone(),
            new_name: new_name.clone(),
            aliases: aliases.clone(),
            reason: reason.clone(),
            decided_by: decided_by.clone(),
        }),
        Decision::RecordEvent { event } => Event::TalksEventRecorded(pb::TalksEventRecorded {
            event: Some(convert::event_to_pb(event)),
        }),
        Decision::CorroborateEvent {
            event_id,
            evidence,
            source_count,
            status,
            version,
            reported_type,
        } => Event::TalksEventCorroborated(pb::TalksEventCorroborated {
            event_id: event_id.clone(),
            evidence: Some(convert::evidence_to_pb(evidence)),
            source_count: *source_count,
            status: convert::status_to_pb(*status) as i32,
            version: *version,
            reported_type: convert::event_type_to_pb(*reported_type) as i32,
        }),
        Decision::AmendEvent { event, reason } => Event::TalksEventAmended(pb::TalksEventAmended {
            event: Some(convert::event_to_pb(event)),
            reason: reason.clone(),
        }),
        Decision::RetractEvent {
            event_id,
            reason,
            version,
        } => Event::TalksEventRetracted(pb::TalksEventRetracted {
            event_id: event_id.clone(),
            reason: reason.clone(),
            version: *version,
        }),
        Decision::DocumentResolved {
            document_id,
            document_name,
            persons,
            event_ids,
        } => Event::DocumentResolved(pb::DocumentResolved {
            document_id: document_id.clone(),
            document_name: document_name.clone(),
            persons: persons
                .iter()
                .map(|p| pb::ResolvedPerson {
                    entity_id: p.entity_id.clone(),
                    name: p.name.clone(),
                    mentions: p.mentions.clone(),
                })
                .collect(),
            event_ids: event_ids.clone(),
        }),
    }
}

/// The decision a log event records, if it is one of the resolver's.
pub fn decision_from_event(event: &Event) -> Option<Decision> {
    Some(match event {
        Event::EntityRegistered(e) => Decision::RegisterEntity {
            entity_id: e.entity_id.clone(),
            kind: kind_from_pb(e.kind()),
            name: e.name.clone(),
            aliases: e.aliases.clone(),
            code: opt(&e.code),
            origin: e.origin.clone(),
            document_id: opt(&e.document_id),
        },
        Event::AliasLearned(e) => Decision::LearnAlias {
            entity_id: e.entity_id.clone(),
            alias: e.alias.clone(),
            reason: e.reason.clone(),
            document_id: opt(&e.document_id),
        },
        Event::EntitiesMerged(e) => Decision::MergeEntities {
            into: e.into_entity_id.clone(),
            merged: e.merged_entity_id.clone(),
            reason: e.reason.clone(),
            decided_by: e.decided_by.clone(),
        },
        Event::EntitySplit(e) => Decision::SplitEntity {
            entity_id: e.entity_id.clone(),
            new_entity_id: e.new_entity_id.clone(),
            new_name: e.new_name.clone(),
            aliases: e.aliases.clone(),
            reason: e.reason.clone(),
            decided_by: e.decided_by.clone(),
        },
        Event::TalksEventRecorded(e) => Decision::RecordEvent {
            event: convert::event_from_pb(e.event.as_ref()?)?,
        },
        Event::TalksEventCorroborated(e) => Decision::CorroborateEvent {
            event_id: e.event_id.clone(),
            evidence: convert::evidence_from_pb(e.evidence.as_ref()?),
            source_count: e.source_count,
            status: convert::status_from_pb(e.status()),
            version: e.version,
            reported_type: convert::event_type_from_pb(e.reported_type())?,
        },
        Event::TalksEventAmended(e) => Decision::AmendEvent {
            event: convert::event_from_pb(e.event.as_ref()?)?,
            reason: e.reason.clone(),
        },
        Event::TalksEventRetracted(e) => Decision::RetractEvent {
            event_id: e.event_id.clone(),
            reason: e.reason.clone(),
            version: e.version,
        },
        Event::DocumentResolved(e) => Decision::DocumentResolved {
            document_id: e.document_id.clone(),
            document_name: e.document_name.clone(),
            persons: e
                .persons
                .iter()
                .map(|p| ResolvedPerson {
                    entity_id: p.entity_id.clone(),
                    name: p.name.clone(),
                    mentions: p.mentions.clone(),
                })
                .collect(),
            event_ids: e.event_ids.clone(),
        },
        _ => return None,
    })
}
