//! Ledger recovery (BookKeeper semantics): a new owner makes sure the previous writer can no
//! longer add, finds the last entry that may have been acknowledged, makes it durable on its full
//! write set, and closes the ledger there.
//!
//! 1. The metadata goes to `IN_RECOVERY` (the old writer's ensemble changes and close then fail).
//! 2. Fence: every bookie of the last ensemble is fenced in parallel (each request bounded by
//!    [`crate::client::Timeouts::request`], so one hung bookie costs at most that, BookKeeper
//!    #1067). Recovery goes on only when every write set has more than Qw - Qa fenced bookies: the
//!    old writer cannot reach an ack quorum any more. Fencing is a real `Fence` request, never a
//!    LAC read (BookKeeper #2614/#2616).
//! 3. Read forward from the highest LAC any bookie reported (and from the first entry of the last
//!    segment: entries before it were confirmed when the segment was made): an entry is present
//!    if any replica returns it; it is absent only when more than Qw - Qa of its write set answer
//!    NO_ENTRY/NO_LEDGER and each of them is trusted: it answered the fence and did not look like
//!    a bookie that lost its data (it knew nothing of a ledger although an acknowledged entry of
//!    the segment is in its stripe, BookKeeper #2612/#2908). When neither can be established the
//!    recovery fails (retryable) rather than truncating the ledger.
//! 4. Every recovered entry is written back to its full write set with recovery adds (accepted
//!    on fenced ledgers when the master key matches; a duplicate is a success). A bookie that
//!    fails there is replaced by a spare and the entries are written again; once they are on the
//!    new ensemble it is committed as a new segment from the first recovered entry (CAS while the
//!    ledger is in recovery). Without a spare at least Qa copies per entry are required.
//! 5. The metadata is closed (CAS) at the last recovered entry.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use strata_bookie_client::{ClientError, LacResponse};
use strata_meta::model::{LedgerMetadata, LedgerState, MetaClient};
use strata_proto::{BookieId, EntryId, LedgerId};
use tracing::{info, warn};

use crate::error_map::{map_client, map_meta};
use crate::ledger_md;
use crate::pool::Pool;
use crate::storage::StorageError;
use crate::write_set::{in_write_set, master_key, write_set};

/// Entries read (and written back) concurrently during recovery.
const RECOVERY_BATCH: u64 = 16;

/// What the replicas say about one entry.
enum Probe {
    Present(Bytes),
    Absent,
    Unknown(String),
}

