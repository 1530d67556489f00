//! Leadership: the leader assigns unowned bundles to the least loaded live broker, balances
//! bundles conservatively (unload requests to their owners) and schedules ledger auto-recovery.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_meta::Expected;
use strata_meta::model::{BrokerInfo, BundleOwner, encode_segment};
use tracing::{debug, info, warn};

use super::load_report::LoadReport;
use super::{
    ClusterOwnership, MOVED_COOLDOWN, NsBundle, PENDING_FOR, bundle, meta_err, parse_bundle_key,
};
use crate::error::Result;
use crate::metadata::MetaError;

/// An unload request from the leader to a bundle's owner.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct UnloadRequest {
    pub(super) assigned_broker_id: String,
    pub(super) assigned_broker_url: String,
}

impl ClusterOwnership {
    /// The live brokers and the one an unowned bundle should go to.
    pub(super) async fn choose_broker(&self, exclude: Option<&str>) -> Result<Option<BrokerInfo>> {
        let brokers: Vec<BrokerInfo> = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .filter(|b| Some(b.broker_id.as_str()) != exclude)
            .collect();
        let mut owned: HashMap<String, usize> = HashMap::new();
        for (_, o, _) in self
            .meta
            .list::<BundleOwner>(&format!("{}/bundle-owners", self.root()))
            .await
            .map_err(meta_err)?
        {
            *owned.entry(o.broker_id).or_default() += 1;
        }
        let mut topics: HashMap<String, usize> = HashMap::new();
        if let Ok(scan) = self
            .store
            .scan(&format!("{}/loadbalance/brokers/", self.root()))
            .await
        {
            for kv in scan.entries {
                if let Ok(r) = serde_json::from_slice::<LoadReport>(&kv.value.value) {
                    topics.insert(r.broker_id, r.topics);
                }
            }
        }
        let pending: HashMap<String, usize> = {
            let mut p = self.pending.lock();
            p.retain(|(_, at)| at.elapsed() < PENDING_FOR);
            let mut m = HashMap::new();
            for (b, _) in p.iter() {
                *m.entry(b.clone()).or_default() += 1;
            }
            m
        };
        let mut ids: Vec<String> = brokers.iter().map(|b| b.broker_id.clone()).collect();
        // Skip brokers that died (registration not expired yet: nothing listens any more).
        let id = loop {
            let Some(id) = bundle::least_loaded(&ids, &owned, &pending, &topics).cloned() else {
                return Ok(None);
            };
            let url = brokers
                .iter()
                .find(|b| b.broker_id == id)
                .map(|b| b.pulsar_url.clone())
                .unwrap_or_default();
            if self.me().is_some_and(|m| m.broker_id == id) || !self.refused(&url).await {
                break id;
            }
            ids.retain(|x| *x != id);
        };
        self.pending.lock().push((id.clone(), Instant::now()));
        Ok(brokers.into_iter().find(|b| b.broker_id == id))
    }

