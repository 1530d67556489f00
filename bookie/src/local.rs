//! The bookie as a [`LocalBookie`]: the process's own bookie called directly by the ledger
//! client (`strata standalone`), with the checks, metrics and errors of the gRPC service but no
//! protobuf, HTTP/2 or loopback socket per entry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_bookie_client::{AddDone, ClientError, LacResponse, LocalBookie};
use tokio_util::sync::CancellationToken;

use crate::error::BookieError;
use crate::metrics::Metrics;
use crate::service::{MAX_LONG_POLL, add_counted, count_add, range_budget};
use crate::storage::Storage;

/// See the module documentation. Made by [`crate::BookieNode::local`].
pub struct LocalHandle {
    pub(crate) storage: Arc<Storage>,
    pub(crate) metrics: Arc<Metrics>,
    /// Fires when the bookie stops (ends LAC long-polls).
    pub(crate) cancel: CancellationToken,
}

fn client_error(e: BookieError) -> ClientError {
    ClientError::from_code(e.code(), e.to_string())
}

#[async_trait::async_trait]
impl LocalBookie for LocalHandle {
    async fn add(
        &self,
        ledger: u64,
        entry: u64,
        master_key: Bytes,
        lac: i64,
        payload: Bytes,
        recovery: bool,
    ) -> Result<(), ClientError> {
        add_counted(
            &self.storage,
            &self.metrics,
            ledger,
            entry,
            master_key,
            lac,
            payload,
            recovery,
        )
        .await
        .map_err(client_error)
    }

    fn add_then(
        &self,
        ledger: u64,
        entry: u64,
        master_key: Bytes,
        lac: i64,
        payload: Bytes,
        recovery: bool,
        done: AddDone,
    ) {
        let metrics = self.metrics.clone();
        let (start, len) = (Instant::now(), payload.len() as u64);
        let counted = Box::new(move |r: Result<(), BookieError>| {
            count_add(&metrics, start, len, ledger, entry, &r);
            done(r.map_err(client_error))
        });
        let s = &self.storage;
        s.add_then(ledger, entry, master_key, lac, payload, recovery, counted);
    }

    async fn read_entry(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), ClientError> {
        self.storage.read(ledger, entry).await.map_err(client_error)
    }

    async fn read_range(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: u64,
    ) -> Result<Vec<(u64, Bytes)>, ClientError> {
        if last < first {
            return Err(ClientError::Invalid("last_entry < first_entry".into()));
        }
        let (entries, _lac) = self
            .storage
            .read_many(ledger, first, last, range_budget(max_bytes))
            .await
            .map_err(client_error)?;
        Ok(entries)
    }

    async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacResponse, ClientError> {
        let info = tokio::select! {
            i = self.storage.read_lac(ledger, previous, timeout.min(MAX_LONG_POLL)) => i.map_err(client_error)?,
            _ = self.cancel.cancelled() => return Err(ClientError::ShuttingDown),
        };
        Ok(LacResponse {
            lac: info.lac,
            last_entry: info.last_entry,
            fenced: info.fenced,
        })
    }

    async fn fence(&self, ledger: u64, master_key: Bytes) -> Result<LacResponse, ClientError> {
        let info = self
            .storage
            .fence(ledger, master_key)
            .await
            .map_err(client_error)?;
        tracing::info!(
            ledger,
            lac = info.lac,
            last_entry = info.last_entry,
            "ledger fenced"
        );
        Ok(LacResponse {
            lac: info.lac,
            last_entry: info.last_entry,
            fenced: true,
        })
    }

    async fn delete_ledger(&self, ledger: u64) -> Result<(), ClientError> {
        self.storage.delete(ledger).await.map_err(client_error)
    }
}
