//! The checkpoint file (`checkpoint`, in the ledger directory): a [`FileHeader`] with magic
//! `STRCHKPT`, then one frame:
//!
//! ```text
//! journal_seq:u64 journal_offset:u64
//! ledger_count:u32 × (ledger:u64 flags:u8 lac:i64 last_entry:i64 key_len:u16 key)   flags bit0 = fenced
//! deleted_count:u32 × ledger:u64
//! ```
//! Every journal record before `(journal_seq, journal_offset)` is in the segments, the index files
//! and this file; replay starts there. It is replaced atomically (write temp, fsync, rename, fsync dir).

use bytes::{Buf, BufMut, Bytes};

use super::{FILE_HEADER_LEN, FileHeader, FormatError, decode_frame, need, put_frame};

/// Magic of the checkpoint file.
pub const MAGIC: [u8; 8] = *b"STRCHKPT";
/// Current checkpoint format version.
pub const VERSION: u32 = 1;
/// Largest checkpoint body.
pub const MAX_LEN: u32 = 1 << 30;
const MAX_KEY_LEN: usize = super::journal::MAX_KEY_LEN;

/// A ledger's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Ledger.
    pub ledger: u64,
    /// Fenced: adds are refused.
    pub fenced: bool,
    /// Highest LAC a writer reported.
    pub lac: i64,
    /// Highest entry stored.
    pub last_entry: i64,
    /// Master key.
    pub key: Bytes,
}

/// The checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Journal file to replay from.
    pub journal_seq: u64,
    /// Offset in that file to replay from.
    pub journal_offset: u64,
    /// Every live ledger.
    pub ledgers: Vec<LedgerRecord>,
    /// Deleted ledgers whose entries may still be in segments (their index entries are ignored).
    pub deleted: Vec<u64>,
}

impl Checkpoint {
    /// Encodes the whole file (header + frame).
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(24 + self.ledgers.len() * 48 + self.deleted.len() * 8);
        body.put_u64_le(self.journal_seq);
        body.put_u64_le(self.journal_offset);
        body.put_u32_le(self.ledgers.len() as u32);
        for l in &self.ledgers {
            body.put_u64_le(l.ledger);
            body.put_u8(u8::from(l.fenced));
            body.put_i64_le(l.lac);
            body.put_i64_le(l.last_entry);
            body.put_u16_le(l.key.len() as u16);
            body.put_slice(&l.key);
        }
        body.put_u32_le(self.deleted.len() as u32);
        for d in &self.deleted {
            body.put_u64_le(*d);
        }
        let mut out = FileHeader::new(MAGIC, VERSION, seq).encode().to_vec();
        put_frame(&mut out, &[&body]);
        out
    }

    /// Decodes a whole file; returns the checkpoint and its sequence number.
    pub fn decode(buf: &Bytes) -> Result<(Self, u64), FormatError> {
        let h = FileHeader::decode(buf, &MAGIC, VERSION)?;
        let (mut b, used) = decode_frame(&buf.slice(FILE_HEADER_LEN..), MAX_LEN)?;
        if FILE_HEADER_LEN + used != buf.len() {
            return Err(FormatError::Malformed("trailing bytes after checkpoint"));
        }
        need(&b, 20)?;
        let journal_seq = b.get_u64_le();
        let journal_offset = b.get_u64_le();
        let n = b.get_u32_le() as usize;
        // each ledger takes at least 27 bytes: bound the allocation by what is there
        if n > b.remaining() / 27 {
            return Err(FormatError::Malformed("ledger count exceeds the body"));
        }
        let mut ledgers = Vec::with_capacity(n);
        for _ in 0..n {
            need(&b, 27)?;
            let ledger = b.get_u64_le();
            let flags = b.get_u8();
            let lac = b.get_i64_le();
            let last_entry = b.get_i64_le();
            let kl = b.get_u16_le() as usize;
            if kl > MAX_KEY_LEN {
                return Err(FormatError::TooLarge(kl as u64));
            }
            need(&b, kl)?;
            let key = b.split_to(kl);
            ledgers.push(LedgerRecord {
                ledger,
                fenced: flags & 1 == 1,
                lac,
                last_entry,
                key,
            });
        }
        need(&b, 4)?;
        let d = b.get_u32_le() as usize;
        if b.remaining() != d * 8 {
            return Err(FormatError::Malformed(
                "deleted count does not match the body",
            ));
        }
        let deleted = (0..d).map(|_| b.get_u64_le()).collect();
        Ok((
            Self {
                journal_seq,
                journal_offset,
                ledgers,
                deleted,
            },
            h.id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_ledger() -> impl Strategy<Value = LedgerRecord> {
        (
            any::<u64>(),
            any::<bool>(),
            any::<i64>(),
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(ledger, fenced, lac, last_entry, k)| LedgerRecord {
                ledger,
                fenced,
                lac,
                last_entry,
                key: Bytes::from(k),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(
            seq in any::<u64>(), js in any::<u64>(), jo in any::<u64>(),
            ledgers in proptest::collection::vec(arb_ledger(), 0..30),
            deleted in proptest::collection::vec(any::<u64>(), 0..30),
        ) {
            let c = Checkpoint { journal_seq: js, journal_offset: jo, ledgers, deleted };
            let buf = Bytes::from(c.encode(seq));
            prop_assert_eq!(Checkpoint::decode(&buf).unwrap(), (c, seq));
            // a torn file is never accepted
            prop_assert!(Checkpoint::decode(&buf.slice(..buf.len() - 1)).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Checkpoint::decode(&Bytes::from(bytes));
        }
    }
}
