//! Where bookies come from: [`BookieSource`], with a fixed list ([`StaticBookies`]), the
//! process's own bookie ([`InProcessBookie`], standalone) and the metadata store's registry ([`RegisteredBookies`], cluster mode).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use strata_bookie_client::BookieClient;
use strata_meta::model::{BookieInfo, MetaClient};
use strata_proto::BookieId;
use tracing::warn;

use crate::error_map::map_meta;
use crate::storage::StorageError;

/// Where bookies come from.
#[async_trait]
pub trait BookieSource: Send + Sync + 'static {
    /// Writable bookies available now.
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError>;
    /// The gRPC `host:port` of a bookie (its id unless the source maps ids to addresses).
    fn address(&self, id: &BookieId) -> String {
        id.0.clone()
    }
    /// The rack (failure domain) a bookie declared, if any.
    fn rack(&self, _id: &BookieId) -> Option<String> {
        None
    }
    /// Makes sure [`Self::address`] knows `ids` if it can (e.g. refreshes a registry cache).
    async fn learn(&self, _ids: &[BookieId]) {}
    /// Those of `ids` known to be gone now (e.g. no longer registered).
    async fn gone(&self, _ids: &[BookieId]) -> Vec<BookieId> {
        Vec::new()
    }
    /// A client of `id` when that bookie runs in this process (called directly, no network).
    fn local(&self, _id: &BookieId) -> Option<BookieClient> {
        None
    }
}

/// The bookie of this process (standalone), reached by direct calls: its ledgers name it by a
/// stable id, and no socket, protobuf or HTTP/2 stands between the ledger client and its journal.
pub struct InProcessBookie {
    /// Its stable id.
    pub id: BookieId,
    /// A client calling it directly ([`BookieClient::local`]).
    pub client: BookieClient,
}

#[async_trait]
impl BookieSource for InProcessBookie {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        Ok(vec![self.id.clone()])
    }
    fn address(&self, id: &BookieId) -> String {
        format!("in-process:{}", id.0)
    }
    fn local(&self, id: &BookieId) -> Option<BookieClient> {
        (*id == self.id).then(|| self.client.clone())
    }
}

/// A fixed set of bookies with stable ids mapped to their current addresses (standalone: the
/// in-process bookie listens on a new port at each start, its id stays the same).
pub struct StaticBookies(pub Vec<(BookieId, String)>);

#[async_trait]
impl BookieSource for StaticBookies {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        Ok(self.0.iter().map(|(id, _)| id.clone()).collect())
    }
    fn address(&self, id: &BookieId) -> String {
        self.0
            .iter()
            .find(|(b, _)| b == id)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| id.0.clone())
    }
}

/// Bookies registered in the metadata store (cluster mode): writable ones are offered for new
/// ensembles; every registered one can be addressed (its advertised gRPC address), and the last
/// known address of one that left is remembered.
pub struct RegisteredBookies {
    meta: MetaClient,
    known: Mutex<HashMap<BookieId, (String, Option<String>)>>,
    /// Registered at the last read.
    live: Mutex<BTreeSet<BookieId>>,
    /// When the registry was last read (unknown ids trigger at most one read a second).
    refreshed: Mutex<Option<std::time::Instant>>,
}

impl RegisteredBookies {
    /// Bookies from `meta`'s registry.
    pub fn new(meta: MetaClient) -> Self {
        Self {
            meta,
            known: Mutex::new(HashMap::new()),
            live: Mutex::new(BTreeSet::new()),
            refreshed: Mutex::new(None),
        }
    }

    /// Every registered bookie now (read-only ones too); refreshes the addresses and racks.
    pub async fn registered(&self) -> Result<Vec<BookieInfo>, StorageError> {
        let all = self.meta.bookies().await.map_err(map_meta)?;
        *self.refreshed.lock() = Some(std::time::Instant::now());
        *self.live.lock() = all.iter().map(|b| b.bookie_id.clone()).collect();
        let mut known = self.known.lock();
        for b in &all {
            known.insert(b.bookie_id.clone(), (b.address.clone(), b.rack.clone()));
        }
        Ok(all)
    }
}

#[async_trait]
impl BookieSource for RegisteredBookies {
    async fn bookies(&self) -> Result<Vec<BookieId>, StorageError> {
        let mut out: Vec<BookieId> = self
            .registered()
            .await?
            .into_iter()
            .filter(|b| !b.read_only)
            .map(|b| b.bookie_id)
            .collect();
        out.sort();
        Ok(out)
    }
    fn address(&self, id: &BookieId) -> String {
        self.known
            .lock()
            .get(id)
            .map(|(a, _)| a.clone())
            .unwrap_or_else(|| id.0.clone())
    }
    fn rack(&self, id: &BookieId) -> Option<String> {
        self.known.lock().get(id).and_then(|(_, r)| r.clone())
    }
    async fn learn(&self, ids: &[BookieId]) {
        let unknown = {
            let known = self.known.lock();
            ids.iter().any(|b| !known.contains_key(b))
        };
        let recent = self
            .refreshed
            .lock()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if unknown
            && !recent
            && let Err(e) = self.registered().await
        {
            warn!(error = %e, "cannot read the bookie registry");
        }
    }
    async fn gone(&self, ids: &[BookieId]) -> Vec<BookieId> {
        let recent = self
            .refreshed
            .lock()
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        if !recent && self.registered().await.is_err() {
            // The registry cannot be read (metadata outage): nothing is known to be gone.
            return Vec::new();
        }
        let live = self.live.lock();
        ids.iter().filter(|b| !live.contains(*b)).cloned().collect()
    }
}
