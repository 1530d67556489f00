//! [`Pool`]: clients of the bookies of a source, replacement picking and replica reads.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use parking_lot::Mutex;
use strata_bookie_client::{BookieClient, ClientError};
use strata_meta::model::LedgerMetadata;
use strata_proto::BookieId;
use tracing::warn;

use crate::bookies::BookieSource;
use crate::config::Timeouts;
use crate::error_map::map_client;
use crate::placement;
use crate::storage::StorageError;

/// Clients of the bookies of a source, by id (lazy connections: never blocks, reconnects;
/// replaced when the source maps the id to a new address).
pub(crate) struct Pool {
    pub(crate) source: Arc<dyn BookieSource>,
    pub(crate) timeouts: Timeouts,
    clients: Mutex<HashMap<BookieId, (String, BookieClient)>>,
}

impl Pool {
    pub(crate) fn new(source: Arc<dyn BookieSource>, timeouts: Timeouts) -> Self {
        Self {
            source,
            timeouts,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure the source can address every bookie `md` names.
    pub(crate) async fn learn(&self, md: &LedgerMetadata) {
        let ids: Vec<BookieId> = md
            .ensembles
            .iter()
            .flat_map(|s| s.bookies.iter().cloned())
            .collect();
        self.source.learn(&ids).await;
    }

    pub(crate) fn client(&self, b: &BookieId) -> Result<BookieClient, StorageError> {
        if let Some(c) = self.source.local(b) {
            return Ok(c);
        }
        let addr = self.source.address(b);
        let mut g = self.clients.lock();
        if let Some((a, c)) = g.get(b)
            && *a == addr
        {
            return Ok(c.clone());
        }
        let c = BookieClient::connect_lazy(&addr)
            .map_err(|e| StorageError::Unavailable(format!("bookie {b} at {addr}: {e}")))?;
        g.insert(b.clone(), (addr, c.clone()));
        Ok(c)
    }

    /// Whether `b` answers a cheap request within the request timeout.
    pub(crate) async fn reachable(&self, b: &BookieId) -> bool {
        let Ok(c) = self.client(b) else {
            return false;
        };
        match tokio::time::timeout(
            self.timeouts.request,
            c.read_lac(u64::MAX, -2, Duration::ZERO),
        )
        .await
        {
            Ok(Ok(_)) => true,
            Ok(Err(ClientError::Unavailable(_) | ClientError::ShuttingDown)) | Err(_) => false,
            Ok(Err(_)) => true,
        }
    }

    /// Picks a bookie to replace `failed` in `ensemble`: writable, not in the ensemble,
    /// reachable, on a rack the rest of the ensemble does not use when possible, and not in
    /// `avoid` (recently failed) unless no other one is left.
    pub(crate) async fn replacement(
        &self,
        ensemble: &[BookieId],
        failed: &BookieId,
        avoid: &BTreeSet<BookieId>,
    ) -> Result<Option<BookieId>, StorageError> {
        let all = self.source.bookies().await?;
        let (preferred, avoided): (Vec<BookieId>, Vec<BookieId>) = all
            .into_iter()
            .filter(|b| !ensemble.contains(b))
            .partition(|b| !avoid.contains(b));
        if let Some(r) = self.pick(preferred, ensemble, failed).await {
            return Ok(Some(r));
        }
        Ok(self.pick(avoided, ensemble, failed).await)
    }

    async fn pick(
        &self,
        mut candidates: Vec<BookieId>,
        ensemble: &[BookieId],
        failed: &BookieId,
    ) -> Option<BookieId> {
        let used: BTreeSet<String> = ensemble
            .iter()
            .filter(|b| *b != failed)
            .filter_map(|b| self.source.rack(b))
            .collect();
        while !candidates.is_empty() {
            let pick = placement::choose(&candidates, 1, |b| self.source.rack(b), &used);
            let Some(r) = pick.into_iter().next() else {
                break;
            };
            if self.reachable(&r).await {
                return Some(r);
            }
            warn!(bookie = %r, "replacement candidate unreachable");
            candidates.retain(|b| *b != r);
        }
        None
    }

    /// Reads from the first of `replicas` that has the data: one that errs or has nothing moves
    /// on to the next at once, one silent for [`Timeouts::speculative`] gets the next one asked
    /// too. `f` returns `None` for "not here". Fails when every replica failed.
    pub(crate) async fn read_any<T, F, Fut>(
        &self,
        ledger: u64,
        entry: u64,
        replicas: &[BookieId],
        f: F,
    ) -> Result<T, StorageError>
    where
        F: Fn(BookieClient) -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>> + Send + 'static,
        T: Send + 'static,
    {
        let mut inflight = FuturesUnordered::new();
        let mut next = 0;
        let mut unavailable: Option<StorageError> = None;
        let request = self.timeouts.request;
        let launch = |i: usize, inflight: &mut FuturesUnordered<BoxFuture<'static, _>>| {
            let b = replicas[i].clone();
            match self.client(&b) {
                Ok(c) => {
                    let fut = f(c);
                    inflight.push(Box::pin(async move {
                        match tokio::time::timeout(request, fut).await {
                            Ok(r) => r,
                            Err(_) => Err(ClientError::Unavailable(format!(
                                "no answer from {b} within {request:?}"
                            ))),
                        }
                    }) as BoxFuture<'static, _>);
                    true
                }
                Err(_) => false,
            }
        };
        loop {
            while inflight.is_empty() && next < replicas.len() {
                launch(next, &mut inflight);
                next += 1;
            }
            if inflight.is_empty() {
                return Err(unavailable.unwrap_or(StorageError::NoSuchEntry(ledger, entry)));
            }
            let more = next < replicas.len();
            tokio::select! {
                r = inflight.next() => {
                    match r {
                        Some(Ok(Some(v))) => return Ok(v),
                        Some(Ok(None)) | Some(Err(ClientError::NoEntry(_) | ClientError::NoLedger(_))) | None => {}
                        Some(Err(e)) => unavailable = Some(map_client(ledger, e)),
                    }
                    if next < replicas.len() {
                        launch(next, &mut inflight);
                        next += 1;
                    }
                }
                _ = tokio::time::sleep(self.timeouts.speculative), if more => {
                    crate::metrics::METRICS.speculative_reads.inc();
                    launch(next, &mut inflight);
                    next += 1;
                }
            }
        }
    }
}
