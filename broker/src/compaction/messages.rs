//! What the compactor sees in a stored entry: its messages' keys (compressed batches are
//! decompressed), and whether each is a tombstone (an empty payload or `null_value`).

use bytes::{BufMut, Bytes};
use strata_proto::batch::parse_batch;
use strata_proto::compression::{compress, decompress};
use strata_proto::frame::{Payload, encode_entry};
use strata_proto::pulsar::{CompressionType, MessageMetadata};

/// One message of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Index inside its batch (0 for a single message).
    pub index: u32,
    /// Its key (`None`: keyless, left out of the compacted view, as in Pulsar).
    pub key: Option<String>,
    /// Empty payload: removes the key.
    pub tombstone: bool,
}

/// The messages of an entry, as far as the compactor can see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Its messages (one unless a batch).
    Messages(Vec<Msg>),
    /// A compressed batch that does not decompress: kept whole in the compacted view.
    Opaque,
    /// A chunk of a chunked message: chunked messages are not compacted (left out of the
    /// compacted view; the compactor counts and logs them).
    Chunk,
    /// Not a readable entry.
    Invalid,
}

fn is_batch(md: &MessageMetadata) -> bool {
    md.num_messages_in_batch.is_some()
}

fn codec(md: &MessageMetadata) -> CompressionType {
    md.compression
        .and_then(|c| CompressionType::try_from(c).ok())
        .unwrap_or(CompressionType::None)
}

/// The batch's messages, decompressed when the batch is compressed.
fn batch_messages(p: &Payload) -> Option<Vec<strata_proto::batch::BatchMessage>> {
    let md = &p.metadata;
    let data = decompress(codec(md), &p.data, md.uncompressed_size() as usize).ok()?;
    let n = md
        .num_messages_in_batch
        .and_then(|n| usize::try_from(n).ok());
    parse_batch(data, n).ok()
}

/// Classifies a stored entry.
pub fn classify(entry: &Bytes) -> EntryKind {
    let Ok(p) = Payload::from_raw(entry.clone()) else {
        return EntryKind::Invalid;
    };
    let md = &p.metadata;
    if md.num_chunks_from_msg.is_some_and(|n| n > 1) {
        return EntryKind::Chunk;
    }
    if !is_batch(md) {
        return EntryKind::Messages(vec![Msg {
            index: 0,
            key: md.partition_key.clone(),
            tombstone: md.null_value == Some(true)
                || match codec(md) {
                    CompressionType::None => p.data.is_empty(),
                    _ => md.uncompressed_size() == 0,
                },
        }]);
    }
    match batch_messages(&p) {
        Some(msgs) => EntryKind::Messages(
            msgs.into_iter()
                .enumerate()
                .map(|(i, m)| Msg {
                    index: i as u32,
                    key: m.metadata.partition_key.clone(),
                    tombstone: m.payload.is_empty() || m.metadata.null_value == Some(true),
                })
                .collect(),
        ),
        None if codec(md) != CompressionType::None => EntryKind::Opaque,
        None => EntryKind::Invalid,
    }
}

/// The entry with only the messages at `keep` (sorted batch indexes): unchanged when every
/// message is kept or it is not a batch; otherwise a rebuilt batch, compressed as the original.
pub fn retain(entry: &Bytes, keep: &[u32]) -> Option<Bytes> {
    let p = Payload::from_raw(entry.clone()).ok()?;
    let md = &p.metadata;
    if !is_batch(md) {
        return Some(entry.clone());
    }
    let Some(msgs) = batch_messages(&p) else {
        return Some(entry.clone());
    };
    if keep.len() == msgs.len() {
        return Some(entry.clone());
    }
    let kept: Vec<_> = msgs
        .iter()
        .enumerate()
        .filter(|(i, _)| keep.binary_search(&(*i as u32)).is_ok())
        .map(|(_, m)| (&m.metadata, m.payload.as_ref()))
        .collect();
    let count = kept.len() as i32;
    let data = strata_proto::batch::build_batch(kept);
    let compressed = compress(codec(md), &data).ok()?;
    let mut md = md.clone();
    md.num_messages_in_batch = Some(count);
    md.uncompressed_size = Some(data.len() as u32);
    Some(encode_entry(&md, compressed.len(), |b| {
        b.put_slice(&compressed)
    }))
}
