//! strata-ledger: the replicated ledger client the broker writes through.
//!
//! - [`storage`]: the [`storage::LedgerStorage`] / [`storage::LedgerWriter`] traits the broker's
//!   managed ledger codes against (and [`storage::MemStorage`] for unit tests above the trait).
//! - [`client`]: [`client::BookieLedgerStorage`], ledgers of E bookies with write quorum Qw and
//!   ack quorum Qa over `strata_bookie::BookieClient`, metadata in `strata_meta`; ensemble
//!   changes, fencing recovery.

pub mod autorecovery;
pub mod client;
pub mod storage;

pub use storage::{LedgerStorage, LedgerWriter, StorageError};
