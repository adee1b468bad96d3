//! Date expressions: finding them in a sentence and resolving them against
//! the publication date.
//!
//! Relative expressions need two things the sentence alone does not give:
//! the reference (publication) date, and the tense of the clause ("met on
//! Tuesday" is the last Tuesday, "will meet on Tuesday" the next one).
//! Expressions relative to another event ("a day earlier") are returned with
//! an offset and resolved by the extractor against that event's date.

use crate::model::{DatePrecision, EventDate};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use regex::Regex;
use std::sync::LazyLock;

/// Grammatical time of the clause a date belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    /// Happened ("met", "held", "has agreed").
    Past,
    /// Under way or habitual ("is meeting").
    Present,
    /// Planned ("will meet", "plans to hold", "is set to").
    Future,
}

/// What kind of expression a [`DateMention`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateKind {
    /// A calendar date (possibly with the year inferred).
    Absolute,
    /// A weekday, resolved with the clause's tense.
    Weekday {
        /// The day named.
        weekday: Weekday,
        /// Forced direction: `Some(true)` for "next", `Some(false)` for "last".
        forward: Option<bool>,
    },
    /// Days relative to the publication date ("yesterday", "two days ago").
    FromReference(i64),
    /// Days relative to the date of the event the sentence refers back to
    /// ("a day earlier", "the same day", "the next day").
    FromAnchor(i64),
    /// A week ("this week", "later this week", "next week").
    Week(i64),
    /// A month without a day ("in March").
    Month,
}

/// One date expression found in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateMention {
    /// Byte offset of the expression in the searched text.
    pub start: usize,
    /// Byte offset one past its end.
    pub end: usize,
    /// The words.
    pub expression: String,
    /// How to resolve it.
    pub kind: DateKind,
    /// The date for absolute expressions (and months: the first day).
    pub date: Option<NaiveDate>,
    /// Last day when the expression is a range ("May 8-10", "from May 8 to May 10").
    pub end_date: Option<NaiveDate>,
    /// True when the expression is the start/end of a "from ... until ..." range.
    pub is_range: bool,
}

impl DateMention {
    /// Resolves the mention into an [`EventDate`] given the publication date,
    /// the tense of its clause and the anchor event's date (for "a day earlier").
    pub fn resolve(
        &self,
        reference: Option<NaiveDate>,
        tense: Tense,
        anchor: Option<NaiveDate>,
    ) -> EventDate {
        let (date, precision) = match &self.kind {
            DateKind::Absolute => (self.date, DatePrecision::Day),
            DateKind::Month => (self.date, DatePrecision::Month),
            DateKind::Weekday { weekday, forward } => (
                reference.map(|r| resolve_weekday(r, *weekday, *forward, tense)),
                DatePrecision::Day,
            ),
            DateKind::FromReference(days) => (
                reference.map(|r| r + Duration::days(*days)),
                DatePrecision::Day,
            ),
            DateKind::FromAnchor(days) => (
                anchor.map(|a| a + Duration::days(*days)),
                DatePrecision::Day,
            ),
            DateKind::Week(weeks) => (
                reference.map(|r| week_start(r) + Duration::weeks(*weeks)),
                DatePrecision::Week,
            ),
        };
        EventDate {
            precision: if date.is_some() {
                precision
            } else {
                DatePrecision::Unspecified
            },
            date,
            end_date: self.end_date,
            expression: self.expression.clone(),
        }
    }
}

