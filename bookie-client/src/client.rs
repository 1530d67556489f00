//! [`BookieClient`]: a typed client of one bookie, used by the ledger client and by tests. It
//! speaks gRPC to a bookie elsewhere ([`crate::grpc`]: pipelined adds on one stream, unary
//! calls for the rest), or calls the bookie of the same process directly ([`LocalBookie`]: no
//! protobuf, no HTTP/2, no loopback socket per entry). Clones share the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tonic::transport::Channel;

use crate::add::AddRequest;
use crate::error::ClientError;
use crate::grpc::GrpcBookie;
use crate::local::{LacResponse, LocalBookie};

/// A client of one bookie.
#[derive(Clone)]
pub struct BookieClient {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Grpc(GrpcBookie),
    Local(Arc<dyn LocalBookie>),
}

impl std::fmt::Debug for BookieClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Grpc(_) => "grpc",
            Backend::Local(_) => "local",
        };
        f.debug_struct("BookieClient")
            .field("backend", &kind)
            .finish_non_exhaustive()
    }
}

impl BookieClient {
    /// Connects to the bookie at `addr` (`host:port`); fails if it cannot be reached now.
    pub async fn connect(addr: &str) -> Result<Self, ClientError> {
        Ok(Self::grpc(GrpcBookie::connect(addr).await?))
    }

    /// A client that connects on first use (and reconnects after failures); calls fail with
    /// [`ClientError::Unavailable`] while the bookie cannot be reached. Must be called inside a
    /// Tokio runtime.
    pub fn connect_lazy(addr: &str) -> Result<Self, ClientError> {
        Ok(Self::grpc(GrpcBookie::connect_lazy(addr)?))
    }

    /// A client over an existing channel.
    pub fn from_channel(ch: Channel) -> Self {
        Self::grpc(GrpcBookie::from_channel(ch))
    }

    /// A client of the bookie running in this process.
    pub fn local(bookie: Arc<dyn LocalBookie>) -> Self {
        BookieClient {
            backend: Backend::Local(bookie),
        }
    }

    /// The bookie of this process, when this client calls it directly.
    pub fn as_local(&self) -> Option<&dyn LocalBookie> {
        match &self.backend {
            Backend::Local(l) => Some(l.as_ref()),
            Backend::Grpc(_) => None,
        }
    }

    fn grpc(g: GrpcBookie) -> Self {
        BookieClient {
            backend: Backend::Grpc(g),
        }
    }

    /// Adds an entry; resolves when the bookie made it durable. `lac` is the writer's
    /// last-add-confirmed (-1: none).
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped add may still be written.
    pub async fn add(
        &self,
        ledger: u64,
        entry: u64,
        master_key: Bytes,
        lac: i64,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        self.add_with(ledger, entry, master_key, lac, payload, false)
            .await
    }

    /// [`Self::add`]; a `recovery` add (ledger recovery, re-replication) is accepted by a bookie
    /// that fenced the ledger.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped add may still be written.
    pub async fn add_with(
        &self,
        ledger: u64,
        entry: u64,
        master_key: Bytes,
        lac: i64,
        payload: Bytes,
        recovery: bool,
    ) -> Result<(), ClientError> {
        let req = AddRequest {
            ledger,
            entry,
            master_key,
            lac,
            payload,
            payload_crc: None,
            recovery,
        };
        match &self.backend {
            Backend::Grpc(g) => g.add(req).await,
            Backend::Local(l) => l.add(req).await,
        }
    }

    /// Reads one entry; returns its payload and the bookie's LAC of the ledger.
    pub async fn read_entry(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), ClientError> {
        match &self.backend {
            Backend::Grpc(g) => g.read_entry(ledger, entry).await,
            Backend::Local(l) => l.read_entry(ledger, entry).await,
        }
    }

    /// Reads entries `first..=last` (may return a prefix, bounded by `max_bytes`; 0 = server
    /// default).
    pub async fn read_range(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: u64,
    ) -> Result<Vec<(u64, Bytes)>, ClientError> {
        match &self.backend {
            Backend::Grpc(g) => g.read_range(ledger, first, last, max_bytes).await,
            Backend::Local(l) => l.read_range(ledger, first, last, max_bytes).await,
        }
    }

    /// The LAC of `ledger`, waiting up to `timeout` for it to pass `previous` (long poll).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn read_lac(
        &self,
        ledger: u64,
        previous: i64,
        timeout: Duration,
    ) -> Result<LacResponse, ClientError> {
        match &self.backend {
            Backend::Grpc(g) => g.read_lac(ledger, previous, timeout).await,
            Backend::Local(l) => l.read_lac(ledger, previous, timeout).await,
        }
    }

    /// Fences the ledger on this bookie (durably); returns its LAC facts.
    pub async fn fence(&self, ledger: u64, master_key: Bytes) -> Result<LacResponse, ClientError> {
        match &self.backend {
            Backend::Grpc(g) => g.fence(ledger, master_key).await,
            Backend::Local(l) => l.fence(ledger, master_key).await,
        }
    }

    /// Deletes the ledger on this bookie.
    pub async fn delete_ledger(&self, ledger: u64) -> Result<(), ClientError> {
        match &self.backend {
            Backend::Grpc(g) => g.delete_ledger(ledger).await,
            Backend::Local(l) => l.delete_ledger(ledger).await,
        }
    }
}
