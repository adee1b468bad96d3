//! Stage 3: clause structure around a trigger: clause bounds, negation,
//! modality (hypotheticals), tense cues, attribution and "between X and Y".

use crate::frames::*;
use crate::matching::*;
use crate::mentions::*;
use crate::persons::*;
use crate::rules::*;
use crate::time::Tense;
use std::collections::HashSet;

pub(crate) fn dist(pos: usize, t: &Trigger) -> usize {
    if pos < t.start {
        t.start - pos
    } else {
        pos.saturating_sub(t.end)
    }
}

/// A negation word shortly before the trigger.
pub(crate) fn negated(r: &Rules, before: &str, kind: TriggerKind) -> bool {
    // The last five words before the trigger.
    let mut cut = before.len();
    let mut words = 0;
    for (i, c) in before.char_indices().rev() {
        if c == ' ' {
            words += 1;
            if words > 5 {
                break;
            }
        }
        cut = i;
    }
    let window = &before[cut..];
    if window.contains("n't") {
        return true;
    }
    if !r.negation.cues.matches(window, true).any(|_| true) {
        return false;
    }
    r.negation.words.iter().map(String::as_str).any(|n| {
        if (n == "rejected" || n == "rejects" || n == "reject" || n == "rejecting")
            && kind != TriggerKind::Ceasefire
        {
            return false;
        }
        // Rejecting a proposal is still a proposal.
        if n.starts_with("reject")
            && (window.contains("propos") || window.contains("offer") || window.contains("plan"))
        {
            return false;
        }
        has_word(window, n)
    })
}

/// Hopes, conditions and possibilities are not events.
pub(crate) fn hypothetical(r: &Rules, before: &str, clause: &str, t: &Trigger) -> bool {
    // The last four words: a cue word cannot span two of them, so each is
    // checked on its own.
    if before
        .split_whitespace()
        .rev()
        .take(4)
        .any(|w| has_word(w, "any") || has_word(w, "potential") || has_word(w, "possible"))
    {
        return true;
    }
    let _ = t;
    r.hypothetical_clause.any(clause)
}

/// "truce plan", "ceasefire proposal": the ceasefire word names a proposal.
pub(crate) fn proposal_noun_after(text: &str, end: usize) -> bool {
    let next = text[end..]
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(
        next.as_str(),
        "plan"
            | "plans"
            | "proposal"
            | "proposals"
            | "offer"
            | "offers"
            | "initiative"
            | "roadmap"
            | "draft"
    )
}

/// The word a date expression hangs on is a verb in the past ("said on
/// Tuesday", "agreed late on Wednesday", "met on Monday").
pub(crate) fn past_verb_before(r: &Rules, before: &str) -> bool {
    let mut words = before
        .split_whitespace()
        .rev()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .skip_while(|w| matches!(*w, "late" | "early" | "on" | "earlier" | "" | "the"));
    let Some(word) = words.next() else {
        return false;
    };
    if r.not_past.contains(word) {
        return false;
    }
    // Auxiliaries make it something else: "will be held on", "is expected".
    if let Some(aux) = words.next()
        && matches!(
            aux,
            "will" | "would" | "be" | "is" | "are" | "to" | "shall" | "could"
        )
    {
        return false;
    }
    r.irregular_past.contains(word) || word.len() > 4 && word.ends_with("ed")
}

/// A ceasefire already in place that the clause only refers to ("remained
/// committed to the truce", "talks to firm up the truce"): not a new event.
pub(crate) fn refers_to_existing(r: &Rules, before: &str) -> bool {
    let near = tail(before, 40);
    let near = near.trim_end();
    // Up to three words (articles, adjectives) between the cue and the trigger.
    let words: Vec<&str> = near.split_whitespace().collect();
    (0..=3.min(words.len())).any(|skip| {
        let head = words[..words.len() - skip].join(" ");
        r.refers_to_existing
            .words
            .iter()
            .any(|w| head.ends_with(w.as_str()))
    })
}

/// A ceasefire that is the subject of talks ("talks on the partial ceasefire").
pub(crate) fn is_topic(
    r: &Rules,
    lower: &str,
    sentence_start: usize,
    trigger_start: usize,
) -> bool {
    let lower = &lower[sentence_start..trigger_start];
    let Some(talk) = r.talks.find_iter(lower).last() else {
        return false;
    };
    let gap = &lower[talk.end()..];
    gap.len() < 120
        && [
            "on ",
            "about ",
            "discuss",
            "over ",
            "details of",
            "to protect",
        ]
        .iter()
        .any(|c| gap.contains(c))
}

