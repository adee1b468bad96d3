//! Prints the evaluation JSON Lines for the files given as arguments:
//! `cargo run -p parley-resolve --example extract -- FILE...`
use std::io::Write;

fn main() {
    let kb = parley_kb::KnowledgeBase::bundled().expect("bundled knowledge base loads");
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let (rows, errors) = parley_resolve::offline::extract_files(&paths, &kb);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for row in rows {
        writeln!(out, "{row}").expect("stdout");
    }
    for e in errors {
        eprintln!("error: {e}");
    }
}
