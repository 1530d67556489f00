//! strata-broker: the Pulsar protocol server and everything behind a topic.
//!
//! Main types: [`server::BrokerServer`] (listeners and ordered shutdown) over a
//! [`service::BrokerService`] (loaded topics, partitions, namespaces, schemas, ownership), which
//! is built from a [`storage::LedgerStorage`] (ledgers on bookies: [`ledger_client`]) and a
//! [`metadata::MetaClient`] (`strata_meta`'s typed client over redb or etcd: [`metadata`]).
//!
//! Layout (one concept a file):
//! - [`connection`]: one task per client connection; CONNECT handshake, every command, receipts.
//! - [`topic_name`]: `persistent://tenant/ns/topic` names, short forms, partitions.
//! - [`topic`]: producers (access modes), subscriptions, termination, unload.
//! - [`subscription`]: a cursor and its dispatcher as one actor (Exclusive, Shared, Failover,
//!   Key_Shared, redelivery, delayed delivery, seek), batched cursor persistence.
//! - [`managed_ledger`]: a topic's log as a list of ledgers; rollover, recovery, trimming.
//! - [`cache`]: the entry cache (bounded by bytes) that serves tailing consumers.
//! - [`cursor`]: mark-delete + individually acked ranges + batch-index ack sets, compact format;
//!   [`cursor_store`]: where a durable cursor is stored (`strata_meta`'s `CursorInfo`).
//! - [`ledger_client`]: E/Qw/Qa ledgers over `strata_bookie_client::BookieClient`, fencing recovery.
//! - [`storage`]: the ledger slice the broker codes against (in-memory version for unit tests);
//!   [`metadata`]: the keys the broker uses in `strata_meta`'s layout (in-memory store for tests).
//! - [`admin`]: the `/admin/v2` REST API (one file per resource group) and its authorization.
//! - [`console`]: the web console at `/console`, assets embedded, a client of the admin API.
//! - [`policy`]: namespace policies enforced on live topics (TTL, backlog quota, retention,
//!   max producers/consumers), re-read every `policy_refresh_interval`.
//! - [`schema`], [`http`], [`metrics`], [`config`], [`error`] (one mapping to `ServerError`).
//!
//! Invariants: a producer gets SEND_RECEIPT only after the entry is durable on an ack quorum and
//! every earlier entry is; the last confirmed position never moves backwards; only the managed
//! ledger's writer task changes its ledger list (CAS on the version); a cursor never forgets an
//! acked range; an ACK receipt or a CLOSE_CONSUMER answer means the acks are persisted.

pub mod admin;
pub mod cache;
pub mod cluster;
pub mod compaction;
pub mod config;
pub mod connection;
pub mod console;
pub mod cursor;
pub mod cursor_store;
pub mod dedup;
pub mod error;
pub mod http;
pub mod listeners;
pub mod managed_ledger;
pub mod metadata;
pub mod metrics;
pub mod nonpersistent;
pub mod offload;
pub mod outbound;
pub mod policy;
pub mod position;
pub mod rate;
pub mod schema;
pub mod server;
pub mod service;
pub mod stats;
pub mod subscription;
pub mod tls_listener;
pub mod topic;
pub mod topic_name;

/// The ledger client (moved to `strata-ledger`); kept under its old path.
pub use strata_ledger::client as ledger_client;
/// The ledger storage traits (moved to `strata-ledger`).
pub use strata_ledger::storage;

pub use error::{BrokerError, Result};
