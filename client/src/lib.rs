//! `strata-client`: a small async Apache Pulsar client over the `strata-proto` codec, and the
//! `strata produce | consume | perf` commands built on it.
//!
//! - [`PulsarClient`]: connection pool keyed by broker URL, LOOKUP with redirects,
//!   PARTITIONED_METADATA.
//! - [`Producer`]: batching by the sending task itself (one SEND per batch) with a timer task
//!   per partition, compression, sequence ids, a future per message resolved by the
//!   connection's reader on SEND_RECEIPT, `max_pending` backpressure.
//! - [`Consumer`]: SUBSCRIBE on every partition, FLOW permits re-granted as the application
//!   receives (half the receiver queue at a time), batches split into messages, acks.
//! - [`admin`]: a typed client for the admin REST API v2 and the `strata admin` command.
//! - [`cli`]: clap `Args` and `run_*` functions the `strata` binary wires in.
//!
//! Depends on `strata-proto` and `strata-common` only, never on server crates. Connections are not re-established
//! automatically: an operation on a dead connection fails with a retryable [`ClientError`].

pub mod admin;
mod batcher;
pub mod cli;
mod client;
pub mod compression;
pub mod connection;
mod consumer;
mod error;
mod inflight;
mod message;
mod producer;
mod producer_options;
mod receipt_batch;
mod topic_name;

pub use client::PulsarClient;
pub use consumer::{Consumer, ConsumerOptions};
pub use error::{ClientError, Result};
pub use message::{Message, MessageId, OutgoingMessage};
pub use producer::{Producer, ProducerOptions, SendFuture};
pub use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};
pub use strata_proto::pulsar::{CompressionType, Schema};
pub use topic_name::{full_topic_name, partition_name};
