//! The entities of the knowledge base, as handed to the extractor and the
//! resolver. Plain data with public fields: the loader guarantees that every
//! code in them refers to a known state or organisation.

use chrono::NaiveDate;

/// A sovereign state or territory, keyed by its ISO 3166-1 alpha-3 code.
///
/// Carries every surface form that can stand for the state in news text,
/// including metonyms ("the Kremlin" for Russia's government).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// ISO 3166-1 alpha-3 code ("UKR"); "XKX" for Kosovo.
    pub code: String,
    /// ISO 3166-1 alpha-2 code ("UA").
    pub alpha2: String,
    /// Usual English press name ("Iran", not "Iran (Islamic Republic of)").
    pub name: String,
    /// Other names: short forms, long forms, the ISO name ("the U.S.", "US",
    /// "America", "United States of America").
    pub aliases: Vec<String>,
    /// Capital cities, with older spellings ("Kyiv", "Kiev").
    pub capitals: Vec<String>,
    /// Seats of government used as metonyms ("the Kremlin", "Bankova").
    pub seats: Vec<String>,
    /// Adjectives and nouns for people, with plurals ("Ukrainian",
    /// "Ukrainians"); regular plurals are added by the loader.
    pub demonyms: Vec<String>,
    /// Forms shared with other states for which this state is the default
    /// reading ("Congo" is DR Congo unless the document says otherwise);
    /// the loader orders states so that it comes first for those forms.
    pub default_for: Vec<String>,
}

/// What kind of body an organisation is; the resolver uses it to type actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// Bodies of states: UN, EU, NATO, ASEAN, African Union ...
    Intergovernmental,
    /// Non-state armed groups: Hamas, Hezbollah, the Houthis, M23, RSF ...
    ArmedGroup,
    /// Government bodies below the state (ministries, armed forces, councils).
    Government,
    /// Non-governmental and humanitarian organisations: ICRC, MSF ...
    Ngo,
    /// Political parties and movements.
    Party,
    /// News organisations.
    Media,
    /// Anything else.
    Other,
}

/// An organisation that takes part in talks, ceasefires or their reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// Stable upper-case code ("HAMAS", "EU", "UN", "NATO", "M23", "HOUTHIS").
    pub code: String,
    /// Usual English name.
    pub name: String,
    /// Other names and abbreviations ("Ansar Allah", "the U.N.").
    pub aliases: Vec<String>,
    /// Member or adjective forms ("Houthi", "Houthis").
    pub demonyms: Vec<String>,
    /// What kind of body it is.
    pub kind: OrgKind,
    /// Alpha-3 code of the state it belongs to or acts in, if any.
    pub country: Option<String>,
}

/// Where a city entry comes from, which decides who wins on a shared name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CityOrigin {
    /// A TOML file: `kb/cities.toml` or a user file. Hand entries win over
    /// the gazetteer: their name and spellings are kept, and a same-named
    /// gazetteer city elsewhere ranks after them.
    #[default]
    Hand,
    /// The bundled GeoNames gazetteer (`kb/gazetteer.tsv`).
    Gazetteer,
}

/// A city: hand-listed (talks venues, datelines) or from the GeoNames
/// gazetteer (every city over 15,000 inhabitants).
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    /// Usual English name ("Sharm el-Sheikh"); GeoNames' ASCII name for a
    /// gazetteer city ("Tartus").
    pub name: String,
    /// Alpha-3 code of its state.
    pub country: String,
    /// Other spellings ("Sharm El Sheikh", "Kiev").
    pub aliases: Vec<String>,
    /// Latitude in decimal degrees (WGS 84), when known: from the hand entry,
    /// else from the GeoNames city it was matched to.
    pub lat: Option<f64>,
    /// Longitude in decimal degrees (WGS 84), when known.
    pub lon: Option<f64>,
    /// Inhabitants per GeoNames (or the hand entry), when known.
    pub population: Option<u64>,
    /// GeoNames id of the city, when it is or was matched to a GeoNames city.
    pub geonames_id: Option<u32>,
    /// Hand-listed or from the gazetteer.
    pub origin: CityOrigin,
}

impl City {
    /// Latitude and longitude together, when both are known.
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        self.lat.zip(self.lon)
    }
}

/// A person of talks and ceasefire news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// "per-" + ASCII slug of the name ("per-rustem-umerov"); stable across
    /// releases, referenced by events.
    pub id: String,
    /// Usual English press spelling.
    pub name: String,
    /// Transliterations, full names and nicknames ("Zelenskyy", "MBS").
    pub aliases: Vec<String>,
    /// Alpha-3 code of the side the person speaks for, if any.
    pub country: Option<String>,
    /// "male" or "female", when known: helps pronoun coreference.
    pub gender: Option<String>,
    /// Posts held, with validity dates.
    pub roles: Vec<Role>,
}

/// A post held by a person, valid on `[from, to)`.
///
/// The range is half-open so that a handover date belongs to the new holder
/// only: Umerov is defence minister `to = 2025-07-17` and Shmyhal
/// `from = 2025-07-17`. A missing bound is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Canonical role key (see [`crate::canonical_role`] and [`crate::ROLE_KEYS`]).
    pub title: String,
    /// Code of the state or organisation the post belongs to ("UKR", "UN").
    pub of: String,
    /// First day in post, if known.
    pub from: Option<NaiveDate>,
    /// First day no longer in post, if the post ended.
    pub to: Option<NaiveDate>,
}

impl Role {
    /// Whether the post was held on `day` (`from <= day < to`).
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.from.is_none_or(|f| f <= day) && self.to.is_none_or(|t| day < t)
    }
}
