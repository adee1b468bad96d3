//! Re-extraction: run the current extractor over the articles stored in the
//! log and append only what changed.
//!
//! The log keeps every article's raw body and normalised text, so a better
//! extractor can re-derive history. For each stored article the current
//! extractor's output is compared with the article's latest
//! `CandidatesExtracted`; only a difference is appended, as a new
//! `CandidatesExtracted` on the article's aggregate. The resolver turns that
//! into new events, amendments and retractions, and subscribers see those as
//! updates. Running it twice appends nothing the second time: identical output
//! is skipped, and the message id is derived from the new content.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use parley_domain::pb::{
    ArticleIngested, CandidatesExtracted, Content, DocumentError as PbDocumentError,
    ReprocessResponse, content::Location,
};
use parley_domain::{Event, aggregate, convert, ids, time};
use parley_extract::{Document, read_documents};
use parley_log::{AggregateRef, BlobRef, ExpectedVersion, Filter, LogError, ReadMode, StartAt};
use parley_runtime::{EnvelopeBuilder, append_events, decode_record};
use prost::Message;

use crate::Ingest;

/// What the log holds about one article, as re-extraction needs it.
struct StoredArticle {
    ingested: ArticleIngested,
    /// Envelope id of the `ArticleIngested`, the cause of a re-extraction.
    ingested_event_id: String,
    /// The latest extraction appended for it.
    latest: Option<CandidatesExtracted>,
    /// Sequence of the aggregate's last record, for the expected-version append.
    last_sequence: u64,
}

/// Outcome of re-extracting one article.
enum Outcome {
    Unchanged,
    Changed,
}

impl Ingest {
    /// Re-extracts every stored article ingested at or after `since` (all when `None`).
    pub async fn reprocess(
        &self,
        since: Option<DateTime<Utc>>,
        dry_run: bool,
    ) -> Result<ReprocessResponse, LogError> {
        let start = since.map_or(StartAt::Beginning, StartAt::Time);
        let mut records = self
            .log
            .read(start, Filter::types([aggregate::ARTICLE]), ReadMode::ToEnd)
            .await?;
        // Articles in the order they were first ingested, each once.
        let mut seen = HashSet::new();
        let mut articles = Vec::new();
        while let Some(record) = records.next().await {
            let record = record?;
            if seen.insert(record.aggregate.clone()) {
                articles.push(record.aggregate);
            }
        }
        drop(records);

        let mut response = ReprocessResponse::default();
        for article in articles {
            let stored = match self.stored_article(&article).await? {
                Some(stored) => stored,
                None => continue,
            };
            response.examined += 1;
            let name = stored.ingested.name.clone();
            match self.reextract(&article, stored, dry_run).await {
                Ok((Outcome::Changed, document_id)) => {
                    response.changed += 1;
                    response.changed_document_ids.push(document_id);
                }
                Ok((Outcome::Unchanged, _)) => response.unchanged += 1,
                Err(message) => {
                    tracing::warn!(document = %name, %message, "article not re-extracted");
                    response.errors.push(PbDocumentError { name, message });
                }
            }
        }
        metrics::counter!("parley_reprocessed_changed_total").increment(response.changed);
        Ok(response)
    }

    /// The latest `ArticleIngested` and `CandidatesExtracted` of an article aggregate.
    async fn stored_article(
        &self,
        article: &AggregateRef,
    ) -> Result<Option<StoredArticle>, LogError> {
        let records = self.log.read_aggregate(article).await?;
        let mut found: Option<(ArticleIngested, String)> = None;
        let mut latest = None;
        let mut last_sequence = 0;
        for record in &records {
            last_sequence = last_sequence.max(record.sequence);
            let Ok(decoded) = decode_record(record) else {
                continue;
            };
            for (envelope, event) in decoded.events() {
                match event {
                    Event::ArticleIngested(a) => {
                        found = Some((a.clone(), envelope.event_id.clone()))
                    }
                    Event::CandidatesExtracted(c) => latest = Some(c.clone()),
                    _ => {}
                }
            }
        }
        Ok(found.map(|(ingested, ingested_event_id)| StoredArticle {
            ingested,
            ingested_event_id,
            latest,
            last_sequence,
        }))
    }

