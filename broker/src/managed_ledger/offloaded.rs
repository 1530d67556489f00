//! The managed ledger's side of tiered storage: reads of offloaded ledgers (falling back to the
//! bookies while they still hold a copy), committing an offload in the ledger list, recording
//! the deletion of the bookies' copy, and removing objects with the ledgers.

use std::sync::Arc;

use bytes::Bytes;
use strata_meta::model::{LedgerOffload, ManagedLedgerLedger};
use strata_proto::{EntryId, LedgerId};
use tokio::sync::oneshot;
use tracing::warn;

use super::{Cmd, LedgerUpdate, ManagedLedger};
use crate::error::{BrokerError, Result};
use crate::offload::tier::Tier;
use crate::position::Position;
use crate::storage::{LedgerStorage, StorageError};

/// Offloaded ledgers after the one being read whose indexes are fetched ahead.
const WARM_LEDGERS: usize = 2;

impl ManagedLedger {
    /// Reads offloaded ledgers through `tier` from now on (set once).
    pub fn set_tier(&self, tier: Arc<Tier>) {
        let _ = self.tier.set(tier);
    }

    /// The ledger storage (bookies).
    pub fn storage(&self) -> &Arc<dyn LedgerStorage> {
        &self.storage
    }

    /// Bytes of this log held in object storage.
    pub fn offloaded_size(&self) -> u64 {
        self.shared
            .ledgers
            .read()
            .iter()
            .filter_map(|l| l.offload.as_ref().map(|o| o.stored_bytes))
            .sum()
    }

    /// Entries `from..=last` of one ledger (or fewer, from `from` on) from where they are
    /// stored: the object store for an offloaded ledger, else the bookies. A failed or corrupt
    /// object read falls back to the bookies while they still hold the ledger; once they do not,
    /// the error is returned — never wrong bytes.
    pub(super) async fn read_stored(
        &self,
        from: Position,
        last: i64,
        offload: Option<LedgerOffload>,
    ) -> Result<Vec<(Position, Bytes)>> {
        let at = |v: Vec<Bytes>| {
            v.into_iter()
                .enumerate()
                .map(|(i, d)| (Position::new(from.ledger, from.entry + i as i64), d))
                .collect::<Vec<_>>()
        };
        if let Some(off) = offload {
            match self.tier.get() {
                Some(tier) => {
                    match tier
                        .read(
                            &self.name,
                            from.ledger,
                            &off,
                            from.entry as u64,
                            last as u64,
                        )
                        .await
                    {
                        Ok((v, beyond)) if !v.is_empty() => {
                            self.warm_next(tier, from.ledger, beyond).await;
                            return Ok(at(v));
                        }
                        Ok(_) => {}
                        Err(e) if !off.bookies_deleted => {
                            warn!(topic = %self.name, ledger = from.ledger, error = %e, "offloaded read failed; reading from the bookies");
                        }
                        Err(e) => {
                            return Err(StorageError::Unavailable(format!(
                                "offloaded ledger {} of {}: {e}",
                                from.ledger, self.name
                            ))
                            .into());
                        }
                    }
                }
                None if off.bookies_deleted => {
                    return Err(BrokerError::ServiceNotReady(format!(
                        "ledger {} of {} is offloaded and this broker has no offload store configured",
                        from.ledger, self.name
                    )));
                }
                None => {}
            }
        }
        let data = self
            .storage
            .read(
                LedgerId(from.ledger),
                EntryId(from.entry as u64),
                EntryId(last as u64),
            )
            .await?;
        Ok(at(data))
    }

    /// A forward reader of offloaded ledger `ledger` will reach the next ones: the indexes of
    /// the next [`WARM_LEDGERS`] offloaded ledgers are fetched ahead (so the reader does not
    /// stall on an index at a ledger boundary), and the `beyond` blocks of the read-ahead
    /// window past this ledger's end are prefetched from the next ledgers, in order.
    async fn warm_next(&self, tier: &Arc<Tier>, ledger: u64, mut beyond: usize) {
        let next: Vec<(u64, LedgerOffload)> = {
            let ls = self.shared.ledgers.read();
            ls.iter()
                .skip_while(|l| l.ledger_id.0 != ledger)
                .skip(1)
                .take(WARM_LEDGERS)
                .map_while(|l| l.offload.clone().map(|o| (l.ledger_id.0, o)))
                .collect()
        };
        for (id, off) in next {
            beyond = tier.warm(&self.name, id, &off, beyond).await;
        }
    }

    async fn update_ledger(&self, ledger: u64, f: LedgerUpdate) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::UpdateLedger(ledger, f, tx))
            .map_err(|_| BrokerError::ShuttingDown)?;
        rx.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Commits `off` as ledger `ledger`'s offload (CAS on the ledger list). Refused if the ledger
    /// is not closed, already has a committed offload, or `deadline` has passed.
    pub async fn commit_offload(
        &self,
        ledger: u64,
        off: LedgerOffload,
        deadline: std::time::Instant,
    ) -> Result<()> {
        self.update_ledger(
            ledger,
            Box::new(move |l: &mut ManagedLedgerLedger| {
                // checked right before the metadata write: past it, another broker's janitor
                // may already treat the attempt as abandoned
                if std::time::Instant::now() > deadline {
                    return Err(BrokerError::Conflict(format!(
                        "commit of ledger {ledger}'s offload came too late (past its deadline)"
                    )));
                }
                if !l.closed {
                    return Err(BrokerError::Conflict(format!("ledger {ledger} is open")));
                }
                if l.offload.is_some() {
                    return Err(BrokerError::Conflict(format!(
                        "ledger {ledger} is already offloaded"
                    )));
                }
                l.offloaded = true;
                l.offload = Some(off);
                Ok(())
            }),
        )
        .await
    }

    /// Records that the bookies' copy of offloaded ledger `ledger` is deleted.
    pub async fn mark_bookies_deleted(&self, ledger: u64) -> Result<()> {
        self.update_ledger(
            ledger,
            Box::new(|l: &mut ManagedLedgerLedger| {
                if let Some(o) = l.offload.as_mut() {
                    o.bookies_deleted = true;
                }
                Ok(())
            }),
        )
        .await
    }

    /// Deletes the objects of offloaded ledgers among `ledgers` (retention, topic deletion).
    pub(super) async fn delete_offloaded(&self, ledgers: &[ManagedLedgerLedger]) {
        let Some(tier) = self.tier.get() else {
            return;
        };
        for l in ledgers {
            if let Some(o) = &l.offload
                && let Err(e) = tier
                    .delete_objects(&self.name, l.ledger_id.0, &o.offload_id)
                    .await
            {
                warn!(topic = %self.name, ledger = l.ledger_id.0, error = %e, "delete offloaded objects failed; the janitor will");
            }
        }
    }
}