/// Monday of the week holding `d`.
pub fn week_start(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// The day named `weekday` nearest to `reference` in the direction the tense
/// (or an explicit "next"/"last") implies.
///
/// Past: the most recent such day on or before the reference. Future: the
/// first on or after it. Present: whichever of the two is nearer (the past
/// one on a tie). "next X" is strictly after, "last X" strictly before.
pub fn resolve_weekday(
    reference: NaiveDate,
    weekday: Weekday,
    forward: Option<bool>,
    tense: Tense,
) -> NaiveDate {
    let back = (reference.weekday().num_days_from_monday() as i64
        - weekday.num_days_from_monday() as i64)
        .rem_euclid(7);
    let ahead = (weekday.num_days_from_monday() as i64
        - reference.weekday().num_days_from_monday() as i64)
        .rem_euclid(7);
    match forward {
        Some(true) => reference + Duration::days(if ahead == 0 { 7 } else { ahead }),
        Some(false) => reference - Duration::days(if back == 0 { 7 } else { back }),
        None => match tense {
            Tense::Past => reference - Duration::days(back),
            Tense::Future => reference + Duration::days(ahead),
            Tense::Present => {
                if back <= ahead {
                    reference - Duration::days(back)
                } else {
                    reference + Duration::days(ahead)
                }
            }
        },
    }
}

const MONTHS: &str = r"January|February|March|April|May|June|July|August|September|October|November|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?";

/// One regex with a named group per expression kind; months and weekdays must
/// be capitalised ("may" is a verb).
static DATE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&date_pattern("[-–]")).expect("date pattern compiles"));

/// The same expression for ASCII text (the extractor's folded text), without
/// Unicode classes: byte-level automata, several times faster, and the same
/// matches, since on ASCII text `\b`, `\s`, `\d` and case folding agree
/// with their Unicode forms and an en dash cannot occur.
static DATE_ASCII_RE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(&format!("(?-u){}", date_pattern("-"))).expect("date pattern compiles")
});

/// The date expression, with `dash` as the class of range dashes.
fn date_pattern(dash: &str) -> String {
    format!(
        r"(?x)
        (?P<iso>\b\d{{4}}-\d{{2}}-\d{{2}}\b)
      | (?:(?i:midnight|noon)\s+(?i:on)\s+)?(?P<md>\b(?:{MONTHS})\s+(?P<md_day>\d{{1,2}})(?:st|nd|rd|th)?(?:\s*{dash}\s*(?P<md_day2>\d{{1,2}})\b)?(?:,?\s+(?P<md_year>\d{{4}}))?\b)
      | (?P<dm>\b(?P<dm_day>\d{{1,2}})(?:st|nd|rd|th)?(?:\s*{dash}\s*(?P<dm_day2>\d{{1,2}}))?\s+(?P<dm_month>{MONTHS})(?:,?\s+(?P<dm_year>\d{{4}}))?\b)
      | (?P<wd>\b(?:(?P<wd_dir>(?i:next|last|this|coming|past))\s+)?(?P<wd_day>Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b)
      | (?P<yesterday>\b(?i:yesterday)\b)
      | (?P<today>\b(?i:today|tonight)\b)
      | (?P<tomorrow>\b(?i:tomorrow)\b)
      | (?P<ago>\b(?P<ago_n>(?i:a|one|two|three|four|five|six|\d+))\s+(?i:days?)\s+(?i:ago)\b)
      | (?P<anchor>\b(?i:(?:a|one|two|three|\d+)\s+days?\s+(?:earlier|before|later|after)|the\s+(?:day|night)\s+before|the\s+(?:next|following)\s+day|afterwards?|later\s+that\s+day|the\s+day\s+after|that\s+day|the\s+same\s+day|that\s+same\s+day))(?P<anchor_tail>\s+(?i:than|that|the|a|an|his|her|its|their))?
      | (?P<relmonth>\b(?i:next|this|last|later\s+this|earlier\s+this)\s+month)\b
      | (?P<week>\b(?i:(?:later|earlier)\s+this\s+week|this\s+week|next\s+week|last\s+week|the\s+coming\s+week|the\s+following\s+week|the\s+past\s+week))\b
      | (?P<month>\b(?P<month_name>January|February|March|April|June|July|August|September|October|November|December|May)(?:\s+(?P<month_year>\d{{4}}))?\b)
    "
    )
}

/// Captures of [`DATE_RE`] or [`DATE_ASCII_RE`], read the same way.
enum Caps<'h> {
    Unicode(regex::Captures<'h>, &'h str),
    Ascii(regex::bytes::Captures<'h>, &'h str),
}

/// One captured group: its span and text.
#[derive(Clone, Copy)]
struct Group<'h> {
    hay: &'h str,
    start: usize,
    end: usize,
}

impl<'h> Group<'h> {
    fn start(&self) -> usize {
        self.start
    }
    fn end(&self) -> usize {
        self.end
    }
    fn as_str(&self) -> &'h str {
        &self.hay[self.start..self.end]
    }
}