    async fn content_bytes(&self, content: &Content) -> Result<Vec<u8>, String> {
        match &content.location {
            Some(Location::Inline(bytes)) => Ok(bytes.clone()),
            Some(Location::Blob(blob)) => self
                .log
                .get_blob(&BlobRef {
                    bucket: blob.bucket.clone(),
                    key: blob.key.clone(),
                    size: content.size,
                })
                .await
                .map(|b| b.to_vec())
                .map_err(|e| format!("stored body unreadable: {e}")),
            None => Err("no stored body".into()),
        }
    }

    /// Rebuilds the document as the current readers see it: from the raw body
    /// when the log has it (a page or a text), else from the stored text.
    async fn stored_document(&self, stored: &StoredArticle) -> Result<Document, String> {
        let a = &stored.ingested;
        if let Some(raw) = &a.raw {
            let raw = self.content_bytes(raw).await?;
            let media_type = (!a.media_type.is_empty()).then_some(a.media_type.as_str());
            let mut documents = read_documents(&a.name, &raw, media_type, &self.limits);
            if documents.len() == 1 {
                let mut document = documents
                    .pop()
                    .expect("one document")
                    .map_err(|e| e.to_string())?;
                if document.source_url.is_none() && !a.source_url.is_empty() {
                    document.source_url = Some(a.source_url.clone());
                }
                return Ok(document);
            }
        }
        let text = a.text.as_ref().ok_or("no stored text")?;
        let text = String::from_utf8(self.content_bytes(text).await?)
            .map_err(|_| "stored text is not UTF-8".to_owned())?;
        let published = a.published_at.as_ref().and_then(time::from_timestamp);
        let previous_reference = stored
            .latest
            .as_ref()
            .and_then(|c| convert::extraction_from_pb(c).reference_date);
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok(Document {
            name: a.name.clone(),
            title: non_empty(&a.title),
            published,
            reference_date: published.map(|p| p.date_naive()).or(previous_reference),
            text,
            media_type: a.media_type.clone(),
            source_url: non_empty(&a.source_url),
            feed: non_empty(&a.feed),
            warnings: a.warnings.clone(),
        })
    }

    async fn reextract(
        &self,
        article: &AggregateRef,
        stored: StoredArticle,
        dry_run: bool,
    ) -> Result<(Outcome, String), String> {
        let document_id = stored.ingested.document_id.clone();
        let document = self.stored_document(&stored).await?;
        let extraction = self.extractor.extract(&document);
        let fresh = convert::extraction_to_pb(&document_id, &stored.ingested.name, &extraction);
        let same = stored.latest.as_ref().is_some_and(|latest| {
            let mut latest = latest.clone();
            let mut fresh = fresh.clone();
            // A new extractor version that reads the same is not a change.
            latest.extractor_version.clear();
            fresh.extractor_version.clear();
            latest == fresh
        });
        if same {
            return Ok((Outcome::Unchanged, document_id));
        }
        if dry_run {
            return Ok((Outcome::Changed, document_id));
        }
        let digest = &ids::sha256_hex(&fresh.encode_to_vec())[..16];
        let builder = EnvelopeBuilder::new(article.clone())
            .from_document(document_id.clone())
            .caused_by(stored.ingested_event_id.clone())
            .correlated_with(format!("reprocess:{document_id}:{digest}"));
        let envelope = builder.envelope(
            format!("{document_id}:{digest}:reextracted"),
            Event::CandidatesExtracted(fresh),
        );
        append_events(
            &*self.log,
            article.clone(),
            ExpectedVersion::Exact(stored.last_sequence),
            format!("reextract:{document_id}:{digest}"),
            vec![envelope],
        )
        .await
        .map_err(|e| format!("append failed: {e}"))?;
        Ok((Outcome::Changed, document_id))
    }
}
