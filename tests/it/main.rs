//! Cross-process tests: real `strata` processes, real etcd, official Pulsar clients, loopback only.
//! Each area is one module; shared launchers live in `harness`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bookie;
mod harness;
mod meta;
mod smoke;
