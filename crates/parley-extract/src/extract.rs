//! Sentence-level rules that turn a document into candidate events and
//! person mentions.
//!
//! The pipeline for one document:
//! 1. fold the text to ASCII (with a map back to character offsets), so every
//!    rule sees "Erdogan" and straight quotes;
//! 2. dictionary hits (states, capitals, seats, demonyms, organisations,
//!    cities, known people) and person names;
//! 3. sentences, each with its triggers (talks, ceasefire, agreement,
//!    violation, end), filtered for negation, hypotheticals, topics and
//!    background;
//! 4. for each surviving trigger: type and status from tense cues, parties
//!    and mediators from the actors of its clause, date, venue, scope,
//!    modality, participants and attribution;
//! 5. document-level repair: anaphoric "the talks" enrich the event they
//!    refer to, duplicates merge, mediators of talks pass to the agreement
//!    they produced, and relative dates resolve against earlier events.

use crate::document::Document;
use crate::lexicon::{
    CONFLICTS, FUNCTION_WORDS, Lexicon, NON_NAME_WORDS, TITLE_WORDS, Target, fold_char,
};
use crate::model::*;
use crate::time::{DateKind, DateMention, Tense, find_dates};
use chrono::NaiveDate;
use parley_kb::{KnowledgeBase, Via};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Version string stored with every extraction.
pub const EXTRACTOR_VERSION: &str =
    concat!("parley-extract/", env!("CARGO_PKG_VERSION"), "+rules1");

/// Reads events and person mentions from documents; build once and share.
pub struct Extractor {
    lex: Lexicon,
    /// Who held which post when: resolves "Ukraine's defence minister" to a person.
    kb: KnowledgeBase,
}

/// ASCII-folded document text with a map back to character offsets.
struct Folded {
    text: String,
    /// `map[i]` is the character offset in the original text of folded byte `i`;
    /// one extra entry for the end.
    map: Vec<u32>,
    /// `bytes[c]` is the byte offset in the original text of character `c`;
    /// one extra entry for the end. Turns character spans back into slices
    /// without walking the text from its start each time.
    bytes: Vec<u32>,
}

impl Folded {
    fn new(original: &str) -> Folded {
        let mut text = String::with_capacity(original.len() + 16);
        let mut map = Vec::with_capacity(original.len() + 17);
        let mut count = 0u32;
        let mut bytes = Vec::with_capacity(original.len() + 1);
        let raw = original.as_bytes();
        let (mut bi, mut ci) = (0usize, 0u32);
        while bi < raw.len() {
            bytes.push(bi as u32);
            if raw[bi].is_ascii() {
                // Most characters: one byte that folds to itself.
                text.push(raw[bi] as char);
                map.push(ci);
                bi += 1;
            } else {
                let c = original[bi..]
                    .chars()
                    .next()
                    .expect("a character starts here");
                let before = text.len();
                fold_char(c, &mut text);
                for _ in before..text.len() {
                    map.push(ci);
                }
                bi += c.len_utf8();
            }
            ci += 1;
            count = ci;
        }
        map.push(count);
        bytes.push(original.len() as u32);
        Folded { text, map, bytes }
    }

    /// The original text of characters `start..end` (as from [`Folded::chars`]).
    fn original<'a>(&self, original: &'a str, start: u32, end: u32) -> &'a str {
        let at = |c: u32| self.bytes[(c as usize).min(self.bytes.len() - 1)] as usize;
        &original[at(start)..at(end.max(start))]
    }

    fn chars(&self, start: usize, end: usize) -> (u32, u32) {
        let s = self.map[start.min(self.map.len() - 1)];
        // The end maps to one past the last character of the span.
        let e = if end == 0 {
            0
        } else {
            self.map[(end - 1).min(self.map.len() - 1)] + 1
        };
        (s, e.max(s))
    }
}

/// A byte range (start, end) of the folded text.
type Span = (usize, usize);

/// A state or organisation named in the text.
#[derive(Debug, Clone)]
struct ActorMention {
    start: usize,
    end: usize,
    code: String,
    #[allow(dead_code)] // kept for debugging output and future rules
    via: Via,
    /// A place here ("in Kyiv", "the Saudi port city"), not an actor.
    place: bool,
    /// The target of strikes ("attacks on Ukraine's energy"), not a side.
    target: bool,
    /// Marked as host or mediator ("hosted by", "brokered by Egypt").
    mediator: bool,
    /// Comes from a person's affiliation rather than a name of the actor.
    from_person: bool,
}

/// Dictionary hits sorted into actors, cities and known people (start, end, id).
type Classified = (
    Vec<ActorMention>,
    Vec<CityMention>,
    Vec<(usize, usize, String)>,
);

/// A city named in the text.
#[derive(Debug, Clone)]
struct CityMention {
    start: usize,
    name: String,
    country: String,
    /// After "in/at/to/of": a location, not a metonym.
    locative: bool,
}

/// A person named in the text (folded offsets).
#[derive(Debug, Clone)]
struct Person {
    start: usize,
    end: usize,
    text: String,
    kb_id: Option<String>,
    source: &'static str,
    role: Option<String>,
    affiliation: Option<String>,
}

/// A sentence (folded offsets).
#[derive(Debug, Clone)]
struct Sentence {
    start: usize,
    end: usize,
    headline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TriggerKind {
    Talks,
    Ceasefire,
    Agreement,
    Violation,
    Ended,
}

#[derive(Debug, Clone)]
struct Trigger {
    kind: TriggerKind,
    start: usize,
    end: usize,
    /// "the talks", "the meeting": refers back to an event already reported.
    anaphoric: bool,
    /// "separate meetings with X and Y": one event per counterpart.
    separate: bool,
    /// A verb form of ceasefire that one side declares ("halt attacks").
    unilateral_verb: bool,
    /// "Ukraine's delegation is X and Y", "Russia's team was led by X": who
    /// sat at talks already reported; adds participants, never an event.
    roster: bool,
}

/// A candidate before document-level repair.
#[derive(Debug, Clone)]
struct Draft {
    event: TalksEvent,
    /// Folded offset of the trigger, for ordering.
    pos: usize,
    anaphoric: bool,
    /// Relative to the previous event's date ("a day earlier").
    anchor_offset: Option<i64>,
    /// Filled only from a date expression in the text (not inherited).
    dated: bool,
    /// "both sides agreed": the sides are those of the previous event.
    both_sides: bool,
    /// A delegation roster: participants for the talks of its sides.
    roster: bool,
}

/// `PARLEY_DEBUG=1` prints each trigger sentence's candidates and actors to stderr.
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("PARLEY_DEBUG").is_some());

/// A regular expression over the folded text, which is ASCII. Compiled
/// without Unicode (`(?-u)`: on ASCII text `\b`, `\s`, `\w` and `[^.;]`
/// mean the same), which lets the engine use its byte automata instead of
/// its Unicode-aware fallbacks, several times faster here. All but the
/// dateline's are written in lower case without `(?i)` and run over the
/// lower-case copy of the text: the same matches, and the engine can then
/// skip ahead with literal prefilters.
pub(crate) struct AsciiRegex(regex::bytes::Regex);

impl AsciiRegex {
    pub(crate) fn new(pattern: &str) -> AsciiRegex {
        AsciiRegex(regex::bytes::Regex::new(&format!("(?-u){pattern}")).expect("pattern compiles"))
    }

    fn check(hay: &str) -> &[u8] {
        debug_assert!(hay.is_ascii(), "rules run on folded (ASCII) text");
        hay.as_bytes()
    }

    pub(crate) fn is_match(&self, hay: &str) -> bool {
        self.0.is_match(Self::check(hay))
    }

    pub(crate) fn find<'h>(&self, hay: &'h str) -> Option<regex::bytes::Match<'h>> {
        self.0.find(Self::check(hay))
    }

    pub(crate) fn find_iter<'r, 'h>(&'r self, hay: &'h str) -> regex::bytes::Matches<'r, 'h> {
        self.0.find_iter(Self::check(hay))
    }

    pub(crate) fn captures<'h>(&self, hay: &'h str) -> Option<regex::bytes::Captures<'h>> {
        self.0.captures(Self::check(hay))
    }

    pub(crate) fn captures_iter<'r, 'h>(
        &'r self,
        hay: &'h str,
    ) -> regex::bytes::CaptureMatches<'r, 'h> {
        self.0.captures_iter(Self::check(hay))
    }
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<AsciiRegex> = LazyLock::new(|| AsciiRegex::new($pat));
    };
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
    ROLE_OF_RE,
    r"\bthe\s+(?P<role>(?:foreign|defen[cs]e|prime|interior)\s+minister|president|secretary\s+of\s+state|minister\s+of\s+(?:foreign\s+affairs|defen[cs]e))\s+of\s+(?:the\s+)?(?P<of>[a-z])"
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
re!(
    LIST_ROLE_RE,
    r"^(?:,\s*(?:the\s+)?[a-z.'-]+(?:\s+[a-z.'-]+){0,2})*,?\s+and\s+(?:the\s+)?[a-z.'-]+(?:\s+[a-z.'-]+){0,2}?\s+(?:(?:acting|serving)\s+as\s+(?:co-)?(?:guarantors|mediators|hosts|facilitators)|as\s+(?:co-)?(?:guarantors|mediators|co-hosts|facilitators)|shuttling|shuttled|mediating|brokering|hosting)\b"
);
re!(
    HOST_AFTER_RE,
    r"^(?:-[a-z.]+){0,2}(?:\s+(?:mediation|auspices)\b|-(?:mediated|brokered|hosted|facilitated)\b)|^\s+(?:will\s+|would\s+)?(?:welcome[sd]?|receive[sd]?|convene[sd]?|brought\s+together|bring\s+together)\s+(?:the\s+)?(?:[a-z]+\s+){0,2}?(?:leaders|presidents|heads|delegations|negotiators|envoys|foreign\s+ministers|prime\s+ministers)\b"
);
/// Substrings (lower case) the ending expression cannot match without: a
/// ceasefire word and a verb of ending, or "resum(e)". Most ceasefire
/// sentences have no verb of ending, and these two cheap tests skip the
/// expression for them.
static ENDED_TRUCE_WORDS: LazyLock<Cues> =
    LazyLock::new(|| Cues::new(&["truce", "ceasefire", "cease-fire", "moratorium"]));
