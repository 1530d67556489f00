//! Journal records encoded by the thread that queues them.
//!
//! A record is encoded into the next group commit's write buffer as it is queued (under the
//! admission lock, so in queue order), by the thread that has just received its payload and
//! checked its checksum, while the payload is in that core's cache: the journal thread's copy of
//! the same bytes a moment later was a sixth of the batched server's CPU, and made here the
//! copies cost a fifth to two fifths less. The buffer is laid out as the journal thread writes it:
//! padding to a block boundary, room for the journal file's last partial block, then the
//! records, framed for the file they were staged for. The journal thread takes the buffer
//! (leaving a fresh one, laid out for where its commit will end) and writes it as it is. A commit
//! whose records are not in the buffer as they are to be written is encoded again from the
//! queued records, as before: the one that rolls to the next file (framed for the old one), and
//! those queued while the journal is more than a buffer (2 MiB, or `journal_max_batch_bytes` if
//! smaller) behind (a full buffer only counts records: it never moves, and a backlog is never
//! copied from buffer to buffer).

use crate::format::journal::JournalRecord;

use super::sys::{BLOCK, pad_to_block};

/// Records of the next group commit, encoded in place (see the module documentation).
pub(super) struct Staged {
    pub(super) buf: Vec<u8>,
    /// Where the records start in `buf`: after the padding to a block boundary and `room`.
    pub(super) start: usize,
    /// Bytes reserved before `start` for the journal file's last partial block.
    pub(super) room: usize,
    /// The journal file whose sequence number seeds the records' checksums.
    pub(super) seq: u64,
    /// Records staged.
    records: usize,
    /// Their encoded length (what `buf` holds after `start`, unless `stale`).
    len: usize,
    /// Bytes of records `buf` takes without moving.
    capacity: usize,
    /// `buf` does not hold these records as they are to be written: some were not copied (the
    /// journal is more than a buffer behind: copying more would move the buffer, or copy a
    /// backlog from buffer to buffer at every commit), or were framed for another file than
    /// `seq` (moved over across a roll). The journal encodes this batch again from the queue.
    stale: bool,
}

impl Staged {
    /// An empty buffer (reusing `buf`'s allocation) for records of journal file `seq` that
    /// will follow `room` bytes of its last partial block; `capacity` bytes of records fit
    /// without moving it.
    pub(super) fn new(mut buf: Vec<u8>, seq: u64, room: usize, capacity: usize) -> Self {
        buf.clear();
        buf.reserve(capacity + room + 2 * BLOCK);
        let start = pad_to_block(buf.as_ptr() as usize) + room;
        buf.resize(start, 0);
        Staged {
            buf,
            start,
            room,
            seq,
            records: 0,
            len: 0,
            capacity,
            stale: false,
        }
    }

    /// Encodes `rec` after the records staged so far; only counts it once the buffer is stale
    /// or full.
    pub(super) fn push(&mut self, rec: &JournalRecord) {
        let n = rec.encoded_len();
        self.records += 1;
        self.len += n;
        if self.stale || self.len > self.capacity {
            self.stale = true;
            return;
        }
        rec.encode_into(&mut self.buf, self.seq);
    }

    /// Records staged.
    pub(super) fn records(&self) -> usize {
        self.records
    }

    /// Bytes of records staged (their encoded length).
    pub(super) fn bytes(&self) -> usize {
        self.len
    }

    /// Takes the first `records` records (`bytes` long), or all of them if there are no more,
    /// leaving in their place a buffer (`spare`'s allocation) laid out for file `seq` after
    /// `room` bytes of its last block, which keeps the records not taken.
    pub(super) fn take(
        &mut self,
        records: usize,
        bytes: usize,
        spare: Vec<u8>,
        (seq, room): (u64, usize),
        capacity: usize,
    ) -> Staged {
        let mut next = Staged::new(spare, seq, room, capacity);
        if records < self.records && bytes < self.len {
            // more than a commit's worth queued (the journal is behind): the rest moves over,
            // copied only if it is all there and framed for the file it will land in
            next.records = self.records - records;
            next.len = self.len - bytes;
            next.stale = self.stale || seq != self.seq || next.len > capacity;
            if !next.stale {
                next.buf.extend_from_slice(&self.buf[self.start + bytes..]);
            }
            self.buf.truncate(self.start + bytes);
            self.records = records;
            self.len = bytes;
        }
        std::mem::replace(self, next)
    }

    /// Whether these records can be written as they are at the end of journal file `seq`, whose
    /// last partial block is `tail` bytes long: framed for that file, room for exactly that
    /// block, and that room still on a block boundary (the buffer did not move).
    pub(super) fn fits(&self, seq: u64, tail: usize) -> bool {
        self.framed_for(seq)
            && self.room == tail
            && pad_to_block(self.buf.as_ptr() as usize + self.start - self.room) == 0
    }