#[tracing::instrument(name = "ledger_recovery", skip(pool, meta))]
pub(crate) async fn recover(
    pool: &Pool,
    meta: &MetaClient,
    ledger: u64,
) -> Result<Option<u64>, StorageError> {
    let (md, _) = ledger_md::read(meta, ledger).await?;
    if md.state == LedgerState::Closed {
        return Ok(md.last_entry_id.map(|e| e.0));
    }
    meta.update_ledger(LedgerId(ledger), |mut m| {
        if m.state == LedgerState::Open {
            m.state = LedgerState::InRecovery;
            Ok(Some(m))
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(map_meta)?;
    // The last segment as it is now (the writer may have changed it before being stopped).
    let (md, _) = ledger_md::read(meta, ledger).await?;
    if md.state == LedgerState::Closed {
        return Ok(md.last_entry_id.map(|e| e.0));
    }
    pool.learn(&md).await;
    let r = Recovery::new(pool, &md)?;
    let replies = r.fence().await?;
    let max_lac = replies.values().map(|r| r.lac).max().unwrap_or(-1);
    let start = (max_lac + 1).max(r.seg_first as i64) as u64;
    let trusted = r.trusted(&replies, max_lac);
    let recovered = r.read_forward(start, &trusted).await?;
    r.write_back_all(meta, start, &recovered, max_lac).await?;
    crate::metrics::METRICS
        .recovery_entries
        .inc_by(recovered.len() as u64);
    let last = match recovered.last() {
        Some((e, _)) => Some(*e),
        None => start.checked_sub(1),
    };
    let last_entry = last.map(EntryId);
    meta.update_ledger(LedgerId(ledger), |mut m| {
        if m.state == LedgerState::Closed {
            return Ok(None);
        }
        m.state = LedgerState::Closed;
        m.last_entry_id = last_entry;
        Ok(Some(m))
    })
    .await
    .map_err(map_meta)?;
    let (md, _) = ledger_md::read(meta, ledger).await?;
    info!(
        ledger,
        last = ?md.last_entry_id,
        lac = max_lac,
        written_back = recovered.len(),
        "ledger recovered"
    );
    Ok(md.last_entry_id.map(|e| e.0))
}

struct Recovery<'a> {
    pool: &'a Pool,
    ledger: u64,
    key: Bytes,
    bookies: Vec<BookieId>,
    seg_first: u64,
    qw: usize,
    qa: usize,
}

impl<'a> Recovery<'a> {
    fn new(pool: &'a Pool, md: &LedgerMetadata) -> Result<Self, StorageError> {
        let seg = md
            .ensembles
            .last()
            .ok_or(StorageError::NoSuchLedger(md.ledger_id.0))?;
        Ok(Self {
            pool,
            ledger: md.ledger_id.0,
            key: master_key(md),
            bookies: seg.bookies.clone(),
            seg_first: seg.first_entry.0,
            qw: (md.write_quorum as usize).min(seg.bookies.len()).max(1),
            qa: (md.ack_quorum as usize).max(1),
        })
    }

    /// Fences every bookie of the last ensemble (in parallel, each bounded in time); fails
    /// unless every write set has more than Qw - Qa fenced bookies.
    async fn fence(&self) -> Result<HashMap<BookieId, LacResponse>, StorageError> {
        let ledger = self.ledger;
        let timeout = self.pool.timeouts.request;
        let fences = self.bookies.iter().map(|b| {
            let client = self.pool.client(b);
            let key = self.key.clone();
            async move {
                let c = client?;
                match tokio::time::timeout(timeout, c.fence(ledger, key)).await {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(e)) => Err(map_client(ledger, e)),
                    Err(_) => Err(StorageError::Unavailable(format!(
                        "fence of {b} timed out after {timeout:?}"
                    ))),
                }
            }
        });
        let results = futures::future::join_all(fences).await;
        let mut replies = HashMap::new();
        for (b, r) in self.bookies.iter().zip(results) {
            match r {
                Ok(r) => {
                    replies.insert(b.clone(), r);
                }
                Err(e) => warn!(ledger, bookie = %b, error = %e, "fence failed"),
            }
        }
        let e = self.bookies.len();
        let need = self.qw - self.qa.min(self.qw) + 1;
        for first in 0..e as u64 {
            let fenced = write_set(&self.bookies, first, self.qw)
                .iter()
                .filter(|b| replies.contains_key(*b))
                .count();
            if fenced < need {
                return Err(StorageError::Unavailable(format!(
                    "ledger {ledger}: fenced {} of {e} bookies, a write set has only {fenced} \
                     fenced (need {need}); the old writer could still reach an ack quorum",
                    replies.len()
                )));
            }
        }
        Ok(replies)
    }

    /// Bookies whose NO_ENTRY answers count as evidence of absence: fenced, and not looking like
    /// a bookie that lost its data (knowing nothing of the ledger although an acknowledged entry
    /// of the last segment, at or below the highest LAC, is in its stripe).
    fn trusted(&self, replies: &HashMap<BookieId, LacResponse>, max_lac: i64) -> Vec<bool> {
        let e = self.bookies.len();
        self.bookies
            .iter()
            .enumerate()
            .map(|(slot, b)| {
                let Some(r) = replies.get(b) else {
                    return false;
                };
                let knew_nothing = r.last_entry < 0 && r.lac < 0;
                let should_hold = max_lac >= self.seg_first as i64
                    && (self.seg_first..=(max_lac as u64).min(self.seg_first + e as u64))
                        .any(|x| in_write_set(slot, x, e, self.qw));
                if knew_nothing && should_hold {
                    warn!(
                        ledger = self.ledger,
                        bookie = %b,
                        "bookie knows nothing of a ledger it holds acknowledged entries of (data loss?): its NO_ENTRY answers are not trusted"
                    );
                    return false;
                }
                true
            })
            .collect()
    }

    /// Reads forward from `start` until the first absent entry; the entries found.
    async fn read_forward(
        &self,
        start: u64,
        trusted: &[bool],
    ) -> Result<Vec<(u64, Bytes)>, StorageError> {
        let mut out = Vec::new();
        let mut from = start;
        loop {
            let probes: Vec<Probe> = futures::stream::iter(from..from + RECOVERY_BATCH)
                .map(|e| self.probe(e, trusted))
                .buffered(RECOVERY_BATCH as usize)
                .collect()
                .await;
            for (i, p) in probes.into_iter().enumerate() {
                let e = from + i as u64;
                match p {
                    Probe::Present(d) => out.push((e, d)),
                    Probe::Absent => return Ok(out),
                    Probe::Unknown(why) => {
                        return Err(StorageError::Unavailable(format!(
                            "ledger {}: cannot tell whether entry {e} was acknowledged: {why}",
                            self.ledger
                        )));
                    }
                }
            }
            from += RECOVERY_BATCH;
        }
    }

    /// Asks the whole write set of `entry` at once; decides as soon as the answers allow.
    async fn probe(&self, entry: u64, trusted: &[bool]) -> Probe {
        let e = self.bookies.len();
        let ledger = self.ledger;
        let timeout = self.pool.timeouts.request;
        let mut inflight = FuturesUnordered::new();
        for (slot, b) in self.bookies.iter().enumerate() {
            if !in_write_set(slot, entry, e, self.qw) {
                continue;
            }
            let client = self.pool.client(b);
            let t = trusted.get(slot).copied().unwrap_or(false);
            inflight.push(async move {
                let r = match client {
                    Ok(c) => match tokio::time::timeout(timeout, c.read_entry(ledger, entry)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(ClientError::Unavailable("read timed out".into())),
                    },
                    Err(e) => Err(ClientError::Unavailable(e.to_string())),
                };
                (t, r)
            });
        }
        let need_absent = self.qw - self.qa.min(self.qw) + 1;
        let mut absent = 0;
        let mut why = String::new();
        while let Some((t, r)) = inflight.next().await {
            match r {
                Ok((data, _)) => return Probe::Present(data),
                Err(ClientError::NoEntry(_) | ClientError::NoLedger(_)) if t => {
                    absent += 1;
                    if absent >= need_absent {
                        return Probe::Absent;
                    }
                }
                Err(ClientError::NoEntry(_) | ClientError::NoLedger(_)) => {
                    why = "a NO_ENTRY answer from an untrusted bookie".into();
                }
                Err(e) => why = e.to_string(),
            }
        }
        Probe::Unknown(format!(
            "{absent} trusted NO_ENTRY answers of {need_absent} needed; last error: {why}"
        ))
    }

    /// Writes every recovered entry to its full write set (recovery adds). A bookie that fails
    /// is replaced (when a spare exists) in a new segment from `start` committed to the metadata
    /// (CAS, while the ledger is in recovery), and the entries are written again; in the end each
    /// needs at least Qa copies.
    async fn write_back_all(
        &self,
        meta: &MetaClient,
        start: u64,
        entries: &[(u64, Bytes)],
        lac: i64,
    ) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ledger = self.ledger;
        let mut ensemble = self.bookies.clone();
        let mut avoid = BTreeSet::new();
        let mut complete = false;
        for _ in 0..=self.bookies.len() {
            let failed = self.write_back(&ensemble, entries, lac).await;
            if failed.is_empty() {
                complete = true;
                break;
            }
            avoid.extend(failed.iter().cloned());
            let mut changed = false;
            for f in &failed {
                let Some(idx) = ensemble.iter().position(|b| b == f) else {
                    continue;
                };
                match self.pool.replacement(&ensemble, f, &avoid).await? {
                    Some(r) => {
                        info!(ledger, replaced = %f, by = %r, from_entry = start, "recovery ensemble change");
                        ensemble[idx] = r;
                        changed = true;
                    }
                    None => {
                        warn!(ledger, bookie = %f, "no bookie to replace a failed bookie during recovery")
                    }
                }
            }
            if !changed {
                break;
            }
        }
        if !complete {
            // No (more) spares: every entry needs an ack quorum of copies.
            let qa = self.qa;
            let short: Vec<u64> = futures::stream::iter(entries.to_vec())
                .map(|(entry, _)| {
                    let ensemble = &ensemble;
                    async move { (entry, self.copies(ensemble, entry).await) }
                })
                .buffered(RECOVERY_BATCH as usize)
                .filter_map(|(e, n)| async move { (n < qa).then_some(e) })
                .collect()
                .await;
            if let Some(e) = short.first() {
                return Err(StorageError::Unavailable(format!(
                    "ledger {ledger}: entry {e} could not be written back to an ack quorum ({qa})"
                )));
            }
        }
        if ensemble == self.bookies {
            return Ok(());
        }
        // The recovered entries are on the new ensemble: commit it from the first of them.
        let why = "ledger no longer in recovery";
        let state = LedgerState::InRecovery;
        ledger_md::commit_segment(meta, ledger, state, why, start, ensemble)
            .await
            .map_err(map_meta)
    }

    /// How many bookies of `entry`'s write set in `ensemble` hold it.
    async fn copies(&self, ensemble: &[BookieId], entry: u64) -> usize {
        let timeout = self.pool.timeouts.request;
        let reads = write_set(ensemble, entry, self.qw).into_iter().map(|b| {
            let client = self.pool.client(&b);
            async move {
                let Ok(c) = client else { return false };
                matches!(
                    tokio::time::timeout(timeout, c.read_entry(self.ledger, entry)).await,
                    Ok(Ok(_))
                )
            }
        });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Writes `entries` to their write sets in `ensemble`; the bookies that failed a write.
    async fn write_back(
        &self,
        ensemble: &[BookieId],
        entries: &[(u64, Bytes)],
        lac: i64,
    ) -> BTreeSet<BookieId> {
        let failed: Vec<Vec<BookieId>> = futures::stream::iter(entries.to_vec())
            .map(|(entry, data)| self.write_entry(ensemble, entry, data, lac))
            .buffered(RECOVERY_BATCH as usize)
            .collect()
            .await;
        failed.into_iter().flatten().collect()
    }

    /// Writes one entry to its write set in `ensemble`; the bookies that failed.
    async fn write_entry(
        &self,
        ensemble: &[BookieId],
        entry: u64,
        data: Bytes,
        lac: i64,
    ) -> Vec<BookieId> {
        let ledger = self.ledger;
        let timeout = self.pool.timeouts.request;
        let ws = write_set(ensemble, entry, self.qw);
        let writes = ws.iter().map(|b| {
            let client = self.pool.client(b);
            let (key, data) = (self.key.clone(), data.clone());
            async move {
                let c = client?;
                match tokio::time::timeout(timeout, c.add_with(ledger, entry, key, lac, data, true))
                    .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(map_client(ledger, e)),
                    Err(_) => Err(StorageError::Unavailable("recovery add timed out".into())),
                }
            }
        });
        let results = futures::future::join_all(writes).await;
        let mut failed = Vec::new();
        for (b, r) in ws.into_iter().zip(results) {
            if let Err(e) = r {
                warn!(ledger, entry, bookie = %b, error = %e, "recovery add failed");
                failed.push(b);
            }
        }
        failed
    }
}
