//! Stage 5: argument linking: one sentence's triggers become draft events with
//! type, status, parties, mediators, date, venue and participants.

use crate::clause::*;
use crate::document::Document;
use crate::extract::Extractor;
use crate::frames::*;
use crate::matching::*;
use crate::mentions::*;
use crate::model::*;
use crate::persons::*;
use crate::text::*;
use crate::time::{DateKind, DateMention, Tense, find_dates};
use chrono::NaiveDate;
use std::collections::HashSet;

/// A candidate before document-level repair.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) event: TalksEvent,
    /// Folded offset of the trigger, for ordering.
    pub(crate) pos: usize,
    pub(crate) anaphoric: bool,
    /// Relative to the previous event's date ("a day earlier").
    pub(crate) anchor_offset: Option<i64>,
    /// Filled only from a date expression in the text (not inherited).
    pub(crate) dated: bool,
    /// "both sides agreed": the sides are those of the previous event.
    pub(crate) both_sides: bool,
    /// A delegation roster: participants for the talks of its sides.
    pub(crate) roster: bool,
}

impl Extractor {
    /// Reads the events of one sentence into drafts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sentence_events(
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
        dyad: Option<(&str, &str)>,
        has_ceasefire: &dyn Fn() -> bool,
        dateline: Option<&Dateline>,
        drafts: &mut Vec<Draft>,
    ) {
        let r = &self.rules;
        let text = &folded.text;
        let (ss, se) = (sentence.start, sentence.end);
        let sent = &text[ss..se];
        let lower = &lower_doc[ss..se];
        // Most sentences have no trigger word: one automaton pass rules them
        // out, and tells which families' expressions are worth running.
        let kinds = trigger_kinds(r, lower);
        if kinds == 0 {
            return;
        }
        let mut triggers = find_triggers(r, sent, lower, ss, has_ceasefire, kinds);
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
        if opens_conditional
            || r.background_words.cues.ac.is_match(lower) && r.background.is_match(lower)
        {
            return;
        }
        // Clause bounds of a span, asked several times per trigger: remembered.
        let clause_memo: std::cell::RefCell<Vec<(Span, Span)>> = Default::default();
        let bounds = |ts: usize, te: usize| {
            if let Some(&(_, b)) = clause_memo.borrow().iter().find(|(k, _)| *k == (ts, te)) {
                return b;
            }
            let b = clause_bounds(r, lower_doc, ss, se, ts, te);
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
                negated(r, &lower_doc[cs..t.start], t.kind)
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
                    negated(r, before, t.kind),
                    hypothetical(r, before, clause, t),
                    t.kind == TriggerKind::Ceasefire && is_topic(r, lower_doc, ss, t.start)
                );
            }
            // "rejected the U.S. truce plan": a rejected proposal is still a proposal.
            let refused_proposal =
                t.kind == TriggerKind::Ceasefire && proposal_noun_after(lower_doc, t.end);
            !(negated(r, before, t.kind) && !refused_proposal
                || hypothetical(r, before, clause, t)
                || has_word(original_clause, "may")
                || (has_violation && t.kind == TriggerKind::Ceasefire)
                || (t.kind == TriggerKind::Ceasefire
                    && (is_topic(r, lower_doc, ss, t.start) || refers_to_existing(r, before))))
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
        let speaker_spans: Vec<(usize, usize)> = if r.speech_words.cues.ac.is_match(lower) {
            r.speaker
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
                    if r.speech_words.cues.ac.is_match(lower) {
                        attribution(r, text, lower, ss, se, persons, actors)
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
        let sentence_scope = scopes(r, lower);
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
            let mut tense = tense_of(r, before, &lower_doc[t.start..t.end], lower);
            // "Talks ... will resume", "the meeting is scheduled for": cues after the trigger.
            if tense != Tense::Future && nearest_cue(before, &r.past.cues).is_none() {
                let mut w = (t.end + 70).min(clause_end.max(t.end));
                while !text.is_char_boundary(w) {
                    w -= 1;
                }
                if r.future_after.cues.any(&lower_doc[t.end..w]) {
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
                    let date_tense = if past_verb_before(r, date_before) {
                        // "X said on Tuesday", "agreed late on Wednesday": the
                        // verb the date hangs on tells its tense.
                        Tense::Past
                    } else if ds >= t.end || t.start >= ss + m.start {
                        tense_of(r, date_before, "", lower)
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
                    let propose = nearest_cue(near_before, &r.propose.cues);
                    let agree = nearest_cue(near_before, &r.agree.cues);
                    let agree_after = r
                        .agree
                        .words
                        .iter()
                        .filter(|c| c.len() > 4)
                        .any(|c| near_after.contains(c.as_str()));
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
                .map(|c| {
                    let (lat, lon) = self.lex.coordinates(&c.name, &c.country).unzip();
                    Venue {
                        city: Some(c.name.clone()),
                        country: Some(c.country.clone()),
                        place: None,
                        lat,
                        lon,
                    }
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

/// The date expression that belongs to a trigger: the nearest one in the
/// sentence (after the trigger preferred), with whether it is the event's own.
pub(crate) fn pick_date(
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
pub(crate) fn venue_in<'a>(
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
