//! Strata's metadata and coordination layer: everything brokers and bookies store in, or
//! coordinate through, etcd (or the embedded store of `strata standalone`).
//!
//! # API overview
//!
//! - [`MetadataStore`] — one async, object-safe trait (`Arc<dyn MetadataStore>`), two
//!   implementations: [`EtcdStore`] (etcd v3, 3.4 and 3.5, fails over between endpoints) and
//!   [`LocalStore`] (one redb file). Both pass the same [`conformance`] suite.
//!   - `get(key)` → value + [`Stat`] (per-key `version`, `create_revision`, `mod_revision`,
//!     owning `session`);
//!   - `put(key, value, Expected::{Any, Absent, Version(v)})` and `delete(key, expected)`:
//!     compare-and-set on the key's version; a failed precondition is
//!     [`MetaError::BadVersion`];
//!   - `scan(prefix)` (a consistent snapshot with its revision), `scan_keys`, `children(parent)`,
//!     `delete_prefix`;
//!   - `watch(prefix, from_revision)` → [`WatchStream`] of create / modify / delete events in
//!     revision order; it reconnects by itself and resumes after the last delivered revision, so
//!     nothing is missed or repeated. `scan` then `watch(scan.revision + 1)` gives a gap-free
//!     view. When the history is gone it yields [`MetaError::Compacted`]: re-scan.
//!   - Sessions: `create_session(ttl)` → [`Session`], a lease kept alive in the background.
//!     `put_ephemeral(session, ..)` binds a key to it. [`Session::lost`] (or
//!     [`Session::lost_token`]) fires as soon as the lease can no longer be proven alive — with
//!     etcd when no keep-alive succeeded for `ttl - margin` (margin = ttl/4, at least 0.5 s), i.e.
//!     before the server expires it and another node can take over. A lost session stays lost;
//!     `reestablish_session(old)` makes a new one and re-creates only the keys written with
//!     [`EphemeralOptions::recreate`] (registrations), not ownership claims.
//!   - `close()`: ends open sessions (their ephemeral keys are deleted), stops watches and
//!     background tasks. [`StoreConfig`] opens either backend from `etcd://h:p,...` or
//!     `local:PATH`; [`metrics::register`] exposes Pulsar-named Prometheus metrics.
//! - [`retry::update`] / [`model::MetaClient::update`]: read-modify-write with CAS and jittered
//!   retry. Racing updates always go through it (never last-writer-wins).
//! - [`election`]: leader election / locks as ephemeral keys created with `Expected::Absent`;
//!   [`election::Leadership::fencing_token`] (the key's create revision) increases with every
//!   new holder — leases are not locks, fence storage with it.
//! - [`model`]: the typed layer — key layout ([`model::Paths`]), serde models (clusters,
//!   tenants, namespace policies, topics, partitioned topics, bundles and owners, brokers,
//!   bookies, ledgers, managed-ledger ledger lists, cursor pointers, schemas), versioned JSON
//!   codec (`"v"` field), typed watches ([`model::MetaClient::list_and_watch`]: a snapshot plus
//!   every later change, e.g. to cache policies) and the cluster-unique
//!   [`model::LedgerIdAllocator`].
//!
//! Typical broker / bookie use:
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn strata_meta::MetadataStore>) -> strata_meta::Result<()> {
//! use std::time::Duration;
//! use strata_meta::model::{BookieInfo, MetaClient, Paths};
//! let meta = MetaClient::new(store.clone(), Paths::default());
//! let session = store.create_session(Duration::from_secs(10)).await?;
//! meta.register_bookie(&session, &BookieInfo {
//!     bookie_id: "10.0.0.1:3181".into(), address: "10.0.0.1:3181".into(),
//!     free_space_bytes: 0, total_space_bytes: 0, rack: None, read_only: false,
//!     version: "0.1.0".into(),
//! }).await?;
//! tokio::select! {
//!     () = session.lost() => { /* stop serving as owner; then reestablish_session */ }
//!     () = std::future::pending::<()>() => {}
//! }
//! # Ok(()) }
//! ```
//!
//! # Invariants
//! - Every write bumps a store-wide revision; events are delivered in revision order, each once.
//! - Versions: 1 on create, +1 per write, back to 1 after delete + create.
//! - Ephemeral keys disappear when their session ends: closed, expired on the server, or (local
//!   store) when the process exits — the local store deletes them when it is opened again.
//! - Only small, slowly changing facts go here: no per-message or per-ack writes (cursors store a
//!   pointer to a cursor ledger, not ack state).
//!
//! # Cancel safety
//! Reads and [`WatchStream::next`] / [`Session::lost`] are cancel safe; writes are not (a
//! cancelled write may or may not be applied — re-read).

mod config;
pub mod conformance;
pub mod election;
mod error;
mod etcd;
mod local;
pub mod metrics;
pub mod model;
pub mod retry;
mod session;
mod session_id;
mod store;

pub use bytes::Bytes;
pub use config::StoreConfig;
pub use error::{MetaError, Result};
pub use etcd::{EndpointStatus, EtcdOptions, EtcdStore};
pub use local::{HISTORY_EVENTS, LocalStore};
pub use session::{EphemeralOptions, Reestablished, Session};
pub use session_id::SessionId;
pub use store::{
    EventKind, Expected, KeyValue, MetadataStore, Scan, Stat, Versioned, WatchEvent, WatchStream,
};
