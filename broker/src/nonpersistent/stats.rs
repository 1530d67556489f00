//! Pulsar's `NonPersistentTopicStats` of a non-persistent topic (`GET .../stats`): the
//! persistent shape without storage, backlog or cursor fields, plus `msgDropRate` on the topic,
//! each publisher and each subscription. Strata adds `msgDropCount` next to each rate (messages
//! dropped since the topic was loaded), so a drop is visible whatever the sampling window.

use serde_json::{Map, Value, json};

use super::NonPersistentTopic;
use super::member::Member;
use super::subscription::NpSubscriptionView;
use crate::stats::json::average;
use crate::stats::{ConsumerJson, MeterReading, TopicStats};
use crate::subscription::sub_type_name;

fn drop_fields(o: &mut Map<String, Value>, r: &MeterReading) {
    o.insert("msgDropRate".into(), json!(r.msg_rate));
    o.insert("msgDropCount".into(), json!(r.messages));
}

fn consumer_json(m: &Member) -> Value {
    let r = m.meter.read();
    let c = ConsumerJson {
        msg_rate_out: r.msg_rate,
        msg_throughput_out: r.byte_rate,
        bytes_out_counter: r.bytes,
        msg_out_counter: r.messages,
        consumer_name: m.name.clone(),
        available_permits: m.permits,
        address: m.client.address.clone(),
        connected_since: m.client.connected_since.clone(),
        client_version: m.client.client_version.clone(),
        metadata: m.metadata.iter().cloned().collect(),
        ..Default::default()
    };
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        // Nothing is tracked per message on a non-persistent subscription.
        o.remove("unackedMessages");
        o.remove("blockedConsumerOnUnackedMsgs");
    }
    v
}

fn subscription_json(v: NpSubscriptionView<'_>, partition: i32) -> Value {
    let out = v.out.read();
    let drops = v.drops.read();
    let active = (v.sub_type == strata_proto::pulsar::command_subscribe::SubType::Failover
        && !v.members.is_empty())
    .then(|| {
        v.members[super::dispatcher::failover_active(partition, v.members)]
            .name
            .clone()
    })
    .or_else(|| {
        (v.sub_type == strata_proto::pulsar::command_subscribe::SubType::Exclusive)
            .then(|| v.members.first().map(|m| m.name.clone()))
            .flatten()
    });
    let mut o = Map::new();
    o.insert("msgRateOut".into(), json!(out.msg_rate));
    o.insert("msgThroughputOut".into(), json!(out.byte_rate));
    o.insert("bytesOutCounter".into(), json!(out.bytes));
    o.insert("msgOutCounter".into(), json!(out.messages));
    o.insert("msgRateRedeliver".into(), json!(0.0));
    o.insert("msgBacklog".into(), json!(0));
    o.insert("type".into(), json!(sub_type_name(v.sub_type)));
    o.insert("activeConsumerName".into(), json!(active));
    o.insert(
        "consumers".into(),
        Value::Array(v.members.iter().map(consumer_json).collect()),
    );
    o.insert("isDurable".into(), json!(false));
    o.insert("isReplicated".into(), json!(false));
    drop_fields(&mut o, &drops);
    Value::Object(o)
}

impl NonPersistentTopic {
    /// Pulsar's `NonPersistentTopicStats`; `owner` is the serving broker's `host:port`.
    pub fn stats(&self, owner: &str) -> Value {
        let (publishers, waiting) = self.producers.stats();
        let inr = self.series.msg_in.read();
        let out = self.series.msg_out.read();
        let st = TopicStats {
            msg_rate_in: inr.msg_rate,
            msg_throughput_in: inr.byte_rate,
            msg_rate_out: out.msg_rate,
            msg_throughput_out: out.byte_rate,
            bytes_in_counter: inr.bytes,
            msg_in_counter: inr.messages,
            bytes_out_counter: out.bytes,
            msg_out_counter: out.messages,
            average_msg_size: average(&inr),
            waiting_publishers: waiting,
            deduplication_status: "Disabled".to_owned(),
            topic_epoch: self.producers.epoch(),
            owner_broker: owner.to_owned(),
            ..Default::default()
        };
        let mut v = serde_json::to_value(st).unwrap_or_default();
        let Some(o) = v.as_object_mut() else {
            return v;
        };
        for k in [
            "nonContiguousDeletedMessagesRanges",
            "offloadedStorageSize",
            "terminated",
        ] {
            o.remove(k);
        }
        let drops = self.publisher_drops.lock().clone();
        let mut total = MeterReading::default();
        let pubs: Vec<Value> = publishers
            .into_iter()
            .map(|p| {
                let r = drops
                    .get(&p.producer_name)
                    .map(|m| m.read())
                    .unwrap_or_default();
                let mut v = serde_json::to_value(p).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    drop_fields(o, &r);
                }
                v
            })
            .collect();
        o.insert("publishers".into(), Value::Array(pubs));
        let mut subs = Map::new();
        for (name, s) in self.subs.read().iter() {
            total.add(&s.with_view(|v| v.drops.read()));
            subs.insert(
                name.clone(),
                s.with_view(|v| subscription_json(v, self.partition)),
            );
        }
        for m in drops.values() {
            total.add(&m.read());
        }
        o.insert("subscriptions".into(), Value::Object(subs));
        drop_fields(o, &total);
        v
    }

    /// What `internalStats` answers for a non-persistent topic: there is no managed ledger, so
    /// no ledgers and no cursors; the counters of what was published.
    pub fn internal_stats(&self) -> Value {
        let names = self.subscription_names();
        json!({
            "entriesAddedCounter": self.published.load(std::sync::atomic::Ordering::Relaxed),
            "numberOfEntries": 0,
            "totalSize": 0,
            "currentLedgerEntries": 0,
            "currentLedgerSize": 0,
            "lastConfirmedEntry": "0:-1",
            "state": "NonPersistent",
            "ledgers": [],
            "cursors": {},
            "subscriptions": names,
        })
    }
}
