//! Who serves a topic: [`Owner`], the [`Ownership`] a broker is built with (everything local in
//! standalone, namespace bundles in a cluster: `crate::cluster`) and the lookups that ask it.

use super::BrokerService;
use crate::error::Result;
use crate::topic_name::TopicName;

/// Who serves a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This broker.
    Local,
    /// Another broker: its `pulsar://` and `http://` URLs (and `pulsar+ssl://` when it has a
    /// TLS port).
    Remote {
        broker_url: String,
        http_url: String,
        broker_url_tls: Option<String>,
    },
    /// Nobody owns the topic yet and another broker (the leader, at these URLs) assigns it: a
    /// LOOKUP is redirected there with `authoritative = false`.
    Leader {
        broker_url: String,
        http_url: String,
        broker_url_tls: Option<String>,
    },
}

/// Topic ownership. Standalone owns everything ([`LocalOwnership`]); cluster mode answers from
/// namespace-bundle ownership in etcd ([`crate::cluster::ClusterOwnership`]).
#[async_trait::async_trait]
pub trait Ownership: Send + Sync + 'static {
    /// Owner of `topic`, acquiring its bundle if nobody owns it (a producer or consumer is
    /// being attached here).
    async fn owner(&self, topic: &TopicName) -> Result<Owner>;

    /// The answer to a LOOKUP. `authoritative`: the client was sent here by the leader or the
    /// owner, so an unowned bundle is acquired rather than redirected.
    async fn lookup(&self, topic: &TopicName, _authoritative: bool) -> Result<Owner> {
        self.owner(topic).await
    }

    /// `topic`'s ledger was fenced by another writer (it was taken over): give up its bundle.
    /// The topic itself has already been unloaded.
    async fn fenced(&self, _topic: &TopicName) {}

    /// Unloads a namespace bundle (`0xSTART_0xEND`) if this broker owns it: [`Owner::Local`]
    /// when done here (or nobody owns it), [`Owner::Remote`] when another broker owns it.
    async fn unload_bundle(&self, _tenant: &str, _ns: &str, _bundle: &str) -> Result<Owner> {
        Ok(Owner::Local)
    }
}

/// Owns every topic.
pub struct LocalOwnership;

#[async_trait::async_trait]
impl Ownership for LocalOwnership {
    async fn owner(&self, _topic: &TopicName) -> Result<Owner> {
        Ok(Owner::Local)
    }
}

impl BrokerService {
    /// Who serves `topic` (acquiring its bundle if nobody does).
    pub async fn owner(&self, topic: &TopicName) -> Result<Owner> {
        self.ownership.owner(topic).await
    }

    /// Ok when this broker serves `topic`; otherwise `OwnedElsewhere` naming the broker that does
    /// (the client redirects there).
    pub async fn ensure_owned_here(&self, topic: &TopicName) -> Result<()> {
        match self.owner(topic).await? {
            Owner::Local => Ok(()),
            Owner::Remote {
                broker_url,
                http_url,
                ..
            }
            | Owner::Leader {
                broker_url,
                http_url,
                ..
            } => Err(crate::error::BrokerError::OwnedElsewhere {
                topic: topic.to_string(),
                broker_url,
                http_url,
            }),
        }
    }

    /// Unloads a namespace bundle owned here (see [`Ownership::unload_bundle`]).
    pub async fn unload_bundle(&self, tenant: &str, ns: &str, bundle: &str) -> Result<Owner> {
        self.ownership.unload_bundle(tenant, ns, bundle).await
    }

    /// The answer to a LOOKUP of `topic` (see [`Ownership::lookup`]).
    pub async fn lookup(&self, topic: &TopicName, authoritative: bool) -> Result<Owner> {
        self.ownership.lookup(topic, authoritative).await
    }

    /// The topic's ledger was fenced by another broker: unload it and give up its bundle.
    pub(super) async fn on_fenced(&self, name: &TopicName) {
        self.unload(name, None).await;
        self.ownership.fenced(name).await;
    }
}
