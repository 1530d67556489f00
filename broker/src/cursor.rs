//! Cursor ack state: a mark-delete position plus individually acknowledged ranges and batch-index
//! ack sets, and its compact persisted form.
//!
//! Invariants:
//! - every position `<= mark_delete` is acknowledged;
//! - `acked` holds disjoint, non-adjacent inclusive ranges per ledger, all `> mark_delete`;
//! - `batch` holds, for partly acknowledged batches, the bit set of messages still unacknowledged
//!   (Pulsar's `ack_set`: bit i set = message i not yet acked); an entry is acknowledged as a whole
//!   when its set becomes empty.
//!
//! Persisted as [`CursorSnapshot`] in a compact binary format ([`encode_snapshot`]): magic
//! `SCUR`, version, varint-delta ranges (about 3 bytes per ack hole), CRC32C. Ranges, not
//! positions, so a million acked messages with a few holes stay a few bytes, and no hole is ever
//! dropped (Pulsar #25540 dropped holes beyond a limit). [`decode_snapshot`] also reads the JSON
//! form written by the first version (upgrade path) and never panics on arbitrary bytes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use strata_common::crc::crc32c;

use crate::position::Position;

/// Acknowledgement state of one subscription.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckState {
    mark_delete: Position,
    /// ledger -> (start entry -> end entry), inclusive.
    acked: BTreeMap<u64, BTreeMap<i64, i64>>,
    /// Partly acknowledged batches: remaining (unacked) bits.
    batch: HashMap<Position, Vec<i64>>,
}

/// Persisted form of a cursor (JSON in the metadata store).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CursorSnapshot {
    /// Format version.
    pub v: u32,
    /// Mark-delete position.
    pub md: Position,
    /// Individually acked ranges `[ledger, first, last]`.
    pub ranges: Vec<(u64, i64, i64)>,
    /// Partly acked batches `[ledger, entry, remaining bits]`.
    pub batch: Vec<(u64, i64, Vec<i64>)>,
    /// Subscription properties / type, informational.
    #[serde(default)]
    pub sub_type: Option<i32>,
}

impl AckState {
    /// A cursor whose mark-delete is `md`.
    pub fn new(md: Position) -> Self {
        Self {
            mark_delete: md,
            ..Default::default()
        }
    }

    /// Everything at or before this position is acknowledged.
    pub fn mark_delete(&self) -> Position {
        self.mark_delete
    }

    /// Whether `p` is acknowledged (as a whole entry).
    pub fn is_acked(&self, p: Position) -> bool {
        if p <= self.mark_delete {
            return true;
        }
        self.acked
            .get(&p.ledger)
            .and_then(|r| r.range(..=p.entry).next_back())
            .is_some_and(|(_, &end)| end >= p.entry)
    }

    /// For a partly acknowledged batch, the bits still unacknowledged.
    pub fn batch_remaining(&self, p: Position) -> Option<&[i64]> {
        self.batch.get(&p).map(|v| v.as_slice())
    }

    /// Number of individually acked ranges (holes + 1, roughly).
    pub fn range_count(&self) -> usize {
        self.acked.values().map(|r| r.len()).sum()
    }

    /// Acknowledges one entry. Returns false if it was already acknowledged.
    pub fn ack(&mut self, p: Position) -> bool {
        if self.is_acked(p) {
            return false;
        }
        self.batch.remove(&p);
        let ranges = self.acked.entry(p.ledger).or_default();
        let prev = ranges.range(..p.entry).next_back().map(|(&s, &e)| (s, e));
        let next = ranges.get(&(p.entry + 1)).copied();
        let start = match prev {
            Some((s, e)) if e + 1 == p.entry => s,
            _ => p.entry,
        };
        let end = match next {
            Some(e) => {
                ranges.remove(&(p.entry + 1));
                e
            }
            None => p.entry,
        };
        ranges.insert(start, end);
        true
    }

    /// Acknowledges the messages of batch entry `p` whose bits are cleared in `ack_set`
    /// (`ack_set` bit i set = message i still unacknowledged). Returns true if the whole entry is
    /// now acknowledged.
    pub fn ack_batch(&mut self, p: Position, ack_set: &[i64]) -> bool {
        if self.is_acked(p) {
            return true;
        }
        let cur = self.batch.entry(p).or_insert_with(|| ack_set.to_vec());
        for (i, w) in cur.iter_mut().enumerate() {
            *w &= ack_set.get(i).copied().unwrap_or(0);
        }
        if cur.iter().all(|w| *w == 0) {
            self.ack(p);
            true
        } else {
            false
        }
    }

