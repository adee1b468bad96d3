//! Stage 2a: mentions of actors (states, organisations, their capitals, seats
//! and demonyms) and of cities, with the roles the words around them give them
//! (place, target, host or mediator).

use crate::extract::Extractor;
use crate::lexicon::Target;
use crate::rules::Rules;
use crate::text::*;
use parley_kb::Via;
use std::collections::{HashMap, HashSet};

/// A state or organisation named in the text.
#[derive(Debug, Clone)]
pub(crate) struct ActorMention {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) code: String,
    #[allow(dead_code)] // kept for debugging output and future rules
    pub(crate) via: Via,
    /// A place here ("in Kyiv", "the Saudi port city"), not an actor.
    pub(crate) place: bool,
    /// The target of strikes ("attacks on Ukraine's energy"), not a side.
    pub(crate) target: bool,
    /// Marked as host or mediator ("hosted by", "brokered by Egypt").
    pub(crate) mediator: bool,
    /// Comes from a person's affiliation rather than a name of the actor.
    pub(crate) from_person: bool,
}

/// Dictionary hits sorted into actors, cities and known people (start, end, id).
pub(crate) type Classified = (
    Vec<ActorMention>,
    Vec<CityMention>,
    Vec<(usize, usize, String)>,
);

/// A city named in the text.
#[derive(Debug, Clone)]
pub(crate) struct CityMention {
    pub(crate) start: usize,
    pub(crate) name: String,
    pub(crate) country: String,
    /// After "in/at/to/of": a location, not a metonym.
    pub(crate) locative: bool,
}

impl Extractor {
    /// Sorts dictionary hits into actors, cities and known people.
    pub(crate) fn classify_hits(
        &self,
        text: &str,
        lower: &str,
        hits: &[crate::lexicon::Hit],
        dateline: Option<&Dateline>,
        states: &HashSet<&str>,
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
            let locative = is_locative(&self.rules, text, h.start, h.end);
            let mut city_added = false;
            if let Some((name, country)) = self.lex.city_for(h.pattern, states) {
                cities.push(CityMention {
                    start: h.start,
                    name: name.to_owned(),
                    country: country.to_owned(),
                    locative: locative && !in_dateline,
                });
                city_added = true;
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
                        demonym_is_place(&self.rules, lower, h.end)
                            || lower[..h.start].ends_with("ethnic ")
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
}

/// After a locative preposition ("in Kyiv", "to Moscow", "the resort of Sharm").
pub(crate) fn is_locative(r: &Rules, text: &str, start: usize, _end: usize) -> bool {
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
        if r.side_people.contains(&head) {
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
pub(crate) fn followed_by_state(text: &str, end: usize) -> bool {
    text[end..].starts_with(", ")
}

/// "the Egyptian resort of", "the Saudi port city": a demonym naming a place.
pub(crate) fn demonym_is_place(r: &Rules, lower: &str, end: usize) -> bool {
    let after = lower[end..].trim_start();
    let next = after
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    let next2: Vec<&str> = after.split_whitespace().take(3).collect();
    r.place_after_demonym.contains(next)
        || next2.iter().any(|w| *w == "city" || *w == "resort")
            && !next2
                .iter()
                .any(|w| *w == "delegation" || *w == "officials")
}

/// The object of strikes or attacks, not a side of the ceasefire.
pub(crate) fn is_target(lower: &str, start: usize) -> bool {
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
pub(crate) fn mark_roles(r: &Rules, lower: &str, actors: &mut [ActorMention]) {
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
        let list_role = r.list_role.is_match(&lower[e..g])
            // "Omani-mediated talks", "under Saudi-U.S. mediation", "U.N. auspices".
            || r.host_after.is_match(&lower[e..g]);
        if by_mediator || host_before || host_after || list_role {
            actors[i].mediator = true;
        }
    }
}

/// A known conflict pair with both sides named in the document, and how
/// often they are named together.
pub(crate) type ConflictPair<'a> = (&'a str, &'a str, usize);

/// The known conflict pairs (in the rules' order) whose two sides the
/// document names: computed once, then each sentence only checks its actors.
pub(crate) fn conflict_pairs<'a>(
    r: &'a Rules,
    counts: &HashMap<&str, usize>,
) -> Vec<ConflictPair<'a>> {
    r.conflict_pairs
        .iter()
        .filter_map(|(x, y)| {
            Some((
                x.as_str(),
                y.as_str(),
                counts.get(x.as_str())? + counts.get(y.as_str())?,
            ))
        })
        .collect()
}

/// The conflict pair a sentence is about: both sides named in it first, then
/// one side named in it (the pair best represented in the document).
pub(crate) fn sentence_dyad<'a>(
    sent_actors: &[&ActorMention],
    pairs: &[ConflictPair<'a>],
) -> Option<(&'a str, &'a str)> {
    let here = |code: &str| sent_actors.iter().any(|a| a.code == code);
    pairs
        .iter()
        .filter(|(x, y, _)| here(x) || here(y))
        .max_by_key(|(x, y, n)| (here(x) && here(y), *n))
        .map(|&(x, y, _)| (x, y))
}

/// The most mentioned known conflict pair with both sides in the document.
pub(crate) fn pick_dyad<'a>(pairs: &[ConflictPair<'a>]) -> Option<(&'a str, &'a str)> {
    pairs
        .iter()
        .max_by_key(|(_, _, n)| *n)
        .map(|&(x, y, _)| (x, y))
}
