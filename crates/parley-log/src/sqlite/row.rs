//! One row of the `events` table: its columns, its checksum, and the
//! encoding of the application headers it stores.
//!
//! A row is read column by column as raw bytes, and every check names the
//! row's sequence: a damaged page gives "record 145: checksum mismatch" or
//! "record 145: aggregate type is not UTF-8", never a bare SQLite message.

use bytes::Bytes;
use chrono::DateTime;
use rusqlite::Row;
use rusqlite::types::ValueRef;

use crate::{AggregateRef, LogError, LogRecord};

/// The columns of `events` a record is read from, in [`raw_record`]'s order.
pub(super) const RECORD_COLUMNS: &str =
    "seq, kind, agg_id, msg_id, headers, payload, recorded_at, checksum";

/// The checksum of a record: CRC-32 over its sequence, every stored field
/// (each preceded by its length) and its time, so a changed byte, a field
/// moved into another, or a row copied to another sequence all show.
pub(super) fn checksum(
    sequence: u64,
    kind: &[u8],
    id: &[u8],
    msg_id: &[u8],
    headers: &[u8],
    payload: &[u8],
    recorded_at: i64,
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    for field in [kind, id, msg_id, headers, payload] {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field);
    }
    hasher.update(&recorded_at.to_le_bytes());
    hasher.finalize()
}

/// A row of `events` as stored, before any check. `headers` and `payload`
/// are `None` when the query left them out (a record another filter wants).
pub(super) struct RawRecord {
    pub(super) sequence: u64,
    kind: Result<Vec<u8>, String>,
    id: Result<Vec<u8>, String>,
    msg_id: Result<Vec<u8>, String>,
    headers: Option<Result<Vec<u8>, String>>,
    payload: Option<Result<Vec<u8>, String>>,
    recorded_at: Result<i64, String>,
    checksum: Result<Option<i64>, String>,
}

/// Reads the columns of [`RECORD_COLUMNS`]; only the sequence must be
/// readable here, everything else is checked by [`RawRecord::check`].
pub(super) fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    let bytes = |index: usize| -> Result<Vec<u8>, String> {
        match row.get_ref(index).map_err(|e| e.to_string())? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Ok(bytes.to_vec()),
            other => Err(format!("holds {:?} instead of text", other.data_type())),
        }
    };
    let optional = |index: usize| -> Option<Result<Vec<u8>, String>> {
        match row.get_ref(index) {
            Ok(ValueRef::Null) => None,
            _ => Some(bytes(index)),
        }
    };
    let integer = |index: usize| -> Result<Option<i64>, String> {
        match row.get_ref(index).map_err(|e| e.to_string())? {
            ValueRef::Integer(value) => Ok(Some(value)),
            ValueRef::Null => Ok(None),
            other => Err(format!(
                "holds {:?} instead of an integer",
                other.data_type()
            )),
        }
    };
    let sequence: i64 = row.get(0)?;
    Ok(RawRecord {
        sequence: sequence.max(0) as u64,
        kind: bytes(1),
        id: bytes(2),
        msg_id: bytes(3),
        headers: optional(4),
        payload: optional(5),
        recorded_at: integer(6).and_then(|t| t.ok_or_else(|| "time is missing".to_string())),
        checksum: integer(7),
    })
}