static ENDED_VERB_WORDS: LazyLock<Cues> = LazyLock::new(|| {
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
fn ended_possible(lower: &str) -> bool {
    lower.contains("resum")
        || ENDED_TRUCE_WORDS.ac.is_match(lower) && ENDED_VERB_WORDS.ac.is_match(lower)
}

re!(
    DATELINE_RE,
    r"^(?P<city>[A-Z][A-Z'.\-/ ]{2,40}?)(?:,\s*[A-Za-z0-9. ]{2,30})?(?:\s*\([A-Za-z .&]{2,30}\))?\s+[-]{1,2}\s+"
);
re!(
    BACKGROUND_RE,
    r"\b(?:(?:a|one|two|three|four|several|\d+)\s+(?:weeks?|months?|years?)\s+(?:after|before|since)|(?:weeks|months|years)\s+(?:after|before|ago)|last\s+(?:year|month|spring|summer|autumn|winter)|in\s+(?:19|20)\d\d\b)"
);
/// Substrings (lower case) the background expression cannot match without.
static BACKGROUND_WORDS: LazyLock<Cues> =
    LazyLock::new(|| Cues::new(&["week", "month", "year", "last", "19", "20"]));
re!(
    SPEAKER_RE,
    r"(?P<sp>,\s+[^,]{0,80}?\b(?:said|says|told|added|announced|wrote|stated|claimed)\b)[^,]*$|(?P<acc>\baccording\s+to\b[^,]*)"
);
/// Words without one of which neither [`SPEAKER_RE`] nor [`SPEECH_RE`] can
/// match (as substrings, lower case): a cheap test that skips both.
static SPEECH_WORDS: LazyLock<Cues> = LazyLock::new(|| {
    Cues::new(&[
        "said",
        "says",
        "told",
        "added",
        "announced",
        "wrote",
        "stated",
        "claimed",
        "insisted",
        "confirmed",
        "according",
    ])
});
re!(
    SPEECH_RE,
    r"\b(?:said|says|told|announced|wrote|stated|claimed|added|insisted|confirmed|according\s+to)\b"
);

/// Words before a trigger that cancel it.
const NEGATIONS: &[&str] = &[
    "no",
    "despite",
    "not",
    "never",
    "n't",
    "neither",
    "nor",
    "without",
    "rejected",
    "rejects",
    "reject",
    "rejecting",
    "refused",
    "refuses",
    "denied",
    "denies",
    "ruled",
    "dismissed",
    "stopped short",
    "short of",
    "instead of",
    "rather than",
    "cancelled",
    "canceled",
    "postponed",
];
/// Clause words that make a trigger hypothetical.
const HYPOTHETICALS: &[&str] = &[
    "if",
    "unless",
    "whether",
    "could",
    "might",
    "hope",
    "hopes",
    "hoped",
    "hoping",
    "want",
    "wants",
    "wanted",
    "wish",
    "wished",
    "potential",
    "possible",
    "possibly",
    "any",
    "would require",
    "would need",
    "once",
    "in case",
    "should",
    "condition",
    "conditions",
    "prospect",
    "prospects",
    "chance",
    "chances",
    "idea of",
    "dream",
    "imagine",
    "consider",
    "considering",
    "considered",
    "no date",
    "yet to be",
];
/// Cues that put talks in the future.
const FUTURE_CUES: &[&str] = &[
    "will",
    "would",
    "'ll",
    "plan",
    "plans",
    "planned",
    "planning",
    "set to",
    "expected",
    "scheduled",
    "due to",
    "to hold",
    "to meet",
    "is to",
    "are to",
    "proposed",
    "propose",
    "proposes",
    "proposing",
    "offered",
    "offer",
    "offers",
    "invited",
    "invite",
    "invites",
    "ready to",
    "going to",
    "intends",
    "intend",
    "next",
    "upcoming",
    "prepare",
    "preparing",
    "to travel",
    "to visit",
    "seeks",
    "seeking",
    "called for",
    "calls for",
    "urged",
    "arrange",
    "arranging",
    "to resume",
    "resume",
    "await",
    "awaiting",
    "starting",
    "beginning",
    "from next",
];
/// Cues that put talks in the past or present.
const PAST_CUES: &[&str] = &[
    "met",
    "held",
    "after",
    "during",
    "spoke",
    "talked",
    "took place",
    "concluded",
    "ended",
    "hosted",
    "attended",
    "attend",
    "attends",
    "took part",
    "had",
    "was",
    "were",
    "began",
    "started",
    "wrapped",
    "following",
    "sat",
    "discussed",
    "is meeting",
    "are meeting",
    "are holding",
    "is holding",
    "under way",
    "underway",
    "ongoing",
    "continue",
    "continued",
    "continuing",
    "resumed",
];
/// Cues of a ceasefire merely proposed or demanded.
const PROPOSE_CUES: &[&str] = &[
    "propos",
    "offer",
    "call for",
    "calls for",
    "called for",
    "calling for",
    "demand",
    "urge",
    "urging",
    "push for",
    "pushed for",
    "pushing for",
    "ready to",
    "back",
    "accept",
    "suggest",
    "plan for",
    "seek",
    "sought",
    "appeal",
    "support",
    "push",
    "insist",
    "want",
];
/// Cues of a ceasefire agreed, declared or in force.
const AGREE_CUES: &[&str] = &[
    "agreed",
    "agree",
    "agrees",
    "took effect",
    "take effect",
    "takes effect",
    "came into force",
    "come into force",
    "comes into force",
    "took hold",
    "takes hold",
    "in effect",
    "in force",
    "signed",
    "declared",
    "declare",
    "declares",
    "announced",
    "announces",
    "announce",
    "ordered",
    "orders",
    "order",
    "brokered",
    "reached",
    "struck",
    "implemented",
    "observed",
    "began",
    "begins",
    "started",
    "holding",
    "held",
    "unilateral",
    "extended",
    "extends",
    "agreement",
];

/// A compiled list of cue words (one Aho-Corasick automaton), matched as
/// whole words, ASCII case-insensitively: the words are lower-cased and the
/// automaton runs over lower-case text (the same matches as a
/// case-insensitive automaton over the text, but it can skip ahead with a
/// literal prefilter).
struct Cues {
    ac: aho_corasick::AhoCorasick,
}

impl Cues {
    fn new(words: &[&str]) -> Cues {
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        Cues {
            ac: aho_corasick::AhoCorasickBuilder::new()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&lower)
                .expect("cue words compile"),
        }
    }

    /// Whole-word matches as (start, end).
    fn matches<'a>(
        &'a self,
        hay: &'a str,
        whole_end: bool,
    ) -> impl Iterator<Item = (usize, usize)> + 'a {
        let b = hay.as_bytes();
        self.ac
            .find_iter(hay)
            .map(|m| (m.start(), m.end()))
            .filter(move |&(s, e)| {
                let before = s == 0 || !b[s - 1].is_ascii_alphanumeric();
                let after = !whole_end || e >= b.len() || !b[e].is_ascii_alphanumeric();
                before && after
            })
    }

    /// Like [`Cues::matches`], with the index of the cue matched.
    fn matches_with_id<'a>(
        &'a self,
        hay: &'a str,
        whole_end: bool,
    ) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        let b = hay.as_bytes();
        self.ac
            .find_iter(hay)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .filter(move |&(s, e, _)| {
                let before = s == 0 || !b[s - 1].is_ascii_alphanumeric();
                let after = !whole_end || e >= b.len() || !b[e].is_ascii_alphanumeric();
                before && after
            })
    }

    /// Any cue as a whole word.
    fn any(&self, hay: &str) -> bool {
        self.matches(hay, true).next().is_some()
    }

    /// Distance from the end of `hay` to the nearest cue start (cues may be word prefixes).
    fn nearest(&self, hay: &str) -> Option<usize> {
        self.matches(hay, false).map(|(s, _)| hay.len() - s).min()
    }
}

macro_rules! cues {
    ($name:ident, $list:expr) => {
        static $name: LazyLock<Cues> = LazyLock::new(|| Cues::new($list));
    };
}

static HYPO_CUES: LazyLock<Cues> = LazyLock::new(|| {
    let words: Vec<&str> = HYPOTHETICALS
        .iter()
        .copied()
        .filter(|h| !matches!(*h, "any" | "potential" | "possible"))
        .collect();
    Cues::new(&words)
});
cues!(FUTURE_SET, FUTURE_CUES);
cues!(PAST_SET, PAST_CUES);
cues!(PROPOSE_SET, PROPOSE_CUES);
cues!(
    AFTER_FUTURE,
    &[
        "will",
        "would",
        "is expected",
        "are expected",
        "is scheduled",
        "are scheduled",
        "set for",
        "planned for",
        "to be held",
        "is due",
        "are due",
        "is set to",
        "are set to",
        "will resume",
        "could take place",
        "slated",
    ]
);
/// Trigger families a stem can start (bits of [`TriggerKinds`]).
type TriggerKinds = u8;
const K_TALKS: TriggerKinds = 1;
const K_CEASEFIRE: TriggerKinds = 2;
const K_AGREEMENT: TriggerKinds = 4;
const K_VIOLATION: TriggerKinds = 8;
const K_ENDED: TriggerKinds = 16;
const K_ROSTER: TriggerKinds = 32;

/// Word starts without which a trigger family cannot match: a sentence with
/// none is skipped, and a family whose stems are absent skips its (costly)
/// regular expression. Each stem carries every family it may begin, since
/// the automaton reports one stem per position.
const TRIGGER_STEM_KINDS: &[(&str, TriggerKinds)] = &[
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

static TRIGGER_STEMS: LazyLock<Cues> = LazyLock::new(|| {
    let words: Vec<&str> = TRIGGER_STEM_KINDS.iter().map(|(w, _)| *w).collect();
    Cues::new(&words)
});

/// The trigger families whose stems start a word of `sent` (lower case).
fn trigger_kinds(sent: &str) -> TriggerKinds {
    let mut kinds = 0;
    // The automaton's patterns are the stems in table order.
    for (_, _, id) in TRIGGER_STEMS.matches_with_id(sent, false) {
        kinds |= TRIGGER_STEM_KINDS[id].1;
    }
    kinds
}

cues!(AGREE_SET, AGREE_CUES);
cues!(
    BREAK_SET,
    &[
        ", who ",
        ", which ",
        ", while ",
        " but ",
        "; ",
        ", after ",
        " after ",
        " while ",
        " whereas ",
        ", as ",
        ", when ",
        ", although ",
        ", saying ",
        ", adding ",
        ", according ",
        " so that ",
        " before ",
        ", where ",
        ": ",
        " - ",
        ", and ",
    ]
);

/// FNV-1a: the word sets below are asked about every capitalised word, and
/// their keys are short, where this beats the default (DoS-resistant) hash.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type WordSet = HashSet<&'static str, std::hash::BuildHasherDefault<Fnv>>;

fn word_set(words: &'static [&'static str]) -> WordSet {
    words.iter().copied().collect()
}
static TITLES: LazyLock<WordSet> = LazyLock::new(|| word_set(TITLE_WORDS));
static FUNCTIONS: LazyLock<WordSet> = LazyLock::new(|| word_set(FUNCTION_WORDS));
static NON_NAMES: LazyLock<WordSet> = LazyLock::new(|| word_set(NON_NAME_WORDS));

/// The lower-case copy of `part`, a slice of `text`: `lower` is
/// `text.to_ascii_lowercase()`, so the same byte range.
fn lower_of<'a>(text: &str, lower: &'a str, part: &str) -> &'a str {
    let at = part.as_ptr() as usize - text.as_ptr() as usize;
    debug_assert!(at + part.len() <= text.len());
    &lower[at..at + part.len()]
}

impl Extractor {
    /// Compiles the knowledge base into the extractor's dictionaries.
    pub fn new(kb: &KnowledgeBase) -> Extractor {
        Extractor {
            lex: Lexicon::new(kb),
            kb: kb.clone(),
        }
    }

    /// Reads candidate events and person mentions from one document.
    pub fn extract(&self, doc: &Document) -> Extraction {
        let folded = Folded::new(&doc.text);
        let text = folded.text.as_str();
        // The folded text is ASCII, so lower-casing is byte for byte: every
        // rule that wants lower case slices this copy instead of allocating.
        let lower = text.to_ascii_lowercase();
        let lower = lower.as_str();
        let reference = doc.reference_date;
        let hits = self.lex.find(text);
        let sentences = split_sentences(text, lower, doc.title.as_deref());
        let dateline = find_dateline(text, &self.lex);

        let (mut actors, cities, kb_people) =
            self.classify_hits(text, lower, &hits, dateline.as_ref());
        let persons = self.find_persons(text, lower, &hits, &kb_people, &sentences, &actors);
        for p in &persons {
            if let Some(code) = &p.affiliation {
                actors.push(ActorMention {
                    start: p.start,
                    end: p.end,
                    code: code.clone(),
                    via: Via::Name,
                    place: false,
                    target: false,
                    mediator: false,
                    from_person: true,
                });
            }
        }
        actors.sort_by_key(|a| a.start);
        mark_roles(lower, &mut actors);
        // "hosted by U.S. President Donald Trump": the person named right
        // after a host speaks for the host.
        for i in 1..actors.len() {
            let (head, rest) = actors.split_at_mut(i);
            let person = &mut rest[0];
            if person.mediator {
                continue;
            }
            let Some(host) = head.iter().rev().find(|h| h.end <= person.start) else {
                continue;
            };
            // "the UN Support Mission in Libya (UNSMIL)": the acronym too.
            let acronym = lower[host.end..person.start].trim() == "(";
            if host.mediator
                && host.code == person.code
                && (acronym
                    || person.from_person
                        && person.start - host.end <= 40
                        && !lower[host.end..person.start].contains([',', ';'])
                        && !lower[host.end..person.start].contains(" and "))
            {
                person.mediator = true;
            }
        }
        let role_refs = self.role_references(text, lower, &actors, &persons, reference);
        // How often each side is named (places aside): counted once per document.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for a in actors.iter().filter(|a| !a.place) {
            *counts.entry(a.code.as_str()).or_default() += 1;
        }
        let pairs = conflict_pairs(&counts);
        let dyad = pick_dyad(&pairs);
        // Whether the document speaks of a ceasefire at all: only "accused ...
        // of" needs it, so it is read on first use.
        let ceasefire_flag = std::cell::OnceCell::new();
        let has_ceasefire = || *ceasefire_flag.get_or_init(|| CEASEFIRE_RE.is_match(lower));

