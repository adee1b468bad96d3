//! Fixture articles from several conflicts (written for these tests): each
//! checks the events a reader would code, and that negations, hopes and
//! sports metaphors produce none.

use chrono::NaiveDate;
use parley_extract::{Document, EventType, Extraction, Extractor, Limits, read_documents};
use parley_kb::KnowledgeBase;
use std::sync::OnceLock;

fn extractor() -> &'static Extractor {
    static EX: OnceLock<Extractor> = OnceLock::new();
    EX.get_or_init(|| Extractor::new(&KnowledgeBase::bundled().expect("kb loads")))
}

fn fixture(name: &str) -> (Document, Extraction) {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("fixture exists");
    let doc = read_documents(&path, &bytes, None, &Limits::default())
        .remove(0)
        .expect("fixture reads");
    let x = extractor().extract(&doc);
    (doc, x)
}

fn day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Finds an event of `t` with exactly these parties.
fn find<'a>(x: &'a Extraction, t: EventType, parties: &[&str]) -> &'a parley_extract::TalksEvent {
    let mut want: Vec<String> = parties.iter().map(|s| s.to_string()).collect();
    want.sort();
    x.events
        .iter()
        .find(|e| e.event_type == t && e.party_codes() == want)
        .unwrap_or_else(|| {
            panic!(
                "no {t:?} {parties:?} in {:#?}",
                x.events
                    .iter()
                    .map(|e| (e.event_type, e.party_codes(), e.date.date))
                    .collect::<Vec<_>>()
            )
        })
}

#[test]
fn drc_m23_declaration_in_doha() {
    let (_, x) = fixture("drc_doha.txt");
    let talks = find(&x, EventType::TalksHeld, &["COD", "M23"]);
    assert_eq!(talks.mediator_codes(), vec!["QAT"]);
    assert_eq!(talks.venue.city.as_deref(), Some("Doha"));
    let agreed = x
        .events
        .iter()
        .find(|e| {
            matches!(
                e.event_type,
                EventType::CeasefireAgreed | EventType::AgreementReached
            ) && e.party_codes() == ["COD", "M23"]
        })
        .expect("the declaration");
    assert_eq!(agreed.date.date, day("2025-07-19"));
    // The rebels' side is never read as a mediator.
    assert!(!agreed.mediator_codes().contains(&"M23".to_string()));
    let names: Vec<&str> = x.mentions.iter().map(|m| m.text.as_str()).collect();
    assert!(names.contains(&"Benjamin Mbonimpa"), "{names:?}");
    assert!(names.contains(&"Amina Diallo"), "{names:?}");
}

#[test]
fn thailand_cambodia_in_putrajaya() {
    let (_, x) = fixture("thai_cambodia.txt");
    let cf = find(&x, EventType::CeasefireAgreed, &["KHM", "THA"]);
    assert_eq!(
        cf.date.date,
        day("2025-07-28"),
        "Monday before a Tuesday publication"
    );
    assert_eq!(cf.mediator_codes(), vec!["MYS"]);
    let talks = find(&x, EventType::TalksHeld, &["KHM", "THA"]);
    assert_eq!(talks.venue.city.as_deref(), Some("Putrajaya"));
    let v = find(&x, EventType::CeasefireViolated, &["KHM", "THA"]);
    assert_eq!(v.status, parley_extract::EventStatus::Alleged);
}

#[test]
fn india_pakistan_ceasefire_and_violation() {
    let (_, x) = fixture("india_pakistan.txt");
    let cf = find(&x, EventType::CeasefireAgreed, &["IND", "PAK"]);
    assert_eq!(cf.date.date, day("2025-05-10"));
    // The dateline city is not the venue of a ceasefire.
    assert_ne!(cf.venue.city.as_deref(), Some("New Delhi"));
    find(&x, EventType::CeasefireViolated, &["IND", "PAK"]);
}

#[test]
fn israel_iran_with_us_broker_and_negated_claim() {
    let (_, x) = fixture("israel_iran.txt");
    let cf = find(&x, EventType::CeasefireAgreed, &["IRN", "ISR"]);
    assert_eq!(cf.mediator_codes(), vec!["USA"]);
    assert_eq!(cf.date.date, day("2025-06-23"));
    assert_eq!(
        cf.evidence[0].attributed_to.as_deref(),
        Some("Donald Trump")
    );
    // "there was no agreement on any ceasefire" adds nothing.
    assert_eq!(
        x.events
            .iter()
            .filter(|e| e.event_type == EventType::CeasefireAgreed)
            .count(),
        1
    );
}

