//! Parley's knowledge base: states, organisations, cities and people of peace
//! talks and ceasefire news, with the surface forms that name them.
//!
//! The data ships inside the binary (`kb/*.toml`, compiled in with
//! `include_str!`) and users extend or correct it with their own TOML files
//! in the same format (see the crate README). Loading checks every file and
//! refuses a malformed one with its file, line and reason, so a typo in an
//! extension file stops start-up instead of silently dropping an actor.
//!
//! Owns: the bundled TOML data, its loader and the name normaliser. Must
//! never import another Parley crate: it is data.
//!
//! ```
//! use parley_kb::KnowledgeBase;
//! let kb = KnowledgeBase::bundled().unwrap();
//! let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 15).unwrap();
//! let holders = kb.holders("Defence Minister", "UKR", day);
//! assert_eq!(holders[0].name, "Rustem Umerov");
//! ```

mod error;
mod gazetteer;
mod load;
mod model;
mod normalize;
mod roles;
mod rules;

use foldhash::HashMap;
use std::path::Path;

use chrono::NaiveDate;

pub use error::KbError;
pub use gazetteer::{COLLISION_MIN_POPULATION, NAMESAKE_MIN_POPULATION};
pub use model::{City, CityOrigin, OrgKind, Organisation, Person, Role, State};
pub use normalize::{normalize, normalize_into};
pub use roles::{ROLE_KEYS, canonical_role};
pub use rules::{CueList, Origin, PATTERN_SIZE_LIMIT, Pattern, Rules, Table};

use load::Builder;
use normalize::index_key;

/// The bundled files, in load order: later files may reference codes of
/// earlier ones (and, since references are checked last, of later ones).
const BUNDLED: &[(&str, &str)] = &[
    ("kb/states.toml", include_str!("../kb/states.toml")),
    (
        "kb/organisations.toml",
        include_str!("../kb/organisations.toml"),
    ),
    ("kb/cities.toml", include_str!("../kb/cities.toml")),
    ("kb/people.toml", include_str!("../kb/people.toml")),
    (
        "kb/rules/patterns.toml",
        include_str!("../kb/rules/patterns.toml"),
    ),
    ("kb/rules/cues.toml", include_str!("../kb/rules/cues.toml")),
    (
        "kb/rules/names.toml",
        include_str!("../kb/rules/names.toml"),
    ),
    (
        "kb/rules/tables.toml",
        include_str!("../kb/rules/tables.toml"),
    ),
];

/// What a surface form points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A state, by alpha-3 code.
    State(String),
    /// An organisation, by code.
    Organisation(String),
    /// A city, by name and state code.
    City {
        /// The city's canonical name.
        name: String,
        /// Alpha-3 code of its state.
        country: String,
    },
    /// A person, by id.
    Person(String),
}

/// Which field a surface form came from: lets the resolver tell a capital
/// used as a metonym ("Kyiv said") from the state's own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// The entity's canonical name.
    Name,
    /// One of its aliases.
    Alias,
    /// A capital of the state.
    Capital,
    /// A seat of government of the state ("the Kremlin").
    Seat,
    /// A demonym of a state or organisation ("Ukrainian", "Houthi").
    Demonym,
}

/// One meaning of a surface form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hit {
    /// What the form names.
    pub target: Target,
    /// Through which field.
    pub via: Via,
}

/// What the index holds for one surface form.
#[derive(Debug, Clone, Default)]
struct Forms {
    /// Every meaning, in load order.
    hits: Vec<Hit>,
    /// Positions in `cities` of the cities carrying the form, ranked
    /// (hand-listed first in file order, then gazetteer cities by population).
    places: Vec<u32>,
}

/// Lookup tables derived from the public fields; rebuilt by
/// [`KnowledgeBase::reindex`].
#[derive(Debug, Clone, Default)]
struct Index {
    states: HashMap<String, usize>,
    organisations: HashMap<String, usize>,
    people: HashMap<String, usize>,
    /// Index key of a surface form -> its meanings and the cities carrying it.
    surface: HashMap<String, Forms>,
}

