//! Auto-recovery: restores the replication factor of ledgers whose ensembles name a bookie that
//! has been gone (unregistered) for longer than a grace period. Run on the leader broker only.
//!
//! Every `interval` the ledger metadata is scanned. A bookie named by some ensemble segment but
//! not registered is noted with the time it was first seen missing; once that is older than
//! `grace`, each segment naming it is repaired: closed ledgers fully, open ledgers only in the
//! segments before the last (the writer replaces bookies of its current segment itself). For a
//! segment, a replacement bookie is chosen (writable, registered, not in the segment, another rack
//! when possible, answering), the entries of the segment the dead bookie held (entry `e` is on
//! `ensemble[(e + i) % E]`, `i < Qw`) are copied to it from surviving replicas with recovery adds,
//! and only then is the segment's bookie swapped in the metadata (CAS; re-read and re-applied
//! on conflict, skipped if someone else changed that slot meanwhile).
//!
//! Bookies on object storage ([`crate::bookie_disks`] records a storage URL): their uploaded
//! segments outlive the process and its disk, and the bookie started again under its id and URL
//! (anywhere, even on an empty disk) serves them again; so a gone bookie on object storage is
//! replaced only after `objstore_grace`, not `grace`. A bookie that came back with a new disk
//! keeps its place in the ensembles and gets back only what it lost (`crate::refill`): for a
//! bookie on object storage, the entries that were in its lost journal; nothing of its uploaded
//! segments is copied.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_meta::model::{LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, LedgerId};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bookies::{BookieSource, RegisteredBookies};
use crate::config::Timeouts;
use crate::error_map::map_meta;
use crate::ledger_md::repairable;
use crate::pool::Pool;
use crate::storage::StorageError;
use crate::write_set::{in_write_set, master_key};

/// Auto-recovery settings.
#[derive(Debug, Clone, Copy)]
pub struct AutoRecoveryOptions {
    /// How long a bookie must have been unregistered before its ledgers are re-replicated.
    pub grace: Duration,
    /// How often the ledgers are checked.
    pub interval: Duration,
    /// How long a bookie on object storage must have been unregistered before its ledgers are
    /// re-replicated (its uploaded segments come back with it, even on a new disk).
    pub objstore_grace: Duration,
}

impl Default for AutoRecoveryOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            objstore_grace: Duration::from_secs(30 * 60),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default)]
struct Report {
    segments: u64,
    entries: u64,
    failures: u64,
    /// Segments of bookies with a new disk checked, entries copied back to them.
    refilled_segments: u64,
    refilled_entries: u64,
}

/// Runs until `cancel` fires: every `interval`, finds ledgers whose ensemble segments name a
/// bookie that has been unregistered for longer than `grace`, copies the affected entries from
/// surviving replicas to a replacement bookie (not already in that segment's ensemble), then
/// commits the new ensemble to the ledger metadata (CAS; re-read and retry on conflict). Logs
/// and counts what it did.
pub async fn run(
    meta: MetaClient,
    bookies: Arc<RegisteredBookies>,
    opts: AutoRecoveryOptions,
    cancel: CancellationToken,
) {
    let source: Arc<dyn BookieSource> = bookies.clone();
    let pool = Pool::new(source, Timeouts::default());
    let mut gone: HashMap<BookieId, Instant> = HashMap::new();
    let mut total = Report::default();
    info!(grace = ?opts.grace, interval = ?opts.interval, "auto-recovery started");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(opts.interval) => {}
        }
        let pass = tokio::select! {
            _ = cancel.cancelled() => break,
            r = pass(&meta, &bookies, &pool, &opts, &mut gone) => r,
        };
        match pass {
            Ok(r) => {
                if r.segments > 0 || r.failures > 0 || r.refilled_entries > 0 {
                    total.segments += r.segments;
                    total.entries += r.entries;
                    total.failures += r.failures;
                    info!(
                        segments = r.segments,
                        entries = r.entries,
                        failures = r.failures,
                        refilled_segments = r.refilled_segments,
                        refilled_entries = r.refilled_entries,
                        total_segments = total.segments,
                        total_entries = total.entries,
                        "auto-recovery pass"
                    );
                }
            }
            Err(e) => warn!(error = %e, "auto-recovery pass failed"),
        }
    }
    info!(
        segments = total.segments,
        entries = total.entries,
        "auto-recovery stopped"
    );
}

