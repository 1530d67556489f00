//! The segment the flusher appends to, with its index file, written with direct I/O where the
//! filesystem allows it.
//!
//! Segment bytes go from our buffer to the device with `O_DIRECT`: no copy into the page cache
//! and no writeback to start and wait for (through the page cache, the copy and the writeback
//! were most of the flusher's CPU). Direct writes start and end on block boundaries, so a chunk
//! writes its whole blocks and keeps the partial last one in the buffer. A sync (the end of a
//! flush) writes that partial block through the page cache; the block is then finished through
//! the page cache too, and the direct writes resume at the next boundary. So a block is written
//! either whole and once with `O_DIRECT`, or only through the page cache: a read (reads are
//! buffered) can never find a cached page older than the block's bytes on disk, which a direct
//! rewrite of a cached block could leave. The file's bytes are those of buffered writes (the
//! format has no padding).
//!
//! A filesystem that refuses `O_DIRECT` (at open or at the first write, `EINVAL`), or
//! `segment_direct_io = false`, gets the same bytes through the page cache, with bounded
//! writeback (see [`super::sys`]).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::BookieError;
use crate::format::index::{self, IndexEntry};
use crate::format::segment::{self, SegmentRecord};
use crate::format::{FILE_HEADER_LEN, Payload};

use super::segments::{Loc, idx_path, seg_path};
use super::sys::{BLOCK, fsync_dir, open_direct, pad_to_block};

/// The segment the flusher appends to, with its index file.
pub(super) struct SegWriter {
    pub id: u64,
    /// Buffered descriptor: reads, syncs, and the writes when `direct` is `None`.
    pub file: Arc<File>,
    /// `O_DIRECT` descriptor of the same file.
    direct: Option<File>,
    idx: File,
    /// File offset of the buffer's first byte (block aligned).
    len: u64,
    /// Bytes at the buffer's start that are in the file already, written through the page
    /// cache (the start of a block finished through it too).
    written: usize,
    idx_len: u64,
    buf: AlignedBuf,
    chunk: usize,
    pending: Vec<IndexEntry>,
    /// Buffered writes: the last chunk whose writeback was started and not yet waited for.
    writeback: Option<(u64, u64)>,
    /// When it was created (sealed after `segment_max_age` with object storage).
    pub created: std::time::Instant,
}

impl SegWriter {
    /// Creates segment `id` and its index file, both with headers, durably.
    /// `chunk`: segment bytes written at a time. `direct`: write records with `O_DIRECT`.
    pub fn create(dir: &Path, id: u64, chunk: usize, direct: bool) -> Result<Self, BookieError> {
        let open = |p: PathBuf| {
            OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(&p)
                .map_err(|e| BookieError::io(format!("create {}", p.display()), e))
        };
        let seg = seg_path(dir, id);
        let file = open(seg.clone())?;
        let idx = open(idx_path(dir, id))?;
        file.write_all_at(&segment::file_header(id), 0)
            .and_then(|_| file.sync_all())
            .map_err(|e| BookieError::io("write segment header", e))?;
        idx.write_all_at(&index::file_header(id), 0)
            .and_then(|_| idx.sync_all())
            .map_err(|e| BookieError::io("write index header", e))?;
        fsync_dir(dir)?;
        let chunk = chunk.max(BLOCK);
        Ok(Self {
            id,
            file: Arc::new(file),
            direct: direct.then(|| open_direct(&seg, "segments")).flatten(),
            idx,
            len: 0,
            written: FILE_HEADER_LEN,
            idx_len: FILE_HEADER_LEN as u64,
            buf: AlignedBuf::with_header(chunk + (64 << 10), &segment::file_header(id)),
            chunk,
            pending: vec![],
            writeback: None,
            created: std::time::Instant::now(),
        })
    }

