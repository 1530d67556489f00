//! strata-ledger: the replicated ledger client the broker writes through.
//!
//! - [`storage`]: the [`storage::LedgerStorage`] / [`storage::LedgerWriter`] traits the broker's
//!   managed ledger codes against (and [`storage::MemStorage`] for unit tests above the trait).
//! - [`client`]: [`client::BookieLedgerStorage`], ledgers of E bookies with write quorum Qw and
//!   ack quorum Qa over `strata_bookie::BookieClient`, metadata in `strata_meta`; ensemble
//!   changes, speculative reads, rack-aware placement.
//! - `recovery`: fence + read forward + write back + close (BookKeeper semantics).
//! - [`autorecovery`]: re-replicates the entries of bookies gone for longer than a grace period.
//! - [`metrics`]: process-wide Prometheus counters; `metrics::register` adds them to a registry.

pub mod autorecovery;
pub mod client;
pub mod metrics;
mod placement;
mod recovery;
pub mod storage;

pub use storage::{CreateOptions, LedgerStorage, LedgerWriter, Quorum, StorageError};
