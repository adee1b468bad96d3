//! The extractor's dictionaries: the knowledge base compiled into one
//! Aho-Corasick automaton over ASCII-folded text, plus the closed word lists
//! (titles, non-name words, conflict pairs) the rules need.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use parley_kb::{KnowledgeBase, OrgKind, Via};
use std::collections::{HashMap, HashSet};

/// What a dictionary form names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A state by alpha-3 code.
    State(String),
    /// An organisation by code; `media` marks news outlets (never actors).
    Org {
        /// Its code.
        code: String,
        /// True for news organisations.
        media: bool,
    },
    /// A city and its state.
    City {
        /// English name.
        name: String,
        /// Alpha-3 of its state.
        country: String,
    },
    /// A knowledge-base person by id.
    Person(String),
}

/// One meaning of a form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// What it names.
    pub target: Target,
    /// Through which field of the knowledge base.
    pub via: Via,
}

/// A dictionary hit in folded text.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Byte offset in the folded text.
    pub start: usize,
    /// Byte offset one past the end.
    pub end: usize,
    /// Index of the pattern's meanings in [`Lexicon::entries`].
    pub pattern: usize,
}

/// Dictionaries compiled from a knowledge base; built once, shared by all extractions.
pub struct Lexicon {
    ac: AhoCorasick,
    /// Meanings of every pattern.
    pub entries: Vec<Vec<Entry>>,
    /// True when the pattern must match with exact case (acronyms: "US", "UN").
    exact_case: Vec<bool>,
    /// Pattern texts (folded), for exact-case checks.
    patterns: Vec<String>,
    /// Surnames (folded, lower case) of knowledge-base people → person ids.
    pub surnames: HashMap<String, Vec<String>>,
    /// Person id → (canonical name, country).
    pub people: HashMap<String, (String, Option<String>)>,
    /// Actor codes that are states.
    pub state_codes: HashSet<String>,
}

/// Folds a dictionary or text string to ASCII the same way the extractor folds documents.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// Appends the ASCII folding of one character.
pub fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c);
        return;
    }
    match c {
        '\u{2019}' | '\u{2018}' | '\u{02bc}' | '\u{2032}' => out.push('\''),
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{00ab}' | '\u{00bb}' => out.push('"'),
        '\u{2014}' | '\u{2013}' | '\u{2012}' | '\u{2212}' => out.push('-'),
        '\u{2026}' => out.push_str("..."),
        _ => match deunicode::deunicode_char(c) {
            Some(s) if !s.is_empty() && s.is_ascii() => out.push_str(s),
            _ => out.push(' '),
        },
    }
}

