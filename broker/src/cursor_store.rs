//! Where durable cursors are persisted: one `strata_meta` [`CursorInfo`] per subscription at
//! `cursors/{tenant}/{ns}/{domain}/{topic}/{subscription}` ([`strata_meta::model::Paths`]), its
//! `ack_state` holding the compact binary snapshot of [`crate::cursor`] (magic `SCUR`, varint
//! ranges, CRC32C) and `mark_delete` the mark-delete position for readers of the metadata.
//!
//! The subscription writes it at most once per flush interval (batched); never once per
//! acknowledgement.

use strata_meta::Expected;
use strata_meta::model::{CursorInfo, decode_segment};

use crate::cursor::{CursorSnapshot, decode_snapshot, encode_snapshot};
use crate::error::Result;
use crate::metadata::{MetaClient, MetaError, topic_path};

/// Reads and writes the cursors of one broker. Cheap to clone.
#[derive(Clone)]
pub struct CursorStore {
    meta: MetaClient,
}

/// Metadata key of the durable cursor `sub` of the managed ledger `ml_name`.
pub fn cursor_key(meta: &MetaClient, ml_name: &str, sub: &str) -> String {
    meta.paths().cursor(&topic_path(ml_name), sub)
}

impl CursorStore {
    /// Cursors in `meta`.
    pub fn new(meta: MetaClient) -> Self {
        CursorStore { meta }
    }

    /// The stored cursor of `sub`, if any.
    pub async fn load(&self, ml_name: &str, sub: &str) -> Result<Option<CursorSnapshot>> {
        let key = cursor_key(&self.meta, ml_name, sub);
        let Some((info, _)) = self.meta.get::<CursorInfo>(&key).await? else {
            return Ok(None);
        };
        if info.ack_state.is_empty() {
            return Ok(Some(CursorSnapshot {
                v: 1,
                md: info.mark_delete,
                ranges: vec![],
                batch: vec![],
                sub_type: None,
            }));
        }
        let snap = decode_snapshot(&info.ack_state).map_err(|e| MetaError::Decode {
            key,
            reason: e.to_string(),
        })?;
        Ok(Some(snap))
    }

    /// Writes the cursor of `sub` (last writer wins: only the topic's owner writes); returns
    /// the size of the compact ack state written.
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled write may or may not be applied.
    pub async fn save(&self, ml_name: &str, sub: &str, snap: &CursorSnapshot) -> Result<usize> {
        self.save_at(&self.key(ml_name, sub), snap).await
    }

    /// The metadata key of the cursor `sub` of `ml_name` (for [`Self::save_at`]).
    pub fn key(&self, ml_name: &str, sub: &str) -> String {
        cursor_key(&self.meta, ml_name, sub)
    }

    /// [`Self::save`] at a key from [`Self::key`] (a subscription builds its key once).
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled write may or may not be applied.
    pub async fn save_at(&self, key: &str, snap: &CursorSnapshot) -> Result<usize> {
        let info = CursorInfo {
            mark_delete: snap.md,
            ack_state: encode_snapshot(snap),
            ..Default::default()
        };
        self.meta.put(key, &info, Expected::Any).await?;
        Ok(info.ack_state.len())
    }

    /// Deletes the cursor of `sub` (no error when absent).
    pub async fn delete(&self, ml_name: &str, sub: &str) -> Result<()> {
        let key = cursor_key(&self.meta, ml_name, sub);
        self.meta.store().delete(&key, Expected::Any).await?;
        Ok(())
    }

    /// Deletes every cursor of `ml_name`.
    pub async fn delete_all(&self, ml_name: &str) -> Result<()> {
        let parent = self.meta.paths().cursors(&topic_path(ml_name));
        self.meta
            .store()
            .delete_prefix(&format!("{parent}/"))
            .await?;
        Ok(())
    }

    /// Names of the subscriptions with a stored cursor.
    pub async fn list(&self, ml_name: &str) -> Result<Vec<String>> {
        let parent = self.meta.paths().cursors(&topic_path(ml_name));
        let prefix = format!("{parent}/");
        let (mut keys, _) = self.meta.store().scan_keys(&prefix).await?;
        keys.sort();
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .map(decode_segment)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::AckState;
    use crate::position::Position;

    #[tokio::test]
    async fn a_cursor_roundtrips_with_its_ack_holes() {
        let meta = crate::metadata::in_memory().unwrap();
        let store = CursorStore::new(meta.clone());
        let ml = "t/ns/persistent/a";
        assert!(store.load(ml, "sub/1").await.unwrap().is_none());
        let mut st = AckState::new(Position::new(3, 4));
        st.ack(Position::new(3, 7));
        store.save(ml, "sub/1", &st.snapshot()).await.unwrap();
        let back = store.load(ml, "sub/1").await.unwrap().unwrap();
        assert_eq!(AckState::from_snapshot(&back), st);
        assert_eq!(store.list(ml).await.unwrap(), vec!["sub/1"]);
        let key = cursor_key(&meta, ml, "sub/1");
        let (info, _) = meta.get::<CursorInfo>(&key).await.unwrap().unwrap();
        assert_eq!(info.mark_delete, Position::new(3, 4));
        store.delete(ml, "sub/1").await.unwrap();
        assert!(store.list(ml).await.unwrap().is_empty());
        store.save(ml, "a", &st.snapshot()).await.unwrap();
        store.delete_all(ml).await.unwrap();
        assert!(store.list(ml).await.unwrap().is_empty());
    }
}
