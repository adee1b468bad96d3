//! Round trips of the two conversions an event goes through: to the wire
//! and the log (protobuf, `parley_domain::convert`) and to JSON (the
//! canonical form of `parley_domain::json`, which the resolver's state file
//! also stores). Whatever event the model can hold comes back equal.

use chrono::NaiveDate;
use parley_domain::convert;
use parley_domain::model::{
    Actor, DatePrecision, EventDate, EventStatus, EventType, Evidence, Extraction, Modality,
    Participant, PersonMention, Scope, TalksEvent, Venue,
};
use proptest::prelude::*;
use proptest::sample::select;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ,.'éü-]{0,12}"
}

/// `Some` holds a non-empty text: the protobuf has no "present but empty".
fn some_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z][a-zA-Z0-9 ]{0,10}")
}

fn day() -> impl Strategy<Value = Option<NaiveDate>> {
    proptest::option::of((1i32..=9999, 1u32..=365).prop_map(|(year, ordinal)| {
        NaiveDate::from_yo_opt(year, ordinal).expect("valid ordinal day")
    }))
}

fn date() -> impl Strategy<Value = EventDate> {
    (
        day(),
        select(vec![
            DatePrecision::Unspecified,
            DatePrecision::Day,
            DatePrecision::Week,
            DatePrecision::Month,
            DatePrecision::Year,
        ]),
        day(),
        text(),
    )
        .prop_map(|(date, precision, end_date, expression)| EventDate {
            date,
            precision,
            end_date,
            expression,
        })
}

fn actor() -> impl Strategy<Value = Actor> {
    ("[A-Z]{3}", text(), text()).prop_map(|(code, mention, entity_id)| Actor {
        code,
        mention,
        entity_id,
    })
}

fn evidence() -> impl Strategy<Value = Evidence> {
    (
        text(),
        text(),
        text(),
        any::<u32>(),
        any::<u32>(),
        some_text(),
        some_text(),
    )
        .prop_map(
            |(document_id, document_name, text, start, end, attributed_to, attributed_to_id)| {
                Evidence {
                    document_id,
                    document_name,
                    text,
                    start,
                    end,
                    attributed_to,
                    attributed_to_id,
                }
            },
        )
}

fn event() -> impl Strategy<Value = TalksEvent> {
    let kinds = (
        select(vec![
            EventType::TalksAnnounced,
            EventType::TalksHeld,
            EventType::CeasefireProposed,
            EventType::CeasefireAgreed,
            EventType::CeasefireViolated,
            EventType::CeasefireEnded,
            EventType::AgreementReached,
        ]),
        select(vec![
            EventStatus::Unspecified,
            EventStatus::Planned,
            EventStatus::Ongoing,
            EventStatus::Held,
            EventStatus::Cancelled,
            EventStatus::Postponed,
            EventStatus::Alleged,
        ]),
        select(vec![
            Modality::Unspecified,
            Modality::InPerson,
            Modality::Call,
            Modality::Video,
            Modality::Shuttle,
            Modality::Indirect,
        ]),
        proptest::collection::vec(
            select(vec![
                Scope::EnergyInfrastructure,
                Scope::Maritime,
                Scope::Full,
                Scope::Humanitarian,
                Scope::Holiday,
                Scope::Local,
            ]),
            0..3,
        ),
    );
    let people = (
        proptest::collection::vec(actor(), 0..3),
        proptest::collection::vec(actor(), 0..2),
        proptest::collection::vec(
            (text(), text(), some_text(), some_text()).prop_map(
                |(entity_id, name, affiliation, role)| Participant {
                    entity_id,
                    name,
                    affiliation,
                    role,
                },
            ),
            0..3,
        ),
        (
            some_text(),
            some_text(),
            some_text(),
            proptest::option::of(-90.0f64..90.0),
            proptest::option::of(-180.0f64..180.0),
        )
            .prop_map(|(city, country, place, lat, lon)| Venue {
                city,
                country,
                place,
                lat,
                lon,
            }),
    );
    let rest = (
        text(),
        date(),
        proptest::option::of(date()),
        day(),
        proptest::collection::vec(evidence(), 0..3),
        (any::<u64>(), any::<u32>(), any::<bool>()),
    );
    (kinds, people, rest).prop_map(
        |(
            (event_type, status, modality, scope),
            (parties, mediators, participants, venue),
            (event_id, date, effective, reported_on, evidence, (version, source_count, retracted)),
        )| TalksEvent {
            event_id,
            event_type,
            status,
            date,
            parties,
            mediators,
            venue,
            participants,
            scope,
            modality,
            evidence,
            version,
            source_count,
            retracted,
            effective,
            reported_on,
        },
    )
}

fn mention() -> impl Strategy<Value = PersonMention> {
    (
        text(),
        any::<u32>(),
        any::<u32>(),
        some_text(),
        some_text(),
        some_text(),
        text(),
    )
        .prop_map(
            |(text, start, end, role, affiliation, kb_id, source)| PersonMention {
                text,
                start,
                end,
                role,
                affiliation,
                kb_id,
                source,
            },
        )
}

proptest! {
    #[test]
    fn an_event_round_trips_through_protobuf(event in event()) {
        prop_assert_eq!(convert::event_from_pb(&convert::event_to_pb(&event)), Some(event));
    }

    #[test]
    fn an_event_round_trips_through_its_json(event in event()) {
        let json = parley_domain::json::to_string(&event);
        prop_assert_eq!(serde_json::from_str::<TalksEvent>(&json).unwrap(), event);
    }

    #[test]
    fn an_extraction_round_trips_through_protobuf(
        events in proptest::collection::vec(event(), 0..3),
        mentions in proptest::collection::vec(mention(), 0..3),
        reference_date in day(),
        extractor_version in text(),
    ) {
        let extraction = Extraction { events, mentions, reference_date, extractor_version };
        let wire = convert::extraction_to_pb("doc-1", "a.txt", &extraction);
        prop_assert_eq!(convert::extraction_from_pb(&wire), extraction);
    }
}
