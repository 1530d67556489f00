//! Serde models of everything Strata keeps in the metadata store. Each implements
//! [`super::Model`] (versioned JSON). Optional fields default when absent so that newer
//! writers can add fields without breaking older readers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use strata_proto::{BookieId, EntryId, LedgerId};

use super::Model;
use super::position::Position;

macro_rules! models {
    ($($t:ty),* $(,)?) => { $(impl Model for $t {})* };
}

models!(
    ClusterData,
    TenantInfo,
    Policies,
    TopicMetadata,
    PartitionedTopicMetadata,
    BundleOwner,
    BrokerInfo,
    BookieInfo,
    LedgerMetadata,
    ManagedLedgerInfo,
    CursorInfo,
    SchemaHistory,
    LedgerIdCounter,
    TopicPolicies,
    CompactionInfo,
);

/// A Pulsar cluster (as seen by geo-replication and lookups).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterData {
    /// HTTP service URL.
    pub service_url: String,
    /// HTTPS service URL.
    pub service_url_tls: Option<String>,
    /// `pulsar://` URL.
    pub broker_service_url: String,
    /// `pulsar+ssl://` URL.
    pub broker_service_url_tls: Option<String>,
    /// Peer clusters.
    pub peer_cluster_names: Vec<String>,
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantInfo {
    /// Roles that administer the tenant.
    pub admin_roles: BTreeSet<String>,
    /// Clusters its namespaces may use.
    pub allowed_clusters: BTreeSet<String>,
}

/// Retention of acknowledged messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionPolicies {
    /// Minutes to keep acknowledged data (-1: forever, 0: none).
    pub retention_time_minutes: i64,
    /// Megabytes to keep (-1: unlimited, 0: none).
    pub retention_size_mb: i64,
}

/// What happens when the backlog quota is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BacklogQuotaPolicy {
    /// Hold producer sends until there is room.
    #[default]
    ProducerRequestHold,
    /// Fail producer sends.
    ProducerException,
    /// Evict the oldest unacknowledged messages.
    ConsumerBacklogEviction,
}

/// Backlog limits of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BacklogQuota {
    /// Bytes (-1: unlimited).
    pub limit_size: i64,
    /// Seconds (-1: unlimited).
    pub limit_time_seconds: i64,
    /// Action when exceeded.
    pub policy: BacklogQuotaPolicy,
}

/// Replication settings of new ledgers.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistencePolicies {
    /// E: bookies per ledger ensemble.
    pub ensemble_size: u32,
    /// Qw: copies of each entry.
    pub write_quorum: u32,
    /// Qa: acknowledgements before an add completes.
    pub ack_quorum: u32,
    /// Cursor mark-delete persist rate (per second; 0: no limit).
    pub managed_ledger_max_mark_delete_rate: f64,
}

/// A rate limit (-1: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    /// Messages per period.
    pub messages: i64,
    /// Bytes per period.
    pub bytes: i64,
    /// Period in seconds.
    pub period_seconds: u32,
}

/// A permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthAction {
    /// Produce.
    Produce,
    /// Consume.
    Consume,
    /// Functions.
    Functions,
    /// Sources.
    Sources,
    /// Sinks.
    Sinks,
    /// Packages.
    Packages,
}

/// Permissions of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthPolicies {
    /// Role → actions on the whole namespace.
    pub namespace_auth: BTreeMap<String, BTreeSet<AuthAction>>,
    /// Topic → role → actions.
    pub destination_auth: BTreeMap<String, BTreeMap<String, BTreeSet<AuthAction>>>,
    /// Subscription → roles allowed to use it.
    pub subscription_auth_roles: BTreeMap<String, BTreeSet<String>>,
}

/// A hash range of a namespace bundle: `[start, end)` over `u32` topic hashes; the last bundle
/// ends at `0xffffffff` inclusive (as in Pulsar). Displayed `0x00000000_0x40000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BundleRange {
    /// First hash.
    pub start: u32,
    /// End hash.
    pub end: u32,
}

