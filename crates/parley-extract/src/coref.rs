//! Stage 6: document-level event coreference: the drafts of one document
//! become one event per real event.

use crate::linking::*;
use crate::model::*;
use crate::text::*;
use chrono::NaiveDate;

/// Document-level repair of the drafts into final candidates.
pub(crate) fn finish_document(
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
                lat: dl.lat,
                lon: dl.lon,
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
pub(crate) fn same_party_set(a: &[Actor], b: &[Actor]) -> bool {
    a.iter().all(|x| b.iter().any(|y| y.code == x.code))
        && b.iter().all(|y| a.iter().any(|x| x.code == y.code))
}

pub(crate) fn merge_participants(into: &mut TalksEvent, from: &TalksEvent) {
    for p in &from.participants {
        if !into.participants.iter().any(|q| q.name == p.name) {
            into.participants.push(p.clone());
        }
    }
}
