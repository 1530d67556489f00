//! Bundle ownership: which bundle a topic is in, who owns it (and whether that owner is still
//! reachable), acquiring and releasing bundles, and executing the leader's unload requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strata_meta::Expected;
use strata_meta::model::{BrokerInfo, BundleOwner, BundlesData, Policies};
use tracing::{debug, info, warn};

use super::leadership::UnloadRequest;
use super::{
    BUNDLES_TTL, ClusterOwnership, NsBundle, Owned, PENDING_FOR, bundle, meta_err, not_ready,
    parse_bundle_key,
};
use crate::error::Result;
use crate::service::Owner;
use crate::topic_name::TopicName;

impl ClusterOwnership {
    /// The bundle `topic` belongs to (namespace bundle boundaries cached for a while).
    pub async fn bundle_for(&self, topic: &TopicName) -> Result<NsBundle> {
        let k = (topic.tenant.clone(), topic.namespace.clone());
        let cached = self
            .bundles_cache
            .lock()
            .get(&k)
            .filter(|(_, at)| at.elapsed() < BUNDLES_TTL)
            .map(|(d, _)| d.clone());
        let data = match cached {
            Some(d) => d,
            None => {
                let key = self.meta.paths().namespace(&k.0, &k.1);
                let data = match self.meta.get::<Policies>(&key).await {
                    Ok(Some((p, _))) => p.bundles,
                    Ok(None) => BundlesData::default(),
                    Err(e) => {
                        // Fall back on a stale value rather than failing during an outage.
                        match self.bundles_cache.lock().get(&k) {
                            Some((d, _)) => return Ok(bundle::bundle_of(topic, d)),
                            None => return Err(meta_err(e)),
                        }
                    }
                };
                self.bundles_cache
                    .lock()
                    .insert(k, (data.clone(), Instant::now()));
                data
            }
        };
        Ok(bundle::bundle_of(topic, &data))
    }

    pub(super) async fn read_owner(
        &self,
        b: &NsBundle,
    ) -> Result<Option<(BundleOwner, strata_meta::Stat)>> {
        self.meta
            .get::<BundleOwner>(&self.owner_key(b))
            .await
            .map_err(meta_err)
    }

    /// Who owns `b` according to the store, clearing a key left by an earlier incarnation of
    /// this broker (same id, another session: that process is gone, since we hold its port).
    pub(super) async fn remote_owner(
        &self,
        b: &NsBundle,
        me: &BrokerInfo,
    ) -> Result<Option<Owner>> {
        let Some((o, stat)) = self.read_owner(b).await? else {
            return Ok(None);
        };
        if o.broker_id == me.broker_id {
            if stat.session == Some(self.session().id()) && !o.disabled {
                // Held by our session but not tracked (a create whose answer was lost, or a
                // delete that failed): it is ours, serve it.
                let mut g = self.owned.lock();
                if !g.contains_key(b) {
                    info!(bundle = %b, "bundle acquired (owner key already held by this session)");
                    g.insert(b.clone(), Owned { releasing: false });
                }
                return Ok(Some(Owner::Local));
            }
            info!(bundle = %b, "removing a stale owner key of this broker (earlier run or unfinished release)");
            return self.delete_owner_key(b, stat.version).await;
        }
        if o.disabled {
            return Err(not_ready(format!(
                "bundle {b} is being unloaded by {}",
                o.broker_id
            )));
        }
        if self.refused(&o.broker_url).await {
            // Nothing listens where the owner was (it died; its lease has not expired yet):
            // take the bundle over now. Leases are not locks; the new owner fences the old
            // one's ledgers, so this is safe even if the owner were somehow alive.
            warn!(bundle = %b, owner = %o.broker_id, "bundle owner refuses connections: taking the bundle over before its lease expires");
            return self.delete_owner_key(b, stat.version).await;
        }
        Ok(Some(Owner::Remote {
            broker_url: o.broker_url,
            http_url: o.http_url,
            broker_url_tls: o.broker_url_tls,
        }))
    }