impl fmt::Display for BundleRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}_0x{:08x}", self.start, self.end)
    }
}

impl BundleRange {
    /// Parses the [`fmt::Display`] form.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('_')?;
        let p = |x: &str| u32::from_str_radix(x.strip_prefix("0x")?, 16).ok();
        Some(Self {
            start: p(a)?,
            end: p(b)?,
        })
    }
}

/// How a namespace is split into bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BundlesData {
    /// Sorted boundaries: bundle i is `[boundaries[i], boundaries[i+1])`. First is 0, last
    /// `0xffffffff`.
    pub boundaries: Vec<u32>,
}

impl Default for BundlesData {
    fn default() -> Self {
        Self::even(4)
    }
}

impl BundlesData {
    /// `n` (≥ 1) bundles of equal size.
    pub fn even(n: u32) -> Self {
        let n = n.max(1);
        let step = u64::from(u32::MAX) / u64::from(n);
        let mut boundaries: Vec<u32> = (0..n).map(|i| (u64::from(i) * step) as u32).collect();
        boundaries.push(u32::MAX);
        Self { boundaries }
    }

    /// The bundles' ranges.
    pub fn ranges(&self) -> Vec<BundleRange> {
        self.boundaries
            .windows(2)
            .map(|w| BundleRange {
                start: w[0],
                end: w[1],
            })
            .collect()
    }

    /// The bundle a topic hash falls in.
    pub fn find(&self, hash: u32) -> Option<BundleRange> {
        let ranges = self.ranges();
        let last = ranges.len().checked_sub(1)?;
        ranges
            .into_iter()
            .enumerate()
            .find(|(i, r)| hash >= r.start && (hash < r.end || (*i == last && hash == r.end)))
            .map(|(_, r)| r)
    }
}

/// A namespace and its policies.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Policies {
    /// Clusters the namespace is replicated to.
    pub replication_clusters: BTreeSet<String>,
    /// Bundle split.
    pub bundles: BundlesData,
    /// Retention.
    pub retention: Option<RetentionPolicies>,
    /// Message TTL in seconds.
    pub message_ttl_seconds: Option<u32>,
    /// Backlog quota.
    pub backlog_quota: Option<BacklogQuota>,
    /// Ensemble / quorum sizes of new ledgers.
    pub persistence: Option<PersistencePolicies>,
    /// Broker-side deduplication.
    pub deduplication_enabled: Option<bool>,
    /// Max producers per topic.
    pub max_producers_per_topic: Option<u32>,
    /// Max consumers per topic.
    pub max_consumers_per_topic: Option<u32>,
    /// Max consumers per subscription.
    pub max_consumers_per_subscription: Option<u32>,
    /// Publish rate limit per topic.
    pub publish_rate: Option<RateLimit>,
    /// Dispatch rate limit per topic.
    pub dispatch_rate: Option<RateLimit>,
    /// Dispatch rate limit per subscription.
    pub subscription_dispatch_rate: Option<RateLimit>,
    /// Offload to object storage above this many bytes (-1: never).
    pub offload_threshold_bytes: Option<i64>,
    /// Offload ledgers older than this many seconds (-1: never).
    pub offload_threshold_in_seconds: Option<i64>,
    /// Keep the bookies' copy this long after an offload (ms; `None`: the broker's default).
    pub offload_deletion_lag_ms: Option<i64>,
    /// Permissions.
    pub auth_policies: AuthPolicies,
    /// Schema compatibility strategy (Pulsar names: `FULL`, `BACKWARD`, ...).
    pub schema_compatibility_strategy: Option<String>,
    /// Producers and consumers may register new schema versions (Pulsar's
    /// `is_allow_auto_update_schema`; absent: allowed).
    pub is_allow_auto_update_schema: Option<bool>,
    /// Producers without a schema are refused on topics that have one (Pulsar's
    /// `schema_validation_enforced`; absent: the broker's setting).
    pub schema_validation_enforced: Option<bool>,
    /// Compact a topic automatically once its backlog past the last compaction exceeds this many
    /// bytes (Pulsar's `compaction_threshold`; 0 or absent: never).
    pub compaction_threshold: Option<i64>,
    /// Marked for deletion.
    pub deleted: bool,
}

