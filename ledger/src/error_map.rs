//! Bookie-client and metadata errors as [`StorageError`]s.

use strata_bookie_client::ClientError;

use crate::storage::StorageError;

pub(crate) fn map_client(ledger: u64, e: ClientError) -> StorageError {
    match e {
        ClientError::Fenced(_) => StorageError::Fenced(ledger),
        ClientError::NoLedger(_) => StorageError::NoSuchLedger(ledger),
        ClientError::NoEntry(m) => StorageError::Other(format!("no such entry: {m}")),
        e if e.is_retryable() => StorageError::Unavailable(e.to_string()),
        e => StorageError::Other(e.to_string()),
    }
}

pub(crate) fn map_meta(e: strata_meta::MetaError) -> StorageError {
    if e.is_retryable() {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Other(e.to_string())
    }
}
