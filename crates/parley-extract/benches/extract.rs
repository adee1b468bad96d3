//! Extraction throughput on one core: `cargo bench -p parley-extract`.
//!
//! Builds ~3 KB articles from the fixture texts (varied by a counter so no
//! cache helps) and reports articles per second for `Extractor::extract`
//! and for `read_documents` + `extract`.
use parley_extract::{Extractor, Limits, read_documents};
use std::time::Instant;

/// CPU seconds used by this process (user + system), from /proc where available:
/// the machine may be shared, so wall time alone understates the speed.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() {
    let kb = parley_kb::KnowledgeBase::bundled().expect("kb loads");
    let ex = Extractor::new(&kb);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut bodies = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        bodies.push(body);
    }
    // ~3 KB each: repeat paragraphs.
    let articles: Vec<Vec<u8>> = (0..400)
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
        .collect();
    let docs: Vec<_> = articles
        .iter()
        .enumerate()
        .map(|(i, a)| {
            read_documents(&format!("a{i}.txt"), a, None, &Limits::default())
                .remove(0)
                .unwrap()
        })
        .collect();
    let rounds = 10;
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let mut events = 0;
    for _ in 0..rounds {
        for d in &docs {
            events += ex.extract(d).events.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (rounds * docs.len()) as f64;
    println!(
        "extract: {:.0} articles/s ({:.1} µs/article, {} events)",
        n / secs,
        secs / n * 1e6,
        events
    );
    if let (Some(a), Some(b)) = (cpu0, cpu_seconds()) {
        println!(
            "extract: {:.0} articles/s of CPU time",
            n / (b - a).max(1e-9)
        );
    }
    let start = Instant::now();
    for _ in 0..rounds {
        for (i, a) in articles.iter().enumerate() {
            let d = read_documents(&format!("a{i}.txt"), a, None, &Limits::default())
                .remove(0)
                .unwrap();
            events += ex.extract(&d).events.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(events > 0, "the corpus yields events");
    println!(
        "read+extract: {:.0} articles/s ({:.1} µs/article)",
        n / secs,
        secs / n * 1e6
    );
}