/// A non-partitioned topic (or a partition) that exists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicMetadata {
    /// Creation time (ms since the epoch).
    pub created_at_ms: u64,
    /// User properties.
    pub properties: BTreeMap<String, String>,
}

/// A partitioned topic: `partitions` partitions named `{topic}-partition-{i}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartitionedTopicMetadata {
    /// Number of partitions.
    pub partitions: u32,
    /// User properties.
    pub properties: BTreeMap<String, String>,
    /// Marked for deletion.
    pub deleted: bool,
}

/// The broker owning a namespace bundle (ephemeral, bound to the owner's session).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BundleOwner {
    /// Owner broker id.
    pub broker_id: String,
    /// Its `pulsar://` URL.
    pub broker_url: String,
    /// Its `pulsar+ssl://` URL.
    pub broker_url_tls: Option<String>,
    /// Its HTTP URL.
    pub http_url: String,
    /// Being unloaded: clients must look it up again.
    pub disabled: bool,
}

/// A live broker (ephemeral).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerInfo {
    /// Broker id (usually `host:port`).
    pub broker_id: String,
    /// `pulsar://` URL.
    pub pulsar_url: String,
    /// `pulsar+ssl://` URL.
    pub pulsar_url_tls: Option<String>,
    /// HTTP URL.
    pub http_url: String,
    /// Software version.
    pub version: String,
    /// Start time (ms since the epoch).
    pub started_at_ms: u64,
    /// Advertised listeners by name (Pulsar's `advertisedListeners`); empty without them.
    pub listeners: BTreeMap<String, ListenerUrls>,
}

/// The URLs of one advertised listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerUrls {
    /// `pulsar://` URL.
    pub pulsar_url: Option<String>,
    /// `pulsar+ssl://` URL.
    pub pulsar_url_tls: Option<String>,
}

/// A live bookie (ephemeral). Free space is refreshed rarely (it is an etcd write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookieInfo {
    /// Identity (`host:port` of its gRPC service).
    pub bookie_id: BookieId,
    /// gRPC address clients connect to.
    pub address: String,
    /// Free bytes on its ledger disks when last reported.
    #[serde(default)]
    pub free_space_bytes: u64,
    /// Total bytes.
    #[serde(default)]
    pub total_space_bytes: u64,
    /// Rack / availability zone (placement spreads ensembles over racks).
    #[serde(default)]
    pub rack: Option<String>,
    /// Accepts reads only.
    #[serde(default)]
    pub read_only: bool,
    /// Software version.
    #[serde(default)]
    pub version: String,
}

/// State of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LedgerState {
    /// Being written by its writer.
    #[default]
    Open,
    /// A new owner is fencing and recovering it.
    InRecovery,
    /// Sealed: `last_entry_id` and `length` are final.
    Closed,
}

/// The bookies that store entries from `first_entry` on (until the next segment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleSegment {
    /// First entry written to this ensemble.
    pub first_entry: EntryId,
    /// The ensemble (exactly `ensemble_size` bookies).
    pub bookies: Vec<BookieId>,
}