/// Everything Parley knows about the actors and places of peace talks.
///
/// Fields are public for reading and iteration. After changing them directly
/// call [`KnowledgeBase::reindex`]; lookups never return a wrong entry
/// (each hit is checked against the fields) but may miss new ones until then.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    /// Every ISO 3166-1 state plus Kosovo, completed by `states.toml`.
    pub states: Vec<State>,
    /// Organisations that take part in talks and ceasefires.
    pub organisations: Vec<Organisation>,
    /// Cities: the hand-listed ones (talks venues, datelines) first, then
    /// the GeoNames gazetteer's, most populous first.
    pub cities: Vec<City>,
    /// People of talks and ceasefire news.
    pub people: Vec<Person>,
    /// The extractor's rules: cue words, expressions and word tables
    /// (`kb/rules/*.toml`, see [`Rules`]).
    pub rules: Rules,
    index: Index,
}

impl KnowledgeBase {
    /// Loads the knowledge base compiled into the binary: all ISO states, the
    /// shipped `kb/*.toml` files and the GeoNames gazetteer.
    pub fn bundled() -> Result<Self, KbError> {
        let mut builder = Builder::with_iso_states();
        builder.defining_rules = true;
        for (file, text) in BUNDLED {
            builder.add_file(file, text)?;
        }
        builder.defining_rules = false;
        builder.add_gazetteer(gazetteer::FILE, gazetteer::TSV, gazetteer::STOP)?;
        builder.finish()
    }

    /// Loads the bundled knowledge base, then every `*.toml` file of
    /// `extra_dir` in file-name order (not recursive). Later files extend
    /// entries with the same key (aliases append, names and dates win) and
    /// add new ones; references are checked across all files. The gazetteer
    /// is merged last, so user cities, organisations and people count as
    /// hand entries against it.
    pub fn load(extra_dir: Option<&Path>) -> Result<Self, KbError> {
        let mut builder = Builder::with_iso_states();
        builder.defining_rules = true;
        for (file, text) in BUNDLED {
            builder.add_file(file, text)?;
        }
        builder.defining_rules = false;
        if let Some(dir) = extra_dir {
            let io = |source| KbError::Io {
                path: dir.to_path_buf(),
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(|source| KbError::Io {
                    path: path.clone(),
                    source,
                })?;
                builder.add_file(&path.display().to_string(), &text)?;
            }
        }
        builder.add_gazetteer(gazetteer::FILE, gazetteer::TSV, gazetteer::STOP)?;
        builder.finish()
    }

    /// Parses one knowledge-base file on its own. The result holds only what
    /// the file defines (no ISO states), ready to [`merge`](Self::merge);
    /// its codes are checked against ISO 3166-1, the bundled knowledge base
    /// and the file itself.
    pub fn from_toml_str(file_name: &str, text: &str) -> Result<Self, KbError> {
        let mut builder = Builder::empty(bundled_cached());
        builder.add_file(file_name, text)?;
        builder.finish()
    }

    /// Merges `other` into `self`, `other` winning: entries with the same key
    /// (state code, organisation code, city name and state, person id) get
    /// `other`'s name, kind, side and gender; aliases, capitals, seats and
    /// demonyms are appended; a role with the same title, `of` and start
    /// replaces the old one, other roles are added.
    pub fn merge(&mut self, other: KnowledgeBase) {
        for s in other.states {
            match self.states.iter_mut().find(|x| x.code == s.code) {
                Some(old) => load::merge_state(old, s),
                None => self.states.push(s),
            }
        }
        for o in other.organisations {
            match self.organisations.iter_mut().find(|x| x.code == o.code) {
                Some(old) => load::merge_org(old, o),
                None => self.organisations.push(o),
            }
        }
        load::merge_cities(&mut self.cities, other.cities);
        self.rules.merge(other.rules);
        for p in other.people {
            match self.people.iter_mut().find(|x| x.id == p.id) {
                Some(old) => load::merge_person(old, p),
                None => self.people.push(p),
            }
        }
        for s in &mut self.states {
            load::with_plurals(&mut s.demonyms);
        }
        for o in &mut self.organisations {
            load::with_plurals(&mut o.demonyms);
        }
        load::put_defaults_first(&mut self.states);
        self.reindex();
    }