    /// Whether every record is framed for journal file `seq` (what a buffered write needs).
    pub(super) fn framed_for(&self, seq: u64) -> bool {
        !self.stale && self.seq == seq
    }

    /// The buffer, for reuse.
    pub(super) fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Payload;
    use bytes::Bytes;

    fn add(entry: u64, len: usize) -> JournalRecord {
        JournalRecord::Add {
            ledger: 7,
            entry,
            lac: -1,
            key: Bytes::from_static(b"key"),
            payload: Payload::new(Bytes::from(vec![entry as u8; len])),
        }
    }

    fn encoded(recs: &[JournalRecord], seq: u64) -> Vec<u8> {
        let mut out = vec![];
        for r in recs {
            r.encode_into(&mut out, seq);
        }
        out
    }

    /// Staged records are byte for byte what the journal thread would encode, after room for
    /// the file's tail that ends on a block boundary.
    #[test]
    fn records_are_encoded_after_aligned_room() {
        let recs: Vec<_> = (0..5).map(|e| add(e, 1000 * e as usize)).collect();
        let mut st = Staged::new(Vec::new(), 9, 100, 1 << 16);
        for r in &recs {
            st.push(r);
        }
        assert_eq!(st.records(), 5);
        assert_eq!(&st.buf[st.start..], &encoded(&recs, 9)[..]);
        assert!(st.fits(9, 100));
        assert!(!st.fits(10, 100), "framed for file 9");
        assert!(!st.fits(9, 99), "room for another tail");
    }

    /// Taking everything leaves an empty buffer laid out for where the commit ends; taking a
    /// prefix moves the rest over, marked stale when the commit rolls to another file.
    #[test]
    fn take_leaves_the_rest_for_the_next_commit() {
        let recs: Vec<_> = (0..4).map(|e| add(e, 3000)).collect();
        let mut st = Staged::new(Vec::new(), 3, 0, 1 << 16);
        for r in &recs {
            st.push(r);
        }
        let two = recs[0].encoded_len() + recs[1].encoded_len();
        let first = st.take(2, two, Vec::new(), (3, 17), 1 << 16);
        assert_eq!(first.records(), 2);
        assert_eq!(&first.buf[first.start..], &encoded(&recs[..2], 3)[..]);
        assert_eq!(st.records(), 2);
        assert_eq!(&st.buf[st.start..], &encoded(&recs[2..], 3)[..]);
        assert!(st.fits(3, 17));

        let rolled = st.take(1, recs[2].encoded_len(), first.into_buf(), (4, 24), 1 << 16);
        assert_eq!(rolled.records(), 1);
        assert_eq!(st.records(), 1);
        assert!(
            !st.fits(4, 24),
            "framed for file 3, to be written in file 4"
        );

        let rest = st.take(1, recs[3].encoded_len(), rolled.into_buf(), (4, 0), 1 << 16);
        assert!(!rest.fits(4, 24));
        assert_eq!(st.records(), 0);
        assert_eq!(st.bytes(), 0);
        assert!(st.fits(4, 0));
    }

    /// Past its capacity a buffer only counts records (it goes stale: the journal encodes them
    /// again), and a stale rest is not copied to the next buffer, which is stale too.
    #[test]
    fn a_full_buffer_counts_records_without_copying_them() {
        let recs: Vec<_> = (0..5).map(|e| add(e, 3000)).collect();
        let one = recs[0].encoded_len();
        let mut st = Staged::new(Vec::new(), 2, 0, 2 * one);
        for r in &recs[..2] {
            st.push(r);
        }
        assert!(st.fits(2, 0));
        for r in &recs[2..] {
            st.push(r);
        }
        assert_eq!((st.records(), st.bytes()), (5, 5 * one));
        assert_eq!(
            st.buf.len() - st.start,
            2 * one,
            "nothing copied past the capacity"
        );
        assert!(!st.framed_for(2));

        let first = st.take(2, 2 * one, Vec::new(), (2, 0), 2 * one);
        assert_eq!((first.records(), first.bytes()), (2, 2 * one));
        assert!(!first.framed_for(2), "taken from a stale buffer");
        assert_eq!((st.records(), st.bytes()), (3, 3 * one));
        assert_eq!(st.buf.len(), st.start, "the stale rest is not copied");
        assert!(!st.framed_for(2));

        // once the backlog is taken, the next buffer holds its records again
        let _ = st.take(3, 3 * one, first.into_buf(), (2, 0), 2 * one);
        st.push(&recs[0]);
        assert!(st.fits(2, 0));
        assert_eq!(&st.buf[st.start..], &encoded(&recs[..1], 2)[..]);
    }
}
