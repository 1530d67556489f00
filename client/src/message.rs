//! Message ids and messages as the application sees them.

use std::fmt;

use bytes::Bytes;
use strata_proto::pulsar::MessageIdData;

/// Position of a message: `(ledger, entry, partition, batch_index)`, plus the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Ledger of the entry.
    pub ledger_id: u64,
    /// Entry in the ledger.
    pub entry_id: u64,
    /// Partition index, -1 for a non-partitioned topic.
    pub partition: i32,
    /// Index inside a batch, -1 when the entry is not a batch.
    pub batch_index: i32,
    /// Number of messages in the batch (0 when not a batch).
    pub batch_size: i32,
}

impl MessageId {
    /// From the protocol type.
    pub fn from_proto(id: &MessageIdData) -> Self {
        MessageId {
            ledger_id: id.ledger_id,
            entry_id: id.entry_id,
            partition: id.partition(),
            batch_index: id.batch_index(),
            batch_size: id.batch_size.unwrap_or(0),
        }
    }

    /// To the protocol type (the whole entry when `entry_only`).
    pub fn to_proto(&self, entry_only: bool) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            partition: (self.partition >= 0).then_some(self.partition),
            batch_index: (!entry_only && self.batch_index >= 0).then_some(self.batch_index),
            batch_size: (!entry_only && self.batch_size > 0).then_some(self.batch_size),
            ..Default::default()
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.ledger_id, self.entry_id, self.partition, self.batch_index
        )
    }
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    /// The payload.
    pub payload: Bytes,
    /// Partition / ordering key.
    pub key: Option<String>,
    /// Application properties.
    pub properties: Vec<(String, String)>,
    /// Application event time (ms since the epoch).
    pub event_time: Option<u64>,
}

impl OutgoingMessage {
    /// A message with only a payload.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        OutgoingMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a property.
    pub fn with_property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.push((k.into(), v.into()));
        self
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Full topic name (the partition's name for partitioned topics).
    pub topic: String,
    /// Its id (ack with it).
    pub id: MessageId,
    /// The payload (decompressed).
    pub payload: Bytes,
    /// Partition / ordering key.
    pub key: Option<String>,
    /// Application properties.
    pub properties: Vec<(String, String)>,
    /// Broker publish time (ms since the epoch).
    pub publish_time: u64,
    /// Application event time, if set.
    pub event_time: Option<u64>,
    /// Producer name.
    pub producer_name: String,
    /// Producer sequence id of this message.
    pub sequence_id: u64,
    /// How many times the broker delivered it before.
    pub redelivery_count: u32,
    pub(crate) slot: usize,
}
