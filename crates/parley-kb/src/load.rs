//! Reading knowledge-base TOML files: the documented file shape, checks with
//! file and line, and merging of several files in order.
//!
//! Loading is two-pass: every file is read and merged first, then every
//! reference (country codes, role `of` codes) is checked against all states
//! and organisations, so a user file may reference an organisation defined in
//! another user file.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use crate::model::{City, CityOrigin, OrgKind, Organisation, Person, Role, State};
use crate::normalize::{index_key, slug};
use crate::roles::role_key;
use crate::rules::{RawCues, RawPattern, RawTable, RuleSections, add_sections};
use crate::{KbError, KnowledgeBase};

/// One knowledge-base file. Every section is optional, so a user file may
/// mix states, organisations, cities and people.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    state: Vec<Spanned<RawState>>,
    #[serde(default)]
    organisation: Vec<Spanned<RawOrg>>,
    #[serde(default)]
    city: Vec<Spanned<RawCity>>,
    #[serde(default)]
    person: Vec<Spanned<RawPerson>>,
    #[serde(default)]
    cues: Vec<Spanned<RawCues>>,
    #[serde(default)]
    pattern: Vec<Spanned<RawPattern>>,
    #[serde(default)]
    table: Vec<Spanned<RawTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    code: String,
    alpha2: Option<String>,
    name: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    capitals: Vec<String>,
    #[serde(default)]
    seats: Vec<String>,
    #[serde(default)]
    demonyms: Vec<String>,
    #[serde(default)]
    default_for: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrg {
    code: String,
    name: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    demonyms: Vec<String>,
    kind: Option<OrgKind>,
    country: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCity {
    name: String,
    country: Spanned<String>,
    #[serde(default)]
    aliases: Vec<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    population: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerson {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    country: Option<Spanned<String>>,
    gender: Option<Spanned<String>>,
    #[serde(default)]
    roles: Vec<Spanned<RawRole>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    title: Spanned<String>,
    of: Spanned<String>,
    from: Option<Spanned<toml::Value>>,
    to: Option<Spanned<toml::Value>>,
}

/// A code that must name a known state (or, for roles, state or organisation),
/// checked once every file has been read.
struct PendingRef {
    file: String,
    line: usize,
    code: String,
    what: &'static str,
    org_allowed: bool,
}

/// Accumulates files into a knowledge base, then checks references.
pub(crate) struct Builder {
    kb: KnowledgeBase,
    refs: Vec<PendingRef>,
    /// Knowledge base that single-file loading refers to: its codes are
    /// known, and entries that only extend one of its entries (no `name`)
    /// take their name and kind from it.
    external: Option<&'static KnowledgeBase>,
    /// Whether the files being read may define new rule names (the bundled
    /// ones) or only extend existing ones (users' files).
    pub(crate) defining_rules: bool,
}

/// Byte offsets of line starts, to turn TOML spans into line numbers
/// without rescanning the file for every entry.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    /// 1-based (line, column in characters) of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |t| t.chars().count())
            + 1;
        (line, column)
    }

    fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

/// The file being read: its name for errors and its line table.
struct FileCx<'a> {
    file: &'a str,
    lines: Lines<'a>,
}

impl FileCx<'_> {
    /// 1-based line of a span's start.
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.lines.line(span.start)
    }

    /// A content error at `line` of this file.
    fn invalid(&self, line: usize, reason: String) -> KbError {
        KbError::Invalid {
            file: self.file.to_string(),
            line: Some(line),
            reason,
        }
    }
}

/// The ISO 3166-1 states, plus Kosovo (XK/XKX, user-assigned but
/// universally used), as bare [`State`]s to be completed by `states.toml`.
pub(crate) fn iso_states() -> Vec<State> {
    let mut states: Vec<State> = rust_iso3166::ALL
        .iter()
        .map(|c| State {
            code: c.alpha3.to_string(),
            alpha2: c.alpha2.to_string(),
            name: c.name.to_string(),
            aliases: Vec::new(),
            capitals: Vec::new(),
            seats: Vec::new(),
            demonyms: Vec::new(),
            default_for: Vec::new(),
        })
        .collect();
    states.push(State {
        code: "XKX".into(),
        alpha2: "XK".into(),
        name: "Kosovo".into(),
        aliases: Vec::new(),
        capitals: Vec::new(),
        seats: Vec::new(),
        demonyms: Vec::new(),
        default_for: Vec::new(),
    });
    states
}