impl Lexicon {
    /// Compiles the knowledge base.
    pub fn new(kb: &KnowledgeBase) -> Lexicon {
        let mut forms: HashMap<String, (String, Vec<Entry>)> = HashMap::new();
        let mut add = |form: &str, target: Target, via: Via| {
            let form = form.trim();
            let form = form
                .strip_prefix("the ")
                .or_else(|| form.strip_prefix("The "))
                .unwrap_or(form);
            let folded = fold(form);
            if folded.len() < 2 {
                return;
            }
            // The knowledge base folds "U.S." into "US"; text has both.
            let mut variants = vec![folded.clone()];
            if (2..=4).contains(&folded.len()) && folded.chars().all(|c| c.is_ascii_uppercase()) {
                let dotted: String = folded.chars().flat_map(|c| [c, '.']).collect();
                variants.push(dotted);
            }
            for v in variants {
                let key = v.to_ascii_lowercase();
                let slot = forms.entry(key).or_insert_with(|| (v.clone(), Vec::new()));
                let entry = Entry {
                    target: target.clone(),
                    via,
                };
                if !slot.1.contains(&entry) {
                    slot.1.push(entry);
                }
            }
        };
        let mut state_codes = HashSet::new();
        for s in &kb.states {
            state_codes.insert(s.code.clone());
            let t = || Target::State(s.code.clone());
            add(&s.name, t(), Via::Name);
            for a in &s.aliases {
                add(a, t(), Via::Alias);
            }
            for c in &s.capitals {
                add(c, t(), Via::Capital);
            }
            for c in &s.seats {
                add(c, t(), Via::Seat);
            }
            for d in &s.demonyms {
                add(d, t(), Via::Demonym);
                if !d.ends_with('s') {
                    add(&format!("{d}s"), t(), Via::Demonym);
                }
            }
        }
        for o in &kb.organisations {
            let media = o.kind == OrgKind::Media;
            let t = || Target::Org {
                code: o.code.clone(),
                media,
            };
            add(&o.name, t(), Via::Name);
            for a in &o.aliases {
                add(a, t(), Via::Alias);
            }
            for d in &o.demonyms {
                add(d, t(), Via::Demonym);
            }
            if o.code.len() >= 2 && o.code.chars().all(|c| c.is_ascii_alphanumeric()) {
                add(&o.code, t(), Via::Alias);
            }
        }
        for c in &kb.cities {
            let t = || Target::City {
                name: c.name.clone(),
                country: c.country.clone(),
            };
            add(&c.name, t(), Via::Name);
            for a in &c.aliases {
                add(a, t(), Via::Alias);
            }
        }
        let mut surnames: HashMap<String, Vec<String>> = HashMap::new();
        let mut people = HashMap::new();
        for p in &kb.people {
            people.insert(p.id.clone(), (p.name.clone(), p.country.clone()));
            let t = || Target::Person(p.id.clone());
            add(&p.name, t(), Via::Name);
            for a in &p.aliases {
                add(a, t(), Via::Alias);
            }
            for name in std::iter::once(&p.name).chain(&p.aliases) {
                if let Some(last) = fold(name).split_whitespace().last()
                    && name.split_whitespace().count() >= 2
                    && last.len() >= 4
                {
                    let key = last.to_ascii_lowercase();
                    let ids = surnames.entry(key).or_default();
                    if !ids.contains(&p.id) {
                        ids.push(p.id.clone());
                    }
                }
            }
        }
        let mut keyed: Vec<(String, Vec<Entry>)> = forms.into_values().collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let patterns: Vec<String> = keyed.iter().map(|(f, _)| f.clone()).collect();
        let exact_case = patterns
            .iter()
            .map(|p| {
                let letters: Vec<char> = p.chars().filter(|c| c.is_ascii_alphabetic()).collect();
                letters.len() <= 5
                    && !letters.is_empty()
                    && letters.iter().all(|c| c.is_ascii_uppercase())
            })
            .collect();
        let entries = keyed.into_iter().map(|(_, e)| e).collect();
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("dictionary patterns compile");
        Lexicon {
            ac,
            entries,
            exact_case,
            patterns,
            surnames,
            people,
            state_codes,
        }
    }

    /// Dictionary hits in folded text: whole words, proper-noun case, acronyms exact.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        for m in self.ac.find_iter(text) {
            let (s, e) = (m.start(), m.end());
            let before_ok = s == 0 || !is_word_byte(bytes[s - 1]);
            let after_ok = e == bytes.len() || !is_word_byte(bytes[e]);
            if !before_ok || !after_ok {
                continue;
            }
            let idx = m.pattern().as_usize();
            let matched = &text[s..e];
            if self.exact_case[idx] {
                if matched != self.patterns[idx] {
                    continue;
                }
            } else if !matched.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit()) {
                continue;
            }
            out.push(Hit {
                start: s,
                end: e,
                pattern: idx,
            });
        }
        out
    }
}