#[test]
fn negations_and_hopes_are_not_events() {
    let (_, x) = fixture("negated.txt");
    assert!(x.events.is_empty(), "{:#?}", x.events);
}

#[test]
fn sports_truce_is_not_an_event_but_names_are_people() {
    let (_, x) = fixture("sports.txt");
    assert!(x.events.is_empty(), "{:#?}", x.events);
    let names: Vec<&str> = x.mentions.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(names, vec!["Marco Bellini", "Graham Hollis", "Kofi Mensah"]);
}

#[test]
fn evidence_offsets_point_into_the_text() {
    for name in ["drc_doha.txt", "thai_cambodia.txt", "israel_iran.txt"] {
        let (doc, x) = fixture(name);
        let chars: Vec<char> = doc.text.chars().collect();
        for e in &x.events {
            let ev = &e.evidence[0];
            let slice: String = chars[ev.start as usize..ev.end as usize].iter().collect();
            assert_eq!(slice, ev.text);
        }
        for m in &x.mentions {
            let slice: String = chars[m.start as usize..m.end as usize].iter().collect();
            assert_eq!(slice, m.text);
        }
    }
}

#[test]
fn planned_talks_and_weekday_direction() {
    let doc = Document::from_text(
        "planned.txt",
        day("2025-05-11"),
        "Talks planned\n\nRussia and Ukraine will meet in Istanbul on Thursday, the Turkish foreign ministry said. Turkey will host the talks.",
    );
    let x = extractor().extract(&doc);
    let t = find(&x, EventType::TalksAnnounced, &["RUS", "UKR"]);
    assert_eq!(t.date.date, day("2025-05-15"));
    assert_eq!(t.venue.city.as_deref(), Some("Istanbul"));
    assert_eq!(t.status, parley_extract::EventStatus::Planned);
    assert_eq!(t.mediator_codes(), vec!["TUR"]);
}

#[test]
fn metonymy_capitals_and_seats_are_states() {
    let doc = Document::from_text(
        "meto.txt",
        day("2025-03-20"),
        "Headline here\n\nThe Kremlin and Washington held talks by phone on Tuesday, officials said.",
    );
    let x = extractor().extract(&doc);
    let t = find(&x, EventType::TalksHeld, &["RUS", "USA"]);
    assert_eq!(t.date.date, day("2025-03-18"));
    assert_eq!(t.modality, parley_extract::Modality::Call);
}

#[test]
fn headline_case_and_media_names_are_not_people() {
    let doc = Document::from_text(
        "m.txt",
        day("2025-03-20"),
        "Putin Says Truce Talks With Kyiv Must Wait\n\nThe claim was reported by Sky News and Sky News Arabia. Red Sea shipping resumed.",
    );
    let x = extractor().extract(&doc);
    let names: Vec<&str> = x.mentions.iter().map(|m| m.text.as_str()).collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Sky") || n.contains("Red Sea") || n.contains("Says")),
        "{names:?}"
    );
}

#[test]
fn wire_mix_of_conflicts() {
    let text = "Mixed wire\n\nHamas said on Monday it had accepted a ceasefire proposal put forward by Egypt and Qatar, but Israel has not responded.\n\nThe Houthis announced a halt to attacks on shipping in the Red Sea on Sunday.\n\nThe ceasefire between Israel and Hezbollah collapsed on Sunday, Lebanese officials said.\n\nTalks between Armenia and Azerbaijan will resume in Abu Dhabi next month, the foreign ministry in Baku said.";
    let doc = Document::from_text("wire.txt", day("2025-06-10"), text);
    let x = extractor().extract(&doc);
    let p = find(&x, EventType::CeasefireProposed, &["HAMAS", "ISR"]);
    assert_eq!(p.mediator_codes(), vec!["EGY", "QAT"]);
    assert_eq!(p.date.date, day("2025-06-09"));
    let h = find(&x, EventType::CeasefireAgreed, &["HOUTHIS"]);
    assert_eq!(
        h.date.date,
        day("2025-06-08"),
        "announced on the past Sunday"
    );
    assert!(h.scope.contains(&parley_extract::Scope::Maritime));
    find(&x, EventType::CeasefireEnded, &["HEZBOLLAH", "ISR"]);
    let t = find(&x, EventType::TalksAnnounced, &["ARM", "AZE"]);
    assert_eq!(t.venue.city.as_deref(), Some("Abu Dhabi"));
    assert_eq!(t.date.precision, parley_extract::DatePrecision::Month);
}