/// Appends the items of `extra` missing from `list` (compared after
/// normalisation), keeping first-seen order.
pub(crate) fn append_unique(list: &mut Vec<String>, extra: impl IntoIterator<Item = String>) {
    let mut extra = extra.into_iter().peekable();
    if extra.peek().is_none() {
        return;
    }
    let mut keys: HashSet<String> = list.iter().map(|x| index_key(x)).collect();
    for item in extra {
        let item = item.trim().to_string();
        if !item.is_empty() && keys.insert(index_key(&item)) {
            list.push(item);
        }
    }
}

/// Adds regular English plurals of demonyms ("Ukrainian" -> "Ukrainians").
/// Words ending in -ese, -sh, -ch, -s, -x, -z, -y, -be or -ic are left alone
/// ("Chinese", "British", "Dutch", "Swiss", "Burkinabe", "Icelandic"); such plurals, when
/// they exist, are listed in the data ("Czechs").
pub(crate) fn with_plurals(demonyms: &mut Vec<String>) {
    let plurals: Vec<String> = demonyms
        .iter()
        .filter(|d| {
            let l = d.to_lowercase();
            l.chars().last().is_some_and(|c| c.is_ascii_alphabetic())
                && !["ese", "sh", "ch", "s", "x", "z", "y", "be", "ic"]
                    .iter()
                    .any(|suffix| l.ends_with(suffix))
        })
        .map(|d| format!("{d}s"))
        .collect();
    append_unique(demonyms, plurals);
}

/// Merges `new` into `old`: later names win, lists are appended.
pub(crate) fn merge_state(old: &mut State, new: State) {
    if !new.name.is_empty() && new.name != old.name {
        // Keep the replaced name reachable as an alias.
        let replaced = std::mem::replace(&mut old.name, new.name);
        append_unique(&mut old.aliases, [replaced]);
    }
    if !new.alpha2.is_empty() {
        old.alpha2 = new.alpha2;
    }
    append_unique(&mut old.aliases, new.aliases);
    append_unique(&mut old.capitals, new.capitals);
    append_unique(&mut old.seats, new.seats);
    append_unique(&mut old.demonyms, new.demonyms);
    append_unique(&mut old.default_for, new.default_for);
}

/// Moves every state with `default_for` forms in front of the first other
/// state sharing one of them, so that it is the first meaning of the form
/// everywhere states are read in order (lookups, extractor dictionaries).
pub(crate) fn put_defaults_first(states: &mut Vec<State>) {
    let keys = |s: &State| -> HashSet<String> {
        std::iter::once(&s.name)
            .chain(&s.aliases)
            .chain(&s.capitals)
            .chain(&s.seats)
            .chain(&s.demonyms)
            .map(|f| index_key(f))
            .collect()
    };
    let with_defaults: Vec<String> = states
        .iter()
        .filter(|s| !s.default_for.is_empty())
        .map(|s| s.code.clone())
        .collect();
    for code in with_defaults {
        let Some(j) = states.iter().position(|s| s.code == code) else {
            continue;
        };
        let wanted: HashSet<String> = states[j].default_for.iter().map(|f| index_key(f)).collect();
        let earlier = states[..j].iter().position(|s| {
            s.default_for
                .iter()
                .all(|f| !wanted.contains(&index_key(f)))
                && !keys(s).is_disjoint(&wanted)
        });
        if let Some(k) = earlier {
            let moved = states.remove(j);
            states.insert(k, moved);
        }
    }
}

/// Merges `new` into `old`: later name, kind and country win, lists append.
pub(crate) fn merge_org(old: &mut Organisation, new: Organisation) {
    if !new.name.is_empty() && new.name != old.name {
        let replaced = std::mem::replace(&mut old.name, new.name);
        append_unique(&mut old.aliases, [replaced]);
    }
    old.kind = new.kind;
    if new.country.is_some() {
        old.country = new.country;
    }
    append_unique(&mut old.aliases, new.aliases);
    append_unique(&mut old.demonyms, new.demonyms);
}