impl RawRecord {
    /// The aggregate type as stored, if it reads as text.
    pub(super) fn kind(&self) -> Option<&str> {
        self.kind
            .as_ref()
            .ok()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// `kind/id` as stored, where both read as text (to name a bad record).
    pub(super) fn describe(&self) -> Option<String> {
        let id = self
            .id
            .as_ref()
            .ok()
            .and_then(|i| std::str::from_utf8(i).ok())?;
        Some(format!("{}/{id}", self.kind()?))
    }

    /// Checks the row (its checksum from `checksums_from` on, where every
    /// row has one) and decodes it. Errors are [`LogError::Corrupt`] naming
    /// the sequence; the caller adds the file.
    pub(super) fn check(self, checksums_from: u64) -> Result<LogRecord, LogError> {
        let sequence = self.sequence;
        let corrupt = |reason: String| LogError::Corrupt {
            file: String::new(),
            sequence: Some(sequence),
            reason,
        };
        let field = |name: &str, value: Result<Vec<u8>, String>| {
            value.map_err(|e| corrupt(format!("{name} {e}")))
        };
        let kind = field("aggregate type", self.kind)?;
        let id = field("aggregate id", self.id)?;
        let msg_id = field("msg id", self.msg_id)?;
        let headers = field(
            "headers",
            self.headers.unwrap_or_else(|| Err("are missing".into())),
        )?;
        let payload = field(
            "payload",
            self.payload.unwrap_or_else(|| Err("is missing".into())),
        )?;
        let recorded_at = self.recorded_at.map_err(|e| corrupt(format!("time {e}")))?;
        match self
            .checksum
            .map_err(|e| corrupt(format!("checksum {e}")))?
        {
            Some(stored) => {
                let computed = checksum(
                    sequence,
                    &kind,
                    &id,
                    &msg_id,
                    &headers,
                    &payload,
                    recorded_at,
                );
                if stored != i64::from(computed) {
                    return Err(corrupt(
                        "checksum mismatch: the record changed after it was written".into(),
                    ));
                }
            }
            None if sequence >= checksums_from => {
                return Err(corrupt("has no checksum".into()));
            }
            // Written before checksums (schema 1): the other checks apply.
            None => {}
        }
        let text = |name: &str, bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|e| corrupt(format!("{name} is not UTF-8 ({e})")))
        };
        let headers = decode_headers(&headers).map_err(|e| corrupt(e.to_string()))?;
        Ok(LogRecord {
            sequence,
            // Checked when appended.
            aggregate: AggregateRef {
                kind: text("aggregate type", kind)?,
                id: text("aggregate id", id)?,
            },
            msg_id: Some(text("msg id", msg_id)?),
            headers,
            payload: Bytes::from(payload),
            recorded_at: DateTime::from_timestamp_nanos(recorded_at),
        })
    }
}

/// Headers as (u32 length, bytes) pairs: no escaping, any text fits.
pub(super) fn encode_headers(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        for text in [name, value] {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// Why stored headers do not decode.
#[derive(Debug, thiserror::Error)]
#[error("headers do not decode: {0}")]
pub(super) struct HeaderError(&'static str);

pub(super) fn decode_headers(mut bytes: &[u8]) -> Result<Vec<(String, String)>, HeaderError> {
    fn take(bytes: &mut &[u8]) -> Result<String, HeaderError> {
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(HeaderError("a length is cut short"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(HeaderError("a text is longer than the field"));
        }
        let (text, rest) = rest.split_at(length);
        *bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| HeaderError("a text is not UTF-8"))
    }
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let headers = vec![
            ("a".to_string(), "tab\tand\nnewline".to_string()),
            ("b".to_string(), String::new()),
        ];
        assert_eq!(decode_headers(&encode_headers(&headers)).unwrap(), headers);
        assert!(decode_headers(&[1, 0, 0]).is_err());
        assert!(decode_headers(&[9, 0, 0, 0, b'x']).is_err());
    }

    #[test]
    fn the_checksum_covers_every_field_and_the_sequence() {
        let base = checksum(7, b"talks", b"t1", b"m", b"h", b"payload", 42);
        assert_ne!(
            base,
            checksum(8, b"talks", b"t1", b"m", b"h", b"payload", 42)
        );
        assert_ne!(
            base,
            checksum(7, b"talks", b"t1", b"m", b"h", b"paylaod", 42)
        );
        assert_ne!(
            base,
            checksum(7, b"talks", b"t", b"1m", b"h", b"payload", 42)
        );
        assert_ne!(
            base,
            checksum(7, b"talks", b"t1", b"m", b"h", b"payload", 43)
        );
    }
}
