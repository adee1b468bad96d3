//! What both backends check and compute the same way: the validity of an
//! append, of a consumer name and of a filter, and the content address of a
//! blob. Written once so the two backends cannot drift apart.

use sha2::{Digest, Sha256};

use crate::{AggregateRef, AppendRequest, BlobRef, ExpectedVersion, Filter, LogError};

/// Checks what every backend refuses in an append: an aggregate that is not
/// a subject token (the fields are public, so `AggregateRef::new` may have
/// been bypassed), a payload over `max_payload`, an empty msg id, and header
/// names that are empty or use the server's reserved `Nats-` prefix.
pub(crate) fn check_append(request: &AppendRequest, max_payload: usize) -> Result<(), LogError> {
    AggregateRef::new(request.aggregate.kind.clone(), request.aggregate.id.clone())?;
    if request.payload.len() > max_payload {
        return Err(LogError::PayloadTooLarge {
            size: request.payload.len(),
            limit: max_payload,
        });
    }
    if request.msg_id.is_empty() {
        return Err(LogError::InvalidRequest(
            "an append needs a non-empty msg id".into(),
        ));
    }
    if let Some((name, _)) = request
        .headers
        .iter()
        .find(|(name, _)| name.is_empty() || is_reserved_header(name))
    {
        return Err(LogError::InvalidRequest(format!(
            "header {name:?}: empty names and the Nats- prefix are reserved"
        )));
    }
    Ok(())
}

/// Whether a header name belongs to the server (`Nats-*`, any case).
pub(crate) fn is_reserved_header(name: &str) -> bool {
    name.len() >= 5 && name.as_bytes()[..5].eq_ignore_ascii_case(b"nats-")
}

/// Refuses a durable name outside `[A-Za-z0-9_-]+`.
pub(crate) fn check_consumer_name(name: &str) -> Result<(), LogError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(LogError::InvalidRequest(format!(
            "{name:?} is not a valid durable name (use [A-Za-z0-9_-])"
        )))
    }
}

/// Checks that each aggregate type of a filter is a valid subject token.
pub(crate) fn check_filter(filter: &Filter) -> Result<(), LogError> {
    for kind in &filter.aggregate_types {
        AggregateRef::new(kind.clone(), "x")?;
    }
    Ok(())
}

/// An expected version as the conflict message shows it.
pub(crate) fn describe_expected(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".into(),
        ExpectedVersion::NoStream => "no stream".into(),
        ExpectedVersion::Exact(version) => version.to_string(),
    }
}

/// The reference of `bytes` in `bucket`: keyed by their SHA-256.
pub(crate) fn blob_ref(bucket: &str, bytes: &[u8]) -> BlobRef {
    BlobRef {
        bucket: bucket.to_string(),
        key: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
    }
}

/// Refuses a reference to another bucket than this log's.
pub(crate) fn check_bucket(blob: &BlobRef, bucket: &str) -> Result<(), LogError> {
    if blob.bucket == bucket {
        Ok(())
    } else {
        Err(LogError::Blob {
            key: blob.key.clone(),
            reason: format!(
                "bucket {:?} is not this log's bucket {bucket:?}",
                blob.bucket
            ),
        })
    }
}

/// Checks that loaded bytes are the ones the key names.
pub(crate) fn verify_blob(blob: &BlobRef, bytes: &[u8]) -> Result<(), LogError> {
    let digest = hex::encode(Sha256::digest(bytes));
    if digest == blob.key {
        Ok(())
    } else {
        Err(LogError::Blob {
            key: blob.key.clone(),
            reason: format!("content digest is {digest}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_and_names() {
        assert!(is_reserved_header("Nats-Msg-Id"));
        assert!(is_reserved_header("nats-x"));
        assert!(!is_reserved_header("nats"));
        assert!(!is_reserved_header("event-type"));
        assert!(check_consumer_name("resolver_1-a").is_ok());
        assert!(check_consumer_name("").is_err());
        assert!(check_consumer_name("a.b").is_err());
    }

    #[test]
    fn blobs_are_checked_against_their_key() {
        let blob = blob_ref("b", b"body");
        assert_eq!(blob.size, 4);
        assert!(verify_blob(&blob, b"body").is_ok());
        assert!(verify_blob(&blob, b"bodY").is_err());
        assert!(check_bucket(&blob, "b").is_ok());
        assert!(check_bucket(&blob, "other").is_err());
    }
}
