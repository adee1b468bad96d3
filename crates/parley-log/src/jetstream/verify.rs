//! The JetStream counterpart of the embedded log's verification: the
//! stream's sequences must run without a gap from 1 to its last one. The
//! server's file store checks each message's own hash when it loads a block
//! and drops what fails, so damage there shows as missing sequences: in the
//! stream state, `first_seq` above 1 (messages removed from the start) or
//! fewer messages than `last_seq - first_seq + 1` (deleted ones, which the
//! server lists on request). Parley's stream has no limits that remove
//! messages, so any gap is a loss, and connecting refuses it unless the
//! operator acknowledged that many ([`super::JetStreamConfig::accept_missing`]).

use serde_json::{Value, json};

use super::JetStreamLog;
use crate::LogError;

/// Most deleted sequences listed in a report.
const LISTED: usize = 50;

/// What the server's stream state says about missing records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    /// The stream.
    pub stream: String,
    /// First sequence still stored (`last + 1` when empty).
    pub first: u64,
    /// Last sequence ever stored.
    pub last: u64,
    /// Messages stored.
    pub messages: u64,
    /// Sequences the server reports deleted between `first` and `last`
    /// (at most the first 50).
    pub deleted: Vec<u64>,
}

impl StreamCheck {
    /// Records missing: those before `first`, and the deleted ones.
    pub fn missing(&self) -> u64 {
        self.last.saturating_sub(self.messages)
    }

    /// The first missing sequence, if any.
    pub fn first_missing(&self) -> Option<u64> {
        if self.missing() == 0 {
            None
        } else if self.first > 1 {
            Some(1)
        } else {
            self.deleted.first().copied().or(Some(self.first))
        }
    }
}

impl std::fmt::Display for StreamCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(first_missing) = self.first_missing() else {
            return write!(
                f,
                "stream {}: ok, {} records up to {}",
                self.stream, self.messages, self.last
            );
        };
        write!(
            f,
            "stream {}: {} of {} records are missing, the first is {first_missing} (server \
             state: first {}, last {}, messages {})",
            self.stream,
            self.missing(),
            self.last,
            self.first,
            self.last,
            self.messages
        )?;
        if self.first > 1 {
            write!(f, "; 1 to {} removed from the start", self.first - 1)?;
        }
        if !self.deleted.is_empty() {
            let listed: Vec<String> = self.deleted.iter().map(u64::to_string).collect();
            write!(f, "; deleted: {}", listed.join(", "))?;
            let total_deleted = self.missing() - (self.first.max(1) - 1);
            if total_deleted > self.deleted.len() as u64 {
                write!(f, ", ...")?;
            }
        }
        Ok(())
    }
}

impl JetStreamLog {
    /// Asks the server for the stream's state, with its deleted sequences.
    pub async fn check_stream(&self) -> Result<StreamCheck, LogError> {
        let name = &self.inner.config.stream_name;
        let response: Value = self
            .inner
            .context
            .request(
                format!("STREAM.INFO.{name}"),
                &json!({ "deleted_details": true }),
            )
            .await
            .map_err(|e| {
                LogError::Unavailable(format!("reading the state of stream {name}: {e}"))
            })?;
        if let Some(error) = response.get("error") {
            return Err(LogError::Backend(format!(
                "reading the state of stream {name}: {error}"
            )));
        }
        let state = &response["state"];
        let number = |key: &str| state[key].as_u64().unwrap_or(0);
        let mut deleted: Vec<u64> = state["deleted"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        deleted.sort_unstable();
        deleted.truncate(LISTED);
        Ok(StreamCheck {
            stream: name.clone(),
            first: number("first_seq"),
            last: number("last_seq"),
            messages: number("messages"),
            deleted,
        })
    }

    /// Refuses a stream missing more records than the config accepts.
    pub(super) async fn refuse_unaccepted_gaps(&self) -> Result<(), LogError> {
        let check = self.check_stream().await?;
        let missing = check.missing();
        if missing == 0 {
            return Ok(());
        }
        let accepted = self.inner.config.accept_missing;
        if missing <= accepted {
            tracing::warn!(%check, accepted, "starting on a stream with acknowledged missing records");
            return Ok(());
        }
        Err(LogError::Corrupt {
            file: format!("stream {} at {}", check.stream, self.inner.config.url),
            sequence: check.first_missing(),
            reason: format!(
                "{check}. Records the log lost cannot be replayed; to start anyway, acknowledge \
                 the loss with PARLEY_ACCEPT_MISSING_RECORDS={missing} (--accept-missing-records)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_records_are_counted_and_named() {
        let check = StreamCheck {
            stream: "PARLEY".into(),
            first: 1,
            last: 10,
            messages: 8,
            deleted: vec![4, 7],
        };
        assert_eq!(check.missing(), 2);
        assert_eq!(check.first_missing(), Some(4));
        assert!(check.to_string().contains("deleted: 4, 7"), "{check}");
        let purged = StreamCheck {
            first: 6,
            messages: 5,
            deleted: vec![],
            ..check.clone()
        };
        assert_eq!(purged.first_missing(), Some(1));
        assert!(purged.to_string().contains("1 to 5 removed"), "{purged}");
        let whole = StreamCheck {
            messages: 10,
            deleted: vec![],
            ..check
        };
        assert_eq!(whole.first_missing(), None);
    }
}
