//! Stage 2b: person mentions: known people, capitalised full names, bylines,
//! surnames of people named earlier, and posts named without a name.

use crate::extract::Extractor;
use crate::lexicon::Target;
use crate::matching::*;
use crate::mentions::*;
use crate::rules::Rules;
use crate::text::*;
use chrono::NaiveDate;

/// A person named in the text (folded offsets).
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
    pub(crate) kb_id: Option<String>,
    pub(crate) source: &'static str,
    pub(crate) role: Option<String>,
    pub(crate) affiliation: Option<String>,
}

impl Extractor {
    /// Finds person names: known people, capitalised full names, bylines,
    /// photo credits and surnames of people already named.
    pub(crate) fn find_persons(
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
            let (role, aff) = title_before(&self.rules, text, lower, *s, actors);
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
        // Spans taken by places, states and organisations. A town known only
        // from the gazetteer blocks softly: it cannot start a name, but it
        // does not cut one either ("Dmytro Basmat": Basmat is also a town).
        let mut mask = vec![false; text.len() + 1];
        let mut soft = vec![false; text.len() + 1];
        for h in hits.iter().filter(|h| {
            !self.lex.entries[h.pattern]
                .iter()
                .any(|e| matches!(e.target, Target::Person(_)))
        }) {
            let m = if self.lex.gazetteer_only(h.pattern) {
                &mut soft
            } else {
                &mut mask
            };
            m[h.start..h.end].iter_mut().for_each(|m| *m = true);
        }
        let is_blocked_span = |s: usize, e: usize| mask[s..e.max(s)].iter().any(|&m| m);
        let is_soft_span = |s: usize, e: usize| soft[s..e.max(s)].iter().any(|&m| m);
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
                let is_blocked = is_blocked_span(ts, te) || is_soft_span(ts, te);
                if self.rules.titles.contains(word)
                    || self.rules.function_words.contains(word)
                    || is_blocked
                    || word.len() < 2
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
                .any(|w| self.rules.non_names.contains(w.trim_end_matches("'s")))
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
            let (role, aff) = title_before(&self.rules, text, lower, s, actors);
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
                if self.rules.function_words.contains(lower_word)
                    || self.rules.titles.contains(lower_word)
                {
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
                let (role, _) = title_before(&self.rules, text, lower, ts, actors);
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
    pub(crate) fn role_references(
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
            let Some((phrase, end)) = role_phrase(&self.rules, text, pos) else {
                continue;
            };
            // A name right after the post: the name itself was found already.
            if next_word_is_name(&self.rules, text, end)
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
        for c in self.rules.role_of.captures_iter(lower) {
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
    pub(crate) fn holder(
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
}

/// The longest post wording starting at `pos` (after spaces), up to five
/// words, that the knowledge base knows; with its end offset.
pub(crate) fn role_phrase<'t>(r: &Rules, text: &'t str, pos: usize) -> Option<(&'t str, usize)> {
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
        if len == 0
            || !r
                .role_words
                .words
                .iter()
                .any(|w| w.eq_ignore_ascii_case(word))
        {
            break;
        }
        let end = cursor + len;
        if r.role_heads
            .words
            .iter()
            .any(|w| w.eq_ignore_ascii_case(word))
        {
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
    if ends.is_empty() || next_word_is_name(r, text, stop) {
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
pub(crate) fn next_word_is_name(r: &Rules, text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches(' ');
    if rest.len() == text[end..].len() {
        return false;
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    word.starts_with(|c: char| c.is_ascii_uppercase())
        && !r
            .function_words
            .contains(word.to_ascii_lowercase().as_str())
}

/// A name followed by a verb of saying is the source of the sentence, not
/// one of the people it lists.
pub(crate) fn is_speaker(text: &str, end: usize) -> bool {
    let after = text[end..].trim_start_matches(['"', '\'', ' ']);
    ["said", "says", "told", "wrote", "added"]
        .iter()
        .any(|v| after.starts_with(v))
}

/// A run of capitalised words (with name particles inside) on one line.
pub(crate) struct Run {
    pub(crate) start: usize,
    pub(crate) tokens: Vec<(usize, usize)>,
}

pub(crate) fn is_particle(w: &str) -> bool {
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

pub(crate) fn is_month_or_day(w: &str) -> bool {
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
pub(crate) fn capital_runs(text: &str, lower_text: &str) -> Vec<Run> {
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
pub(crate) fn is_title_case(sentence: &str) -> bool {
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

pub(crate) fn byline_before(text: &str, start: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let prefix = text[line_start..start].trim().to_ascii_lowercase();
    matches!(
        prefix.as_str(),
        "by" | "author:" | "written by" | "words by" | "reporting by" | "by:"
    )
}

/// The title words before a name and the side they name
/// ("Ukrainian Foreign Minister", "Russia's team was led by presidential aide").
pub(crate) fn title_before(
    r: &Rules,
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
        if r.titles.contains(lw) || is_actor || lw == "u.s" || lw == "s" {
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
            r.titles.contains(w)
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
