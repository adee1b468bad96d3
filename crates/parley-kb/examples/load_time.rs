//! Measures how long loading the shipped knowledge base takes.
//!
//! Run with `cargo run --release -p parley-kb --example load_time`; the
//! issue's budget for start-up is 200 ms. Prints one line per run (wall
//! clock, and the thread's CPU time: the machine is shared, so wall clock
//! overstates the work) and the best and worst of ten runs (the first
//! includes page faults on the binary's data).

use std::time::{Duration, Instant};

use parley_kb::KnowledgeBase;

/// CPU time this thread has run, from `/proc/thread-self/schedstat`; `None`
/// off Linux.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), parley_kb::KbError> {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut kb = KnowledgeBase::default();
    for run in 1..=10 {
        // Free the previous run's knowledge base outside the timed span.
        drop(std::mem::take(&mut kb));
        let cpu = thread_cpu();
        let start = Instant::now();
        kb = KnowledgeBase::bundled()?;
        let wall = start.elapsed();
        let cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
        match cpu {
            Some(c) => println!("run {run}: {:.2} ms wall, {:.2} ms CPU", ms(wall), ms(c)),
            None => println!("run {run}: {:.2} ms wall", ms(wall)),
        }
        walls.push(wall);
        cpus.extend(cpu);
    }
    println!(
        "bundled knowledge base: {} states, {} organisations, {} cities, {} people, {} surface forms",
        kb.states.len(),
        kb.organisations.len(),
        kb.cities.len(),
        kb.people.len(),
        kb.surface_forms().count()
    );
    let best = |v: &[Duration]| ms(v.iter().min().copied().unwrap_or_default());
    let worst = |v: &[Duration]| ms(v.iter().max().copied().unwrap_or_default());
    println!(
        "load time: best {:.2} ms, worst {:.2} ms wall; best {:.2} ms, worst {:.2} ms CPU (budget 200 ms)",
        best(&walls),
        worst(&walls),
        best(&cpus),
        worst(&cpus)
    );
    Ok(())
}
