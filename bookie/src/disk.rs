//! The identity of a bookie's disk, so that the cluster notices a bookie that came back under its
//! old id with an empty disk (a replaced or wiped disk).
//!
//! - An `instance` file in the ledger directory holds a random id, created when the file is
//!   absent: a new disk gets a new instance.
//! - A persistent (not lease-bound) metadata record `<root>/bookie-disks/<id>` ([`DiskRecord`])
//!   holds the instance the cluster last saw for the bookie id and its object storage URL, if
//!   any. A bookie whose instance changed writes the new one with `replaced_at_ms` set and
//!   `checked = false`; auto-recovery (`strata_ledger::autorecovery`) then copies back, to the
//!   same bookie, the entries it no longer has (with object storage: only those that were in its
//!   lost journal; the uploaded segments are still served) and sets `checked`. A record with a
//!   storage URL also tells auto-recovery that the bookie's uploaded segments survive its
//!   absence.
//!
//! The record type is `strata_meta::model::DiskRecord`; `strata_ledger::bookie_disks` reads it.

use std::path::Path;

use strata_meta::model::Paths;

use crate::error::BookieError;

/// Name of the instance file in the ledger directory.
pub const INSTANCE_FILE: &str = "instance";

pub use strata_meta::model::DiskRecord;

/// The record's key: `<root>/bookie-disks/<id>`.
pub fn record_key(paths: &Paths, bookie_id: &str) -> String {
    paths.bookie_disk(bookie_id)
}

/// The disk's instance id: read from `dir/instance`, created (random, written atomically) when
/// absent.
pub fn instance(dir: &Path) -> Result<String, BookieError> {
    let path = dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BookieError::io("read the instance file", e)),
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    crate::storage::write_file_atomic(dir, INSTANCE_FILE, id.as_bytes())?;
    tracing::info!(instance = %id, dir = %dir.display(), "new disk instance");
    Ok(id)
}

/// The record to write given the stored one (`None`: leave it). A bookie id seen for the first
/// time is new (nothing to check); a known id with another instance came back with a new disk.
pub fn next_record(
    cur: Option<&DiskRecord>,
    instance: &str,
    storage_url: Option<&str>,
    now_ms: u64,
) -> Option<DiskRecord> {
    let url = storage_url.map(str::to_owned);
    match cur {
        None => Some(DiskRecord {
            instance: instance.to_owned(),
            storage_url: url,
            replaced_at_ms: None,
            checked: true,
        }),
        Some(c) if c.instance == instance => (c.storage_url != url).then(|| DiskRecord {
            storage_url: url,
            ..c.clone()
        }),
        Some(_) => Some(DiskRecord {
            instance: instance.to_owned(),
            storage_url: url,
            replaced_at_ms: Some(now_ms),
            checked: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_is_created_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let a = instance(d.path()).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(instance(d.path()).unwrap(), a);
        let e = tempfile::tempdir().unwrap();
        assert_ne!(instance(e.path()).unwrap(), a);
    }

    #[test]
    fn a_new_instance_under_a_known_id_is_a_replaced_disk() {
        let first = next_record(None, "a", Some("s3://b"), 5).unwrap();
        assert!(first.checked && first.replaced_at_ms.is_none());
        assert_eq!(next_record(Some(&first), "a", Some("s3://b"), 6), None);
        let moved = next_record(Some(&first), "a", None, 6).unwrap();
        assert_eq!((moved.storage_url, moved.checked), (None, true));
        let replaced = next_record(Some(&first), "b", Some("s3://b"), 7).unwrap();
        assert_eq!(replaced.replaced_at_ms, Some(7));
        assert!(!replaced.checked);
        // unchecked stays unchecked across restarts of the new disk
        assert_eq!(next_record(Some(&replaced), "b", Some("s3://b"), 8), None);
    }
}