        // A digest of the name: once per document, not once per event.
        let document_id = doc.id();
        let mut drafts: Vec<Draft> = Vec::new();
        for sentence in &sentences {
            if sentence.headline {
                continue;
            }
            self.sentence_events(
                doc,
                &folded,
                &document_id,
                lower,
                sentence,
                &actors,
                &cities,
                &persons,
                &role_refs,
                &pairs,
                dyad,
                &has_ceasefire,
                dateline.as_ref(),
                &mut drafts,
            );
        }
        let events = finish_document(drafts, reference, dateline.as_ref());

        let mentions = persons
            .iter()
            .map(|p| {
                let (start, end) = folded.chars(p.start, p.end);
                PersonMention {
                    text: folded.original(&doc.text, start, end).to_owned(),
                    start,
                    end,
                    role: p.role.clone(),
                    affiliation: p.affiliation.clone(),
                    kb_id: p.kb_id.clone(),
                    source: p.source.to_owned(),
                }
            })
            .collect();
        Extraction {
            events,
            mentions,
            reference_date: reference,
            extractor_version: EXTRACTOR_VERSION.to_owned(),
        }
    }

    /// Sorts dictionary hits into actors, cities and known people.
    fn classify_hits(
        &self,
        text: &str,
        lower: &str,
        hits: &[crate::lexicon::Hit],
        dateline: Option<&Dateline>,
    ) -> Classified {
        let mut actors = Vec::new();
        let mut cities = Vec::new();
        let mut people = Vec::new();
        for h in hits {
            let entries = &self.lex.entries[h.pattern];
            if let Some(person) = entries.iter().find_map(|e| match &e.target {
                Target::Person(id) => Some(id.clone()),
                _ => None,
            }) {
                // A person's full name wins over a state or city of the same spelling
                // only when it has two words or is an alias like "Zelenskyy".
                let multiword = text[h.start..h.end].contains(' ');
                let only_person = entries
                    .iter()
                    .all(|e| matches!(e.target, Target::Person(_)));
                if multiword || only_person {
                    people.push((h.start, h.end, person));
                    continue;
                }
            }
            let in_dateline = dateline.is_some_and(|d| h.start < d.end);
            let locative = is_locative(text, h.start, h.end);
            let mut city_added = false;
            for e in entries {
                if let Target::City { name, country } = &e.target
                    && !city_added
                {
                    cities.push(CityMention {
                        start: h.start,
                        name: name.clone(),
                        country: country.clone(),
                        locative: locative && !in_dateline,
                    });
                    city_added = true;
                }
            }
            // One actor per hit: the first state or (non-media) organisation meaning.
            let actor = entries.iter().find_map(|e| match &e.target {
                Target::State(code) => Some((code.clone(), e.via)),
                Target::Org { code, media: false } => Some((code.clone(), e.via)),
                _ => None,
            });
            let Some((code, via)) = actor else { continue };
            if entries
                .iter()
                .any(|e| matches!(e.target, Target::Org { media: true, .. }))
            {
                continue;
            }
            let place = in_dateline
                || match via {
                    Via::Capital => locative || city_added && followed_by_state(text, h.end),
                    // "the ethnic Chinese MNDAA": an ethnicity, not a side.
                    Via::Demonym => {
                        demonym_is_place(lower, h.end) || lower[..h.start].ends_with("ethnic ")
                    }
                    Via::Name | Via::Alias => locative && !text[..h.start].ends_with("with "),
                    // "at the White House", "in the Kremlin": where, not who.
                    Via::Seat => [
                        "at the ",
                        "in the ",
                        "to the ",
                        "outside the ",
                        "inside the ",
                    ]
                    .iter()
                    .any(|p| lower[..h.start].ends_with(p)),
                };
            actors.push(ActorMention {
                start: h.start,
                end: h.end,
                code,
                via,
                place,
                target: is_target(lower, h.start),
                mediator: false,
                from_person: false,
            });
        }
        // "Jeddah, Saudi Arabia": a state right after a city is its address.
        for a in actors.iter_mut() {
            if let Some(c) = cities
                .iter()
                .find(|c| c.start < a.start && a.start - c.start < 40)
            {
                let between = &text[c.start..a.start];
                if between.trim_end().ends_with(',') && !between.contains(['.', ';']) {
                    let gap = between.rsplit(',').next().unwrap_or("");
                    if gap.trim().is_empty() {
                        a.place = true;
                    }
                }
            }
        }
        // Modifiers of another actor are not sides of their own: "Rwanda-backed
        // M23", "U.S.-backed Syrian Democratic Forces", "Yemen's Houthis".
        let starts: Vec<usize> = actors.iter().map(|a| a.start).collect();
        for a in actors.iter_mut() {
            let after = &text[a.end..];
            let backing = ["-backed", "-allied", "-aligned", "-supported", "-funded"]
                .iter()
                .any(|m| after.starts_with(m));
            let possessive = after.strip_prefix("'s ").is_some_and(|rest| {
                let next = a.end + 3 + (rest.len() - rest.trim_start_matches("the ").len());
                starts.contains(&next)
            });
            if backing || possessive {
                a.place = true;
            }
        }
        (actors, cities, people)
    }

    /// Finds person names: known people, capitalised full names, bylines,
    /// photo credits and surnames of people already named.
    fn find_persons(
        &self,
        text: &str,
        lower: &str,
        hits: &[crate::lexicon::Hit],
        kb_people: &[(usize, usize, String)],
        sentences: &[Sentence],
        actors: &[ActorMention],
    ) -> Vec<Person> {
        let mut out: Vec<Person> = Vec::new();
        let covered =
            |s: usize, e: usize, out: &Vec<Person>| out.iter().any(|p| s < p.end && p.start < e);
        for (s, e, id) in kb_people {
            let (role, aff) = title_before(text, lower, *s, actors);
            let country = self.lex.people.get(id).and_then(|p| p.1.clone());
            out.push(Person {
                start: *s,
                end: *e,
                text: text[*s..*e].to_owned(),
                kb_id: Some(id.clone()),
                source: "kb",
                role,
                affiliation: country.or(aff),
            });
        }
        // Spans taken by places, states and organisations.
        let mut mask = vec![false; text.len() + 1];
        for h in hits.iter().filter(|h| {
            !self.lex.entries[h.pattern]
                .iter()
                .any(|e| matches!(e.target, Target::Person(_)))
        }) {
            mask[h.start..h.end].iter_mut().for_each(|m| *m = true);
        }
        let is_blocked_span = |s: usize, e: usize| mask[s..e.max(s)].iter().any(|&m| m);
        // Whether each sentence is a Title Case headline: read when a run in
        // it could be a name, at most once per sentence.
        let mut title_case: Vec<Option<bool>> = vec![None; sentences.len()];
        let runs = capital_runs(text, lower);
        for run in &runs {
            // Sentences are in text order: binary search, not a scan per run.
            let sentence_idx = sentences
                .partition_point(|s| s.start <= run.start)
                .checked_sub(1)
                .filter(|&i| run.start < sentences[i].end);
            let tokens = &run.tokens;
            // Strip leading titles, demonyms and function words.
            let mut first = 0;
            while first < tokens.len() {
                let (ts, te) = tokens[first];
                let word = &lower[ts..ts + text[ts..te].trim_end_matches('.').len()];
                let is_blocked = is_blocked_span(ts, te);
                if TITLES.contains(word) || FUNCTIONS.contains(word) || is_blocked || word.len() < 2
                {
                    first += 1;
                } else {
                    break;
                }
            }
            let mut last = tokens.len();
            // Cut at the first blocked or non-name word after the start.
            for (i, &(ts, te)) in tokens.iter().enumerate().skip(first) {
                let word = &lower[ts..te];
                let is_blocked = is_blocked_span(ts, te);
                if is_blocked || is_month_or_day(word) {
                    last = i;
                    break;
                }
            }
            if last <= first {
                continue;
            }
            let name_tokens = &tokens[first..last];
            let (s, e) = (name_tokens[0].0, name_tokens[name_tokens.len() - 1].1);
            if covered(s, e, &out) {
                continue;
            }
            let words: Vec<&str> = name_tokens.iter().map(|&(a, b)| &lower[a..b]).collect();
            let capitals = words.iter().filter(|w| !is_particle(w)).count();
            let mut title_case_line = || {
                sentence_idx.is_some_and(|i| {
                    *title_case[i].get_or_insert_with(|| {
                        is_title_case(&text[sentences[i].start..sentences[i].end])
                    })
                })
            };
            if !(2..=5).contains(&capitals) || title_case_line() {
                continue;
            }
            if words
                .iter()
                .any(|w| NON_NAMES.contains(w.trim_end_matches("'s")))
            {
                continue;
            }
            if words.iter().any(|w| w.chars().any(|c| c.is_ascii_digit())) {
                continue;
            }
            // All-capitals words are acronyms or shouting, not names.
            if name_tokens.iter().any(|&(a, b)| {
                let w = &text[a..b];
                w.len() > 1 && w.chars().all(|c| !c.is_ascii_lowercase())
            }) {
                continue;
            }
            let mut end = e;
            let mut shown = text[s..e].to_owned();
            if let Some(stripped) = shown.strip_suffix("'s") {
                shown = stripped.to_owned();
                end = e - 2;
            }
            let source = if text[..s].trim_end().ends_with('(') && text[end..].starts_with('/') {
                "photo_credit"
            } else if byline_before(text, s) {
                "byline"
            } else {
                "name"
            };
            let (role, aff) = title_before(text, lower, s, actors);
            out.push(Person {
                start: s,
                end,
                text: shown,
                kb_id: None,
                source,
                role,
                affiliation: aff,
            });
        }
        // Surnames of people named in full earlier (or known people).
        out.sort_by_key(|p| p.start);
        // Full names (with a space) and their last words, for surnames below.
        let full_names: Vec<(usize, &str, usize)> = out
            .iter()
            .enumerate()
            .filter(|(_, p)| p.text.contains(' '))
            .map(|(i, p)| (p.end, p.text.rsplit(' ').next().unwrap_or(""), i))
            .collect();
        let mut extra = Vec::new();
        for run in &runs {
            for &(ts, te) in &run.tokens {
                let mut word = &text[ts..te];
                let mut end = te;
                if let Some(w) = word.strip_suffix("'s") {
                    word = w;
                    end = te - 2;
                }
                // "Umerov-led": the name before a lower-case suffix.
                if let Some((head, tail)) = word.split_once('-')
                    && tail.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                {
                    word = head;
                    end = ts + head.len();
                }
                if word.len() < 3 || covered(ts, end, &out) || covered(ts, end, &extra) {
                    continue;
                }
                let lower_word = lower_of(text, lower, word);
                if FUNCTIONS.contains(lower_word) || TITLES.contains(lower_word) {
                    continue;
                }
                // An earlier full name in this document ending with this word.
                let earlier = full_names
                    .iter()
                    .rev()
                    .find(|(end, last, _)| *end <= ts && last.eq_ignore_ascii_case(word))
                    .map(|&(_, _, i)| &out[i]);
                let (kb_id, affiliation) = if let Some(p) = earlier {
                    (p.kb_id.clone(), p.affiliation.clone())
                } else if let Some(ids) = self.lex.surnames.get(lower_word) {
                    if ids.len() != 1 || is_blocked_span(ts, end) {
                        continue;
                    }
                    let id = ids[0].clone();
                    let country = self.lex.people.get(&id).and_then(|p| p.1.clone());
                    (Some(id), country)
                } else {
                    continue;
                };
                if earlier.is_none() && kb_id.is_none() {
                    continue;
                }
                let (role, _) = title_before(text, lower, ts, actors);
                extra.push(Person {
                    start: ts,
                    end,
                    text: word.to_owned(),
                    kb_id,
                    source: "surname",
                    role,
                    affiliation,
                });
            }
        }
        out.extend(extra);
        out.sort_by_key(|p| p.start);
        out
    }

    /// Posts named without a person ("Ukraine's foreign minister", "the
    /// Turkish President", "the Secretary of State of the United States"):
    /// each becomes the one holder of that post on the publication day, as a
    /// participant only (it is not a name, so not a person mention).
    fn role_references(
        &self,
        text: &str,
        lower: &str,
        actors: &[ActorMention],
        persons: &[Person],
        reference: Option<NaiveDate>,
    ) -> Vec<Person> {
        let Some(day) = reference else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for a in actors.iter().filter(|a| !a.from_person && !a.place) {
            // "Ukraine's foreign minister", "the Ukrainian defence minister".
            let mut pos = a.end;
            if text[pos..].starts_with("'s ") {
                pos += 2;
            }
            let Some((phrase, end)) = role_phrase(text, pos) else {
                continue;
            };
            // A name right after the post: the name itself was found already.
            if next_word_is_name(text, end)
                || persons.iter().any(|p| p.start >= end && p.start <= end + 1)
            {
                continue;
            }
            if lower[..a.start].trim_end().ends_with("former") {
                continue;
            }
            if let Some(p) = self.holder(phrase, &a.code, day, a.start, end) {
                out.push(p);
            }
        }
        // "the foreign minister of Ukraine".
        for c in ROLE_OF_RE.captures_iter(lower) {
            let (m, of) = (c.get(0).unwrap(), c.name("of").unwrap());
            let Some(a) = actors
                .iter()
                .find(|a| a.start == of.start() && !a.from_person)
            else {
                continue;
            };
            let phrase = &text[c.name("role").unwrap().range()];
            if out
                .iter()
                .any(|p: &Person| p.start <= m.start() && m.start() < p.end)
            {
                continue;
            }
            if let Some(p) = self.holder(phrase, &a.code, day, m.start(), a.end) {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.start);
        out
    }

    /// The single holder of `phrase` for `code` on `day`, as a role reference.
    fn holder(
        &self,
        phrase: &str,
        code: &str,
        day: NaiveDate,
        start: usize,
        end: usize,
    ) -> Option<Person> {
        let key = parley_kb::canonical_role(phrase)?;
        let holders = self.kb.holders(key, code, day);
        let [p] = holders.as_slice() else {
            return None;
        };
        Some(Person {
            start,
            end,
            text: p.name.clone(),
            kb_id: Some(p.id.clone()),
            source: "role",
            role: Some(phrase.to_owned()),
            affiliation: Some(code.to_owned()),
        })
    }

    /// Reads the events of one sentence into drafts.
    #[allow(clippy::too_many_arguments)]
    fn sentence_events(
        &self,
        doc: &Document,
        folded: &Folded,
        document_id: &str,
        lower_doc: &str,
        sentence: &Sentence,
        actors: &[ActorMention],
        cities: &[CityMention],
        persons: &[Person],
        role_refs: &[Person],
        pairs: &[ConflictPair],
        dyad: Option<(&'static str, &'static str)>,
        has_ceasefire: &dyn Fn() -> bool,
        dateline: Option<&Dateline>,
        drafts: &mut Vec<Draft>,
    ) {
        let text = &folded.text;
        let (ss, se) = (sentence.start, sentence.end);
        let sent = &text[ss..se];
        let lower = &lower_doc[ss..se];
        // Most sentences have no trigger word: one automaton pass rules them
        // out, and tells which families' expressions are worth running.
        let kinds = trigger_kinds(lower);
        if kinds == 0 {
            return;
        }
        let mut triggers = find_triggers(sent, lower, ss, has_ceasefire, kinds);
        if triggers.is_empty() {
            return;
        }
        // Background ("a week after a short Easter truce") and conditionals
        // ("If Russia truly wants peace, it must cease fire") are not events.
        let opens_conditional = {
            let l = lower.trim_start_matches(['"', '\'', ' ']);
            ["if ", "unless ", "should ", "were "]
                .iter()
                .any(|w| l.starts_with(w))
        };
        if opens_conditional || BACKGROUND_WORDS.ac.is_match(lower) && BACKGROUND_RE.is_match(lower)
        {
            return;
        }
        // Clause bounds of a span, asked several times per trigger: remembered.
        let clause_memo: std::cell::RefCell<Vec<(Span, Span)>> = Default::default();
        let bounds = |ts: usize, te: usize| {
            if let Some(&(_, b)) = clause_memo.borrow().iter().find(|(k, _)| *k == (ts, te)) {
                return b;
            }
            let b = clause_bounds(lower_doc, ss, se, ts, te);
            clause_memo.borrow_mut().push(((ts, te), b));
            b
        };
        // Violations and ends absorb the ceasefire word they talk about.
        let has_violation = triggers
            .iter()
            .any(|t| matches!(t.kind, TriggerKind::Violation | TriggerKind::Ended));
        // "No agreement was reached on a full ceasefire": a refused agreement
        // takes the ceasefire it was about with it.
        let refused_agreement_before: Option<usize> = triggers
            .iter()
            .filter(|t| t.kind == TriggerKind::Agreement)
            .filter(|t| {
                let (cs, _) = bounds(t.start, t.end);
                negated(&lower_doc[cs..t.start], t.kind)
            })
            .map(|t| t.end)
            .min();
        triggers.retain(|t| {
            if t.kind == TriggerKind::Ceasefire
                && refused_agreement_before.is_some_and(|end| {
                    end <= t.start && !lower_doc[end..t.start].contains([',', ';'])
                })
            {
                return false;
            }
            let (cs, ce) = bounds(t.start, t.end);
            let before = &lower_doc[cs..t.start];
            let clause = &lower_doc[cs..ce];
            let original_clause = &text[cs..ce];
            if *DEBUG {
                eprintln!(
                    "  cand {:?} {:?} neg={} hyp={} topic={}",
                    t.kind,
                    &text[t.start..t.end],
                    negated(before, t.kind),
                    hypothetical(before, clause, t),
                    t.kind == TriggerKind::Ceasefire && is_topic(lower_doc, ss, t.start)
                );
            }
            // "rejected the U.S. truce plan": a rejected proposal is still a proposal.
            let refused_proposal =
                t.kind == TriggerKind::Ceasefire && proposal_noun_after(lower_doc, t.end);
            !(negated(before, t.kind) && !refused_proposal
                || hypothetical(before, clause, t)
                || has_word(original_clause, "may")
                || (has_violation && t.kind == TriggerKind::Ceasefire)
                || (t.kind == TriggerKind::Ceasefire
                    && (is_topic(lower_doc, ss, t.start) || refers_to_existing(before))))
        });
        if triggers.is_empty() {
            return;
        }
        // One talks trigger per sentence is enough: keep the one with most context,
        // but never let an anaphoric one replace a fresh one.
        let mut seen_talks = false;
        triggers.sort_by_key(|t| (t.kind != TriggerKind::Talks, t.anaphoric, t.start));
        triggers.retain(|t| {
            if t.kind == TriggerKind::Talks && !t.anaphoric {
                if seen_talks {
                    return false;
                }
                seen_talks = true;
            }
            true
        });
        triggers.sort_by_key(|t| t.start);

        if *DEBUG {
            eprintln!("S: {sent}");
            for t in &triggers {
                eprintln!(
                    "  T {:?} {:?} anaph={}",
                    t.kind,
                    &text[t.start..t.end],
                    t.anaphoric
                );
            }
            for a in actors.iter().filter(|a| a.start >= ss && a.end <= se) {
                eprintln!(
                    "  A {} {:?} place={} target={} med={}",
                    a.code,
                    &text[a.start..a.end],
                    a.place,
                    a.target,
                    a.mediator
                );
            }
        }
        // Who reports the news is not a side of it (", the Turkish ministry said").
        // (Its expression needs a verb of saying: most sentences have none.)
        let speaker_spans: Vec<(usize, usize)> = if SPEECH_WORDS.ac.is_match(lower) {
            SPEAKER_RE
                .captures_iter(lower)
                .filter_map(|c| c.name("sp").or_else(|| c.name("acc")))
                .map(|m| (ss + m.start(), ss + m.end()))
                .collect()
        } else {
            Vec::new()
        };
        // Who the sentence attributes its claim to: the same for each trigger,
        // read when the first event is written.
        let attribution_cell = std::cell::OnceCell::new();
        let attributed = || {
            attribution_cell
                .get_or_init(|| {
                    if SPEECH_WORDS.ac.is_match(lower) {
                        attribution(text, lower, ss, se, persons, actors)
                    } else {
                        None
                    }
                })
                .clone()
        };
        let sent_actors: Vec<&ActorMention> = actors
            .iter()
            .filter(|a| a.start >= ss && a.end <= se && !a.place && !a.target)
            .filter(|a| {
                !speaker_spans
                    .iter()
                    .any(|&(s, e)| a.start >= s && a.end <= e && s > triggers[0].end)
            })
            .collect();
        let dates = find_dates(sent, doc.reference_date);
        let sentence_scope = scopes(lower);
        let modality = std::cell::OnceCell::new();
        let first_trigger = triggers[0].start;
        let dyad = sentence_dyad(&sent_actors, pairs).or(dyad);

        for (ti, t) in triggers.iter().enumerate() {
            let (clause_start, clause_end) = bounds(t.start, t.end);
            let region_end = clause_end.max(t.end);
            // Actors for this trigger: those before the first trigger (the
            // subject), and those nearest to it within its clause.
            let mine: Vec<&ActorMention> = sent_actors
                .iter()
                .copied()
                .filter(|a| {
                    if t.kind != TriggerKind::Talks && t.kind != TriggerKind::Agreement {
                        return true;
                    }
                    if a.start < first_trigger {
                        return true;
                    }
                    if a.start >= region_end {
                        return false;
                    }
                    let d = dist(a.start, t);
                    triggers.iter().enumerate().all(|(oj, o)| {
                        oj == ti
                            || d <= dist(a.start, o)
                            || o.kind != TriggerKind::Talks && t.kind == TriggerKind::Agreement
                    })
                })
                .collect();
            // Coordinated sides go together: "Ilham Aliyev and Nikol Pashinyan
            // initialled an agreement" gives both to the agreement even when
            // the first is nearer another trigger.
            let mut mine = mine;
            loop {
                let joined = sent_actors.iter().copied().find(|b| {
                    !mine.iter().any(|a| std::ptr::eq(*a, *b))
                        && mine.iter().any(|a| {
                            let (first, second) =
                                if a.end <= b.start { (*a, *b) } else { (*b, *a) };
                            first.end <= second.start
                                && matches!(
                                    &lower_doc[first.end..second.start],
                                    " and " | ", " | ", and " | " & "
                                )
                        })
                });
                match joined {
                    Some(b) => mine.push(b),
                    None => break,
                }
            }
            mine.sort_by_key(|a| a.start);
            let before = &lower_doc[ss.max(clause_start)..t.start];
            let window_after = &text[t.end..(t.end + 40).min(se)];
            let mut tense = tense_of(before, &lower_doc[t.start..t.end], lower);
            // "Talks ... will resume", "the meeting is scheduled for": cues after the trigger.
            if tense != Tense::Future && nearest_cue(before, &PAST_SET).is_none() {
                let mut w = (t.end + 70).min(clause_end.max(t.end));
                while !text.is_char_boundary(w) {
                    w -= 1;
                }
                if AFTER_FUTURE.any(&lower_doc[t.end..w]) {
                    tense = Tense::Future;
                }
            }
            let date = pick_date(&dates, ss, t, lower, tense, doc.reference_date);
            let (event_date, anchor_offset, dated) = match &date {
                Some((m, declared)) => {
                    let offset = match m.kind {
                        DateKind::FromAnchor(n) => Some(n),
                        _ => None,
                    };
                    // Weekdays take the tense of their own clause ("talks ... on Tuesday").
                    let (ds, _) = bounds(ss + m.start, ss + m.end);
                    let date_before = &lower_doc[ds..ss + m.start];
                    let date_tense = if past_verb_before(date_before) {
                        // "X said on Tuesday", "agreed late on Wednesday": the
                        // verb the date hangs on tells its tense.
                        Tense::Past
                    } else if ds >= t.end || t.start >= ss + m.start {
                        tense_of(date_before, "", lower)
                    } else {
                        tense
                    };
                    (
                        m.resolve(doc.reference_date, date_tense, None),
                        offset,
                        *declared,
                    )
                }
                None => (EventDate::default(), None, false),
            };
            let venue_city = venue_in(cities, ss, se, t);
            let participants: Vec<&Person> = persons
                .iter()
                .chain(role_refs)
                .filter(|p| {
                    p.start >= ss
                        && p.end <= se
                        && (t.roster || p.start < t.start || p.start < region_end)
                        && !(t.roster && is_speaker(text, p.end))
                })
                .collect();
            let (etype, status, unilateral) = match t.kind {
                TriggerKind::Talks => {
                    let future = tense == Tense::Future
                        || event_date
                            .date
                            .zip(doc.reference_date)
                            .is_some_and(|(d, r)| d > r);
                    let ongoing = [
                        "is meeting",
                        "are meeting",
                        "are holding",
                        "is holding",
                        "under way",
                        "underway",
                        "ongoing",
                    ]
                    .iter()
                    .any(|c| lower.contains(c));
                    if future {
                        let status = if lower.contains("postpon") || lower.contains("delayed") {
                            EventStatus::Postponed
                        } else if lower.contains("cancel") || lower.contains("called off") {
                            EventStatus::Cancelled
                        } else {
                            EventStatus::Planned
                        };
                        (EventType::TalksAnnounced, status, false)
                    } else if ongoing {
                        (EventType::TalksHeld, EventStatus::Ongoing, false)
                    } else {
                        (EventType::TalksHeld, EventStatus::Held, false)
                    }
                }
                TriggerKind::Ceasefire => {
                    let near_before = tail(before, 80);
                    let near_after = &lower_doc[t.end..t.end + window_after.len()];
                    let propose = nearest_cue(near_before, &PROPOSE_SET);
                    let agree = nearest_cue(near_before, &AGREE_SET);
                    let agree_after = AGREE_CUES
                        .iter()
                        .filter(|c| c.len() > 4)
                        .any(|c| near_after.contains(c));
                    let proposed = proposal_noun_after(text, t.end)
                        || match (propose, agree) {
                            (Some(p), Some(a)) => p < a,
                            (Some(_), None) => !agree_after,
                            _ => false,
                        };
                    // "India and Pakistan agreed to stop all firing" binds both
                    // subjects; "Putin agreed to halt attacks" only its own side.
                    let subjects: HashSet<&str> = mine
                        .iter()
                        .filter(|a| a.start < t.start && !a.mediator)
                        .map(|a| a.code.as_str())
                        .collect();
                    let joint = agree.is_some() && subjects.len() >= 2;
                    let unilateral = !proposed
                        && (t.unilateral_verb && !joint
                            || lower.contains("unilateral")
                            || [
                                "ordered",
                                "declared",
                                "announced",
                                "announces",
                                "declares",
                                "orders",
                            ]
                            .iter()
                            .any(|c| near_before.contains(c)));
                    if proposed {
                        (EventType::CeasefireProposed, EventStatus::Planned, false)
                    } else {
                        (EventType::CeasefireAgreed, EventStatus::Held, unilateral)
                    }
                }
                TriggerKind::Agreement => (EventType::AgreementReached, EventStatus::Held, false),
                TriggerKind::Violation => {
                    let alleged = ["accus", "alleg", "claim", "said", "according"]
                        .iter()
                        .any(|c| lower.contains(c));
                    let status = if alleged {
                        EventStatus::Alleged
                    } else {
                        EventStatus::Held
                    };
                    (EventType::CeasefireViolated, status, false)
                }
                TriggerKind::Ended => (EventType::CeasefireEnded, EventStatus::Held, false),
            };
            // Parties and mediators.
            let between = between_parties(text, t, &mine);
            let mut parties: Vec<Actor> = Vec::new();
            let mut mediators: Vec<Actor> = Vec::new();
            let push = |list: &mut Vec<Actor>, a: &ActorMention| {
                if !list.iter().any(|x| x.code == a.code) {
                    list.push(Actor {
                        code: a.code.clone(),
                        mention: char_text(doc, folded, a.start, a.end),
                        entity_id: String::new(),
                    });
                }
            };
            let is_ceasefire = matches!(
                t.kind,
                TriggerKind::Ceasefire | TriggerKind::Violation | TriggerKind::Ended
            );
            for a in &mine {
                if a.mediator {
                    push(&mut mediators, a);
                    continue;
                }
                if let Some(b) = &between
                    && !b.contains(&a.code)
                {
                    // Someone outside "between X and Y" is a participant's
                    // side at most: keep them only as a host.
                    continue;
                }
                if is_ceasefire
                    && let Some((x, y)) = dyad
                    && a.code != x
                    && a.code != y
                {
                    push(&mut mediators, a);
                    continue;
                }
                push(&mut parties, a);
            }
            if unilateral {
                // A unilateral declaration binds its declarer only: the first side named.
                if let Some(first) = mine
                    .iter()
                    .find(|a| !a.mediator && parties.iter().any(|p| p.code == a.code))
                {
                    let code = first.code.clone();
                    parties.retain(|p| p.code == code);
                }
            } else if matches!(
                etype,
                EventType::CeasefireProposed
                    | EventType::CeasefireAgreed
                    | EventType::CeasefireViolated
            ) && parties.len() == 1
                && let Some((x, y)) = dyad
            {
                let other = if parties[0].code == x {
                    Some(y)
                } else if parties[0].code == y {
                    Some(x)
                } else {
                    None
                };
                if let Some(other) = other {
                    parties.push(Actor {
                        code: other.to_owned(),
                        mention: String::new(),
                        entity_id: String::new(),
                    });
                }
            }
            mediators.retain(|m| !parties.iter().any(|p| p.code == m.code));
            // Talks need two sides (or a side and a host); a ceasefire one side.
            // "The two DGMOs will speak again on Monday": talks of the sides
            // named earlier, when the sentence dates them.
            let both_sides = parties.is_empty()
                && (t.kind != TriggerKind::Talks || event_date.date.is_some() && !t.anaphoric)
                && (matches!(t.kind, TriggerKind::Violation)
                    && [
                        "the rebels",
                        "the army",
                        "the military",
                        "the militants",
                        "the guerrillas",
                        "the insurgents",
                        "government forces",
                        "the troops",
                        "the militia",
                    ]
                    .iter()
                    .any(|p| lower.contains(p))
                    || [
                        "both sides",
                        "the two sides",
                        "the sides",
                        "both parties",
                        "the two countries",
                        "both countries",
                        "the warring parties",
                        "the two parties",
                        "the two delegations",
                        "both delegations",
                        "the two teams",
                        "the two governments",
                        "both governments",
                        "the two armies",
                        "the two militaries",
                        "the two dgmos",
                        "the two leaders",
                        "both leaders",
                    ]
                    .iter()
                    .any(|p| lower.contains(p)));
            let enough = match t.kind {
                TriggerKind::Talks => {
                    parties.len() + mediators.len() >= 2 && !parties.is_empty() || both_sides
                }
                _ => !parties.is_empty() || both_sides,
            };
            let anaphoric = t.anaphoric || !enough;
            if !enough
                && (t.kind != TriggerKind::Talks
                    || !t.anaphoric && mediators.is_empty() && participants.is_empty())
            {
                continue;
            }
            let venue = venue_city
                .filter(|_| !matches!(t.kind, TriggerKind::Violation | TriggerKind::Ended))
                .map(|c| Venue {
                    city: Some(c.name.clone()),
                    country: Some(c.country.clone()),
                    place: None,
                })
                .unwrap_or_default();
            let evidence_text = char_text(doc, folded, ss, se);
            let (cs, ce) = folded.chars(ss, se);
            let mut event = TalksEvent {
                event_id: String::new(),
                event_type: etype,
                status,
                date: event_date.clone(),
                parties: parties.clone(),
                mediators,
                venue,
                participants: participants
                    .iter()
                    .filter(|p| matches!(t.kind, TriggerKind::Talks) || p.start < t.start + 200)
                    .map(|p| Participant {
                        // A post named without a name ("the Saudi foreign
                        // minister") stands for its holder on the day.
                        entity_id: if p.source == "role" {
                            p.kb_id.clone().unwrap_or_default()
                        } else {
                            String::new()
                        },
                        name: if p.source == "role" {
                            p.text.clone()
                        } else {
                            char_text(doc, folded, p.start, p.end)
                        },
                        affiliation: p.affiliation.clone(),
                        role: p.role.clone(),
                    })
                    .collect(),
                scope: if is_ceasefire || t.kind == TriggerKind::Talks {
                    sentence_scope.clone()
                } else {
                    Vec::new()
                },
                // The same for every trigger of the sentence: read once.
                modality: if t.kind == TriggerKind::Talks {
                    *modality.get_or_init(|| modality_of(lower, t))
                } else {
                    Modality::Unspecified
                },
                evidence: vec![Evidence {
                    document_id: document_id.to_owned(),
                    document_name: doc.name.clone(),
                    text: evidence_text,
                    start: cs,
                    end: ce,
                    attributed_to: attributed(),
                    attributed_to_id: None,
                }],
                version: 0,
                source_count: 1,
                retracted: false,
                effective: None,
                reported_on: doc.reference_date,
            };
            // A declared ceasefire: the date is the declaration, the range its effect.
            if etype == EventType::CeasefireAgreed
                && let Some((m, _)) = &date
                && m.is_range
            {
                event.effective = Some(m.resolve(doc.reference_date, tense, None));
                let other = dates.iter().find(|d| !d.is_range);
                event.date = match other {
                    Some(o) => o.resolve(doc.reference_date, Tense::Past, None),
                    None if doc.reference_date.is_some() && unilateral => EventDate {
                        date: doc.reference_date,
                        precision: DatePrecision::Day,
                        end_date: None,
                        expression: String::new(),
                    },
                    None => event.date.clone(),
                };
            }
            // "separate meetings with Ukrainian and Russian delegates": one per counterpart.
            if t.separate && parties.len() >= 3 {
                let host = parties[0].clone();
                for other in parties.iter().skip(1) {
                    let mut e = event.clone();
                    e.parties = vec![host.clone(), other.clone()];
                    e.modality = if e.modality == Modality::Unspecified {
                        Modality::Shuttle
                    } else {
                        e.modality
                    };
                    drafts.push(Draft {
                        event: e,
                        pos: t.start,
                        anaphoric: false,
                        anchor_offset,
                        dated,
                        both_sides: false,
                        roster: false,
                    });
                }
                continue;
            }
            let _ = dateline;
            drafts.push(Draft {
                event,
                pos: t.start,
                anaphoric,
                anchor_offset,
                dated,
                both_sides,
                roster: t.roster,
            });
        }
    }
}

