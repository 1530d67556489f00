//! The gRPC service: pipelined adds on a bidirectional stream, unary reads, LAC long-poll, fence and
//! delete. Errors of unary calls carry an `ErrorDetail` (see [`crate::error::code_to_status`]).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use strata_proto::bookie::bookie_server::Bookie;
use strata_proto::bookie::{
    AddBatch, AddRequest, AddResponse, AddResponseBatch, DeleteLedgerRequest, DeleteLedgerResponse,
    Entry, ErrorCode, FenceRequest, FenceResponse, ReadEntryRequest, ReadEntryResponse,
    ReadLacRequest, ReadLacResponse, ReadRangeRequest, ReadRangeResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::storage::Storage;

/// Most adds in flight on one stream; the stream is not read further until some complete.
pub const MAX_INFLIGHT_PER_STREAM: usize = 8192;
/// Most add responses sent in one message.
pub const MAX_RESPONSE_BATCH: usize = 1024;
/// Longest LAC long-poll.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(60);
/// Default byte budget of a range read.
pub const DEFAULT_RANGE_BYTES: usize = 4 << 20;
/// Largest gRPC message (entries up to 16 MiB plus headers).
pub use strata_bookie_client::limits::MAX_MESSAGE_BYTES;

/// The bookie's gRPC service.
#[derive(Clone)]
pub struct BookieService {
    storage: Arc<Storage>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl BookieService {
    /// A service over `storage`; stream tasks are spawned on `tracker` and stop when `cancel` fires.
    pub fn new(storage: Arc<Storage>, tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self {
            storage,
            tracker,
            cancel,
        }
    }
}

async fn add_one(storage: Arc<Storage>, req: AddRequest) -> AddResponse {
    let add = strata_bookie_client::AddRequest {
        ledger: req.ledger_id,
        entry: req.entry_id,
        master_key: req.master_key,
        lac: req.lac,
        payload: req.payload,
        payload_crc: None,
        recovery: req.recovery,
    };
    let (code, message) = match storage.add_with(add).await {
        Ok(()) => (ErrorCode::Ok, String::new()),
        Err(e) => (e.code(), e.to_string()),
    };
    AddResponse {
        request_id: req.request_id,
        ledger_id: req.ledger_id,
        entry_id: req.entry_id,
        code: code as i32,
        message,
    }
}

/// The byte budget of a range read asked for `max_bytes` (0: the default).
pub(crate) fn range_budget(max_bytes: u64) -> usize {
    match max_bytes {
        0 => DEFAULT_RANGE_BYTES,
        n => (n as usize).min(MAX_MESSAGE_BYTES / 2),
    }
}

#[tonic::async_trait]
impl Bookie for BookieService {
    type AddEntriesStream = ReceiverStream<Result<AddResponseBatch, Status>>;

    async fn add_entries(
        &self,
        request: Request<Streaming<AddBatch>>,
    ) -> Result<Response<Self::AddEntriesStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let storage = self.storage.clone();
        let cancel = self.cancel.clone();
        let span = tracing::info_span!("add_stream", peer = ?peer);
        self.tracker.spawn(
            async move {
                let mut inflight = FuturesUnordered::new();
                let mut inbound_done = false;
                loop {
                    if inbound_done && inflight.is_empty() {
                        break; // the client closed its side and every add was answered
                    }
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        // the client went away: nobody reads the answers any more
                        _ = tx.closed() => break,
                        Some(first) = inflight.next(), if !inflight.is_empty() => {
                            // send every completion that is ready now in one message; the next
                            // select polls `inflight` again with the task's waker before sleeping
                            let mut responses = vec![first];
                            while responses.len() < MAX_RESPONSE_BATCH {
                                match inflight.next().now_or_never() {
                                    Some(Some(r)) => responses.push(r),
                                    _ => break,
                                }
                            }
                            if tx.send(Ok(AddResponseBatch { responses })).await.is_err() {
                                break;
                            }
                        }
                        msg = inbound.message(), if !inbound_done && inflight.len() < MAX_INFLIGHT_PER_STREAM => {
                            match msg {
                                Ok(Some(batch)) => {
                                    for req in batch.adds {
                                        inflight.push(add_one(storage.clone(), req));
                                    }
                                }
                                Ok(None) => inbound_done = true,
                                Err(status) => {
                                    tracing::debug!(%status, "add stream ended with an error");
                                    inbound_done = true;
                                }
                            }
                        }
                        else => break,
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ledger = request.get_ref().ledger_id, entry = request.get_ref().entry_id))]
    async fn read_entry(
        &self,
        request: Request<ReadEntryRequest>,
    ) -> Result<Response<ReadEntryResponse>, Status> {
        let r = request.into_inner();
        let (payload, lac) = self
            .storage
            .read(r.ledger_id, r.entry_id)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(ReadEntryResponse {
            ledger_id: r.ledger_id,
            entry_id: r.entry_id,
            payload,
            lac,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ledger = request.get_ref().ledger_id))]
    async fn read_range(
        &self,
        request: Request<ReadRangeRequest>,
    ) -> Result<Response<ReadRangeResponse>, Status> {
        let r = request.into_inner();
        if r.last_entry < r.first_entry {
            return Err(
                crate::error::BookieError::Invalid("last_entry < first_entry".into()).to_status(),
            );
        }
        let max = range_budget(r.max_bytes);
        let (entries, lac) = self
            .storage
            .read_many(r.ledger_id, r.first_entry, r.last_entry, max)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(ReadRangeResponse {
            ledger_id: r.ledger_id,
            entries: entries
                .into_iter()
                .map(|(entry_id, payload)| Entry { entry_id, payload })
                .collect(),
            lac,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ledger = request.get_ref().ledger_id))]
    async fn read_lac(
        &self,
        request: Request<ReadLacRequest>,
    ) -> Result<Response<ReadLacResponse>, Status> {
        let r = request.into_inner();
        let timeout = Duration::from_millis(r.timeout_ms).min(MAX_LONG_POLL);
        let info = tokio::select! {
            i = self.storage.read_lac(r.ledger_id, r.previous_lac, timeout) => i.map_err(|e| e.to_status())?,
            _ = self.cancel.cancelled() => return Err(crate::error::BookieError::ShuttingDown.to_status()),
        };
        Ok(Response::new(ReadLacResponse {
            ledger_id: r.ledger_id,
            lac: info.lac,
            last_entry: info.last_entry,
            fenced: info.fenced,
        }))
    }

    #[tracing::instrument(skip_all, fields(ledger = request.get_ref().ledger_id))]
    async fn fence(
        &self,
        request: Request<FenceRequest>,
    ) -> Result<Response<FenceResponse>, Status> {
        let r = request.into_inner();
        let info = self
            .storage
            .fence(r.ledger_id, r.master_key)
            .await
            .map_err(|e| e.to_status())?;
        tracing::info!(
            ledger = r.ledger_id,
            lac = info.lac,
            last_entry = info.last_entry,
            "ledger fenced"
        );
        Ok(Response::new(FenceResponse {
            ledger_id: r.ledger_id,
            lac: info.lac,
            last_entry: info.last_entry,
        }))
    }

    #[tracing::instrument(skip_all, fields(ledger = request.get_ref().ledger_id))]
    async fn delete_ledger(
        &self,
        request: Request<DeleteLedgerRequest>,
    ) -> Result<Response<DeleteLedgerResponse>, Status> {
        let r = request.into_inner();
        self.storage
            .delete(r.ledger_id)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(DeleteLedgerResponse {}))
    }
}