/// The clause a trigger belongs to: from the last clause break before it to
/// the first after it (`text` in lower case).
pub(crate) fn clause_bounds(
    r: &Rules,
    text: &str,
    ss: usize,
    se: usize,
    ts: usize,
    te: usize,
) -> (usize, usize) {
    let start = r
        .clause_breaks
        .cues
        .ac
        .find_iter(&text[ss..ts])
        .map(|m| ss + m.end())
        .max()
        .unwrap_or(ss);
    let end = r
        .clause_breaks
        .cues
        .ac
        .find_iter(&text[te..se])
        .map(|m| te + m.start())
        .min()
        .unwrap_or(se);
    (start, end)
}

/// Tense of a trigger from the cues before it in its clause.
pub(crate) fn tense_of(r: &Rules, before: &str, trigger: &str, sentence: &str) -> Tense {
    // `before`, `trigger` and `sentence` are lower case.
    let t = trigger;
    if t.starts_with("met")
        || t.starts_with("spoke")
        || t.starts_with("talked")
        || t.starts_with("sat")
    {
        if before.contains("will ") || before.contains("would ") {
            return Tense::Future;
        }
        return Tense::Past;
    }
    if t.starts_with("will call") || t.starts_with("would call") || t.starts_with("to call") {
        return Tense::Future;
    }
    // "agreed to meet", "agree to hold talks": planned.
    if !t.is_empty()
        && (tail(before, 14).contains("agreed to")
            || tail(before, 14).contains("agree to")
            || tail(before, 14).contains("agrees to"))
    {
        return Tense::Future;
    }
    let fut = nearest_cue(before, &r.future.cues);
    let past = nearest_cue(before, &r.past.cues);
    match (fut, past) {
        (Some(f), Some(p)) if f < p => Tense::Future,
        (Some(_), None) => Tense::Future,
        (_, Some(_)) => Tense::Past,
        (None, None) => {
            if ["is meeting", "are meeting", "is holding", "are holding"]
                .iter()
                .any(|c| sentence.contains(c))
            {
                Tense::Present
            } else {
                Tense::Past
            }
        }
    }
}

/// Who the sentence attributes its claim to.
pub(crate) fn attribution(
    r: &Rules,
    text: &str,
    lower: &str,
    ss: usize,
    se: usize,
    persons: &[Person],
    actors: &[ActorMention],
) -> Option<String> {
    let sent = &text[ss..se];
    // `lower` is the sentence in lower case.
    for m in r.speech.find_iter(lower) {
        let verb_start = ss + m.start();
        let verb_end = ss + m.end();
        if sent[m.range()]
            .to_ascii_lowercase()
            .starts_with("according")
        {
            // "according to the Kremlin", "according to U.S. Envoy Steve Witkoff"
            let p = persons
                .iter()
                .find(|p| p.start >= verb_end && p.start < verb_end + 50);
            if let Some(p) = p {
                return Some(p.text.clone());
            }
            let a = actors
                .iter()
                .find(|a| a.start >= verb_end && a.start < verb_end + 20);
            if let Some(a) = a {
                return Some(text[a.start..a.end].to_owned());
            }
            let rest = &text[verb_end..se];
            let phrase: String = rest
                .split([',', '.'])
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            if !phrase.is_empty() {
                return Some(phrase);
            }
            continue;
        }
        // "X said": the nearest name ending just before the verb.
        let p = persons
            .iter()
            .rfind(|p| p.end <= verb_start && verb_start - p.end <= 3 && p.start >= ss);
        if let Some(p) = p {
            return Some(p.text.clone());
        }
        let a = actors.iter().rfind(|a| {
            a.end <= verb_start && verb_start - a.end <= 12 && a.start >= ss && !a.from_person
        });
        if let Some(a) = a {
            let mut s = a.start;
            if text[..s].ends_with("the ") {
                s -= 4;
            }
            return Some(text[s..a.end].to_owned());
        }
        // "said X" inverted.
        let p = persons
            .iter()
            .find(|p| p.start >= verb_end && p.start <= verb_end + 2);
        if let Some(p) = p {
            return Some(p.text.clone());
        }
    }
    None
}

/// "between X and Y": the parties, exactly.
pub(crate) fn between_parties(
    text: &str,
    t: &Trigger,
    actors: &[&ActorMention],
) -> Option<HashSet<String>> {
    let after = &text[t.end..(t.end + 12).min(text.len())];
    if !after
        .to_ascii_lowercase()
        .trim_start()
        .starts_with("between")
    {
        return None;
    }
    let start = t.end;
    let codes: HashSet<String> = actors
        .iter()
        .filter(|a| a.start > start && a.start < start + 60 && !a.from_person)
        .take(2)
        .map(|a| a.code.clone())
        .collect();
    (codes.len() == 2).then_some(codes)
}
