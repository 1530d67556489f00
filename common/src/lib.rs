//! `strata-common`: the few helpers that several Strata crates would otherwise each write
//! themselves. It depends on nothing heavy (`tokio` time, the `backon`, `crc-fast` and `foldhash`
//! crates), so the client crate may use it as well as the servers.
//!
//! - [`clock`]: wall-clock milliseconds since the Unix epoch ([`clock::now_ms`]), the unit of
//!   Pulsar's publish times and of the timestamps kept in metadata; the instant of the event a
//!   thread handles ([`clock::with_instant`], [`clock::instant`]), one clock reading shared by
//!   the per-message latencies that event completes.
//! - [`crc`]: CRC32C, the checksum of Pulsar frames and bookie records ([`crc::crc32c`],
//!   [`crc::crc32c_append`]).
//! - [`backoff`]: one exponential backoff ([`backoff::BackoffPolicy`] → [`backoff::Backoff`]),
//!   doubling from a first delay up to a cap, optionally jittered and bounded in attempts, and
//!   [`backoff::retry`] built on it. Delays come from `backon`; sleeping uses `tokio::time`, so
//!   tests can drive it with paused time.
//! - [`group`]: work deferred to the end of a group of events a thread handles together
//!   ([`group::run`], [`group::later`]): one receipt batch per connection for a journal sync.
//! - [`fast_map`]: [`fast_map::FastMap`], a per-process seeded foldhash map for lookups on the
//!   message path.
//! - [`process`]: this process's CPU time, memory and file descriptors from `/proc/self`.
//! - [`timer`]: a lazy sleep until an optional deadline, for `select!` loops.
//!
//! Invariant: nothing here panics on input a peer or a disk can produce.

pub mod backoff;
pub mod clock;
pub mod crc;
pub mod fast_map;
pub mod group;
pub mod process;
pub mod timer;
