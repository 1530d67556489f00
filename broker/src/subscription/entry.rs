//! What a dispatcher reads from an entry: its payload, how many messages it carries (permits),
//! its Key_Shared hash slot and its delayed-delivery time.

use bytes::Bytes;
use strata_proto::entry_view::EntryFields;

/// Number of Key_Shared hash slots (Pulsar's range size).
pub const HASH_SLOTS: u32 = 65536;

/// Murmur3 32-bit (seed 0), the hash Pulsar uses for Key_Shared ranges.
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in rem.iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// What the dispatcher needs from an entry's metadata.
pub(super) struct EntryView {
    /// The entry as stored (`[metadata_size][MessageMetadata][data]`).
    pub data: Bytes,
    pub num_messages: i64,
    pub slot: u32,
    pub deliver_at: Option<u64>,
    /// A chunk of a chunked message (`num_chunks_from_msg` > 1).
    pub chunk: bool,
    /// A chunk other than its message's last one.
    pub more_chunks: bool,
}

impl EntryView {
    /// Parses an entry (only the metadata fields a dispatch reads); None when they are
    /// unreadable.
    pub fn parse(data: Bytes) -> Option<EntryView> {
        let md = EntryFields::parse(&data).ok()?;
        let num_messages = i64::from(md.num_messages_in_batch.unwrap_or(1).max(1));
        let key: &[u8] = match (&md.ordering_key, &md.partition_key) {
            (Some(k), _) if !k.is_empty() => k,
            (_, Some(k)) => k,
            _ => b"",
        };
        let slot = murmur3_32(key) % HASH_SLOTS;
        let deliver_at = md.deliver_at_time.filter(|t| *t > 0).map(|t| t as u64);
        let chunks = md.num_chunks_from_msg.unwrap_or(0);
        let chunk = chunks > 1;
        let more_chunks = chunk && md.chunk_id.unwrap_or(0) < chunks - 1;
        Some(EntryView {
            data,
            num_messages,
            slot,
            deliver_at,
            chunk,
            more_chunks,
        })
    }
}
