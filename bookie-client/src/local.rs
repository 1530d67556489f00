//! [`LocalBookie`]: a bookie reached without the network — the bookie of the same process
//! (`strata standalone`), called directly instead of through gRPC over loopback. Its methods
//! are those of [`crate::BookieClient`], with the same meanings and errors.

use std::time::Duration;

use bytes::Bytes;

use crate::add::AddRequest;
use crate::add_done::AddDone;
use crate::error::ClientError;

/// LAC facts returned by `read_lac` and `fence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LacResponse {
    /// Last-add-confirmed known to the bookie (-1: none).
    pub lac: i64,
    /// Highest entry stored (-1: none).
    pub last_entry: i64,
    /// Whether the ledger is fenced (always false from `fence`'s point of view before it).
    pub fenced: bool,
}

/// See the module documentation.
#[async_trait::async_trait]
pub trait LocalBookie: Send + Sync + 'static {
    /// Adds an entry (a `recovery` add is accepted on a fenced ledger); resolves when durable.
    async fn add(&self, req: AddRequest) -> Result<(), ClientError>;

    /// [`Self::add`] without a future: `done` receives the outcome, normally on the bookie's
    /// applier thread right after the sync (so it must be short and must not block). Must be
    /// called inside a Tokio runtime.
    fn add_then(&self, req: AddRequest, done: AddDone);

    /// Reads one entry: its payload and the bookie's LAC of the ledger.
    async fn read_entry(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), ClientError>;

    /// Reads entries `first..=last` up to about `max_bytes` (0: the bookie's default).
    async fn read_range(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: u64,
    ) -> Result<Vec<(u64, Bytes)>, ClientError>;

    /// The LAC, waiting up to `timeout` for it to pass `previous`.
    async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacResponse, ClientError>;

    /// Fences the ledger.
    async fn fence(&self, ledger: u64, master_key: Bytes) -> Result<LacResponse, ClientError>;

    /// Deletes the ledger.
    async fn delete_ledger(&self, ledger: u64) -> Result<(), ClientError>;
}
