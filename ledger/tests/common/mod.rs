//! Fixtures shared by the ledger client's integration tests: in-process bookies on loopback and
//! a LocalStore in a temporary directory.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strata_bookie::registration::NoopRegistrar;
use strata_bookie::{BookieNode, BookieOptions, StorageConfig};
use strata_ledger::client::Quorum;
use strata_meta::{LocalStore, MetadataStore};
use strata_proto::BookieId;

/// A bookie on a loopback port storing under `dir`, registered nowhere.
pub async fn bookie(dir: &Path) -> BookieNode {
    let opts = BookieOptions {
        storage: StorageConfig::new(dir),
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: None,
        advertised_address: None,
        registration_interval: Duration::from_secs(60),
    };
    BookieNode::start(opts, Arc::new(NoopRegistrar))
        .await
        .unwrap()
}

/// A LocalStore in `dir/meta.redb`.
pub async fn store(dir: &Path) -> Arc<dyn MetadataStore> {
    Arc::new(LocalStore::open(dir.join("meta.redb")).await.unwrap())
}

/// `n` bookies under `dir/b<i>`, with their ids (`bookie-<i>`) and addresses.
pub async fn bookies(dir: &Path, n: usize) -> (Vec<BookieNode>, Vec<(BookieId, String)>) {
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let b = bookie(&dir.join(format!("b{i}"))).await;
        ids.push((BookieId(format!("bookie-{i}")), b.grpc_addr.to_string()));
        nodes.push(b);
    }
    (nodes, ids)
}

/// E, Qw, Qa.
pub fn quorum(ensemble: usize, write: usize, ack: usize) -> Quorum {
    Quorum {
        ensemble,
        write,
        ack,
    }
}
