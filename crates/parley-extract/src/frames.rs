//! Stage 4: event frames: trigger words and phrases (talks, ceasefire,
//! agreement, violation, end) with their family, scope and modality.

use crate::model::*;
use crate::rules::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    Talks,
    Ceasefire,
    Agreement,
    Violation,
    Ended,
}

#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    pub(crate) kind: TriggerKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// "the talks", "the meeting": refers back to an event already reported.
    pub(crate) anaphoric: bool,
    /// "separate meetings with X and Y": one event per counterpart.
    pub(crate) separate: bool,
    /// A verb form of ceasefire that one side declares ("halt attacks").
    pub(crate) unilateral_verb: bool,
    /// "Ukraine's delegation is X and Y", "Russia's team was led by X": who
    /// sat at talks already reported; adds participants, never an event.
    pub(crate) roster: bool,
}

/// Whether [`r.ended`] can match the lower-case sentence at all.
pub(crate) fn ended_possible(r: &Rules, lower: &str) -> bool {
    lower.contains("resum")
        || r.ended_truce_words.cues.ac.is_match(lower) && r.ended_verb_words.cues.ac.is_match(lower)
}

/// The trigger families whose stems start a word of `sent` (lower case).
pub(crate) fn trigger_kinds(r: &Rules, sent: &str) -> TriggerKinds {
    let mut kinds = 0;
    // The automaton's patterns are the stems in table order.
    for (_, _, id) in r.trigger_stems.matches_with_id(sent, false) {
        kinds |= r.trigger_stem_kinds[id];
    }
    kinds
}

