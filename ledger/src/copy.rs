//! Copying entries of one ensemble segment from surviving replicas to a bookie with recovery
//! adds: auto-recovery's re-replication (to a replacement) and its refill (back to a bookie that
//! came back with a new disk).

use bytes::Bytes;
use futures::StreamExt;
use strata_bookie_client::BookieClient;
use strata_proto::BookieId;

use crate::error_map::map_client;
use crate::pool::Pool;
use crate::storage::StorageError;
use crate::write_set::write_set;

/// Entries copied concurrently.
const COPY_CONCURRENCY: usize = 16;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Copied {
    pub entries: u64,
    pub bytes: u64,
}

/// Copies `entries` of `ledger` (segment `ensemble`, Qw `qw`) to `target`, reading each from its
/// write set without `skip`. Fails if any entry could not be copied.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_entries(
    pool: &Pool,
    ledger: u64,
    ensemble: &[BookieId],
    qw: usize,
    skip: &BookieId,
    key: &Bytes,
    target: &BookieClient,
    entries: Vec<u64>,
) -> Result<Copied, StorageError> {
    let timeout = pool.timeouts.request;
    let results: Vec<Result<u64, StorageError>> = futures::stream::iter(entries)
        .map(|x| {
            let sources: Vec<BookieId> = write_set(ensemble, x, qw)
                .into_iter()
                .filter(|b| b != skip)
                .collect();
            let (key, target) = (key.clone(), target.clone());
            async move {
                let data = pool
                    .read_any(ledger, x, &sources, |c| async move {
                        Ok(Some(c.read_entry(ledger, x).await?.0))
                    })
                    .await?;
                let len = data.len() as u64;
                match tokio::time::timeout(timeout, target.add_with(ledger, x, key, -1, data, true))
                    .await
                {
                    Ok(r) => r.map(|_| len).map_err(|e| map_client(ledger, e)),
                    Err(_) => Err(StorageError::Unavailable(format!(
                        "copy of entry {x} timed out"
                    ))),
                }
            }
        })
        .buffered(COPY_CONCURRENCY)
        .collect()
        .await;
    let mut c = Copied::default();
    for r in results {
        c.bytes += r?;
        c.entries += 1;
    }
    Ok(c)
}
