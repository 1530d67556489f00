//! The ledger client's reads and segment updates of ledger metadata.

use strata_meta::model::{EnsembleSegment, LedgerMetadata, LedgerState, MetaClient};
use strata_meta::{MetaError, Stat};
use strata_proto::{BookieId, EntryId, LedgerId};

use crate::error_map::map_meta;
use crate::storage::StorageError;

/// The metadata of `ledger`; `NoSuchLedger` when it has none.
pub(crate) async fn read(
    meta: &MetaClient,
    ledger: u64,
) -> Result<(LedgerMetadata, Stat), StorageError> {
    meta.ledger(LedgerId(ledger))
        .await
        .map_err(map_meta)?
        .ok_or(StorageError::NoSuchLedger(ledger))
}

/// Commits `bookies` as the ensemble from entry `first` on (replacing the last segment when it
/// starts there or later), provided the ledger is still in `state`; otherwise fails with
/// `MetaError::InvalidArgument(why)` and changes nothing. CAS, re-applied on conflict.
pub(crate) async fn commit_segment(
    meta: &MetaClient,
    ledger: u64,
    state: LedgerState,
    why: &'static str,
    first: u64,
    bookies: Vec<BookieId>,
) -> Result<(), MetaError> {
    meta.update_ledger(LedgerId(ledger), move |mut m| {
        if m.state != state {
            return Err(MetaError::InvalidArgument(why.into()));
        }
        match m.ensembles.last_mut() {
            Some(last) if last.first_entry.0 >= first => last.bookies = bookies.clone(),
            _ => m.ensembles.push(EnsembleSegment {
                first_entry: EntryId(first),
                bookies: bookies.clone(),
            }),
        }
        Ok(Some(m))
    })
    .await
    .map(|_| ())
}

/// Indexes of the segments auto-recovery may change: all of a closed ledger, all but the last of
/// an open one (its writer, or its recovery, owns the last).
pub(crate) fn repairable(md: &LedgerMetadata) -> std::ops::Range<usize> {
    let n = md.ensembles.len();
    match md.state {
        LedgerState::Closed => 0..n,
        _ => 0..n.saturating_sub(1),
    }
}