/// Bytes that continue a word (so a dictionary hit must not touch them).
pub fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Known conflict pairs: a ceasefire's sides when the text names only one.
/// Ordered by how often they appear in talks news.
pub const CONFLICTS: &[(&str, &str)] = &[
    ("RUS", "UKR"),
    ("ISR", "HAMAS"),
    ("ISR", "HEZBOLLAH"),
    ("ISR", "IRN"),
    ("ISR", "PSE"),
    ("COD", "M23"),
    ("COD", "RWA"),
    ("THA", "KHM"),
    ("IND", "PAK"),
    ("ARM", "AZE"),
    ("SDN", "RSF"),
    ("YEM", "HOUTHIS"),
    ("USA", "HOUTHIS"),
    ("ISR", "HOUTHIS"),
    ("ETH", "TPLF"),
    ("AFG", "PAK"),
    ("KGZ", "TJK"),
    ("COL", "ELN"),
    ("SYR", "SDF"),
    ("TUR", "PKK"),
    ("MMR", "AA"),
    ("SOM", "ALSHABAAB"),
];

/// Words that precede a name as titles and are not part of it.
pub const TITLE_WORDS: &[&str] = &[
    "president",
    "vice",
    "prime",
    "minister",
    "ministers",
    "foreign",
    "defense",
    "defence",
    "secretary",
    "state",
    "national",
    "security",
    "advisor",
    "adviser",
    "envoy",
    "special",
    "head",
    "office",
    "presidential",
    "crown",
    "prince",
    "king",
    "queen",
    "emir",
    "sheikh",
    "general",
    "gen",
    "lt",
    "col",
    "colonel",
    "major",
    "captain",
    "commander",
    "chief",
    "deputy",
    "ambassador",
    "spokesman",
    "spokeswoman",
    "spokesperson",
    "chancellor",
    "senator",
    "sen",
    "rep",
    "representative",
    "governor",
    "gov",
    "mayor",
    "speaker",
    "chairman",
    "chair",
    "director",
    "foreign minister",
    "press",
    "aide",
    "negotiator",
    "negotiators",
    "mr",
    "mrs",
    "ms",
    "dr",
    "sir",
    "lord",
    "lady",
    "pope",
    "ayatollah",
    "supreme",
    "leader",
    "former",
    "acting",
    "caretaker",
    "interim",
    "first",
    "lady",
    "mediator",
    "coach",
    "manager",
    "owner",
    "striker",
    "midfielder",
    "defender",
    "goalkeeper",
    "captain",
    "dmitri",
    "u.s",
    "u.s.",
    "us",
    "un",
    "eu",
    "uk",
    "white",
    "house",
    "kremlin",
    "spokesmen",
    "officials",
    "official",
    "staff",
    "army",
    "military",
    "intelligence",
    "interior",
    "finance",
    "justice",
    "economy",
    "energy",
    "trade",
    "affairs",
    "external",
    "home",
    "of",
    "the",
    "ministry",
    "department",
    "council",
    "cabinet",
    "chief of staff",
    "ceo",
    "founder",
    "executive",
    "board",
    "member",
    "mp",
    "lawmaker",
    "opposition",
    "sultan",
    "emirate",
    "monarch",
    "premier",
    "diplomat",
    "top",
    "senior",
    "joint",
    "chiefs",
    "navy",
    "admiral",
    "marshal",
    "field",
    "sergeant",
    "lieutenant",
    "brigadier",
    "his",
    "her",
    "holiness",
    "excellency",
    "highness",
    "royal",
    "majesty",
    "hon",
    "honourable",
    "honorable",
    "delegation",
    "team",
];