    /// Deletes an owner key that is not this session's (an earlier run of this broker, or a dead
    /// owner) if it is still at `version`: the bundle is then unowned (`Ok(None)`).
    async fn delete_owner_key(&self, b: &NsBundle, version: u64) -> Result<Option<Owner>> {
        match self
            .store
            .delete(&self.owner_key(b), Expected::Version(version))
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if e.is_conflict() => Err(not_ready("bundle ownership changing")),
            Err(e) => Err(meta_err(e)),
        }
    }

    /// Whether a `pulsar://host:port` refuses TCP connections right now (nothing listens: the
    /// process is gone). Timeouts and other errors count as reachable (be conservative).
    pub(super) async fn refused(&self, url: &str) -> bool {
        if !self.opts.probe_owners {
            return false;
        }
        let Some(addr) = url
            .strip_prefix("pulsar://")
            .map(|a| a.trim_end_matches('/').to_owned())
        else {
            return false;
        };
        if self
            .reachable
            .lock()
            .get(&addr)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(2))
        {
            return false;
        }
        match tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr.as_str()),
        )
        .await
        {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => true,
            _ => {
                self.reachable.lock().insert(addr, Instant::now());
                false
            }
        }
    }

    pub(super) fn local_state(&self, b: &NsBundle) -> Option<Result<Owner>> {
        let g = self.owned.lock();
        let st = g.get(b)?;
        Some(if st.releasing {
            Err(not_ready(format!("bundle {b} is being unloaded")))
        } else {
            Ok(Owner::Local)
        })
    }

    /// Acquires `b` (create-if-absent owner key) unless the session is lost or we are stopping.
    pub(super) async fn acquire(&self, b: &NsBundle, me: &BrokerInfo) -> Result<Owner> {
        let _g = self.acquire_lock.lock().await;
        if let Some(r) = self.local_state(b) {
            return r;
        }
        if self.stopping.load(Ordering::Acquire) {
            return Err(not_ready("broker is shutting down"));
        }
        let session = self.session();
        if session.is_lost() {
            return Err(not_ready(
                "metadata session lost: not acquiring bundles until it is re-established",
            ));
        }
        let owner = self.owner_value(me, false);
        match self
            .meta
            .try_own_bundle(&session, &b.tenant, &b.namespace, &b.range, &owner)
            .await
        {
            Ok(Some(_)) => {
                let n = {
                    let mut g = self.owned.lock();
                    g.insert(b.clone(), Owned { releasing: false });
                    g.len()
                };
                self.metrics.acquired.inc();
                self.metrics.bundles_owned.set(n as i64);
                info!(bundle = %b, broker = %me.broker_id, "bundle acquired");
                Ok(Owner::Local)
            }
            Ok(None) => match self.remote_owner(b, me).await? {
                Some(o) => Ok(o),
                None => Err(not_ready(format!("bundle {b} ownership changing; retry"))),
            },
            Err(e) => Err(meta_err(e)),
        }
    }

    pub(super) async fn resolve(&self, topic: &TopicName, acquire: bool) -> Result<Owner> {
        let b = self.bundle_for(topic).await?;
        if let Some(r) = self.local_state(&b) {
            return r;
        }
        let Some(me) = self.me() else {
            return Err(not_ready("broker is starting"));
        };
        if let Some(o) = self.remote_owner(&b, &me).await? {
            return Ok(o);
        }
        let stopping = self.stopping.load(Ordering::Acquire);
        if acquire && !stopping {
            return self.acquire(&b, &me).await;
        }
        // Unowned and not ours to take: the leader decides.
        let leader = self
            .meta
            .get::<BrokerInfo>(&self.leader_key())
            .await
            .map_err(meta_err)?
            .map(|(l, _)| l);
        let leader = match leader {
            // A dead leader (its lease not expired yet) cannot answer: decide here.
            Some(l) if l.broker_id != me.broker_id && self.refused(&l.pulsar_url).await => None,
            l => l,
        };
        match leader {
            Some(l) if l.broker_id != me.broker_id => Ok(Owner::Leader {
                broker_url: l.pulsar_url,
                http_url: l.http_url,
                broker_url_tls: l.pulsar_url_tls,
            }),
            // We lead (or nobody does yet): pick the least loaded broker.
            _ => {
                let exclude = stopping.then_some(me.broker_id.as_str());
                // The same answer for a bundle until the chosen broker took it.
                let recent = {
                    let mut g = self.assignments.lock();
                    g.retain(|_, (_, at)| at.elapsed() < PENDING_FOR);
                    g.get(&b)
                        .map(|(c, _)| c.clone())
                        .filter(|c| !stopping || c.broker_id != me.broker_id)
                };
                let chosen = match recent {
                    Some(c) => Some(c),
                    None => {
                        let c = self.choose_broker(exclude).await?;
                        if let Some(c) = &c {
                            self.assignments
                                .lock()
                                .insert(b.clone(), (c.clone(), Instant::now()));
                        }
                        c
                    }
                };
                match chosen {
                    Some(c) if c.broker_id != me.broker_id => {
                        debug!(bundle = %b, to = %c.broker_id, "assigning bundle");
                        Ok(Owner::Remote {
                            broker_url: c.pulsar_url,
                            http_url: c.http_url,
                            broker_url_tls: c.pulsar_url_tls,
                        })
                    }
                    Some(_) => self.acquire(&b, &me).await,
                    None if stopping => Err(not_ready("no other broker to assign the bundle to")),
                    None => self.acquire(&b, &me).await,
                }
            }
        }
    }

    /// Gives `b` up: marks the owner key disabled, closes its topics (telling clients
    /// `assigned` when given), deletes the key if this session still holds it. Returns false if
    /// the bundle was not owned (or is already being released).
    pub async fn release(&self, b: &NsBundle, assigned: Option<String>) -> bool {
        {
            let mut g = self.owned.lock();
            match g.get_mut(b) {
                Some(st) if !st.releasing => st.releasing = true,
                _ => return false,
            }
        }
        let key = self.owner_key(b);
        let session = self.session();
        let ours = match tokio::time::timeout(Duration::from_secs(3), self.read_owner(b)).await {
            Ok(Ok(Some((_, stat)))) if stat.session == Some(session.id()) => Some(stat),
            _ => None,
        };
        if let (Some(stat), Some(me)) = (ours, self.me()) {
            let v = self.owner_value(&me, true);
            if let Ok(bytes) = strata_meta::model::encode(&v) {
                let _ = tokio::time::timeout(
                    Duration::from_secs(3),
                    self.store.put(&key, bytes, Expected::Version(stat.version)),
                )
                .await;
            }
        }
        self.unload_topics(b, assigned.clone()).await;
        let _g = self.acquire_lock.lock().await;
        if ours.is_some() {
            match tokio::time::timeout(
                Duration::from_secs(3),
                self.store.delete_ephemeral(&session, &key, Expected::Any),
            )
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(bundle = %b, error = %e, "delete bundle owner key failed"),
                Err(_) => warn!(bundle = %b, "delete bundle owner key timed out"),
            }
        } else {
            session.forget(&key);
        }
        self.forget_bundle(b);
        info!(bundle = %b, assigned = assigned.as_deref().unwrap_or(""), "bundle released");
        true
    }

    pub(super) fn forget_bundle(&self, b: &NsBundle) {
        let n = {
            let mut g = self.owned.lock();
            g.remove(b);
            g.len()
        };
        self.metrics.released.inc();
        self.metrics.bundles_owned.set(n as i64);
    }

    /// Closes the loaded topics of `b`.
    pub(super) async fn unload_topics(&self, b: &NsBundle, assigned: Option<String>) {
        let Some(svc) = self.service() else { return };
        let mut names = Vec::new();
        for t in svc.loaded_topics().await {
            if t.name().tenant == b.tenant
                && t.name().namespace == b.namespace
                && self.bundle_for(t.name()).await.is_ok_and(|x| x == *b)
            {
                names.push(t.name().clone());
            }
        }
        for t in svc.loaded_np_topics() {
            if t.name().tenant == b.tenant
                && t.name().namespace == b.namespace
                && self.bundle_for(t.name()).await.is_ok_and(|x| x == *b)
            {
                names.push(t.name().clone());
            }
        }
        futures::future::join_all(names.iter().map(|n| svc.unload(n, assigned.clone()))).await;
    }

    pub(super) async fn unload_request_loop(self: Arc<Self>) {
        let Some(me) = self.me() else { return };
        let prefix = self.unload_prefix(&me.broker_id);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.cancel.cancelled() => return,
            }
            let Ok(scan) = self.store.scan(&prefix).await else {
                continue;
            };
            for kv in scan.entries {
                let rel = kv.key.strip_prefix(&prefix).unwrap_or(&kv.key);
                if let Some(b) = parse_bundle_key(rel) {
                    let req: UnloadRequest =
                        serde_json::from_slice(&kv.value.value).unwrap_or_default();
                    let assigned = (!req.assigned_broker_url.is_empty())
                        .then(|| req.assigned_broker_url.clone());
                    if self.release(&b, assigned).await {
                        info!(bundle = %b, to = %req.assigned_broker_id, "bundle unloaded on the leader's request");
                    }
                }
                let _ = self.store.delete(&kv.key, Expected::Any).await;
            }
        }
    }
}
