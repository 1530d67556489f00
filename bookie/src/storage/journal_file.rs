//! The journal file being appended to, written with direct I/O where the filesystem allows it.
//!
//! A group commit is written with `O_DIRECT` from a block-aligned buffer, so the bytes go from
//! our buffer to the device without a copy into the page cache (that copy was the largest single
//! cost of a journaled byte). Direct writes must start and end on block boundaries: each commit
//! rewrites the file's last partial block (kept in memory, `tail`) followed by its records, padded
//! with zeros to a whole block. The rewritten prefix is byte for byte what is on disk already, so
//! a torn write of that block cannot damage an acknowledged record; the zeros after the last
//! record read as a zero-length frame, where replay stops, as at a never-written tail.
//!
//! The header is written and synced through a buffered descriptor when the file is created, and
//! `fdatasync` goes through it too (it syncs the inode, whatever descriptor wrote). A filesystem
//! that refuses `O_DIRECT` at open or at the first write (`EINVAL`) gets buffered writes, with a
//! warning.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::BookieError;
use crate::format::FILE_HEADER_LEN;
use crate::format::journal::file_header;

use super::staging::Staged;
use super::sys::{BLOCK, fsync_dir, open_direct, pad_to_block};

/// Path of journal file `seq`.
pub(super) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:020}.log"))
}

/// The journal file being appended to.
pub(super) struct JournalFile {
    pub(super) dir: PathBuf,
    pub(super) seq: u64,
    /// Buffered descriptor: the header, syncs, and every write when `direct` is `None`.
    file: File,
    /// `O_DIRECT` descriptor of the same file.
    direct: Option<File>,
    /// Bytes of records written (the file's logical end).
    pub(super) len: u64,
    /// The file's bytes from the last block boundary up to `len`.
    tail: Vec<u8>,
}

