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

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use strata_meta::model::{LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, LedgerId};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bookies::{BookieSource, RegisteredBookies};
use crate::config::Timeouts;
use crate::error_map::{map_client, map_meta};
use crate::pool::Pool;
use crate::storage::StorageError;
use crate::write_set::{in_write_set, master_key, write_set};

/// Auto-recovery settings.
#[derive(Debug, Clone, Copy)]
pub struct AutoRecoveryOptions {
    /// How long a bookie must have been unregistered before its ledgers are re-replicated.
    pub grace: Duration,
    /// How often the ledgers are checked.
    pub interval: Duration,
}

impl Default for AutoRecoveryOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            interval: Duration::from_secs(5),
        }
    }
}

/// Entries copied concurrently.
const COPY_CONCURRENCY: usize = 16;

/// What one pass did.
#[derive(Debug, Default)]
struct Report {
    segments: u64,
    entries: u64,
    failures: u64,
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
            r = pass(&meta, &bookies, &pool, opts.grace, &mut gone) => r,
        };
        match pass {
            Ok(r) => {
                if r.segments > 0 || r.failures > 0 {
                    total.segments += r.segments;
                    total.entries += r.entries;
                    total.failures += r.failures;
                    info!(
                        segments = r.segments,
                        entries = r.entries,
                        failures = r.failures,
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
    grace: Duration,
    gone: &mut HashMap<BookieId, Instant>,
) -> Result<Report, StorageError> {
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
        .filter(|(_, since)| now.duration_since(**since) >= grace)
        .map(|(b, _)| b.clone())
        .collect();
    let mut report = Report::default();
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

/// Indexes of the segments auto-recovery may change: all of a closed ledger, all but the last of
/// an open one (its writer, or its recovery, owns the last).
fn repairable(md: &LedgerMetadata) -> std::ops::Range<usize> {
    let n = md.ensembles.len();
    match md.state {
        LedgerState::Closed => 0..n,
        _ => 0..n.saturating_sub(1),
    }
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
    let timeout = pool.timeouts.request;
    let entries: Vec<u64> = match end {
        Some(end) if end >= first => (first..=end)
            .filter(|x| in_write_set(slot, *x, e, qw))
            .collect(),
        _ => Vec::new(),
    };
    let copied = entries.len() as u64;
    let results: Vec<Result<(), StorageError>> = futures::stream::iter(entries)
        .map(|x| {
            let sources: Vec<BookieId> = write_set(&s.bookies, x, qw)
                .into_iter()
                .filter(|b| b != dead)
                .collect();
            let (key, target) = (key.clone(), target.clone());
            async move {
                let data = pool
                    .read_any(ledger, x, &sources, |c| async move {
                        Ok(Some(c.read_entry(ledger, x).await?.0))
                    })
                    .await?;
                match tokio::time::timeout(timeout, target.add_with(ledger, x, key, -1, data, true))
                    .await
                {
                    Ok(r) => r.map_err(|e| map_client(ledger, e)),
                    Err(_) => Err(StorageError::Unavailable(format!(
                        "copy of entry {x} timed out"
                    ))),
                }
            }
        })
        .buffered(COPY_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<(), StorageError>>()?;
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