/// Words that make up a post ("foreign minister", "secretary of state").
const ROLE_WORDS: &[&str] = &[
    "president",
    "prime",
    "minister",
    "foreign",
    "defense",
    "defence",
    "secretary",
    "of",
    "state",
    "national",
    "security",
    "adviser",
    "advisor",
    "affairs",
    "chancellor",
    "vice",
    "deputy",
    "interior",
    "king",
    "emir",
    "crown",
    "prince",
    "supreme",
    "leader",
];

/// Words a post wording ends with ("minister", "president", "secretary of
/// state"): only phrases ending so are looked up.
const ROLE_HEADS: &[&str] = &[
    "president",
    "minister",
    "secretary",
    "state",
    "adviser",
    "advisor",
    "chancellor",
    "king",
    "emir",
    "prince",
    "leader",
    "affairs",
    "security",
];

/// The longest post wording starting at `pos` (after spaces), up to five
/// words, that the knowledge base knows; with its end offset.
fn role_phrase(text: &str, pos: usize) -> Option<(&str, usize)> {
    let start = pos + (text[pos..].len() - text[pos..].trim_start_matches(' ').len());
    // End offsets of the phrases that end with a head word, shortest first.
    let mut ends: Vec<usize> = Vec::new();
    let mut cursor = start;
    let mut stop = start;
    for _ in 0..5 {
        let rest = &text[cursor..];
        let len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let word = &rest[..len];
        if len == 0 || !ROLE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
            break;
        }
        let end = cursor + len;
        if ROLE_HEADS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
            ends.push(end);
        }
        stop = end;
        if !text[end..].starts_with(' ') {
            break;
        }
        cursor = end + 1;
    }
    // "Russian President Vladimir Putin": a title before a name, which the
    // name rules handle.
    if ends.is_empty() || next_word_is_name(text, stop) {
        return None;
    }
    // The knowledge base's role reader is thorough but not cheap: ask it
    // only about candidates, longest first.
    ends.iter()
        .rev()
        .find(|&&end| parley_kb::canonical_role(&text[start..end]).is_some())
        .map(|&end| (&text[start..end], end))
}

