//! `parley ingest`: many files into a running Parley, as fast as it lets us.
//!
//! A new user's first command is often a whole folder. The server limits each
//! client's submissions per second (`PARLEY_INGEST_RATE_PER_SEC`) and answers
//! a client over it with `RESOURCE_EXHAUSTED` and the delay after which to
//! retry (`grpc-retry-pushback-ms` metadata, also said in the message). This
//! client therefore:
//!
//! - sends at most `--concurrency` files at a time;
//! - on a refusal, waits the delay the server named and sends again, and from
//!   then on spaces its requests a little wider than the server's interval
//!   (its rate, `parley-rate-limit-per-sec` metadata, or else the largest
//!   delay named), so it settles at the server's pace instead of being
//!   refused over and over;
//! - retries `UNAVAILABLE` (a server restarting) a few times with backoff;
//! - prints every failure on its own line, which stays on the screen after
//!   the progress bar is gone, and ends with a summary
//!   (`1000 ingested, 0 duplicates, 0 failed`); the exit status is 0 only
//!   when nothing failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::{SubmitArticleRequest, SubmitArticleResponse};
use parley_runtime::client::AuthChannel;
use tokio::time::Instant;

use crate::out;
use crate::sources::Progress;

/// Most attempts for one file refused for its rate before it counts as failed.
const MAX_RATE_ATTEMPTS: u32 = 100;
/// Most attempts for one file while the server is unavailable.
const MAX_UNAVAILABLE_ATTEMPTS: u32 = 6;
/// Delay assumed when a refusal names none (a server that is not Parley).
const DEFAULT_PUSHBACK: Duration = Duration::from_millis(100);
/// Requests are spaced by this much more than the largest delay named.
const SPACING_MARGIN: f64 = 1.1;
/// Metadata key carrying the server's retry delay in milliseconds.
pub const PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";
/// Metadata key carrying the server's rate limit (requests per second per client).
pub const RATE_KEY: &str = "parley-rate-limit-per-sec";

/// Flags of `parley ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Where `parley up` or the ingest service is.
    #[command(flatten)]
    server: crate::rpc::ServerArgs,
    /// Files sent at the same time.
    #[arg(long, env = "PARLEY_INGEST_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Wait until the resolver has resolved each document, and print the ids
    /// of the events it led to (`events:evt-…,evt-…`, or `events:unresolved`
    /// when the resolver did not answer in time).
    #[arg(long, env = "PARLEY_INGEST_WAIT_FOR_EVENTS")]
    wait_for_events: bool,
    /// Text, HTML or RSS/Atom files, or folders (every file in them, recursively).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// When the next request may go out: shared by every request of the run.
///
/// Until the server refuses one, requests go out as soon as a slot of the
/// concurrency is free. After a refusal naming a delay `d`, nothing goes out
/// before `d` has passed, and requests are spaced by the server's interval
/// (from the rate it names) plus a tenth; a server that names no rate is
/// paced by the largest `d` seen so far plus a tenth (a delay is the time
/// until the client's budget holds one request again, so its largest value
/// approaches the interval from below).
#[derive(Debug, Default)]
struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    next: Option<Instant>,
    spacing: Duration,
}

