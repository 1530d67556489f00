//! The topic's stats (`GET .../stats`, Pulsar's `TopicStats`) and internal stats
//! (`GET .../internalStats`, Pulsar's `ManagedLedgerInternalStats`), put together from its
//! series, producers, subscriptions and managed ledger.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Topic;
use crate::position::Position;
use crate::stats::json::average;
use crate::stats::{ConsumerJson, SubscriptionJson, TopicStats};
use crate::subscription::{ConsumerStats, SubscriptionSnapshot};

impl Topic {
    /// Each subscription's name, durability and statistics, by name.
    pub async fn subscription_snapshots(&self) -> Vec<(String, bool, SubscriptionSnapshot)> {
        let mut out = Vec::new();
        for s in self.subscriptions().await {
            if let Some(snap) = s.snapshot_stats().await {
                out.push((s.name().to_owned(), s.is_durable(), snap));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Estimated bytes after `p`: whole ledgers after it, and the share of `p`'s ledger after
    /// it (entries of one ledger are taken as equally sized).
    pub fn bytes_after(&self, p: Position) -> u64 {
        self.ml
            .ledgers()
            .iter()
            .map(|l| {
                if l.ledger_id.0 > p.ledger {
                    l.size
                } else if l.ledger_id.0 == p.ledger && l.entries > 0 {
                    let after = l.entries.saturating_sub((p.entry + 1).max(0) as u64);
                    (l.size as u128 * after as u128 / l.entries as u128) as u64
                } else {
                    0
                }
            })
            .sum()
    }

    /// Bytes offloaded to object storage.
    pub fn offloaded_size(&self) -> u64 {
        self.ml
            .ledgers()
            .iter()
            .filter(|l| l.offloaded)
            .map(|l| l.size)
            .sum()
    }

    /// Pulsar's topic stats; `owner` is the serving broker's `host:port`.
    pub async fn stats(&self, owner: &str) -> TopicStats {
        let subs = self.subscription_snapshots().await;
        let slowest = subs
            .iter()
            .filter(|(_, durable, _)| *durable)
            .map(|(_, _, s)| s.mark_delete)
            .min();
        let (publishers, waiting) = self.producers.stats();
        let inr = self.series.msg_in.read();
        let out = self.series.msg_out.read();
        let mut st = TopicStats {
            msg_rate_in: inr.msg_rate,
            msg_throughput_in: inr.byte_rate,
            msg_rate_out: out.msg_rate,
            msg_throughput_out: out.byte_rate,
            bytes_in_counter: inr.bytes,
            msg_in_counter: inr.messages,
            bytes_out_counter: out.bytes,
            msg_out_counter: out.messages,
            average_msg_size: average(&inr),
            storage_size: self.ml.storage_size(),
            backlog_size: slowest.map(|p| self.bytes_after(p)).unwrap_or(0),
            offloaded_storage_size: self.offloaded_size(),
            publish_rate_limited_times: self.series.publish_throttled_times(),
            publishers,
            waiting_publishers: waiting,
            deduplication_status: if self.dedup.enabled() {
                "Enabled"
            } else {
                "Disabled"
            }
            .to_owned(),
            topic_epoch: self.producers.epoch(),
            owner_broker: owner.to_owned(),
            terminated: self.ml.is_terminated(),
            ..Default::default()
        };
        for (name, durable, s) in subs {
            st.non_contiguous_deleted_messages_ranges += s.deleted_ranges;
            let json = self.subscription_json(durable, s);
            st.subscriptions.insert(name, json);
        }
        st
    }

    fn subscription_json(&self, durable: bool, s: SubscriptionSnapshot) -> SubscriptionJson {
        SubscriptionJson {
            msg_rate_out: s.out.msg_rate,
            msg_throughput_out: s.out.byte_rate,
            bytes_out_counter: s.out.bytes,
            msg_out_counter: s.out.messages,
            msg_rate_redeliver: s.redelivered.msg_rate,
            msg_backlog: s.backlog,
            msg_backlog_no_delayed: s.backlog.saturating_sub(s.delayed),
            backlog_size: self.bytes_after(s.mark_delete),
            blocked_subscription_on_unacked_msgs: s.consumers.iter().any(|c| c.blocked),
            msg_delayed: s.delayed,
            unacked_messages: s.unacked,
            sub_type: s.sub_type,
            active_consumer_name: s.active_consumer,
            consumers: s.consumers.into_iter().map(consumer_json).collect(),
            is_durable: durable,
            is_replicated: false,
            non_contiguous_deleted_messages_ranges: s.deleted_ranges,
            mark_delete_position: s.mark_delete.to_string(),
        }
    }

    /// Pulsar's `ManagedLedgerInternalStats` of the topic.
    pub async fn internal_stats(&self) -> Value {
        let ml = &self.ml;
        let ledgers = ml.ledgers();
        let ledgers_json: Vec<Value> = ledgers
            .iter()
            .map(|l| {
                json!({
                    "ledgerId": l.ledger_id.0,
                    "entries": l.entries,
                    "size": l.size,
                    "offloaded": l.offloaded,
                    "bookiesDeleted": l.offload.as_ref().is_some_and(|o| o.bookies_deleted),
                    "underReplicated": false,
                    "closed": l.closed,
                })
            })
            .collect();
        let last = ledgers.last();
        let mut cursors = BTreeMap::new();
        for (name, durable, s) in self.subscription_snapshots().await {
            cursors.insert(name, cursor_json(durable, &s));
        }
        json!({
            "entriesAddedCounter": self.series.entry_size.snapshot().count(),
            "numberOfEntries": ledgers.iter().map(|l| l.entries).sum::<u64>(),
            "totalSize": ml.storage_size(),
            "currentLedgerEntries": last.map(|l| l.entries).unwrap_or(0),
            "currentLedgerSize": last.map(|l| l.size).unwrap_or(0),
            "lastLedgerCreatedTimestamp": last.map(|l| rfc3339_ms(l.created_at_ms)),
            "lastConfirmedEntry": ml.last_confirmed().to_string(),
            "state": if ml.is_terminated() { "Terminated" } else if ml.is_fenced() { "Fenced" } else { "LedgerOpened" },
            "ledgers": ledgers_json,
            "cursors": cursors,
            "terminated": ml.is_terminated(),
        })
    }
}

fn cursor_json(durable: bool, s: &SubscriptionSnapshot) -> Value {
    json!({
        "markDeletePosition": s.mark_delete.to_string(),
        "readPosition": s.read_position.to_string(),
        "messagesConsumedCounter": s.out.messages,
        "individuallyDeletedMessages": s.individually_deleted,
        "totalNonContiguousDeletedMessagesRange": s.deleted_ranges,
        "numberOfEntriesSinceFirstNotAckedMessage": s.backlog,
        "state": "Open",
        "active": !s.consumers.is_empty(),
        "durable": durable,
        "backlogEntries": s.backlog,
    })
}

fn consumer_json(c: ConsumerStats) -> ConsumerJson {
    let per_entry = c.msg_out.checked_div(c.entries_out).unwrap_or(0);
    ConsumerJson {
        msg_rate_out: c.out.msg_rate,
        msg_throughput_out: c.out.byte_rate,
        bytes_out_counter: c.out.bytes,
        msg_out_counter: c.out.messages,
        msg_rate_redeliver: c.redelivered.msg_rate,
        consumer_name: c.name,
        available_permits: c.permits,
        unacked_messages: c.unacked,
        avg_messages_per_entry: per_entry,
        blocked_consumer_on_unacked_msgs: c.blocked,
        address: c.client.address,
        connected_since: c.client.connected_since,
        client_version: c.client.client_version,
        metadata: c.metadata.into_iter().collect(),
    }
}

fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
