//! The ledger storage the managed ledger writes to.
//!
//! [`LedgerStorage`] is the slice of a replication-ready ledger client the broker needs: create a
//! ledger ([`CreateOptions`]: the ensemble / write quorum / ack quorum, or the implementation's
//! default; placement and storage tier later), append entries in
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
use strata_proto::{EntryId, LedgerId};

pub use crate::config::Quorum;

/// How a new ledger is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Its quorum (`None`: the storage's default).
    pub quorum: Option<Quorum>,
}

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

type AddCallback = Box<dyn FnOnce(Result<EntryId, StorageError>) + Send>;

/// The completion of one add. Run once with the outcome; dropped unrun (a writer that went away
/// without answering), it answers `Unavailable`, so a caller counting its adds in flight always
/// hears back.
pub struct AddCompletion(Option<AddCallback>);

impl AddCompletion {
    /// A completion that runs `f`.
    pub fn new(f: impl FnOnce(Result<EntryId, StorageError>) + Send + 'static) -> Self {
        AddCompletion(Some(Box::new(f)))
    }

    /// Answers with `r`.
    pub fn run(mut self, r: Result<EntryId, StorageError>) {
        if let Some(f) = self.0.take() {
            f(r);
        }
    }
}

impl Drop for AddCompletion {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(StorageError::Unavailable(
                "the ledger writer went away before the add completed".into(),
            )));
        }
    }
}

impl std::fmt::Debug for AddCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddCompletion")
    }
}

/// Writes one open ledger. Adds are ordered by the order of the `add`/`add_then` calls.
pub trait LedgerWriter: Send + Sync {
    /// The ledger written.
    fn ledger_id(&self) -> LedgerId;
    /// Enqueues `data` as the next entry; `done` runs with its entry id once the entry and every
    /// earlier one are durable on an ack quorum, or with the error that ended the ledger. The
    /// completions of one writer run one at a time, in entry order (every success before the
    /// first failure; after a failure, only failures), on whichever thread finished the write:
    /// a completion must not block, nor add to this writer.
    ///
    /// `crc`, when the caller has it, is `crc32c(data)` (a broker verified the client's checksum
    /// of these bytes): a bookie that checksums the entry takes it instead of reading them again.
    fn add_then(&self, data: Bytes, crc: Option<u32>, done: AddCompletion);
    /// [`Self::add_then`] as a future. The order is fixed when `add` is called, not when the
    /// future is polled.
    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<EntryId, StorageError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.add_then(
            data,
            None,
            AddCompletion::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(StorageError::Unavailable("ledger writer dropped".into())))
        })
    }
    /// Closes the ledger after every pending add; returns the last entry id (None: empty).
    fn close(&self) -> BoxFuture<'static, Result<Option<EntryId>, StorageError>>;
}

/// The ledger storage of a broker.
#[async_trait]
pub trait LedgerStorage: Send + Sync + 'static {
    /// Creates a new ledger with `opts` and opens it for writing.
    async fn create(&self, opts: CreateOptions) -> Result<Arc<dyn LedgerWriter>, StorageError>;
    /// Fences `ledger` so no earlier writer can add to it, finds its last entry, closes it.
    /// Returns the last entry id (None: empty). Idempotent on a closed ledger.
    async fn recover(&self, ledger: LedgerId) -> Result<Option<EntryId>, StorageError>;
    /// Reads entries `first..=last`.
    async fn read(
        &self,
        ledger: LedgerId,
        first: EntryId,
        last: EntryId,
    ) -> Result<Vec<Bytes>, StorageError>;
    /// Deletes a ledger (idempotent).
    async fn delete(&self, ledger: LedgerId) -> Result<(), StorageError>;
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
    fn ledger_id(&self) -> LedgerId {
        LedgerId(self.id)
    }
    fn add_then(&self, data: Bytes, _crc: Option<u32>, done: AddCompletion) {
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
            Ok(EntryId(led.entries.len() as u64 - 1))
        })();
        done.run(res);
    }
    fn close(&self) -> BoxFuture<'static, Result<Option<EntryId>, StorageError>> {
        let res = {
            let mut l = self.store.ledgers.lock();
            match l.get_mut(&self.id) {
                Some(led) => {
                    led.closed = true;
                    Ok(led.entries.len().checked_sub(1).map(|v| EntryId(v as u64)))
                }
                None => Err(StorageError::NoSuchLedger(self.id)),
            }
        };
        Box::pin(async move { res })
    }
}

#[async_trait]
impl LedgerStorage for MemStorage {
    async fn create(&self, _opts: CreateOptions) -> Result<Arc<dyn LedgerWriter>, StorageError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.ledgers.lock().insert(id, MemLedger::default());
        Ok(Arc::new(MemWriter {
            id,
            store: self.clone(),
        }))
    }
    async fn recover(&self, ledger: LedgerId) -> Result<Option<EntryId>, StorageError> {
        let mut l = self.ledgers.lock();
        let led = l
            .get_mut(&ledger.0)
            .ok_or(StorageError::NoSuchLedger(ledger.0))?;
        led.closed = true;
        Ok(led.entries.len().checked_sub(1).map(|v| EntryId(v as u64)))
    }
    async fn read(
        &self,
        ledger: LedgerId,
        first: EntryId,
        last: EntryId,
    ) -> Result<Vec<Bytes>, StorageError> {
        READS.fetch_add(1, Ordering::Relaxed);
        let ledger = ledger.0;
        let l = self.ledgers.lock();
        let led = l.get(&ledger).ok_or(StorageError::NoSuchLedger(ledger))?;
        (first.0..=last.0)
            .map(|e| {
                led.entries
                    .get(e as usize)
                    .cloned()
                    .ok_or(StorageError::NoSuchEntry(ledger, e))
            })
            .collect()
    }
    async fn delete(&self, ledger: LedgerId) -> Result<(), StorageError> {
        self.ledgers.lock().remove(&ledger.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn a_completion_runs_once_with_the_outcome_or_answers_unavailable_when_dropped() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        AddCompletion::new(move |r| {
            assert_eq!(r.unwrap(), EntryId(7));
            c.fetch_add(1, Ordering::SeqCst);
        })
        .run(Ok(EntryId(7)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let c = calls.clone();
        drop(AddCompletion::new(move |r| {
            assert!(matches!(r, Err(StorageError::Unavailable(_))));
            c.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
