//! strata-meta against real processes: the conformance suite on a real etcd, etcd fault tests
//! (SIGKILL, restart, 3-node cluster with a member down), CAS races from two processes, and the
//! embedded store surviving a SIGKILL.

mod concurrency;
mod faults;
mod standalone;

use std::sync::Arc;
use std::time::Duration;

use strata_meta::{
    Bytes, EphemeralOptions, EtcdOptions, EtcdStore, Expected, MetadataStore, Session,
};

use crate::harness::etcd::EtcdCluster;

/// Test-friendly client options: fail over quickly.
pub fn options(endpoints: Vec<String>) -> EtcdOptions {
    let mut o = EtcdOptions::new(endpoints);
    o.request_timeout = Duration::from_secs(5);
    o.attempt_timeout = Duration::from_secs(1);
    o.connect_timeout = Duration::from_millis(500);
    o
}

pub async fn connect(endpoints: Vec<String>) -> EtcdStore {
    EtcdStore::connect(options(endpoints))
        .await
        .expect("connect to etcd")
}

/// Puts the ephemeral key `key` = `value`, which must not exist yet, in `session`; `opts` says
/// whether `reestablish_session` re-creates it.
pub async fn put_absent_ephemeral<S: MetadataStore + ?Sized>(
    store: &S,
    session: &Session,
    key: &str,
    value: &'static str,
    opts: EphemeralOptions,
) {
    store
        .put_ephemeral(session, key, Bytes::from(value), Expected::Absent, opts)
        .await
        .unwrap();
}

strata_meta::conformance_tests!(etcd_conformance, async || {
    let etcd = EtcdCluster::start(1);
    let store = connect(etcd.endpoints()).await;
    (Arc::new(store) as Arc<dyn MetadataStore>, etcd)
});
