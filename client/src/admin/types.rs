//! JSON shapes of Pulsar's admin API v2 (field names as Pulsar's Java classes serialize them).
//! Unknown fields are kept in `other` where a server may send more than we model, so printing a
//! value back shows everything the server said.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `TenantInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantInfo {
    /// Roles that administer the tenant.
    pub admin_roles: Vec<String>,
    /// Clusters the tenant's namespaces may use.
    pub allowed_clusters: Vec<String>,
}

/// `ClusterData` (the fields an operator reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterData {
    /// HTTP service URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    /// HTTPS service URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url_tls: Option<String>,
    /// Pulsar protocol URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_service_url: Option<String>,
    /// Pulsar protocol TLS URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_service_url_tls: Option<String>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `RetentionPolicies`: `-1` means unlimited, `0` no retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetentionPolicies {
    /// Time limit in minutes.
    pub retention_time_in_minutes: i64,
    /// Size limit in MB.
    #[serde(rename = "retentionSizeInMB")]
    pub retention_size_in_mb: i64,
}

/// `BacklogQuota.RetentionPolicy`, serialized as Pulsar's enum constant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BacklogQuotaPolicy {
    /// Hold producers' sends until the backlog drops.
    ProducerRequestHold,
    /// Fail producers' sends.
    ProducerException,
    /// Evict the oldest backlog of the slowest subscriptions.
    ConsumerBacklogEviction,
}

impl BacklogQuotaPolicy {
    /// Pulsar's name (`producer_request_hold`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BacklogQuotaPolicy::ProducerRequestHold => "producer_request_hold",
            BacklogQuotaPolicy::ProducerException => "producer_exception",
            BacklogQuotaPolicy::ConsumerBacklogEviction => "consumer_backlog_eviction",
        }
    }
}

/// `BacklogQuota`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogQuota {
    /// Size limit in bytes (`-1`: none).
    #[serde(default = "minus_one")]
    pub limit_size: i64,
    /// Time limit in seconds (`-1`: none).
    #[serde(default = "minus_one")]
    pub limit_time: i64,
    /// What happens when the limit is exceeded.
    pub policy: BacklogQuotaPolicy,
}

fn minus_one() -> i64 {
    -1
}

/// `PersistencePolicies`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistencePolicies {
    /// Ensemble size E.
    pub bookkeeper_ensemble: u32,
    /// Write quorum Qw.
    pub bookkeeper_write_quorum: u32,
    /// Ack quorum Qa.
    pub bookkeeper_ack_quorum: u32,
    /// Mark-delete rate limit (0: none).
    pub managed_ledger_max_mark_delete_rate: f64,
}

/// `DispatchRate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DispatchRate {
    /// Messages per period (`-1`: unlimited).
    pub dispatch_throttling_rate_in_msg: i64,
    /// Bytes per period (`-1`: unlimited).
    pub dispatch_throttling_rate_in_byte: i64,
    /// Whether the rate is relative to the publish rate.
    pub relative_to_publish_rate: bool,
    /// Period in seconds.
    pub rate_period_in_second: i64,
}

impl Default for DispatchRate {
    fn default() -> Self {
        DispatchRate {
            dispatch_throttling_rate_in_msg: -1,
            dispatch_throttling_rate_in_byte: -1,
            relative_to_publish_rate: false,
            rate_period_in_second: 1,
        }
    }
}

/// `PublishRate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PublishRate {
    /// Messages per second (`-1`: unlimited).
    pub publish_throttling_rate_in_msg: i64,
    /// Bytes per second (`-1`: unlimited).
    pub publish_throttling_rate_in_byte: i64,
}

impl Default for PublishRate {
    fn default() -> Self {
        PublishRate {
            publish_throttling_rate_in_msg: -1,
            publish_throttling_rate_in_byte: -1,
        }
    }
}

/// `PartitionedTopicMetadata`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionedTopicMetadata {
    /// Partition count (0: not partitioned).
    pub partitions: u32,
}

/// A message id as the admin API takes and returns it (`MessageIdImpl` / `ResetCursorData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIdJson {
    /// Ledger id (`-1` with entry `-1`: earliest; `i64::MAX` twice: latest).
    pub ledger_id: i64,
    /// Entry id.
    pub entry_id: i64,
    /// Partition index (`-1`: not a partition).
    #[serde(default = "minus_one_i32")]
    pub partition_index: i32,
    /// Batch index (`-1`: the whole entry).
    #[serde(default = "minus_one_i32", skip_serializing_if = "is_minus_one")]
    pub batch_index: i32,
}

fn minus_one_i32() -> i32 {
    -1
}

fn is_minus_one(v: &i32) -> bool {
    *v == -1
}

