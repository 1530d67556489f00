//! The public vocabulary of a subscription: who joins, where a cursor starts or moves, what an
//! ack names, what stats say, and the subscription's settings.

use std::sync::Arc;
use std::time::Duration;

use strata_proto::pulsar::KeySharedMode;
use strata_proto::pulsar::command_subscribe::SubType;

use crate::outbound::Outbound;
use crate::position::Position;
use crate::rate::RateClock;
use crate::stats::{ClientInfo, MeterReading};

/// Key_Shared settings of a consumer.
#[derive(Debug, Clone)]
pub struct KeySharedSpec {
    /// Auto-split or sticky.
    pub mode: KeySharedMode,
    /// Sticky hash ranges `[start, end]` (inclusive, 0..=65535).
    pub ranges: Vec<(i32, i32)>,
}

/// A consumer joining a subscription.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Unique across the broker (connection-scoped ids are not).
    pub key: u64,
    /// The client's consumer id, used in frames.
    pub consumer_id: u64,
    /// Consumer name.
    pub name: String,
    /// Priority level (lower first), Failover only.
    pub priority: i32,
    /// Subscription type requested.
    pub sub_type: SubType,
    /// Key_Shared settings.
    pub key_shared: Option<KeySharedSpec>,
    /// Where frames for this consumer go.
    pub out: Outbound,
    /// Its connection (stats).
    pub client: ClientInfo,
    /// SUBSCRIBE's `metadata` (stats).
    pub metadata: Vec<(String, String)>,
    /// `read_compacted`: the subscription reads the compacted view first.
    pub compacted: Option<crate::compaction::CompactedReader>,
}

impl ConsumerSpec {
    /// The Key_Shared mode the consumer asked for (auto-split when unset).
    pub fn key_shared_mode(&self) -> KeySharedMode {
        self.key_shared
            .as_ref()
            .map(|k| k.mode)
            .unwrap_or(KeySharedMode::AutoSplit)
    }
}

/// Where to move a cursor.
#[derive(Debug, Clone, Copy)]
pub enum SeekTarget {
    /// Deliver from this entry on (inclusive).
    Position(Position),
    /// Deliver from the first entry published at or after this time (ms).
    PublishTime(u64),
}

/// Consumer statistics (CONSUMER_STATS and topic stats).
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// The client's consumer id.
    pub consumer_id: u64,
    /// Consumer name.
    pub name: String,
    /// Permits left.
    pub permits: i64,
    /// Entries delivered and not acked.
    pub unacked: u64,
    /// Entries after the mark-delete position.
    pub backlog: u64,
    /// Messages sent.
    pub msg_out: u64,
    /// Entries sent.
    pub entries_out: u64,
    /// Subscription type name.
    pub sub_type: String,
    /// Its connection.
    pub client: ClientInfo,
    /// SUBSCRIBE's metadata.
    pub metadata: Vec<(String, String)>,
    /// Messages and bytes dispatched, with rates.
    pub out: MeterReading,
    /// Messages redelivered, with rates.
    pub redelivered: MeterReading,
    /// Stopped receiving: its unacked entries reached the limit.
    pub blocked: bool,
}

/// Statistics of a subscription (topic stats, internal stats, metrics).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionSnapshot {
    /// Type of the attached consumers (of the last ones when none is attached).
    pub sub_type: String,
    /// The attached consumers.
    pub consumers: Vec<ConsumerStats>,
    /// Entries after the mark-delete position.
    pub backlog: u64,
    /// Entries delivered and not acknowledged.
    pub unacked: u64,
    /// Entries held back by delayed delivery.
    pub delayed: u64,
    /// Messages and bytes dispatched by the subscription (every consumer it had), with rates.
    pub out: MeterReading,
    /// Messages redelivered, with rates.
    pub redelivered: MeterReading,
    /// Every entry up to this one is acknowledged.
    pub mark_delete: Position,
    /// The next entry to read from the log.
    pub read_position: Position,
    /// Acknowledged ranges after the mark-delete position, Pulsar's `[(l:e..l:e]]` form.
    pub individually_deleted: String,
    /// Ranges in `individually_deleted`.
    pub deleted_ranges: usize,
    /// Name of the consumer receiving (Exclusive / Failover).
    pub active_consumer: Option<String>,
    /// Times a dispatch rate limit paused the subscription.
    pub dispatch_throttled: u64,
}

/// An acknowledged id.
#[derive(Debug, Clone)]
pub struct AckId {
    /// The entry.
    pub position: Position,
    /// Batch-index ack set (bit set = still unacked); empty: the whole entry.
    pub ack_set: Vec<i64>,
}

/// Who a subscription is: its topic, name and durability.
#[derive(Debug, Clone)]
pub struct SubscriptionId {
    /// The topic's full name.
    pub topic: String,
    /// The topic's partition index, or -1.
    pub partition: i32,
    /// The subscription name.
    pub name: String,
    /// Whether its cursor is persisted.
    pub durable: bool,
}

/// Settings of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// Minimum time between two cursor writes nobody waits for (an ack receipt, a flush or a
    /// close writes sooner).
    pub cursor_flush_interval: Duration,
    /// Entries held for replay before reading new entries stops (Key_Shared).
    pub max_replay: usize,
    /// The topic's dispatch rate clock, shared by its subscriptions.
    pub topic_dispatch: Arc<RateClock>,
    /// Key_Shared auto-split: a consistent-hash ring (true, Pulsar's default) or Pulsar's
    /// range splitting by join order (`subscriptionKeySharedUseConsistentHashing=false`).
    pub key_shared_consistent_hashing: bool,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            cursor_flush_interval: Duration::from_secs(1),
            max_replay: 10_000,
            topic_dispatch: Arc::new(RateClock::default()),
            key_shared_consistent_hashing: true,
        }
    }
}

/// How a new cursor is positioned.
#[derive(Debug, Clone, Copy)]
pub enum InitialPosition {
    /// After the last entry.
    Latest,
    /// Before the first entry.
    Earliest,
    /// So that this entry is the first delivered.
    At(Position),
}

/// Position before `p` such that `p` is the next entry delivered.
pub(crate) fn before(p: Position) -> Position {
    Position::new(p.ledger, p.entry.max(0) - 1)
}
