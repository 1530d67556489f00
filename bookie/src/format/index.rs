//! Index files: one `seg-<id>.idx` beside each segment. A [`FileHeader`] with magic `STRINDEX` and
//! the segment id, then frames; each frame is one *block* written by one flush:
//! `count:u32` then `count` × `ledger:u64 entry:u64 offset:u64 len:u32`. A block is written and
//! synced only after the segment bytes it points at are synced, so an index never points at data
//! that is not on disk. Restart loads these files instead of rescanning segments.

use bytes::{Buf, BufMut, Bytes};

use super::{FILE_HEADER_LEN, FileHeader, FormatError, decode_frame, need, put_frame};

/// Magic of index files.
pub const MAGIC: [u8; 8] = *b"STRINDEX";
/// Current index format version.
pub const VERSION: u32 = 1;
/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 28;
/// Most entries in one block.
pub const MAX_BLOCK_ENTRIES: usize = 1 << 20;
/// Largest block frame body.
pub const MAX_BLOCK_LEN: u32 = (4 + ENTRY_LEN * MAX_BLOCK_ENTRIES) as u32;

/// One index entry: where `(ledger, entry)` is in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Ledger.
    pub ledger: u64,
    /// Entry.
    pub entry: u64,
    /// Offset of the entry's frame in the segment.
    pub offset: u64,
    /// Length of the frame.
    pub len: u32,
}

/// Appends one block (one frame) holding `entries` to `out`. Callers split at [`MAX_BLOCK_ENTRIES`].
pub fn encode_block(entries: &[IndexEntry], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(4 + entries.len() * ENTRY_LEN);
    body.put_u32_le(entries.len() as u32);
    for e in entries {
        body.put_u64_le(e.ledger);
        body.put_u64_le(e.entry);
        body.put_u64_le(e.offset);
        body.put_u32_le(e.len);
    }
    put_frame(out, &[&body]);
}

/// Decodes the block at the start of `buf`; returns its entries and the bytes it used.
pub fn decode_block(buf: &Bytes) -> Result<(Vec<IndexEntry>, usize), FormatError> {
    let (mut body, used) = decode_frame(buf, MAX_BLOCK_LEN)?;
    need(&body, 4)?;
    let n = body.get_u32_le() as usize;
    if n > MAX_BLOCK_ENTRIES {
        return Err(FormatError::TooLarge(n as u64));
    }
    if body.remaining() != n * ENTRY_LEN {
        return Err(FormatError::Malformed(
            "index block length does not match its count",
        ));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(IndexEntry {
            ledger: body.get_u64_le(),
            entry: body.get_u64_le(),
            offset: body.get_u64_le(),
            len: body.get_u32_le(),
        });
    }
    Ok((out, used))
}

/// The header of the index of segment `id`.
pub fn file_header(id: u64) -> [u8; FILE_HEADER_LEN] {
    FileHeader::new(MAGIC, VERSION, id).encode()
}

/// Decodes a whole index file: its segment id, every entry of every valid block, the offset where
/// valid blocks end, and why decoding stopped early (a torn last block), if it did.
pub fn decode_file(
    buf: &Bytes,
) -> Result<(u64, Vec<IndexEntry>, usize, Option<FormatError>), FormatError> {
    let h = FileHeader::decode(buf, &MAGIC, VERSION)?;
    let mut pos = FILE_HEADER_LEN;
    let mut out = vec![];
    while pos < buf.len() {
        match decode_block(&buf.slice(pos..)) {
            Ok((es, used)) => {
                out.extend(es);
                pos += used;
            }
            Err(e) => return Ok((h.id, out, pos, Some(e))),
        }
    }
    Ok((h.id, out, pos, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = IndexEntry> {
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(ledger, entry, offset, len)| IndexEntry {
                ledger,
                entry,
                offset,
                len,
            },
        )
    }

    proptest! {
        #[test]
        fn roundtrip(blocks in proptest::collection::vec(proptest::collection::vec(arb_entry(), 0..50), 0..5), id in any::<u64>()) {
            let mut out = file_header(id).to_vec();
            for b in &blocks {
                encode_block(b, &mut out);
            }
            let len = out.len();
            let (got_id, got, end, stop) = decode_file(&Bytes::from(out)).unwrap();
            prop_assert_eq!(got_id, id);
            prop_assert!(stop.is_none());
            prop_assert_eq!(end, len);
            prop_assert_eq!(got, blocks.concat());
        }

        #[test]
        fn torn_last_block_keeps_earlier_blocks(a in proptest::collection::vec(arb_entry(), 1..20), b in proptest::collection::vec(arb_entry(), 1..20), cut in any::<prop::sample::Index>()) {
            let mut out = file_header(1).to_vec();
            encode_block(&a, &mut out);
            let mid = out.len();
            encode_block(&b, &mut out);
            let cut = mid + cut.index(out.len() - mid);
            let (_, got, end, stop) = decode_file(&Bytes::from(out).slice(..cut)).unwrap();
            prop_assert_eq!(got, a);
            prop_assert_eq!(end, mid);
            prop_assert_eq!(stop.is_some(), cut > mid);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let b = Bytes::from(bytes);
            let _ = decode_block(&b);
            let _ = decode_file(&b);
        }
    }
}
