//! Where durable cursors are persisted: one snapshot (`crate::cursor`) per subscription in the
//! metadata store, under the topic's managed-ledger name.

use std::sync::Arc;

use bytes::Bytes;

use crate::cursor::{CursorSnapshot, decode_snapshot, encode_snapshot};
use crate::error::Result;
use crate::metadata::{BrokerMetadata, Expect, MetaError, ROOT};

/// Reads and writes the cursors of one broker. Cheap to clone.
#[derive(Clone)]
pub struct CursorStore {
    meta: Arc<dyn BrokerMetadata>,
}

/// Metadata key of a durable cursor.
pub fn cursor_key(ml_name: &str, sub: &str) -> String {
    format!("{ROOT}/cursors/{ml_name}/{sub}")
}

impl CursorStore {
    /// Cursors in `meta`.
    pub fn new(meta: Arc<dyn BrokerMetadata>) -> Self {
        CursorStore { meta }
    }

    /// The stored cursor of `sub`, if any.
    pub async fn load(&self, ml_name: &str, sub: &str) -> Result<Option<CursorSnapshot>> {
        let key = cursor_key(ml_name, sub);
        match self.meta.get(&key).await? {
            Some(v) => decode_snapshot(&v.value)
                .map(Some)
                .map_err(|e| MetaError::Corrupt(key, e.to_string()).into()),
            None => Ok(None),
        }
    }

    /// Writes the cursor of `sub` (last writer wins: only the topic's owner writes); returns
    /// the size written.
    pub async fn save(&self, ml_name: &str, sub: &str, snap: &CursorSnapshot) -> Result<usize> {
        let key = cursor_key(ml_name, sub);
        let bytes = Bytes::from(encode_snapshot(snap));
        let size = bytes.len();
        self.meta.put(&key, bytes, Expect::Any).await?;
        Ok(size)
    }

    /// Deletes the cursor of `sub` (no error when absent).
    pub async fn delete(&self, ml_name: &str, sub: &str) -> Result<()> {
        self.meta.delete(&cursor_key(ml_name, sub)).await?;
        Ok(())
    }

    /// Names of the subscriptions with a stored cursor.
    pub async fn list(&self, ml_name: &str) -> Result<Vec<String>> {
        let prefix = cursor_key(ml_name, "");
        let keys = self.meta.list(&prefix).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(k, _)| {
                let sub = k.strip_prefix(prefix.as_str())?;
                (!sub.is_empty() && !sub.contains('/')).then(|| sub.to_owned())
            })
            .collect())
    }
}