/// A capitalised word (not a function word) right after `end`: the post is a
/// title before a name.
fn next_word_is_name(text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches(' ');
    if rest.len() == text[end..].len() {
        return false;
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    word.starts_with(|c: char| c.is_ascii_uppercase())
        && !FUNCTIONS.contains(word.to_ascii_lowercase().as_str())
}

/// A name followed by a verb of saying is the source of the sentence, not
/// one of the people it lists.
fn is_speaker(text: &str, end: usize) -> bool {
    let after = text[end..].trim_start_matches(['"', '\'', ' ']);
    ["said", "says", "told", "wrote", "added"]
        .iter()
        .any(|v| after.starts_with(v))
}

fn dist(pos: usize, t: &Trigger) -> usize {
    if pos < t.start {
        t.start - pos
    } else {
        pos.saturating_sub(t.end)
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn char_text(doc: &Document, folded: &Folded, start: usize, end: usize) -> String {
    let (s, e) = folded.chars(start, end);
    folded.original(&doc.text, s, e).to_owned()
}

/// Distance from the end of `before` to the nearest cue in it, if any.
fn nearest_cue(before: &str, cues: &Cues) -> Option<usize> {
    cues.nearest(before)
}

/// Contains `word` as a whole word (or phrase).
fn has_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let b = hay.as_bytes();
        let before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let after = i + word.len() >= b.len() || !b[i + word.len()].is_ascii_alphanumeric();
        before && after
    })
}