/// Scope keywords in the sentence: one pass of one automaton over all of
/// them (whole words), rather than a pass per scope.
pub(crate) fn scopes(r: &Rules, sentence: &str) -> Vec<Scope> {
    let mut out: Vec<Scope> = Vec::new();
    // The automaton's patterns are the keywords in table order.
    for (_, _, id) in r.scope_words.matches_with_id(sentence, true) {
        let scope = r.scope_of_word[id];
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    out.sort();
    out
}

/// How talks were held.
pub(crate) fn modality_of(lower: &str, t: &Trigger) -> Modality {
    let tw = &lower.get(0..0).unwrap_or("");
    let _ = tw;
    if lower.contains("shuttle") {
        Modality::Shuttle
    } else if lower.contains("indirect")
        || lower.contains("never met face to face")
        || lower.contains("through mediators")
        || lower.contains("proximity talks")
    {
        Modality::Indirect
    } else if lower.contains("video") || lower.contains("videoconference") {
        Modality::Video
    } else if lower.contains("phone")
        || lower.contains(" call")
        || lower.contains("spoke with")
        || lower.contains("spoke to")
    {
        let _ = t;
        Modality::Call
    } else if lower.contains("face to face")
        || lower.contains("face-to-face")
        || lower.contains("in person")
        || lower.contains("direct")
        || lower.contains("met ")
        || lower.contains(" in ")
    {
        Modality::InPerson
    } else {
        Modality::Unspecified
    }
}

/// Finds trigger words in a sentence (offsets made absolute with `base`).
pub(crate) fn find_triggers(
    r: &Rules,
    sent: &str,
    lower: &str,
    base: usize,
    has_ceasefire: &dyn Fn() -> bool,
    kinds: TriggerKinds,
) -> Vec<Trigger> {
    let mut out = Vec::new();
    let talks = if kinds & K_TALKS != 0 {
        r.talks.captures_iter(lower).collect()
    } else {
        Vec::new()
    };
    for c in talks {
        let w = c.name("w").unwrap();
        let word = &lower[w.start()..w.end()];
        // "would call" must be followed by someone.
        if word.ends_with(" call")
            && (word.starts_with("will") || word.starts_with("would") || word.starts_with("to"))
        {
            let next = sent[w.end()..].trim_start();
            if !next.starts_with(|ch: char| ch.is_ascii_uppercase()) {
                continue;
            }
        }
        let before = &lower[..w.start()];
        let anaphoric = c.name("anaph").is_some()
            || before.trim_end().ends_with("the")
            || word.ends_with(" round") && !word.contains("of");
        let separate = before.trim_end().ends_with("separate");
        out.push(Trigger {
            kind: TriggerKind::Talks,
            start: base + c.get(0).unwrap().start(),
            end: base + w.end(),
            anaphoric,
            separate,
            unilateral_verb: false,
            roster: false,
        });
    }
    // A sentence naming who sat at the table but no talks word of its own:
    // it can only add participants to talks reported elsewhere.
    if out.is_empty()
        && kinds & K_ROSTER != 0
        && let Some(m) = r.roster.find(lower)
        && r.roster_verb.is_match(lower)
    {
        out.push(Trigger {
            kind: TriggerKind::Talks,
            start: base + m.start(),
            end: base + m.end(),
            anaphoric: true,
            separate: false,
            unilateral_verb: false,
            roster: true,
        });
    }
    let ceasefires = if kinds & K_CEASEFIRE != 0 {
        r.ceasefire.captures_iter(lower).collect()
    } else {
        Vec::new()
    };
    for c in ceasefires {
        let m = c.get(0).unwrap();
        out.push(Trigger {
            kind: TriggerKind::Ceasefire,
            start: base + m.start(),
            end: base + m.end(),
            anaphoric: false,
            separate: false,
            unilateral_verb: c.name("verb").is_some() || c.name("verb2").is_some(),
            roster: false,
        });
    }
    let agreements = if kinds & K_AGREEMENT != 0 {
        r.agreement.captures_iter(lower).collect()
    } else {
        Vec::new()
    };
    for c in agreements {
        let m = c.get(0).unwrap();
        if let Some(noun) = c.name("noun") {
            let before = &lower[..noun.start()];
            let b = before.trim_end();
            if b.ends_with("under the")
                || b.ends_with("under a")
                || b.ends_with("in") && sent[noun.range()].eq_ignore_ascii_case("exchange")
            {
                continue;
            }
            // The noun needs a verb of completion near it.
            let window_start = noun.start().saturating_sub(60);
            let window_end = (noun.end() + 60).min(sent.len());
            let mut ws = window_start;
            while !sent.is_char_boundary(ws) {
                ws += 1;
            }
            let mut we = window_end;
            while !sent.is_char_boundary(we) {
                we -= 1;
            }
            if !r.completion.is_match(&lower[ws..we]) {
                continue;
            }
            // "the deal" alone with "approved" is the same deal; keep it, the
            // document pass merges it into the ceasefire.
        }
        let definite = c.name("noun").is_some_and(|n| {
            let b = lower[..n.start()].trim_end();
            b.ends_with("the") || b.ends_with("this") || b.ends_with("that")
        });
        out.push(Trigger {
            kind: TriggerKind::Agreement,
            start: base + m.start(),
            end: base + m.end(),
            anaphoric: definite,
            separate: false,
            unilateral_verb: false,
            roster: false,
        });
    }
    let violations = if kinds & K_VIOLATION != 0 {
        r.violation.find_iter(lower).collect()
    } else {
        Vec::new()
    };
    for m in violations {
        let word = &lower[m.start()..m.end()];
        if word.starts_with("accus") && !(has_ceasefire() && r.attack.is_match(lower)) {
            continue;
        }
        out.push(Trigger {
            kind: TriggerKind::Violation,
            start: base + m.start(),
            end: base + m.end(),
            anaphoric: false,
            separate: false,
            unilateral_verb: false,
            roster: false,
        });
    }
    let ends = if kinds & K_ENDED != 0 && ended_possible(r, lower) {
        r.ended.find_iter(lower).collect()
    } else {
        Vec::new()
    };
    for m in ends {
        out.push(Trigger {
            kind: TriggerKind::Ended,
            start: base + m.start(),
            end: base + m.end(),
            anaphoric: false,
            separate: false,
            unilateral_verb: false,
            roster: false,
        });
    }
    out.sort_by_key(|t| t.start);
    out
}
