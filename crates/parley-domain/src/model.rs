//! The extracted data model. It mirrors `parley.v1.TalksEvent` and its parts
//! field for field (snake_case enums), so the services can map it to protobuf
//! without loss; fields the protobuf lacks are marked as such.

use serde::{Deserialize, Serialize};

/// What happened: the seven event types of the evaluation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Talks, a meeting or a call planned, proposed or announced for later.
    TalksAnnounced,
    /// Talks, a meeting, a negotiation round or a call that took place or is under way.
    TalksHeld,
    /// A ceasefire proposed, demanded, or accepted by one side only.
    CeasefireProposed,
    /// A ceasefire agreed, or declared unilaterally (parties then hold that side).
    CeasefireAgreed,
    /// A ceasefire reported or alleged to be broken.
    CeasefireViolated,
    /// A ceasefire that collapsed, expired or was called off.
    CeasefireEnded,
    /// Any other agreement reached or signed.
    AgreementReached,
}

impl EventType {
    /// The snake_case name used in JSON and the evaluation format.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TalksAnnounced => "talks_announced",
            EventType::TalksHeld => "talks_held",
            EventType::CeasefireProposed => "ceasefire_proposed",
            EventType::CeasefireAgreed => "ceasefire_agreed",
            EventType::CeasefireViolated => "ceasefire_violated",
            EventType::CeasefireEnded => "ceasefire_ended",
            EventType::AgreementReached => "agreement_reached",
        }
    }

    /// Types that can describe the same real event at different stages
    /// (announced talks later held; an agreement that is the ceasefire deal).
    pub fn family(self) -> EventFamily {
        match self {
            EventType::TalksAnnounced | EventType::TalksHeld => EventFamily::Talks,
            EventType::AgreementReached => EventFamily::Agreement,
            _ => EventFamily::Ceasefire,
        }
    }
}

/// Groups of event types that may be stages of one real event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFamily {
    /// Announced or held talks.
    Talks,
    /// Ceasefire proposals, agreements, violations and ends.
    Ceasefire,
    /// Other agreements.
    Agreement,
}

/// Planned or happened; it moves as later reports arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Not known.
    #[default]
    Unspecified,
    /// Announced or proposed for a later date.
    Planned,
    /// Under way at the time of the report.
    Ongoing,
    /// Took place.
    Held,
    /// Called off before it happened.
    Cancelled,
    /// Moved to a later date.
    Postponed,
    /// Reported by one side and not confirmed.
    Alleged,
}

/// How much of a date the text gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatePrecision {
    /// No date in the text.
    #[default]
    Unspecified,
    /// A calendar day.
    Day,
    /// A week; the date is its first day (Monday).
    Week,
    /// A month; the date is its first day.
    Month,
    /// A year; the date is its first day.
    Year,
}

/// Scope of a partial ceasefire or of talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Strikes on energy facilities and critical infrastructure.
    EnergyInfrastructure,
    /// Shipping, sea, ports.
    Maritime,
    /// A full, general or comprehensive ceasefire.
    Full,
    /// Humanitarian pauses, corridors, aid, recovery of bodies.
    Humanitarian,
    /// A holiday truce.
    Holiday,
    /// Part of the front or one locality.
    Local,
}

/// How talks were held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Not said.
    #[default]
    Unspecified,
    /// Face to face.
    InPerson,
    /// A phone call.
    Call,
    /// A video conference.
    Video,
    /// A mediator moving between delegations.
    Shuttle,
    /// Through mediators, the parties never meeting.
    Indirect,
}

/// A date with its precision (`parley.v1.EventDate`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct EventDate {
    /// First day; `None` when the text gave none.
    pub date: Option<chrono::NaiveDate>,
    /// How precise the text was.
    pub precision: DatePrecision,
    /// Last day of a range.
    pub end_date: Option<chrono::NaiveDate>,
    /// The words the date was read from.
    pub expression: String,
}

/// A side, mediator or host (`parley.v1.Actor`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// ISO 3166-1 alpha-3 for a state, short upper-case name otherwise.
    pub code: String,
    /// The words that named it ("Kyiv", "the Kremlin").
    pub mention: String,
    /// Resolved entity id, filled by the resolver.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity_id: String,
}

/// Where talks take place (`parley.v1.Venue`).
///
/// Equality and hashing compare the coordinates bit for bit (they come from
/// the knowledge base, never from arithmetic, so the same city always has the
/// same bits), which keeps `Venue` usable as a key.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Venue {
    /// City, English name.
    pub city: Option<String>,
    /// ISO alpha-3 of the city's country.
    pub country: Option<String>,
    /// Finer place ("Ciragan Palace"), if given.
    pub place: Option<String>,
    /// Latitude of the city, decimal degrees (WGS 84), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude of the city, decimal degrees (WGS 84), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
}

