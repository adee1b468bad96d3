//! `parley`: the user's command line.
//!
//! - `parley up [--demo] [--watch DIR] [--feed URL]` runs the whole system in one process;
//! - `parley extract --jsonl FILE...` runs the extraction pipeline offline;
//! - `parley ingest --server URL FILE|DIR...` submits documents to a running system, paced to its rate limit;
//! - `parley log verify|salvage` checks the embedded log or copies what is readable out of a damaged one;
//! - `parley subscribe --server URL [--filter EXPR] [--from SEQ|TIME|new]` prints events as they arrive.
//!
//! Owns: the command line and `parley up` (the three services as tasks of
//! one process). It is the one place that may import every crate; logic a
//! service needs never lives here.

mod commands;
mod display;
mod events;
mod ingest;
mod logcmd;
mod offline;
mod output;
mod rpc;
mod sources;
mod subscribe;
mod subscriptions;
mod up;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Like the services: a malformed setting names its environment variable.
    let cli: commands::Cli = parley_runtime::config::parse_config();
    match cli.run().await {
        Ok(code) => code,
        // The reader of our output has gone (`parley events export | head`):
        // that is how such a pipeline ends, not a failure.
        Err(e) if output::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
