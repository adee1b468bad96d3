//! Mention-resolution throughput on one core, and start-up with the shipped
//! knowledge base. Run with `cargo bench -p parley-resolve --bench resolve`.

use std::hint::black_box;
use std::time::Instant;

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

fn main() {
    let started = Instant::now();
    let kb = KnowledgeBase::bundled().expect("bundled knowledge base loads");
    let resolver = Resolver::new(&kb);
    let startup = started.elapsed();

    let date = NaiveDate::from_ymd_opt(2025, 3, 23);
    // Warm up, then measure.
    for mention in MENTIONS {
        black_box(resolver.resolve_mention(mention, None, date, MentionKind::Person));
    }
    let rounds = 4_000;
    let started = Instant::now();
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
    let elapsed = started.elapsed();
    let total = rounds * MENTIONS.len();
    println!(
        "start-up (bundled knowledge base + resolver): {:.1} ms",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "resolve_mention: {total} mentions in {:.3} s = {:.0} mentions/s on one core",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}