impl MessageIdJson {
    /// `MessageId.earliest`.
    pub const EARLIEST: MessageIdJson = MessageIdJson {
        ledger_id: -1,
        entry_id: -1,
        partition_index: -1,
        batch_index: -1,
    };
    /// `MessageId.latest`.
    pub const LATEST: MessageIdJson = MessageIdJson {
        ledger_id: i64::MAX,
        entry_id: i64::MAX,
        partition_index: -1,
        batch_index: -1,
    };

    /// Parses `earliest`, `latest` or `LEDGER:ENTRY[:PARTITION[:BATCH]]` (pulsar-admin's forms).
    pub fn parse(s: &str) -> Result<MessageIdJson, String> {
        match s {
            "earliest" => return Ok(Self::EARLIEST),
            "latest" => return Ok(Self::LATEST),
            _ => {}
        }
        let parts: Vec<&str> = s.split(':').collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(format!(
                "invalid message id {s:?} (expected earliest, latest or LEDGER:ENTRY)"
            ));
        }
        let num = |i: usize| -> Result<i64, String> {
            parts[i]
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("invalid message id {s:?}: {:?} is not a number", parts[i]))
        };
        let small = |i: usize| -> Result<i32, String> {
            i32::try_from(num(i)?).map_err(|_| format!("invalid message id {s:?}: out of range"))
        };
        Ok(MessageIdJson {
            ledger_id: num(0)?,
            entry_id: num(1)?,
            partition_index: if parts.len() > 2 { small(2)? } else { -1 },
            batch_index: if parts.len() > 3 { small(3)? } else { -1 },
        })
    }
}

impl std::fmt::Display for MessageIdJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.ledger_id, self.entry_id)?;
        if self.partition_index >= 0 || self.batch_index >= 0 {
            write!(f, ":{}", self.partition_index)?;
        }
        if self.batch_index >= 0 {
            write!(f, ":{}", self.batch_index)?;
        }
        Ok(())
    }
}

/// `AuthAction` names used in grants.
pub const AUTH_ACTIONS: [&str; 5] = ["produce", "consume", "functions", "sources", "sinks"];

/// Namespace `Policies` (the fields Strata stores; anything else is kept in `other`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policies {
    /// Grants: `namespace_auth` (role → actions), `destination_auth`, `subscription_auth_roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_policies: Option<serde_json::Value>,
    /// Clusters the namespace replicates to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replication_clusters: Vec<String>,
    /// Backlog quotas by type (`destination_storage`, `message_age`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub backlog_quota_map: BTreeMap<String, BacklogQuota>,
    /// Message TTL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ttl_in_seconds: Option<i64>,
    /// Retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policies: Option<RetentionPolicies>,
    /// Persistence (E/Qw/Qa).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistencePolicies>,
    /// Deduplication.
    #[serde(
        rename = "deduplicationEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub deduplication_enabled: Option<bool>,
    /// Max producers per topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_producers_per_topic: Option<i64>,
    /// Max consumers per topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_consumers_per_topic: Option<i64>,
    /// Offload threshold in bytes (`-1`: disabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_threshold: Option<i64>,
    /// Everything else the server sent (dispatch rates, bundles, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `LongRunningProcessStatus` (compaction status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongRunningProcessStatus {
    /// `NOT_RUN`, `RUNNING`, `SUCCESS` or `ERROR`.
    pub status: String,
    /// The last error, if any.
    #[serde(default)]
    pub last_error: String,
}

/// A peeked or fetched message: the id, properties and the raw payload, from the response
/// headers (`X-Pulsar-Message-ID`, `X-Pulsar-PROPERTY-*`, ...) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// `X-Pulsar-*` headers, lowercase name without the prefix (e.g. `message-id`, `property-k`).
    pub headers: BTreeMap<String, String>,
    /// Payload bytes.
    pub payload: bytes::Bytes,
}

impl RawMessage {
    /// The message id header, if the server sent one.
    pub fn message_id(&self) -> Option<&str> {
        self.headers.get("message-id").map(String::as_str)
    }
}

/// One message of a peeked or fetched entry after decompression and batch splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    /// `ledger:entry` (plus `:partition:batch` when the entry is a batch).
    pub id: String,
    /// Metadata headers and message properties (`property-k` → value), sorted.
    pub headers: BTreeMap<String, String>,
    /// The message's payload.
    pub payload: bytes::Bytes,
}

