//! Large bodies on JetStream: an object-store bucket keyed by the SHA-256
//! of the bytes, checked against it when loaded.

use async_nats::jetstream::object_store::{GetErrorKind, InfoErrorKind};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::JetStreamLog;
use crate::checks::{blob_ref, check_bucket, verify_blob};
use crate::{BlobRef, LogError};

impl JetStreamLog {
    /// See [`crate::EventLog::put_blob`].
    pub(super) async fn store_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        let blob = blob_ref(&self.inner.config.object_bucket, &bytes);
        let key = blob.key.clone();
        // Content-addressed: an existing complete object is the same bytes.
        match self.inner.blobs.info(&key).await {
            Ok(info) if !info.deleted && info.size == bytes.len() => return Ok(blob),
            Ok(_) => {}
            Err(e) if e.kind() == InfoErrorKind::NotFound => {}
            Err(e) => return Err(blob_error(&key, e)),
        }
        let mut reader: &[u8] = &bytes;
        self.inner
            .blobs
            .put(key.as_str(), &mut reader)
            .await
            .map_err(|e| blob_error(&key, e))?;
        Ok(blob)
    }

    /// See [`crate::EventLog::get_blob`].
    pub(super) async fn load_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        check_bucket(blob, &self.inner.config.object_bucket)?;
        let mut object = match self.inner.blobs.get(&blob.key).await {
            Ok(object) => object,
            Err(e) if e.kind() == GetErrorKind::NotFound => {
                return Err(LogError::Blob {
                    key: blob.key.clone(),
                    reason: "not found".into(),
                });
            }
            Err(e) => return Err(blob_error(&blob.key, e)),
        };
        let mut bytes = Vec::with_capacity(blob.size as usize);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| blob_error(&blob.key, e))?;
        verify_blob(blob, &bytes)?;
        Ok(Bytes::from(bytes))
    }
}

fn blob_error(key: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Blob {
        key: key.to_string(),
        reason: error.to_string(),
    }
}
