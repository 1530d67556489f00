//! Batch payloads: N × `[u32 size][SingleMessageMetadata][payload]` (after decompression), and the
//! `ack_set` bit sets used to acknowledge single messages of a batch.
//!
//! `ack_set` follows Java's `BitSet.toLongArray()`: bit `i` (word `i / 64`, bit `i % 64`) set means
//! message `i` of the batch is still unacknowledged; a consumer acking index `k` of a batch of `n`
//! sends bits `0..n` set except `k`.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

use crate::error::FrameError;
use crate::pulsar::SingleMessageMetadata;

/// Upper bound on messages preallocated for when parsing (the count comes from the peer).
const PREALLOC_LIMIT: usize = 1024;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMessage {
    /// Per-message metadata (key, properties, event time, ...).
    pub metadata: SingleMessageMetadata,
    /// The message bytes: a slice of the batch buffer, not a copy.
    pub payload: Bytes,
}

/// Iterates over the messages of an uncompressed batch payload.
#[derive(Debug, Clone)]
pub struct BatchIter {
    rest: Bytes,
}

impl BatchIter {
    /// Starts at the first message of `data`.
    pub fn new(data: Bytes) -> Self {
        BatchIter { rest: data }
    }

    fn next_message(&mut self) -> Result<BatchMessage, FrameError> {
        let rest = &self.rest;
        if rest.len() < 4 {
            return Err(FrameError::InvalidBatch("truncated metadata size"));
        }
        let md_size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if md_size > rest.len() - 4 {
            return Err(FrameError::InvalidBatch(
                "metadata beyond the end of the batch",
            ));
        }
        let metadata = SingleMessageMetadata::decode(&rest[4..4 + md_size])
            .map_err(FrameError::InvalidSingleMetadata)?;
        let size = usize::try_from(metadata.payload_size)
            .map_err(|_| FrameError::InvalidBatch("negative payload size"))?;
        let start = 4 + md_size;
        if size > rest.len() - start {
            return Err(FrameError::InvalidBatch(
                "payload beyond the end of the batch",
            ));
        }
        let payload = rest.slice(start..start + size);
        self.rest = rest.slice(start + size..);
        Ok(BatchMessage { metadata, payload })
    }
}

impl Iterator for BatchIter {
    type Item = Result<BatchMessage, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = self.next_message();
        if r.is_err() {
            // Stop after the first error: the remaining bytes cannot be framed.
            self.rest = Bytes::new();
        }
        Some(r)
    }
}

/// Parses every message of an uncompressed batch payload. `expected` (from
/// `num_messages_in_batch`) is checked when given.
pub fn parse_batch(data: Bytes, expected: Option<usize>) -> Result<Vec<BatchMessage>, FrameError> {
    let mut out = Vec::with_capacity(expected.unwrap_or(0).min(PREALLOC_LIMIT));
    for m in BatchIter::new(data) {
        out.push(m?);
    }
    if let Some(n) = expected
        && n != out.len()
    {
        return Err(FrameError::InvalidBatch(
            "message count differs from num_messages_in_batch",
        ));
    }
    Ok(out)
}

/// Appends one message to a batch buffer; `metadata.payload_size` is set from `payload`.
pub fn write_batch_message(dst: &mut BytesMut, metadata: &SingleMessageMetadata, payload: &[u8]) {
    let mut md = metadata.clone();
    md.payload_size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    put_batch_message(dst, &md, payload);
}

/// Appends one message of a batch whose metadata already carries its `payload_size`.
pub fn put_batch_message(dst: &mut BytesMut, metadata: &SingleMessageMetadata, payload: &[u8]) {
    let len = metadata.encoded_len();
    dst.reserve(4 + len + payload.len());
    dst.put_u32(len as u32);
    metadata.encode_raw(dst);
    dst.put_slice(payload);
}

/// Bytes [`put_batch_message`] appends.
pub fn batch_message_len(metadata: &SingleMessageMetadata, payload_len: usize) -> usize {
    4 + metadata.encoded_len() + payload_len
}

/// Builds an uncompressed batch payload.
pub fn build_batch<'a>(
    messages: impl IntoIterator<Item = (&'a SingleMessageMetadata, &'a [u8])>,
) -> Bytes {
    let mut buf = BytesMut::new();
    for (md, p) in messages {
        write_batch_message(&mut buf, md, p);
    }
    buf.freeze()
}

/// `ack_set` words with bits `0..batch_size` set except `acked` (acknowledging one index).
pub fn ack_set_for_index(batch_size: usize, acked: usize) -> Vec<i64> {
    let mut words = vec![0u64; batch_size.div_ceil(64)];
    for i in 0..batch_size {
        if i != acked {
            words[i / 64] |= 1 << (i % 64);
        }
    }
    words.into_iter().map(|w| w as i64).collect()
}

/// Whether index `i` is still unacknowledged according to `ack_set` (bits beyond the words are
/// clear, i.e. acknowledged).
pub fn ack_set_is_unacked(ack_set: &[i64], i: usize) -> bool {
    ack_set
        .get(i / 64)
        .is_some_and(|w| (*w as u64) & (1 << (i % 64)) != 0)
}

/// The indexes below `batch_size` that `ack_set` acknowledges (bit clear).
pub fn ack_set_acked_indexes(
    ack_set: &[i64],
    batch_size: usize,
) -> impl Iterator<Item = usize> + '_ {
    (0..batch_size).filter(move |i| !ack_set_is_unacked(ack_set, *i))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pulsar::KeyValue;
    use proptest::prelude::*;

    fn arb_single() -> impl Strategy<Value = (SingleMessageMetadata, Vec<u8>)> {
        (
            proptest::option::of("[a-z0-9]{0,10}"),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(("[a-z]{1,4}", "[a-z]{0,4}"), 0..3),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(key, seq, props, payload)| {
                let md = SingleMessageMetadata {
                    partition_key: key,
                    sequence_id: seq,
                    payload_size: payload.len() as i32,
                    properties: props
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    ..Default::default()
                };
                (md, payload)
            })
    }

    proptest! {
        #[test]
        fn batch_round_trip(msgs in proptest::collection::vec(arb_single(), 0..20)) {
            let data = build_batch(msgs.iter().map(|(m, p)| (m, &p[..])));
            let parsed = parse_batch(data, Some(msgs.len())).unwrap();
            prop_assert_eq!(parsed.len(), msgs.len());
            for (got, (md, p)) in parsed.iter().zip(&msgs) {
                prop_assert_eq!(&got.metadata, md);
                prop_assert_eq!(&got.payload[..], &p[..]);
            }
        }

        #[test]
        fn arbitrary_batch_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048),
                                             n in proptest::option::of(0usize..1_000_000)) {
            let _ = parse_batch(Bytes::from(data), n);
        }

        #[test]
        fn ack_set_marks_exactly_one(batch in 1usize..200, idx in 0usize..200) {
            let idx = idx % batch;
            let set = ack_set_for_index(batch, idx);
            let acked: Vec<usize> = ack_set_acked_indexes(&set, batch).collect();
            prop_assert_eq!(acked, vec![idx]);
        }
    }

    #[test]
    fn truncated_batch_is_an_error() {
        let md = SingleMessageMetadata::default();
        let data = build_batch([(&md, &b"hello"[..])]);
        let cut = data.slice(..data.len() - 1);
        assert!(matches!(
            parse_batch(cut, None),
            Err(FrameError::InvalidBatch(_))
        ));
        assert!(parse_batch(data, Some(2)).is_err());
    }
}
