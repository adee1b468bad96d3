//! Shared matching tools of the stages: ASCII regular expressions, cue-word
//! automata and small word-set helpers.

use crate::document::Document;
use crate::text::*;
use std::collections::HashSet;
use std::sync::LazyLock;

/// `PARLEY_DEBUG=1` prints each trigger sentence's candidates and actors to stderr.
pub(crate) static DEBUG: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("PARLEY_DEBUG").is_some());

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

    pub(crate) fn check(hay: &str) -> &[u8] {
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

/// A compiled list of cue words (one Aho-Corasick automaton), matched as
/// whole words, ASCII case-insensitively: the words are lower-cased and the
/// automaton runs over lower-case text (the same matches as a
/// case-insensitive automaton over the text, but it can skip ahead with a
/// literal prefilter).
pub(crate) struct Cues {
    pub(crate) ac: aho_corasick::AhoCorasick,
}

impl Cues {
    pub(crate) fn new(words: &[&str]) -> Cues {
        let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
        Cues {
            ac: aho_corasick::AhoCorasickBuilder::new()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&lower)
                .expect("cue words compile"),
        }
    }

    /// Whole-word matches as (start, end).
    pub(crate) fn matches<'a>(
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
    pub(crate) fn matches_with_id<'a>(
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
    pub(crate) fn any(&self, hay: &str) -> bool {
        self.matches(hay, true).next().is_some()
    }

    /// Distance from the end of `hay` to the nearest cue start (cues may be word prefixes).
    pub(crate) fn nearest(&self, hay: &str) -> Option<usize> {
        self.matches(hay, false).map(|(s, _)| hay.len() - s).min()
    }
}

/// FNV-1a: the word sets below are asked about every capitalised word, and
/// their keys are short, where this beats the default (DoS-resistant) hash.
#[derive(Default)]
pub(crate) struct Fnv(u64);

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

pub(crate) type WordSet = HashSet<String, std::hash::BuildHasherDefault<Fnv>>;

/// The lower-case copy of `part`, a slice of `text`: `lower` is
/// `text.to_ascii_lowercase()`, so the same byte range.
pub(crate) fn lower_of<'a>(text: &str, lower: &'a str, part: &str) -> &'a str {
    let at = part.as_ptr() as usize - text.as_ptr() as usize;
    debug_assert!(at + part.len() <= text.len());
    &lower[at..at + part.len()]
}

pub(crate) fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub(crate) fn char_text(doc: &Document, folded: &Folded, start: usize, end: usize) -> String {
    let (s, e) = folded.chars(start, end);
    folded.original(&doc.text, s, e).to_owned()
}

/// Distance from the end of `before` to the nearest cue in it, if any.
pub(crate) fn nearest_cue(before: &str, cues: &Cues) -> Option<usize> {
    cues.nearest(before)
}

/// Contains `word` as a whole word (or phrase).
pub(crate) fn has_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let b = hay.as_bytes();
        let before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let after = i + word.len() >= b.len() || !b[i + word.len()].is_ascii_alphanumeric();
        before && after
    })
}
