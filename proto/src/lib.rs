//! Wire and storage schemas shared by every Strata crate.
//!
//! - [`bookie`]: the bookie's gRPC service (`proto/bookie.proto`), used by the ledger client in the
//!   broker and by the bookie server.
//! - [`pulsar`]: the Apache Pulsar binary protocol messages (`proto/pulsar_api.proto`), wire
//!   compatible with the official clients (same field numbers and enum values).
//! - [`frame`]: the Pulsar frame codec ([`frame::PulsarCodec`], a tokio-util `Decoder`/`Encoder`)
//!   with CRC32C verification, broker entry metadata and a size limit checked before allocating;
//!   [`frame::Frame`] / [`frame::Payload`] keep the raw entry bytes for storing without re-encoding.
//! - [`outgoing`]: frames to write, with SEND_RECEIPT and MESSAGE encoded without a `BaseCommand`.
//! - [`frame_writer`]: encodes queued frames into one buffer and writes them together.
//! - [`entry_view`]: the fields of a stored entry's metadata a dispatcher reads, decoded alone.
//! - [`commands`]: builders for the common `BaseCommand`s (type and body always agree).
//! - [`batch`]: batch payloads (`[u32 size][SingleMessageMetadata][bytes]`...) and `ack_set` bits.
//! - [`ids`]: newtypes for ids so a ledger id cannot be passed where an entry id is expected.
//!
//! Generated code uses `bytes::Bytes` for every `bytes` field so payloads are never copied.
//! Invariant of the codec: no input bytes can make it panic or allocate more than its limit.

pub mod batch;
pub mod commands;
pub mod compression;
pub mod entry_view;
mod error;
pub mod frame;
pub mod frame_writer;
pub mod ids;
pub mod outgoing;
mod read_chunk;

pub use error::FrameError;

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
