//! Striping: which bookies of an ensemble hold an entry, and the ledger's master key.

use bytes::Bytes;
use strata_meta::model::LedgerMetadata;
use strata_proto::BookieId;

/// The custom-metadata field holding a ledger's master key.
pub(crate) const MASTER_KEY: &str = "master_key";

pub(crate) fn master_key(m: &LedgerMetadata) -> Bytes {
    Bytes::from(
        m.custom_metadata
            .get(MASTER_KEY)
            .cloned()
            .unwrap_or_default()
            .into_bytes(),
    )
}

pub(crate) fn write_set(ensemble: &[BookieId], entry: u64, qw: usize) -> Vec<BookieId> {
    let e = ensemble.len().max(1);
    (0..qw.min(ensemble.len()))
        .map(|i| ensemble[(entry as usize + i) % e].clone())
        .collect()
}

/// Whether ensemble slot `idx` is in the write set of `entry` (E = `e`, Qw = `qw`).
pub(crate) fn in_write_set(idx: usize, entry: u64, e: usize, qw: usize) -> bool {
    let e = e.max(1);
    ((idx + e - (entry % e as u64) as usize) % e) < qw
}
