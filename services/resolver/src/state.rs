//! The resolver's state, its replay, and its handling of extracted documents.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use parley_domain::{Event, aggregate, convert};
use parley_log::{AggregateRef, EventLog, ExpectedVersion, Filter, LogError, ReadMode, StartAt};
use parley_resolve::{Decision, DocumentMeta, Resolver, StoreError as EventStoreError};
use parley_runtime::{DecodedRecord, EnvelopeBuilder, append_events, decode_record};
use parley_runtime::{Handled, HandlerError, RecordHandler};
use sha2::{Digest, Sha256};

use crate::decisions::{aggregate_of, decision_from_event, decision_to_event};
use crate::store::{StateFile, StoreError};

/// Why the resolver's state could not take a step.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The log refused or was unavailable (typed: see [`LogError`]).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The state file failed: nothing is decided on this state any more; the
    /// next start rebuilds it from the log.
    #[error("the resolver's state failed and is rebuilt from the log at the next start: {0}")]
    Failed(String),
}

impl From<StateError> for HandlerError {
    /// A failed state is no fault of the record: it stays in the log for the
    /// next start (the consumer stops), never parked as poison.
    fn from(error: StateError) -> Self {
        match error {
            StateError::Log(e) => e.into(),
            StateError::Failed(_) => HandlerError::Transient(error.to_string()),
        }
    }
}

/// The resolver plus what the service needs around it.
pub struct ResolverState {
    log: Arc<dyn EventLog>,
    inner: Mutex<Inner>,
    /// Serialises deciding and appending, so two documents never decide on stale state.
    write: tokio::sync::Mutex<()>,
    /// Set (once) when the state file failed: why. Nothing is decided after it.
    failure: tokio::sync::watch::Sender<Option<String>>,
}

struct Inner {
    resolver: Resolver,
    /// On disk: ids of `CandidatesExtracted` events already resolved (from
    /// DocumentResolved causation ids) and the events each resolved document
    /// reports (its latest resolution), to diff a re-extraction.
    documents: StateFile,
    /// Last log sequence folded into the resolver: the state is exactly the log up to here.
    applied: u64,
    /// Last record's sequence of every entity and talks aggregate, for expected-version appends.
    versions: HashMap<AggregateRef, u64>,
}

/// Attempts at one document when another replica keeps winning the race for the same aggregates.
const MAX_CONFLICT_RETRIES: u32 = 8;

/// Kinds of aggregate the resolver decides on, and therefore folds into its state.
const FOLDED: [&str; 3] = [aggregate::ENTITY, aggregate::TALKS, aggregate::ARTICLE];

/// A summary of the state, equal for equal states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// Entities known.
    pub entities: u64,
    /// Events known.
    pub events: u64,
    /// Documents resolved.
    pub documents: u64,
    /// SHA-256 over every entity and event.
    pub digest: String,
}

impl ResolverState {
    /// A fresh state over the knowledge base, in a private temporary file.
    ///
    /// # Panics
    /// When SQLite cannot create a temporary database; use [`ResolverState::open`].
    pub fn new(log: Arc<dyn EventLog>, kb: &parley_kb::KnowledgeBase) -> Self {
        Self::open(log, kb, None).expect("cannot create the resolver's temporary state file")
    }

    /// A fresh state over the knowledge base, its bulk in a file in
    /// `state_dir` (rebuilt: earlier content is discarded) or, without one,
    /// in a private temporary file.
    pub fn open(
        log: Arc<dyn EventLog>,
        kb: &parley_kb::KnowledgeBase,
        state_dir: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let file = StateFile::open(state_dir, &log.log_id())?;
        Ok(Self {
            log,
            inner: Mutex::new(Inner {
                resolver: Resolver::with_store(kb, Box::new(file.events())),
                documents: file,
                applied: 0,
                versions: HashMap::new(),
            }),
            write: tokio::sync::Mutex::new(()),
            failure: tokio::sync::watch::channel(None).0,
        })
    }

