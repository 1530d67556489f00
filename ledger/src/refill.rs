//! Auto-recovery's refill: a bookie that came back under its old id with a new disk
//! ([`crate::bookie_disks`], `checked == false`) keeps its place in every ensemble; what it no
//! longer holds is copied back to it from the other replicas. With object storage it still
//! serves every uploaded segment (it rebuilt its index from the store), so only the entries that
//! were in its lost journal are copied; with a local disk, everything.
//!
//! Per ensemble segment naming the bookie (closed ledgers, and every segment but the last of open
//! ones) in a ledger created before the disk came back: the bookie's highest stored entry of the
//! ledger (`ReadLac`, no payload) bounds what it holds; the entries of its write set after that
//! are copied. (A bookie stores a ledger's entries in the order they were added, and uploads
//! segments in that order, so what it lost is a suffix; entries added to it out of order by an
//! earlier recovery and lost with the journal are not detected.) Once every such segment is done
//! and no open ledger from before still names it in its last segment, the record is marked
//! checked.

use std::collections::HashMap;
use std::time::Duration;

use strata_bookie_client::ClientError;
use strata_meta::model::LedgerMetadata;
use strata_proto::BookieId;
use tracing::{info, warn};

use crate::bookie_disks::{self, DiskRecord};
use crate::copy::{Copied, copy_entries};
use crate::pool::Pool;
use crate::storage::StorageError;
use crate::write_set::{in_write_set, master_key};

/// Ledgers created up to this long after the recorded disk replacement are checked too (clock
/// skew between the bookie and the brokers that created ledgers; the ledgers that can miss
/// entries were created before the bookie went down, a downtime earlier).
const SKEW_MARGIN_MS: u64 = 5_000;

/// What one refill pass did.
#[derive(Debug, Default)]
pub(crate) struct RefillReport {
    /// Segments whose missing entries were copied back (or found complete).
    pub segments: u64,
    pub copied: Copied,
    pub failures: u64,
}

/// Refills every live bookie whose record is unchecked.
pub(crate) async fn pass(
    meta: &strata_meta::model::MetaClient,
    pool: &Pool,
    ledgers: &[LedgerMetadata],
    live: &std::collections::BTreeSet<BookieId>,
    records: &HashMap<BookieId, DiskRecord>,
) -> RefillReport {
    let mut report = RefillReport::default();
    for (b, rec) in records {
        if rec.checked || !live.contains(b) {
            continue;
        }
        let since = rec.replaced_at_ms.unwrap_or(u64::MAX);
        let mut pending = 0usize;
        let mut failures = 0u64;
        for md in ledgers {
            if md.created_at_ms > since.saturating_add(SKEW_MARGIN_MS) {
                continue;
            }
            let repairable = crate::ledger_md::repairable(md);
            for (seg, s) in md.ensembles.iter().enumerate() {
                let Some(slot) = s.bookies.iter().position(|x| x == b) else {
                    continue;
                };
                if !repairable.contains(&seg) {
                    pending += 1; // the open ledger's current segment: checked once it closes
                    continue;
                }
                match refill_segment(pool, md, seg, slot, b).await {
                    Ok(c) => {
                        report.segments += 1;
                        report.copied.entries += c.entries;
                        report.copied.bytes += c.bytes;
                    }
                    Err(e) => {
                        failures += 1;
                        warn!(ledger = md.ledger_id.0, segment = seg, bookie = %b, error = %e, "refill failed");
                    }
                }
            }
        }
        report.failures += failures;
        if failures == 0 && pending == 0 {
            match bookie_disks::mark_checked(meta, b, &rec.instance).await {
                Ok(_) => {
                    info!(bookie = %b, instance = %rec.instance, "bookie with a new disk checked: every entry it lost is copied back")
                }
                Err(e) => {
                    warn!(bookie = %b, error = %e, "marking the bookie's disk checked failed")
                }
            }
        }
    }
    report
}

/// Copies back to `b` (slot `slot` of segment `seg`) the entries of its write set after the
/// highest entry it stores.
async fn refill_segment(
    pool: &Pool,
    md: &LedgerMetadata,
    seg: usize,
    slot: usize,
    b: &BookieId,
) -> Result<Copied, StorageError> {
    let ledger = md.ledger_id.0;
    let s = &md.ensembles[seg];
    let first = s.first_entry.0;
    let end = match md.ensembles.get(seg + 1) {
        Some(next) => next.first_entry.0.checked_sub(1),
        None => md.last_entry_id.map(|e| e.0),
    };
    let Some(end) = end.filter(|e| *e >= first) else {
        return Ok(Copied::default());
    };
    pool.learn(md).await;
    let target = pool.client(b)?;
    let timeout = pool.timeouts.request;
    let stored =
        match tokio::time::timeout(timeout, target.read_lac(ledger, -2, Duration::ZERO)).await {
            Ok(Ok(r)) => r.last_entry,
            Ok(Err(ClientError::NoLedger(_))) => -1,
            Ok(Err(e)) => return Err(crate::error_map::map_client(ledger, e)),
            Err(_) => {
                return Err(StorageError::Unavailable(format!(
                    "no LAC answer from {b} within {timeout:?}"
                )));
            }
        };
    let from = first.max(u64::try_from(stored + 1).unwrap_or(0));
    let e = s.bookies.len();
    let qw = (md.write_quorum as usize).min(e);
    let entries: Vec<u64> = (from..=end)
        .filter(|x| in_write_set(slot, *x, e, qw))
        .collect();
    if entries.is_empty() {
        return Ok(Copied::default());
    }
    let n = entries.len();
    let c = copy_entries(
        pool,
        ledger,
        &s.bookies,
        qw,
        b,
        &master_key(md),
        &target,
        entries,
    )
    .await?;
    info!(ledger, segment = seg, bookie = %b, from_entry = from, entries = n, bytes = c.bytes, "entries lost with the bookie's disk copied back");
    Ok(c)
}