/// Capitalised words that make a run of capitals something other than a person.
pub const NON_NAME_WORDS: &[&str] = &[
    "sea",
    "room",
    "route",
    "corridor",
    "birthday",
    "asia",
    "africa",
    "europe",
    "america",
    "securities",
    "holdings",
    "directors",
    "general",
    "generals",
    "crossing",
    "checkpoint",
    "base",
    "border",
    "bridge",
    "news",
    "images",
    "image",
    "photo",
    "photos",
    "press",
    "agency",
    "times",
    "post",
    "journal",
    "independent",
    "desk",
    "reporter",
    "reporters",
    "staff",
    "house",
    "palace",
    "day",
    "war",
    "power",
    "within",
    "office",
    "ministry",
    "council",
    "union",
    "nations",
    "forces",
    "army",
    "party",
    "club",
    "united",
    "city",
    "street",
    "square",
    "hotel",
    "airport",
    "university",
    "channel",
    "network",
    "bank",
    "group",
    "committee",
    "front",
    "movement",
    "brigade",
    "brigades",
    "guard",
    "guards",
    "republic",
    "kingdom",
    "federation",
    "coast",
    "gulf",
    "strait",
    "river",
    "mountains",
    "mountain",
    "island",
    "islands",
    "peninsula",
    "region",
    "province",
    "district",
    "oblast",
    "airlines",
    "corp",
    "inc",
    "ltd",
    "company",
    "foundation",
    "institute",
    "center",
    "centre",
    "service",
    "services",
    "summit",
    "conference",
    "forum",
    "cup",
    "league",
    "championship",
    "olympics",
    "prize",
    "award",
    "act",
    "law",
    "plan",
    "agreement",
    "accord",
    "accords",
    "declaration",
    "initiative",
    "program",
    "programme",
    "project",
    "operation",
    "christmas",
    "easter",
    "victory",
    "independence",
    "harbour",
    "harbor",
    "port",
    "bay",
    "valley",
    "rovers",
    "fc",
    "wanderers",
    "athletic",
    "county",
    "state",
    "states",
    "department",
    "court",
    "tribunal",
    "assembly",
    "parliament",
    "senate",
    "congress",
    "duma",
    "rada",
    "verkhovna",
    "cabinet",
    "administration",
    "government",
    "police",
    "navy",
    "air",
    "force",
    "fleet",
    "command",
    "headquarters",
    "embassy",
    "consulate",
    "mission",
    "church",
    "mosque",
    "cathedral",
    "museum",
    "stadium",
    "arena",
    "park",
    "bridge",
    "road",
    "avenue",
    "lane",
    "hall",
    "tower",
    "building",
    "station",
    "plant",
    "reactor",
    "field",
    "fields",
    "dam",
    "canal",
    "sound",
    "ocean",
    "lake",
    "desert",
    "highlands",
    "north",
    "south",
    "east",
    "west",
    "northern",
    "southern",
    "eastern",
    "western",
    "central",
    "middle",
    "world",
    "international",
    "global",
    "national",
    "european",
    "african",
    "asian",
    "arab",
    "islamic",
    "christian",
    "jewish",
    "muslim",
    "catholic",
    "orthodox",
    "democratic",
    "liberal",
    "labour",
    "labor",
    "conservative",
    "socialist",
    "communist",
    "green",
    "greens",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "editor",
    "editors",
    "note",
    "author",
    "update",
    "updated",
    "live",
    "breaking",
    "exclusive",
    "analysis",
    "opinion",
    "video",
    "watch",
    "listen",
    "read",
    "more",
    "sign",
    "subscribe",
    "newsletter",
    "magazine",
    "podcast",
    "radio",
    "television",
    "tv",
    "online",
    "digital",
    "media",
    "wire",
    "wires",
    "reuters",
    "bloomberg",
    "associated",
    "getty",
    "afp",
    "ap",
    "bbc",
    "cnn",
    "tass",
    "interfax",
    "axios",
    "politico",
    "guardian",
    "telegraph",
    "herald",
    "tribune",
    "gazette",
    "daily",
    "weekly",
    "review",
    "report",
    "reports",
    "monitor",
    "observer",
    "pravda",
    "izvestia",
    "kommersant",
    "jazeera",
    "arabiya",
    "sky",
    "fox",
    "abc",
    "cbs",
    "nbc",
    "msnbc",
    "npr",
    "pbs",
    "dw",
    "euronews",
    "france",
    "gaza",
    "strip",
    "bank",
    "heights",
    "corridor",
    "line",
    "zone",
    "crossing",
    "border",
    "mall",
    "market",
    "markets",
    "stock",
    "exchange",
    "index",
    "oil",
    "gas",
    "brent",
    "crude",
    "opec",
    "nato",
    "un",
    "eu",
    "red",
    "black",
    "white",
    "blue",
    "yellow",
    "cross",
    "crescent",
    "treaty",
    "charter",
    "convention",
    "protocol",
    "format",
    "talks",
    "process",
    "roadmap",
    "framework",
    "memorandum",
    "deal",
    "truce",
    "ceasefire",
    "peace",
    "security",
    "defense",
    "defence",
    "foreign",
    "affairs",
    "supporters",
    "fans",
    "team",
    "squad",
    "coalition",
    "alliance",
    "bloc",
    "pact",
    "organization",
    "organisation",
    "association",
    "society",
    "institution",
    "commission",
    "authority",
    "agency",
    "bureau",
    "tv",
    "jr",
    "sr",
];

