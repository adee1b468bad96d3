//! Mention-resolution throughput on one core, and start-up with the shipped
//! knowledge base. Run with `cargo bench -p parley-resolve --bench resolve`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use parley_kb::KnowledgeBase;
use parley_resolve::{MentionKind, Resolver};

/// Spellings as they appear in the news: exact, transliterated, misspelled,
/// glued, possessive, initials, surname only, unknown people.
const MENTIONS: &[&str] = &[
    "Volodymyr Zelensky",
    "Zelenskyy",
    "Zelenskiy's",
    "V. Zelensky",
    "Rustem Umerovto",
    "Umerov-led",
    "Keith Kellog",
    "Steven Witkoff",
    "Mark Rubio",
    "Andrii Yermak",
    "Andriy Sybiha",
    "Recep Tayyip Erdoğan",
    "Hakan Fidan",
    "Vladimir Medinsky",
    "Dmitry Peskov",
    "Khalil al-Hayya",
    "Abdel Fattah el-Sisi",
    "Oleksandr Zelenskyy",
    "Tomasz Wielgosz",
    "Delia Marchetti",
    "Jared Kushner",
    "Benjamin Netanyahu",
    "Faisal bin Farhan",
    "Mohammed bin Salman",
    "Sergei Lavrov",
    "Kirill Dmitriev",
];

/// CPU time this thread has run, from `/proc/thread-self/schedstat`
/// (nanoseconds). The machine is shared, so wall-clock time understates what
/// one core does; `None` off Linux.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// (wall, CPU) time of `f`.
fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration, Option<Duration>) {
    let cpu = thread_cpu();
    let wall = Instant::now();
    let out = f();
    let wall = wall.elapsed();
    let cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
    (out, wall, cpu)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

fn main() {
    let (resolver, wall, cpu) = timed(|| {
        let kb = KnowledgeBase::bundled().expect("bundled knowledge base loads");
        Resolver::new(&kb)
    });
    println!(
        "start-up (bundled knowledge base + resolver): {:.1} ms wall, {} CPU",
        wall.as_secs_f64() * 1e3,
        cpu.map_or("n/a".into(), |c| format!("{:.1} ms", c.as_secs_f64() * 1e3))
    );

    let date = NaiveDate::from_ymd_opt(2025, 3, 23);
    // Warm up, then measure.
    for mention in MENTIONS {
        black_box(resolver.resolve_mention(mention, None, date, MentionKind::Person));
    }
    let rounds = 20_000;
    let ((), wall, cpu) = timed(|| {
        for _ in 0..rounds {
            for mention in MENTIONS {
                black_box(resolver.resolve_mention(
                    black_box(mention),
                    None,
                    date,
                    MentionKind::Person,
                ));
            }
        }
    });
    let total = rounds * MENTIONS.len();
    println!(
        "resolve_mention: {total} mentions in {:.3} s wall = {} wall-clock; {} per CPU-second on one core",
        wall.as_secs_f64(),
        rate(total, wall),
        cpu.map_or("n/a".into(), |c| rate(total, c)),
    );
}
