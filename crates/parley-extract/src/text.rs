//! Stage 1: the text as the rules see it: folded to ASCII with a map back to
//! character offsets, split into sentences, with its dateline.

use crate::lexicon::{Lexicon, fold_char};
use crate::rules::Rules;
use std::collections::HashSet;

/// ASCII-folded document text with a map back to character offsets.
pub(crate) struct Folded {
    pub(crate) text: String,
    /// `map[i]` is the character offset in the original text of folded byte `i`;
    /// one extra entry for the end.
    pub(crate) map: Vec<u32>,
    /// `bytes[c]` is the byte offset in the original text of character `c`;
    /// one extra entry for the end. Turns character spans back into slices
    /// without walking the text from its start each time.
    pub(crate) bytes: Vec<u32>,
}

impl Folded {
    pub(crate) fn new(original: &str) -> Folded {
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
    pub(crate) fn original<'a>(&self, original: &'a str, start: u32, end: u32) -> &'a str {
        let at = |c: u32| self.bytes[(c as usize).min(self.bytes.len() - 1)] as usize;
        &original[at(start)..at(end.max(start))]
    }

    pub(crate) fn chars(&self, start: usize, end: usize) -> (u32, u32) {
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
pub(crate) type Span = (usize, usize);

/// A sentence (folded offsets).
#[derive(Debug, Clone)]
pub(crate) struct Sentence {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) headline: bool,
}

/// A leading "CITY, Country —" dateline: where the report was filed, the
/// city a later "here" ("talks held here") refers to.
pub(crate) struct Dateline {
    /// Byte offset (folded text) just past the dateline.
    pub(crate) end: usize,
    /// The city, as the knowledge base names it.
    pub(crate) city: String,
    /// Alpha-3 of its state.
    pub(crate) country: String,
    /// Latitude of the city, when the knowledge base has it.
    pub(crate) lat: Option<f64>,
    /// Longitude of the city, when the knowledge base has it.
    pub(crate) lon: Option<f64>,
}

pub(crate) fn find_dateline(
    r: &Rules,
    text: &str,
    lex: &Lexicon,
    states: &HashSet<&str>,
) -> Option<Dateline> {
    // Look at the start of each of the first paragraphs.
    let mut offset = 0;
    for para in text.split("\n\n").take(4) {
        if let Some(c) = r.dateline.captures(para) {
            // "CAIRO/JERUSALEM (Reuters) -": the first city is the dateline's.
            let city = para[c.name("city").unwrap().range()].trim();
            let city = city.split('/').next().unwrap_or(city).trim();
            let hits = lex.find(&title_case_word(city));
            for h in hits {
                if let Some((name, country)) = lex.city_for(h.pattern, states) {
                    let (lat, lon) = lex.coordinates(name, country).unzip();
                    return Some(Dateline {
                        end: offset + c.get(0).unwrap().end(),
                        city: name.to_owned(),
                        country: country.to_owned(),
                        lat,
                        lon,
                    });
                }
            }
        }
        offset += para.len() + 2;
    }
    None
}

pub(crate) fn title_case_word(s: &str) -> String {
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
pub(crate) fn split_sentences(
    r: &Rules,
    text: &str,
    lower: &str,
    title: Option<&str>,
) -> Vec<Sentence> {
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
                    if r.abbreviations.contains(word) || single {
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

pub(crate) fn push_sentence(
    out: &mut Vec<Sentence>,
    text: &str,
    start: usize,
    end: usize,
    headline: bool,
) {
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
