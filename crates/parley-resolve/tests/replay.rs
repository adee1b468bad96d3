//! Event sourcing: decisions replayed rebuild the same state, applying twice
//! changes nothing, human judgements survive, and reports of one event share
//! one id (a planned event later held is the same event).

use chrono::NaiveDate;
use parley_domain::model::{EventStatus, EventType};
use parley_extract::{Document, Extractor};
use parley_kb::KnowledgeBase;
use parley_resolve::{Decision, DocumentMeta, Resolver};

fn day(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn docs() -> Vec<Document> {
    vec![
        Document::from_text(
            "a.txt",
            day(2025, 5, 11),
            "Talks set\n\nRussia and Ukraine will meet in Istanbul on Thursday, officials said. Negotiator Sumbu Sita Mutinga welcomed it.",
        ),
        Document::from_text(
            "b.txt",
            day(2025, 5, 16),
            "Talks held\n\nRussian and Ukrainian delegations met in Istanbul on Thursday. Sumbu Sita Mutinga attended. Keith Kellog said it went well.",
        ),
    ]
}

fn run(kb: &KnowledgeBase) -> (Resolver, Vec<Decision>, Vec<Vec<String>>) {
    let ex = Extractor::new(kb);
    let mut r = Resolver::new(kb);
    let mut all = Vec::new();
    let mut ids = Vec::new();
    for d in docs() {
        let meta = DocumentMeta {
            id: d.id(),
            name: d.name.clone(),
            reference_date: d.reference_date,
        };
        let res = r.resolve_document(&meta, &ex.extract(&d)).unwrap();
        ids.push(res.events.iter().map(|e| e.event_id.clone()).collect());
        for dec in &res.decisions {
            r.apply(dec).unwrap();
        }
        all.extend(res.decisions);
    }
    (r, all, ids)
}

fn snapshot(r: &Resolver) -> (Vec<String>, Vec<String>) {
    let ents = r.entities().map(|e| format!("{e:?}")).collect();
    let evs = r.events().map(|e| format!("{:?}", e.unwrap())).collect();
    (ents, evs)
}

#[test]
fn planned_then_held_is_one_event() {
    let kb = KnowledgeBase::bundled().unwrap();
    let (r, decisions, ids) = run(&kb);
    assert_eq!(ids[0].len(), 1);
    assert_eq!(ids[0], ids[1], "both reports carry one id");
    let ev = r.get_event(&ids[0][0]).unwrap().unwrap();
    assert_eq!(ev.event_type, EventType::TalksHeld);
    assert_eq!(ev.status, EventStatus::Held);
    assert_eq!(ev.source_count, 2);
    assert!(decisions.iter().any(|d| matches!(
        d,
        Decision::CorroborateEvent {
            status: EventStatus::Held,
            ..
        }
    )));
    assert!(ids[0][0].starts_with("evt-"));
}

#[test]
fn unknown_people_keep_one_stable_id() {
    let kb = KnowledgeBase::bundled().unwrap();
    let (r, decisions, _) = run(&kb);
    let registered: Vec<&Decision> = decisions
        .iter()
        .filter(
            |d| matches!(d, Decision::RegisterEntity { name, .. } if name == "Sumbu Sita Mutinga"),
        )
        .collect();
    assert_eq!(
        registered.len(),
        1,
        "registered once, reused by the second document"
    );
    assert!(r.get_entity("per-sumbu-sita-mutinga").is_some());
    // The typo was learned as an alias of the known person.
    assert!(decisions.iter().any(|d| matches!(d, Decision::LearnAlias { alias, entity_id, .. } if alias == "Keith Kellog" && entity_id == "per-keith-kellogg")));
}

#[test]
fn replay_rebuilds_the_same_state_and_is_idempotent() {
    let kb = KnowledgeBase::bundled().unwrap();
    let (live, decisions, _) = run(&kb);
    let mut replayed = Resolver::new(&kb);
    for d in &decisions {
        replayed.apply(d).unwrap();
    }
    assert_eq!(snapshot(&live), snapshot(&replayed));
    for d in &decisions {
        replayed.apply(d).unwrap();
    }
    assert_eq!(
        snapshot(&live),
        snapshot(&replayed),
        "applying twice changes nothing"
    );
    // Decisions survive a JSON round trip (how services persist them).
    let json: Vec<String> = decisions
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    let mut from_json = Resolver::new(&kb);
    for j in &json {
        from_json.apply(&serde_json::from_str(j).unwrap()).unwrap();
    }
    assert_eq!(snapshot(&live), snapshot(&from_json));
}

#[test]
fn human_merge_split_and_alias_survive_replay() {
    let kb = KnowledgeBase::bundled().unwrap();
    let (mut live, mut log, _) = run(&kb);
    let merge = live
        .decide_merge("per-rustem-umerov", "per-sumbu-sita-mutinga", "analyst")
        .unwrap();
    for d in &merge {
        live.apply(d).unwrap();
    }
    log.extend(merge);
    assert_eq!(
        live.get_entity("per-sumbu-sita-mutinga").unwrap().entity_id,
        "per-rustem-umerov"
    );
    let split = live
        .decide_split(
            "per-rustem-umerov",
            "Sumbu Sita Mutinga",
            &["Sumbu Sita Mutinga".to_string()],
            "analyst",
        )
        .unwrap();
    for d in &split {
        live.apply(d).unwrap();
    }
    log.extend(split);
    let alias = live
        .decide_alias("per-keith-kellogg", "Gen. Kellogg", "analyst")
        .unwrap();
    for d in &alias {
        live.apply(d).unwrap();
    }
    log.extend(alias);
    let mut replayed = Resolver::new(&kb);
    for d in &log {
        replayed.apply(d).unwrap();
    }
    assert_eq!(snapshot(&live), snapshot(&replayed));
    assert!(
        replayed
            .get_entity("per-keith-kellogg")
            .unwrap()
            .aliases
            .contains("Gen. Kellogg")
    );
    // Errors are explained, not panics.
    assert!(
        live.decide_merge("per-nobody", "per-rustem-umerov", "x")
            .is_err()
    );
    assert!(
        live.decide_merge("per-rustem-umerov", "per-rustem-umerov", "x")
            .is_err()
    );
    assert!(live.decide_alias("per-rustem-umerov", "   ", "x").is_err());
}

#[test]
fn discovered_id_collision_gets_a_suffix() {
    let kb = KnowledgeBase::bundled().unwrap();
    let mut r = Resolver::new(&kb);
    // Someone already took the slug for a different person.
    r.apply(&Decision::RegisterEntity {
        entity_id: "per-jonas-breuer".into(),
        kind: parley_resolve::EntityKind::Person,
        name: "Jonas Breuer".into(),
        aliases: vec![],
        code: None,
        origin: "human".into(),
        document_id: None,
    })
    .unwrap();
    let split = r
        .decide_split("per-jonas-breuer", "Jonas Breuer", &[], "analyst")
        .unwrap();
    match &split[0] {
        Decision::SplitEntity { new_entity_id, .. } => {
            assert_eq!(new_entity_id, "per-jonas-breuer-2")
        }
        other => panic!("{other:?}"),
    }
}
