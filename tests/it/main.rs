//! Cross-process tests: real `strata` processes, real etcd, official Pulsar clients, loopback only.
//! Each area is one module; shared launchers live in `harness`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_cli;
mod admin_rest;
mod auth_providers;
mod auth_tokens;
mod authz;
mod bookie;
mod bookie_objstore_standalone;
mod broker_badinput;
mod broker_chunking;
mod broker_http;
mod broker_protocol;
mod broker_unload;
mod checker;
mod cluster;
mod compat;
mod console;
mod cpp_compat;
mod dedup;
mod harness;
mod meta;
mod non_persistent;
mod observability;
mod offload;
mod offload_faults;
mod policies;
mod pulsar_cli;
mod pulsar_durability;
mod pulsar_python;
mod pulsar_rust;
mod pulsar_strata_client;
mod smoke;
mod standalone_durability;
mod standalone_shutdown;
mod tls;
