//! The broker's metadata session: what happens when it is lost (open topics keep serving, no
//! bundle is acquired) and re-established (owner keys re-created, bundles taken meanwhile dropped).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use strata_meta::Expected;
use tracing::{debug, info, warn};

use super::{ClusterOwnership, NsBundle, REESTABLISH_BACKOFF};

impl ClusterOwnership {
    /// Forgets `b` without touching its key (another broker owns it now) and closes its topics.
    pub(super) async fn drop_lost_bundle(&self, b: &NsBundle) {
        self.forget_bundle(b);
        self.unload_topics(b, None).await;
        info!(bundle = %b, "bundle released (owned by another broker now)");
    }

    pub(super) async fn session_loop(self: Arc<Self>) {
        loop {
            let s = self.session();
            tokio::select! {
                () = s.lost() => {}
                () = self.cancel.cancelled() => return,
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            self.metrics.sessions_lost.inc();
            warn!(
                session = s.id(),
                bundles = self.owned.lock().len(),
                "session lost: open topics keep serving, no bundle is acquired until it is re-established"
            );
            if let Some(svc) = self.service() {
                svc.set_ready(false);
            }
            let mut backoff = REESTABLISH_BACKOFF.start();
            let new = loop {
                match self.store.reestablish_session(&s).await {
                    Ok(r) => break r,
                    Err(e) => {
                        debug!(error = %e, "re-establishing the session failed; retrying");
                        tokio::select! {
                            _ = backoff.sleep() => {}
                            () = self.cancel.cancelled() => return,
                        }
                    }
                }
            };
            *self.session.write() = new.session.clone();
            self.session_gen.send_modify(|g| *g += 1);
            info!(
                session = new.session.id(),
                recreated = new.recreated.len(),
                "session re-established"
            );
            self.reclaim_bundles().await;
            if let Some(svc) = self.service() {
                svc.set_ready(true);
            }
        }
    }

    /// After a re-establish (and every load-report interval): make sure every bundle still held
    /// has its owner key under the current session, re-creating it if absent (create-if-absent).
    /// A bundle another broker owns now is dropped (its topics unloaded: they were or will be
    /// fenced). On errors the bundle is kept (the bookies' fencing protects the data) and checked
    /// again next time.
    pub(super) async fn reclaim_bundles(&self) {
        let Some(me) = self.me() else { return };
        let bundles: Vec<NsBundle> = self
            .owned
            .lock()
            .iter()
            .filter(|(_, st)| !st.releasing)
            .map(|(b, _)| b.clone())
            .collect();
        let owner = self.owner_value(&me, false);
        for b in bundles {
            let session = self.session();
            if session.is_lost() {
                return;
            }
            match self.read_owner(&b).await {
                Ok(Some((o, stat))) => {
                    if o.broker_id == me.broker_id && stat.session == Some(session.id()) {
                        continue;
                    }
                    if o.broker_id != me.broker_id {
                        warn!(bundle = %b, owner = %o.broker_id, "bundle taken by another broker while our session was away");
                        self.drop_lost_bundle(&b).await;
                        continue;
                    }
                    // Ours under an old session: its lease is ending; re-create below.
                    if let Err(e) = self
                        .store
                        .delete(&self.owner_key(&b), Expected::Version(stat.version))
                        .await
                    {
                        debug!(bundle = %b, error = %e, "clearing our old owner key failed");
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(bundle = %b, error = %e, "checking bundle ownership failed; will retry");
                    continue;
                }
            }
            // Not while the bundle is being released (that would re-create the key it deletes).
            let _g = self.acquire_lock.lock().await;
            if self.owned.lock().get(&b).is_none_or(|st| st.releasing) {
                continue;
            }
            match self
                .meta
                .try_own_bundle(&session, &b.tenant, &b.namespace, &b.range, &owner)
                .await
            {
                Ok(Some(_)) => info!(bundle = %b, "bundle ownership re-established"),
                Ok(None) => match self.read_owner(&b).await {
                    Ok(Some((o, _))) if o.broker_id != me.broker_id => {
                        warn!(bundle = %b, owner = %o.broker_id, "bundle taken by another broker while our session was away");
                        self.drop_lost_bundle(&b).await;
                    }
                    _ => {}
                },
                Err(e) => {
                    debug!(bundle = %b, error = %e, "re-creating bundle owner key failed; will retry")
                }
            }
        }
    }
}