    pub(super) async fn leader_loop(self: Arc<Self>) {
        let mut gen_rx = self.session_gen.subscribe();
        let Some(me) = self.me() else { return };
        let value = match strata_meta::model::encode(&me) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot encode the leader value");
                return;
            }
        };
        let key = self.leader_key();
        while !self.cancel.is_cancelled() {
            let session = self.session();
            if session.is_lost() {
                tokio::select! {
                    _ = gen_rx.changed() => continue,
                    () = self.cancel.cancelled() => return,
                }
            }
            let r = tokio::select! {
                r = strata_meta::election::acquire(&self.store, &session, &key, value.clone()) => r,
                () = self.cancel.cancelled() => return,
            };
            let l = match r {
                Ok(l) => l,
                Err(e) => {
                    debug!(error = %e, "leader election failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = self.cancel.cancelled() => return,
                    }
                    continue;
                }
            };
            info!(broker = %me.broker_id, "became leader");
            self.is_leader.store(true, Ordering::Release);
            self.metrics.is_leader.set(1);
            *self.leadership.lock().await = Some(l.clone());
            let duties = self.cancel.child_token();
            if let Some((bookies, opts)) = self.opts.autorecovery.clone() {
                let meta = self.meta.clone();
                let c = duties.clone();
                self.tasks.spawn(async move {
                    strata_ledger::autorecovery::run(meta, bookies, opts, c).await;
                });
            }
            let mut tick = tokio::time::interval(self.opts.balance_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last_plan: Option<bundle::Move> = None;
            let mut last_move: Option<Instant> = None;
            loop {
                tokio::select! {
                    () = l.lost() => {
                        warn!("leadership lost with the session");
                        break;
                    }
                    () = duties.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = self.balance(&mut last_plan, &mut last_move).await {
                            debug!(error = %e, "balancing skipped");
                        }
                    }
                }
            }
            duties.cancel();
            self.is_leader.store(false, Ordering::Release);
            self.metrics.is_leader.set(0);
            self.leadership.lock().await.take();
        }
    }

    /// One balancing round of the leader.
    pub(super) async fn balance(
        &self,
        last_plan: &mut Option<bundle::Move>,
        last_move: &mut Option<Instant>,
    ) -> Result<()> {
        let live: Vec<String> = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .map(|b| b.broker_id)
            .collect();
        let mut owned: BTreeMap<String, Vec<NsBundle>> = BTreeMap::new();
        let prefix = format!("{}/bundle-owners/", self.root());
        for (k, o, _) in self
            .meta
            .list::<BundleOwner>(&format!("{}/bundle-owners", self.root()))
            .await
            .map_err(meta_err)?
        {
            if o.disabled {
                continue;
            }
            let Some(b) = parse_bundle_key(k.strip_prefix(&prefix).unwrap_or(&k)) else {
                continue;
            };
            owned.entry(o.broker_id).or_default().push(b);
        }
        let moved = {
            let mut m = self.moved.lock();
            m.retain(|_, (at, _, _)| at.elapsed() < MOVED_COOLDOWN);
            m.clone()
        };
        // Moves in flight (not executed yet, or the bundle not picked up yet) count on their
        // target, so one imbalance is not corrected twice.
        for (b, (_, from, to)) in &moved {
            let holder = owned
                .iter()
                .find(|(_, v)| v.contains(b))
                .map(|(k, _)| k.clone());
            let in_flight = holder.as_ref().is_none_or(|h| h == from);
            if in_flight {
                if let Some(h) = holder
                    && let Some(v) = owned.get_mut(&h)
                {
                    v.retain(|x| x != b);
                }
                owned.entry(to.clone()).or_default().push(b.clone());
            }
        }
        let recent = |b: &NsBundle| moved.contains_key(b);
        let plan = bundle::plan_move(&live, &owned, &recent, self.opts.balance_threshold);
        // Act only on an imbalance seen twice in a row, and at most once per cooldown.
        let seen_before =
            matches!((&plan, &*last_plan), (Some(p), Some(q)) if p.from == q.from && p.to == q.to);
        *last_plan = plan.clone();
        let Some(m) = plan else { return Ok(()) };
        if !seen_before || last_move.is_some_and(|t| t.elapsed() < self.opts.balance_interval * 3) {
            return Ok(());
        }
        let Some(to) = self
            .meta
            .brokers()
            .await
            .map_err(meta_err)?
            .into_iter()
            .find(|b| b.broker_id == m.to)
        else {
            return Ok(());
        };
        let req = UnloadRequest {
            assigned_broker_id: to.broker_id.clone(),
            assigned_broker_url: to.pulsar_url.clone(),
        };
        let key = format!(
            "{}{}/{}/{}",
            self.unload_prefix(&m.from),
            encode_segment(&m.bundle.tenant),
            encode_segment(&m.bundle.namespace),
            m.bundle.range
        );
        let bytes =
            serde_json::to_vec(&req).map_err(|e| MetaError::InvalidArgument(e.to_string()))?;
        self.store
            .put(&key, Bytes::from(bytes), Expected::Any)
            .await
            .map_err(meta_err)?;
        self.moved.lock().insert(
            m.bundle.clone(),
            (Instant::now(), m.from.clone(), m.to.clone()),
        );
        self.pending.lock().push((m.to.clone(), Instant::now()));
        self.assignments
            .lock()
            .insert(m.bundle.clone(), (to.clone(), Instant::now()));
        *last_move = Some(Instant::now());
        *last_plan = None;
        info!(bundle = %m.bundle, from = %m.from, to = %m.to, "balancing: asked the owner to unload a bundle");
        Ok(())
    }
}
