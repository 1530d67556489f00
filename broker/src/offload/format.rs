//! The offloaded ledger's object formats (little-endian).
//!
//! Data objects (`data-NNNNN`) are runs of *blocks*; each block stands alone:
//! `magic "STBK" u32 | version u16 | flags u16 (0) | first_entry u64 | count u32 | payload_len u32 |
//! crc32c(payload) u32 | payload`, the payload being `count × (len u32 | entry bytes)`.
//!
//! The index object (`index`) lists every block, so a read at any entry is one ranged GET of one
//! block: `magic "STRTIDX\0" | version u32 | ledger u64 | entries u64 | parts u32 | blocks u32 |
//! blocks × (first_entry u64 | count u32 | part u32 | offset u64 | len u32) | crc32c u32` (the CRC
//! covers every byte before it).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strata_common::crc::crc32c;

/// Block magic.
pub const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"STBK");
/// Index magic.
pub const INDEX_MAGIC: [u8; 8] = *b"STRTIDX\0";
/// Format version written.
pub const VERSION: u16 = 1;
/// Bytes of a block header.
pub const BLOCK_HEADER: usize = 28;
const INDEX_HEADER: usize = 8 + 4 + 8 + 8 + 4 + 4;
const INDEX_ENTRY: usize = 28;

/// A malformed or corrupted object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt offloaded object: {0}")]
pub struct FormatError(pub String);

fn bad(s: impl Into<String>) -> FormatError {
    FormatError(s.into())
}

/// Encodes one block of consecutive entries starting at `first_entry`.
pub fn encode_block(first_entry: u64, entries: &[Bytes]) -> Bytes {
    let payload_len: usize = entries.iter().map(|e| 4 + e.len()).sum();
    let mut payload = BytesMut::with_capacity(payload_len);
    for e in entries {
        payload.put_u32_le(e.len() as u32);
        payload.put_slice(e);
    }
    let mut out = BytesMut::with_capacity(BLOCK_HEADER + payload_len);
    out.put_u32_le(BLOCK_MAGIC);
    out.put_u16_le(VERSION);
    out.put_u16_le(0);
    out.put_u64_le(first_entry);
    out.put_u32_le(entries.len() as u32);
    out.put_u32_le(payload_len as u32);
    out.put_u32_le(crc32c(&payload));
    out.put_slice(&payload);
    out.freeze()
}

/// Decodes a block the index described (`first_entry`, `count`): checks magic, version, CRC and
/// every length; entries are slices of `buf` (no copy).
pub fn decode_block(buf: Bytes, first_entry: u64, count: u32) -> Result<Vec<Bytes>, FormatError> {
    if buf.len() < BLOCK_HEADER {
        return Err(bad(format!("block of {} bytes", buf.len())));
    }
    let mut h = &buf[..BLOCK_HEADER];
    if h.get_u32_le() != BLOCK_MAGIC {
        return Err(bad("bad block magic"));
    }
    let version = h.get_u16_le();
    if version != VERSION {
        return Err(bad(format!(
            "block format version {version} (know {VERSION})"
        )));
    }
    if h.get_u16_le() != 0 {
        return Err(bad("unknown block flags"));
    }
    let (first, n, len, crc) = (
        h.get_u64_le(),
        h.get_u32_le(),
        h.get_u32_le(),
        h.get_u32_le(),
    );
    if first != first_entry || n != count || len as usize != buf.len() - BLOCK_HEADER {
        return Err(bad(format!(
            "block header ({first}, {n}, {len}) does not match the index ({first_entry}, {count}, {})",
            buf.len() - BLOCK_HEADER
        )));
    }
    let payload = buf.slice(BLOCK_HEADER..);
    if crc32c(&payload) != crc {
        return Err(bad(format!("CRC mismatch in block at entry {first_entry}")));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut at = 0usize;
    for _ in 0..n {
        let Some(l) = payload.get(at..at + 4) else {
            return Err(bad("entry length past the block"));
        };
        let l = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
        let end = at + 4 + l;
        if end > payload.len() {
            return Err(bad("entry past the block"));
        }
        out.push(payload.slice(at + 4..end));
        at = end;
    }
    if at != payload.len() {
        return Err(bad("trailing bytes in block"));
    }
    Ok(out)
}

/// Where one block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Its first entry.
    pub first_entry: u64,
    /// Entries in it.
    pub count: u32,
    /// Data object number.
    pub part: u32,
    /// Offset in that object.
    pub offset: u64,
    /// Length (header included).
    pub len: u32,
}

