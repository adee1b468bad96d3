//! Errors raised while loading the knowledge base.

use std::path::PathBuf;

/// Why a knowledge base could not be loaded.
///
/// Every variant names the file so that a user who broke an extension file
/// at start-up is told exactly where to look.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// The file is not valid TOML or does not have the documented shape
    /// (unknown key, wrong type, missing field).
    #[error("{file}:{line}:{column}: {reason}")]
    Parse {
        /// File name as given to the loader (bundled files are `kb/<name>.toml`).
        file: String,
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// Human-readable reason from the TOML parser.
        reason: String,
    },
    /// The file parsed but its content is wrong: unknown country code,
    /// duplicate id, bad or reversed date, unknown role ...
    #[error("{file}:{}: {reason}", line.map_or_else(|| "?".to_string(), |l| l.to_string()))]
    Invalid {
        /// File name as given to the loader.
        file: String,
        /// 1-based line of the entry (or field) at fault, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A file or directory of the extension directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// Path that could not be read.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}
