//! The ledger storage the managed ledger writes to.
//!
//! [`LedgerStorage`] is the slice of a replication-ready ledger client the broker needs: create a
//! ledger (ensemble / write quorum / ack quorum chosen by the implementation), append entries in
//! order through a [`LedgerWriter`], read ranges, recover (fence + find the last entry + close) a
//! ledger another writer may still hold, delete. [`crate::client::BookieLedgerStorage`] implements
//! it over bookies; [`MemStorage`] is for unit tests only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;

/// Errors of the ledger storage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("ledger {0} not found")]
    NoSuchLedger(u64),
    #[error("entry {1} of ledger {0} not found")]
    NoSuchEntry(u64, u64),
    #[error("ledger {0} is fenced")]
    Fenced(u64),
    #[error("ledger {0} is closed")]
    Closed(u64),
    #[error("not enough bookies: {0}")]
    NotEnoughBookies(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Other(String),
}

impl StorageError {
    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StorageError::Unavailable(_) | StorageError::NotEnoughBookies(_)
        )
    }
}

/// Writes one open ledger. Adds are ordered by the order of the `add` calls.
pub trait LedgerWriter: Send + Sync {
    /// The ledger written.
    fn ledger_id(&self) -> u64;
    /// Enqueues `data` as the next entry. The returned future resolves with its entry id once the
    /// entry and every earlier one are durable on an ack quorum. The order is fixed when `add` is
    /// called, not when the future is polled.
    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<u64, StorageError>>;
    /// Closes the ledger after every pending add; returns the last entry id (None: empty).
    fn close(&self) -> BoxFuture<'static, Result<Option<u64>, StorageError>>;
}

/// The ledger storage of a broker.
#[async_trait]
pub trait LedgerStorage: Send + Sync + 'static {
    /// Creates a new ledger and opens it for writing.
    async fn create(&self) -> Result<Arc<dyn LedgerWriter>, StorageError>;
    /// Fences `ledger` so no earlier writer can add to it, finds its last entry, closes it.
    /// Returns the last entry id (None: empty). Idempotent on a closed ledger.
    async fn recover(&self, ledger: u64) -> Result<Option<u64>, StorageError>;
    /// Reads entries `first..=last`.
    async fn read(&self, ledger: u64, first: u64, last: u64) -> Result<Vec<Bytes>, StorageError>;
    /// Deletes a ledger (idempotent).
    async fn delete(&self, ledger: u64) -> Result<(), StorageError>;
}

#[derive(Default)]
struct MemLedger {
    entries: Vec<Bytes>,
    closed: bool,
}

/// In-memory ledger storage for unit tests.
#[derive(Default, Clone)]
pub struct MemStorage {
    next_id: Arc<AtomicU64>,
    ledgers: Arc<Mutex<HashMap<u64, MemLedger>>>,
    /// When set, every add fails (to test error paths).
    pub fail_adds: Arc<std::sync::atomic::AtomicBool>,
}

impl MemStorage {
    /// Number of live ledgers.
    pub fn ledger_count(&self) -> usize {
        self.ledgers.lock().len()
    }
    /// Number of reads served (tests check that tailing consumers never read storage).
    pub fn reads(&self) -> u64 {
        READS.load(Ordering::Relaxed)
    }
}

static READS: AtomicU64 = AtomicU64::new(0);

struct MemWriter {
    id: u64,
    store: MemStorage,
}

impl LedgerWriter for MemWriter {
    fn ledger_id(&self) -> u64 {
        self.id
    }
    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<u64, StorageError>> {
        let res = (|| {
            if self.store.fail_adds.load(Ordering::Relaxed) {
                return Err(StorageError::Unavailable("injected failure".into()));
            }
            let mut l = self.store.ledgers.lock();
            let led = l
                .get_mut(&self.id)
                .ok_or(StorageError::NoSuchLedger(self.id))?;
            if led.closed {
                return Err(StorageError::Fenced(self.id));
            }
            led.entries.push(data);
            Ok(led.entries.len() as u64 - 1)
        })();
        Box::pin(async move { res })
    }
    fn close(&self) -> BoxFuture<'static, Result<Option<u64>, StorageError>> {
        let res = {
            let mut l = self.store.ledgers.lock();
            match l.get_mut(&self.id) {
                Some(led) => {
                    led.closed = true;
                    Ok(led.entries.len().checked_sub(1).map(|v| v as u64))
                }
                None => Err(StorageError::NoSuchLedger(self.id)),
            }
        };
        Box::pin(async move { res })
    }
}

#[async_trait]
impl LedgerStorage for MemStorage {
    async fn create(&self) -> Result<Arc<dyn LedgerWriter>, StorageError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.ledgers.lock().insert(id, MemLedger::default());
        Ok(Arc::new(MemWriter {
            id,
            store: self.clone(),
        }))
    }
    async fn recover(&self, ledger: u64) -> Result<Option<u64>, StorageError> {
        let mut l = self.ledgers.lock();
        let led = l
            .get_mut(&ledger)
            .ok_or(StorageError::NoSuchLedger(ledger))?;
        led.closed = true;
        Ok(led.entries.len().checked_sub(1).map(|v| v as u64))
    }
    async fn read(&self, ledger: u64, first: u64, last: u64) -> Result<Vec<Bytes>, StorageError> {
        READS.fetch_add(1, Ordering::Relaxed);
        let l = self.ledgers.lock();
        let led = l.get(&ledger).ok_or(StorageError::NoSuchLedger(ledger))?;
        (first..=last)
            .map(|e| {
                led.entries
                    .get(e as usize)
                    .cloned()
                    .ok_or(StorageError::NoSuchEntry(ledger, e))
            })
            .collect()
    }
    async fn delete(&self, ledger: u64) -> Result<(), StorageError> {
        self.ledgers.lock().remove(&ledger);
        Ok(())
    }
}