    /// Marks the state failed (the first failure wins) and says so.
    fn fail(&self, error: impl std::fmt::Display) -> StateError {
        let reason = error.to_string();
        self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            tracing::error!(error = %reason, "the resolver's state file failed; the resolver stops deciding and reports NOT_SERVING (the next start rebuilds it from the log)");
            *failure = Some(reason.clone());
            true
        });
        StateError::Failed(reason)
    }

    /// Why the state failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Waits until the state fails; returns why.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.subscribe();
        let reason = match failure.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            // The state is gone: it can fail no more.
            None => std::future::pending().await,
        }
    }

    /// `Err` when the state failed earlier.
    fn check(&self) -> Result<(), StateError> {
        match self.failure() {
            Some(reason) => Err(StateError::Failed(reason)),
            None => Ok(()),
        }
    }

    /// Replays every decision in the log; returns the number of records read.
    pub async fn replay(&self) -> Result<u64, StateError> {
        self.catch_up().await
    }

    /// Folds every record appended since the last one applied, by this replica
    /// or any other, so decisions are never taken on a stale state.
    pub async fn catch_up(&self) -> Result<u64, StateError> {
        self.check()?;
        let from = self.applied_sequence() + 1;
        let mut records = self
            .log
            .read(
                StartAt::Sequence(from),
                Filter::types(FOLDED),
                ReadMode::ToEnd,
            )
            .await?;
        let mut count = 0;
        while let Some(record) = records.next().await {
            let record = record?;
            count += 1;
            match decode_record(&record) {
                Ok(decoded) => self.apply_record(&decoded)?,
                Err(e) => {
                    tracing::error!(sequence = record.sequence, error = %e, "skipping undecodable record");
                    self.inner.lock().expect("resolver lock poisoned").applied = record.sequence;
                }
            }
        }
        Ok(count)
    }

    /// Follows the log in the background so reads (`GetEntity`, `Resolve`) see
    /// decisions taken by other replicas and by humans without waiting for a document.
    pub async fn follow(
        &self,
        token: tokio_util::sync::CancellationToken,
    ) -> Result<(), StateError> {
        self.check()?;
        let from = self.applied_sequence() + 1;
        let mut records = self
            .log
            .read(
                StartAt::Sequence(from),
                Filter::types(FOLDED),
                ReadMode::Follow,
            )
            .await?;
        loop {
            let record = tokio::select! {
                _ = token.cancelled() => return Ok(()),
                record = records.next() => match record {
                    Some(record) => record?,
                    None => return Ok(()),
                },
            };
            // Decide-and-append holds this lock; folding in between would race its own catch-up.
            let _guard = self.write.lock().await;
            match decode_record(&record) {
                Ok(decoded) => self.apply_record(&decoded)?,
                Err(e) => {
                    tracing::error!(sequence = record.sequence, error = %e, "skipping undecodable record")
                }
            }
        }
    }

    /// Last log sequence folded into the state.
    pub fn applied_sequence(&self) -> u64 {
        self.inner.lock().expect("resolver lock poisoned").applied
    }

    /// Folds one record, unless it was already folded (catch-up and follow overlap).
    /// A failure of the state file fails the state (see [`StateError::Failed`]).
    fn apply_record(&self, record: &DecodedRecord) -> Result<(), StateError> {
        self.check()?;
        let mut inner = self.inner.lock().expect("resolver lock poisoned");
        if record.sequence <= inner.applied {
            return Ok(());
        }
        inner.applied = record.sequence;
        if record.aggregate.kind != aggregate::ARTICLE {
            inner
                .versions
                .insert(record.aggregate.clone(), record.sequence);
        }
        for (envelope, event) in record.events() {
            if let Some(decision) = decision_from_event(event) {
                if let Decision::DocumentResolved {
                    document_id,
                    event_ids,
                    ..
                } = &decision
                {
                    inner
                        .documents
                        .record_document(&envelope.causation_id, document_id, event_ids)
                        .map_err(|e| self.fail(e))?;
                }
                inner.resolver.apply(&decision).map_err(|e| self.fail(e))?;
            }
        }
        Ok(())
    }

    /// Runs `f` with the resolver.
    pub fn with<R>(&self, f: impl FnOnce(&Resolver) -> R) -> R {
        f(&self.inner.lock().expect("resolver lock poisoned").resolver)
    }

    /// A summary of the current state.
    pub fn summary(&self) -> Result<StateSummary, StateError> {
        self.check()?;
        let inner = self.inner.lock().expect("resolver lock poisoned");
        let mut hasher = Sha256::new();
        let mut entities = 0;
        for entity in inner.resolver.entities() {
            entities += 1;
            hasher.update(serde_json::to_vec(entity).unwrap_or_default());
        }
        let mut events = 0;
        for event in inner.resolver.events() {
            let event = event.map_err(|e| self.fail(e))?;
            events += 1;
            hasher.update(serde_json::to_vec(&event).unwrap_or_default());
        }
        Ok(StateSummary {
            entities,
            events,
            documents: inner.documents.document_count().map_err(|e| self.fail(e))?,
            digest: hex::encode(hasher.finalize()),
        })
    }

    /// Appends decisions (grouped per aggregate, one message each) then folds
    /// them in by catching up with the log. `key` makes the message ids
    /// deterministic for redeliveries. Entity and talks aggregates are appended
    /// with the version this state last saw, so a replica deciding on a stale
    /// state gets [`LogError::WrongExpectedVersion`] instead of forking them.
    pub async fn commit(
        &self,
        key: &str,
        causation: &str,
        document_id: &str,
        decisions: Vec<Decision>,
    ) -> Result<(), StateError> {
        self.check()?;
        // Group by aggregate, keeping first-appearance order: entities, then events, then the document.
        let mut groups: Vec<(parley_log::AggregateRef, Vec<Decision>)> = Vec::new();
        for decision in decisions {
            let target = aggregate_of(&decision)?;
            match groups.iter_mut().find(|(a, _)| *a == target) {
                Some((_, list)) => list.push(decision),
                None => groups.push((target, vec![decision])),
            }
        }
        let rank = |kind: &str| match kind {
            k if k == aggregate::ENTITY => 0,
            k if k == aggregate::TALKS => 1,
            _ => 2,
        };
        groups.sort_by_key(|(a, _)| rank(&a.kind));
        for (target, group) in &groups {
            let builder = EnvelopeBuilder::new(target.clone())
                .caused_by(causation)
                .correlated_with(causation)
                .from_document(document_id);
            let envelopes = group
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    builder.envelope(format!("{key}:{}:{i}", target), decision_to_event(d))
                })
                .collect();
            let msg_id = format!("{key}:{target}");
            let expected = if target.kind == aggregate::ARTICLE {
                // The article aggregate is shared with ingest; message ids dedupe it.
                ExpectedVersion::Any
            } else {
                let inner = self.inner.lock().expect("resolver lock poisoned");
                match inner.versions.get(target) {
                    Some(sequence) => ExpectedVersion::Exact(*sequence),
                    None => ExpectedVersion::NoStream,
                }
            };
            let appended =
                append_events(&*self.log, target.clone(), expected, msg_id, envelopes).await?;
            if !appended.duplicate {
                metrics::counter!("parley_events_appended_total", "service" => "resolver")
                    .increment(group.len() as u64);
                group
                    .iter()
                    .for_each(crate::decisions::count_talks_decision);
            }
        }
        self.catch_up().await?;
        Ok(())
    }

    /// Appends and applies a human decision (merge, split, alias).
    pub async fn commit_human(&self, decisions: Vec<Decision>) -> Result<(), StateError> {
        let _guard = self.write.lock().await;
        self.catch_up().await?;
        let key = format!("human:{}", uuid_like());
        self.commit(&key, &key, "", decisions).await
    }
}

