//! The offline pipeline behind `parley extract --jsonl`: files → documents →
//! candidates → resolved rows in the evaluation format (see
//! `shared/eval/FORMAT.md`), with decisions applied in file order so the
//! same person and the same event carry one id in every document.

use parley_extract::{Extractor, Limits, read_path};
use parley_kb::KnowledgeBase;
use parley_resolve::{DocumentMeta, ResolvedEvent, Resolver};
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
            // The in-memory event store cannot fail; a store error is still
            // reported against the document, never a panic.
            let resolution = match resolver.resolve_document(&meta, &extraction) {
                Ok(resolution) => resolution,
                Err(e) => {
                    errors.push(format!("{}: {e}", doc.name));
                    continue;
                }
            };
            if let Err(e) = resolution
                .decisions
                .iter()
                .try_for_each(|d| resolver.apply(d))
            {
                errors.push(format!("{}: {e}", doc.name));
                continue;
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
fn event_row(doc: &str, ev: &ResolvedEvent) -> Value {
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
        "venue_lat": e.venue.lat,
        "venue_lon": e.venue.lon,
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

/// The offline pipeline: files of every kind in, evaluation rows out, with
/// one id per person and per event across files and named errors for bad files.
#[cfg(test)]
mod tests {
    use super::extract_files;
    use parley_kb::KnowledgeBase;
    use std::path::PathBuf;

    fn write(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn rows_follow_the_format_and_share_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            &dir,
            "a.txt",
            b"date 2025-05-11\nTalks set\n\nRussia and Ukraine will meet in Istanbul on Thursday, officials said. Ukrainian Defense Minister Rustem Umerov will lead the team.\n",
        );
        let b = write(
            &dir,
            "b.html",
            br#"<html><head><meta property="article:published_time" content="2025-05-16T08:00:00Z"></head><body><article><h1>Talks held</h1><p>Russian and Ukrainian delegations met in Istanbul on Thursday. Rustem Umerovto led Kyiv's team.</p></article></body></html>"#,
        );
        let feed = write(
            &dir,
            "f.xml",
            br#"<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><item><title>Item</title><guid>item-1</guid><pubDate>Fri, 16 May 2025 10:00:00 +0000</pubDate><description>Russian and Ukrainian negotiators met in Istanbul on Thursday.</description></item></channel></rss>"#,
        );
        let bad = write(&dir, "bad.bin", b"\x00\x01\x02binary");
        let missing = dir.path().join("missing.txt");
        let (rows, errors) = extract_files(
            &[a, b, feed, bad, missing],
            &KnowledgeBase::bundled().unwrap(),
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("bad.bin") && e.contains("binary"))
        );
        assert!(errors.iter().any(|e| e.contains("missing.txt")));
        let events: Vec<_> = rows.iter().filter(|r| r["kind"] == "event").collect();
        let docs: Vec<&str> = events.iter().map(|r| r["doc"].as_str().unwrap()).collect();
        assert_eq!(docs, vec!["a.txt", "b.html", "item-1"]);
        assert_eq!(events[0]["type"], "talks_announced");
        assert_eq!(events[1]["type"], "talks_held");
        assert_eq!(events[0]["date"], "2025-05-15");
        let ids: Vec<&str> = events
            .iter()
            .map(|r| r["event_id"].as_str().unwrap())
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(events[0]["parties"], serde_json::json!(["RUS", "UKR"]));
        assert_eq!(events[0]["venue"], "Istanbul");
        assert_eq!(events[0]["venue_country"], "TUR");
        let umerov: Vec<_> = rows
            .iter()
            .filter(|r| r["kind"] == "entity" && r["name"] == "Rustem Umerov")
            .collect();
        assert_eq!(umerov.len(), 2);
        assert_eq!(umerov[0]["entity_id"], umerov[1]["entity_id"]);
        assert!(
            umerov[1]["mentions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "Rustem Umerovto")
        );
    }
}