    /// A copy without the gazetteer's cities (hand-listed cities kept): cheap
    /// to make and to keep, for a component that reads states, organisations,
    /// people and rules but has its own dictionary of places.
    pub fn without_gazetteer(&self) -> KnowledgeBase {
        let mut kb = KnowledgeBase {
            states: self.states.clone(),
            organisations: self.organisations.clone(),
            cities: self
                .cities
                .iter()
                .filter(|c| c.origin == CityOrigin::Hand)
                .cloned()
                .collect(),
            people: self.people.clone(),
            rules: self.rules.clone(),
            index: Index::default(),
        };
        kb.reindex();
        kb
    }

    /// Rebuilds the lookup tables after the public fields were changed.
    pub fn reindex(&mut self) {
        let mut index = Index {
            states: load::positions(self.states.iter().map(|s| s.code.as_str())),
            organisations: load::positions(self.organisations.iter().map(|o| o.code.as_str())),
            people: load::positions(self.people.iter().map(|p| p.id.as_str())),
            ..Index::default()
        };
        for (i, s) in self.states.iter().enumerate() {
            index.states.entry(s.alpha2.clone()).or_insert(i);
        }
        let city_forms: usize = self.cities.iter().map(|c| 1 + c.aliases.len()).sum();
        index
            .surface
            .reserve(city_forms + 4 * (self.states.len() + self.people.len()));
        let mut add = |form: &str, target: &Target, via: Via| {
            let key = index_key(form);
            if key.is_empty() {
                return;
            }
            let hits = &mut index.surface.entry(key).or_default().hits;
            if !hits.iter().any(|h| h.target == *target) {
                hits.push(Hit {
                    target: target.clone(),
                    via,
                });
            }
        };
        for s in &self.states {
            let t = Target::State(s.code.clone());
            add(&s.name, &t, Via::Name);
            s.aliases.iter().for_each(|a| add(a, &t, Via::Alias));
            s.seats.iter().for_each(|a| add(a, &t, Via::Seat));
            s.capitals.iter().for_each(|a| add(a, &t, Via::Capital));
            s.demonyms.iter().for_each(|a| add(a, &t, Via::Demonym));
        }
        for o in &self.organisations {
            let t = Target::Organisation(o.code.clone());
            add(&o.name, &t, Via::Name);
            o.aliases.iter().for_each(|a| add(a, &t, Via::Alias));
            o.demonyms.iter().for_each(|a| add(a, &t, Via::Demonym));
        }
        for p in &self.people {
            let t = Target::Person(p.id.clone());
            add(&p.name, &t, Via::Name);
            p.aliases.iter().for_each(|a| add(a, &t, Via::Alias));
        }
        // Cities last: a city's surface hit follows the states, organisations
        // and people of the same form.
        for (i, c) in self.cities.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let t = Target::City {
                name: c.name.clone(),
                country: c.country.clone(),
            };
            for (n, form) in std::iter::once(&c.name).chain(&c.aliases).enumerate() {
                let key = index_key(form);
                if key.is_empty() {
                    continue;
                }
                let forms = index.surface.entry(key).or_default();
                if forms.places.contains(&i) {
                    continue;
                }
                forms.places.push(i);
                if !forms.hits.iter().any(|h| h.target == t) {
                    let via = if n == 0 { Via::Name } else { Via::Alias };
                    forms.hits.push(Hit {
                        target: t.clone(),
                        via,
                    });
                }
            }
        }
        self.index = index;
    }

    /// The state with this alpha-3 (or alpha-2) code, case-insensitive.
    pub fn state(&self, code: &str) -> Option<&State> {
        let code = code.trim().to_ascii_uppercase();
        let s = self.states.get(*self.index.states.get(&code)?)?;
        (s.code == code || s.alpha2 == code).then_some(s)
    }

    /// The organisation with this code, case-insensitive.
    pub fn organisation(&self, code: &str) -> Option<&Organisation> {
        let code = code.trim().to_ascii_uppercase();
        let o = self
            .organisations
            .get(*self.index.organisations.get(&code)?)?;
        (o.code == code).then_some(o)
    }

    /// Display name of a state or organisation code, for messages and events.
    pub fn actor_name(&self, code: &str) -> Option<&str> {
        self.state(code)
            .map(|s| s.name.as_str())
            .or_else(|| self.organisation(code).map(|o| o.name.as_str()))
    }

    /// The city with this name or alias, ignoring case, accents, punctuation
    /// and a leading "the": the first of [`places`](Self::places), i.e. a
    /// hand-listed city before any gazetteer city, else the most populous.
    pub fn city(&self, name_or_alias: &str) -> Option<&City> {
        self.places(name_or_alias).into_iter().next()
    }

    /// Every city this name or alias may mean, ranked: hand-listed cities
    /// first (file order), then gazetteer cities by population, largest
    /// first. "Tripoli" gives Tripoli, Libya and Tripoli, Lebanon; each
    /// [`City`] carries its state, coordinates and population, so a caller
    /// can choose by the document (see [`place`](Self::place)).
    pub fn places(&self, name_or_alias: &str) -> Vec<&City> {
        let key = index_key(name_or_alias);
        let Some(forms) = self.index.surface.get(&key) else {
            return Vec::new();
        };
        forms
            .places
            .iter()
            .filter_map(|&i| self.cities.get(i as usize))
            .filter(|c| {
                // Guard against fields changed without `reindex`.
                index_key(&c.name) == key || c.aliases.iter().any(|a| index_key(a) == key)
            })
            .collect()
    }

    /// The city a name means in a document that names the states
    /// `document_countries` (alpha-3 codes): the first of
    /// [`places`](Self::places) in one of those states, else the first
    /// (a hand-listed city, else the most populous). "Tripoli" in a report
    /// that names Lebanon is Tripoli, Lebanon; with no state named, Libya's.
    pub fn place<S: AsRef<str>>(
        &self,
        name_or_alias: &str,
        document_countries: &[S],
    ) -> Option<&City> {
        let candidates = self.places(name_or_alias);
        candidates
            .iter()
            .find(|c| document_countries.iter().any(|d| d.as_ref() == c.country))
            .or(candidates.first())
            .copied()
    }

    /// The city with this name (or alias) in the state `country` (alpha-3):
    /// how the extractor finds the coordinates of a venue it has chosen.
    pub fn city_in(&self, name_or_alias: &str, country: &str) -> Option<&City> {
        self.places(name_or_alias)
            .into_iter()
            .find(|c| c.country == country)
    }

    /// The person with this id ("per-rustem-umerov").
    pub fn person(&self, id: &str) -> Option<&Person> {
        let p = self.people.get(*self.index.people.get(id)?)?;
        (p.id == id).then_some(p)
    }

    /// Everything a surface form may name: state names, aliases, capitals,
    /// seats and demonyms, organisation names, aliases and demonyms, city
    /// names and aliases, person names and aliases. The form is compared
    /// after [`normalize`] and without a leading "the", so "the Kremlin",
    /// "Kremlin" and "KREMLIN" all give Russia via [`Via::Seat`].
    pub fn lookup(&self, surface: &str) -> &[Hit] {
        self.index
            .surface
            .get(&index_key(surface))
            .map_or(&[], |f| f.hits.as_slice())
    }

    /// The meaning of a shared surface form ("Congo", "Congolese") in a
    /// document, by the rule documented in the README ("Shared forms"):
    ///
    /// 1. each meaning of `surface` counts as named by the document when
    ///    `context` contains one of its unambiguous forms (a name, alias,
    ///    capital or seat that means only it: "Kinshasa", "DRC",
    ///    "Brazzaville"), longest forms first so that "Democratic Republic of
    ///    the Congo" is not also read as "Republic of the Congo";
    /// 2. exactly one meaning named: that one; several named: `None` (the
    ///    document is about both, the mention alone cannot tell);
    /// 3. none named: the default reading, which is the first meaning
    ///    ([`lookup`](Self::lookup) order, i.e. file order).
    ///
    /// Only meanings of the same kind as the default compete (a capital that
    /// is also a city is not a rival of its state).
    pub fn disambiguate(&self, surface: &str, context: &str) -> Option<&Target> {
        let hits = self.lookup(surface);
        let first = &hits.first()?.target;
        let same_kind = |t: &Target| std::mem::discriminant(t) == std::mem::discriminant(first);
        let rivals: Vec<&Target> = hits
            .iter()
            .map(|h| &h.target)
            .filter(|t| same_kind(t))
            .collect();
        if rivals.len() == 1 {
            return Some(first);
        }
        // Unambiguous forms of every rival, longest first.
        let mut forms: Vec<(String, usize)> = Vec::new();
        for (i, target) in rivals.iter().enumerate() {
            for form in self.forms_of(target) {
                let key = index_key(form);
                let only_this = self
                    .lookup(&key)
                    .iter()
                    .filter(|h| same_kind(&h.target))
                    .all(|h| &h.target == *target);
                if !key.is_empty() && only_this {
                    forms.push((key, i));
                }
            }
        }
        forms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.cmp(b)));
        forms.dedup();
        // Word-bounded search in the normalised context; a found form is
        // blanked so that a shorter form inside it is not counted again.
        let mut text = format!(" {} ", normalize(context));
        let mut named = vec![false; rivals.len()];
        for (form, i) in &forms {
            let needle = format!(" {form} ");
            while let Some(at) = text.find(&needle) {
                named[*i] = true;
                let blank = " ".repeat(needle.len());
                text.replace_range(at..at + needle.len(), &blank);
            }
        }
        match named.iter().filter(|n| **n).count() {
            0 => Some(first),
            1 => named.iter().position(|n| *n).map(|i| rivals[i]),
            _ => None,
        }
    }

    /// Names, aliases, capitals and seats of a target (not demonyms: those
    /// are the forms most often shared).
    fn forms_of(&self, target: &Target) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        match target {
            Target::State(code) => {
                if let Some(s) = self.state(code) {
                    out.push(&s.name);
                    out.extend(s.aliases.iter().map(String::as_str));
                    out.extend(s.capitals.iter().map(String::as_str));
                    out.extend(s.seats.iter().map(String::as_str));
                }
            }
            Target::Organisation(code) => {
                if let Some(o) = self.organisation(code) {
                    out.push(&o.name);
                    out.extend(o.aliases.iter().map(String::as_str));
                }
            }
            Target::City { name, country } => {
                if let Some(c) = self
                    .cities
                    .iter()
                    .find(|c| &c.name == name && &c.country == country)
                {
                    out.push(&c.name);
                    out.extend(c.aliases.iter().map(String::as_str));
                }
            }
            Target::Person(id) => {
                if let Some(p) = self.person(id) {
                    out.push(&p.name);
                    out.extend(p.aliases.iter().map(String::as_str));
                }
            }
        }
        out
    }

    /// Every indexed surface form (normalised, without leading "the") with
    /// its meanings: the dictionary an extractor builds its matcher from.
    pub fn surface_forms(&self) -> impl Iterator<Item = (&str, &[Hit])> {
        self.index
            .surface
            .iter()
            .map(|(k, f)| (k.as_str(), f.hits.as_slice()))
    }

    /// People holding `role` of `of` on day `on`. `role` is a role key or any
    /// wording [`canonical_role`] understands ("Defense Minister").
    pub fn holders(&self, role: &str, of: &str, on: NaiveDate) -> Vec<&Person> {
        let Some(key) = roles::role_key(role) else {
            return Vec::new();
        };
        let of = of.trim().to_ascii_uppercase();
        self.people
            .iter()
            .filter(|p| {
                p.roles
                    .iter()
                    .any(|r| r.title == key && r.of == of && r.valid_on(on))
            })
            .collect()
    }

    /// The roles `person` held on day `on`.
    pub fn roles_on<'a>(
        &'a self,
        person: &'a Person,
        on: NaiveDate,
    ) -> impl Iterator<Item = &'a Role> {
        person.roles.iter().filter(move |r| r.valid_on(on))
    }
}

/// The bundled knowledge base, built once, that single files are checked
/// against. `None` if the bundled data were broken (which `bundled()`
/// reports by itself); single files are then checked against ISO codes only.
fn bundled_cached() -> Option<&'static KnowledgeBase> {
    static BUNDLED_KB: std::sync::OnceLock<Option<KnowledgeBase>> = std::sync::OnceLock::new();
    BUNDLED_KB
        .get_or_init(|| KnowledgeBase::bundled().ok())
        .as_ref()
}