/// What a re-extraction of `document_id` changes in events it reported before:
/// an event it no longer reports is retracted when it was its only source, or
/// loses this source otherwise; an event only it reports whose fields changed
/// is amended. New events are recorded by `resolve_document` as usual.
fn revise(
    resolver: &Resolver,
    document_id: &str,
    previous: &[String],
    now: &[parley_resolve::ResolvedEvent],
) -> Result<Vec<Decision>, EventStoreError> {
    use parley_domain::model::TalksEvent;
    let current = |id: &str| resolver.get_event(id);
    let only_source =
        |event: &TalksEvent| event.evidence.iter().all(|e| e.document_id == document_id);
    // Fields a reader cares about, without bookkeeping (versions, counts, evidence).
    let content = |event: &TalksEvent| {
        let mut event = event.clone();
        event.event_id.clear();
        event.version = 0;
        event.source_count = 0;
        event.evidence.clear();
        event.reported_on = None;
        event.retracted = false;
        event
    };
    let mut decisions = Vec::new();
    for id in previous {
        let Some(event) = current(id)? else { continue };
        if event.retracted {
            continue;
        }
        match now.iter().find(|r| &r.event_id == id) {
            None if only_source(&event) => decisions.push(Decision::RetractEvent {
                event_id: id.clone(),
                reason: format!("re-extraction of {document_id} no longer reports it"),
                version: event.version + 1,
            }),
            None => {
                let mut amended = event.clone();
                amended.evidence.retain(|e| e.document_id != document_id);
                let sources: HashSet<&str> = amended
                    .evidence
                    .iter()
                    .map(|e| e.document_id.as_str())
                    .collect();
                amended.source_count = sources.len() as u32;
                amended.version += 1;
                decisions.push(Decision::AmendEvent {
                    event: amended,
                    reason: format!("re-extraction of {document_id} no longer reports it"),
                });
            }
            Some(reported)
                if only_source(&event) && content(&reported.event) != content(&event) =>
            {
                let mut amended = reported.event.clone();
                amended.event_id = id.clone();
                amended.version = event.version + 1;
                amended.source_count = event.source_count;
                amended.reported_on = event.reported_on;
                decisions.push(Decision::AmendEvent {
                    event: amended,
                    reason: format!("re-extraction of {document_id} reads it differently"),
                });
            }
            Some(_) => {}
        }
    }
    Ok(decisions)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}