impl<'h> Caps<'h> {
    fn whole(&self) -> Group<'h> {
        let (hay, (start, end)) = match self {
            Caps::Unicode(c, hay) => (*hay, c.get(0).map_or((0, 0), |m| (m.start(), m.end()))),
            Caps::Ascii(c, hay) => (*hay, c.get(0).map_or((0, 0), |m| (m.start(), m.end()))),
        };
        Group { hay, start, end }
    }

    fn name(&self, name: &str) -> Option<Group<'h>> {
        match self {
            Caps::Unicode(c, hay) => c.name(name).map(|m| Group {
                hay,
                start: m.start(),
                end: m.end(),
            }),
            Caps::Ascii(c, hay) => c.name(name).map(|m| Group {
                hay,
                start: m.start(),
                end: m.end(),
            }),
        }
    }
}

/// "from X to Y", "from midnight on X until Y", "between X and Y".
static RANGE_JOIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:,\s*)?(?i:to|until|till|through|thru|and|-|–)\s+(?i:(?:midnight|noon)\s+on\s+)?$",
    )
    .unwrap()
});

fn month_number(name: &str) -> Option<u32> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    months
        .iter()
        .position(|m| n.starts_with(m))
        .map(|i| i as u32 + 1)
}

fn weekday_of(name: &str) -> Option<Weekday> {
    Some(match name {
        "Monday" => Weekday::Mon,
        "Tuesday" => Weekday::Tue,
        "Wednesday" => Weekday::Wed,
        "Thursday" => Weekday::Thu,
        "Friday" => Weekday::Fri,
        "Saturday" => Weekday::Sat,
        "Sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn small_number(word: &str) -> Option<i64> {
    Some(match word.to_ascii_lowercase().as_str() {
        "a" | "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        w => w.parse().ok()?,
    })
}

/// A month and day without a year: the year that puts it nearest the reference.
fn infer_year(month: u32, day: u32, reference: Option<NaiveDate>) -> Option<NaiveDate> {
    let reference = reference?;
    let mut best: Option<NaiveDate> = None;
    for year in [reference.year() - 1, reference.year(), reference.year() + 1] {
        if let Some(d) = NaiveDate::from_ymd_opt(year, month, day) {
            let closer = best.is_none_or(|b| {
                (d - reference).num_days().abs() < (b - reference).num_days().abs()
            });
            if closer {
                best = Some(d);
            }
        }
    }
    best
}

fn ymd(
    year: Option<&str>,
    month: u32,
    day: u32,
    reference: Option<NaiveDate>,
) -> Option<NaiveDate> {
    match year.and_then(|y| y.parse::<i32>().ok()) {
        Some(y) => NaiveDate::from_ymd_opt(y, month, day),
        None => infer_year(month, day, reference),
    }
}

/// Finds the date expressions of `text` (one sentence, ASCII-folded),
/// resolving the absolute ones with `reference` for missing years.
pub fn find_dates(text: &str, reference: Option<NaiveDate>) -> Vec<DateMention> {
    let mut out: Vec<DateMention> = Vec::new();
    let all: Vec<Caps> = if text.is_ascii() {
        DATE_ASCII_RE
            .captures_iter(text.as_bytes())
            .map(|c| Caps::Ascii(c, text))
            .collect()
    } else {
        DATE_RE
            .captures_iter(text)
            .map(|c| Caps::Unicode(c, text))
            .collect()
    };
    for caps in all {
        let whole = caps.whole();
        let mut start = whole.start();
        let mut end = whole.end();
        let mut end_date = None;
        let (kind, date) = if let Some(m) = caps.name("iso") {
            (
                DateKind::Absolute,
                NaiveDate::parse_from_str(m.as_str(), "%Y-%m-%d").ok(),
            )
        } else if caps.name("md").is_some() || caps.name("dm").is_some() {
            let (month, day, day2, year) = if caps.name("md").is_some() {
                let month_text = caps.name("md").unwrap().as_str();
                (
                    month_number(month_text.split_whitespace().next().unwrap_or("")),
                    caps.name("md_day"),
                    caps.name("md_day2"),
                    caps.name("md_year"),
                )
            } else {
                (
                    caps.name("dm_month").and_then(|m| month_number(m.as_str())),
                    caps.name("dm_day"),
                    caps.name("dm_day2"),
                    caps.name("dm_year"),
                )
            };
            let Some(month) = month else { continue };
            let day: u32 = day.and_then(|d| d.as_str().parse().ok()).unwrap_or(0);
            let year = year.map(|y| y.as_str());
            let first = ymd(year, month, day, reference);
            if let Some(d2) = day2.and_then(|d| d.as_str().parse::<u32>().ok()) {
                let second = ymd(year, month, d2, reference);
                let is_midnight = whole.as_str().to_ascii_lowercase().starts_with("midnight");
                if is_midnight {
                    // "midnight on May 7-8" is the boundary between the two
                    // days; which day counts depends on start or end, so keep
                    // both and let the range logic choose.
                    end_date = first;
                    (DateKind::Absolute, second)
                } else {
                    end_date = second;
                    (DateKind::Absolute, first)
                }
            } else {
                (DateKind::Absolute, first)
            }
        } else if let Some(day) = caps.name("wd_day") {
            let dir = caps.name("wd_dir").map(|d| d.as_str().to_ascii_lowercase());
            let forward = match dir.as_deref() {
                Some("next") | Some("coming") => Some(true),
                Some("last") | Some("past") => Some(false),
                _ => None,
            };
            let Some(weekday) = weekday_of(day.as_str()) else {
                continue;
            };
            (DateKind::Weekday { weekday, forward }, None)
        } else if caps.name("yesterday").is_some() {
            (DateKind::FromReference(-1), None)
        } else if caps.name("today").is_some() {
            (DateKind::FromReference(0), None)
        } else if caps.name("tomorrow").is_some() {
            (DateKind::FromReference(1), None)
        } else if let Some(n) = caps.name("ago_n") {
            let Some(n) = small_number(n.as_str()) else {
                continue;
            };
            (DateKind::FromReference(-n), None)
        } else if let Some(m) = caps.name("anchor") {
            end = m.end();
            if caps.name("anchor_tail").is_some() {
                // "a day before the talks", "the day after the call": the
                // anchor is named right there, not the previous event.
                let s = m.as_str().to_ascii_lowercase();
                if (s.contains("before") || s.contains("after")) && !s.starts_with("afterward") {
                    continue;
                }
            }
            let s = m.as_str().to_ascii_lowercase();
            let words: Vec<&str> = s.split_whitespace().collect();
            let n = small_number(words[0]).unwrap_or(1);
            let offset = if s.contains("same")
                || s.starts_with("that")
                || s.starts_with("afterward")
                || s.starts_with("later")
            {
                0
            } else if s.contains("earlier") || s.contains("before") {
                -n
            } else {
                n
            };
            (DateKind::FromAnchor(offset), None)
        } else if let Some(m) = caps.name("relmonth") {
            let s = m.as_str().to_ascii_lowercase();
            let offset: i32 = if s.starts_with("next") {
                1
            } else if s.starts_with("last") {
                -1
            } else {
                0
            };
            let date = reference.and_then(|r| {
                let months = r.year() * 12 + r.month0() as i32 + offset;
                NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
            });
            (DateKind::Month, date)
        } else if let Some(m) = caps.name("week") {
            let s = m.as_str().to_ascii_lowercase();
            let offset = if s.contains("next") || s.contains("coming") || s.contains("following") {
                1
            } else if s.contains("last") || s.contains("past") {
                -1
            } else {
                0
            };
            (DateKind::Week(offset), None)
        } else if let Some(name) = caps.name("month_name") {
            // A bare month only after a preposition ("in March", "until May").
            let prev = text[..name.start()].split_whitespace().last().unwrap_or("");
            let prev = prev.to_ascii_lowercase();
            if ![
                "in", "since", "by", "during", "until", "from", "of", "early", "late", "mid",
                "through",
            ]
            .contains(&prev.as_str())
            {
                continue;
            }
            start = name.start();
            let Some(month) = month_number(name.as_str()) else {
                continue;
            };
            let date = match caps
                .name("month_year")
                .and_then(|y| y.as_str().parse::<i32>().ok())
            {
                Some(y) => NaiveDate::from_ymd_opt(y, month, 1),
                None => infer_year(month, 1, reference),
            };
            (DateKind::Month, date)
        } else {
            continue;
        };
        if matches!(kind, DateKind::Absolute) && date.is_none() {
            continue;
        }
        out.push(DateMention {
            start,
            end,
            expression: text[start..end].to_owned(),
            kind,
            date,
            end_date,
            is_range: false,
        });
    }
    join_ranges(text, &mut out);
    out
}

/// Joins "from X to Y" / "X until Y" / "between X and Y" into one range mention.
fn join_ranges(text: &str, mentions: &mut Vec<DateMention>) {
    let mut i = 0;
    while i + 1 < mentions.len() {
        let (a, b) = (&mentions[i], &mentions[i + 1]);
        let gap = &text[a.end..b.start];
        let before = &text[..a.start];
        let lead = before.trim_end().to_ascii_lowercase();
        let opened = lead.ends_with("from")
            || lead.ends_with("between")
            || lead.ends_with("midnight on")
            || lead.ends_with("starting")
            || lead.ends_with("from midnight on");
        let absolute = matches!(a.kind, DateKind::Absolute) && matches!(b.kind, DateKind::Absolute);
        if absolute
            && RANGE_JOIN.is_match(gap)
            && (opened || !gap.trim().eq_ignore_ascii_case("and"))
        {
            let start_day = a.date;
            // A "midnight on May 10-11" end is the first day of the pair,
            // held in `end_date` by the parser.
            let b_is_midnight = b.expression.to_ascii_lowercase().starts_with("midnight")
                || text[..b.start]
                    .to_ascii_lowercase()
                    .trim_end()
                    .ends_with("midnight on");
            let end_day = if b_is_midnight && b.end_date.is_some() {
                b.end_date
            } else {
                b.end_date.or(b.date)
            };
            let merged = DateMention {
                start: a.start,
                end: b.end,
                expression: text[a.start..b.end].to_owned(),
                kind: DateKind::Absolute,
                date: start_day,
                end_date: end_day,
                is_range: true,
            };
            mentions[i] = merged;
            mentions.remove(i + 1);
        } else {
            i += 1;
        }
    }
    // Missing years are inferred day by day, so a range across New Year read
    // far from it can come out backwards ("December 28 to January 5" read in
    // June): the end is then in the following year.
    for m in mentions.iter_mut() {
        if let (Some(start), Some(end)) = (m.date, m.end_date)
            && end < start
            && let Some(next) = end.with_year(end.year() + 1)
            && next >= start
            && (next - start).num_days() < 366
        {
            m.end_date = Some(next);
        }
    }
    // A lone "midnight on May 7-8" (no end) starts on the second day.
    for m in mentions.iter_mut() {
        if !m.is_range
            && m.expression.to_ascii_lowercase().starts_with("midnight")
            && m.end_date.is_some()
        {
            m.end_date = None;
        }
        if m.end_date.is_some() {
            m.is_range = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn first(text: &str, reference: NaiveDate, tense: Tense) -> EventDate {
        let found = find_dates(text, Some(reference));
        assert!(!found.is_empty(), "no date in {text:?}");
        found[0].resolve(Some(reference), tense, None)
    }

    #[test]
    fn weekdays_follow_tense() {
        let wed = d(2025, 3, 12);
        assert_eq!(
            first("talks on Tuesday", wed, Tense::Past).date,
            Some(d(2025, 3, 11))
        );
        assert_eq!(
            first("will meet on Sunday", d(2025, 3, 19), Tense::Future).date,
            Some(d(2025, 3, 23))
        );
        assert_eq!(first("late on Wednesday", wed, Tense::Past).date, Some(wed));
        assert_eq!(
            first("next Monday", wed, Tense::Past).date,
            Some(d(2025, 3, 17))
        );
        assert_eq!(
            first("last Monday", d(2025, 3, 17), Tense::Future).date,
            Some(d(2025, 3, 10))
        );
    }

    #[test]
    fn month_days_and_years() {
        let r = d(2025, 3, 23);
        assert_eq!(
            first("on March 24", r, Tense::Future).date,
            Some(d(2025, 3, 24))
        );
        assert_eq!(
            first("on March 11, 2025 in Jeddah", r, Tense::Past).date,
            Some(d(2025, 3, 11))
        );
        assert_eq!(
            first("on 11 March", r, Tense::Past).date,
            Some(d(2025, 3, 11))
        );
        assert_eq!(
            first("on December 30", d(2025, 1, 3), Tense::Past).date,
            Some(d(2024, 12, 30))
        );
        assert_eq!(
            first("2025-06-02", r, Tense::Past).date,
            Some(d(2025, 6, 2))
        );
        // "may" the verb is not a month.
        assert!(find_dates("talks may 8 resume", Some(r)).is_empty());
    }

    #[test]
    fn ranges() {
        let r = d(2025, 4, 28);
        let e = first("from May 8 to May 10", r, Tense::Future);
        assert_eq!(
            (e.date, e.end_date),
            (Some(d(2025, 5, 8)), Some(d(2025, 5, 10)))
        );
        let e = first(
            "a ceasefire from midnight on May 7-8 until midnight on May 10-11 to mark",
            r,
            Tense::Past,
        );
        assert_eq!(
            (e.date, e.end_date),
            (Some(d(2025, 5, 8)), Some(d(2025, 5, 10)))
        );
        let e = first("talks on May 8-10", r, Tense::Future);
        assert_eq!(
            (e.date, e.end_date),
            (Some(d(2025, 5, 8)), Some(d(2025, 5, 10)))
        );
    }

    #[test]
    fn relative_words() {
        let r = d(2025, 3, 12);
        assert_eq!(
            first("yesterday", r, Tense::Past).date,
            Some(d(2025, 3, 11))
        );
        assert_eq!(first("Today", r, Tense::Past).date, Some(r));
        assert_eq!(
            first("two days ago", r, Tense::Past).date,
            Some(d(2025, 3, 10))
        );
        let week = first("later this week", r, Tense::Future);
        assert_eq!(
            (week.date, week.precision),
            (Some(d(2025, 3, 10)), DatePrecision::Week)
        );
        let m = find_dates("who had met him a day earlier", Some(r));
        assert_eq!(m[0].kind, DateKind::FromAnchor(-1));
        assert_eq!(
            m[0].resolve(Some(r), Tense::Past, Some(d(2025, 3, 11)))
                .date,
            Some(d(2025, 3, 10))
        );
        // "a day before the talks" names its own anchor: not a bare relative date.
        assert!(find_dates("a day before the talks", Some(r)).is_empty());
        let month = first("talks in June", r, Tense::Future);
        assert_eq!(
            (month.date, month.precision),
            (Some(d(2025, 6, 1)), DatePrecision::Month)
        );
    }

    #[test]
    fn no_reference_means_no_relative_date() {
        let m = find_dates("met on Tuesday", None);
        assert_eq!(m[0].resolve(None, Tense::Past, None).date, None);
    }

    proptest! {
        #[test]
        fn weekday_phrases_resolve_within_a_week_in_the_right_direction(
            days in 0i64..3650, wd in 0usize..7, future in any::<bool>()
        ) {
            let names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
            let reference = d(2020, 1, 1) + Duration::days(days);
            let text = format!("on {}", names[wd]);
            let tense = if future { Tense::Future } else { Tense::Past };
            let got = find_dates(&text, Some(reference))[0].resolve(Some(reference), tense, None).date.unwrap();
            let delta = (got - reference).num_days();
            prop_assert_eq!(got.weekday().num_days_from_monday() as usize, wd);
            if future { prop_assert!((0..7).contains(&delta)); } else { prop_assert!((-6..=0).contains(&delta)); }
            let next = find_dates(&format!("next {}", names[wd]), Some(reference))[0]
                .resolve(Some(reference), Tense::Past, None).date.unwrap();
            prop_assert!((1..=7).contains(&(next - reference).num_days()));
        }

        /// Every weekday phrase, in every tense: the named day, within a week,
        /// on the side the phrase or the tense points to.
        #[test]
        fn every_weekday_phrase_lands_on_its_day_within_a_week(
            days in 0i64..3650, wd in 0usize..7, phrase in 0usize..8, tense in 0usize..3
        ) {
            let names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
            let reference = d(2020, 1, 1) + Duration::days(days);
            let tense = [Tense::Past, Tense::Present, Tense::Future][tense];
            let day = names[wd];
            // (text, range of days from the reference it may land in)
            let (text, range) = match phrase {
                0 => (format!("talks on {day}"), None),
                1 => (format!("late on {day} the envoys"), None),
                2 => (format!("early on {day}"), None),
                3 => (format!("{day} night"), None),
                4 => (format!("next {day}"), Some(1..=7)),
                5 => (format!("last {day}"), Some(-7..=-1)),
                6 => (format!("this coming {day}"), Some(1..=7)),
                _ => (format!("the past {day}"), Some(-7..=-1)),
            };
            let found = find_dates(&text, Some(reference));
            prop_assert_eq!(found.len(), 1, "{}", text);
            let got = found[0].resolve(Some(reference), tense, None).date.unwrap();
            prop_assert_eq!(got.weekday().num_days_from_monday() as usize, wd);
            let delta = (got - reference).num_days();
            let expected = range.unwrap_or(match tense {
                Tense::Past => -6..=0,
                Tense::Future => 0..=6,
                Tense::Present => -3..=3,
            });
            prop_assert!(expected.contains(&delta), "{} {:?} on {}: {}", text, tense, reference, got);
        }

        /// "on March 24" without a year: that month and day, the year that
        /// puts it nearest the publication date (New Year included).
        #[test]
        fn month_days_take_the_nearest_year(days in 0i64..3650, md in 0i64..365, format in 0usize..3) {
            let reference = d(2020, 1, 1) + Duration::days(days);
            let target = d(2021, 1, 1) + Duration::days(md);
            let months = ["January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December"];
            let month = months[target.month0() as usize];
            let text = match format {
                0 => format!("on {month} {}", target.day()),
                1 => format!("on {} {month}", target.day()),
                _ => format!("on {month} {}th", target.day()),
            };
            let found = find_dates(&text, Some(reference));
            prop_assert_eq!(found.len(), 1, "{}", text);
            let got = found[0].resolve(Some(reference), Tense::Past, None).date.unwrap();
            prop_assert_eq!((got.month(), got.day()), (target.month(), target.day()));
            prop_assert!((got - reference).num_days().abs() <= 184, "{} on {}: {}", text, reference, got);
        }

        /// Ranges ("from May 8 to May 10", "May 8-10", across New Year):
        /// start and end in order, as many days apart as the text says.
        /// (Generated in 2021, a common year; resolved maybe in a leap year.)
        #[test]
        fn ranges_are_ordered_and_as_long_as_written(
            days in 0i64..3650, start in 0i64..365, len in 1i64..20, format in 0usize..3
        ) {
            let reference = d(2020, 1, 1) + Duration::days(days);
            let first = d(2021, 1, 1) + Duration::days(start);
            let last = first + Duration::days(len);
            let months = ["January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December"];
            let (m1, m2) = (months[first.month0() as usize], months[last.month0() as usize]);
            let text = if format == 1 && first.month() == last.month() {
                format!("talks on {m1} {}-{}", first.day(), last.day())
            } else if format == 2 {
                format!("a truce from {} {m1} until {} {m2}", first.day(), last.day())
            } else {
                format!("from {m1} {} to {m2} {}", first.day(), last.day())
            };
            let found = find_dates(&text, Some(reference));
            prop_assert_eq!(found.len(), 1, "{}", text);
            let e = found[0].resolve(Some(reference), Tense::Future, None);
            let (a, b) = (e.date.unwrap(), e.end_date.unwrap());
            prop_assert_eq!((a.month(), a.day()), (first.month(), first.day()));
            prop_assert_eq!((b.month(), b.day()), (last.month(), last.day()));
            // One more day when the resolved year has a February 29 inside.
            let span = (b - a).num_days();
            prop_assert!(span == len || span == len + 1, "{} on {}: {} .. {}", text, reference, a, b);
        }
    }
}
