//! [`GrpcBookie`]: the gRPC client of one bookie behind [`crate::BookieClient`]. Adds are
//! pipelined on one bidirectional stream per client (opened lazily, reopened after a failure);
//! every other call is a unary RPC. Clones share the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use strata_proto::bookie::bookie_client::BookieClient as GrpcClient;
use strata_proto::bookie::{
    AddBatch, AddRequest, DeleteLedgerRequest, ErrorCode, FenceRequest, ReadEntryRequest,
    ReadLacRequest, ReadRangeRequest,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::limits::{MAX_MESSAGE_BYTES, WINDOW_BYTES};
use crate::local::LacResponse;

/// Most adds sent in one message.
const MAX_BATCH_ADDS: usize = 1024;
/// A message stops collecting adds past this many payload bytes.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Adds in flight on one stream; `None` once the stream ended (its adds were answered), so an
/// add that comes later fails at once instead of waiting for an answer nobody sends.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<(), ClientError>>>>>>;

struct AddStream {
    tx: mpsc::Sender<AddRequest>,
    pending: Pending,
}

struct Inner {
    grpc: GrpcClient<Channel>,
    /// The current add stream (fast path: a short sync lock per add).
    stream: Mutex<Option<AddStream>>,
    /// Serializes opening a new stream.
    opening: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
    cancel: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A client of one bookie.
#[derive(Clone)]
pub(crate) struct GrpcBookie {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GrpcBookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBookie").finish_non_exhaustive()
    }
}

impl GrpcBookie {
    fn endpoint(addr: &str) -> Result<tonic::transport::Endpoint, ClientError> {
        Ok(Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .initial_connection_window_size(WINDOW_BYTES * 4)
            .initial_stream_window_size(WINDOW_BYTES))
    }

    /// Connects to the bookie at `addr` (`host:port`); fails if it cannot be reached now.
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        let ch = Self::endpoint(addr)?
            .connect()
            .await
            .map_err(|e| ClientError::Unavailable(format!("connect {addr}: {e}")))?;
        Ok(Self::from_channel(ch))
    }

    /// A client that connects on first use (and reconnects after failures); calls fail with
    /// [`ClientError::Unavailable`] while the bookie cannot be reached. Must be called inside a
    /// Tokio runtime.
    pub fn connect_lazy(addr: &str) -> Result<Self, ClientError> {
        Ok(Self::from_channel(Self::endpoint(addr)?.connect_lazy()))
    }

    /// A client over an existing channel.
    pub fn from_channel(ch: Channel) -> Self {
        let grpc = GrpcClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Self {
            inner: Arc::new(Inner {
                grpc,
                stream: Mutex::new(None),
                opening: tokio::sync::Mutex::new(()),
                next_id: AtomicU64::new(1),
                cancel: CancellationToken::new(),
            }),
        }
    }

    async fn add_stream(&self) -> Result<(mpsc::Sender<AddRequest>, Pending), ClientError> {
        if let Some(s) = self.inner.stream.lock().as_ref()
            && !s.tx.is_closed()
        {
            return Ok((s.tx.clone(), s.pending.clone()));
        }
        let _opening = self.inner.opening.lock().await;
        if let Some(s) = self.inner.stream.lock().as_ref()
            && !s.tx.is_closed()
        {
            return Ok((s.tx.clone(), s.pending.clone()));
        }
        let (tx, rx) = mpsc::channel::<AddRequest>(4096);
        // whatever adds are queued travel together in one message
        let requests = futures::stream::unfold(rx, |mut rx| async move {
            let first = rx.recv().await?;
            let mut bytes = first.payload.len();
            let mut adds = vec![first];
            while adds.len() < MAX_BATCH_ADDS && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(r) => {
                        bytes += r.payload.len();
                        adds.push(r);
                    }
                    Err(_) => break,
                }
            }
            Some((AddBatch { adds }, rx))
        });
        let mut grpc = self.inner.grpc.clone();
        let mut responses = grpc.add_entries(requests).await?.into_inner();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let p = pending.clone();
        let cancel = self.inner.cancel.clone();
        // owned by the client: stops when the client (its last clone) is dropped
        tokio::spawn(async move {
            let reason = loop {
                let msg = tokio::select! {
                    _ = cancel.cancelled() => break "client dropped".to_string(),
                    m = responses.message() => m,
                };
                match msg {
                    Ok(Some(batch)) => {
                        let mut pending = p.lock();
                        let Some(pending) = pending.as_mut() else {
                            continue;
                        };
                        for r in batch.responses {
                            let Some(done) = pending.remove(&r.request_id) else {
                                continue;
                            };
                            let code = ErrorCode::try_from(r.code).unwrap_or(ErrorCode::Internal);
                            let res = if code == ErrorCode::Ok {
                                Ok(())
                            } else {
                                Err(ClientError::from_code(code, r.message))
                            };
                            let _ = done.send(res);
                        }
                    }
                    Ok(None) => break "add stream closed by the bookie".to_string(),
                    Err(s) => break format!("add stream failed: {s}"),
                }
            };
            let drained = p.lock().take().unwrap_or_default();
            for (_, done) in drained {
                let _ = done.send(Err(ClientError::Unavailable(reason.clone())));
            }
        });
        *self.inner.stream.lock() = Some(AddStream {
            tx: tx.clone(),
            pending: pending.clone(),
        });
        Ok((tx, pending))
    }

    /// Adds an entry; a `recovery` add (ledger recovery, re-replication) is accepted by a bookie
    /// on a fenced ledger when the master key matches.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped add may still be written.
    pub async fn add(&self, add: crate::AddRequest) -> Result<(), ClientError> {
        let (tx, pending) = self.add_stream().await?;
        let request_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        let open = match pending.lock().as_mut() {
            Some(p) => {
                p.insert(request_id, done_tx);
                true
            }
            None => false,
        };
        if !open {
            self.forget_stream(&tx);
            return Err(ClientError::Unavailable("add stream closed".into()));
        }
        let req = AddRequest {
            request_id,
            ledger_id: add.ledger,
            entry_id: add.entry,
            master_key: add.master_key,
            lac: add.lac,
            payload: add.payload,
            recovery: add.recovery,
        };
        if tx.send(req).await.is_err() {
            if let Some(p) = pending.lock().as_mut() {
                p.remove(&request_id);
            }
            self.forget_stream(&tx);
            return Err(ClientError::Unavailable("add stream closed".into()));
        }
        done_rx
            .await
            .unwrap_or_else(|_| Err(ClientError::Unavailable("add stream closed".into())))
    }

    /// The stream of `tx` broke: forget it so that the next add opens a new one.
    fn forget_stream(&self, tx: &mpsc::Sender<AddRequest>) {
        let mut g = self.inner.stream.lock();
        if g.as_ref().is_some_and(|s| s.tx.same_channel(tx)) {
            *g = None;
        }
    }

    /// Reads one entry; returns its payload and the bookie's LAC of the ledger.
    pub async fn read_entry(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), ClientError> {
        let r = self
            .inner
            .grpc
            .clone()
            .read_entry(ReadEntryRequest {
                ledger_id: ledger,
                entry_id: entry,
            })
            .await?
            .into_inner();
        Ok((r.payload, r.lac))
    }

    /// Reads entries `first..=last` (may return a prefix, bounded by `max_bytes`; 0 = server default).
    pub async fn read_range(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: u64,
    ) -> Result<Vec<(u64, Bytes)>, ClientError> {
        let r = self
            .inner
            .grpc
            .clone()
            .read_range(ReadRangeRequest {
                ledger_id: ledger,
                first_entry: first,
                last_entry: last,
                max_bytes,
            })
            .await?
            .into_inner();
        Ok(r.entries
            .into_iter()
            .map(|e| (e.entry_id, e.payload))
            .collect())
    }

    /// Reads the LAC, waiting up to `timeout` while it is `<= previous` (long-poll).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacResponse, ClientError> {
        let r = self
            .inner
            .grpc
            .clone()
            .read_lac(ReadLacRequest {
                ledger_id: ledger,
                previous_lac: previous,
                timeout_ms: timeout.as_millis() as u64,
            })
            .await?
            .into_inner();
        Ok(LacResponse {
            lac: r.lac,
            last_entry: r.last_entry,
            fenced: r.fenced,
        })
    }

    /// Fences the ledger on this bookie (durably); returns its LAC facts.
    pub async fn fence(&self, ledger: u64, master_key: Bytes) -> Result<LacResponse, ClientError> {
        let r = self
            .inner
            .grpc
            .clone()
            .fence(FenceRequest {
                ledger_id: ledger,
                master_key,
            })
            .await?
            .into_inner();
        Ok(LacResponse {
            lac: r.lac,
            last_entry: r.last_entry,
            fenced: true,
        })
    }

    /// Deletes the ledger on this bookie.
    pub async fn delete_ledger(&self, ledger: u64) -> Result<(), ClientError> {
        self.inner
            .grpc
            .clone()
            .delete_ledger(DeleteLedgerRequest { ledger_id: ledger })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn add_request() -> crate::AddRequest {
        crate::AddRequest {
            ledger: 1,
            entry: 0,
            master_key: Bytes::from_static(b"k"),
            lac: -1,
            payload: Bytes::from_static(b"p"),
            payload_crc: None,
            recovery: false,
        }
    }

    /// The interleaving of a bookie dying under a writer: the stream's reader has drained the
    /// in-flight map (the stream ended) while its request channel still looks open. An add that
    /// picks up that stream fails at once and forgets it, so that the next add opens a new one.
    #[tokio::test]
    async fn an_add_on_an_ended_stream_fails_at_once() {
        let ch = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let b = GrpcBookie::from_channel(ch);
        let (tx, mut rx) = mpsc::channel::<AddRequest>(4);
        *b.inner.stream.lock() = Some(AddStream {
            tx,
            pending: Arc::new(Mutex::new(None)),
        });
        let r = tokio::time::timeout(Duration::from_secs(10), b.add(add_request()))
            .await
            .expect("an add on an ended stream must not wait for an answer");
        assert!(matches!(r, Err(ClientError::Unavailable(_))), "{r:?}");
        assert!(
            b.inner.stream.lock().is_none(),
            "the ended stream is forgotten"
        );
        assert!(
            rx.try_recv().is_err(),
            "nothing was sent on the ended stream"
        );
    }
}
