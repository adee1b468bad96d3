//! Deterministic ids: a retried command must produce the same ids, so
//! appends stay idempotent and replays rebuild the same state.
//!
//! Every id is derived from content (a name, a first report), never from a
//! counter or a clock:
//! - documents: `doc-` + 20 hex digits of the SHA-256 of the name ([`document_id`]);
//! - real-world events: `evt-` + 12 hex digits of the first report's key ([`event_id`]);
//! - persons: `per-` + the words of the normalised name ([`person_id`]).

use sha2::{Digest, Sha256};

use crate::model::TalksEvent;

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Stable id of a document, derived from its name (file name, feed guid or link).
///
/// The same name always maps to the same document, so a re-submitted article
/// is recognised; different content under the same name is a new revision.
pub fn document_id(name: &str) -> String {
    let digest = sha256_hex(name.as_bytes());
    format!("doc-{}", &digest[..20])
}

/// Id of a real-world event, from its first report: `evt-` + 12 hex digits
/// of the document id, the candidate's index in the document, its type, its
/// sides, its date and its city. Stable across replays.
pub fn event_id(document_id: &str, index: usize, event: &TalksEvent) -> String {
    let key = format!(
        "{}|{}|{}|{}|{:?}|{}",
        document_id,
        index,
        event.event_type.as_str(),
        event.party_codes().join(","),
        event.date.date,
        event.venue.city.as_deref().unwrap_or("")
    );
    format!("evt-{}", &sha256_hex(key.as_bytes())[..12])
}

/// Id of a new person: `per-` + the words of `normalized_name` (already
/// folded by the knowledge base's `normalize`) joined by `-`, with `-2`,
/// `-3`, ... appended while `taken` says the id is in use.
///
/// `per-rustem-umerov` for "Rustem Umerov"; `per-unnamed` for an empty name.
pub fn person_id(normalized_name: &str, taken: impl Fn(&str) -> bool) -> String {
    let slug = normalized_name
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug = if slug.is_empty() {
        "unnamed".to_owned()
    } else {
        slug
    };
    let base = format!("per-{slug}");
    let mut id = base.clone();
    let mut n = 2;
    while taken(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
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
    fn document_ids_keep_their_scheme() {
        // Ids are in the log: the scheme must never change.
        assert_eq!(
            document_id("a.txt"),
            format!("doc-{}", &sha256_hex(b"a.txt")[..20])
        );
    }

    #[test]
    fn person_ids_are_slugs_with_a_suffix_when_taken() {
        assert_eq!(person_id("rustem umerov", |_| false), "per-rustem-umerov");
        assert_eq!(person_id("", |_| false), "per-unnamed");
        assert_eq!(
            person_id("a b", |id| id == "per-a-b" || id == "per-a-b-2"),
            "per-a-b-3"
        );
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
