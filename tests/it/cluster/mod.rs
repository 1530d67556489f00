//! Cluster-mode tests: a sandbox of real processes on loopback — etcd, `strata bookie` nodes
//! started with `--metadata etcd://...` — and tests of registration and `strata init-cluster`.

mod admin_rest_cluster;
mod advertised_listeners;
mod bookie_loss;
mod broker_failover;
mod compaction_failover;
mod etcd_outage;
mod init_cluster;
mod objstore_disk_loss;
mod offload_failover;
pub mod process;
pub mod proxy;
mod registration;
mod rolling_restart;
pub mod sandbox;
mod split_brain;
mod tls_cluster;
pub mod workload;
mod workload_smoke;
