//! The bookie as a [`LocalBookie`]: the process's own bookie called directly by the ledger
//! client (`strata standalone`), with the checks, metrics and errors of the gRPC service but no
//! protobuf, HTTP/2 or loopback socket per entry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_bookie_client::{AddDone, AddRequest, ClientError, LacResponse, LocalBookie};
use tokio_util::sync::CancellationToken;

use crate::service::{MAX_LONG_POLL, range_budget};
use crate::storage::Storage;

/// See the module documentation. Made by [`crate::BookieNode::local`].
pub struct LocalHandle {
    pub(crate) storage: Arc<Storage>,
    /// Fires when the bookie stops (ends LAC long-polls).
    pub(crate) cancel: CancellationToken,
}

#[async_trait::async_trait]
impl LocalBookie for LocalHandle {
    async fn add(&self, req: AddRequest) -> Result<(), ClientError> {
        self.storage.add_with(req).await.map_err(ClientError::from)
    }

    fn add_then(&self, req: AddRequest, done: AddDone) {
        self.storage.add_then(req, done);
    }

    async fn read_entry(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), ClientError> {
        self.storage
            .read(ledger, entry)
            .await
            .map_err(ClientError::from)
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
            .map_err(ClientError::from)?;
        Ok(entries)
    }

    async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacResponse, ClientError> {
        let info = tokio::select! {
            i = self.storage.read_lac(ledger, previous, timeout.min(MAX_LONG_POLL)) => i.map_err(ClientError::from)?,
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
            .map_err(ClientError::from)?;
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
        self.storage.delete(ledger).await.map_err(ClientError::from)
    }
}
