//! The ingest command: read, extract, append.

use std::sync::Arc;

use bytes::Bytes;
use parley_domain::pb::{
    ArticleIngested, BlobRef as PbBlobRef, Content, DocumentError as PbDocumentError,
    DocumentReceipt, SubmitArticleResponse, content::Location,
};
use parley_domain::{Event, aggregate, convert, ids, time};
use parley_extract::{Document, Extractor, Limits, read_documents};
use parley_kb::KnowledgeBase;
use parley_log::{AggregateRef, EventLog, ExpectedVersion, LogError};
use parley_runtime::{EnvelopeBuilder, append_events, decode_record};

/// Bodies larger than this go to the object store instead of the log message.
const INLINE_LIMIT: usize = 256 * 1024;
/// Attempts at appending one document when other writers race us.
const MAX_ATTEMPTS: usize = 5;

/// Why a document could not be ingested (reading errors are reported per document instead).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The log refused or failed.
    #[error("document {name}: log append failed: {source}")]
    Log {
        /// Document name.
        name: String,
        /// Cause.
        source: LogError,
    },
}

/// Reads documents and appends them with their candidate events.
pub struct Ingest {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) extractor: Extractor,
    pub(crate) limits: Limits,
}

impl Ingest {
    /// An ingester appending to `log`, extracting with the knowledge base `kb`.
    pub fn new(log: Arc<dyn EventLog>, kb: &KnowledgeBase, limits: Limits) -> Self {
        Self {
            log,
            extractor: Extractor::new(kb),
            limits,
        }
    }