    /// Appends a record (buffered); returns its location.
    pub fn append(
        &mut self,
        ledger: u64,
        entry: u64,
        payload: &Payload,
    ) -> Result<Loc, BookieError> {
        let n = SegmentRecord::encoded_len(payload.len());
        if self.buf.room() < n {
            self.write_blocks(false)?;
            self.buf.make_room(n);
        }
        let offset = self.size();
        let before = self.buf.used();
        SegmentRecord::encode_entry(ledger, entry, payload, self.buf.vec());
        let len = (self.buf.used() - before) as u32;
        self.pending.push(IndexEntry {
            ledger,
            entry,
            offset,
            len,
        });
        if self.buf.used() >= self.chunk {
            self.write_blocks(false)?;
        }
        Ok(Loc {
            seg: self.id,
            offset,
            len,
        })
    }

    /// Writes the buffer's whole blocks, and with `last` the partial last block too; the
    /// partial block stays buffered either way (the next write starts on its boundary).
    fn write_blocks(&mut self, last: bool) -> Result<(), BookieError> {
        let used = self.buf.used();
        let whole = used / BLOCK * BLOCK;
        let mut from = 0;
        if self.written > 0 && whole > 0 {
            // a block started through the page cache is finished through it
            self.buffered(self.written, BLOCK)?;
            from = BLOCK;
        }
        if whole > from {
            self.write_whole(from, whole)?;
        }
        let start = if whole > 0 { whole } else { self.written };
        if last && used > start {
            self.buffered(start, used)?;
        }
        self.written = if last {
            used - whole
        } else if whole > 0 {
            0
        } else {
            self.written
        };
        self.len += whole as u64;
        self.buf.consume(whole);
        Ok(())
    }

    /// Writes the buffer's bytes `from..to` through the page cache.
    fn buffered(&self, from: usize, to: usize) -> Result<(), BookieError> {
        self.file
            .write_all_at(&self.buf.data()[from..to], self.len + from as u64)
            .map_err(|e| BookieError::io("write segment", e))
    }

    /// Writes the buffer's whole blocks `from..to`, directly if possible.
    fn write_whole(&mut self, from: usize, to: usize) -> Result<(), BookieError> {
        let at = self.len + from as u64;
        let data = &self.buf.data()[from..to];
        let io = |e| BookieError::io("write segment", e);
        if let Some(d) = &self.direct {
            match d.write_all_at(data, at) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(segment = self.id, error = %e, "the segments' filesystem refuses direct writes; writing through the page cache");
                    self.direct = None;
                }
                Err(e) => return Err(io(e)),
            }
        }
        self.file.write_all_at(data, at).map_err(io)?;
        // bounded writeback: this chunk starts, the previous one is waited for, so a journal
        // fdatasync on the same disk queues behind at most two chunks
        let n = data.len() as u64;
        super::sys::start(&self.file, at, n).map_err(io)?;
        if let Some((off, n)) = self.writeback.replace((at, n)) {
            super::sys::wait(&self.file, off, n).map_err(io)?;
        }
        Ok(())
    }

    /// Makes everything appended durable: segment bytes first (the partial last block through
    /// the page cache), then the index block pointing at them.
    pub fn sync(&mut self) -> Result<Vec<IndexEntry>, BookieError> {
        if self.pending.is_empty() {
            return Ok(vec![]);
        }
        self.write_blocks(true)?;
        if self.buf.room() > 2 * self.chunk + (64 << 10) {
            // a large record grew the buffer: give the room back
            let mut small = AlignedBuf::new(self.chunk + (64 << 10));
            small.v.extend_from_slice(self.buf.data());
            self.buf = small;
        }
        self.file
            .sync_data()
            .map_err(|e| BookieError::io("fdatasync segment", e))?;
        self.writeback = None;
        let mut out = Vec::new();
        for chunk in self.pending.chunks(index::MAX_BLOCK_ENTRIES) {
            index::encode_block(chunk, &mut out);
        }
        self.idx
            .write_all_at(&out, self.idx_len)
            .map_err(|e| BookieError::io("write index", e))?;
        self.idx
            .sync_data()
            .map_err(|e| BookieError::io("fdatasync index", e))?;
        self.idx_len += out.len() as u64;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Bytes appended so far (the file offset of the next record), buffered or not.
    pub fn size(&self) -> u64 {
        self.len + self.buf.used() as u64
    }
}