#[test]
fn negated_participation_adds_nothing_to_other_events() {
    let text = "Envoy trip\n\nSpecial envoy Steve Witkoff is expected to travel to Moscow later this week to meet President Vladimir Putin. President Volodymyr Zelensky, who did not join the talks, thanked the Saudi hosts.";
    let doc = Document::from_text("neg.txt", day("2025-03-12"), text);
    let x = extractor().extract(&doc);
    let t = find(&x, EventType::TalksAnnounced, &["RUS", "USA"]);
    assert!(t.mediators.is_empty(), "{:?}", t.mediators);
    assert_eq!(t.venue.city.as_deref(), Some("Moscow"));
}

/// Participant names of the events of `t` with these parties.
fn participants(x: &Extraction, t: EventType, parties: &[&str]) -> Vec<String> {
    find(x, t, parties)
        .participants
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn delegation_roster_adds_participants_without_a_new_event() {
    let (_, x) = fixture("armenia_azerbaijan_roster.txt");
    let names = participants(&x, EventType::TalksHeld, &["ARM", "AZE"]);
    assert!(names.contains(&"Levon Arakelyan".to_string()), "{names:?}");
    assert!(names.contains(&"Farid Mammadli".to_string()), "{names:?}");
    let talks = x
        .events
        .iter()
        .filter(|e| e.event_type.family() == parley_extract::EventFamily::Talks)
        .count();
    assert_eq!(talks, 1, "a roster never creates talks: {:#?}", x.events);
}

#[test]
fn roster_joins_only_talks_of_its_sides() {
    let doc = Document::from_text(
        "roster.txt",
        day("2025-04-16"),
        "Armenia and Azerbaijan held talks in Abu Dhabi on Tuesday.\n\n\
         Separately, Georgia's delegation was led by envoy Nino Beridze.\n",
    );
    let x = extractor().extract(&doc);
    let names = participants(&x, EventType::TalksHeld, &["ARM", "AZE"]);
    assert!(!names.contains(&"Nino Beridze".to_string()), "{names:?}");
}

#[test]
fn roster_prefers_held_talks_over_planned_ones() {
    let doc = Document::from_text(
        "roster2.txt",
        day("2025-04-16"),
        "Armenia and Azerbaijan held talks in Abu Dhabi on Tuesday. \
         The two sides will meet again in Abu Dhabi on April 30.\n\n\
         Armenia's delegation is Levon Arakelyan and Ani Sargsyan, a foreign ministry official said.\n",
    );
    let x = extractor().extract(&doc);
    let held = participants(&x, EventType::TalksHeld, &["ARM", "AZE"]);
    assert!(held.contains(&"Ani Sargsyan".to_string()), "{held:?}");
}

#[test]
fn posts_without_names_resolve_to_their_holder_on_the_day() {
    let text = "Ukraine's defence minister met the U.S. Secretary of State in Jeddah on Tuesday.\n";
    let before = extractor().extract(&Document::from_text("a.txt", day("2025-03-12"), text));
    let names = participants(&before, EventType::TalksHeld, &["UKR", "USA"]);
    assert!(names.contains(&"Rustem Umerov".to_string()), "{names:?}");
    assert!(names.contains(&"Marco Rubio".to_string()), "{names:?}");
    // The post changed hands on 2025-07-17.
    let after = extractor().extract(&Document::from_text("b.txt", day("2025-08-06"), text));
    let names = participants(&after, EventType::TalksHeld, &["UKR", "USA"]);
    assert!(names.contains(&"Denys Shmyhal".to_string()), "{names:?}");
    assert!(!names.contains(&"Rustem Umerov".to_string()), "{names:?}");
    // A post is not a name: no person mention is made up for it.
    assert!(after.mentions.iter().all(|m| m.text != "Denys Shmyhal"));
}

#[test]
fn post_of_a_state_and_title_before_a_name() {
    let text = "The foreign minister of Turkey hosted talks between Russian and Ukrainian delegations in Istanbul on Monday. \
                Ukrainian Foreign Minister Andrii Sybiha attended.\n";
    let x = extractor().extract(&Document::from_text("c.txt", day("2025-06-03"), text));
    let e = x
        .events
        .iter()
        .find(|e| e.event_type == EventType::TalksHeld)
        .expect("talks");
    let names: Vec<&str> = e.participants.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"Hakan Fidan"), "{names:?}");
    // No date: no holder is guessed.
    let undated = extractor().extract(&Document::from_text("d.txt", None, text));
    assert!(
        undated
            .events
            .iter()
            .flat_map(|e| &e.participants)
            .all(|p| p.name != "Hakan Fidan")
    );
}
