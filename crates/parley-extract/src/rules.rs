//! The rules the stages run, compiled once from the knowledge base's rule
//! files (`crates/parley-kb/kb/rules/*.toml`, extended by `PARLEY_KB_DIR`).
//!
//! Every cue list, expression and word table the extractor uses is read here
//! by name; the knowledge base has already checked each file with its line
//! (unknown names, words that could never match, expressions over the size
//! limit), so compiling cannot fail on user input. A name the bundled files
//! lack is a defect of the build, caught by this module's test.

use crate::matching::{AsciiRegex, Cues, WordSet};
use crate::model::Scope;
use parley_kb::{KnowledgeBase, Rules as RuleData};

/// Trigger families a stem can start (bits).
pub(crate) type TriggerKinds = u8;
/// Talks: meetings, rounds, calls.
pub(crate) const K_TALKS: TriggerKinds = 1;
/// Ceasefires and truces.
pub(crate) const K_CEASEFIRE: TriggerKinds = 2;
/// Other agreements.
pub(crate) const K_AGREEMENT: TriggerKinds = 4;
/// Violations.
pub(crate) const K_VIOLATION: TriggerKinds = 8;
/// Ends of a ceasefire.
pub(crate) const K_ENDED: TriggerKinds = 16;
/// Delegation rosters.
pub(crate) const K_ROSTER: TriggerKinds = 32;

/// A cue list both as an automaton (for searching text) and as words (for
/// checks word by word).
pub(crate) struct CueSet {
    /// Whole-word (or word-start) automaton over lower-case text.
    pub(crate) cues: Cues,
    /// The words, in file order.
    pub(crate) words: Vec<String>,
}

impl CueSet {
    fn new(words: &[String]) -> CueSet {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        CueSet {
            cues: Cues::new(&refs),
            words: words.to_vec(),
        }
    }

    /// Whether `word` is one of the words.
    pub(crate) fn contains(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }
}

/// The compiled rules of one extractor.
pub(crate) struct Rules {
    // Expressions (see kb/rules/patterns.toml).
    pub(crate) talks: AsciiRegex,
    pub(crate) roster: AsciiRegex,
    pub(crate) roster_verb: AsciiRegex,
    pub(crate) ceasefire: AsciiRegex,
    pub(crate) agreement: AsciiRegex,
    pub(crate) completion: AsciiRegex,
    pub(crate) violation: AsciiRegex,
    pub(crate) attack: AsciiRegex,
    pub(crate) ended: AsciiRegex,
    pub(crate) list_role: AsciiRegex,
    pub(crate) host_after: AsciiRegex,
    pub(crate) role_of: AsciiRegex,
    pub(crate) dateline: AsciiRegex,
    pub(crate) background: AsciiRegex,
    pub(crate) speaker: AsciiRegex,
    pub(crate) speech: AsciiRegex,
    // Cue lists (kb/rules/cues.toml).
    pub(crate) negation: CueSet,
    /// Hypothetical cues matched anywhere in the clause (the list without
    /// the words checked only right before the trigger: any, potential, possible).
    pub(crate) hypothetical_clause: Cues,
    pub(crate) future: CueSet,
    pub(crate) past: CueSet,
    pub(crate) propose: CueSet,
    pub(crate) agree: CueSet,
    pub(crate) future_after: CueSet,
    pub(crate) clause_breaks: CueSet,
    pub(crate) ended_truce_words: CueSet,
    pub(crate) ended_verb_words: CueSet,
    pub(crate) background_words: CueSet,
    pub(crate) speech_words: CueSet,
    pub(crate) side_people: CueSet,
    pub(crate) place_after_demonym: CueSet,
    pub(crate) role_words: CueSet,
    pub(crate) role_heads: CueSet,
    pub(crate) irregular_past: CueSet,
    pub(crate) not_past: CueSet,
    pub(crate) refers_to_existing: CueSet,
    pub(crate) abbreviations: CueSet,
    // Word sets of the person finder (kb/rules/names.toml).
    pub(crate) titles: WordSet,
    pub(crate) function_words: WordSet,
    pub(crate) non_names: WordSet,
    // Tables (kb/rules/tables.toml).
    pub(crate) trigger_stems: Cues,
    /// The families of each stem, in the automaton's pattern order.
    pub(crate) trigger_stem_kinds: Vec<TriggerKinds>,
    pub(crate) scope_words: Cues,
    /// The scope of each scope word, in the automaton's pattern order.
    pub(crate) scope_of_word: Vec<Scope>,
    /// Known belligerent pairs.
    pub(crate) conflict_pairs: Vec<(String, String)>,
}