/// Metadata of one ledger. Updated only by compare-and-set: ensemble changes by the writer,
/// state changes by the writer (close) or a recovering owner (IN_RECOVERY, then CLOSED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMetadata {
    /// Its id.
    pub ledger_id: LedgerId,
    /// E.
    pub ensemble_size: u32,
    /// Qw.
    pub write_quorum: u32,
    /// Qa.
    pub ack_quorum: u32,
    /// State.
    #[serde(default)]
    pub state: LedgerState,
    /// Last entry (when closed; `None`: empty, or not known while open).
    #[serde(default)]
    pub last_entry_id: Option<EntryId>,
    /// Total payload bytes (when closed).
    #[serde(default)]
    pub length: u64,
    /// Ensemble segments in increasing `first_entry` order; the first starts at entry 0.
    pub ensembles: Vec<EnsembleSegment>,
    /// Creation time (ms since the epoch).
    #[serde(default)]
    pub created_at_ms: u64,
    /// Ownership epoch of the writer that created it (for fencing).
    #[serde(default)]
    pub epoch: u64,
    /// Application metadata (e.g. the managed ledger it belongs to).
    #[serde(default)]
    pub custom_metadata: BTreeMap<String, String>,
}

impl LedgerMetadata {
    /// A new open ledger on `ensemble`.
    pub fn new(
        ledger_id: LedgerId,
        ensemble: Vec<BookieId>,
        write_quorum: u32,
        ack_quorum: u32,
    ) -> Self {
        Self {
            ledger_id,
            ensemble_size: ensemble.len() as u32,
            write_quorum,
            ack_quorum,
            state: LedgerState::Open,
            last_entry_id: None,
            length: 0,
            ensembles: vec![EnsembleSegment {
                first_entry: EntryId(0),
                bookies: ensemble,
            }],
            created_at_ms: 0,
            epoch: 0,
            custom_metadata: BTreeMap::new(),
        }
    }

    /// Checks E ≥ Qw ≥ Qa ≥ 1 and the segments' shape.
    pub fn validate(&self) -> Result<(), String> {
        let (e, w, a) = (self.ensemble_size, self.write_quorum, self.ack_quorum);
        if !(e >= w && w >= a && a >= 1) {
            return Err(format!("need E >= Qw >= Qa >= 1, got E={e} Qw={w} Qa={a}"));
        }
        let Some(first) = self.ensembles.first() else {
            return Err("no ensemble".into());
        };
        if first.first_entry != EntryId(0) {
            return Err("first ensemble must start at entry 0".into());
        }
        for s in &self.ensembles {
            if s.bookies.len() != e as usize {
                return Err(format!(
                    "ensemble from entry {} has {} bookies, expected {e}",
                    s.first_entry,
                    s.bookies.len()
                ));
            }
        }
        if self
            .ensembles
            .windows(2)
            .any(|w| w[0].first_entry >= w[1].first_entry)
        {
            return Err("ensemble segments must start at increasing entries".into());
        }
        Ok(())
    }

    /// The ensemble that stores `entry`.
    pub fn ensemble_for(&self, entry: EntryId) -> Option<&[BookieId]> {
        self.ensembles
            .iter()
            .rev()
            .find(|s| s.first_entry <= entry)
            .map(|s| s.bookies.as_slice())
    }

    /// Replaces the ensemble from `first_entry` on (an ensemble change after a bookie failed).
    /// Segments starting at or after `first_entry` are replaced.
    pub fn change_ensemble(&mut self, first_entry: EntryId, bookies: Vec<BookieId>) {
        self.ensembles.retain(|s| s.first_entry < first_entry);
        self.ensembles.push(EnsembleSegment {
            first_entry,
            bookies,
        });
    }
}

/// One ledger of a managed ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagedLedgerLedger {
    /// Ledger id.
    pub ledger_id: LedgerId,
    /// Entries (when closed).
    pub entries: u64,
    /// Bytes (when closed).
    pub size: u64,
    /// Close time (ms since the epoch).
    pub timestamp_ms: u64,
    /// Offloaded to object storage.
    pub offloaded: bool,
    /// Creation time (ms since the epoch).
    pub created_at_ms: u64,
    /// Closed: `entries` and `size` are final (an open ledger is recovered by the next owner).
    pub closed: bool,
    /// The committed offload of this ledger (set with `offloaded`), naming its objects.
    pub offload: Option<LedgerOffload>,
}