/// What `Venue` compares and hashes: its strings, and its coordinates as bits.
type VenueKey<'a> = (
    &'a Option<String>,
    &'a Option<String>,
    &'a Option<String>,
    [Option<u64>; 2],
);

impl Venue {
    /// The fields compared by `==` and hashed, coordinates as bits.
    fn key(&self) -> VenueKey<'_> {
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        (
            &self.city,
            &self.country,
            &self.place,
            [bits(self.lat), bits(self.lon)],
        )
    }
}

impl PartialEq for Venue {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Venue {}

impl std::hash::Hash for Venue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// A person who took part (`parley.v1.Participant`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    /// Resolved person id; empty in a candidate.
    #[serde(default)]
    pub entity_id: String,
    /// Canonical name after resolution; the mention as written in a candidate.
    pub name: String,
    /// Code of the side the person speaks for.
    pub affiliation: Option<String>,
    /// The role the text gave ("Defense Minister").
    pub role: Option<String>,
}

/// The text an event was read from (`parley.v1.Evidence`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Evidence {
    /// Document id (`doc-...`).
    #[serde(default)]
    pub document_id: String,
    /// Document name (file name, feed guid or link).
    pub document_name: String,
    /// The sentence(s).
    pub text: String,
    /// Unicode-scalar offset of the first character in the document text.
    pub start: u32,
    /// Offset one past the last character.
    pub end: u32,
    /// Who the text attributes the claim to; `None` for the reporter's own words.
    pub attributed_to: Option<String>,
    /// Entity id or actor code of the attribution, where resolved.
    #[serde(default)]
    pub attributed_to_id: Option<String>,
}

/// One event (`parley.v1.TalksEvent`); in a candidate `event_id` is empty and
/// participants carry mentions, not ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TalksEvent {
    /// Parley's id of the real-world event; empty in a candidate.
    #[serde(default)]
    pub event_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Planned, held, ...
    pub status: EventStatus,
    /// When.
    pub date: EventDate,
    /// The sides.
    pub parties: Vec<Actor>,
    /// Hosts, mediators and brokers.
    pub mediators: Vec<Actor>,
    /// Where.
    pub venue: Venue,
    /// Who took part.
    pub participants: Vec<Participant>,
    /// Scope of a partial ceasefire or of the agenda.
    pub scope: Vec<Scope>,
    /// How talks were held.
    pub modality: Modality,
    /// Every text that reports it, one per source.
    pub evidence: Vec<Evidence>,
    /// 1 when recorded, +1 for every later change.
    #[serde(default)]
    pub version: u64,
    /// Distinct documents that report it.
    #[serde(default)]
    pub source_count: u32,
    /// True once retracted.
    #[serde(default)]
    pub retracted: bool,
    /// When a ceasefire takes effect and ends, if the text gave a range
    /// (not in `parley.v1.EventDate`; `date` is the declaration day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<EventDate>,
    /// Publication date of the report it was read from: stands in for a
    /// missing date when matching reports (not in the protobuf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_on: Option<chrono::NaiveDate>,
}

impl TalksEvent {
    /// Party codes, sorted and deduplicated: the event's identity on one side.
    pub fn party_codes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.parties.iter().map(|a| a.code.clone()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Mediator codes, sorted and deduplicated.
    pub fn mediator_codes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.mediators.iter().map(|a| a.code.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A span of text naming a person (`parley.v1.PersonMention`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersonMention {
    /// The words as written ("Rustem Umerovto").
    pub text: String,
    /// Unicode-scalar offset of the first character.
    pub start: u32,
    /// Offset one past the end.
    pub end: u32,
    /// A title or role next to the name ("Defense Minister").
    pub role: Option<String>,
    /// Code of the side the text ties the person to.
    pub affiliation: Option<String>,
    /// Id of the knowledge-base person the extractor matched, if any
    /// (a hint for the resolver; not in the protobuf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_id: Option<String>,
    /// How it was found: "kb", "name", "byline", "photo_credit", "surname" (not in the protobuf).
    #[serde(default)]
    pub source: String,
}

/// Everything read from one document (`parley.v1.CandidatesExtracted` without the ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Extraction {
    /// Candidate events, in text order.
    pub events: Vec<TalksEvent>,
    /// Person mentions, in text order.
    pub mentions: Vec<PersonMention>,
    /// Publication date used to resolve relative dates.
    pub reference_date: Option<chrono::NaiveDate>,
    /// Version of the extractor that produced it.
    pub extractor_version: String,
}