/// Sentence-opening words that are capitalised only by position.
pub const FUNCTION_WORDS: &[&str] = &[
    "the",
    "a",
    "an",
    "in",
    "on",
    "at",
    "after",
    "before",
    "under",
    "over",
    "hours",
    "days",
    "weeks",
    "months",
    "next",
    "last",
    "this",
    "that",
    "these",
    "those",
    "but",
    "and",
    "or",
    "if",
    "when",
    "while",
    "as",
    "since",
    "until",
    "for",
    "from",
    "with",
    "without",
    "by",
    "of",
    "to",
    "it",
    "he",
    "she",
    "they",
    "we",
    "i",
    "you",
    "his",
    "her",
    "their",
    "our",
    "its",
    "why",
    "what",
    "who",
    "how",
    "where",
    "previously",
    "meanwhile",
    "however",
    "also",
    "both",
    "all",
    "some",
    "many",
    "several",
    "earlier",
    "later",
    "then",
    "now",
    "still",
    "yet",
    "so",
    "thus",
    "there",
    "here",
    "according",
    "despite",
    "amid",
    "among",
    "during",
    "between",
    "within",
    "about",
    "around",
    "through",
    "into",
    "onto",
    "upon",
    "per",
    "via",
    "no",
    "not",
    "new",
    "one",
    "two",
    "three",
    "four",
    "five",
    "thank",
    "thanks",
    "please",
    "dear",
    "hello",
    "yes",
    "ok",
    "whether",
    "although",
    "though",
    "because",
    "once",
    "unless",
    "instead",
    "even",
    "just",
    "only",
    "every",
    "each",
    "other",
    "another",
    "such",
    "most",
    "more",
    "less",
    "few",
    "first",
    "second",
    "third",
    "final",
    "late",
    "early",
    "top",
    "senior",
    "former",
    "ex",
    "like",
    "unlike",
    "ahead",
    "behind",
    "across",
    "against",
    "toward",
    "towards",
    "outside",
    "inside",
    "near",
    "beyond",
    "without",
    "photo",
    "caption",
    "source",
    "sources",
    "officials",
    "negotiators",
    "delegates",
    "leaders",
    "talks",
    "speaking",
    "asked",
    "told",
    "said",
    "says",
    "wednesday's",
    "do",
    "does",
    "did",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "has",
    "have",
    "had",
    "let",
    "get",
    "go",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acronyms_with_dots_match() {
        let kb = KnowledgeBase::bundled().unwrap();
        let lex = Lexicon::new(&kb);
        let text = "its U.S. counterpart and the US team";
        let hits = lex.find(text);
        let found: Vec<&str> = hits.iter().map(|h| &text[h.start..h.end]).collect();
        assert!(found.contains(&"U.S."), "{found:?}");
        assert!(found.contains(&"US"), "{found:?}");
    }
}
