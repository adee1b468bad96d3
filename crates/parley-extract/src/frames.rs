//! Stage 4: event frames: trigger words and phrases (talks, ceasefire,
//! agreement, violation, end) with their family, scope and modality.

use crate::matching::*;
use crate::model::*;
use std::sync::LazyLock;

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

re!(
    TALKS_RE,
    r"\b(?:(?P<anaph>the|these|those|this|that)\s+(?:(?:latest|first|second|third|final|new|next|last|previous|technical|direct|indirect|peace|two-day|three-day)\s+)*)?(?P<w>talks|negotiations|negotiating\s+round|round\s+of\s+(?:direct\s+|indirect\s+|peace\s+)?(?:talks|negotiations)|(?:final|first|second|third|fourth|fifth|next|new|latest|last|another)\s+round|meetings?|met|meets?|summit|consultations|(?:phone|telephone|video)[\s-]?(?:call|conversation|talks?)s?|spoke\s+(?:with|to|again|by\s+(?:tele)?phone|by\s+hotline|over\s+(?:a\s+|the\s+)?hotline)|speak\s+(?:with|to|again)|negotiat(?:e|es|ed|ing)\s+(?:directly\s+|separately\s+|indirectly\s+)?with|(?:host|hosts|hosted|hosting|welcome[sd]?|welcoming|receive[sd]?|receiving|convene[sd]?|convening|bring\s+together|brought\s+together)\s+(?:the\s+)?(?:[a-z]+\s+){0,2}?(?:leaders|presidents|heads|delegations|delegates|negotiators|envoys|representatives|foreign\s+ministers|prime\s+ministers|ministers|officials)\s+(?:of|from)|talked\s+(?:with|to)|calls?\s+with|(?:will|would|to)\s+call|sat\s+down\s+with|discuss(?:ed|es|ing)?\s+[^.;]{0,60}?\bwith)\b"
);
re!(
    ROSTER_RE,
    r"\b(?:delegations?|delegates|negotiators|(?:negotiating\s+)?teams?)\b"
);
re!(
    ROSTER_VERB_RE,
    r"\b(?:(?:led|headed|represented)\s+by|includ(?:es|ed|ing)|compris(?:es|ed|ing)|consist(?:s|ed|ing)\s+of|made\s+up\s+of|is|are|was|were|welcomed|greeted|received|joined)\b"
);

re!(
    CEASEFIRE_RE,
    r"\b(?:cease-?fires?|truces?|armistice|cessation\s+of\s+hostilities|cease\s+fire|moratorium|(?P<verb2>(?:halt|pause|stop|suspension|cessation|freeze)\s+(?:to|of|in|on)\s+(?:all\s+|its\s+|their\s+|the\s+)?(?:offensive\s+|combat\s+|military\s+|air\s+)?(?:attacks|strikes|fighting|hostilities|shelling|operations|action))|(?P<verb>(?:halt|halted|halting|halts|stop|stopped|stopping|stops|pause|paused|pausing|suspend|suspended|suspending)\s+(?:all\s+|its\s+|their\s+|the\s+)?(?:offensive\s+|combat\s+|military\s+|air\s+)?(?:attacks|strikes|striking|attacking|fire|firing|fighting|hostilities|shelling|operations|action)))\b"
);
re!(
    AGREEMENT_RE,
    r"\b(?:(?P<verb>agree[ds]?|agreeing)\b[^.;]{0,30}?\bto\s+(?:swap|exchange|release|return|free|hand\s+over|trade)|(?P<verb3>agree[ds]?|agreeing)\s+(?:on|to|upon)\s+(?:a|an|the)\s+(?:[a-z-]+\s+){0,2}?(?:mechanism|roadmap|road\s+map|protocol|arrangement|working\s+group|joint\s+committee|joint\s+commission)|(?P<noun>agreement|deal|accord|treaty|memorandum|framework|peace\s+plan|declaration|prisoner\s+(?:swap|exchange)|exchange\s+of\s+(?:prisoners|captives|bodies|pows)|swap\s+of\s+prisoners))\b"
);
re!(
    COMPLETION_RE,
    r"\b(?:signed|signs|sign|signing|reached|reach|reaches|struck|sealed|clinched|concluded|finali[sz]ed|inked|agreed|initialled|initialed|approved)\b"
);
re!(
    VIOLATION_RE,
    r"\b(?:violat\w*|breach\w*|broke\s+the\s+(?:truce|ceasefire|cease-fire)|accus\w+\s+[^.;]{0,40}?\bof\b)"
);
re!(
    ATTACK_RE,
    r"\b(?:hit|hits|struck|strikes?|attack\w*|shell\w*|drones?|missiles?|fired|bomb\w*|killed|raids?|offensive|assault)\b"
);
re!(
    ENDED_RE,
    r"\b(?:(?:truce|ceasefire|cease-fire|moratorium)\b[^.;]{0,100}?\b(?:has\s+|had\s+|have\s+)?(?:collapsed|expired|ended|broke\s+down|broken\s+down|is\s+over|was\s+over|lapsed|fell\s+apart|unraveled|unravelled)|(?:(?:ended|ending|ends|end|called\s+off|scrapped|abandoned|terminated|withdrew\s+from|pulled\s+out\s+of|shatter(?:ed|ing|s)?|not\s+(?:to\s+)?renew(?:ed|ing)?|let(?:ting)?|overturn(?:ed|ing|s)?|tore\s+up|tear(?:ing|s)?\s+up|reneg(?:e|ed|ing)\s+on)\s+(?:the|its|their|a|this|that)\s+(?:[a-z0-9]+(?:-[a-z0-9]+)*\s+){0,3}|(?:collapse|breakdown)\s+of\s+(?:the|its|their|a|this|that)\s+(?:[a-z0-9]+(?:-[a-z0-9]+)*\s+){0,2}|shatter(?:ed|ing|s)?\s+(?:[a-z0-9]+(?:-[a-z0-9]+)*\s+){0,2})(?:truce|ceasefire|cease-fire|moratorium)(?:\s+(?:to\s+)?(?:expire|lapse))?|resum\w+\s+(?:fighting|hostilities|strikes|attacks|its\s+offensive|the\s+war))"
);

