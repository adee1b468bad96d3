//! `parley`: the user's command line.
//!
//! - `parley up [--demo] [--watch DIR] [--feed URL]` runs the whole system in one process;
//! - `parley extract --jsonl FILE...` runs the extraction pipeline offline;
//! - `parley ingest --server URL FILE...` submits documents to a running system;
//! - `parley subscribe --server URL [--filter EXPR] [--from SEQ|TIME|new]` prints events as they arrive.
//!
//! Owns: the command line and `parley up` (the three services as tasks of
//! one process). It is the one place that may import every crate; logic a
//! service needs never lives here.

mod commands;
mod display;
mod events;
mod offline;
mod sources;
mod subscriptions;
mod up;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Like the services: a malformed setting names its environment variable.
    let cli: commands::Cli = parley_runtime::config::parse_config();
    match cli.run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parley: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
