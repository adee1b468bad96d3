//! Where `parley up` and `parley ingest` get documents from: files, a watched
//! folder, and polled RSS/Atom feeds, with progress reporting.
//!
//! Nothing here decides whether a document is new: the ingest service does,
//! by the document's id and content digest in the log. Re-reading a folder or
//! a feed after a restart therefore never ingests an item twice; the caches
//! kept here only save work.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use parley_domain::pb::SubmitArticleResponse;
use parley_ingest::Ingest;
use tokio_util::sync::CancellationToken;

use crate::output::{say, warn};

/// Progress over a known number of documents: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
}

impl Progress {
    /// Starts reporting on `total` items; a bar only if stderr is a terminal and there are several.
    pub fn new(total: usize, label: &str) -> Self {
        let bar = (std::io::stderr().is_terminal() && total > 1).then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar
        });
        Self {
            bar,
            total,
            done: 0,
        }
    }

    /// Records one finished item and what became of it.
    pub fn finished(&mut self, name: &str, outcome: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(format!("{name}: {outcome}"));
            }
            None => {
                crate::output::say(&format!("[{}/{}] {name}: {outcome}", self.done, self.total))
            }
        }
    }

    /// Prints a line above the bar, where it stays after the bar is cleared
    /// (a failure must not vanish with the bar).
    pub fn failed(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => crate::output::warn(line),
        }
    }

    /// Clears the bar; lines printed with [`Progress::failed`] stay.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A short outcome for a submission: new documents, duplicates and errors.
pub fn outcome(response: &SubmitArticleResponse) -> String {
    let duplicates = response.documents.iter().filter(|d| d.duplicate).count();
    let new = response.documents.len() - duplicates;
    let mut text = format!("{new} new");
    if duplicates > 0 {
        text.push_str(&format!(", {duplicates} already ingested"));
    }
    if !response.errors.is_empty() {
        text.push_str(&format!(", {} refused", response.errors.len()));
    }
    text
}

/// Files worth ingesting: not hidden, not an editor's or downloader's temporary file.
fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with(".swp"))
}

/// Every candidate file under `dir`, sorted, descending into sub-folders.
pub(crate) fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() && is_candidate(&path) {
                folders.push(path);
            } else if kind.is_file() && is_candidate(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// What a file looked like when it was last submitted, to skip unchanged files.
type Stamp = (u64, Option<SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

/// Reads and submits one file; the error names the file.
async fn submit_file(
    ingest: &Ingest,
    dir: &Path,
    path: &Path,
    max_bytes: usize,
) -> anyhow::Result<SubmitArticleResponse> {
    let len = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("{}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= max_bytes as u64,
        "{}: {len} bytes exceeds the limit of {max_bytes} bytes (PARLEY_MAX_DOCUMENT_BYTES)",
        path.display()
    );
    let content = tokio::fs::read(path)
        .await
        .with_context(|| format!("{}", path.display()))?;
    let name = path
        .strip_prefix(dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    Ok(ingest
        .submit(&name, &content, None, Some(&path.display().to_string()))
        .await)
}

/// Ingests every file in `dir`, then every file created or changed in it, until cancelled.
pub async fn watch_folder(
    dir: PathBuf,
    ingest: Arc<Ingest>,
    max_bytes: usize,
    token: CancellationToken,
) -> anyhow::Result<()> {
    use notify::Watcher;
    anyhow::ensure!(dir.is_dir(), "--watch {}: not a folder", dir.display());

    // Start watching before the first scan so nothing dropped in between is missed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PathBuf>(4096);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_create() || event.kind.is_modify())
        {
            for path in event.paths {
                let _ = tx.blocking_send(path);
            }
        }
    })
    .with_context(|| format!("--watch {}: cannot watch the folder", dir.display()))?;
    watcher
        .watch(&dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("--watch {}: cannot watch the folder", dir.display()))?;

    let mut seen: HashMap<PathBuf, Stamp> = HashMap::new();
    let files = list_files(&dir).with_context(|| format!("--watch {}", dir.display()))?;
    let mut progress = Progress::new(files.len(), "ingesting");
    for path in files {
        if token.is_cancelled() {
            return Ok(());
        }
        let before = stamp(&path);
        match submit_file(&ingest, &dir, &path, max_bytes).await {
            Ok(response) => {
                for error in &response.errors {
                    progress.failed(&format!("parley up: {}: {}", error.name, error.message));
                }
                progress.finished(&path.display().to_string(), &outcome(&response));
            }
            Err(e) => {
                progress.failed(&format!("parley up: {e:#}"));
                progress.finished(&path.display().to_string(), "failed");
            }
        }
        if let Some(before) = before {
            seen.insert(path, before);
        }
    }
    progress.finish();
    say(&format!(
        "parley up: watching {} for new files",
        dir.display()
    ));

    // A file being written fires many events: wait until it has been quiet for a moment.
    const QUIET: Duration = Duration::from_millis(300);
    let mut pending: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
    loop {
        let next_due = pending.values().min().map(|t| *t + QUIET);
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            path = rx.recv() => match path {
                Some(path) => { pending.insert(path, tokio::time::Instant::now()); }
                None => return Ok(()),
            },
            _ = async {
                match next_due {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = tokio::time::Instant::now();
                let due: Vec<PathBuf> = pending
                    .iter()
                    .filter(|(_, t)| **t + QUIET <= now)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in due {
                    pending.remove(&path);
                    if !path.is_file() || !is_candidate(&path) {
                        continue;
                    }
                    let current = stamp(&path);
                    if current.is_some() && seen.get(&path) == current.as_ref() {
                        continue;
                    }
                    match submit_file(&ingest, &dir, &path, max_bytes).await {
                        Ok(response) => {
                            for error in &response.errors {
                                warn(&format!("parley up: {}: {}", error.name, error.message));
                            }
                            say(&format!("parley up: {}: {}", path.display(), outcome(&response)));
                        }
                        Err(e) => warn(&format!("parley up: {e:#}")),
                    }
                    if let Some(current) = current {
                        seen.insert(path, current);
                    }
                }
            }
        }
    }
}

/// How a feed is polled.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Time between two polls.
    pub interval: Duration,
    /// Largest feed body accepted.
    pub max_bytes: usize,
}