/// One scan of every ledger.
async fn pass(
    meta: &MetaClient,
    bookies: &RegisteredBookies,
    pool: &Pool,
    opts: &AutoRecoveryOptions,
    gone: &mut HashMap<BookieId, Instant>,
) -> Result<Report, StorageError> {
    let disks = crate::bookie_disks::load(meta).await?;
    let live: BTreeSet<BookieId> = bookies
        .registered()
        .await?
        .into_iter()
        .map(|b| b.bookie_id)
        .collect();
    let prefix = format!("{}/", meta.paths().ledgers());
    let scan = meta.store().scan(&prefix).await.map_err(map_meta)?;
    let mut ledgers = Vec::new();
    for kv in scan.entries {
        match meta.decode::<LedgerMetadata>(&kv.key, &kv.value.value) {
            Ok(md) => ledgers.push(md),
            Err(e) => warn!(key = %kv.key, error = %e, "undecodable ledger metadata"),
        }
    }
    let now = Instant::now();
    let mut named = BTreeSet::new();
    for md in &ledgers {
        for s in repairable(md) {
            named.extend(md.ensembles[s].bookies.iter().cloned());
        }
    }
    gone.retain(|b, _| !live.contains(b) && named.contains(b));
    for b in named.iter().filter(|b| !live.contains(*b)) {
        gone.entry(b.clone()).or_insert(now);
    }
    let dead: BTreeSet<BookieId> = gone
        .iter()
        .filter(|(b, since)| {
            let on_objstore = disks.get(*b).is_some_and(|d| d.storage_url.is_some());
            let grace = if on_objstore {
                opts.objstore_grace
            } else {
                opts.grace
            };
            now.duration_since(**since) >= grace
        })
        .map(|(b, _)| b.clone())
        .collect();
    let mut report = Report::default();
    let refill = crate::refill::pass(meta, pool, &ledgers, &live, &disks).await;
    report.refilled_segments = refill.segments;
    report.refilled_entries = refill.copied.entries;
    report.failures += refill.failures;
    let m = &crate::metrics::METRICS;
    m.autorecovery_refill_entries.inc_by(refill.copied.entries);
    m.autorecovery_bytes.inc_by(refill.copied.bytes);
    m.autorecovery_failures.inc_by(refill.failures);
    if dead.is_empty() {
        return Ok(report);
    }
    for md in ledgers {
        for seg in repairable(&md) {
            for b in md.ensembles[seg].bookies.clone() {
                if !dead.contains(&b) {
                    continue;
                }
                // Re-read: an earlier repair of this ledger changed its metadata.
                let fresh = match meta.ledger(md.ledger_id).await.map_err(map_meta)? {
                    Some((m, _)) => m,
                    None => break,
                };
                match repair(meta, pool, &fresh, seg, &b).await {
                    Ok(Some(n)) => {
                        report.segments += 1;
                        report.entries += n;
                        crate::metrics::METRICS.autorecovery_segments.inc();
                        crate::metrics::METRICS.autorecovery_entries.inc_by(n);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        report.failures += 1;
                        crate::metrics::METRICS.autorecovery_failures.inc();
                        warn!(ledger = md.ledger_id.0, segment = seg, bookie = %b, error = %e, "re-replication failed");
                    }
                }
            }
        }
    }
    Ok(report)
}

/// Replaces `dead` in segment `seg` of `md`: copies its entries to a replacement, then swaps it
/// in the metadata. `Some(entries copied)` when the metadata changed.
#[tracing::instrument(name = "re_replicate", skip_all, fields(ledger = md.ledger_id.0, segment = seg, bookie = %dead))]
async fn repair(
    meta: &MetaClient,
    pool: &Pool,
    md: &LedgerMetadata,
    seg: usize,
    dead: &BookieId,
) -> Result<Option<u64>, StorageError> {
    let ledger = md.ledger_id.0;
    if !repairable(md).contains(&seg) {
        return Ok(None);
    }
    let s = &md.ensembles[seg];
    let Some(slot) = s.bookies.iter().position(|b| b == dead) else {
        return Ok(None);
    };
    let first = s.first_entry.0;
    let end = match md.ensembles.get(seg + 1) {
        Some(next) => next.first_entry.0.checked_sub(1),
        None => md.last_entry_id.map(|e| e.0),
    };
    pool.learn(md).await;
    let Some(r) = pool.replacement(&s.bookies, dead, &BTreeSet::new()).await? else {
        return Err(StorageError::NotEnoughBookies(format!(
            "no bookie to replace {dead} in ledger {ledger} from entry {first}"
        )));
    };
    let e = s.bookies.len();
    let qw = (md.write_quorum as usize).min(e);
    let key = master_key(md);
    let target = pool.client(&r)?;
    let entries: Vec<u64> = match end {
        Some(end) if end >= first => (first..=end)
            .filter(|x| in_write_set(slot, *x, e, qw))
            .collect(),
        _ => Vec::new(),
    };
    let c = crate::copy::copy_entries(pool, ledger, &s.bookies, qw, dead, &key, &target, entries)
        .await?;
    crate::metrics::METRICS.autorecovery_bytes.inc_by(c.bytes);
    let copied = c.entries;
    let seg_first = s.first_entry;
    let (dead_c, r_c) = (dead.clone(), r.clone());
    let changed = meta
        .update_ledger(LedgerId(ledger), move |mut m| {
            let n = m.ensembles.len();
            let closed = m.state == LedgerState::Closed;
            let Some(i) = m.ensembles.iter().position(|x| x.first_entry == seg_first) else {
                return Ok(None);
            };
            if !closed && i + 1 >= n {
                return Ok(None);
            }
            let bookies = &mut m.ensembles[i].bookies;
            if bookies.get(slot) != Some(&dead_c) || bookies.contains(&r_c) {
                return Ok(None);
            }
            bookies[slot] = r_c.clone();
            Ok(Some(m))
        })
        .await
        .map_err(map_meta)?;
    if changed.is_none() {
        return Ok(None);
    }
    info!(ledger, from_entry = first, replaced = %dead, by = %r, entries = copied, "segment re-replicated");
    Ok(Some(copied))
}