impl Rules {
    /// Compiles the knowledge base's rules.
    ///
    /// # Panics
    /// When the bundled rule files lack a name this build asks for, or hold
    /// a value it cannot read: a defect of the build (the knowledge base
    /// refuses such user files at load with their file and line).
    pub(crate) fn new(kb: &KnowledgeBase) -> Rules {
        let d = &kb.rules;
        let hypothetical_clause: Vec<&str> = list(d, "hypothetical")
            .iter()
            .map(String::as_str)
            .filter(|h| !matches!(*h, "any" | "potential" | "possible"))
            .collect();
        let (trigger_stems, trigger_stem_kinds) = stems(d);
        let (scope_words, scope_of_word) = scope_table(d);
        Rules {
            talks: pattern(d, "talks"),
            roster: pattern(d, "roster"),
            roster_verb: pattern(d, "roster_verb"),
            ceasefire: pattern(d, "ceasefire"),
            agreement: pattern(d, "agreement"),
            completion: pattern(d, "completion"),
            violation: pattern(d, "violation"),
            attack: pattern(d, "attack"),
            ended: pattern(d, "ended"),
            list_role: pattern(d, "list_role"),
            host_after: pattern(d, "host_after"),
            role_of: pattern(d, "role_of"),
            dateline: pattern(d, "dateline"),
            background: pattern(d, "background"),
            speaker: pattern(d, "speaker"),
            speech: pattern(d, "speech"),
            negation: cue_set(d, "negation"),
            hypothetical_clause: Cues::new(&hypothetical_clause),
            future: cue_set(d, "future"),
            past: cue_set(d, "past"),
            propose: cue_set(d, "propose"),
            agree: cue_set(d, "agree"),
            future_after: cue_set(d, "future_after"),
            clause_breaks: cue_set(d, "clause_breaks"),
            ended_truce_words: cue_set(d, "ended_truce_words"),
            ended_verb_words: cue_set(d, "ended_verb_words"),
            background_words: cue_set(d, "background_words"),
            speech_words: cue_set(d, "speech_words"),
            side_people: cue_set(d, "side_people"),
            place_after_demonym: cue_set(d, "place_after_demonym"),
            role_words: cue_set(d, "role_words"),
            role_heads: cue_set(d, "role_heads"),
            irregular_past: cue_set(d, "irregular_past"),
            not_past: cue_set(d, "not_past"),
            refers_to_existing: cue_set(d, "refers_to_existing"),
            abbreviations: cue_set(d, "abbreviations"),
            titles: word_set(d, "titles"),
            function_words: word_set(d, "function_words"),
            non_names: word_set(d, "non_names"),
            trigger_stems,
            trigger_stem_kinds,
            scope_words,
            scope_of_word,
            conflict_pairs: d.table("conflict_pairs").to_vec(),
        }
    }
}

fn list<'a>(d: &'a RuleData, name: &str) -> &'a [String] {
    assert!(
        d.cues.contains_key(name),
        "the bundled rules lack the cue list {name:?}"
    );
    d.words(name)
}

fn cue_set(d: &RuleData, name: &str) -> CueSet {
    CueSet::new(list(d, name))
}

fn word_set(d: &RuleData, name: &str) -> WordSet {
    list(d, name).iter().cloned().collect()
}

fn pattern(d: &RuleData, name: &str) -> AsciiRegex {
    let p = d
        .pattern(name)
        .unwrap_or_else(|| panic!("the bundled rules lack the expression {name:?}"));
    AsciiRegex::new(&p.regex)
}

fn stems(d: &RuleData) -> (Cues, Vec<TriggerKinds>) {
    let table = d.table("trigger_stems");
    assert!(!table.is_empty(), "the bundled rules lack trigger_stems");
    let words: Vec<String> = table.iter().map(|(w, _)| w.to_ascii_lowercase()).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let kinds = table
        .iter()
        .map(|(w, families)| {
            families
                .split_whitespace()
                .map(|f| match f {
                    "talks" => K_TALKS,
                    "ceasefire" => K_CEASEFIRE,
                    "agreement" => K_AGREEMENT,
                    "violation" => K_VIOLATION,
                    "ended" => K_ENDED,
                    "roster" => K_ROSTER,
                    other => panic!("trigger stem {w:?}: unknown family {other:?}"),
                })
                .fold(0, |a, b| a | b)
        })
        .collect();
    (Cues::new(&refs), kinds)
}

fn scope_table(d: &RuleData) -> (Cues, Vec<Scope>) {
    let table = d.table("scope_words");
    assert!(!table.is_empty(), "the bundled rules lack scope_words");
    let words: Vec<String> = table.iter().map(|(w, _)| w.to_ascii_lowercase()).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let scopes = table
        .iter()
        .map(|(w, s)| {
            serde_json::from_value(serde_json::Value::String(s.clone()))
                .unwrap_or_else(|_| panic!("scope word {w:?}: unknown scope {s:?}"))
        })
        .collect();
    (Cues::new(&refs), scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_rules_compile() {
        let kb = KnowledgeBase::bundled().unwrap();
        let r = Rules::new(&kb);
        assert!(r.talks.is_match("the two sides met in istanbul"));
        assert!(r.negation.contains("not"));
        assert!(r.titles.contains("minister"));
        assert_eq!(
            r.trigger_stem_kinds.len(),
            kb.rules.table("trigger_stems").len()
        );
    }
}