/// Validators from the last successful fetch, sent back so an unchanged feed costs a 304.
#[derive(Debug, Default)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Polls `url` until cancelled; failures are reported and retried on the next poll.
pub async fn poll_feed(
    url: String,
    ingest: Arc<Ingest>,
    options: FeedOptions,
    token: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            warn(&format!(
                "parley up: --feed {url}: cannot build an HTTP client: {e}"
            ));
            return;
        }
    };
    let mut validators = Validators::default();
    loop {
        match fetch_feed(&client, &url, &mut validators, options.max_bytes).await {
            Ok(Some((body, media_type))) => {
                let response = ingest
                    .submit(&url, &body, media_type.as_deref(), Some(&url))
                    .await;
                for error in &response.errors {
                    warn(&format!(
                        "parley up: --feed {url}: {}: {}",
                        error.name, error.message
                    ));
                }
                say(&format!("parley up: --feed {url}: {}", outcome(&response)));
            }
            Ok(None) => tracing::debug!(feed = %url, "feed unchanged (304)"),
            Err(e) => warn(&format!("parley up: --feed {url}: {e:#}")),
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(options.interval) => {}
        }
    }
}

/// One conditional GET: `None` when the feed has not changed since the last fetch.
async fn fetch_feed(
    client: &reqwest::Client,
    url: &str,
    validators: &mut Validators,
    max_bytes: usize,
) -> anyhow::Result<Option<(Vec<u8>, Option<String>)>> {
    let mut request = client.get(url);
    if let Some(etag) = &validators.etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(modified) = &validators.last_modified {
        request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
    }
    let mut response = request.send().await.context("request failed")?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    anyhow::ensure!(
        response.status().is_success(),
        "the server answered {}",
        response.status()
    );
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let media_type = header(reqwest::header::CONTENT_TYPE);
    // Read the body in chunks so an endless or huge response stops at the limit.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.context("reading the body")? {
        anyhow::ensure!(
            body.len() + chunk.len() <= max_bytes,
            "the feed is larger than the limit of {max_bytes} bytes (PARLEY_MAX_DOCUMENT_BYTES)"
        );
        body.extend_from_slice(&chunk);
    }
    validators.etag = etag;
    validators.last_modified = last_modified;
    Ok(Some((body, media_type)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_hidden_files_are_skipped() {
        for name in ["a.txt", "feed.xml", "page.html"] {
            assert!(is_candidate(Path::new(name)), "{name}");
        }
        for name in [".a.txt", "a.txt~", "a.part", "a.tmp", ".a.swp"] {
            assert!(!is_candidate(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn listing_is_sorted_and_recursive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["b.txt", "a.txt", "sub/c.txt", ".hidden"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let files = list_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["a.txt", "b.txt", "sub/c.txt"]);
    }
}
