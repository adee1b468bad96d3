use thiserror::Error;

/// Everything that can go wrong with the log.
///
/// Each variant falls in one [`ErrorClass`] ([`LogError::class`]), which is
/// what a caller acts on: retry later, give up on this request, or stop and
/// repair the log. Messages never repeat a prefix: a variant's text is the
/// cause, with the file or sequence concerned where the backend knows it.
#[derive(Debug, Clone, Error)]
pub enum LogError {
    /// Another writer appended to the aggregate first; reload and retry.
    #[error("wrong expected version for {aggregate}: expected {expected}, log has {actual:?}")]
    WrongExpectedVersion {
        /// The aggregate (`type/id`).
        aggregate: String,
        /// What the writer expected (as text).
        expected: String,
        /// What the log holds, if known.
        actual: Option<u64>,
    },
    /// An aggregate type or id that cannot be a subject token.
    #[error("invalid aggregate: {0}")]
    InvalidAggregate(String),
    /// A request the log refuses whatever its state: an empty msg id, a
    /// reserved header, an invalid durable name, a time out of range.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The payload is over the backend's limit.
    #[error("payload of {size} bytes exceeds the log's limit of {limit} bytes")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The server is older than Parley supports.
    #[error("unsupported server: {0}")]
    UnsupportedServer(String),
    /// Connecting to or talking with the backend failed (a timeout, a lock
    /// held by another connection, a server restarting); retry later.
    #[error("log backend unavailable: {0}")]
    Unavailable(String),
    /// The storage under the log refused a write or a read (disk full, I/O
    /// error, read-only file): it will keep failing until someone acts on
    /// the file named.
    #[error("{file}: {reason}")]
    Storage {
        /// The file (or stream) concerned.
        file: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// The log's storage is damaged: records cannot be read back as they
    /// were written (a checksum mismatch, a gap in the sequences, a record
    /// that does not decode). Start-up refuses such a log; `parley log
    /// verify` and `parley log salvage` report and repair it.
    #[error("{file}: {}{reason}", sequence.map(|s| format!("record {s}: ")).unwrap_or_default())]
    Corrupt {
        /// The file (or stream) concerned.
        file: String,
        /// The first sequence concerned, where known.
        sequence: Option<u64>,
        /// What is wrong, with what is lost and what to do.
        reason: String,
    },
    /// A blob is missing or corrupt.
    #[error("blob {key}: {reason}")]
    Blob {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The embedded backend's data directory cannot be used (locked by
    /// another process, not writable, or written by a newer Parley).
    #[error("data directory {dir}: {reason}")]
    DataDir {
        /// The directory, as given.
        dir: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// Anything else the backend reported.
    #[error("log backend error: {0}")]
    Backend(String),
}

/// What a caller can do about a [`LogError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The same call may succeed later: retry with backoff.
    Retryable,
    /// Another writer won: reload the aggregate, decide again, retry.
    Conflict,
    /// This request will never succeed as it is; retrying is pointless.
    Permanent,
    /// The log is damaged: stop, and verify or salvage it.
    Corrupt,
}

impl LogError {
    /// What a caller can do about this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            LogError::Unavailable(_) => ErrorClass::Retryable,
            LogError::WrongExpectedVersion { .. } => ErrorClass::Conflict,
            LogError::Corrupt { .. } => ErrorClass::Corrupt,
            LogError::InvalidAggregate(_)
            | LogError::InvalidRequest(_)
            | LogError::PayloadTooLarge { .. }
            | LogError::UnsupportedServer(_)
            | LogError::Storage { .. }
            | LogError::Blob { .. }
            | LogError::DataDir { .. }
            | LogError::Backend(_) => ErrorClass::Permanent,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// Names `file` in a storage or corruption error that does not name one
    /// yet (errors converted from SQLite do not know their file).
    pub(crate) fn in_file(mut self, path: &std::path::Path) -> Self {
        if let LogError::Storage { file, .. } | LogError::Corrupt { file, .. } = &mut self
            && file.is_empty()
        {
            *file = path.display().to_string();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_sequence_once() {
        let corrupt = LogError::Corrupt {
            file: "d/log.sqlite3".into(),
            sequence: Some(145),
            reason: "checksum mismatch".into(),
        };
        assert_eq!(
            corrupt.to_string(),
            "d/log.sqlite3: record 145: checksum mismatch"
        );
        assert_eq!(corrupt.class(), ErrorClass::Corrupt);
        let full = LogError::Storage {
            file: String::new(),
            reason: "the disk is full".into(),
        }
        .in_file(std::path::Path::new("d/log.sqlite3"));
        assert_eq!(full.to_string(), "d/log.sqlite3: the disk is full");
        assert_eq!(full.class(), ErrorClass::Permanent);
        assert!(LogError::Unavailable("x".into()).is_transient());
    }
}
