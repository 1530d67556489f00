//! strata-ledger: the replicated ledger client the broker writes through.
//!
//! - [`storage`]: the [`storage::LedgerStorage`] / [`storage::LedgerWriter`] traits the broker's
//!   managed ledger codes against (and [`storage::MemStorage`] for unit tests above the trait),
//!   with [`AddCompletion`], an add's completion callback.
//! - [`client`]: [`client::BookieLedgerStorage`], ledgers of E bookies with write quorum Qw and
//!   ack quorum Qa over `strata_bookie_client::BookieClient`, metadata in `strata_meta`;
//!   speculative reads, rack-aware placement. Its parts: `config` ([`client::Quorum`],
//!   [`client::Timeouts`]), `bookies` ([`client::BookieSource`] and its two implementations),
//!   `pool` (clients by bookie id, replacement picking, replica reads), `write_set` (striping),
//!   `writer` (one ledger's writer and its ensemble changes), `ledger_md` (metadata reads and
//!   segment commits), `quarantine`, `error_map`.
//! - `recovery`: fence + read forward + write back + close (BookKeeper semantics).
//! - [`autorecovery`]: re-replicates the entries of bookies gone for longer than a grace period;
//!   `refill` copies back what a bookie that returned with a new disk lost ([`bookie_disks`]:
//!   the disk records bookies write), `copy` copies a segment's entries with recovery adds.
//! - [`metrics`]: process-wide Prometheus counters; `metrics::register` adds them to a registry.

mod acks;
pub mod autorecovery;
pub mod bookie_disks;
mod bookies;
pub mod client;
mod config;
mod copy;
mod error_map;
mod ledger_md;
pub mod metrics;
mod placement;
mod pool;
mod quarantine;
mod recovery;
mod refill;
pub mod storage;
mod write_set;
mod writer;

pub use config::MAX_ENSEMBLE;
pub use storage::{
    AddCompletion, CreateOptions, LedgerStorage, LedgerWriter, Quorum, StorageError,
};
