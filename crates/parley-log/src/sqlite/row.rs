//! One row of the `events` table: its columns, and the encoding of the
//! application headers it stores.

use bytes::Bytes;
use chrono::DateTime;
use rusqlite::Row;

use crate::{AggregateRef, LogError, LogRecord};

/// The columns of `events` a record is read from, in [`raw_record`]'s order.
pub(super) const RECORD_COLUMNS: &str = "seq, kind, agg_id, msg_id, headers, payload, recorded_at";

/// A row of `events` before its headers are decoded.
pub(super) struct RawRecord {
    sequence: i64,
    kind: String,
    id: String,
    msg_id: String,
    headers: Vec<u8>,
    payload: Vec<u8>,
    recorded_at: i64,
}

pub(super) fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        sequence: row.get(0)?,
        kind: row.get(1)?,
        id: row.get(2)?,
        msg_id: row.get(3)?,
        headers: row.get(4)?,
        payload: row.get(5)?,
        recorded_at: row.get(6)?,
    })
}

impl RawRecord {
    pub(super) fn into_record(self) -> Result<LogRecord, LogError> {
        Ok(LogRecord {
            sequence: self.sequence as u64,
            // Checked when appended.
            aggregate: AggregateRef {
                kind: self.kind,
                id: self.id,
            },
            msg_id: Some(self.msg_id),
            headers: decode_headers(&self.headers)?,
            payload: Bytes::from(self.payload),
            recorded_at: DateTime::from_timestamp_nanos(self.recorded_at),
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

pub(super) fn decode_headers(mut bytes: &[u8]) -> Result<Vec<(String, String)>, LogError> {
    fn take(bytes: &mut &[u8]) -> Result<String, LogError> {
        let corrupt = || LogError::Backend("corrupt headers in the log".into());
        let (length, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(corrupt());
        }
        let (text, rest) = rest.split_at(length);
        *bytes = rest;
        String::from_utf8(text.to_vec()).map_err(|_| corrupt())
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
}