    /// Acknowledges every position `<= p`.
    pub fn ack_cumulative(&mut self, p: Position) {
        if p <= self.mark_delete {
            return;
        }
        self.mark_delete = p;
        self.trim_below_mark_delete();
    }

    /// Moves the cursor to `md` (seek / reset): forgets every individual ack.
    pub fn reset(&mut self, md: Position) {
        self.mark_delete = md;
        self.acked.clear();
        self.batch.clear();
    }

    fn trim_below_mark_delete(&mut self) {
        let md = self.mark_delete;
        self.acked.retain(|&l, _| l >= md.ledger);
        if let Some(r) = self.acked.get_mut(&md.ledger) {
            let keep: BTreeMap<i64, i64> = r
                .iter()
                .filter(|(_, e)| **e > md.entry)
                .map(|(&s, &e)| (s.max(md.entry + 1), e))
                .collect();
            *r = keep;
            if r.is_empty() {
                self.acked.remove(&md.ledger);
            }
        }
        self.batch.retain(|p, _| *p > md);
    }

    /// Advances the mark-delete over acknowledged positions. `next(p)` gives the position after `p`
    /// in the managed ledger (crossing ledger boundaries), or None past the end.
    pub fn advance(&mut self, next: impl Fn(Position) -> Option<Position>) -> bool {
        let before = self.mark_delete;
        while let Some(n) = next(self.mark_delete) {
            if n <= self.mark_delete {
                break;
            }
            match self
                .acked
                .get(&n.ledger)
                .and_then(|r| r.get(&n.entry).copied())
            {
                Some(end) => {
                    self.mark_delete = Position::new(n.ledger, end);
                    if let Some(r) = self.acked.get_mut(&n.ledger) {
                        r.remove(&n.entry);
                        if r.is_empty() {
                            self.acked.remove(&n.ledger);
                        }
                    }
                }
                None => break,
            }
        }
        self.trim_below_mark_delete();
        self.mark_delete != before
    }

    /// The individually acknowledged ranges after the mark-delete position in Pulsar's form
    /// `[(3:4..3:7], (3:9..3:10]]` (each range open at its start), at most `limit` of them.
    pub fn deleted_ranges_text(&self, limit: usize) -> String {
        let parts: Vec<String> = self
            .acked
            .iter()
            .flat_map(|(&l, r)| r.iter().map(move |(&s, &e)| (l, s, e)))
            .take(limit)
            .map(|(l, s, e)| format!("({l}:{}..{l}:{e}]", s - 1))
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// The persisted form.
    pub fn snapshot(&self) -> CursorSnapshot {
        let ranges = self
            .acked
            .iter()
            .flat_map(|(&l, r)| r.iter().map(move |(&s, &e)| (l, s, e)))
            .collect();
        let mut batch: Vec<(u64, i64, Vec<i64>)> = self
            .batch
            .iter()
            .map(|(p, bits)| (p.ledger, p.entry, bits.clone()))
            .collect();
        batch.sort();
        CursorSnapshot {
            v: 1,
            md: self.mark_delete,
            ranges,
            batch,
            sub_type: None,
        }
    }

    /// Restores from the persisted form.
    pub fn from_snapshot(s: &CursorSnapshot) -> Self {
        let mut st = AckState::new(s.md);
        for &(l, a, b) in &s.ranges {
            if b >= a {
                st.acked.entry(l).or_default().insert(a, b);
            }
        }
        for (l, e, bits) in &s.batch {
            st.batch.insert(Position::new(*l, *e), bits.clone());
        }
        st.trim_below_mark_delete();
        st
    }
}

/// Magic of the binary cursor format.
pub const CURSOR_MAGIC: &[u8; 4] = b"SCUR";
/// Current version of the binary cursor format.
pub const CURSOR_VERSION: u8 = 1;

/// Why stored cursor bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CursorDecodeError {
    #[error("truncated cursor")]
    Truncated,
    #[error("bad cursor magic")]
    BadMagic,
    #[error("unsupported cursor version {0}")]
    Version(u8),
    #[error("cursor checksum mismatch")]
    Checksum,
    #[error("invalid cursor: {0}")]
    Invalid(&'static str),
    #[error("invalid JSON cursor: {0}")]
    Json(String),
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn varint(&mut self) -> Result<u64, CursorDecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&byte, rest) = self.b.split_first().ok_or(CursorDecodeError::Truncated)?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CursorDecodeError::Invalid("varint too long"))
    }
    fn count(&mut self, min_bytes_each: usize) -> Result<usize, CursorDecodeError> {
        let n = self.varint()?;
        // Every element takes at least `min_bytes_each` bytes: bound counts by what is left.
        if n > (self.b.len() / min_bytes_each.max(1)) as u64 {
            return Err(CursorDecodeError::Invalid("count larger than the data"));
        }
        Ok(n as usize)
    }
}

