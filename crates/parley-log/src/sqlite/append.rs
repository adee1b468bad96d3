//! Appends to the embedded log: checking and encoding a request, then
//! storing a batch of them in one transaction (deduplicated on msg id,
//! checked against the expected version).

use bytes::Bytes;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::meta::store_head;
use super::row::{checksum, encode_headers};
use super::{MAX_PAYLOAD, SqliteLog, now_nanos};
use crate::checks::{check_append, describe_expected};
use crate::{AggregateRef, AppendRequest, Appended, ExpectedVersion, LogError};

impl SqliteLog {
    /// Appends one request (see [`crate::EventLog::append`]).
    pub(super) async fn append_single(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let prepared = self.prepare(request)?;
        self.append_prepared(vec![Ok(prepared)])
            .await
            .pop()
            .expect("one result per request")
    }

    /// Appends requests in one transaction (see [`crate::EventLog::append_many`]).
    pub(super) async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, LogError>> {
        let prepared = requests.into_iter().map(|r| self.prepare(r)).collect();
        self.append_prepared(prepared).await
    }

    /// Checks a request and encodes it for the `events` table.
    fn prepare(&self, request: AppendRequest) -> Result<Prepared, LogError> {
        check_append(&request, MAX_PAYLOAD)?;
        let aggregate = AggregateRef {
            kind: request.aggregate.kind,
            id: request.aggregate.id,
        };
        let mut headers = request.headers;
        // Sorted, like the JetStream backend returns them.
        headers.sort();
        Ok(Prepared {
            aggregate,
            expected: request.expected,
            msg_id: request.msg_id,
            headers: encode_headers(&headers),
            payload: request.payload,
        })
    }

    /// Appends checked requests in one transaction; results in order.
    async fn append_prepared(
        &self,
        requests: Vec<Result<Prepared, LogError>>,
    ) -> Vec<Result<Appended, LogError>> {
        let count = requests.len();
        let outcome = self
            .write(move |writer| {
                let mut next = (writer.last_sequence, writer.last_time);
                let tx = writer
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let results: Vec<Result<Appended, LogError>> = requests
                    .into_iter()
                    .map(|request| request.and_then(|r| append_one(&tx, &mut next, &r)))
                    .collect();
                if next.0 != writer.last_sequence {
                    store_head(&tx, next.0)?;
                }
                tx.commit()?;
                (writer.last_sequence, writer.last_time) = next;
                Ok((results, next.0))
            })
            .await;
        match outcome {
            Ok((results, last)) => {
                self.notify(last);
                results
            }
            // Nothing was committed: every request failed the same way.
            Err(e) => (0..count).map(|_| Err(e.clone())).collect(),
        }
    }
}

/// An append request checked and encoded.
struct Prepared {
    aggregate: AggregateRef,
    expected: ExpectedVersion,
    msg_id: String,
    headers: Vec<u8>,
    payload: Bytes,
}

/// Applies one append inside the caller's transaction. `next` is (last
/// sequence, last time) and advances on success.
fn append_one(
    tx: &rusqlite::Transaction<'_>,
    next: &mut (u64, i64),
    request: &Prepared,
) -> Result<Appended, LogError> {
    // Deduplicate first, whatever the expected version: a retried append
    // that did land must not look like a conflict.
    let existing: Option<i64> = tx
        .prepare_cached("SELECT seq FROM events WHERE msg_id = ?1")?
        .query_row([&request.msg_id], |row| row.get(0))
        .optional()?;
    if let Some(sequence) = existing {
        return Ok(Appended {
            sequence: sequence as u64,
            duplicate: true,
        });
    }
    let version: Option<i64> = tx
        .prepare_cached("SELECT max(seq) FROM events WHERE kind = ?1 AND agg_id = ?2")?
        .query_row(
            params![request.aggregate.kind, request.aggregate.id],
            |row| row.get(0),
        )?;
    let version = version.map(|v| v as u64);
    let matches = match request.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => version.is_none(),
        // Like JetStream, an expected sequence of 0 means "no record yet".
        ExpectedVersion::Exact(expected) => version.unwrap_or(0) == expected,
    };
    if !matches {
        return Err(LogError::WrongExpectedVersion {
            aggregate: request.aggregate.to_string(),
            expected: describe_expected(request.expected),
            actual: version,
        });
    }
    let sequence = next.0 + 1;
    let time = now_nanos().max(next.1);
    let checksum = checksum(
        sequence,
        request.aggregate.kind.as_bytes(),
        request.aggregate.id.as_bytes(),
        request.msg_id.as_bytes(),
        &request.headers,
        &request.payload,
        time,
    );
    tx.prepare_cached(
        "INSERT INTO events (seq, kind, agg_id, msg_id, headers, payload, recorded_at, checksum) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        sequence as i64,
        request.aggregate.kind,
        request.aggregate.id,
        request.msg_id,
        request.headers,
        &request.payload[..],
        time,
        i64::from(checksum)
    ])?;
    *next = (sequence, time);
    Ok(Appended {
        sequence,
        duplicate: false,
    })
}