/// A byte buffer whose data starts on a [`BLOCK`] boundary in memory, as direct writes need. It
/// never reallocates behind our back: records are encoded into it only when [`Self::room`]
/// says they fit.
struct AlignedBuf {
    v: Vec<u8>,
    /// Where the data starts in `v`.
    start: usize,
}

impl AlignedBuf {
    /// Room for at least `cap` bytes of data.
    fn new(cap: usize) -> Self {
        let mut v = Vec::with_capacity(cap + BLOCK);
        let start = pad_to_block(v.as_ptr() as usize);
        v.resize(start, 0);
        Self { v, start }
    }

    /// Room for at least `cap` bytes of data, holding `header`.
    fn with_header(cap: usize, header: &[u8]) -> Self {
        let mut b = Self::new(cap.max(header.len()));
        b.v.extend_from_slice(header);
        b
    }

    fn data(&self) -> &[u8] {
        &self.v[self.start..]
    }

    /// The vector to encode into (append only, within [`Self::room`]).
    fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.v
    }

    fn used(&self) -> usize {
        self.v.len() - self.start
    }

    fn room(&self) -> usize {
        self.v.capacity() - self.v.len()
    }

    /// Makes room for `n` more bytes, moving the data to a larger buffer if needed.
    fn make_room(&mut self, n: usize) {
        if self.room() >= n {
            return;
        }
        let mut bigger = Self::new(self.used() + n);
        bigger.v.extend_from_slice(self.data());
        *self = bigger;
    }

    /// Drops the first `n` bytes of data, moving the rest to the start.
    fn consume(&mut self, n: usize) {
        let end = self.v.len();
        self.v.copy_within(self.start + n..end, self.start);
        self.v.truncate(end - n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::segments::read_at;
    use bytes::Bytes;

    fn roundtrip(direct: bool) {
        eprintln!("direct writes asked: {direct}");
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegWriter::create(dir.path(), 3, 8192, direct).unwrap();
        let mut locs = vec![];
        // sizes around the block and chunk sizes, and one far larger than the buffer
        let sizes = [0usize, 1, 100, 4000, 4096, 5000, 9000, 300 << 10, 10];
        for round in 0..3u64 {
            for (i, n) in sizes.iter().enumerate() {
                let e = round * 100 + i as u64;
                let p = Payload::new(Bytes::from(vec![(e % 251) as u8; *n]));
                locs.push((e, w.append(7, e, &p).unwrap(), p));
            }
            let synced = w.sync().unwrap();
            assert_eq!(synced.len(), sizes.len());
            // read (and cache) the partial last block before the next round finishes it
            for (e, loc, p) in &locs {
                assert_eq!(&read_at(&w.file, *loc, 7, *e).unwrap(), p);
            }
        }
        for (e, loc, p) in &locs {
            assert_eq!(&read_at(&w.file, *loc, 7, *e).unwrap(), p);
        }
        eprintln!("direct writes used: {}", w.direct.is_some());
        let all = Bytes::from(std::fs::read(seg_path(dir.path(), 3)).unwrap());
        assert_eq!(all.len() as u64, w.size());
        let (id, recs, stop) = segment::scan_file(&all).unwrap();
        assert_eq!((id, stop), (3, None));
        let got: Vec<_> = recs.iter().map(|(off, r)| (r.entry, *off)).collect();
        let want: Vec<_> = locs.iter().map(|(e, l, _)| (*e, l.offset)).collect();
        assert_eq!(got, want);
    }

    /// Records of any size read back at their locations, and the file scans as records only
    /// (no padding), across syncs that end in partial blocks, with direct writes (where the
    /// test's filesystem allows them) and without.
    #[test]
    fn records_read_back_at_their_locations() {
        roundtrip(true);
        roundtrip(false);
    }
}