/// Merges `new` into `old`: later name, side and gender win, aliases append,
/// a role with the same title, `of` and start replaces the old one (so a
/// user file can set the end date of a post) and other roles are added.
pub(crate) fn merge_person(old: &mut Person, new: Person) {
    if !new.name.is_empty() && new.name != old.name {
        let replaced = std::mem::replace(&mut old.name, new.name);
        append_unique(&mut old.aliases, [replaced]);
    }
    if new.country.is_some() {
        old.country = new.country;
    }
    if new.gender.is_some() {
        old.gender = new.gender;
    }
    append_unique(&mut old.aliases, new.aliases);
    for role in new.roles {
        match old
            .roles
            .iter_mut()
            .find(|r| r.title == role.title && r.of == role.of && r.from == role.from)
        {
            Some(existing) => *existing = role,
            None => old.roles.push(role),
        }
    }
}

/// Merges cities into a list: a city with the same name (or alias) in the
/// same state as a listed one extends it (aliases append; coordinates and
/// population given by the later entry win; a hand entry makes it a hand
/// city), any other is appended. Hand cities stay before gazetteer cities.
pub(crate) fn merge_cities(cities: &mut Vec<City>, new: impl IntoIterator<Item = City>) {
    // (normalised name or alias, state) -> position, built once per call.
    let mut keys: HashMap<(String, String), usize> = HashMap::new();
    let add_keys = |keys: &mut HashMap<(String, String), usize>, c: &City, i: usize| {
        for form in std::iter::once(&c.name).chain(&c.aliases) {
            keys.entry((index_key(form), c.country.clone()))
                .or_insert(i);
        }
    };
    for (i, c) in cities.iter().enumerate() {
        add_keys(&mut keys, c, i);
    }
    for city in new {
        let key = (index_key(&city.name), city.country.clone());
        match keys.get(&key) {
            Some(&i) => {
                let old = &mut cities[i];
                append_unique(&mut old.aliases, city.aliases);
                if city.lat.is_some() && city.lon.is_some() {
                    old.lat = city.lat;
                    old.lon = city.lon;
                }
                if city.population.is_some() {
                    old.population = city.population;
                }
                if city.origin == CityOrigin::Hand {
                    old.origin = CityOrigin::Hand;
                }
                let merged = cities[i].clone();
                add_keys(&mut keys, &merged, i);
            }
            None => {
                add_keys(&mut keys, &city, cities.len());
                cities.push(city);
            }
        }
    }
    // Stable: file order within each origin.
    cities.sort_by_key(|c| c.origin == CityOrigin::Gazetteer);
}

fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Builder {
    /// The state of the external knowledge base with this alpha-3 code.
    fn external_state(&self, code: &str) -> Option<&'static State> {
        let external: Option<&'static KnowledgeBase> = self.external;
        external
            .and_then(|kb| kb.state(code))
            .filter(|s| s.code == code)
    }

    /// A builder that starts from the ISO states.
    pub(crate) fn with_iso_states() -> Self {
        Builder {
            kb: KnowledgeBase {
                states: iso_states(),
                ..KnowledgeBase::default()
            },
            refs: Vec::new(),
            external: None,
            defining_rules: false,
        }
    }

    /// An empty builder whose references may also point at `external`.
    pub(crate) fn empty(external: Option<&'static KnowledgeBase>) -> Self {
        Builder {
            kb: KnowledgeBase::default(),
            refs: Vec::new(),
            external,
            defining_rules: false,
        }
    }

    /// Parses one file and merges it into what was read before.
    pub(crate) fn add_file(&mut self, file: &str, text: &str) -> Result<(), KbError> {
        let cx = FileCx {
            file,
            lines: Lines::new(text),
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| cx.lines.line_col(s.start));
            KbError::Parse {
                file: file.to_string(),
                line,
                column,
                reason: e.message().trim().to_string(),
            }
        })?;
        self.add_states(&cx, raw.state)?;
        self.add_organisations(&cx, raw.organisation)?;
        self.add_cities(&cx, raw.city)?;
        self.add_people(&cx, raw.person)?;
        let sections = RuleSections {
            cues: raw.cues,
            patterns: raw.pattern,
            tables: raw.table,
        };
        add_sections(
            &mut self.kb.rules,
            self.external.map(|kb| &kb.rules),
            self.defining_rules,
            file,
            sections,
            &|offset| cx.lines.line(offset),
            &|line, reason| cx.invalid(line, reason),
        )
    }

    /// Merges `[[state]]` entries: known codes are completed, new ones need ISO basics.
    fn add_states(
        &mut self,
        cx: &FileCx<'_>,
        entries: Vec<Spanned<RawState>>,
    ) -> Result<(), KbError> {
        let mut seen = HashSet::new();
        for entry in entries {
            let line = cx.line(entry.span());
            let s = entry.into_inner();
            let code = s.code.trim().to_string();
            if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(cx.invalid(
                    line,
                    format!("state code {code:?} is not an upper-case alpha-3 code"),
                ));
            }
            if !seen.insert(code.clone()) {
                return Err(cx.invalid(line, format!("state {code} listed twice in this file")));
            }
            if let Some(a2) = &s.alpha2
                && (a2.len() != 2 || !a2.chars().all(|c| c.is_ascii_uppercase()))
            {
                return Err(
                    cx.invalid(line, format!("alpha2 {a2:?} is not two upper-case letters"))
                );
            }
            let new = State {
                code: code.clone(),
                alpha2: s.alpha2.unwrap_or_default(),
                name: s.name.unwrap_or_default(),
                aliases: s.aliases,
                capitals: s.capitals,
                seats: s.seats,
                demonyms: s.demonyms,
                default_for: s.default_for,
            };
            let known = self.external_state(&code);
            match self.kb.states.iter_mut().find(|x| x.code == code) {
                Some(old) => merge_state(old, new),
                None if known.is_some() || is_iso_alpha3(&code) => {
                    // Known elsewhere (bundled or ISO): start from its name
                    // and alpha-2 so that merging keeps them.
                    let iso = rust_iso3166::from_alpha3(&code);
                    let mut base = State {
                        code: code.clone(),
                        alpha2: known
                            .map(|s| s.alpha2.clone())
                            .or(iso.map(|c| c.alpha2.to_string()))
                            .unwrap_or_default(),
                        name: known
                            .map(|s| s.name.clone())
                            .or(iso.map(|c| c.name.to_string()))
                            .unwrap_or_default(),
                        aliases: vec![],
                        capitals: vec![],
                        seats: vec![],
                        demonyms: vec![],
                        default_for: vec![],
                    };
                    merge_state(&mut base, new);
                    self.kb.states.push(base);
                }
                None => {
                    if new.alpha2.is_empty() || new.name.is_empty() {
                        return Err(cx.invalid(
                            line,
                            format!(
                                "state {code} is not in ISO 3166-1: give it `alpha2` and `name`"
                            ),
                        ));
                    }
                    self.kb.states.push(new);
                }
            }
        }

        Ok(())
    }

    /// Merges `[[organisation]]` entries; references are checked in `finish`.
    fn add_organisations(
        &mut self,
        cx: &FileCx<'_>,
        entries: Vec<Spanned<RawOrg>>,
    ) -> Result<(), KbError> {
        let mut seen = HashSet::new();
        for entry in entries {
            let line = cx.line(entry.span());
            let o = entry.into_inner();
            let code = o.code.trim().to_string();
            if !is_code(&code) {
                return Err(cx.invalid(
                    line,
                    format!(
                        "organisation code {code:?} must be upper-case letters, digits, '_' or '-'"
                    ),
                ));
            }
            if !seen.insert(code.clone()) {
                return Err(cx.invalid(
                    line,
                    format!("organisation {code} listed twice in this file"),
                ));
            }
            if let Some(c) = &o.country {
                self.refs.push(PendingRef {
                    file: cx.file.to_string(),
                    line: cx.line(c.span()),
                    code: c.get_ref().clone(),
                    what: "organisation country",
                    org_allowed: false,
                });
            }
            let existing = self.kb.organisations.iter_mut().find(|x| x.code == code);
            match existing {
                Some(old) => {
                    let new = Organisation {
                        code,
                        name: o.name.unwrap_or_default(),
                        aliases: o.aliases,
                        demonyms: o.demonyms,
                        kind: o.kind.unwrap_or(old.kind),
                        country: o.country.map(|c| c.into_inner()),
                    };
                    merge_org(old, new);
                }
                None => {
                    let known = self.external.and_then(|kb| kb.organisation(&code));
                    let name = o.name.or(known.map(|k| k.name.clone()));
                    let kind = o.kind.or(known.map(|k| k.kind));
                    let (Some(name), Some(kind)) = (name, kind) else {
                        return Err(cx.invalid(
                            line,
                            format!("new organisation {code} needs `name` and `kind`"),
                        ));
                    };
                    self.kb.organisations.push(Organisation {
                        code,
                        name,
                        aliases: o.aliases,
                        demonyms: o.demonyms,
                        kind,
                        country: o.country.map(|c| c.into_inner()),
                    });
                }
            }
        }

        Ok(())
    }

    /// Merges `[[city]]` entries; the state code is checked in `finish`.
    fn add_cities(
        &mut self,
        cx: &FileCx<'_>,
        entries: Vec<Spanned<RawCity>>,
    ) -> Result<(), KbError> {
        let mut seen = HashSet::new();
        let mut new_cities = Vec::with_capacity(entries.len());
        for entry in entries {
            let line = cx.line(entry.span());
            let c = entry.into_inner();
            if c.name.trim().is_empty() {
                return Err(cx.invalid(line, "city with an empty name".into()));
            }
            let country = c.country.get_ref().clone();
            if !seen.insert((index_key(&c.name), country.clone())) {
                return Err(cx.invalid(line, format!("city {} listed twice in this file", c.name)));
            }
            match (c.lat, c.lon) {
                (Some(lat), Some(lon)) => crate::gazetteer::check_coordinates(lat, lon)
                    .map_err(|reason| cx.invalid(line, format!("city {}: {reason}", c.name)))?,
                (None, None) => {}
                _ => {
                    return Err(cx.invalid(
                        line,
                        format!("city {}: give both `lat` and `lon`, or neither", c.name),
                    ));
                }
            }
            self.refs.push(PendingRef {
                file: cx.file.to_string(),
                line: cx.line(c.country.span()),
                code: country.clone(),
                what: "city country",
                org_allowed: false,
            });
            new_cities.push(City {
                name: c.name,
                country,
                aliases: c.aliases,
                lat: c.lat,
                lon: c.lon,
                population: c.population,
                geonames_id: None,
                origin: CityOrigin::Hand,
            });
        }
        merge_cities(&mut self.kb.cities, new_cities);

        Ok(())
    }

    /// Merges `[[person]]` entries: ids, genders, role titles and dates are checked here, codes in `finish`.
    fn add_people(
        &mut self,
        cx: &FileCx<'_>,
        entries: Vec<Spanned<RawPerson>>,
    ) -> Result<(), KbError> {
        let mut seen = HashSet::new();
        for entry in entries {
            let line = cx.line(entry.span());
            let p = entry.into_inner();
            let id = match (&p.id, &p.name) {
                (Some(id), _) => id.trim().to_string(),
                (None, Some(name)) => format!("per-{}", slug(name)),
                (None, None) => return Err(cx.invalid(line, "person needs `name` or `id`".into())),
            };
            let id_ok = id.len() > 4
                && id.starts_with("per-")
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !id_ok {
                return Err(cx.invalid(
                    line,
                    format!(
                        "person id {id:?} must be \"per-\" followed by lower-case ASCII letters, digits and '-'"
                    ),
                ));
            }
            if !seen.insert(id.clone()) {
                return Err(cx.invalid(line, format!("duplicate person id {id} in this file")));
            }
            if let Some(c) = &p.country {
                self.refs.push(PendingRef {
                    file: cx.file.to_string(),
                    line: cx.line(c.span()),
                    code: c.get_ref().clone(),
                    what: "person country",
                    org_allowed: false,
                });
            }
            if let Some(g) = &p.gender
                && !matches!(g.get_ref().as_str(), "male" | "female")
            {
                return Err(cx.invalid(
                    cx.line(g.span()),
                    format!("gender {:?} must be \"male\" or \"female\"", g.get_ref()),
                ));
            }
            let mut roles = Vec::with_capacity(p.roles.len());
            for r in p.roles {
                let role_line = cx.line(r.span());
                let r = r.into_inner();
                let title = r.title.get_ref().trim();
                let Some(title) = role_key(title) else {
                    return Err(cx.invalid(
                        cx.line(r.title.span()),
                        format!("role title {title:?} is neither a role key nor a known wording"),
                    ));
                };
                let title = title.into_owned();
                let from = parse_date(cx, r.from)?;
                let to = parse_date(cx, r.to)?;
                if let (Some(f), Some(t)) = (from, to)
                    && t <= f
                {
                    return Err(cx.invalid(
                        role_line,
                        format!("role {title}: `to` ({t}) must be after `from` ({f})"),
                    ));
                }
                self.refs.push(PendingRef {
                    file: cx.file.to_string(),
                    line: cx.line(r.of.span()),
                    code: r.of.get_ref().clone(),
                    what: "role `of`",
                    org_allowed: true,
                });
                roles.push(Role {
                    title,
                    of: r.of.into_inner(),
                    from,
                    to,
                });
            }
            let known = self.external.and_then(|kb| kb.person(&id));
            let new = Person {
                id: id.clone(),
                name: p.name.or(known.map(|k| k.name.clone())).unwrap_or_default(),
                aliases: p.aliases,
                country: p.country.map(|c| c.into_inner()),
                gender: p.gender.map(|g| g.into_inner()),
                roles,
            };
            match self.kb.people.iter_mut().find(|x| x.id == id) {
                Some(old) => merge_person(old, new),
                None if new.name.is_empty() => {
                    return Err(cx.invalid(line, format!("new person {id} needs a `name`")));
                }
                None => self.kb.people.push(new),
            }
        }
        Ok(())
    }

    /// Merges a gazetteer (see [`crate::gazetteer`]) into the cities read so
    /// far, which must be every hand-listed city: call it after the last
    /// TOML file. A row naming an unknown state is refused with its line.
    pub(crate) fn add_gazetteer(
        &mut self,
        file: &str,
        text: &str,
        stop: &str,
    ) -> Result<(), KbError> {
        let rows = crate::gazetteer::parse(file, text)?;
        let states: HashSet<&str> = self.kb.states.iter().map(|s| s.code.as_str()).collect();
        if let Some(row) = rows.iter().find(|r| !states.contains(r.country)) {
            let line = text
                .lines()
                .position(|l| l.starts_with(&format!("{}\t", row.id)))
                .map(|i| i + 1);
            return Err(KbError::Invalid {
                file: file.to_string(),
                line,
                reason: format!(
                    "unknown city country {:?}: expected a state alpha-3 code",
                    row.country
                ),
            });
        }
        let stop = crate::gazetteer::parse_stop(stop);
        crate::gazetteer::merge(&mut self.kb, &rows, &stop);
        Ok(())
    }

    /// Checks every pending reference and returns the knowledge base.
    pub(crate) fn finish(mut self) -> Result<KnowledgeBase, KbError> {
        let states: HashSet<&str> = self.kb.states.iter().map(|s| s.code.as_str()).collect();
        let orgs: HashSet<&str> = self
            .kb
            .organisations
            .iter()
            .map(|o| o.code.as_str())
            .collect();
        for r in &self.refs {
            let code = r.code.as_str();
            let external_state = self.external_state(code).is_some();
            let external_org = self.external.and_then(|kb| kb.organisation(code)).is_some();
            let known = states.contains(code)
                || external_state
                || is_iso_alpha3(code) && self.external.is_some()
                || (r.org_allowed && (orgs.contains(code) || external_org));
            if !known {
                let expected = if r.org_allowed {
                    "a state alpha-3 code or an organisation code"
                } else {
                    "a state alpha-3 code"
                };
                return Err(KbError::Invalid {
                    file: r.file.clone(),
                    line: Some(r.line),
                    reason: format!("unknown {} {:?}: expected {expected}", r.what, r.code),
                });
            }
        }
        for s in &mut self.kb.states {
            with_plurals(&mut s.demonyms);
        }
        for o in &mut self.kb.organisations {
            with_plurals(&mut o.demonyms);
        }
        put_defaults_first(&mut self.kb.states);
        self.kb.reindex();
        Ok(self.kb)
    }
}

fn is_iso_alpha3(code: &str) -> bool {
    code == "XKX" || rust_iso3166::from_alpha3(code).is_some()
}

/// Reads a TOML date (`2025-07-17`) or a string holding one.
fn parse_date(
    cx: &FileCx<'_>,
    value: Option<Spanned<toml::Value>>,
) -> Result<Option<NaiveDate>, KbError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let line = cx.line(value.span());
    let shown = value.get_ref().to_string();
    let parsed = match value.into_inner() {
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt
            .date
            .and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())),
        toml::Value::String(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
        _ => None,
    };
    match parsed {
        Some(d) => Ok(Some(d)),
        None => Err(cx.invalid(line, format!("bad date {shown}: expected YYYY-MM-DD"))),
    }
}

/// Map from code to position, used by the index.
pub(crate) fn positions<'a>(
    codes: impl Iterator<Item = &'a str>,
) -> foldhash::HashMap<String, usize> {
    let mut map = foldhash::HashMap::default();
    for (i, c) in codes.enumerate() {
        map.entry(c.to_string()).or_insert(i);
    }
    map
}
