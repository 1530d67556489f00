//! Cluster-mode tests: a sandbox of real processes on loopback — etcd, `strata bookie` nodes
//! started with `--metadata etcd://...` — and tests of registration and `strata init-cluster`.

mod init_cluster;
pub mod proxy;
mod registration;
pub mod sandbox;
pub mod workload;
mod workload_smoke;