/// The index of one offloaded ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    /// Ledger id.
    pub ledger: u64,
    /// Entries offloaded (0..entries).
    pub entries: u64,
    /// Data objects.
    pub parts: u32,
    /// Blocks in entry order.
    pub blocks: Vec<BlockRef>,
}

impl Index {
    /// Encodes with its CRC.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(INDEX_HEADER + self.blocks.len() * INDEX_ENTRY + 4);
        out.put_slice(&INDEX_MAGIC);
        out.put_u32_le(VERSION as u32);
        out.put_u64_le(self.ledger);
        out.put_u64_le(self.entries);
        out.put_u32_le(self.parts);
        out.put_u32_le(self.blocks.len() as u32);
        for b in &self.blocks {
            out.put_u64_le(b.first_entry);
            out.put_u32_le(b.count);
            out.put_u32_le(b.part);
            out.put_u64_le(b.offset);
            out.put_u32_le(b.len);
        }
        let crc = crc32c(&out);
        out.put_u32_le(crc);
        out.freeze()
    }

    /// Decodes and checks an index (magic, version, CRC, sizes, blocks contiguous from 0).
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        if buf.len() < INDEX_HEADER + 4 {
            return Err(bad(format!("index of {} bytes", buf.len())));
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(bad("index CRC mismatch"));
        }
        let mut h = body;
        if h[..8] != INDEX_MAGIC {
            return Err(bad("bad index magic"));
        }
        h.advance(8);
        let version = h.get_u32_le();
        if version != VERSION as u32 {
            return Err(bad(format!(
                "index format version {version} (know {VERSION})"
            )));
        }
        let (ledger, entries, parts, n) = (
            h.get_u64_le(),
            h.get_u64_le(),
            h.get_u32_le(),
            h.get_u32_le(),
        );
        if h.len() != n as usize * INDEX_ENTRY {
            return Err(bad("index length does not match its block count"));
        }
        let mut blocks = Vec::with_capacity(n as usize);
        let mut next = 0u64;
        for _ in 0..n {
            let b = BlockRef {
                first_entry: h.get_u64_le(),
                count: h.get_u32_le(),
                part: h.get_u32_le(),
                offset: h.get_u64_le(),
                len: h.get_u32_le(),
            };
            if b.first_entry != next || b.count == 0 || b.part >= parts {
                return Err(bad("index blocks are not contiguous"));
            }
            next += b.count as u64;
            blocks.push(b);
        }
        if next != entries {
            return Err(bad(format!("index covers {next} entries, says {entries}")));
        }
        Ok(Self {
            ledger,
            entries,
            parts,
            blocks,
        })
    }

    /// The block holding `entry`.
    pub fn block_of(&self, entry: u64) -> Option<usize> {
        if entry >= self.entries {
            return None;
        }
        Some(self.blocks.partition_point(|b| b.first_entry <= entry) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn block_round_trip(first in 0u64..1 << 40, entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..20)) {
            let es: Vec<Bytes> = entries.into_iter().map(Bytes::from).collect();
            let b = encode_block(first, &es);
            prop_assert_eq!(decode_block(b, first, es.len() as u32).unwrap(), es);
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..200), first in 0u64..4, n in 0u32..4) {
            let _ = decode_block(Bytes::from(buf.clone()), first, n);
            let _ = Index::decode(&buf);
        }
    }

    #[test]
    fn corruption_is_detected() {
        let es = vec![Bytes::from_static(b"hello"), Bytes::from_static(b"world")];
        let b = encode_block(7, &es);
        for i in 0..b.len() {
            let mut c = b.to_vec();
            c[i] ^= 0x40;
            assert!(decode_block(Bytes::from(c), 7, 2).is_err(), "flip at {i}");
        }
        let idx = Index {
            ledger: 3,
            entries: 5,
            parts: 1,
            blocks: vec![
                BlockRef {
                    first_entry: 0,
                    count: 2,
                    part: 0,
                    offset: 0,
                    len: 40,
                },
                BlockRef {
                    first_entry: 2,
                    count: 3,
                    part: 0,
                    offset: 40,
                    len: 50,
                },
            ],
        };
        let enc = idx.encode();
        assert_eq!(Index::decode(&enc).unwrap(), idx);
        assert_eq!(idx.block_of(0), Some(0));
        assert_eq!(idx.block_of(1), Some(0));
        assert_eq!(idx.block_of(2), Some(1));
        assert_eq!(idx.block_of(4), Some(1));
        assert_eq!(idx.block_of(5), None);
        let mut c = enc.to_vec();
        c[20] ^= 1;
        assert!(Index::decode(&c).is_err());
    }
}
