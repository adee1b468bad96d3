//! Extraction throughput on one core: `cargo bench -p parley-extract`.
//!
//! Two corpora of 400 articles of ~3 KB each:
//! - **dense**: the fixture texts repeated back to back (varied by a
//!   counter), ~12 events per article, so nearly every sentence goes through
//!   the full rule set: the worst case, and the one the goal is
//!   judged on;
//! - **realistic mix**: one paragraph about talks or a ceasefire (the lead of
//!   a fixture) among ordinary news paragraphs (economy, weather, sport,
//!   courts; `benches/data/ordinary_news.txt`, written for this bench), which
//!   is closer to a news feed where most sentences mention no talks at all.
//!
//! Reports articles per second of wall time and of CPU time (user + system
//! of this process: the machine may be shared, so wall time alone
//! understates the speed), for `Extractor::extract` on each corpus and for
//! `read_documents` + `extract` on the dense one.
use parley_extract::{Document, Extractor, Limits, read_documents};
use std::time::Instant;

/// CPU seconds used by this process (user + system), from /proc where
/// available: `schedstat` counts nanoseconds on the CPU, `stat` clock ticks.
fn cpu_seconds() -> Option<f64> {
    if let Ok(s) = std::fs::read_to_string("/proc/self/schedstat")
        && let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
    {
        return Some(ns / 1e9);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Fixture bodies (without the leading `date` line), in a stable order.
fn fixture_bodies() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read");
            text.lines().skip(1).collect::<Vec<_>>().join("\n")
        })
        .collect()
}

/// The dense corpus: whole fixture bodies back to back up to ~3 KB.
fn dense_articles(bodies: &[String]) -> Vec<Vec<u8>> {
    (0..400)
        .map(|i| {
            let mut s = String::from("date 2025-05-11\n");
            let mut k = i;
            while s.len() < 3000 {
                s.push_str(&bodies[k % bodies.len()]);
                s.push_str(&format!("\n\nUpdate {i}.\n\n"));
                k += 1;
            }
            s.into_bytes()
        })
        .collect()
}

/// The realistic mix: one talks/ceasefire paragraph (the first paragraph
/// after a fixture's headline and byline) at a varying position among
/// ordinary news paragraphs, up to ~3 KB.
fn mixed_articles(bodies: &[String]) -> Vec<Vec<u8>> {
    let prose = include_str!("data/ordinary_news.txt");
    let ordinary: Vec<&str> = prose
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let leads: Vec<&str> = bodies
        .iter()
        .filter_map(|b| b.split("\n\n").map(str::trim).find(|p| p.len() > 120))
        .collect();
    (0..400)
        .map(|i| {
            let mut s = format!("date 2025-05-11\nNews digest {i}\n\n");
            let at = i % 4;
            let mut k = i * 7;
            let mut paragraph = 0;
            while s.len() < 3000 {
                if paragraph == at {
                    s.push_str(leads[i % leads.len()]);
                } else {
                    s.push_str(ordinary[k % ordinary.len()]);
                    k += 1;
                }
                s.push_str("\n\n");
                paragraph += 1;
            }
            s.into_bytes()
        })
        .collect()
}

fn read(articles: &[Vec<u8>]) -> Vec<Document> {
    articles
        .iter()
        .enumerate()
        .map(|(i, a)| {
            read_documents(&format!("a{i}.txt"), a, None, &Limits::default())
                .remove(0)
                .unwrap()
        })
        .collect()
}

/// Runs `extract` over `docs` `rounds` times and prints both speeds.
fn measure(label: &str, ex: &Extractor, docs: &[Document], rounds: usize) {
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let mut events = 0;
    // The quickest round: the one least disturbed by other work on the machine.
    let mut best_round = f64::MAX;
    for _ in 0..rounds {
        let round0 = cpu_seconds();
        for d in docs {
            events += ex.extract(d).events.len();
        }
        if let Some((a, b)) = round0.zip(cpu_seconds()) {
            best_round = best_round.min(b - a);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| b - a);
    let n = (rounds * docs.len()) as f64;
    assert!(events > 0, "the corpus yields events");
    println!(
        "{label}: {} articles of {:.1} KB avg, {:.1} events/article",
        docs.len(),
        bytes as f64 / docs.len() as f64 / 1000.0,
        events as f64 / n
    );
    println!(
        "{label}: extract {:.0} articles/s wall ({:.1} µs/article)",
        n / secs,
        secs / n * 1e6
    );
    if let Some(cpu) = cpu {
        println!(
            "{label}: extract {:.0} articles per CPU-second ({:.1} µs of CPU/article; best round {:.0}/s)",
            n / cpu.max(1e-9),
            cpu / n * 1e6,
            docs.len() as f64 / best_round.max(1e-9)
        );
    }
}

fn main() {
    let kb = parley_kb::KnowledgeBase::bundled().expect("kb loads");
    let ex = Extractor::new(&kb);
    let bodies = fixture_bodies();
    let rounds = 10;

    let dense = dense_articles(&bodies);
    let dense_docs = read(&dense);
    // One untimed round: lazily built automata and regex caches warm up.
    for d in &dense_docs {
        ex.extract(d);
    }
    measure("dense", &ex, &dense_docs, rounds);

    let mixed = mixed_articles(&bodies);
    let mixed_docs = read(&mixed);
    measure("realistic mix", &ex, &mixed_docs, rounds);

    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let mut events = 0;
    for _ in 0..rounds {
        for (i, a) in dense.iter().enumerate() {
            let d = read_documents(&format!("a{i}.txt"), a, None, &Limits::default())
                .remove(0)
                .unwrap();
            events += ex.extract(&d).events.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| b - a);
    assert!(events > 0, "the corpus yields events");
    let n = (rounds * dense.len()) as f64;
    println!(
        "dense: read+extract {:.0} articles/s wall ({:.1} µs/article){}",
        n / secs,
        secs / n * 1e6,
        cpu.map(|c| format!(", {:.0} per CPU-second", n / c.max(1e-9)))
            .unwrap_or_default()
    );
}