/// A negation word shortly before the trigger.
fn negated(before: &str, kind: TriggerKind) -> bool {
    static NEG: LazyLock<Cues> = LazyLock::new(|| Cues::new(NEGATIONS));
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
    if !NEG.matches(window, true).any(|_| true) {
        return false;
    }
    NEGATIONS.iter().any(|n| {
        if (*n == "rejected" || *n == "rejects" || *n == "reject" || *n == "rejecting")
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
fn hypothetical(before: &str, clause: &str, t: &Trigger) -> bool {
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
    HYPO_CUES.any(clause)
}

/// "truce plan", "ceasefire proposal": the ceasefire word names a proposal.
fn proposal_noun_after(text: &str, end: usize) -> bool {
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
fn past_verb_before(before: &str) -> bool {
    const IRREGULAR: &[&str] = &[
        "said", "told", "met", "held", "spoke", "began", "took", "sat", "wrote", "struck", "broke",
        "fought", "made", "gave", "won", "came", "went", "saw", "fled", "shot",
    ];
    const NOT_PAST: &[&str] = &[
        "scheduled",
        "planned",
        "expected",
        "slated",
        "proposed",
        "due",
    ];
    let mut words = before
        .split_whitespace()
        .rev()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .skip_while(|w| matches!(*w, "late" | "early" | "on" | "earlier" | "" | "the"));
    let Some(word) = words.next() else {
        return false;
    };
    if NOT_PAST.contains(&word) {
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
    IRREGULAR.contains(&word) || word.len() > 4 && word.ends_with("ed")
}

/// A ceasefire already in place that the clause only refers to ("remained
/// committed to the truce", "talks to firm up the truce"): not a new event.
fn refers_to_existing(before: &str) -> bool {
    const REFERENCES: &[&str] = &[
        "committed to",
        "commitment to",
        "firm up",
        "shore up",
        "consolidate",
        "uphold",
        "upholding",
        "respect",
        "respecting",
        "preserve",
        "preserving",
        "salvage",
        "strengthen",
        "monitor",
        "monitoring",
        "terms of",
        "text of",
        "implementation of",
        "progress towards",
        "progress toward",
    ];
    let near = tail(before, 40);
    let near = near.trim_end();
    // Up to three words (articles, adjectives) between the cue and the trigger.
    let words: Vec<&str> = near.split_whitespace().collect();
    (0..=3.min(words.len())).any(|skip| {
        let head = words[..words.len() - skip].join(" ");
        REFERENCES.iter().any(|r| head.ends_with(r))
    })
}

/// A ceasefire that is the subject of talks ("talks on the partial ceasefire").
fn is_topic(lower: &str, sentence_start: usize, trigger_start: usize) -> bool {
    let lower = &lower[sentence_start..trigger_start];
    let Some(talk) = TALKS_RE.find_iter(lower).last() else {
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
fn clause_bounds(text: &str, ss: usize, se: usize, ts: usize, te: usize) -> (usize, usize) {
    const BREAKS: &[&str] = &[
        ", who ",
        ", which ",
        ", while ",
        " but ",
        "; ",
        ", after ",
        " after ",
        " while ",
        " whereas ",
        ", as ",
        ", when ",
        ", although ",
        ", saying ",
        ", adding ",
        ", according ",
        " so that ",
        " before ",
        ", where ",
        ": ",
        " - ",
        ", and ",
    ];
    let _ = BREAKS;
    let start = BREAK_SET
        .ac
        .find_iter(&text[ss..ts])
        .map(|m| ss + m.end())
        .max()
        .unwrap_or(ss);
    let end = BREAK_SET
        .ac
        .find_iter(&text[te..se])
        .map(|m| te + m.start())
        .min()
        .unwrap_or(se);
    (start, end)
}

/// Tense of a trigger from the cues before it in its clause.
fn tense_of(before: &str, trigger: &str, sentence: &str) -> Tense {
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
    let fut = nearest_cue(before, &FUTURE_SET);
    let past = nearest_cue(before, &PAST_SET);
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

/// The date expression that belongs to a trigger: the nearest one in the
/// sentence (after the trigger preferred), with whether it is the event's own.
fn pick_date(
    dates: &[DateMention],
    ss: usize,
    t: &Trigger,
    lower: &str,
    _tense: Tense,
    _reference: Option<NaiveDate>,
) -> Option<(DateMention, bool)> {
    let ts = t.start - ss;
    let te = t.end - ss;
    let usable: Vec<&DateMention> = dates
        .iter()
        .filter(|d| {
            // "starting Monday" of a demanded ceasefire is when it would start, still its date.
            !lower[..d.start].trim_end().ends_with("since")
        })
        .collect();
    let best = usable.iter().min_by_key(|d| {
        if d.start >= te {
            d.start - te
        } else {
            (ts - d.end.min(ts)) + 15
        }
    })?;
    Some(((*best).clone(), true))
}

/// The city where the talks of a trigger take place.
fn venue_in<'a>(
    cities: &'a [CityMention],
    ss: usize,
    se: usize,
    t: &Trigger,
) -> Option<&'a CityMention> {
    let _ = t;
    cities
        .iter()
        .filter(|c| c.start >= ss && c.start < se && c.locative)
        .min_by_key(|c| {
            if c.start >= t.start {
                c.start - t.start
            } else {
                (t.start - c.start) * 2
            }
        })
}

/// Scope keywords, each with the scope it signals.
const SCOPE_WORDS: &[(&str, Scope)] = &[
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
fn scopes(sentence: &str) -> Vec<Scope> {
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
fn modality_of(lower: &str, t: &Trigger) -> Modality {
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

/// Who the sentence attributes its claim to.
fn attribution(
    text: &str,
    lower: &str,
    ss: usize,
    se: usize,
    persons: &[Person],
    actors: &[ActorMention],
) -> Option<String> {
    let sent = &text[ss..se];
    // `lower` is the sentence in lower case.
    for m in SPEECH_RE.find_iter(lower) {
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
fn between_parties(text: &str, t: &Trigger, actors: &[&ActorMention]) -> Option<HashSet<String>> {
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

/// Finds trigger words in a sentence (offsets made absolute with `base`).
fn find_triggers(
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

/// Nouns for the people of a side: "officials from X", "the leaders of X".
const SIDE_PEOPLE: &[&str] = &[
    "officials",
    "official",
    "leaders",
    "leader",
    "delegations",
    "delegation",
    "delegates",
    "representatives",
    "negotiators",
    "envoys",
    "ministers",
    "commanders",
    "diplomats",
    "generals",
    "operations",
    "teams",
    "presidents",
    "governments",
    "militaries",
    "armies",
    "chiefs",
    "counterparts",
];

/// After a locative preposition ("in Kyiv", "to Moscow", "the resort of Sharm").
fn is_locative(text: &str, start: usize, _end: usize) -> bool {
    let mut before = text[..start].trim_end_matches(' ');
    let mut word = String::new();
    // Skip one directional adjective: "in eastern Congo".
    for _ in 0..2 {
        word = before
            .rsplit(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(
            word.as_str(),
            "eastern"
                | "western"
                | "northern"
                | "southern"
                | "central"
                | "northeastern"
                | "northwestern"
                | "southeastern"
                | "southwestern"
                | "occupied"
                | "rebel-held"
        ) {
            before = before[..before.len() - word.len()].trim_end_matches(' ');
            continue;
        }
        break;
    }
    // "officials from Thailand", "the leaders of Armenia and Azerbaijan":
    // people of a side, not a place.
    if matches!(word.as_str(), "of" | "from") {
        let head = before[..before.len() - word.len()]
            .trim_end_matches(' ')
            .rsplit(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if SIDE_PEOPLE.contains(&head.as_str()) {
            return false;
        }
    }
    matches!(
        word.as_str(),
        "in" | "at"
            | "to"
            | "from"
            | "near"
            | "into"
            | "outside"
            | "of"
            | "toward"
            | "towards"
            | "via"
            | "visit"
            | "visited"
            | "visiting"
            | "visits"
            | "across"
            | "inside"
            | "around"
            | "reached"
            | "leave"
            | "left"
            | "arrived"
            | "over"
            | "on"
            | "throughout"
    )
}

/// "Jeddah, Saudi Arabia": a state name follows the city.
fn followed_by_state(text: &str, end: usize) -> bool {
    text[end..].starts_with(", ")
}

/// "the Egyptian resort of", "the Saudi port city": a demonym naming a place.
fn demonym_is_place(lower: &str, end: usize) -> bool {
    let after = lower[end..].trim_start();
    let next = after
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    let next2: Vec<&str> = after.split_whitespace().take(3).collect();
    const PLACE: &[&str] = &[
        "resort",
        "city",
        "capital",
        "town",
        "port",
        "coast",
        "soil",
        "territory",
        "village",
        "region",
        "border",
        "airspace",
        "waters",
        "province",
        "oblast",
        "coastal",
        "seaside",
        "red",
        // People held or harmed are not a side: "hostages for Palestinian prisoners".
        "prisoners",
        "detainees",
        "hostages",
        "captives",
        "civilians",
        "refugees",
    ];
    PLACE.contains(&next)
        || next2.iter().any(|w| *w == "city" || *w == "resort")
            && !next2
                .iter()
                .any(|w| *w == "delegation" || *w == "officials")
}

/// The object of strikes or attacks, not a side of the ceasefire.
fn is_target(lower: &str, start: usize) -> bool {
    let begin = start.saturating_sub(40);
    let mut b = begin;
    while !lower.is_char_boundary(b) {
        b += 1;
    }
    let before = lower[b..start].trim_end();
    [
        "attacks on",
        "strikes on",
        "striking",
        "strike",
        "attacking",
        "targeting",
        "shelling",
        "attack on",
        "strikes against",
        "attacks against",
        "to strike",
        "hit",
    ]
    .iter()
    .any(|c| before.ends_with(c))
}

/// Marks hosts and mediators: "hosted by X", "brokered by X, Y and Z",
/// "X, which hosted", "ask X to host", "the Saudi hosts".
#[allow(clippy::needless_range_loop)] // reads neighbours' offsets while marking one
fn mark_roles(lower: &str, actors: &mut [ActorMention]) {
    for i in 0..actors.len() {
        let (s, e) = (actors[i].start, actors[i].end);
        let mut b = s.saturating_sub(80);
        while !lower.is_char_boundary(b) {
            b += 1;
        }
        let before = &lower[b..s];
        let mut f = (e + 30).min(lower.len());
        while !lower.is_char_boundary(f) {
            f -= 1;
        }
        let after = &lower[e..f];
        // "brokered by Egypt, Qatar, Turkey and the United States": walk back over a list.
        let list_prefix = before
            .rsplit_once(" by ")
            .filter(|(_, tail)| tail.split([',']).all(|p| p.len() < 40) && !tail.contains('.'));
        let by_mediator = list_prefix.is_some_and(|(head, tail)| {
            let verb_ok = [
                "hosted",
                "brokered",
                "mediated",
                "facilitated",
                "organised",
                "organized",
                "sponsored",
                "opened",
                "moderated",
                "co-chaired",
                "presided",
                "convened",
                "chaired",
                "led",
            ]
            .iter()
            .any(|v| {
                head.trim_end().ends_with(v) || head.trim_end().ends_with(&format!("{v} jointly"))
            });
            let tail_ok = tail
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " ,.'-".contains(c))
                && !tail.contains(" with ");
            verb_ok && tail_ok && !head.trim_end().ends_with("led")
        });
        let after = after.strip_prefix("'s").unwrap_or(after);
        let host_before = [
            "mediation of",
            "mediated by",
            "auspices of",
            "presence of",
            "good offices of",
            "invitation of",
            "with the help of",
            "hosts",
            "host",
            "hosting",
            "mediator",
            "mediators",
            "ask",
            "asked",
        ]
        .iter()
        .any(|c| {
            before.trim_end().ends_with(c)
                && (*c != "ask" && *c != "asked"
                    || after.trim_start().starts_with("to host")
                    || after.trim_start().starts_with("to mediate"))
        });
        let host_after = [
            " hosts",
            " hosted",
            " mediated",
            " mediates",
            " brokered",
            " will host",
            " to host",
            " which hosted",
            ", which hosted",
            ", which mediated",
            " mediators",
            " mediator",
            " as mediator",
            " as host",
            " hosting",
            " acting as guarantor",
            " acting as mediator",
            " as guarantor",
            " as a guarantor",
            " as guarantors",
            " acting as guarantors",
            " shuttling",
            " shuttled",
            " facilitated",
            " facilitating",
        ]
        .iter()
        .any(|c| after.starts_with(c));
        // "Venezuela and Cuba acting as guarantors", "Saudi Arabia and the
        // United States shuttling proposals": the role word follows the list.
        let mut g = (e + 80).min(lower.len());
        while !lower.is_char_boundary(g) {
            g -= 1;
        }
        let list_role = LIST_ROLE_RE.is_match(&lower[e..g])
            // "Omani-mediated talks", "under Saudi-U.S. mediation", "U.N. auspices".
            || HOST_AFTER_RE.is_match(&lower[e..g]);
        if by_mediator || host_before || host_after || list_role {
            actors[i].mediator = true;
        }
    }
}

/// A known conflict pair with both sides named in the document, and how
/// often they are named together.
type ConflictPair = (&'static str, &'static str, usize);

/// The known conflict pairs (in [`CONFLICTS`] order) whose two sides the
/// document names: computed once, then each sentence only checks its actors.
fn conflict_pairs(counts: &HashMap<&str, usize>) -> Vec<ConflictPair> {
    CONFLICTS
        .iter()
        .filter_map(|&(x, y)| Some((x, y, counts.get(x)? + counts.get(y)?)))
        .collect()
}

/// The conflict pair a sentence is about: both sides named in it first, then
/// one side named in it (the pair best represented in the document).
fn sentence_dyad(
    sent_actors: &[&ActorMention],
    pairs: &[ConflictPair],
) -> Option<(&'static str, &'static str)> {
    let here = |code: &str| sent_actors.iter().any(|a| a.code == code);
    pairs
        .iter()
        .filter(|(x, y, _)| here(x) || here(y))
        .max_by_key(|(x, y, n)| (here(x) && here(y), *n))
        .map(|&(x, y, _)| (x, y))
}

/// The most mentioned known conflict pair with both sides in the document.
fn pick_dyad(pairs: &[ConflictPair]) -> Option<(&'static str, &'static str)> {
    pairs
        .iter()
        .max_by_key(|(_, _, n)| *n)
        .map(|&(x, y, _)| (x, y))
}

/// A leading "CITY, Country —" dateline.
struct Dateline {
    end: usize,
    city: String,
    country: String,
}

fn find_dateline(text: &str, lex: &Lexicon) -> Option<Dateline> {
    // Look at the start of each of the first paragraphs.
    let mut offset = 0;
    for para in text.split("\n\n").take(4) {
        if let Some(c) = DATELINE_RE.captures(para) {
            // "CAIRO/JERUSALEM (Reuters) -": the first city is the dateline's.
            let city = para[c.name("city").unwrap().range()].trim();
            let city = city.split('/').next().unwrap_or(city).trim();
            let hits = lex.find(&title_case_word(city));
            for h in hits {
                for e in &lex.entries[h.pattern] {
                    if let Target::City { name, country } = &e.target {
                        return Some(Dateline {
                            end: offset + c.get(0).unwrap().end(),
                            city: name.clone(),
                            country: country.clone(),
                        });
                    }
                }
            }
        }
        offset += para.len() + 2;
    }
    None
}

fn title_case_word(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
        start = !c.is_ascii_alphabetic();
    }
    out
}

/// Sentences of the folded text; the first paragraph is the headline when it
/// matches the title.
fn split_sentences(text: &str, lower: &str, title: Option<&str>) -> Vec<Sentence> {
    const ABBREV: &[&str] = &[
        "mr", "mrs", "ms", "dr", "st", "gen", "lt", "col", "sen", "rep", "gov", "prof", "jr", "sr",
        "no", "vs", "inc", "ltd", "co", "a.m", "p.m", "jan", "feb", "aug", "sept", "sep", "oct",
        "nov", "dec", "u.s", "u.n", "e.u", "u.k", "maj", "capt", "sgt", "adm", "rev", "fig",
        "approx", "est", "dept",
    ];
    let title_folded = title.map(crate::lexicon::fold);
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut para_start = 0;
    let mut first_para = true;
    for para in text.split("\n\n") {
        let p_start = para_start;
        para_start += para.len() + 2;
        let headline = first_para
            && title_folded
                .as_deref()
                .is_some_and(|t| t.trim() == para.trim())
            && !para.trim_end().ends_with(['.', '"']);
        first_para = false;
        let mut s = p_start;
        let p_end = p_start + para.len();
        let mut i = p_start;
        while i < p_end {
            let b = bytes[i];
            let boundary = if b == b'\n' {
                true
            } else if matches!(b, b'.' | b'!' | b'?') {
                // Consume closing quotes/brackets.
                let mut j = i + 1;
                while j < p_end && matches!(bytes[j], b'"' | b'\'' | b')') {
                    j += 1;
                }
                let next_ok = j >= p_end
                    || (bytes[j] == b' '
                        && bytes.get(j + 1).is_some_and(|n| {
                            n.is_ascii_uppercase()
                                || n.is_ascii_digit()
                                || matches!(n, b'"' | b'\'' | b'(')
                        }));
                if !next_ok {
                    false
                } else if b == b'.' {
                    let word_start = text[p_start..i]
                        .rfind([' ', '(', '"'])
                        .map_or(p_start, |k| p_start + k + 1);
                    let word = &lower[word_start..i];
                    let single = word.len() == 1 && word.chars().all(|c| c.is_ascii_alphabetic());
                    if ABBREV.contains(&word) || single {
                        // "U.S. The" ends a sentence only before a typical opener.
                        let next_word: String = text[j..p_end]
                            .trim_start()
                            .chars()
                            .take_while(|c| c.is_ascii_alphabetic())
                            .collect();
                        word == "u.s"
                            && ["The", "He", "She", "It", "They", "But", "In", "On"]
                                .contains(&next_word.as_str())
                    } else {
                        true
                    }
                } else {
                    true
                }
            } else {
                false
            };
            if boundary {
                let mut end = i + 1;
                while end < p_end && matches!(bytes[end], b'"' | b'\'' | b')') {
                    end += 1;
                }
                if b == b'\n' {
                    end = i;
                }
                push_sentence(&mut out, text, s, end, headline);
                s = end;
                i = end.max(i + 1);
                continue;
            }
            i += 1;
        }
        push_sentence(&mut out, text, s, p_end, headline);
    }
    out
}

fn push_sentence(out: &mut Vec<Sentence>, text: &str, start: usize, end: usize, headline: bool) {
    let slice = &text[start..end];
    let lead = slice.len() - slice.trim_start().len();
    let trail = slice.len() - slice.trim_end().len();
    let (s, e) = (start + lead, end - trail);
    if e > s {
        out.push(Sentence {
            start: s,
            end: e,
            headline,
        });
    }
}

/// A run of capitalised words (with name particles inside) on one line.
struct Run {
    start: usize,
    tokens: Vec<(usize, usize)>,
}

fn is_particle(w: &str) -> bool {
    matches!(
        w,
        "bin"
            | "bint"
            | "ibn"
            | "al"
            | "el"
            | "de"
            | "da"
            | "di"
            | "van"
            | "von"
            | "der"
            | "du"
            | "la"
            | "le"
            | "abu"
            | "ben"
            | "dos"
            | "das"
            | "del"
            | "della"
            | "ter"
            | "op"
    )
}

fn is_month_or_day(w: &str) -> bool {
    matches!(
        w,
        "january"
            | "february"
            | "march"
            | "april"
            | "may"
            | "june"
            | "july"
            | "august"
            | "september"
            | "october"
            | "november"
            | "december"
            | "monday"
            | "tuesday"
            | "wednesday"
            | "thursday"
            | "friday"
            | "saturday"
            | "sunday"
            | "jan"
            | "feb"
            | "mar"
            | "apr"
            | "jun"
            | "jul"
            | "aug"
            | "sep"
            | "sept"
            | "oct"
            | "nov"
            | "dec"
    )
}

/// Maximal runs of capitalised words (names, titles, places) separated only by spaces.
fn capital_runs(text: &str, lower_text: &str) -> Vec<Run> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut current: Option<Run> = None;
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        if !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < n
            && (bytes[i].is_ascii_alphanumeric()
                || (matches!(bytes[i], b'\'' | b'-' | b'.')
                    && i + 1 < n
                    && bytes[i + 1].is_ascii_alphabetic()))
        {
            i += 1;
        }
        // A trailing dot of an abbreviation ("U.S.").
        let mut end = i;
        if end < n && bytes[end] == b'.' && text[start..end].contains('.') {
            end += 1;
            i = end;
        }
        let word = &text[start..end];
        let lower = &lower_text[start..end];
        let cap = word.starts_with(|c: char| c.is_ascii_uppercase())
            || lower.starts_with("al-")
                && word.len() > 3
                && word.as_bytes()[3].is_ascii_uppercase()
            || lower.starts_with("el-")
                && word.len() > 3
                && word.as_bytes()[3].is_ascii_uppercase();
        let particle = is_particle(lower) && !word.starts_with(|c: char| c.is_ascii_uppercase());
        // Only single spaces join words into a run.
        let joined = current.as_ref().is_some_and(|r| {
            let last_end = r.tokens.last().unwrap().1;
            &text[last_end..start] == " "
        });
        if cap || (particle && joined) {
            if joined {
                current.as_mut().unwrap().tokens.push((start, end));
            } else {
                if let Some(r) = current.take() {
                    runs.push(r);
                }
                current = Some(Run {
                    start,
                    tokens: vec![(start, end)],
                });
            }
        } else if let Some(r) = current.take() {
            runs.push(r);
        }
    }
    if let Some(r) = current.take() {
        runs.push(r);
    }
    // Trailing particles are not part of a name.
    for r in &mut runs {
        while r.tokens.len() > 1
            && is_particle(&lower_text[r.tokens.last().unwrap().0..r.tokens.last().unwrap().1])
        {
            r.tokens.pop();
        }
    }
    runs
}

/// More than 60% of five or more words capitalised: a Title Case headline.
fn is_title_case(sentence: &str) -> bool {
    // Words split at white space (the text is ASCII, where these bytes are
    // all of `char::is_whitespace`); only a word's first byte matters.
    let (mut words, mut caps) = (0, 0);
    let mut at_start = true;
    for &b in sentence.as_bytes() {
        if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            at_start = true;
        } else if at_start {
            at_start = false;
            if b.is_ascii_alphabetic() {
                words += 1;
                caps += usize::from(b.is_ascii_uppercase());
            }
        }
    }
    words >= 5 && caps * 10 > words * 7
}

fn byline_before(text: &str, start: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let prefix = text[line_start..start].trim().to_ascii_lowercase();
    matches!(
        prefix.as_str(),
        "by" | "author:" | "written by" | "words by" | "reporting by" | "by:"
    )
}

/// The title words before a name and the side they name
/// ("Ukrainian Foreign Minister", "Russia's team was led by presidential aide").
fn title_before(
    text: &str,
    lower: &str,
    start: usize,
    actors: &[ActorMention],
) -> (Option<String>, Option<String>) {
    let line_start = text[..start]
        .rfind(['\n', ',', ';', '(', '"'])
        .map_or(0, |i| i + 1);
    let mut span_start = start;
    // Walk back over title words, demonyms and "of".
    let prefix = &text[line_start..start];
    // Words separated by single spaces, from the last one back.
    let mut word_end = start;
    for w in prefix.rsplit(' ') {
        let ws = word_end - w.len();
        word_end = ws.saturating_sub(1);
        if w.is_empty() {
            continue;
        }
        let lw = lower_of(text, lower, w.trim_end_matches("'s").trim_end_matches('.'));
        let is_actor = actors.iter().any(|a| a.start == ws && !a.from_person);
        if TITLES.contains(lw) || is_actor || lw == "u.s" || lw == "s" {
            span_start = ws;
        } else {
            break;
        }
    }
    let title_text = text[span_start..start].trim();
    // The title as written; the resolver maps it to a canonical role when needed.
    let role = title_text
        .split(' ')
        .any(|w| {
            let w = lower_of(text, lower, w.trim_end_matches("'s"));
            TITLES.contains(w)
                && !matches!(
                    w,
                    "the" | "of" | "his" | "her" | "u.s." | "u.s" | "us" | "un" | "eu" | "uk"
                )
        })
        .then(|| title_text.to_owned());
    let mut affiliation = actors
        .iter()
        .rfind(|a| a.start >= span_start && a.end <= start && !a.from_person)
        .map(|a| a.code.clone());
    if affiliation.is_none() {
        // "Russia's team was led by presidential aide X", "a Ukrainian team led by X".
        let mut b = start.saturating_sub(70);
        while !text.is_char_boundary(b) {
            b += 1;
        }
        let window = &lower[b..start];
        if let Some(i) = window.rfind("led by").or_else(|| window.rfind("headed by")) {
            let abs = b + i;
            affiliation = actors
                .iter()
                .rfind(|a| a.end <= abs && abs - a.end < 40 && !a.from_person)
                .map(|a| a.code.clone());
        }
    }
    (role, affiliation)
}

/// Document-level repair of the drafts into final candidates.
fn finish_document(
    drafts: Vec<Draft>,
    reference: Option<NaiveDate>,
    dateline: Option<&Dateline>,
) -> Vec<TalksEvent> {
    let mut events: Vec<Draft> = Vec::new();
    let mut rosters: Vec<Draft> = Vec::new();
    for mut d in drafts {
        if d.both_sides && d.event.parties.is_empty() {
            match events.iter().rev().find(|e| e.event.parties.len() >= 2) {
                Some(prev) => {
                    d.event.parties = prev.event.parties.clone();
                    if d.event.date.date.is_none() {
                        d.event.date = prev.event.date.clone();
                    }
                }
                None => continue,
            }
        }
        // Dates relative to the previous dated event ("a day earlier", "that day").
        if let Some(offset) = d.anchor_offset {
            let anchor = events
                .iter()
                .rev()
                .find(|e| {
                    e.event.date.date.is_some() && e.event.date.precision == DatePrecision::Day
                })
                .and_then(|e| e.event.date.date);
            d.event.date.date = anchor.map(|a| a + chrono::Duration::days(offset));
            d.event.date.precision = if d.event.date.date.is_some() {
                DatePrecision::Day
            } else {
                DatePrecision::Unspecified
            };
            if d.event.event_type == EventType::TalksHeld
                && d.event.date.date.zip(reference).is_some_and(|(x, r)| x > r)
            {
                d.event.event_type = EventType::TalksAnnounced;
                d.event.status = EventStatus::Planned;
            }
        }
        if d.anaphoric && d.event.event_type == EventType::AgreementReached {
            if d.event.date.date.is_none() {
                // "The agreement was signed by X and Y": the same agreement.
                if let Some(prev) = events.iter_mut().rev().find(|e| {
                    matches!(
                        e.event.event_type,
                        EventType::AgreementReached | EventType::CeasefireAgreed
                    )
                }) {
                    merge_participants(&mut prev.event, &d.event);
                    continue;
                }
            } else {
                d.anaphoric = false;
            }
        }
        if d.roster {
            rosters.push(d);
            continue;
        }
        if d.anaphoric {
            // Enrich the most recent talks event; never create one.
            let target = events.iter_mut().rev().find(|e| {
                e.event.event_type.family() == EventFamily::Talks
                    && d.event.event_type.family() == EventFamily::Talks
                    && !d
                        .event
                        .mediators
                        .iter()
                        .any(|m| e.event.parties.iter().any(|p| p.code == m.code))
            });
            if let Some(prev) = target {
                for m in d.event.mediators.drain(..) {
                    if !prev.event.mediators.iter().any(|x| x.code == m.code)
                        && !prev.event.parties.iter().any(|x| x.code == m.code)
                    {
                        prev.event.mediators.push(m);
                    }
                }
                merge_participants(&mut prev.event, &d.event);
                if prev.event.venue.city.is_none() {
                    prev.event.venue = d.event.venue.clone();
                }
            }
            continue;
        }
        // Same event told twice in one document: merge.
        let target = events.iter_mut().rev().find(|e| {
            let same_family = e.event.event_type.family() == d.event.event_type.family()
                && (e.event.event_type == d.event.event_type
                    || e.event.event_type.family() == EventFamily::Talks);
            let agreement_into_ceasefire = d.event.event_type == EventType::AgreementReached
                && e.event.event_type == EventType::CeasefireAgreed
                || e.event.event_type == EventType::AgreementReached
                    && d.event.event_type == EventType::CeasefireAgreed;
            let dates_ok = match (e.event.date.date, d.event.date.date) {
                (Some(a), Some(b)) => {
                    a == b || agreement_into_ceasefire && (a - b).num_days().abs() <= 3
                }
                _ => true,
            };
            (same_family || agreement_into_ceasefire)
                && same_party_set(&e.event.parties, &d.event.parties)
                && dates_ok
        });
        if let Some(prev) = target {
            if d.event.event_type == EventType::CeasefireAgreed
                && prev.event.event_type == EventType::AgreementReached
            {
                prev.event.event_type = EventType::CeasefireAgreed;
            }
            if prev.event.date.date.is_none() {
                prev.event.date = d.event.date.clone();
            }
            if prev.event.event_type == EventType::TalksAnnounced
                && d.event.event_type == EventType::TalksHeld
                && prev.event.date.date == d.event.date.date
                && d.event.date.date.is_some()
            {
                prev.event.event_type = EventType::TalksHeld;
                prev.event.status = d.event.status;
            }
            for m in d.event.mediators.drain(..) {
                if !prev.event.mediators.iter().any(|x| x.code == m.code) {
                    prev.event.mediators.push(m);
                }
            }
            merge_participants(&mut prev.event, &d.event);
            if prev.event.venue.city.is_none() {
                prev.event.venue = d.event.venue.clone();
            }
            for s in &d.event.scope {
                if !prev.event.scope.contains(s) {
                    prev.event.scope.push(*s);
                }
            }
            if prev.event.modality == Modality::Unspecified {
                prev.event.modality = d.event.modality;
            }
            if prev.event.effective.is_none() {
                prev.event.effective = d.event.effective.clone();
            }
            prev.event.evidence.append(&mut d.event.evidence);
            continue;
        }
        events.push(d);
    }
    // A delegation roster joins the latest talks of its sides told before it
    // (or, failing that, after it: "hosted by" may come later), held talks
    // first unless the roster speaks of the future.
    for d in rosters {
        let sides: Vec<String> = d
            .event
            .parties
            .iter()
            .chain(&d.event.mediators)
            .map(|a| a.code.clone())
            .collect();
        let fits = |e: &Draft| {
            e.event.event_type.family() == EventFamily::Talks
                && sides.iter().all(|c| {
                    e.event.parties.iter().any(|p| &p.code == c)
                        || e.event.mediators.iter().any(|m| &m.code == c)
                })
        };
        let planned = d.event.event_type == EventType::TalksAnnounced;
        let tense_ok = |e: &Draft| (e.event.event_type == EventType::TalksAnnounced) == planned;
        let preferred = events
            .iter()
            .rposition(|e| e.pos < d.pos && fits(e) && tense_ok(e))
            .or_else(|| events.iter().rposition(|e| e.pos < d.pos && fits(e)))
            .or_else(|| events.iter().position(|e| fits(e) && tense_ok(e)))
            .or_else(|| events.iter().position(fits));
        if let Some(i) = preferred {
            merge_participants(&mut events[i].event, &d.event);
        }
    }
    // Venues and mediators passed between events read the events as they
    // were before this pass: first work out what each event takes (cloning
    // only what it takes), then apply.
    let taken: Vec<(Option<Venue>, Option<Vec<Actor>>)> = events
        .iter()
        .map(|d| {
            let e = &d.event;
            let mut venue: Option<Venue> = None;
            let mut mediators: Option<Vec<Actor>> = None;
            // Talks on the same day with a shared side share a venue ("separate meetings").
            if e.venue.city.is_none()
                && e.event_type.family() == EventFamily::Talks
                && let Some(v) = events.iter().map(|o| &o.event).find(|o| {
                    o.event_type.family() == EventFamily::Talks
                        && o.venue.city.is_some()
                        && o.date.date.is_some()
                        && o.date.date == e.date.date
                        && o.parties
                            .iter()
                            .any(|p| e.parties.iter().any(|q| q.code == p.code))
                })
            {
                venue = Some(v.venue.clone());
            }
            // Agreements and ceasefires reached at talks inherit their hosts and venue.
            if matches!(
                e.event_type,
                EventType::AgreementReached | EventType::CeasefireAgreed
            ) && let Some(talks) = events.iter().map(|o| &o.event).find(|o| {
                o.event_type == EventType::TalksHeld && same_party_set(&o.parties, &e.parties)
            }) {
                if e.mediators.is_empty() {
                    let mut m = talks.mediators.clone();
                    m.retain(|m| !e.parties.iter().any(|p| p.code == m.code));
                    mediators = Some(m);
                }
                let city_none = venue.as_ref().unwrap_or(&e.venue).city.is_none();
                if city_none && (e.date.date.is_none() || e.date.date == talks.date.date) {
                    venue = Some(talks.venue.clone());
                }
            }
            (venue, mediators)
        })
        .collect();
    for (d, (venue, mediators)) in events.iter_mut().zip(taken) {
        let e = &mut d.event;
        if let Some(v) = venue {
            e.venue = v;
        }
        if let Some(m) = mediators {
            e.mediators = m;
        }
        // A dateline city is the venue of in-person talks held near the publication day.
        if e.venue.city.is_none()
            && let Some(dl) = dateline
            && matches!(
                e.event_type,
                EventType::TalksHeld | EventType::AgreementReached
            )
            && !matches!(e.modality, Modality::Call | Modality::Video)
            && e.date
                .date
                .zip(reference)
                .is_some_and(|(x, r)| (r - x).num_days().abs() <= 3)
        {
            e.venue = Venue {
                city: Some(dl.city.clone()),
                country: Some(dl.country.clone()),
                place: None,
            };
        }
        if e.modality == Modality::Unspecified
            && e.event_type.family() == EventFamily::Talks
            && e.venue.city.is_some()
        {
            e.modality = Modality::InPerson;
        }
        e.scope.sort();
        e.scope.dedup();
        let _ = d.dated;
        let _ = d.pos;
    }
    // A vaguer mention of an event told in full elsewhere in the document (a
    // headline's "Israel shatters ceasefire" beside the dated report of
    // Israel ending its ceasefire with Hamas): one event, not two.
    let vaguer: Vec<bool> = events
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let e = &d.event;
            e.date.date.is_none()
                && !e.parties.is_empty()
                && events.iter().enumerate().any(|(j, o)| {
                    j != i
                        && o.event.event_type == e.event_type
                        && o.event.date.date.is_some()
                        && e.parties
                            .iter()
                            .all(|p| o.event.parties.iter().any(|q| q.code == p.code))
                })
        })
        .collect();
    events
        .into_iter()
        .zip(vaguer)
        .filter(|(_, vaguer)| !vaguer)
        .map(|(d, _)| d.event)
        .collect()
}

/// The same set of party codes (what comparing sorted, deduplicated
/// `party_codes()` tells), without allocating.
fn same_party_set(a: &[Actor], b: &[Actor]) -> bool {
    a.iter().all(|x| b.iter().any(|y| y.code == x.code))
        && b.iter().all(|y| a.iter().any(|x| x.code == y.code))
}

fn merge_participants(into: &mut TalksEvent, from: &TalksEvent) {
    for p in &from.participants {
        if !into.participants.iter().any(|q| q.name == p.name) {
            into.participants.push(p.clone());
        }
    }
}
