//! The extractor's rules as data: named cue-word lists, regular expressions
//! and word tables, kept beside the knowledge base (`kb/rules/*.toml`) and
//! extensible the same way (a `*.toml` file in `PARLEY_KB_DIR`).
//!
//! The bundled rule files *define* every name the extractor asks for; a user
//! file may only *extend* a name that exists (a typo in a name is refused with
//! its file and line rather than silently ignored):
//!
//! ```toml
//! [[cues]]
//! name = "negation"          # an existing list
//! words = ["nowhere near"]   # appended
//! remove = ["despite"]       # taken out
//!
//! [[pattern]]
//! name = "violation"         # replaces the bundled expression
//! regex = '''\b(?:violat\w*|breach\w*|flout\w*)'''
//!
//! [[table]]
//! name = "scope_words"
//! entries = [["gas fields", "energy_infrastructure"]]
//! ```
//!
//! Every rule runs over the document folded to ASCII (`Erdoğan` reads
//! `Erdogan`, curly quotes are straight) and, unless its documentation says
//! otherwise, in lower case: cue words must be lower-case ASCII. Regular
//! expressions use the `regex` crate's syntax (no backtracking, so no
//! catastrophic cases) and are refused when they compile to more than
//! [`PATTERN_SIZE_LIMIT`] bytes.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Largest compiled size of one rule expression. The bundled ones take a
/// few hundred kilobytes at most; a user expression past this is refused at
/// start-up with its file and line instead of slowing every document.
pub const PATTERN_SIZE_LIMIT: usize = 4 << 20;

/// Where a rule was defined or last changed: for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// File name as given to the loader (bundled files are `kb/rules/<name>.toml`).
    pub file: String,
    /// 1-based line of the entry.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A named list of cue words or phrases (lower-case ASCII).
#[derive(Debug, Clone)]
pub struct CueList {
    /// The words, in file order (bundled first, then appended ones).
    pub words: Vec<String>,
    /// Where the list was defined.
    pub origin: Origin,
}

/// A named regular expression.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The expression, as written (the extractor compiles it without Unicode
    /// classes, `(?-u)`, since the text it runs over is ASCII).
    pub regex: String,
    /// Where the expression was defined or last replaced.
    pub origin: Origin,
}

/// A named table of words, each with a value (a trigger stem and the event
/// families it may start; a scope word and its scope).
#[derive(Debug, Clone)]
pub struct Table {
    /// `(word, value)` pairs in file order.
    pub entries: Vec<(String, String)>,
    /// The words a value may be made of (space-separated), as the defining
    /// file declares them; empty when any value is allowed.
    pub values: Vec<String>,
    /// Where the table was defined.
    pub origin: Origin,
}

/// Every rule the knowledge base holds, by name.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Cue-word lists.
    pub cues: BTreeMap<String, CueList>,
    /// Regular expressions.
    pub patterns: BTreeMap<String, Pattern>,
    /// Word tables.
    pub tables: BTreeMap<String, Table>,
}

impl Rules {
    /// The words of cue list `name`; empty when there is none.
    pub fn words(&self, name: &str) -> &[String] {
        self.cues.get(name).map_or(&[], |c| c.words.as_slice())
    }

    /// The expression named `name`, if any.
    pub fn pattern(&self, name: &str) -> Option<&Pattern> {
        self.patterns.get(name)
    }

    /// The entries of table `name`; empty when there is none.
    pub fn table(&self, name: &str) -> &[(String, String)] {
        self.tables.get(name).map_or(&[], |t| t.entries.as_slice())
    }

    /// Merges `other` into `self`, `other` winning: a list, expression or
    /// table of the same name replaces this one. (A file read on its own
    /// with [`KnowledgeBase::from_toml_str`](crate::KnowledgeBase::from_toml_str)
    /// holds the whole extended list, its additions and removals applied.)
    pub fn merge(&mut self, other: Rules) {
        self.cues.extend(other.cues);
        self.patterns.extend(other.patterns);
        self.tables.extend(other.tables);
    }
}

fn append_words(list: &mut Vec<String>, words: Vec<String>) {
    for w in words {
        if !list.contains(&w) {
            list.push(w);
        }
    }
}

/// `[[cues]]` as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCues {
    name: String,
    #[serde(default)]
    #[allow(dead_code)] // documentation for readers of the file
    doc: Option<String>,
    #[serde(default)]
    words: Vec<Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

/// `[[pattern]]` as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPattern {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    doc: Option<String>,
    regex: String,
}

/// `[[table]]` as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    doc: Option<String>,
    #[serde(default)]
    values: Vec<String>,
    entries: Vec<Spanned<(String, String)>>,
}

/// The rule sections of one file, with what is needed to check them.
pub(crate) struct RuleSections {
    pub(crate) cues: Vec<Spanned<RawCues>>,
    pub(crate) patterns: Vec<Spanned<RawPattern>>,
    pub(crate) tables: Vec<Spanned<RawTable>>,
}

