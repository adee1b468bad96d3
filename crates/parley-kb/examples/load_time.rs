//! Measures how long loading the shipped knowledge base takes.
//!
//! Run with `cargo run --release -p parley-kb --example load_time`; the
//! issue's budget for start-up is 200 ms. Prints one line per run and the
//! best and worst of five runs (the first includes page faults on the
//! binary's data).

use std::time::Instant;

use parley_kb::KnowledgeBase;

fn main() -> Result<(), parley_kb::KbError> {
    let mut times = Vec::new();
    let mut kb = KnowledgeBase::default();
    for run in 1..=5 {
        let start = Instant::now();
        kb = KnowledgeBase::bundled()?;
        let elapsed = start.elapsed();
        println!("run {run}: {:.2} ms", elapsed.as_secs_f64() * 1e3);
        times.push(elapsed);
    }
    let best = times.iter().min().copied().unwrap_or_default();
    let worst = times.iter().max().copied().unwrap_or_default();
    println!(
        "bundled knowledge base: {} states, {} organisations, {} cities, {} people, {} surface forms",
        kb.states.len(),
        kb.organisations.len(),
        kb.cities.len(),
        kb.people.len(),
        kb.surface_forms().count()
    );
    println!(
        "load time: best {:.2} ms, worst {:.2} ms (budget 200 ms)",
        best.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    Ok(())
}
