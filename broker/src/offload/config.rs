//! The `[offload]` table of the broker configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tiered storage settings. Without `url`, offload is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffloadConfig {
    /// `s3://bucket/prefix`, `gs://...`, `az://...`, `file:///abs/path` (none: offload off).
    pub url: Option<String>,
    /// S3-compatible endpoint (path-style requests).
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Target size of one block (the unit of a ranged GET).
    pub block_bytes: usize,
    /// Target size of one data object.
    pub part_bytes: usize,
    /// Bytes of verified blocks kept in memory, shared by every reader.
    pub block_cache_bytes: u64,
    /// Blocks prefetched ahead of a forward reader.
    pub read_ahead_blocks: usize,
    /// Block prefetches in flight on the broker at most.
    pub max_prefetches: usize,
    /// Ledgers uploaded at once on the broker at most.
    pub max_concurrent_offloads: usize,
    /// Bookie copies are kept this long after an offload, unless the namespace's
    /// `offloadDeletionLagMs` says otherwise.
    #[serde(with = "humantime_serde")]
    pub deletion_lag: Duration,
    /// How often namespace offload thresholds and deletion lags are checked.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// How often the janitor lists the store for objects no committed offload names.
    #[serde(with = "humantime_serde")]
    pub janitor_interval: Duration,
    /// Objects younger than this are left to a running attempt; an upload running longer than
    /// half of it is abandoned (and retried later), so no broker's janitor can remove the
    /// objects of an attempt still running on another broker.
    #[serde(with = "humantime_serde")]
    pub janitor_grace: Duration,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self {
            url: None,
            endpoint: None,
            region: None,
            block_bytes: 1 << 20,
            part_bytes: 16 << 20,
            block_cache_bytes: 128 << 20,
            read_ahead_blocks: 8,
            max_prefetches: 32,
            max_concurrent_offloads: 2,
            deletion_lag: Duration::from_secs(4 * 3600),
            check_interval: Duration::from_secs(10),
            janitor_interval: Duration::from_secs(600),
            janitor_grace: Duration::from_secs(3600),
        }
    }
}
