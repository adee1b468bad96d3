//! What the CLI prints on standard output, and a closed pipe taken as the
//! normal end it is.
//!
//! `println!` panics when stdout is a pipe whose reader has gone
//! (`parley subscribe | head -1`). Every line of the CLI goes through
//! [`line`] (or the [`out!`](crate::out) macro) instead, which returns the
//! error; `main` then ends quietly with success when that error is a broken
//! pipe, as `head`'s upstream commands do.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `parley up` reports in JSON log lines (`PARLEY_LOG_FORMAT=json`).
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Makes [`say`] and [`warn`] write JSON log lines instead of plain ones.
pub fn log_as_json(on: bool) {
    JSON_LOGS.store(on, Ordering::Relaxed);
}

/// A status line for the person (or collector) watching stderr: plain text,
/// or an INFO log line under `PARLEY_LOG_FORMAT=json`, so that every line a
/// collector reads is JSON.
pub fn say(line: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        tracing::info!(target: "parley_up", "{}", line.trim_start_matches("parley up: "));
    } else {
        eprintln!("{line}");
    }
}

/// Like [`say`], for something that went wrong (a WARN log line in JSON).
pub fn warn(line: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        tracing::warn!(target: "parley_up", "{}", line.trim_start_matches("parley up: "));
    } else {
        eprintln!("{line}");
    }
}

/// Writes one line to stdout (line-buffered: it is flushed at once).
pub fn line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Prints one line to stdout like `println!`, returning from the enclosing
/// function with the error instead of panicking when stdout is closed.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}

/// Whether `error` (or one of its causes) is a write to a closed pipe.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            cause
                .downcast_ref::<csv::Error>()
                .and_then(|csv| match csv.kind() {
                    csv::ErrorKind::Io(io) => Some(io),
                    _ => None,
                })
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_recognised_through_context_and_csv() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(
            &anyhow::Error::from(pipe()).context("printing")
        ));
        assert!(is_broken_pipe(&anyhow::Error::from(csv::Error::from(
            pipe()
        ))));
        assert!(!is_broken_pipe(&anyhow::anyhow!("Broken pipe")));
        assert!(!is_broken_pipe(&anyhow::Error::from(std::io::Error::from(
            std::io::ErrorKind::NotFound
        ))));
    }
}
