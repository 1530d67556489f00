//! What the subscription task reports for topic stats, internal stats and metrics.

use strata_proto::pulsar::command_subscribe::SubType;

use super::actor::Actor;
use super::types::SubscriptionSnapshot;

/// Acknowledged ranges shown by internal stats, at most.
const MAX_RANGES_SHOWN: usize = 1000;

/// Pulsar's name of a subscription type (`Key_Shared`, not `KeyShared`).
pub fn sub_type_name(t: SubType) -> &'static str {
    match t {
        SubType::Exclusive => "Exclusive",
        SubType::Shared => "Shared",
        SubType::Failover => "Failover",
        SubType::KeyShared => "Key_Shared",
    }
}

impl Actor {
    /// The subscription's statistics now.
    pub(super) fn stats_snapshot(&self) -> SubscriptionSnapshot {
        let md = self.acks.mark_delete();
        let backlog = self.ml.entries_after(md);
        let consumers: Vec<_> = self
            .consumers
            .iter()
            .map(|c| {
                let mut s = c.stats(backlog);
                // No unacked-messages limit exists yet: `blocked` stays false.
                s.sub_type = sub_type_name(c.spec.sub_type).to_owned();
                s
            })
            .collect();
        let mut redelivered = crate::stats::MeterReading::default();
        for c in &consumers {
            redelivered.add(&c.redelivered);
        }
        let active = self
            .dispatcher
            .active()
            .and_then(|k| self.consumers.find(k))
            .map(|c| c.spec.name.clone());
        SubscriptionSnapshot {
            sub_type: sub_type_name(self.dispatcher.sub_type()).to_owned(),
            unacked: consumers.iter().map(|c| c.unacked).sum(),
            consumers,
            backlog,
            delayed: self.delayed.len() as u64,
            out: self.out.read(),
            redelivered,
            mark_delete: md,
            read_position: self.reads.position().max(md),
            individually_deleted: self.acks.deleted_ranges_text(MAX_RANGES_SHOWN),
            deleted_ranges: self.acks.range_count(),
            active_consumer: active,
            dispatch_throttled: self.rate.throttled_times(),
        }
    }
}
