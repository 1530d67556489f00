//! Load reports: each broker writes its load (bundles, topics, message rates) as an ephemeral key
//! the leader reads to assign and balance bundles.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strata_common::clock::now_ms;
use strata_meta::{EphemeralOptions, Expected};
use tracing::debug;

use super::ClusterOwnership;

/// A broker's load report (`/strata/loadbalance/brokers/{id}`, ephemeral JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadReport {
    /// Broker id.
    pub broker_id: String,
    /// `pulsar://` URL.
    pub pulsar_url: String,
    /// `http://` URL.
    pub http_url: String,
    /// Bundles owned.
    pub bundles: usize,
    /// Topics loaded.
    pub topics: usize,
    /// Messages in per second over the last interval.
    pub msg_rate_in: f64,
    /// Messages out per second over the last interval.
    pub msg_rate_out: f64,
    /// When it was written (ms since the epoch).
    pub timestamp_ms: u64,
}

#[derive(Default)]
pub(super) struct LoadRates {
    last: Option<(Instant, u64, u64)>,
}

impl LoadRates {
    pub(super) fn update(&mut self, msg_in: u64, msg_out: u64) -> (f64, f64) {
        let now = Instant::now();
        let r = match self.last {
            Some((at, i, o)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (
                    msg_in.saturating_sub(i) as f64 / secs,
                    msg_out.saturating_sub(o) as f64 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, msg_in, msg_out));
        r
    }
}

impl ClusterOwnership {
    pub(super) async fn load_report_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.opts.load_report_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut rates = LoadRates::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.write_load_report(&mut rates).await;
                    self.reclaim_bundles().await;
                }
                () = self.cancel.cancelled() => return,
            }
        }
    }

    pub(super) async fn write_load_report(&self, rates: &mut LoadRates) {
        let (Some(me), Some(svc)) = (self.me(), self.service()) else {
            return;
        };
        let session = self.session();
        if session.is_lost() {
            return;
        }
        let topics = svc.loaded_topics().await;
        let (mut msg_in, mut msg_out) = (0u64, 0u64);
        for t in &topics {
            msg_in += t.series().msg_in.totals().0;
            msg_out += t.series().msg_out.totals().0;
        }
        let (rate_in, rate_out) = rates.update(msg_in, msg_out);
        let report = LoadReport {
            broker_id: me.broker_id.clone(),
            pulsar_url: me.pulsar_url.clone(),
            http_url: me.http_url.clone(),
            bundles: self.owned.lock().len(),
            topics: topics.len(),
            msg_rate_in: rate_in,
            msg_rate_out: rate_out,
            timestamp_ms: now_ms(),
        };
        let Ok(bytes) = serde_json::to_vec(&report) else {
            return;
        };
        if let Err(e) = self
            .store
            .put_ephemeral(
                &session,
                &self.load_report_key(&me.broker_id),
                Bytes::from(bytes),
                Expected::Any,
                EphemeralOptions::default(),
            )
            .await
        {
            debug!(error = %e, "writing the load report failed");
        }
    }
}