impl JournalFile {
    /// Opens journal file `seq` with its header, durably: a recycled file from `pool` if there is
    /// one (its blocks are allocated already, so an fdatasync in it changes no metadata and needs no
    /// filesystem-journal commit), else a new file. `direct`: write records with `O_DIRECT`.
    pub(super) fn create(
        dir: &Path,
        seq: u64,
        pool: &parking_lot::Mutex<Vec<PathBuf>>,
        direct: bool,
    ) -> Result<Self, BookieError> {
        let p = path(dir, seq);
        let recycled = pool.lock().pop();
        let file = match recycled {
            Some(old) => {
                std::fs::rename(&old, &p).map_err(|e| {
                    BookieError::io(format!("recycle journal file {}", old.display()), e)
                })?;
                OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| BookieError::io(format!("open journal file {}", p.display()), e))?
            }
            None => OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&p)
                .map_err(|e| BookieError::io(format!("create journal file {}", p.display()), e))?,
        };
        let header = file_header(seq);
        file.write_all_at(&header, 0)
            .and_then(|_| file.sync_all())
            .map_err(|e| BookieError::io("write journal header", e))?;
        fsync_dir(dir)?;
        let direct = direct.then(|| open_direct(&p, "the journal")).flatten();
        Ok(Self {
            dir: dir.to_path_buf(),
            seq,
            file,
            direct,
            len: FILE_HEADER_LEN as u64,
            tail: header.to_vec(),
        })
    }

    /// Writes the records `encode` puts into `buf` (`bytes` long, about) at the end of the file
    /// and syncs them. Returns how many bytes of records were written.
    pub(super) fn append(
        &mut self,
        buf: &mut Vec<u8>,
        bytes: usize,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<usize> {
        buf.clear();
        if self.direct.is_none() {
            encode(buf);
            self.file.write_all_at(buf, self.len)?;
            return self.synced(buf.len());
        }
        // Room for everything first: the buffer must not move once aligned.
        buf.reserve(bytes + self.tail.len() + 2 * BLOCK);
        let start = pad_to_block(buf.as_ptr() as usize);
        buf.resize(start, 0);
        buf.extend_from_slice(&self.tail);
        let records = buf.len();
        encode(buf);
        self.write_direct(buf, start, records)
    }

    /// Writes the records staged in `st` at the end of the file and syncs them, from where they
    /// are. Returns how many bytes of records were written, or `None` (nothing written) if
    /// they were not staged for this file and its last partial block (see [`Staged::fits`]).
    pub(super) fn append_staged(&mut self, st: &mut Staged) -> io::Result<Option<usize>> {
        let added = st.bytes();
        if self.direct.is_none() {
            if !st.framed_for(self.seq) {
                return Ok(None);
            }
            self.file.write_all_at(&st.buf[st.start..], self.len)?;
            return self.synced(added).map(Some);
        }
        if !st.fits(self.seq, self.tail.len()) {
            return Ok(None);
        }
        let start = st.start - st.room;
        st.buf[start..st.start].copy_from_slice(&self.tail);
        self.write_direct(&mut st.buf, start, st.start).map(Some)
    }

    /// Writes `buf[start..]` (block-aligned: the file's last partial block, then records from
    /// `records` on) with a direct write padded to a whole block, and syncs it.
    fn write_direct(
        &mut self,
        buf: &mut Vec<u8>,
        start: usize,
        records: usize,
    ) -> io::Result<usize> {
        let added = buf.len() - records;
        let used = buf.len() - start;
        buf.resize(start + used.next_multiple_of(BLOCK), 0);
        let at = self.len - self.tail.len() as u64;
        let aligned = pad_to_block(buf.as_ptr() as usize) == start;
        let wrote = match &self.direct {
            Some(d) if aligned => d.write_all_at(&buf[start..], at),
            _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        match wrote {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && aligned => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "the journal's filesystem refuses direct writes; writing through the page cache");
                self.direct = None;
                self.file
                    .write_all_at(&buf[records..records + added], self.len)?;
            }
            // The buffer moved (a record longer than announced): this batch goes buffered.
            Err(_) if !aligned => self
                .file
                .write_all_at(&buf[records..records + added], self.len)?,
            Err(e) => return Err(e),
        }
        let end = start + used;
        self.tail.clear();
        self.tail
            .extend_from_slice(&buf[end - (self.len as usize + added) % BLOCK..end]);
        self.synced(added)
    }

    /// Syncs `added` bytes just written after `len`.
    fn synced(&mut self, added: usize) -> io::Result<usize> {
        self.file.sync_data()?;
        self.len += added as u64;
        Ok(added)
    }

    /// Syncs everything written (at shutdown).
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::journal::{JournalRecord, scan_file};
    use bytes::Bytes;

    fn add(entry: u64, len: usize) -> JournalRecord {
        JournalRecord::Add {
            ledger: 1,
            entry,
            lac: -1,
            key: Bytes::new(),
            payload: crate::format::Payload::new(Bytes::from(vec![entry as u8; len])),
        }
    }

    /// The file of `jf` holds `want`, in order, and nothing after them.
    fn assert_reads_back(jf: &JournalFile, want: &[JournalRecord], direct: bool) {
        let data = Bytes::from(std::fs::read(path(&jf.dir, jf.seq)).unwrap());
        let scan = scan_file(&data, Some(jf.seq), 0).unwrap();
        let got: Vec<_> = scan.records.into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, want, "direct={direct}");
        assert_eq!(scan.end, jf.len);
    }

    /// Writes batches of records of varied sizes (across block boundaries, one of several
    /// blocks) with and without direct I/O; the file reads back every record in order.
    #[test]
    fn batches_read_back_in_order_with_and_without_direct_io() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let pool = parking_lot::Mutex::new(vec![]);
            let mut jf = JournalFile::create(dir.path(), 3, &pool, direct).unwrap();
            if direct && jf.direct.is_none() {
                eprintln!(
                    "the temp dir's filesystem refuses O_DIRECT: only buffered writes tested"
                );
            }
            let mut buf = Vec::new();
            let mut want = vec![];
            let sizes = [10, 4000, 1, 9000, 4096, 0, 33, 70_000, 5];
            for (i, n) in sizes.iter().enumerate() {
                let batch: Vec<_> = (0..3).map(|k| add((i * 3 + k) as u64, *n)).collect();
                let bytes = batch.iter().map(|r| r.encoded_len()).sum();
                let wrote = jf
                    .append(&mut buf, bytes, |out| {
                        for r in &batch {
                            r.encode_into(out, 3);
                        }
                    })
                    .unwrap();
                assert_eq!(wrote, bytes);
                want.extend(batch);
            }
            assert_reads_back(&jf, &want, direct);
        }
    }

    /// Records staged for the file and its tail are written from the staging buffer; staged
    /// for another file or another tail, nothing is written (the caller encodes them again).
    #[test]
    fn staged_records_are_written_where_they_are_or_refused() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let pool = parking_lot::Mutex::new(vec![]);
            let mut jf = JournalFile::create(dir.path(), 5, &pool, direct).unwrap();
            let mut want = vec![];
            let mut spare = Vec::new();
            for (i, n) in [100, 5000, 70_000, 3].into_iter().enumerate() {
                let room = (jf.len % BLOCK as u64) as usize;
                let mut wrong = Staged::new(Vec::new(), 6, room, 1 << 17);
                wrong.push(&add(99, n));
                assert_eq!(
                    jf.append_staged(&mut wrong).unwrap(),
                    None,
                    "framed for file 6"
                );
                if jf.direct.is_some() {
                    let mut other = Staged::new(Vec::new(), 5, room + 1, 1 << 17);
                    other.push(&add(99, n));
                    assert_eq!(jf.append_staged(&mut other).unwrap(), None, "another tail");
                }
                let mut st = Staged::new(std::mem::take(&mut spare), 5, room, 1 << 18);
                let batch: Vec<_> = (0..2).map(|k| add((i * 2 + k) as u64, n)).collect();
                for r in &batch {
                    st.push(r);
                }
                let bytes = st.bytes();
                assert_eq!(jf.append_staged(&mut st).unwrap(), Some(bytes));
                spare = st.into_buf();
                want.extend(batch);
            }
            assert_reads_back(&jf, &want, direct);
        }
    }
}
