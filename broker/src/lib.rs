//! strata-broker: the Pulsar protocol server and everything behind a topic.
//!
//! Layout (one concept a file):
//! - [`topic_name`]: `persistent://tenant/ns/topic` names, short forms, partitions.
//! - [`storage`]: the ledger-storage slice the broker needs ([`storage::LedgerStorage`]).
//! - [`metadata`]: the metadata slice the broker needs ([`metadata::BrokerMetadata`]).
//! - [`managed_ledger`]: a topic's log as a list of ledgers; rollover, recovery, trimming.
//! - [`cache`]: the entry cache (bounded by bytes) that serves tailing consumers.
//! - [`cursor`]: mark-delete + individually acked ranges + batch-index ack sets, persisted compactly.
//!
//! Invariants: a producer gets SEND_RECEIPT only after the entry is durable on an ack quorum; the
//! last confirmed position never moves backwards; a cursor never forgets an acked range.

pub mod cache;
pub mod config;
pub mod connection;
pub mod cursor;
pub mod error;
pub mod http;
pub mod ledger_client;
pub mod managed_ledger;
pub mod meta_adapter;
pub mod metadata;
pub mod metrics;
pub mod position;
pub mod schema;
pub mod server;
pub mod service;
pub mod storage;
pub mod subscription;
pub mod topic;
pub mod topic_name;

pub use error::{BrokerError, Result};

#[cfg(test)]
mod subscription_tests;
