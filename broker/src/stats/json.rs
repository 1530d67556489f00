//! Topic stats as Pulsar's admin API shapes them (`TopicStats`, `PublisherStats`,
//! `SubscriptionStats`, `ConsumerStats`): same field names and meanings, serialized with serde.
//! Rates are per second over the sampler's window; counters count since the topic was loaded.

use std::collections::BTreeMap;

use serde::Serialize;

use super::client_info::ClientInfo;
use super::meter::MeterReading;

/// A producer in topic stats.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherStats {
    /// `Shared`, `Exclusive`, `ExclusiveWithFencing` or `WaitForExclusive`.
    pub access_mode: String,
    /// Messages per second.
    pub msg_rate_in: f64,
    /// Bytes per second.
    pub msg_throughput_in: f64,
    /// Bytes per message.
    pub average_msg_size: f64,
    /// Messages received since it connected.
    pub msg_in_counter: u64,
    /// Bytes received since it connected.
    pub bytes_in_counter: u64,
    /// The client's producer id.
    pub producer_id: u64,
    /// Producer name.
    pub producer_name: String,
    /// Peer address.
    pub address: String,
    /// When it connected.
    pub connected_since: String,
    /// Client library version.
    pub client_version: String,
    /// PRODUCER's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A consumer in topic stats.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerJson {
    /// Messages per second dispatched.
    pub msg_rate_out: f64,
    /// Bytes per second dispatched.
    pub msg_throughput_out: f64,
    /// Bytes dispatched.
    pub bytes_out_counter: u64,
    /// Messages dispatched.
    pub msg_out_counter: u64,
    /// Messages per second redelivered.
    pub msg_rate_redeliver: f64,
    /// Consumer name.
    pub consumer_name: String,
    /// Permits (messages it asked for and has not been sent).
    pub available_permits: i64,
    /// Entries delivered and not acknowledged.
    pub unacked_messages: u64,
    /// Messages per entry dispatched (batching).
    pub avg_messages_per_entry: u64,
    /// Blocked because its unacked messages reached the limit.
    pub blocked_consumer_on_unacked_msgs: bool,
    /// Peer address.
    pub address: String,
    /// When it subscribed.
    pub connected_since: String,
    /// Client library version.
    pub client_version: String,
    /// SUBSCRIBE's metadata.
    pub metadata: BTreeMap<String, String>,
}

/// A subscription in topic stats.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionJson {
    /// Messages per second dispatched.
    pub msg_rate_out: f64,
    /// Bytes per second dispatched.
    pub msg_throughput_out: f64,
    /// Bytes dispatched.
    pub bytes_out_counter: u64,
    /// Messages dispatched.
    pub msg_out_counter: u64,
    /// Messages per second redelivered.
    pub msg_rate_redeliver: f64,
    /// Entries not yet acknowledged.
    pub msg_backlog: u64,
    /// Entries not yet acknowledged, delayed ones aside.
    pub msg_backlog_no_delayed: u64,
    /// Bytes of the backlog (estimated from ledger sizes).
    pub backlog_size: u64,
    /// Blocked because its unacked messages reached the limit.
    pub blocked_subscription_on_unacked_msgs: bool,
    /// Entries held back by delayed delivery.
    pub msg_delayed: u64,
    /// Entries delivered and not acknowledged.
    pub unacked_messages: u64,
    /// `Exclusive`, `Shared`, `Failover` or `Key_Shared`.
    #[serde(rename = "type")]
    pub sub_type: String,
    /// The consumer receiving (Exclusive, Failover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_consumer_name: Option<String>,
    /// The attached consumers.
    pub consumers: Vec<ConsumerJson>,
    /// Whether the cursor is persisted.
    pub is_durable: bool,
    /// Geo-replication subscription (never, in Strata).
    pub is_replicated: bool,
    /// Acknowledged ranges after the mark-delete position.
    pub non_contiguous_deleted_messages_ranges: usize,
    /// Every entry up to it is acknowledged (Strata's addition).
    pub mark_delete_position: String,
}

/// The stats of one topic (`GET .../stats`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicStats {
    /// Messages per second published.
    pub msg_rate_in: f64,
    /// Bytes per second published.
    pub msg_throughput_in: f64,
    /// Messages per second dispatched (every subscription).
    pub msg_rate_out: f64,
    /// Bytes per second dispatched.
    pub msg_throughput_out: f64,
    /// Bytes published.
    pub bytes_in_counter: u64,
    /// Messages published.
    pub msg_in_counter: u64,
    /// Bytes dispatched.
    pub bytes_out_counter: u64,
    /// Messages dispatched.
    pub msg_out_counter: u64,
    /// Bytes per published message.
    pub average_msg_size: f64,
    /// Bytes stored (bookies and object storage).
    pub storage_size: u64,
    /// Bytes not yet acknowledged by the slowest durable subscription.
    pub backlog_size: u64,
    /// Bytes offloaded to object storage.
    pub offloaded_storage_size: u64,
    /// Times the publish rate limit paused a producer.
    pub publish_rate_limited_times: u64,
    /// Connected producers.
    pub publishers: Vec<PublisherStats>,
    /// Producers waiting for exclusive access.
    pub waiting_publishers: usize,
    /// Subscriptions by name.
    pub subscriptions: BTreeMap<String, SubscriptionJson>,
    /// Geo-replication (none in Strata).
    pub replication: BTreeMap<String, serde_json::Value>,
    /// `Enabled` or `Disabled`.
    pub deduplication_status: String,
    /// Sum over subscriptions of their acknowledged ranges.
    pub non_contiguous_deleted_messages_ranges: usize,
    /// Bumped by every grant of exclusive producer access.
    pub topic_epoch: u64,
    /// `host:port` of the broker serving the topic.
    pub owner_broker: String,
    /// No more messages may be published (Strata's addition).
    pub terminated: bool,
}

impl PublisherStats {
    /// Fills the rates and counters from a meter reading.
    pub fn set_meter(&mut self, r: &MeterReading) {
        self.msg_rate_in = r.msg_rate;
        self.msg_throughput_in = r.byte_rate;
        self.msg_in_counter = r.messages;
        self.bytes_in_counter = r.bytes;
        self.average_msg_size = average(r);
    }

    /// Fills who the producer is.
    pub fn set_client(&mut self, c: &ClientInfo) {
        self.address.clone_from(&c.address);
        self.connected_since.clone_from(&c.connected_since);
        self.client_version.clone_from(&c.client_version);
    }
}

/// Bytes per message over the window (or since the start when the window saw nothing).
pub fn average(r: &MeterReading) -> f64 {
    if r.msg_rate > 0.0 {
        r.byte_rate / r.msg_rate
    } else if r.messages > 0 {
        r.bytes as f64 / r.messages as f64
    } else {
        0.0
    }
}