/// Checks one file's rule sections and merges them into `rules`.
///
/// `defining` files (the bundled ones) may introduce names; other files may
/// only extend names that `rules` or `known` (the bundled rules, when a user
/// file is read on its own) already has. `line` turns a byte offset of the
/// file into its 1-based line; `invalid` builds the error for a line.
pub(crate) fn add_sections(
    rules: &mut Rules,
    known: Option<&Rules>,
    defining: bool,
    file: &str,
    sections: RuleSections,
    line: &dyn Fn(usize) -> usize,
    invalid: &dyn Fn(usize, String) -> crate::KbError,
) -> Result<(), crate::KbError> {
    let exists = |rules: &Rules, kind: &str, name: &str| match kind {
        "cues" => rules.cues.contains_key(name) || known.is_some_and(|k| k.cues.contains_key(name)),
        "pattern" => {
            rules.patterns.contains_key(name)
                || known.is_some_and(|k| k.patterns.contains_key(name))
        }
        _ => rules.tables.contains_key(name) || known.is_some_and(|k| k.tables.contains_key(name)),
    };
    let unknown = |rules: &Rules, kind: &str, name: &str, at: usize| {
        let names: Vec<&str> = match kind {
            "cues" => rules.cues.keys().map(String::as_str).collect(),
            "pattern" => rules.patterns.keys().map(String::as_str).collect(),
            _ => rules.tables.keys().map(String::as_str).collect(),
        };
        let hint = if names.is_empty() {
            String::new()
        } else {
            format!(" (known: {})", names.join(", "))
        };
        invalid(
            at,
            format!(
                "unknown rule [[{kind}]] {name:?}: an extension file may only extend the bundled rules{hint}"
            ),
        )
    };
    for entry in sections.cues {
        let at = line(entry.span().start);
        let raw = entry.into_inner();
        if !defining && !exists(rules, "cues", &raw.name) {
            return Err(unknown(rules, "cues", &raw.name, at));
        }
        let mut words = Vec::with_capacity(raw.words.len());
        for w in raw.words {
            let wl = line(w.span().start);
            let w = w.into_inner();
            check_word(&w)
                .map_err(|reason| invalid(wl, format!("cue list {:?}: {reason}", raw.name)))?;
            words.push(w);
        }
        let origin = Origin {
            file: file.to_string(),
            line: at,
        };
        let list = rules
            .cues
            .entry(raw.name.clone())
            .or_insert_with(|| CueList {
                words: known
                    .and_then(|k| k.cues.get(&raw.name))
                    .map(|c| c.words.clone())
                    .unwrap_or_default(),
                origin,
            });
        append_words(&mut list.words, words);
        for r in raw.remove {
            let r = r.into_inner();
            list.words.retain(|w| *w != r);
        }
    }
    for entry in sections.patterns {
        let at = line(entry.span().start);
        let raw = entry.into_inner();
        if !defining && !exists(rules, "pattern", &raw.name) {
            return Err(unknown(rules, "pattern", &raw.name, at));
        }
        check_pattern(&raw.regex)
            .map_err(|reason| invalid(at, format!("pattern {:?}: {reason}", raw.name)))?;
        rules.patterns.insert(
            raw.name,
            Pattern {
                regex: raw.regex,
                origin: Origin {
                    file: file.to_string(),
                    line: at,
                },
            },
        );
    }
    for entry in sections.tables {
        let at = line(entry.span().start);
        let raw = entry.into_inner();
        if !defining && !exists(rules, "table", &raw.name) {
            return Err(unknown(rules, "table", &raw.name, at));
        }
        let allowed: Vec<String> = if raw.values.is_empty() {
            rules
                .tables
                .get(&raw.name)
                .or_else(|| known.and_then(|k| k.tables.get(&raw.name)))
                .map(|t| t.values.clone())
                .unwrap_or_default()
        } else {
            raw.values.clone()
        };
        let mut entries = Vec::with_capacity(raw.entries.len());
        for e in raw.entries {
            let el = line(e.span().start);
            let (word, value) = e.into_inner();
            if word.is_empty() || !word.is_ascii() {
                return Err(invalid(
                    el,
                    format!(
                        "table {:?}: {word:?} must be non-empty ASCII (rules read text folded to ASCII)",
                        raw.name
                    ),
                ));
            }
            if let Some(bad) = value
                .split_whitespace()
                .find(|v| !allowed.is_empty() && !allowed.iter().any(|a| a == v))
            {
                return Err(invalid(
                    el,
                    format!(
                        "table {:?}: {word:?} has the unknown value {bad:?} (expected one of: {})",
                        raw.name,
                        allowed.join(", ")
                    ),
                ));
            }
            entries.push((word, value));
        }
        let origin = Origin {
            file: file.to_string(),
            line: at,
        };
        let table = rules
            .tables
            .entry(raw.name.clone())
            .or_insert_with(|| Table {
                entries: known
                    .and_then(|k| k.tables.get(&raw.name))
                    .map(|t| t.entries.clone())
                    .unwrap_or_default(),
                values: allowed,
                origin,
            });
        table.entries.extend(entries);
    }
    Ok(())
}

/// A cue word is matched on lower-case ASCII text: refuse what never could.
fn check_word(word: &str) -> Result<(), String> {
    if word.is_empty() {
        return Err("an empty word".to_string());
    }
    if !word.is_ascii() {
        return Err(format!(
            "{word:?} is not ASCII: rules read text folded to ASCII, write it as it reads folded (e.g. \"erdogan\")"
        ));
    }
    if word.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{word:?} has capitals: cue words are matched on lower-case text"
        ));
    }
    Ok(())
}

/// Compiles an expression as the extractor will, within the size limit.
fn check_pattern(regex: &str) -> Result<(), String> {
    regex::bytes::RegexBuilder::new(&format!("(?-u){regex}"))
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "compiles to more than {limit} bytes (the limit for one rule expression); split or simplify it"
            ),
            other => other.to_string().lines().last().unwrap_or_default().trim().to_string(),
        })
}
