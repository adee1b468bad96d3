//! The offline pipeline: files of every kind in, evaluation rows out, with
//! one id per person and per event across files and named errors for bad files.

use parley_kb::KnowledgeBase;
use parley_resolve::offline::extract_files;
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
