//! `parley log verify` and `parley log salvage`: checking a log and copying
//! what is readable out of a damaged one.
//!
//! `parley up` refuses a log that does not verify (a damaged page, a
//! truncated file, records missing before the head), naming the file and
//! the first bad record. `verify` reports every unreadable record;
//! `salvage` copies every readable record, with its sequence, into a new
//! data directory (plus the webhook secret key), records the lost
//! sequences there, and says which they were. `parley up --data NEW_DIR`
//! then rebuilds every read model from the new log; the articles whose
//! records were lost can be ingested again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use parley_log::jetstream::{JetStreamConfig, JetStreamLog};
use parley_log::sqlite::{DATABASE_FILE, LOCK_FILE};

/// Flags of `parley log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(subcommand)]
    action: LogAction,
}

#[derive(Debug, clap::Subcommand)]
enum LogAction {
    /// Check every record of the log (checksums, no missing sequence) and
    /// SQLite's integrity; exits 1 when the log is damaged.
    Verify {
        /// Data directory of the embedded log (not while `parley up` runs on it).
        #[arg(long, env = "PARLEY_DATA", default_value = "./parley-data")]
        data: PathBuf,
        /// Check a JetStream stream's sequences instead (its state: first and
        /// last sequence, message count, deleted messages).
        #[arg(long, env = "PARLEY_NATS_URL")]
        nats: Option<String>,
        /// JetStream stream holding the log (with --nats).
        #[arg(long, env = "PARLEY_STREAM", default_value = "PARLEY")]
        stream: String,
    },
    /// Copy every readable record of a damaged log into a new data directory,
    /// and report exactly which sequences were lost.
    Salvage {
        /// Data directory of the damaged log (only read).
        #[arg(long, env = "PARLEY_DATA", default_value = "./parley-data")]
        data: PathBuf,
        /// New data directory to create the salvaged log in.
        #[arg(long)]
        into: PathBuf,
    },
}

/// Runs `parley log ...`.
pub async fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        LogAction::Verify {
            nats: Some(url),
            stream,
            ..
        } => verify_stream(url, stream).await,
        LogAction::Verify { data, .. } => {
            let report =
                tokio::task::spawn_blocking(move || parley_log::sqlite::verify(&data)).await??;
            println!("{report}");
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        LogAction::Salvage { data, into } => {
            let (from, target) = (data.clone(), into.clone());
            let report =
                tokio::task::spawn_blocking(move || parley_log::sqlite::salvage(&from, &target))
                    .await??;
            let copied = copy_side_files(&data, &into)?;
            println!("{report}");
            for file in copied {
                println!("copied {}", file.display());
            }
            println!(
                "next: `parley up --data {}` rebuilds every read model from the salvaged log",
                into.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks a JetStream stream's sequences, accepting any loss (it is only read).
async fn verify_stream(url: String, stream: String) -> anyhow::Result<ExitCode> {
    let mut config = JetStreamConfig::new(url.clone());
    config.stream_name = stream;
    config.accept_missing = u64::MAX;
    let log = JetStreamLog::connect(config)
        .await
        .with_context(|| format!("cannot reach the JetStream log at {url}"))?;
    let check = log.check_stream().await?;
    println!("{check}");
    Ok(if check.missing() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Copies the data directory's own files but the log, its lock and the read
/// models (`state/`, rebuilt from the new log): the webhook secret key, so
/// stored webhook secrets still open.
fn copy_side_files(data: &Path, into: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(data).with_context(|| format!("reading {}", data.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let skip = name.starts_with(DATABASE_FILE) || name == LOCK_FILE;
        if skip || !entry.file_type()?.is_file() {
            continue;
        }
        let target = into.join(entry.file_name());
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!("copying {} to {}", entry.path().display(), target.display())
        })?;
        copied.push(target);
    }
    Ok(copied)
}
