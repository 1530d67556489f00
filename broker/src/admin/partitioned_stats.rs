//! Merging the stats of a partitioned topic's partitions into Pulsar's `PartitionedTopicStats`
//! shape (counters summed, per-subscription backlogs summed), for answers computed here and for
//! answers gathered from other brokers (`crate::cluster::fanout`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The stats of a partition that is not loaded anywhere.
pub fn unloaded_partition() -> Value {
    json!({ "msgInCounter": 0, "bytesInCounter": 0, "storageSize": 0, "publishers": [], "subscriptions": {} })
}

/// Merges `(partition name, its stats)` of the `parts` partitions; `per_partition` keeps each
/// partition's own stats under `partitions`.
pub fn merge(parts: u32, partitions: Vec<(String, Value)>, per_partition: bool) -> Value {
    let mut per = serde_json::Map::new();
    let mut subs: BTreeMap<String, u64> = BTreeMap::new();
    let (mut msg_in, mut bytes_in, mut storage) = (0u64, 0u64, 0u64);
    for (name, st) in partitions {
        msg_in += st["msgInCounter"].as_u64().unwrap_or(0);
        bytes_in += st["bytesInCounter"].as_u64().unwrap_or(0);
        storage += st["storageSize"].as_u64().unwrap_or(0);
        if let Some(m) = st["subscriptions"].as_object() {
            for (k, v) in m {
                *subs.entry(k.clone()).or_default() += v["msgBacklog"].as_u64().unwrap_or(0);
            }
        }
        per.insert(name, st);
    }
    let subs: serde_json::Map<String, Value> = subs
        .into_iter()
        .map(|(k, b)| (k, json!({ "msgBacklog": b })))
        .collect();
    json!({
        "metadata": { "partitions": parts },
        "msgInCounter": msg_in,
        "bytesInCounter": bytes_in,
        "storageSize": storage,
        "subscriptions": subs,
        "publishers": [],
        "partitions": if per_partition { Value::Object(per) } else { json!({}) },
    })
}
