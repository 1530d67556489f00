//! [`DiskRecord`]: what the cluster knows about a bookie's disk, kept at
//! [`Paths::bookie_disk`](super::Paths::bookie_disk). Bookies write it at start
//! (`strata_bookie::disk`); auto-recovery reads it (`strata_ledger::bookie_disks`).

use serde::{Deserialize, Serialize};

use super::Model;

/// One bookie's disk record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRecord {
    /// The disk's instance id (the bookie's `instance` file).
    pub instance: String,
    /// The bookie's object storage URL, if its sealed segments are uploaded.
    #[serde(default)]
    pub storage_url: Option<String>,
    /// When the bookie last came back with a new disk (ms since the epoch).
    #[serde(default)]
    pub replaced_at_ms: Option<u64>,
    /// Whether auto-recovery has copied back what the bookie lost with its previous disk.
    #[serde(default)]
    pub checked: bool,
}

impl Model for DiskRecord {}
