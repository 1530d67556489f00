//! Producer settings.

use std::time::Duration;

use strata_proto::pulsar::{CompressionType, Schema};

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Producer name (the broker assigns one when `None`).
    pub name: Option<String>,
    /// Group messages into batches (one SEND, one stored entry per batch).
    pub batching: bool,
    /// Most messages in a batch.
    pub batch_max_messages: usize,
    /// Most payload bytes in a batch: a message that would take the open batch past it (or past
    /// the broker's `max_message_size`) starts the next batch.
    pub batch_max_bytes: usize,
    /// Longest a message waits for its batch to fill (a batch that cannot grow, because every
    /// one of `max_pending` messages is in it or in flight, goes at once).
    pub batch_max_delay: Duration,
    /// Compression of each SEND's payload.
    pub compression: CompressionType,
    /// Messages sent but not yet acknowledged before `send` waits.
    pub max_pending: usize,
    /// Schema to declare.
    pub schema: Option<Schema>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            name: None,
            batching: true,
            batch_max_messages: 1000,
            batch_max_bytes: 128 * 1024,
            batch_max_delay: Duration::from_millis(1),
            compression: CompressionType::None,
            max_pending: 1000,
            schema: None,
        }
    }
}
