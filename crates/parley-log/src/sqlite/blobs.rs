//! Large bodies of the embedded log: the `blobs` table, keyed by the
//! SHA-256 of the bytes and checked against it when loaded.

use bytes::Bytes;
use rusqlite::{OptionalExtension, params};

use super::{BLOB_BUCKET, SqliteLog};
use crate::checks::{blob_ref, check_bucket, verify_blob};
use crate::{BlobRef, LogError};

impl SqliteLog {
    /// See [`crate::EventLog::put_blob`].
    pub(super) async fn store_blob(&self, bytes: Bytes) -> Result<BlobRef, LogError> {
        let blob = blob_ref(BLOB_BUCKET, &bytes);
        let key = blob.key.clone();
        self.write(move |writer| {
            // Content-addressed: an existing row holds the same bytes.
            writer.conn.execute(
                "INSERT OR IGNORE INTO blobs (key, size, data) VALUES (?1, ?2, ?3)",
                params![key, bytes.len() as i64, &bytes[..]],
            )?;
            Ok(())
        })
        .await?;
        Ok(blob)
    }

    /// See [`crate::EventLog::get_blob`].
    pub(super) async fn load_blob(&self, blob: &BlobRef) -> Result<Bytes, LogError> {
        check_bucket(blob, BLOB_BUCKET)?;
        let key = blob.key.clone();
        let data: Option<Vec<u8>> = self
            .read_with(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT data FROM blobs WHERE key = ?1")?
                    .query_row([&key], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        let data = data.ok_or_else(|| LogError::Blob {
            key: blob.key.clone(),
            reason: "not found".into(),
        })?;
        verify_blob(blob, &data)?;
        Ok(Bytes::from(data))
    }
}