    /// Ingests one input (a text, a page, or a feed). Documents that cannot be
    /// read are listed in `errors`; the others are still ingested.
    pub async fn submit(
        &self,
        name: &str,
        content: &[u8],
        media_type: Option<&str>,
        source_url: Option<&str>,
    ) -> SubmitArticleResponse {
        let name = if name.trim().is_empty() {
            format!("sha256-{}", &ids::sha256_hex(content)[..16])
        } else {
            name.to_owned()
        };
        let documents = read_documents(&name, content, media_type, &self.limits);
        let single = documents.len() == 1;
        let mut response = SubmitArticleResponse::default();
        for document in documents {
            match document {
                Ok(mut document) => {
                    if document.source_url.is_none() {
                        document.source_url = source_url.map(str::to_owned);
                    }
                    // The raw input is kept for a page or text; a feed item keeps its own text.
                    let raw = single.then_some(content);
                    match self.ingest_document(document, raw).await {
                        Ok(receipt) => {
                            if !receipt.duplicate {
                                metrics::counter!("parley_documents_ingested_total").increment(1);
                            }
                            response.documents.push(receipt)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "document not ingested");
                            response.errors.push(PbDocumentError {
                                name: name.clone(),
                                message: e.to_string(),
                            })
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(document = %e.name, reason = %e.reason, "document rejected");
                    metrics::counter!("parley_documents_rejected_total").increment(1);
                    response.errors.push(PbDocumentError {
                        name: e.name,
                        message: e.reason,
                    });
                }
            }
        }
        response
    }

    /// Appends one read document with its candidates, unless the same content is already there.
    pub async fn ingest_document(
        &self,
        document: Document,
        raw: Option<&[u8]>,
    ) -> Result<DocumentReceipt, IngestError> {
        let log_error = |source| IngestError::Log {
            name: document.name.clone(),
            source,
        };
        let document_id = document.id();
        let text_digest = ids::sha256_hex(document.text.as_bytes());
        let aggregate = AggregateRef::new(aggregate::ARTICLE, ids::subject_token(&document_id))
            .map_err(log_error)?;
        let extraction = self.extractor.extract(&document);
        let candidates = extraction.events.len() as u32;

        for _ in 0..MAX_ATTEMPTS {
            // Is this document (with this content) already in the log?
            let version = self
                .log
                .aggregate_version(&aggregate)
                .await
                .map_err(log_error)?;
            if let Some(version) = version {
                if let Some(sequence) = self
                    .ingested_with_digest(&aggregate, &text_digest)
                    .await
                    .map_err(log_error)?
                {
                    metrics::counter!("parley_documents_duplicate_total").increment(1);
                    return Ok(receipt(&document, &document_id, true, candidates, sequence));
                }
                let _ = version;
            }
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            let raw_content = match raw {
                Some(bytes) => Some(self.content(bytes).await.map_err(log_error)?),
                None => None,
            };
            let text_content = self
                .content(document.text.as_bytes())
                .await
                .map_err(log_error)?;
            let builder = EnvelopeBuilder::new(aggregate.clone())
                .from_document(document_id.clone())
                .correlated_with(format!("ingest:{document_id}:{}", &text_digest[..16]));
            let builder = match document.published {
                Some(published) => builder.occurred_at(published),
                None => builder,
            };
            let ingested_id = format!("{document_id}:{}:ingested", &text_digest[..16]);
            let ingested = builder.envelope(
                ingested_id.clone(),
                Event::ArticleIngested(ArticleIngested {
                    document_id: document_id.clone(),
                    name: document.name.clone(),
                    source_url: document.source_url.clone().unwrap_or_default(),
                    media_type: document.media_type.clone(),
                    published_at: document.published.map(time::to_timestamp),
                    title: document.title.clone().unwrap_or_default(),
                    raw: raw_content,
                    text: Some(text_content),
                    feed: document.feed.clone().unwrap_or_default(),
                    warnings: document.warnings.clone(),
                }),
            );
            let extracted = builder.clone().caused_by(ingested_id).envelope(
                format!("{document_id}:{}:extracted", &text_digest[..16]),
                Event::CandidatesExtracted(convert::extraction_to_pb(
                    &document_id,
                    &document.name,
                    &extraction,
                )),
            );
            let msg_id = format!("ingest:{document_id}:{}", &text_digest[..16]);
            match append_events(
                &*self.log,
                aggregate.clone(),
                expected,
                msg_id,
                vec![ingested, extracted],
            )
            .await
            {
                Ok(appended) => {
                    if !appended.duplicate {
                        metrics::counter!("parley_events_appended_total", "service" => "ingest")
                            .increment(2);
                    }
                    return Ok(receipt(
                        &document,
                        &document_id,
                        appended.duplicate,
                        candidates,
                        appended.sequence,
                    ));
                }
                // Another writer got there first: look again.
                Err(LogError::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(log_error(e)),
            }
        }
        Err(log_error(LogError::Backend(format!(
            "gave up after {MAX_ATTEMPTS} conflicting appends"
        ))))
    }

    /// Sequence of the record that ingested this exact text, if any.
    async fn ingested_with_digest(
        &self,
        aggregate: &AggregateRef,
        digest: &str,
    ) -> Result<Option<u64>, LogError> {
        for record in self.log.read_aggregate(aggregate).await?.iter().rev() {
            let Ok(decoded) = decode_record(record) else {
                continue;
            };
            for (_, event) in decoded.events() {
                if let Event::ArticleIngested(article) = event
                    && article.text.as_ref().is_some_and(|t| t.sha256 == digest)
                {
                    return Ok(Some(record.sequence));
                }
            }
        }
        Ok(None)
    }

    /// Inline content, or a blob reference for large bodies.
    async fn content(&self, bytes: &[u8]) -> Result<Content, LogError> {
        let sha256 = ids::sha256_hex(bytes);
        let limit = INLINE_LIMIT.min(self.log.max_payload() / 3);
        let location = if bytes.len() <= limit {
            Location::Inline(bytes.to_vec())
        } else {
            let blob = self.log.put_blob(Bytes::copy_from_slice(bytes)).await?;
            Location::Blob(PbBlobRef {
                bucket: blob.bucket,
                key: blob.key,
            })
        };
        Ok(Content {
            location: Some(location),
            sha256,
            size: bytes.len() as u64,
        })
    }
}

fn receipt(
    document: &Document,
    document_id: &str,
    duplicate: bool,
    candidates: u32,
    sequence: u64,
) -> DocumentReceipt {
    DocumentReceipt {
        document_id: document_id.to_owned(),
        name: document.name.clone(),
        duplicate,
        candidate_events: candidates,
        sequence,
        warnings: document.warnings.clone(),
        // Known once the resolver has answered (see `receipts`).
        event_ids: Vec::new(),
        resolved: false,
    }
}
