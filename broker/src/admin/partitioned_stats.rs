//! Merging the stats of a partitioned topic's partitions into Pulsar's `PartitionedTopicStats`
//! shape, for answers computed here and for answers gathered from other brokers
//! (`crate::cluster::fanout`): rates, throughputs, counters and sizes summed, publishers listed
//! together, subscriptions merged by name (their numbers summed, their consumers listed
//! together), `averageMsgSize` recomputed.

use serde_json::{Map, Value, json};

/// The stats of a partition that is not loaded anywhere.
pub fn unloaded_partition() -> Value {
    json!({ "msgInCounter": 0, "bytesInCounter": 0, "storageSize": 0, "publishers": [], "subscriptions": {} })
}

/// Adds `from` into `into`: numbers summed (the maximum for `max_keys`), arrays appended,
/// booleans or-ed, strings kept from the first object that has them; `nested` names the keys
/// whose values are objects of objects merged the same way, by key.
fn add_object(into: &mut Map<String, Value>, from: &Map<String, Value>, nested: &[&str]) {
    for (k, v) in from {
        let Some(cur) = into.get_mut(k) else {
            into.insert(k.clone(), v.clone());
            continue;
        };
        match (cur, v) {
            (Value::Number(a), Value::Number(b)) => {
                let sum = if k == "topicEpoch" {
                    a.as_f64().unwrap_or(0.0).max(b.as_f64().unwrap_or(0.0))
                } else {
                    a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)
                };
                *a = if a.is_f64() || b.is_f64() {
                    serde_json::Number::from_f64(sum).unwrap_or_else(|| 0.into())
                } else {
                    (sum as u64).into()
                };
            }
            (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
            (Value::Bool(a), Value::Bool(b)) => *a |= *b,
            (Value::Object(a), Value::Object(b)) if nested.contains(&k.as_str()) => {
                for (name, sub) in b {
                    match (a.get_mut(name), sub) {
                        (Some(Value::Object(x)), Value::Object(y)) => add_object(x, y, &[]),
                        _ => {
                            a.insert(name.clone(), sub.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Merges `(partition name, its stats)` of the `parts` partitions; `per_partition` keeps each
/// partition's own stats under `partitions`.
pub fn merge(parts: u32, partitions: Vec<(String, Value)>, per_partition: bool) -> Value {
    let mut per = Map::new();
    let mut total = Map::new();
    for (name, st) in partitions {
        if let Some(o) = st.as_object() {
            add_object(&mut total, o, &["subscriptions"]);
        }
        per.insert(name, st);
    }
    let rate = total
        .get("msgRateIn")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let tput = total
        .get("msgThroughputIn")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    if rate > 0.0 {
        total.insert("averageMsgSize".into(), json!(tput / rate));
    }
    total.insert("metadata".into(), json!({ "partitions": parts }));
    total
        .entry("publishers")
        .or_insert_with(|| Value::Array(Vec::new()));
    total
        .entry("subscriptions")
        .or_insert_with(|| Value::Object(Map::new()));
    total.insert(
        "partitions".into(),
        if per_partition {
            Value::Object(per)
        } else {
            json!({})
        },
    );
    Value::Object(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_numbers_lists_publishers_and_merges_subscriptions_by_name() {
        let p0 = json!({
            "msgRateIn": 10.0, "msgThroughputIn": 1000.0, "msgInCounter": 5, "topicEpoch": 1,
            "deduplicationStatus": "Disabled",
            "publishers": [{"producerName": "a"}],
            "subscriptions": {"s": {"msgBacklog": 3, "type": "Shared", "consumers": [{"consumerName": "c0"}]}}
        });
        let p1 = json!({
            "msgRateIn": 30.0, "msgThroughputIn": 1000.0, "msgInCounter": 7, "topicEpoch": 4,
            "deduplicationStatus": "Disabled",
            "publishers": [{"producerName": "b"}],
            "subscriptions": {"s": {"msgBacklog": 4, "type": "Shared", "consumers": [{"consumerName": "c1"}]},
                              "t": {"msgBacklog": 1}}
        });
        let m = merge(2, vec![("p0".into(), p0), ("p1".into(), p1)], false);
        assert_eq!(m["msgRateIn"], json!(40.0));
        assert_eq!(m["msgInCounter"], json!(12));
        assert_eq!(m["topicEpoch"], json!(4));
        assert_eq!(m["averageMsgSize"], json!(50.0));
        assert_eq!(m["publishers"].as_array().map(Vec::len), Some(2));
        assert_eq!(m["subscriptions"]["s"]["msgBacklog"], json!(7));
        assert_eq!(m["subscriptions"]["s"]["type"], json!("Shared"));
        assert_eq!(
            m["subscriptions"]["s"]["consumers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(m["subscriptions"]["t"]["msgBacklog"], json!(1));
        assert_eq!(m["metadata"]["partitions"], json!(2));
        assert_eq!(m["deduplicationStatus"], json!("Disabled"));
    }
}
