//! Prints the candidates of documents (for development).
fn main() {
    let kb = parley_kb::KnowledgeBase::bundled().expect("kb");
    let ex = parley_extract::Extractor::new(&kb);
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        for doc in parley_extract::read_documents(&path, &bytes, None, &Default::default()) {
            let doc = match doc {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("{e}");
                    continue;
                }
            };
            let x = ex.extract(&doc);
            println!("== {} ({:?})", doc.name, doc.reference_date);
            for e in &x.events {
                println!(
                    "  {} {:?} {:?} P={:?} M={:?} @ {:?} mod={:?} scope={:?} parts={:?} attr={:?}",
                    e.event_type.as_str(),
                    e.status,
                    e.date.date,
                    e.party_codes(),
                    e.mediator_codes(),
                    e.venue.city,
                    e.modality,
                    e.scope,
                    e.participants
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>(),
                    e.evidence[0].attributed_to
                );
            }
            let m: Vec<String> = x
                .mentions
                .iter()
                .map(|m| {
                    format!(
                        "{}[{}{}]",
                        m.text,
                        m.source,
                        m.affiliation
                            .as_deref()
                            .map(|a| format!(",{a}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            println!("  persons: {}", m.join(" | "));
        }
    }
}
