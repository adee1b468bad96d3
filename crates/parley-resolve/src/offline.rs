//! The offline pipeline behind `parley extract --jsonl`: files → documents →
//! candidates → resolved rows in the evaluation format (see
//! `shared/eval/FORMAT.md`), with decisions applied in file order so the
//! same person and the same event carry one id in every document.

use crate::{DocumentMeta, Resolver};
use parley_extract::{Extractor, Limits, read_path};
use parley_kb::KnowledgeBase;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Extracts and resolves `paths` in order; returns the JSON Lines rows and
/// one error message per unreadable file or feed item (naming it).
pub fn extract_files(paths: &[PathBuf], kb: &KnowledgeBase) -> (Vec<Value>, Vec<String>) {
    let limits = Limits::default();
    let extractor = Extractor::new(kb);
    let mut resolver = Resolver::new(kb);
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        // Oversized files are refused from their size, before reading; errors
        // name the document the same way whatever went wrong.
        for doc in read_path(path, None, &limits) {
            let doc = match doc {
                Ok(d) => d,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let extraction = extractor.extract(&doc);
            let meta = DocumentMeta {
                id: doc.id(),
                name: doc.name.clone(),
                reference_date: doc.reference_date,
            };
            let resolution = resolver.resolve_document(&meta, &extraction);
            for d in &resolution.decisions {
                resolver.apply(d);
            }
            for ev in &resolution.events {
                rows.push(event_row(&doc.name, ev));
            }
            for p in &resolution.persons {
                rows.push(json!({
                    "kind": "entity",
                    "doc": doc.name,
                    "entity_id": p.entity_id,
                    "type": "person",
                    "name": p.name,
                    "mentions": p.mentions,
                }));
            }
        }
    }
    (rows, errors)
}

/// One event row: the shared id with this document's reading of the event.
fn event_row(doc: &str, ev: &crate::ResolvedEvent) -> Value {
    let e = &ev.event;
    let evidence = e.evidence.first();
    json!({
        "kind": "event",
        "doc": doc,
        "event_id": ev.event_id,
        "type": e.event_type.as_str(),
        "status": e.status,
        "date": e.date.date.map(|d| d.to_string()),
        "date_precision": e.date.precision,
        "end_date": e.date.end_date.map(|d| d.to_string()),
        "date_expression": e.date.expression,
        "effective": e.effective,
        "parties": e.party_codes(),
        "mediators": e.mediator_codes(),
        "venue": e.venue.city,
        "venue_country": e.venue.country,
        "participants": e.participants.iter().map(|p| json!({
            "entity_id": p.entity_id,
            "name": p.name,
            "affiliation": p.affiliation,
            "role": p.role,
        })).collect::<Vec<_>>(),
        "scope": e.scope,
        "modality": e.modality,
        "evidence": evidence.map(|x| x.text.clone()),
        "evidence_start": evidence.map(|x| x.start),
        "evidence_end": evidence.map(|x| x.end),
        "attribution": evidence.and_then(|x| x.attributed_to.clone()),
        "new": ev.new,
    })
}
