//! Deterministic ids: a retried command must produce the same ids, so
//! appends stay idempotent and replays rebuild the same state.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stable id of a document, derived from its name (file name, feed guid or link).
///
/// The same name always maps to the same document, so a re-submitted article
/// is recognised; different content under the same name is a new revision.
pub fn document_id(name: &str) -> String {
    // One scheme for the whole system: the extractor's (documents are named where they are read).
    parley_extract::document::document_id(name)
}

/// A subject-safe token for arbitrary text (ids may contain characters NATS subjects forbid).
pub fn subject_token(text: &str) -> String {
    let safe = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if safe && !text.is_empty() && text.len() <= 120 {
        text.to_owned()
    } else {
        format!("h-{}", &sha256_hex(text.as_bytes())[..24])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_stable_and_distinct() {
        assert_eq!(document_id("a.txt"), document_id("a.txt"));
        assert_ne!(document_id("a.txt"), document_id("b.txt"));
        assert!(document_id("a.txt").starts_with("doc-"));
    }

    #[test]
    fn subject_tokens_never_contain_dots_or_wildcards() {
        for raw in [
            "per-rustem-umerov",
            "https://x.org/a.b",
            "a b",
            "",
            "*",
            ">",
        ] {
            let token = subject_token(raw);
            assert!(!token.is_empty());
            assert!(!token.contains(['.', '*', '>', ' ']), "{token}");
        }
        assert_eq!(subject_token("per-rustem-umerov"), "per-rustem-umerov");
    }
}
