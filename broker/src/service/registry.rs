//! The topic registry: topics loaded on this broker (loading, creating, unloading, closing) and
//! the periodic work over them.

use std::sync::Arc;

use futures::StreamExt;
use tracing::{info, warn};

use super::BrokerService;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::{ManagedLedger, ManagedLedgerConfig};
use crate::storage::{CreateOptions, Quorum};
use crate::topic::Topic;
use crate::topic_name::TopicName;

impl BrokerService {
    /// The managed-ledger settings of `name`: new ledgers use its namespace's persistence
    /// policy (E/Qw/Qa) when one is set and valid, the storage's default otherwise.
    pub(super) async fn managed_ledger_config(
        &self,
        name: &TopicName,
    ) -> Result<ManagedLedgerConfig> {
        let quorum = self
            .policies(&name.tenant, &name.namespace)
            .await?
            .and_then(|p| p.persistence)
            .and_then(|p| {
                let q = Quorum::checked(p.ensemble_size, p.write_quorum, p.ack_quorum);
                if q.is_none() {
                    warn!(namespace = %format!("{}/{}", name.tenant, name.namespace),
                        e = p.ensemble_size, qw = p.write_quorum, qa = p.ack_quorum,
                        "invalid persistence policy ignored; new ledgers use the default quorum");
                }
                q
            });
        Ok(ManagedLedgerConfig {
            create: CreateOptions { quorum },
            ..self.config.managed_ledger()
        })
    }

    /// The loaded topic, loading (and with `create`, creating) it.
    pub async fn topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>> {
        if !name.is_persistent() {
            return Err(BrokerError::NotAllowed(
                "a non-persistent topic has no managed ledger (see np_topic)".into(),
            ));
        }
        self.ensure_owned_here(name).await?;
        let key = name.to_string();
        let cell = self
            .topics
            .lock()
            .await
            .entry(key.clone())
            .or_default()
            .clone();
        let res = cell
            .get_or_try_init(|| async {
                let pname = name.persistence_name();
                if !create && !self.ml_exists(&pname).await? {
                    return Err(BrokerError::TopicNotFound(key.clone()));
                }
                let partitions = self.partitions(&name.partitioned_parent()).await?;
                match name.partition_index() {
                    None if partitions > 0 => {
                        return Err(BrokerError::NotAllowed(format!(
                            "{name} is a partitioned topic; use its partitions"
                        )));
                    }
                    // As Pulsar: a partition beyond the partitioned topic's count does not
                    // exist (a client that saw more partitions than there are gets
                    // TopicNotFound, not a stray topic).
                    Some(i) if partitions > 0 && i >= partitions => {
                        return Err(BrokerError::TopicNotFound(format!(
                            "{name}: the partitioned topic has {partitions} partitions"
                        )));
                    }
                    _ => {}
                }
                let ml = ManagedLedger::open(
                    &pname,
                    self.storage.clone(),
                    self.meta.clone(),
                    self.cache.clone(),
                    self.managed_ledger_config(name).await?,
                )
                .await?;
                if let Some(o) = &self.offloader {
                    ml.set_tier(o.tier().clone());
                }
                let t = Arc::new(Topic::new(
                    name.clone(),
                    ml,
                    self.meta.clone(),
                    self.metrics.clone(),
                    self.config.subscription(),
                ));
                t.load_durable_subscriptions().await?;
                // Deduplication applies from the first SEND (other policies follow within
                // `policy_refresh_interval`).
                if let Some(p) = self.policies(&name.tenant, &name.namespace).await? {
                    t.dedup()
                        .set_enabled(p.deduplication_enabled.unwrap_or(false));
                }
                self.metrics.topics.inc();
                info!(topic = %name, "topic loaded");
                // Unload the topic (and give its bundle up) if another broker fences it.
                let (me, watched) = (self.me.clone(), t.clone());
                self.tasks.spawn(async move {
                    tokio::select! {
                        () = watched.ledger().fenced() => {}
                        () = watched.closed() => return,
                    }
                    if let Some(svc) = me.upgrade() {
                        svc.on_fenced(watched.name()).await;
                    }
                });
                Ok::<_, BrokerError>(t)
            })
            .await
            .cloned();
        if res.is_err() {
            let mut topics = self.topics.lock().await;
            if topics.get(&key).is_some_and(|c| c.get().is_none()) {
                topics.remove(&key);
            }
        }
        res
    }

    /// Loaded topics.
    pub async fn loaded_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .lock()
            .await
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// Trims consumed ledgers of every loaded topic.
    pub async fn trim_all(&self) {
        for t in self.loaded_topics().await {
            if let Err(e) = t.trim().await {
                warn!(topic = %t.name(), error = %e, "trim failed");
            }
        }
    }

    /// Unloads a loaded topic (closing its clients, who reconnect through a new lookup — to
    /// `assigned` if given). The topic stays registered until it is fully closed, so a client
    /// that comes back meanwhile is refused with a retryable error rather than opening the
    /// ledger a second time. Returns false if the topic was not loaded.
    pub async fn unload(&self, name: &TopicName, assigned: Option<String>) -> bool {
        if !name.is_persistent() {
            return self.unload_np(name, assigned);
        }
        let key = name.to_string();
        let cell = self.topics.lock().await.get(&key).cloned();
        let Some(t) = cell.and_then(|c| c.get().cloned()) else {
            return false;
        };
        t.close_to(assigned).await;
        let mut topics = self.topics.lock().await;
        if topics
            .get(&key)
            .and_then(|c| c.get())
            .is_some_and(|x| Arc::ptr_eq(x, &t))
        {
            topics.remove(&key);
            self.metrics.topics.dec();
        }
        info!(topic = %name, "topic unloaded");
        true
    }

    /// Closes every topic: flushes cursors and closes ledgers.
    pub async fn close_all(&self) {
        let topics: Vec<Arc<Topic>> = self
            .topics
            .lock()
            .await
            .drain()
            .filter_map(|(_, c)| c.get().cloned())
            .collect();
        // Topics close independently: do them concurrently (bounded) so shutdown stays quick.
        futures::stream::iter(topics)
            .for_each_concurrent(64, |t| async move { t.close().await })
            .await;
        self.close_all_np();
    }
}
