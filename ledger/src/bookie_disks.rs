//! What the cluster knows about each bookie's disk: the persistent records
//! `<root>/bookie-disks/<id>` ([`DiskRecord`]) that bookies write at start (`strata_bookie::disk`). Auto-recovery reads them to
//! learn (a) which bookies upload their sealed segments to object storage (those survive the
//! bookie's absence) and (b) which bookies came back under their old id with a new disk and may
//! miss entries (`checked == false`).

use std::collections::HashMap;

use strata_meta::model::{MetaClient, decode_segment};
use strata_proto::BookieId;
use tracing::warn;

use crate::error_map::map_meta;
use crate::storage::StorageError;

pub use strata_meta::model::DiskRecord;

/// `<root>/bookie-disks`.
pub(crate) fn records_dir(meta: &MetaClient) -> String {
    meta.paths().bookie_disks()
}

/// `<root>/bookie-disks/<id>`.
pub(crate) fn record_key(meta: &MetaClient, b: &BookieId) -> String {
    meta.paths().bookie_disk(&b.0)
}

/// Every bookie's record (undecodable ones are logged and left out).
pub(crate) async fn load(meta: &MetaClient) -> Result<HashMap<BookieId, DiskRecord>, StorageError> {
    let dir = records_dir(meta);
    let scan = meta
        .store()
        .scan(&format!("{dir}/"))
        .await
        .map_err(map_meta)?;
    let mut out = HashMap::new();
    for kv in scan.entries {
        let Some(name) = kv.key.strip_prefix(&format!("{dir}/")) else {
            continue;
        };
        match meta.decode::<DiskRecord>(&kv.key, &kv.value.value) {
            Ok(r) => {
                out.insert(BookieId(decode_segment(name)), r);
            }
            Err(e) => warn!(key = %kv.key, error = %e, "undecodable bookie disk record"),
        }
    }
    Ok(out)
}

/// Marks `b`'s record checked if it still names `instance` (a newer disk stays unchecked).
pub(crate) async fn mark_checked(
    meta: &MetaClient,
    b: &BookieId,
    instance: &str,
) -> Result<bool, StorageError> {
    let key = record_key(meta, b);
    let done = meta
        .update::<DiskRecord, _>(&key, |cur| {
            Ok(cur.and_then(|c| {
                (c.instance == instance && !c.checked).then_some(DiskRecord { checked: true, ..c })
            }))
        })
        .await
        .map_err(map_meta)?;
    Ok(done.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_bookie_writes() {
        let written = strata_bookie::disk::DiskRecord {
            instance: "abc".into(),
            storage_url: Some("s3://b/p".into()),
            replaced_at_ms: Some(7),
            checked: false,
        };
        let bytes = strata_meta::model::encode(&written).unwrap();
        let read: DiskRecord = strata_meta::model::decode("k", &bytes).unwrap();
        assert_eq!(
            read,
            DiskRecord {
                instance: "abc".into(),
                storage_url: Some("s3://b/p".into()),
                replaced_at_ms: Some(7),
                checked: false,
            }
        );
        let paths = strata_meta::model::Paths::default();
        assert_eq!(
            strata_bookie::disk::record_key(&paths, "127.0.0.1:1"),
            format!(
                "{}/bookie-disks/{}",
                paths.root(),
                strata_meta::model::encode_segment("127.0.0.1:1")
            )
        );
    }
}