/// A ledger's committed copy in object storage. The objects' keys carry the ledger id and
/// `offload_id` (unique per attempt), so a failed or repeated attempt never overwrites a
/// committed one; objects no committed offload names are removed by the broker's janitor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerOffload {
    /// Unique id of the offload attempt that was committed.
    pub offload_id: String,
    /// Number of data objects (`data-00000` ...).
    pub data_parts: u32,
    /// Bytes in object storage (data and index objects).
    pub stored_bytes: u64,
    /// When the offload was committed (ms since the epoch).
    pub completed_at_ms: u64,
    /// The bookies' copy was deleted (after the deletion lag): reads can only use the objects.
    pub bookies_deleted: bool,
}

/// A topic's managed ledger: its ledgers in order. Updated by CAS on ledger rollover, trim and
/// ownership change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagedLedgerInfo {
    /// Ledgers, oldest first; the last one is the current ledger.
    pub ledgers: Vec<ManagedLedgerLedger>,
    /// Set when the topic is terminated.
    pub terminated_position: Option<Position>,
    /// Ownership epoch of the current writer.
    pub epoch: u64,
    /// Properties.
    pub properties: BTreeMap<String, String>,
}

/// A cursor (subscription) pointer. Only pointer-sized state lives here: the mark-delete
/// position as of the last snapshot and the ledger holding the cursor's journal (positions and
/// individually acknowledged ranges). Never one store write per acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CursorInfo {
    /// Ledger on the bookies with the cursor's state (`None`: not created yet).
    pub cursor_ledger: Option<LedgerId>,
    /// Mark-delete position at the last pointer update (the cursor ledger has newer state).
    pub mark_delete: Position,
    /// Properties (e.g. replicated subscription markers).
    pub properties: BTreeMap<String, i64>,
    /// Last activity (ms since the epoch), updated rarely.
    pub last_active_ms: u64,
    /// The acknowledgement state in the broker's compact binary form (mark-delete, individually
    /// acknowledged ranges, partly acknowledged batches; magic `SCUR`, CRC32C), base64 in JSON.
    /// Written at most every flush interval (batched), never once per acknowledgement.
    #[serde(with = "base64_bytes")]
    pub ack_state: Vec<u8>,
}

/// Serde of bytes as one base64 string (compact in JSON).
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// One version of a topic's schema.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaVersion {
    /// Version (0, 1, ...).
    pub version: u64,
    /// Pulsar schema type name (`AVRO`, `JSON`, `PROTOBUF`, `STRING`, ...).
    pub schema_type: String,
    /// Definition (text; binary types are base64-encoded by the caller).
    pub data: String,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Registration time (ms since the epoch).
    pub timestamp_ms: u64,
    /// Name given by the client.
    pub name: String,
    /// A deletion marker (Pulsar's deleted schema): versions up to it are no longer the topic's
    /// schema, later ones start afresh.
    pub deleted: bool,
}

/// All schema versions of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaHistory {
    /// Versions, oldest first.
    pub versions: Vec<SchemaVersion>,
    /// Deleted (versions are kept for readers of old data).
    pub deleted: bool,
}

/// Policies of one topic (a partitioned topic's apply to its partitions), overriding the
/// namespace's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicPolicies {
    /// Schema compatibility strategy (Pulsar names).
    pub schema_compatibility_strategy: Option<String>,
    /// Automatic compaction threshold in bytes.
    pub compaction_threshold: Option<i64>,
}

/// A topic's compacted view (PIP-14): the compacted ledger holding the latest message of every
/// key up to `horizon`, written by the broker's compactor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CompactionInfo {
    /// The compacted ledger (`None`: never compacted).
    pub ledger_id: Option<u64>,
    /// Entries in it.
    pub entries: u64,
    /// The last position of the topic it covers: readers continue in the topic after it.
    pub horizon: Option<Position>,
    /// When it was written (ms since the epoch).
    pub compacted_at_ms: u64,
}

