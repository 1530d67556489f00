//! strata-bookie: the durable storage node.
//!
//! A bookie stores *ledgers*: append-only sequences of entries `(ledger, entry, payload)` written by
//! one writer holding the ledger's master key. Layout:
//!
//! - [`format`]: every on-disk format (journal records, segment records, index blocks, checkpoint),
//!   with magic + version headers and CRC32C-framed records; decoders never panic on bad bytes.
//! - [`storage`]: the engine. Adds go through the journal's group commit (one write + one
//!   `fdatasync` per batch, dedicated thread) and are acknowledged once durable; they then live in a
//!   write cache that a flusher thread moves, in small frequent flushes, into interleaved segment
//!   files with per-segment index files; periodic checkpoints let old journal files be recycled.
//!   GC reclaims segments of deleted ledgers and compacts mostly-dead ones. Recovery replays the
//!   journal from the checkpoint. A full disk makes the bookie read-only, never lossy. With a
//!   storage URL (`storage/remote/`), sealed segments are uploaded to object storage and committed
//!   by a manifest before the journal covering them is trimmed and their local copy evicted.
//! - [`service`]: the tonic gRPC service (`proto/bookie.proto`): pipelined adds on a bidirectional
//!   stream, reads, LAC long-poll, fence, delete. [`http`]: health, readiness, `/metrics`.
//! - [`server`]: [`server::BookieNode`] starts and stops all of it; [`cli`] is `strata bookie`.
//! - [`client`]: [`client::BookieClient`], the typed client the ledger client uses (the
//!   `strata-bookie-client` crate, re-exported).
//! - [`registration`]: the [`registration::Registrar`] trait a metadata store implements.
//!
//! Invariants: an add is acknowledged only when durable and readable; after a fence is acknowledged
//! no add of that ledger succeeds, also after a restart; reads return verified bytes or an error.

pub mod cli;
pub mod config;
pub mod disk;
pub mod error;
pub mod format;
pub mod http;
pub mod local;
pub mod metrics;
pub mod registration;
pub mod server;
pub mod service;
pub mod storage;

pub use config::StorageConfig;
pub use error::BookieError;
pub use server::{BookieNode, BookieOptions};
pub use storage::Storage;
/// The bookie client lives in its own crate (no server dependencies); re-exported here so
/// `strata_bookie::client::..` keeps working.
pub use strata_bookie_client as client;
pub use strata_bookie_client::{BookieClient, ClientError};