/// Encodes a snapshot in the binary format.
pub fn encode_snapshot(s: &CursorSnapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + s.ranges.len() * 3 + s.batch.len() * 16);
    out.extend_from_slice(CURSOR_MAGIC);
    out.push(CURSOR_VERSION);
    put_varint(&mut out, s.md.ledger);
    put_varint(&mut out, zigzag(s.md.entry));
    put_varint(&mut out, s.ranges.len() as u64);
    let (mut pl, mut pe) = (0u64, 0i64);
    for &(l, a, b) in &s.ranges {
        if l != pl {
            pe = 0;
        }
        put_varint(&mut out, l.wrapping_sub(pl));
        put_varint(&mut out, zigzag(a.wrapping_sub(pe)));
        put_varint(&mut out, zigzag(b.wrapping_sub(a)));
        pl = l;
        pe = b;
    }
    put_varint(&mut out, s.batch.len() as u64);
    for (l, e, bits) in &s.batch {
        put_varint(&mut out, *l);
        put_varint(&mut out, zigzag(*e));
        put_varint(&mut out, bits.len() as u64);
        for w in bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    put_varint(
        &mut out,
        s.sub_type.map(|t| zigzag(i64::from(t)) + 1).unwrap_or(0),
    );
    let crc = crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a stored cursor: the binary format, or the JSON of the first version.
pub fn decode_snapshot(bytes: &[u8]) -> Result<CursorSnapshot, CursorDecodeError> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|e| CursorDecodeError::Json(e.to_string()));
    }
    if bytes.len() < CURSOR_MAGIC.len() + 1 + 4 {
        return Err(CursorDecodeError::Truncated);
    }
    if &bytes[..4] != CURSOR_MAGIC {
        return Err(CursorDecodeError::BadMagic);
    }
    if bytes[4] != CURSOR_VERSION {
        return Err(CursorDecodeError::Version(bytes[4]));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c(body) != crc {
        return Err(CursorDecodeError::Checksum);
    }
    let mut r = Reader { b: &body[5..] };
    let md = Position::new(r.varint()?, unzigzag(r.varint()?));
    let n = r.count(3)?;
    let mut ranges = Vec::with_capacity(n);
    let (mut pl, mut pe) = (0u64, 0i64);
    for _ in 0..n {
        let l = pl.wrapping_add(r.varint()?);
        if l != pl {
            pe = 0;
        }
        let a = pe.wrapping_add(unzigzag(r.varint()?));
        let b = a.wrapping_add(unzigzag(r.varint()?));
        ranges.push((l, a, b));
        pl = l;
        pe = b;
    }
    let n = r.count(3)?;
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        let l = r.varint()?;
        let e = unzigzag(r.varint()?);
        let words = r.count(8)?;
        let mut bits = Vec::with_capacity(words);
        for _ in 0..words {
            if r.b.len() < 8 {
                return Err(CursorDecodeError::Truncated);
            }
            let (w, rest) = r.b.split_at(8);
            bits.push(i64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
            r.b = rest;
        }
        batch.push((l, e, bits));
    }
    let t = r.varint()?;
    let sub_type = if t == 0 {
        None
    } else {
        i32::try_from(unzigzag(t - 1)).ok()
    };
    if !r.b.is_empty() {
        return Err(CursorDecodeError::Invalid("trailing bytes"));
    }
    Ok(CursorSnapshot {
        v: 2,
        md,
        ranges,
        batch,
        sub_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One ledger 1 with entries 0..n.
    fn next_in(n: i64) -> impl Fn(Position) -> Option<Position> {
        move |p: Position| {
            if p.ledger < 1 {
                Some(Position::new(1, 0))
            } else if p.entry + 1 < n {
                Some(Position::new(1, p.entry + 1))
            } else {
                None
            }
        }
    }

    #[test]
    fn individual_acks_advance_mark_delete() {
        let mut s = AckState::new(Position::new(1, -1));
        assert!(s.ack(Position::new(1, 1)));
        assert!(s.ack(Position::new(1, 3)));
        assert!(!s.ack(Position::new(1, 3)));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, -1));
        s.ack(Position::new(1, 0));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, 1));
        s.ack(Position::new(1, 2));
        s.advance(next_in(10));
        assert_eq!(s.mark_delete(), Position::new(1, 3));
        assert_eq!(s.range_count(), 0);
    }

    #[test]
    fn batch_index_acks() {
        let mut s = AckState::new(Position::new(1, -1));
        let p = Position::new(1, 0);
        // batch of 3: all bits set = 0b111; ack index 1 -> 0b101
        assert!(!s.ack_batch(p, &[0b101]));
        assert_eq!(s.batch_remaining(p), Some(&[0b101i64][..]));
        assert!(!s.ack_batch(p, &[0b011])); // ack index 2 -> remaining 0b001
        assert!(s.ack_batch(p, &[0b110])); // ack index 0 -> empty
        assert!(s.is_acked(p));
        let snap = s.snapshot();
        assert_eq!(AckState::from_snapshot(&snap), s);
    }

    #[test]
    fn many_holes_are_kept_compactly() {
        let mut s = AckState::new(Position::new(1, -1));
        for e in (1..200_000).step_by(2) {
            s.ack(Position::new(1, e));
        }
        let snap = s.snapshot();
        assert_eq!(snap.ranges.len(), 100_000 - 1 + 1);
        let bin = encode_snapshot(&snap);
        assert!(
            bin.len() < 4 * 100_000,
            "{} bytes for 100k holes",
            bin.len()
        );
        let back = AckState::from_snapshot(&decode_snapshot(&bin).unwrap());
        assert!(back.is_acked(Position::new(1, 199_999)));
        assert!(!back.is_acked(Position::new(1, 199_998)));
    }

    #[test]
    fn reads_the_json_format_of_version_one() {
        // Golden bytes as written by the first version (serde_json of CursorSnapshot).
        let old = br#"{"v":1,"md":{"ledger":7,"entry":3},"ranges":[[7,5,9],[8,0,0]],"batch":[[7,4,[5]]],"sub_type":null}"#;
        let s = decode_snapshot(old).unwrap();
        let st = AckState::from_snapshot(&s);
        assert_eq!(st.mark_delete(), Position::new(7, 3));
        assert!(st.is_acked(Position::new(7, 9)) && st.is_acked(Position::new(8, 0)));
        assert_eq!(st.batch_remaining(Position::new(7, 4)), Some(&[5i64][..]));
    }

    #[test]
    fn corrupt_binary_is_detected() {
        let s = AckState::new(Position::new(3, 10)).snapshot();
        let mut b = encode_snapshot(&s);
        let n = b.len();
        b[n - 5] ^= 1;
        assert_eq!(decode_snapshot(&b), Err(CursorDecodeError::Checksum));
        assert_eq!(decode_snapshot(b"SCUR"), Err(CursorDecodeError::Truncated));
        assert_eq!(
            decode_snapshot(b"XXXX\x01\0\0\0\0"),
            Err(CursorDecodeError::BadMagic)
        );
    }

    proptest! {
        #[test]
        fn binary_roundtrip(md_l in 0u64..1000, md_e in -1i64..1000,
                            ranges in proptest::collection::vec((0u64..5, 0i64..10_000, 0i64..50), 0..50),
                            batch in proptest::collection::vec((0u64..5, 0i64..1000, proptest::collection::vec(any::<i64>(), 0..3)), 0..5),
                            sub_type in proptest::option::of(-3i32..5)) {
            let mut ranges: Vec<(u64, i64, i64)> = ranges.into_iter().map(|(l, a, len)| (l, a, a + len)).collect();
            ranges.sort();
            let snap = CursorSnapshot { v: 2, md: Position::new(md_l, md_e), ranges, batch, sub_type };
            let back = decode_snapshot(&encode_snapshot(&snap)).unwrap();
            prop_assert_eq!(back, snap);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
            let mut framed = b"SCUR\x01".to_vec();
            framed.extend_from_slice(&bytes);
            let crc = crc32c(&framed);
            framed.extend_from_slice(&crc.to_le_bytes());
            let _ = decode_snapshot(&framed);
        }

        #[test]
        fn acked_set_matches_model(acks in proptest::collection::vec(0i64..64, 0..200), cum in proptest::option::of(0i64..64)) {
            let mut s = AckState::new(Position::new(1, -1));
            let mut model = std::collections::BTreeSet::new();
            for a in &acks {
                s.ack(Position::new(1, *a));
                model.insert(*a);
            }
            if let Some(c) = cum {
                s.ack_cumulative(Position::new(1, c));
                for e in 0..=c { model.insert(e); }
            }
            s.advance(next_in(64));
            let snap = s.snapshot();
            let s2 = AckState::from_snapshot(&snap);
            for e in 0..64 {
                prop_assert_eq!(s.is_acked(Position::new(1, e)), model.contains(&e));
                prop_assert_eq!(s2.is_acked(Position::new(1, e)), model.contains(&e));
            }
            // mark-delete is exactly the end of the acked prefix
            let mut md = -1;
            while model.contains(&(md + 1)) && md + 1 < 64 { md += 1; }
            prop_assert_eq!(s.mark_delete(), Position::new(1, md));
        }
    }
}
