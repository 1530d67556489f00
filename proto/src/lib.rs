//! Wire and storage schemas shared by every Strata crate.
//!
//! - [`bookie`]: the bookie's gRPC service (`proto/bookie.proto`), used by the ledger client in the
//!   broker and by the bookie server.
//! - [`pulsar`]: the Apache Pulsar binary protocol messages (`proto/pulsar_api.proto`), wire
//!   compatible with the official clients (same field numbers and enum values).
//! - [`ids`]: newtypes for ids so a ledger id cannot be passed where an entry id is expected.
//!
//! Generated code uses `bytes::Bytes` for every `bytes` field so payloads are never copied.

pub mod ids;

/// The bookie gRPC API.
#[allow(clippy::all, missing_docs)]
pub mod bookie {
    tonic::include_proto!("strata.bookie.v1");
}

/// The Pulsar binary protocol messages.
#[allow(clippy::all, missing_docs)]
pub mod pulsar {
    tonic::include_proto!("pulsar.proto");
}

pub use ids::{BookieId, EntryId, Epoch, LedgerId};