/// Substrings (lower case) the ending expression cannot match without: a
/// ceasefire word and a verb of ending, or "resum(e)". Most ceasefire
/// sentences have no verb of ending, and these two cheap tests skip the
/// expression for them.
pub(crate) static ENDED_TRUCE_WORDS: LazyLock<Cues> =
    LazyLock::new(|| Cues::new(&["truce", "ceasefire", "cease-fire", "moratorium"]));
pub(crate) static ENDED_VERB_WORDS: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(&[
        "collapse",
        "expire",
        "end",
        "lapse",
        "shatter",
        "breakdown",
        "renew",
        "let",
        "overturn",
        "tore",
        "tear",
        "reneg",
        "broke",
        "over",
        "apart",
        "unravel",
        "called",
        "scrapped",
        "abandoned",
        "terminated",
        "withdrew",
        "pulled",
    ])
});

/// Whether [`ENDED_RE`] can match the lower-case sentence at all.
pub(crate) fn ended_possible(lower: &str) -> bool {
    lower.contains("resum")
        || ENDED_TRUCE_WORDS.ac.is_match(lower) && ENDED_VERB_WORDS.ac.is_match(lower)
}

/// Trigger families a stem can start (bits of [`TriggerKinds`]).
pub(crate) type TriggerKinds = u8;
pub(crate) const K_TALKS: TriggerKinds = 1;
pub(crate) const K_CEASEFIRE: TriggerKinds = 2;
pub(crate) const K_AGREEMENT: TriggerKinds = 4;
pub(crate) const K_VIOLATION: TriggerKinds = 8;
pub(crate) const K_ENDED: TriggerKinds = 16;
pub(crate) const K_ROSTER: TriggerKinds = 32;

/// Word starts without which a trigger family cannot match: a sentence with
/// none is skipped, and a family whose stems are absent skips its (costly)
/// regular expression. Each stem carries every family it may begin, since
/// the automaton reports one stem per position.
pub(crate) const TRIGGER_STEM_KINDS: &[(&str, TriggerKinds)] = &[
    ("talk", K_TALKS),
    ("negotiat", K_TALKS | K_ROSTER),
    ("meet", K_TALKS),
    ("met", K_TALKS),
    ("summit", K_TALKS),
    ("consult", K_TALKS),
    ("call", K_TALKS),
    ("called off", K_TALKS | K_ENDED),
    ("spoke", K_TALKS),
    ("speak", K_TALKS),
    ("discuss", K_TALKS),
    ("sat down", K_TALKS),
    ("round", K_TALKS),
    ("phone", K_TALKS),
    ("telephone", K_TALKS),
    ("video", K_TALKS),
    ("host", K_TALKS),
    ("welcom", K_TALKS),
    ("receiv", K_TALKS),
    ("conven", K_TALKS),
    ("bring together", K_TALKS),
    ("brought together", K_TALKS),
    ("delegat", K_ROSTER),
    ("team", K_ROSTER),
    ("cease", K_CEASEFIRE | K_ENDED),
    ("truce", K_CEASEFIRE | K_ENDED),
    ("armistice", K_CEASEFIRE),
    ("cessation", K_CEASEFIRE),
    ("hostilities", K_CEASEFIRE),
    ("moratorium", K_CEASEFIRE | K_ENDED),
    ("halt", K_CEASEFIRE),
    ("stop", K_CEASEFIRE),
    ("pause", K_CEASEFIRE),
    ("paus", K_CEASEFIRE),
    ("suspen", K_CEASEFIRE),
    ("freeze", K_CEASEFIRE),
    ("agree", K_AGREEMENT),
    ("deal", K_AGREEMENT),
    ("accord", K_AGREEMENT),
    ("treat", K_AGREEMENT),
    ("memorand", K_AGREEMENT),
    ("framework", K_AGREEMENT),
    ("declaration", K_AGREEMENT),
    ("swap", K_AGREEMENT),
    ("exchange", K_AGREEMENT),
    ("prisoner", K_AGREEMENT),
    ("peace plan", K_AGREEMENT),
    ("violat", K_VIOLATION),
    ("breach", K_VIOLATION),
    ("broke", K_VIOLATION | K_ENDED),
    ("accus", K_VIOLATION),
    ("resum", K_ENDED),
    ("collaps", K_ENDED),
    ("expir", K_ENDED),
    ("end", K_ENDED),
    ("scrap", K_ENDED),
    ("abandon", K_ENDED),
    ("terminat", K_ENDED),
    ("withdr", K_ENDED),
    ("pulled out", K_ENDED),
];

