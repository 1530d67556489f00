//! `strata-objstore`: one object-storage layer for the whole project.
//!
//! - [`ObjStoreConfig`] / [`open`]: a URL (`s3://bucket/prefix` with endpoint, region and
//!   path-style for S3-compatible servers and credentials from the usual `AWS_*` environment;
//!   `gs://bucket/prefix` and `az://container/prefix` with the `gcp` / `azure` features;
//!   `file:///abs/path`; `memory://` for tests) becomes an `Arc<dyn object_store::ObjectStore>`
//!   ([`open_raw`]) wrapped in a [`Store`].
//! - [`Store`]: the handle every caller uses. Keys are relative to the URL's prefix. Each call goes
//!   through three layers, innermost first: seeded fault injection ([`Faults`], tests only),
//!   Prometheus metrics per attempt ([`metrics`]: requests, bytes, latency by operation, errors),
//!   and bounded retry with backoff (`strata_common::backoff`) of retryable errors, each attempt
//!   bounded by a timeout. Writes are create-only ([`Store::put_create`]); a ranged read that
//!   returns fewer bytes than asked is an error (retried), never short data.
//! - [`test_server`] (feature `test-server`): an in-process S3-compatible server (s3s with
//!   signatures over s3s-fs, object bodies read in 1 MiB reads, on its own runtime) for tests, with the same [`Faults`] applied server side to the requests of other processes,
//!   and `object_store::throttle::ThrottledStore` (see [`Store::from_raw`]) models S3
//!   latency.
//!
//! Invariants: no call returns bytes of a different length than the object range asked for;
//! `put_create` never overwrites (a retried create that finds an object of the same size counts
//! as done); errors say whether a retry may help ([`ObjStoreError::is_retryable`]).

mod config;
mod error;
mod faults;
pub mod metrics;
mod retry;
#[cfg(any(test, feature = "test-server"))]
mod server_faults;
mod store;
#[cfg(any(test, feature = "test-server"))]
mod test_fs;
#[cfg(any(test, feature = "test-server"))]
pub mod test_server;
#[cfg(test)]
mod tests;

pub use config::{ObjStoreConfig, open, open_raw};
pub use error::{ObjStoreError, Result};
pub use faults::{Fault, FaultRule, Faults, Op};
pub use object_store;
pub use retry::RetryPolicy;
pub use store::{ObjectInfo, Store};
