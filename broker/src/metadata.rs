//! The broker's use of the metadata store: `strata_meta`'s typed [`MetaClient`] and models, the
//! one metadata layer of the workspace (redb in standalone, etcd in a cluster).
//!
//! Keys used by the broker (the layout of [`strata_meta::model::Paths`], default root `/strata`;
//! a managed ledger's name `tenant/ns/domain/topic` maps to a [`TopicPath`] with
//! [`topic_path`]):
//! - `managed-ledgers/{tenant}/{ns}/{domain}/{topic}`: the ledger list,
//!   [`strata_meta::model::ManagedLedgerInfo`] ([`crate::managed_ledger`]).
//! - `cursors/{tenant}/{ns}/{domain}/{topic}/{subscription}`: a durable cursor,
//!   [`strata_meta::model::CursorInfo`] with the compact ack state ([`crate::cursor`]).
//! - `partitioned-topics/{tenant}/{ns}/{domain}/{topic}`:
//!   [`strata_meta::model::PartitionedTopicMetadata`].
//! - `schemas/{tenant}/{ns}/{topic}`: [`strata_meta::model::SchemaHistory`] ([`crate::schema`]).
//! - `dedup/{tenant}/{ns}/{domain}/{topic}`: the deduplication snapshot ([`crate::dedup`]).
//! - `tenants/{tenant}`, `namespaces/{tenant}/{ns}`: [`strata_meta::model::TenantInfo`],
//!   [`strata_meta::model::Policies`] ([`crate::tenants`]), also written by `strata init-cluster`.

use std::sync::Arc;

pub use strata_meta::MetaError;
pub use strata_meta::model::{MetaClient, Paths, TopicPath};

/// The store path of the managed ledger named `tenant/ns/domain/topic`
/// ([`crate::topic_name::TopicName::persistence_name`]); missing parts are empty.
pub fn topic_path(ml_name: &str) -> TopicPath {
    let mut it = ml_name.splitn(4, '/');
    let mut next = || it.next().unwrap_or_default().to_owned();
    let (tenant, namespace, domain, topic) = (next(), next(), next(), next());
    TopicPath {
        domain,
        tenant,
        namespace,
        topic,
    }
}

/// A metadata client over a store kept in memory (unit tests, throwaway brokers).
pub fn in_memory() -> Result<MetaClient, MetaError> {
    let store = strata_meta::LocalStore::in_memory()?;
    Ok(MetaClient::new(Arc::new(store), Paths::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_ledger_names_map_to_topic_paths() {
        let t = topic_path("pub/default/persistent/a-partition-1");
        assert_eq!(t.to_string(), "persistent://pub/default/a-partition-1");
        let t = topic_path("pub/default/persistent/a/b");
        assert_eq!(t.topic, "a/b");
    }
}
