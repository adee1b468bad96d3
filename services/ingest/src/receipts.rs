//! Receipts that name the events a document led to.
//!
//! Ingest appends a document and its candidate events; the resolver decides,
//! a moment later and in its own process, which real-world events they are,
//! and appends `DocumentResolved` (with the event ids) to the document's
//! aggregate. A caller that asks for it (`wait_for_events`) gets its receipt
//! only once that record is there, or after a bounded wait with
//! `resolved = false`: "what came from my article?" is then answered by the
//! receipt itself, and `document = <document id>` follows those events.

use std::time::Duration;

use parley_domain::pb::SubmitArticleResponse;
use parley_domain::{Event, aggregate, ids};
use parley_log::{AggregateRef, LogError};
use parley_runtime::decode_record;
use tokio::time::Instant;

use crate::Ingest;

/// The longest a submission waits for the resolver.
pub const WAIT_FOR_EVENTS: Duration = Duration::from_secs(15);
/// Time between two looks at a document's aggregate.
const POLL: Duration = Duration::from_millis(50);

impl Ingest {
    /// Fills `event_ids` and `resolved` of every receipt of `response` whose
    /// document the resolver resolves within `within` (all receipts share the
    /// one deadline). A receipt whose document is not resolved by then keeps
    /// `resolved = false`.
    pub async fn wait_for_events(
        &self,
        response: &mut SubmitArticleResponse,
        within: Duration,
    ) -> Result<(), LogError> {
        let deadline = Instant::now() + within;
        for receipt in &mut response.documents {
            let aggregate =
                AggregateRef::new(aggregate::ARTICLE, ids::subject_token(&receipt.document_id))?;
            loop {
                if let Some(event_ids) = self.resolution(&aggregate, receipt.sequence).await? {
                    receipt.event_ids = event_ids;
                    receipt.resolved = true;
                    break;
                }
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// The event ids of the newest `DocumentResolved` after `ingested_at`
    /// (the sequence of the document's `ArticleIngested`), if there is one.
    async fn resolution(
        &self,
        aggregate: &AggregateRef,
        ingested_at: u64,
    ) -> Result<Option<Vec<String>>, LogError> {
        for record in self.log.read_aggregate(aggregate).await?.iter().rev() {
            if record.sequence <= ingested_at {
                break;
            }
            let Ok(decoded) = decode_record(record) else {
                continue;
            };
            for (_, event) in decoded.events() {
                if let Event::DocumentResolved(resolved) = event {
                    return Ok(Some(resolved.event_ids.clone()));
                }
            }
        }
        Ok(None)
    }
}