#[async_trait]
impl RecordHandler for ResolverState {
    async fn handle(&self, record: &DecodedRecord) -> Result<Handled, HandlerError> {
        let _guard = self.write.lock().await;
        let mut handled_any = false;
        for (envelope, event) in record.events() {
            let Event::CandidatesExtracted(candidates) = event else {
                continue;
            };
            let mut attempt = 0;
            loop {
                // Another replica may have decided on the same entities or events since.
                self.catch_up().await?;
                match self.resolve_candidates(envelope, candidates, attempt).await {
                    Err(StateError::Log(LogError::WrongExpectedVersion { .. }))
                        if attempt < MAX_CONFLICT_RETRIES =>
                    {
                        attempt += 1;
                        metrics::counter!("parley_resolver_conflicts_total").increment(1);
                        tracing::debug!(attempt, document = %candidates.document_id, "lost a race for an aggregate; retrying on fresh state");
                    }
                    Err(e) => return Err(e.into()),
                    Ok(resolved) => {
                        handled_any |= resolved;
                        break;
                    }
                }
            }
        }
        Ok(if handled_any {
            Handled::Done
        } else {
            Handled::Skipped
        })
    }
}

impl ResolverState {
    /// Resolves one extraction and commits the decisions; `false` if it was already resolved.
    async fn resolve_candidates(
        &self,
        envelope: &parley_domain::pb::EventEnvelope,
        candidates: &parley_domain::pb::CandidatesExtracted,
        attempt: u32,
    ) -> Result<bool, StateError> {
        let already = self
            .inner
            .lock()
            .expect("resolver lock poisoned")
            .documents
            .is_handled(&envelope.event_id)
            .map_err(|e| self.fail(e))?;
        if already {
            return Ok(false);
        }
        let extraction = convert::extraction_from_pb(candidates);
        let meta = DocumentMeta {
            id: candidates.document_id.clone(),
            name: candidates.document_name.clone(),
            reference_date: extraction.reference_date,
        };
        let resolution = self
            .with(|r| r.resolve_document(&meta, &extraction))
            .map_err(|e| self.fail(e))?;
        let previous = self
            .inner
            .lock()
            .expect("resolver lock poisoned")
            .documents
            .document_events(&meta.id)
            .map_err(|e| self.fail(e))?;
        let mut decisions = resolution.decisions;
        if let Some(previous) = previous {
            // A re-extraction of a resolved document: amend and retract what it changed.
            let revisions = self
                .with(|r| revise(r, &meta.id, &previous, &resolution.events))
                .map_err(|e| self.fail(e))?;
            let at = decisions
                .iter()
                .position(|d| matches!(d, Decision::DocumentResolved { .. }))
                .unwrap_or(decisions.len());
            decisions.splice(at..at, revisions);
        }
        if !decisions
            .iter()
            .any(|d| matches!(d, Decision::DocumentResolved { .. }))
        {
            decisions.push(Decision::DocumentResolved {
                document_id: meta.id.clone(),
                document_name: meta.name.clone(),
                persons: resolution.persons,
                event_ids: resolution
                    .events
                    .iter()
                    .map(|e| e.event_id.clone())
                    .collect(),
            });
        }
        // A retry after a lost race decides differently: it needs its own message ids.
        let key = match attempt {
            0 => format!("resolve:{}", envelope.event_id),
            n => format!("resolve:{}:retry{n}", envelope.event_id),
        };
        self.commit(&key, &envelope.event_id, &meta.id, decisions)
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_extract::{Document, Extractor};
    use parley_log::sqlite::SqliteLog;

    const TEXTS: [&str; 4] = [
        "Talks set\n\nRussia and Ukraine will meet in Istanbul on Thursday, officials said.",
        "Talks held\n\nRussian and Ukrainian delegations met in Istanbul on Thursday. Keith Kellog said it went well.",
        "Talks held\n\nUkrainian and Russian negotiators met in Istanbul on Thursday, officials said.",
        "Ceasefire\n\nIsrael and Lebanon agreed a ceasefire in Doha on Friday, mediators said.",
    ];

    /// Appends the extraction of `text` as document `document_id` (a second
    /// call with the same id is a re-extraction); returns the record.
    async fn extracted(log: &SqliteLog, n: usize, document_id: &str, text: &str) -> DecodedRecord {
        let kb = parley_kb::KnowledgeBase::bundled().unwrap();
        let doc = Document::from_text(
            &format!("{document_id}.txt"),
            chrono::NaiveDate::from_ymd_opt(2025, 5, 12),
            text,
        );
        let extraction = Extractor::new(&kb).extract(&doc);
        let aggregate = AggregateRef::new(aggregate::ARTICLE, document_id).unwrap();
        let envelope = EnvelopeBuilder::new(aggregate.clone()).envelope(
            format!("x{n}"),
            Event::CandidatesExtracted(convert::extraction_to_pb(
                document_id,
                &format!("{document_id}.txt"),
                &extraction,
            )),
        );
        let appended = append_events(
            log,
            aggregate,
            ExpectedVersion::Any,
            format!("m{n}"),
            vec![envelope],
        )
        .await
        .unwrap();
        let mut records = log
            .read(
                StartAt::Sequence(appended.sequence),
                Filter::all(),
                ReadMode::ToEnd,
            )
            .await
            .unwrap();
        decode_record(&records.next().await.unwrap().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_state_replayed_into_a_fresh_file_equals_the_live_one() {
        let log_dir = tempfile::tempdir().unwrap();
        let log: Arc<SqliteLog> = Arc::new(SqliteLog::open(log_dir.path()).unwrap());
        let kb = parley_kb::KnowledgeBase::bundled().unwrap();
        let live = ResolverState::new(log.clone(), &kb);
        let mut n = 0;
        for round in 0..3 {
            for (i, text) in TEXTS.iter().enumerate() {
                n += 1;
                let record = extracted(&log, n, &format!("doc-{round}-{i}"), text).await;
                assert_eq!(live.handle(&record).await.unwrap(), Handled::Done);
                // Exactly once: a redelivery decides nothing.
                assert_eq!(live.handle(&record).await.unwrap(), Handled::Skipped);
            }
        }
        // Re-extraction: doc-0-3 no longer reports the ceasefire, which it alone reported first.
        n += 1;
        let record = extracted(&log, n, "doc-0-3", "Nothing happened\n\nIt rained in Doha.").await;
        assert_eq!(live.handle(&record).await.unwrap(), Handled::Done);

        let summary = live.summary().unwrap();
        assert_eq!(summary.documents, 12);
        assert!(summary.events >= 2, "{summary:?}");
        let (talks, ceasefire) = live.with(|r| {
            let events: Vec<_> = r.events().map(Result::unwrap).collect();
            let talks = events
                .iter()
                .filter(|e| e.venue.city.as_deref() == Some("Istanbul"))
                .cloned()
                .collect::<Vec<_>>();
            let ceasefire = events
                .iter()
                .filter(|e| e.venue.city.as_deref() == Some("Doha"))
                .cloned()
                .collect::<Vec<_>>();
            (talks, ceasefire)
        });
        // Two Istanbul events (announced for Thursday the 15th, held on Thursday
        // the 8th), each with one id for all its reports and every source kept.
        assert_eq!(talks.len(), 2, "{talks:#?}");
        let mut counts: Vec<(u32, usize)> = talks
            .iter()
            .map(|e| (e.source_count, e.evidence.len()))
            .collect();
        counts.sort();
        assert_eq!(counts, [(3, 3), (6, 6)]);
        assert_eq!(ceasefire.len(), 1);
        assert_eq!(ceasefire[0].source_count, 2);
        assert!(
            ceasefire[0]
                .evidence
                .iter()
                .all(|e| e.document_id != "doc-0-3"),
            "the re-extracted document's evidence was dropped"
        );

        // Replayed into a state folder (over a damaged leftover file): the same state.
        let state_dir = tempfile::tempdir().unwrap();
        std::fs::write(state_dir.path().join(crate::store::FILE_NAME), b"junk").unwrap();
        let replayed = ResolverState::open(log.clone(), &kb, Some(state_dir.path())).unwrap();
        replayed.replay().await.unwrap();
        assert_eq!(replayed.summary().unwrap(), summary);
        // And it knows every extraction was handled.
        assert_eq!(replayed.handle(&record).await.unwrap(), Handled::Skipped);
    }
}