/// The ledger-id counter: the next id no allocator has handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LedgerIdCounter {
    /// Next free id.
    pub next: u64,
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode};
    use super::*;

    #[test]
    fn ledger_metadata_roundtrip_and_json_shape() {
        let mut m = LedgerMetadata::new(
            LedgerId(7),
            vec!["b1:1".into(), "b2:1".into(), "b3:1".into()],
            2,
            2,
        );
        m.change_ensemble(
            EntryId(10),
            vec!["b1:1".into(), "b4:1".into(), "b3:1".into()],
        );
        m.state = LedgerState::Closed;
        m.last_entry_id = Some(EntryId(20));
        assert!(m.validate().is_ok());
        assert_eq!(
            m.ensemble_for(EntryId(9)).unwrap()[1],
            BookieId::from("b2:1")
        );
        assert_eq!(
            m.ensemble_for(EntryId(10)).unwrap()[1],
            BookieId::from("b4:1")
        );
        let bytes = encode(&m).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["state"], "CLOSED");
        assert_eq!(json["ensembles"][1]["first_entry"], 10);
        let back: LedgerMetadata = decode("/k", &bytes).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn newer_format_is_rejected_and_unknown_fields_ignored() {
        let e = decode::<TenantInfo>("/t", br#"{"v":2,"admin_roles":[]}"#).unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
        let t: TenantInfo = decode("/t", br#"{"v":1,"admin_roles":["a"],"future":1}"#).unwrap();
        assert!(t.admin_roles.contains("a"));
        assert!(decode::<TenantInfo>("/t", br#"{"admin_roles":[]}"#).is_err());
    }

    #[test]
    fn bundles() {
        let b = BundlesData::even(4);
        let r = b.ranges();
        assert_eq!(r.len(), 4);
        assert_eq!(b.find(0).unwrap(), r[0]);
        assert_eq!(b.find(u32::MAX).unwrap(), r[3]);
        assert_eq!(BundleRange::parse(&r[2].to_string()).unwrap(), r[2]);
    }

    fn arb_ledger() -> impl proptest::strategy::Strategy<Value = LedgerMetadata> {
        use proptest::prelude::*;
        (
            any::<u64>(),
            1u32..6,
            prop::collection::btree_set(0u64..1000, 1..4),
            prop::sample::select(vec![
                LedgerState::Open,
                LedgerState::InRecovery,
                LedgerState::Closed,
            ]),
            any::<Option<u64>>(),
            any::<u64>(),
            prop::collection::btree_map("[a-z]{0,8}", ".{0,16}", 0..4),
        )
            .prop_map(|(id, e, firsts, state, last, length, custom)| {
                let mut m = LedgerMetadata::new(
                    LedgerId(id),
                    (0..e).map(|b| BookieId(format!("b{b}:3181"))).collect(),
                    e,
                    e,
                );
                for f in firsts {
                    m.change_ensemble(
                        EntryId(f + 1),
                        (0..e).map(|b| BookieId(format!("c{b}:{f}"))).collect(),
                    );
                }
                m.state = state;
                m.last_entry_id = last.map(EntryId);
                m.length = length;
                m.custom_metadata = custom;
                m
            })
    }

    proptest::proptest! {
        #[test]
        fn ledger_metadata_roundtrips(m in arb_ledger()) {
            proptest::prop_assert!(m.validate().is_ok());
            let back: LedgerMetadata = decode("/k", &encode(&m).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, m);
        }

        #[test]
        fn decode_arbitrary_bytes_never_panics(buf: Vec<u8>) {
            let _ = decode::<LedgerMetadata>("/k", &buf);
            let _ = decode::<Policies>("/k", &buf);
        }
    }
}
