use thiserror::Error;

/// Everything that can go wrong with the log.
#[derive(Debug, Error)]
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
    /// Connecting to or talking with the backend failed.
    #[error("log backend unavailable: {0}")]
    Unavailable(String),
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

impl LogError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LogError::Unavailable(_))
    }
}