impl RawMessage {
    /// The messages of this entry: decompressed (`compression` + `uncompressed-size` headers)
    /// and split when it is a batch (`num-batch-message`). An entry that does not decode is
    /// returned as one message with its raw bytes and a `decode-error` header.
    pub fn messages(&self) -> Vec<PeekedMessage> {
        let id = self.message_id().unwrap_or("?").to_owned();
        match self.split() {
            Ok(Some(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, (props, payload))| {
                    let mut headers: BTreeMap<String, String> = self
                        .headers
                        .iter()
                        .filter(|(k, _)| !k.starts_with("property-") && *k != "message-id")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    headers.extend(props.into_iter().map(|(k, v)| (format!("property-{k}"), v)));
                    PeekedMessage {
                        id: format!("{id}:{i}"),
                        headers,
                        payload,
                    }
                })
                .collect(),
            Ok(None) => vec![self.whole(id, None)],
            Err(e) => vec![self.whole(id, Some(e))],
        }
    }

    fn whole(&self, id: String, error: Option<String>) -> PeekedMessage {
        let mut headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .filter(|(k, _)| *k != "message-id")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(e) = error {
            headers.insert("decode-error".to_owned(), e);
        }
        PeekedMessage {
            id,
            headers,
            payload: self.payload.clone(),
        }
    }

    /// `Ok(None)`: a single uncompressed message (show as is).
    #[allow(clippy::type_complexity)]
    fn split(&self) -> Result<Option<Vec<(Vec<(String, String)>, bytes::Bytes)>>, String> {
        use strata_proto::pulsar::CompressionType;
        let kind = match self
            .headers
            .get("compression")
            .map(|s| s.to_ascii_uppercase())
        {
            None => CompressionType::None,
            Some(k) => match k.as_str() {
                "NONE" => CompressionType::None,
                "LZ4" => CompressionType::Lz4,
                "ZLIB" => CompressionType::Zlib,
                "ZSTD" => CompressionType::Zstd,
                "SNAPPY" => CompressionType::Snappy,
                other => return Err(format!("unknown compression {other}")),
            },
        };
        let batch = match self.headers.get("num-batch-message") {
            Some(n) => Some(
                n.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad num-batch-message {n:?}"))?,
            ),
            None => None,
        };
        if kind == CompressionType::None && batch.is_none() {
            return Ok(None);
        }
        let data = if kind == CompressionType::None {
            self.payload.clone()
        } else {
            let size = self
                .headers
                .get("uncompressed-size")
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or("compressed entry without uncompressed-size")?;
            crate::compression::decompress(kind, &self.payload, size).map_err(|e| e.to_string())?
        };
        let Some(n) = batch else {
            return Ok(Some(vec![(Vec::new(), data)]));
        };
        let mut out = Vec::new();
        for m in strata_proto::batch::BatchIter::new(data).take(n) {
            let m = m.map_err(|e| e.to_string())?;
            let props = m
                .metadata
                .properties
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect();
            out.push((props, m.payload));
        }
        Ok(Some(out))
    }
}

/// `TopicStats` (`GET .../stats`): the fields an operator reads most; every field is optional so
/// printing a value back shows exactly what the server sent, the rest is kept in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicStats {
    /// Publish rate (msg/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_rate_in: Option<f64>,
    /// Dispatch rate (msg/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_rate_out: Option<f64>,
    /// Publish throughput (bytes/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_throughput_in: Option<f64>,
    /// Dispatch throughput (bytes/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_throughput_out: Option<f64>,
    /// Bytes stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<i64>,
    /// Bytes of backlog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_size: Option<i64>,
    /// Producers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publishers: Option<Vec<serde_json::Value>>,
    /// Subscriptions by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<BTreeMap<String, SubscriptionStats>>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `SubscriptionStats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionStats {
    /// Messages not yet acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_backlog: Option<i64>,
    /// Dispatch rate (msg/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_rate_out: Option<f64>,
    /// `Exclusive`, `Shared`, `Failover` or `Key_Shared`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    /// Whether the cursor is durable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_durable: Option<bool>,
    /// Connected consumers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<Vec<serde_json::Value>>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `PersistentTopicInternalStats` (`GET .../internalStats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PersistentTopicInternalStats {
    /// Entries added since the topic was loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_added_counter: Option<i64>,
    /// Entries stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_entries: Option<i64>,
    /// Bytes stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_size: Option<i64>,
    /// `ledger:entry` of the last confirmed entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_confirmed_entry: Option<String>,
    /// Managed-ledger state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The ledgers of the topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledgers: Option<Vec<LedgerInfo>>,
    /// Cursors by subscription name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursors: Option<BTreeMap<String, serde_json::Value>>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One ledger of `PersistentTopicInternalStats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LedgerInfo {
    /// Ledger id.
    pub ledger_id: i64,
    /// Entries (of a closed ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<i64>,
    /// Bytes (of a closed ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Whether it moved to tiered storage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offloaded: Option<bool>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}
