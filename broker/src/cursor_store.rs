//! Where and how a durable cursor is stored: one [`CursorInfo`] per subscription at
//! `cursors/{tenant}/{ns}/{domain}/{topic}/{subscription}` ([`strata_meta::model::Paths`]), its
//! `ack_state` holding the compact binary snapshot of [`crate::cursor`] (magic `SCUR`, varint
//! ranges, CRC32C) and `mark_delete` the mark-delete position for readers of the metadata.
//!
//! The subscription writes it at most once per flush interval (batched); never once per
//! acknowledgement.

use strata_meta::Expected;
use strata_meta::model::{CursorInfo, decode_segment};

use crate::cursor::{AckState, CursorSnapshot, decode_snapshot, encode_snapshot};
use crate::error::Result;
use crate::metadata::{MetaClient, MetaError, topic_path};

/// Metadata key of the durable cursor `sub` of the managed ledger `ml_name`.
pub fn cursor_key(meta: &MetaClient, ml_name: &str, sub: &str) -> String {
    meta.paths().cursor(&topic_path(ml_name), sub)
}

/// Loads the cursor stored at `key` (`None`: no such cursor).
pub async fn load(meta: &MetaClient, key: &str) -> Result<Option<AckState>> {
    let Some((info, _)) = meta.get::<CursorInfo>(key).await? else {
        return Ok(None);
    };
    if info.ack_state.is_empty() {
        return Ok(Some(AckState::new(info.mark_delete)));
    }
    let snap = decode_snapshot(&info.ack_state).map_err(|e| MetaError::Decode {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Some(AckState::from_snapshot(&snap)))
}

/// Stores `snap` at `key` (overwriting; only the subscription's flusher writes it). Returns the
/// size of the compact ack state written.
///
/// # Cancel safety
/// Not cancel safe: a cancelled write may or may not be applied.
pub async fn save(meta: &MetaClient, key: &str, snap: &CursorSnapshot) -> Result<usize> {
    let info = CursorInfo {
        mark_delete: snap.md,
        ack_state: encode_snapshot(snap),
        ..Default::default()
    };
    meta.put(key, &info, Expected::Any).await?;
    Ok(info.ack_state.len())
}

/// Names of the durable cursors stored for the managed ledger `ml_name`.
pub async fn list(meta: &MetaClient, ml_name: &str) -> Result<Vec<String>> {
    let parent = meta.paths().cursors(&topic_path(ml_name));
    let prefix = format!("{parent}/");
    let (mut keys, _) = meta.store().scan_keys(&prefix).await?;
    keys.sort();
    Ok(keys
        .iter()
        .filter_map(|k| k.strip_prefix(prefix.as_str()))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .map(decode_segment)
        .collect())
}

/// Deletes the stored cursor `sub` of `ml_name` (no error when absent).
pub async fn delete(meta: &MetaClient, ml_name: &str, sub: &str) -> Result<()> {
    let key = cursor_key(meta, ml_name, sub);
    meta.store().delete(&key, Expected::Any).await?;
    Ok(())
}

/// Deletes every stored cursor of `ml_name`.
pub async fn delete_all(meta: &MetaClient, ml_name: &str) -> Result<()> {
    let parent = meta.paths().cursors(&topic_path(ml_name));
    meta.store().delete_prefix(&format!("{parent}/")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::Position;

    #[tokio::test]
    async fn a_cursor_roundtrips_with_its_ack_holes() {
        let meta = crate::metadata::in_memory().unwrap();
        let key = cursor_key(&meta, "t/ns/persistent/a", "sub/1");
        assert!(load(&meta, &key).await.unwrap().is_none());
        let mut st = AckState::new(Position::new(3, 4));
        st.ack(Position::new(3, 7));
        save(&meta, &key, &st.snapshot()).await.unwrap();
        let back = load(&meta, &key).await.unwrap().unwrap();
        assert_eq!(back, st);
        assert_eq!(
            list(&meta, "t/ns/persistent/a").await.unwrap(),
            vec!["sub/1"]
        );
        let (info, _) = meta.get::<CursorInfo>(&key).await.unwrap().unwrap();
        assert_eq!(info.mark_delete, Position::new(3, 4));
        delete(&meta, "t/ns/persistent/a", "sub/1").await.unwrap();
        assert!(list(&meta, "t/ns/persistent/a").await.unwrap().is_empty());
    }
}
