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