impl Pacer {
    /// Waits for this request's turn.
    async fn turn(&self) {
        let at = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = state.next.map_or(now, |next| next.max(now));
            if !state.spacing.is_zero() {
                state.next = Some(at + state.spacing);
            }
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// The server refused a request, asked for `delay`, and may have said
    /// its rate (`per_second`).
    fn refused(&self, delay: Duration, per_second: Option<u32>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let resume = Instant::now() + delay;
        state.next = Some(state.next.map_or(resume, |next| next.max(resume)));
        let interval = per_second
            .filter(|rate| *rate > 0)
            .map_or(delay, |rate| Duration::from_secs(1) / rate);
        // A tenth more than the server's interval: requests do not arrive
        // exactly as spaced, and at the very rate every early one is refused.
        state.spacing = state.spacing.max(interval.mul_f64(SPACING_MARGIN));
    }
}

/// The delay a RESOURCE_EXHAUSTED refusal names: its metadata, else the
/// "retry in N ms" of its message, else a default.
pub fn pushback(status: &tonic::Status) -> Duration {
    let from_metadata = status
        .metadata()
        .get(PUSHBACK_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from_message = || {
        let (_, rest) = status.message().split_once("retry in ")?;
        rest.split(' ').next()?.parse::<u64>().ok()
    };
    from_metadata
        .or_else(from_message)
        .map_or(DEFAULT_PUSHBACK, Duration::from_millis)
}

/// The rate a refusal names in its metadata, if any.
fn rate(status: &tonic::Status) -> Option<u32> {
    status
        .metadata()
        .get(RATE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// What became of one file.
enum FileOutcome {
    Submitted(SubmitArticleResponse),
    Failed(String),
}

/// Totals for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    ingested: usize,
    duplicates: usize,
    failed: usize,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ingested, {} duplicates, {} failed",
            self.ingested, self.duplicates, self.failed
        )
    }
}

/// Runs `parley ingest`.
pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let files = expand(&args.files);
    let client = IngestServiceClient::new(crate::rpc::connect(&args.server.server).await?)
        .max_encoding_message_size(64 * 1024 * 1024);
    let pacer = Arc::new(Pacer::default());
    let mut progress = Progress::new(files.len(), "ingesting");
    let mut totals = Totals::default();
    let wait_for_events = args.wait_for_events;
    let mut outcomes = futures::stream::iter(files)
        .map(|(path, unlisted)| {
            let client = client.clone();
            let pacer = pacer.clone();
            async move {
                let outcome = match unlisted {
                    Some(problem) => FileOutcome::Failed(problem),
                    None => submit_file(client, &pacer, &path, wait_for_events).await,
                };
                (path, outcome)
            }
        })
        .buffered(usize::from(args.concurrency));
    while let Some((path, outcome)) = outcomes.next().await {
        let shown = path.display().to_string();
        match outcome {
            FileOutcome::Submitted(response) => {
                for receipt in &response.documents {
                    let mut note = if receipt.duplicate { "\tduplicate" } else { "" }.to_owned();
                    if wait_for_events {
                        note.push_str(&match receipt.resolved {
                            true => format!("\tevents:{}", receipt.event_ids.join(",")),
                            false => "\tevents:unresolved".to_owned(),
                        });
                    }
                    out!("{}\t{}{note}", receipt.document_id, receipt.name);
                    if receipt.duplicate {
                        totals.duplicates += 1;
                    } else {
                        totals.ingested += 1;
                    }
                }
                for error in &response.errors {
                    progress.failed(&format!("parley ingest: {}: {}", error.name, error.message));
                }
                totals.failed += response.errors.len();
                progress.finished(&shown, &crate::sources::outcome(&response));
            }
            FileOutcome::Failed(message) => {
                totals.failed += 1;
                progress.failed(&format!("parley ingest: {shown}: {message}"));
                progress.finished(&shown, "failed");
            }
        }
    }
    progress.finish();
    eprintln!("{totals}");
    Ok(if totals.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The files to send, in order: files as given, folders expanded to the files
/// in them (sorted, recursively, without hidden or temporary files). A folder
/// that cannot be listed stays in its place with the reason.
fn expand(paths: &[PathBuf]) -> Vec<(PathBuf, Option<String>)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            match crate::sources::list_files(path) {
                Ok(listed) => files.extend(listed.into_iter().map(|file| (file, None))),
                Err(e) => files.push((path.clone(), Some(format!("cannot list the folder: {e}")))),
            }
        } else {
            files.push((path.clone(), None));
        }
    }
    files
}

/// Reads `path` and submits it, retrying refusals for rate and unavailability.
async fn submit_file(
    mut client: IngestServiceClient<AuthChannel>,
    pacer: &Pacer,
    path: &Path,
    wait_for_events: bool,
) -> FileOutcome {
    let content = match tokio::fs::read(path).await {
        Ok(content) => content,
        Err(e) => return FileOutcome::Failed(format!("cannot read: {e}")),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let request = SubmitArticleRequest {
        name,
        content,
        media_type: String::new(),
        source_url: path.display().to_string(),
        wait_for_events,
    };
    let mut rate_attempts = 0;
    let mut unavailable_attempts = 0;
    loop {
        pacer.turn().await;
        let status = match client.submit_article(request.clone()).await {
            Ok(response) => return FileOutcome::Submitted(response.into_inner()),
            Err(status) => status,
        };
        match status.code() {
            tonic::Code::ResourceExhausted if rate_attempts + 1 < MAX_RATE_ATTEMPTS => {
                rate_attempts += 1;
                let delay = pushback(&status);
                tracing::debug!(file = %path.display(), ?delay, "refused for rate; retrying");
                pacer.refused(delay, rate(&status));
            }
            tonic::Code::Unavailable if unavailable_attempts + 1 < MAX_UNAVAILABLE_ATTEMPTS => {
                unavailable_attempts += 1;
                tokio::time::sleep(Duration::from_millis(250 << unavailable_attempts)).await;
            }
            _ => return FileOutcome::Failed(crate::rpc::describe(&status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pushback_is_read_from_metadata_then_from_the_message() {
        let mut status = tonic::Status::resource_exhausted("rate limit exceeded; retry in 17 ms");
        assert_eq!(pushback(&status), Duration::from_millis(17));
        status
            .metadata_mut()
            .insert(PUSHBACK_KEY, "40".parse().unwrap());
        assert_eq!(pushback(&status), Duration::from_millis(40));
        assert_eq!(
            pushback(&tonic::Status::resource_exhausted("slow down")),
            DEFAULT_PUSHBACK
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_refusal_requests_wait_and_are_spaced() {
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.turn().await;
        pacer.turn().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no pacing before a refusal"
        );
        pacer.refused(Duration::from_millis(20), None);
        pacer.turn().await;
        assert_eq!(start.elapsed(), Duration::from_millis(20));
        pacer.turn().await;
        assert_eq!(start.elapsed(), Duration::from_millis(42));
        // The rate the server names sets the spacing: 10 a second, 110 ms apart.
        pacer.refused(Duration::from_millis(1), Some(10));
        pacer.turn().await;
        let at = start.elapsed();
        pacer.turn().await;
        assert_eq!(start.elapsed() - at, Duration::from_millis(110));
    }

    #[test]
    fn the_summary_line_reads_as_promised() {
        let totals = Totals {
            ingested: 1000,
            duplicates: 0,
            failed: 0,
        };
        assert_eq!(totals.to_string(), "1000 ingested, 0 duplicates, 0 failed");
    }
}