pub(crate) static TRIGGER_STEMS: LazyLock<Cues> = LazyLock::new(|| {
    let words: Vec<&str> = TRIGGER_STEM_KINDS.iter().map(|(w, _)| *w).collect();
    Cues::new(&words)
});

/// The trigger families whose stems start a word of `sent` (lower case).
pub(crate) fn trigger_kinds(sent: &str) -> TriggerKinds {
    let mut kinds = 0;
    // The automaton's patterns are the stems in table order.
    for (_, _, id) in TRIGGER_STEMS.matches_with_id(sent, false) {
        kinds |= TRIGGER_STEM_KINDS[id].1;
    }
    kinds
}

/// Scope keywords, each with the scope it signals.
pub(crate) const SCOPE_WORDS: &[(&str, Scope)] = &[
    ("energy", Scope::EnergyInfrastructure),
    ("infrastructure", Scope::EnergyInfrastructure),
    ("power plants", Scope::EnergyInfrastructure),
    ("power grid", Scope::EnergyInfrastructure),
    ("power facilities", Scope::EnergyInfrastructure),
    ("refineries", Scope::EnergyInfrastructure),
    ("black sea", Scope::Maritime),
    ("maritime", Scope::Maritime),
    ("shipping", Scope::Maritime),
    ("naval", Scope::Maritime),
    ("sea", Scope::Maritime),
    ("ports", Scope::Maritime),
    ("vessels", Scope::Maritime),
    ("red sea", Scope::Maritime),
    ("full", Scope::Full),
    ("complete", Scope::Full),
    ("comprehensive", Scope::Full),
    ("general", Scope::Full),
    ("unconditional", Scope::Full),
    ("total", Scope::Full),
    ("permanent", Scope::Full),
    ("lasting", Scope::Full),
    ("humanitarian", Scope::Humanitarian),
    ("aid", Scope::Humanitarian),
    ("bodies", Scope::Humanitarian),
    ("corridor", Scope::Humanitarian),
    ("corridors", Scope::Humanitarian),
    ("evacuation", Scope::Humanitarian),
    ("evacuations", Scope::Humanitarian),
    ("wounded", Scope::Humanitarian),
    ("easter", Scope::Holiday),
    ("christmas", Scope::Holiday),
    ("victory day", Scope::Holiday),
    ("eid", Scope::Holiday),
    ("ramadan", Scope::Holiday),
    ("new year", Scope::Holiday),
    ("holiday", Scope::Holiday),
    ("parts of the front", Scope::Local),
    ("part of the front", Scope::Local),
    ("local", Scope::Local),
    ("localized", Scope::Local),
    ("localised", Scope::Local),
    ("sector", Scope::Local),
    ("sectors", Scope::Local),
];

/// Scope keywords in the sentence: one pass of one automaton over all of
/// them (whole words), rather than a pass per scope.
pub(crate) fn scopes(sentence: &str) -> Vec<Scope> {
    static CUES: LazyLock<Cues> = LazyLock::new(|| {
        let words: Vec<&str> = SCOPE_WORDS.iter().map(|(w, _)| *w).collect();
        Cues::new(&words)
    });
    let mut out: Vec<Scope> = Vec::new();
    // The automaton's patterns are the keywords in table order.
    for (_, _, id) in CUES.matches_with_id(sentence, true) {
        let scope = SCOPE_WORDS[id].1;
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
    sent: &str,
    lower: &str,
    base: usize,
    has_ceasefire: &dyn Fn() -> bool,
    kinds: TriggerKinds,
) -> Vec<Trigger> {
    let mut out = Vec::new();
    let talks = if kinds & K_TALKS != 0 {
        TALKS_RE.captures_iter(lower).collect()
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
        && let Some(m) = ROSTER_RE.find(lower)
        && ROSTER_VERB_RE.is_match(lower)
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
        CEASEFIRE_RE.captures_iter(lower).collect()
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
        AGREEMENT_RE.captures_iter(lower).collect()
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
            if !COMPLETION_RE.is_match(&lower[ws..we]) {
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
        VIOLATION_RE.find_iter(lower).collect()
    } else {
        Vec::new()
    };
    for m in violations {
        let word = &lower[m.start()..m.end()];
        if word.starts_with("accus") && !(has_ceasefire() && ATTACK_RE.is_match(lower)) {
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
    let ends = if kinds & K_ENDED != 0 && ended_possible(lower) {
        ENDED_RE.find_iter(lower).collect()
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
