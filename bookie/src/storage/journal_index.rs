//! The index files of journal segments (see [`super::journal_seg`]): loading them at start,
//! appending a block per flush, removing one when GC reclaims its journal file.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::BookieError;
use crate::format::index::{self, IndexEntry};
use crate::format::journal as jformat;
use crate::format::{FILE_HEADER_LEN, SPLIT_HEADER_LEN};

use super::journal_seg::{idx_path, seg_id};
use super::segments::{Loc, SegMeta, within};
use super::sys::fsync_dir;

/// Where an add record of journal file `seq` is: its frame at `offset`, `len` bytes.
pub(super) fn loc(seq: u64, offset: u64, len: usize) -> Loc {
    Loc {
        seg: seg_id(seq),
        offset,
        len: len as u32,
    }
}

/// What loading the journal segments found: their metadata and index entries (ascending by
/// sequence, each file's in block order).
pub(super) struct LoadedJournal {
    pub segments: Vec<(u64, SegMeta)>,
    pub entries: Vec<(u64, IndexEntry)>,
    /// Each loaded index's valid length (appends continue there, past a torn tail).
    pub idx_lens: Vec<(u64, u64)>,
}

/// Opens every journal file of `dir` that has an index file. Damaged indexes are logged and
/// their files left to replay (if after the checkpoint) or to the next checkpoint.
pub(super) fn load(dir: &Path) -> Result<LoadedJournal, BookieError> {
    let mut out = LoadedJournal {
        segments: vec![],
        entries: vec![],
        idx_lens: vec![],
    };
    for (seq, p) in super::numbered::list(dir, "journal-", "journal")? {
        let ip = idx_path(dir, seq);
        let idx = match std::fs::read(&ip) {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BookieError::io(format!("read {}", ip.display()), e)),
        };
        let file =
            File::open(&p).map_err(|e| BookieError::io(format!("open {}", p.display()), e))?;
        let size = file
            .metadata()
            .map_err(|e| BookieError::io("stat journal file", e))?
            .len();
        let id = seg_id(seq);
        let (es, end) = match index::decode_file(&idx) {
            Ok((iid, es, end, stop)) if iid == id => {
                if let Some(e) = stop {
                    tracing::warn!(seq, error = %e, "journal index has a torn or corrupt tail; later entries come from replay");
                }
                (es, end)
            }
            Ok(_) => {
                tracing::error!(seq, "journal index belongs to another file; ignored");
                continue;
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "journal index unreadable; ignored");
                continue;
            }
        };
        let max_len = u64::from(jformat::MAX_RECORD_LEN) + SPLIT_HEADER_LEN as u64;
        let mut ledgers = HashSet::new();
        for e in es {
            if within(&e, FILE_HEADER_LEN as u64, size, max_len) {
                ledgers.insert(e.ledger);
                out.entries.push((id, e));
            }
        }
        out.segments
            .push((id, SegMeta::new(Arc::new(file), size, ledgers)));
        out.idx_lens.push((seq, end as u64));
    }
    Ok(out)
}

/// The metadata of journal file `seq` becoming a journal segment (opened for reading); `None`
/// (logged) when it cannot be opened: its entries then go to the write cache and are copied into
/// segments.
pub(super) fn open_segment(dir: &Path, seq: u64) -> Option<SegMeta> {
    let p = super::journal_file::path(dir, seq);
    match File::open(&p) {
        Ok(file) => Some(SegMeta::new(Arc::new(file), 0, HashSet::new())),
        Err(e) => {
            tracing::warn!(seq, error = %e, "cannot open a journal file for reads; its entries are copied into segments");
            None
        }
    }
}

/// Appends index blocks to journal indexes, one open file per journal segment still written.
#[derive(Default)]
pub(super) struct IndexAppender {
    /// `(seq, file, valid length)`.
    open: Vec<(u64, File, u64)>,
    /// Valid lengths of indexes loaded at start (appends continue there).
    loaded: Vec<(u64, u64)>,
}

impl IndexAppender {
    /// An appender that continues the indexes `loaded` found (`(seq, valid length)`).
    pub(super) fn new(loaded: Vec<(u64, u64)>) -> Self {
        Self {
            open: vec![],
            loaded,
        }
    }

    /// Appends `entries` (of journal file `seq`) as blocks and syncs them.
    pub(super) fn append(
        &mut self,
        dir: &Path,
        seq: u64,
        entries: &[IndexEntry],
    ) -> Result<(), BookieError> {
        let i = match self.open.iter().position(|(s, _, _)| *s == seq) {
            Some(i) => i,
            None => {
                let (f, len) = self.open_index(dir, seq)?;
                self.open.push((seq, f, len));
                self.open.len() - 1
            }
        };
        let mut out = vec![];
        for chunk in entries.chunks(index::MAX_BLOCK_ENTRIES) {
            index::encode_block(chunk, &mut out);
        }
        let (_, f, len) = &mut self.open[i];
        f.write_all_at(&out, *len)
            .and_then(|_| f.sync_data())
            .map_err(|e| BookieError::io("write journal index", e))?;
        *len += out.len() as u64;
        Ok(())
    }

    /// Opens the index of journal file `seq`: continues a loaded one, else creates it with its
    /// header, durably (the directory entry too).
    fn open_index(&mut self, dir: &Path, seq: u64) -> Result<(File, u64), BookieError> {
        let p = idx_path(dir, seq);
        if let Some(k) = self.loaded.iter().position(|(s, _)| *s == seq) {
            let (_, len) = self.loaded.swap_remove(k);
            // past a torn tail: the next block goes where the valid ones end
            let f = OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_len(len).map(|_| f))
                .map_err(|e| BookieError::io(format!("open {}", p.display()), e))?;
            return Ok((f, len));
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&p)
            .map_err(|e| BookieError::io(format!("create {}", p.display()), e))?;
        f.write_all_at(&index::file_header(seg_id(seq)), 0)
            .and_then(|_| f.sync_all())
            .map_err(|e| BookieError::io("write journal index header", e))?;
        fsync_dir(dir)?;
        Ok((f, FILE_HEADER_LEN as u64))
    }

    /// Closes the indexes of journal files before `seq` (no entry is added to them any more).
    pub(super) fn close_before(&mut self, seq: u64) {
        self.open.retain(|(s, _, _)| *s >= seq);
        self.loaded.retain(|(s, _)| *s >= seq);
    }

    /// Forgets journal file `seq` (reclaimed).
    pub(super) fn forget(&mut self, seq: u64) {
        self.open.retain(|(s, _, _)| *s != seq);
        self.loaded.retain(|(s, _)| *s != seq);
    }
}
