//! Segment files and their index files: the in-memory table of segments (file handle, size, live
//! bytes, ledgers), loading them at start and positioned, checksum-verified reads. The writer the
//! flusher appends to is [`super::seg_writer`].

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::BookieError;
use crate::format::index::{self, IndexEntry};
use crate::format::object::SegmentObject;
use crate::format::segment::{self, SegmentRecord};
use crate::format::{FILE_HEADER_LEN, FormatError, Payload, SPLIT_HEADER_LEN};

use super::sys::fsync_dir;

/// Where an entry is: segment, offset of its frame, frame length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Segment id.
    pub seg: u64,
    /// Offset of the frame.
    pub offset: u64,
    /// Frame length.
    pub len: u32,
}

pub(super) fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:020}.log"))
}

pub(super) fn idx_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:020}.idx"))
}

/// Ids of every segment file in `dir`, ascending.
pub(super) fn list(dir: &Path) -> Result<Vec<u64>, BookieError> {
    let files = super::numbered::list(dir, "seg-", "ledger")?;
    Ok(files.into_iter().map(|(id, _)| id).collect())
}

/// A segment known to the bookie.
pub(super) struct SegMeta {
    /// The local copy; `None` once evicted (then `uploaded` says where it is).
    pub file: Option<Arc<File>>,
    pub size: u64,
    pub live: u64,
    pub ledgers: HashSet<u64>,
    /// Journal position before the first record whose entry went into this segment: the
    /// journal may be trimmed past it only once the segment is uploaded (object storage).
    pub first_pos: (u64, u64),
    /// The committed object holding it (object storage), if uploaded.
    pub uploaded: Option<SegmentObject>,
    /// Object storage: the segments (first, last) compaction moved its live entries into. Its
    /// object may be deleted only once those are uploaded (until then the moved entries are
    /// only on the local disk). Not persisted: after a restart every local segment is sealed
    /// and the uploader uploads all of them before it deletes anything.
    pub moved_into: Option<(u64, u64)>,
}

impl SegMeta {
    /// A segment of `size` bytes holding entries of `ledgers`, none of them counted live yet.
    pub fn new(file: Arc<File>, size: u64, ledgers: HashSet<u64>) -> Self {
        Self {
            file: Some(file),
            size,
            live: 0,
            ledgers,
            first_pos: (0, 0),
            uploaded: None,
            moved_into: None,
        }
    }
}

impl SegMeta {
    /// A segment only in object storage.
    pub fn evicted(size: u64, ledgers: HashSet<u64>, obj: SegmentObject) -> Self {
        Self {
            file: None,
            size,
            live: 0,
            ledgers,
            first_pos: (0, 0),
            uploaded: Some(obj),
            moved_into: None,
        }
    }
}

/// Where a segment's bytes can be read.
pub(super) enum SegSource {
    /// The local file.
    Local(Arc<File>),
    /// Only in object storage.
    Remote(SegmentObject),
}

/// Every segment by id.
#[derive(Default)]
pub(super) struct Segments {
    pub map: BTreeMap<u64, SegMeta>,
    /// The segment the flusher appends to (never uploaded, evicted or reclaimed).
    pub current: Option<u64>,
}

impl Segments {
    /// Where segment `seg` can be read.
    pub fn source(&self, seg: u64) -> Option<SegSource> {
        let s = self.map.get(&seg)?;
        match (&s.file, &s.uploaded) {
            (Some(f), _) => Some(SegSource::Local(f.clone())),
            (None, Some(o)) => Some(SegSource::Remote(*o)),
            (None, None) => None,
        }
    }

    /// Bytes of local segment files.
    pub fn local_bytes(&self) -> u64 {
        self.map
            .values()
            .filter(|s| s.file.is_some())
            .map(|s| s.size)
            .sum()
    }

    /// Bytes of sealed local segments not uploaded yet (journal segments are never uploaded).
    pub fn pending_bytes(&self) -> u64 {
        self.map
            .iter()
            .filter(|(id, s)| {
                s.file.is_some()
                    && s.uploaded.is_none()
                    && s.live > 0
                    && Some(**id) != self.current
                    && super::journal_seg::seq_of(**id).is_none()
            })
            .map(|(_, s)| s.size)
            .sum()
    }

    /// Marks the bytes at `loc` dead.
    pub fn dead(&mut self, loc: &Loc) {
        if let Some(s) = self.map.get_mut(&loc.seg) {
            s.live = s.live.saturating_sub(u64::from(loc.len));
        }
    }

    /// Marks the bytes at `loc` live (an index entry of `ledger` points there).
    /// The segment's size covers the bytes (a journal segment grows as entries are indexed in it).
    pub fn live(&mut self, loc: &Loc, ledger: u64) {
        if let Some(s) = self.map.get_mut(&loc.seg) {
            s.live += u64::from(loc.len);
            s.size = s.size.max(loc.offset + u64::from(loc.len));
            s.ledgers.insert(ledger);
        }
    }

    /// Whether entries compaction moved out of segment `id` are still only in local segments
    /// not uploaded yet (then its object must stay).
    pub fn moved_not_uploaded(&self, id: u64) -> bool {
        let Some((lo, hi)) = self.map.get(&id).and_then(|s| s.moved_into) else {
            return false;
        };
        self.map
            .range(lo..=hi)
            .any(|(_, s)| s.uploaded.is_none() && s.file.is_some() && s.live > 0)
    }

    pub fn total_bytes(&self) -> u64 {
        self.map.values().map(|s| s.size).sum()
    }
}

/// Reads and verifies the entry at `loc`.
pub(super) fn read_at(
    file: &File,
    loc: Loc,
    ledger: u64,
    entry: u64,
) -> Result<Payload, BookieError> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            BookieError::Corrupt {
                what: format!("segment {} at {}", loc.seg, loc.offset),
                source: FormatError::Truncated,
            }
        } else {
            BookieError::io("read segment", e)
        }
    })?;
    decode_at(Bytes::from(buf), loc, ledger, entry)
}

/// Decodes and verifies the frame `buf` read from `loc` (CRC, ids, length).
pub(super) fn decode_at(
    buf: Bytes,
    loc: Loc,
    ledger: u64,
    entry: u64,
) -> Result<Payload, BookieError> {
    if let Some(seq) = super::journal_seg::seq_of(loc.seg) {
        return super::journal_seg::decode_at(&buf, seq, loc.offset, loc.len, ledger, entry);
    }
    let corrupt = |source| BookieError::Corrupt {
        what: format!("segment {} at {}", loc.seg, loc.offset),
        source,
    };
    let (rec, used) = SegmentRecord::decode(&buf).map_err(corrupt)?;
    if used != loc.len as usize || rec.ledger != ledger || rec.entry != entry {
        return Err(corrupt(FormatError::Malformed(
            "record ids or length do not match the index",
        )));
    }
    Ok(rec.payload)
}

/// Whether index entry `e` may be trusted with a read: its frame lies in `from..size` of its file
/// and is at most `max_len` long (a length from disk is never trusted with an allocation).
pub(super) fn within(e: &IndexEntry, from: u64, size: u64, max_len: u64) -> bool {
    let len = u64::from(e.len);
    len <= max_len && e.offset >= from && e.offset.checked_add(len).is_some_and(|end| end <= size)
}

/// What loading the segments found.
pub(super) struct Loaded {
    pub segments: Segments,
    pub entries: Vec<(u64, IndexEntry)>,
    pub max_id: u64,
}

/// Opens every segment with its index file. Segments whose files are damaged are logged and left out
/// (not deleted): their entries read as missing, never as garbage.
pub(super) fn load(dir: &Path) -> Result<Loaded, BookieError> {
    let mut segs = Segments::default();
    let mut entries = vec![];
    let mut max_id = 0;
    for id in list(dir)? {
        max_id = max_id.max(id);
        let sp = seg_path(dir, id);
        let file =
            File::open(&sp).map_err(|e| BookieError::io(format!("open {}", sp.display()), e))?;
        let size = file
            .metadata()
            .map_err(|e| BookieError::io("stat segment", e))?
            .len();
        let mut hdr = [0u8; FILE_HEADER_LEN];
        if file.read_exact_at(&mut hdr, 0).is_err()
            || crate::format::FileHeader::decode(&hdr, &segment::MAGIC, segment::VERSION)
                .map(|h| h.id)
                != Ok(id)
        {
            if size <= FILE_HEADER_LEN as u64 {
                // a crash while creating it: nothing was ever written there
                tracing::warn!(
                    segment = id,
                    "segment without a valid header: empty, will be reclaimed"
                );
                segs.map
                    .insert(id, SegMeta::new(Arc::new(file), size, HashSet::new()));
            } else {
                tracing::error!(
                    segment = id,
                    "segment header is corrupt; segment left on disk and ignored"
                );
            }
            continue;
        }
        let ip = idx_path(dir, id);
        let idx = match std::fs::read(&ip) {
            Ok(b) => Bytes::from(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    segment = id,
                    "segment without an index file: treated as empty"
                );
                Bytes::new()
            }
            Err(e) => return Err(BookieError::io(format!("read {}", ip.display()), e)),
        };
        let mut ledgers = HashSet::new();
        if !idx.is_empty() {
            match index::decode_file(&idx) {
                Ok((iid, es, _end, stop)) if iid == id => {
                    if let Some(e) = stop {
                        tracing::warn!(segment = id, error = %e, "index file has a torn or corrupt tail; later entries come from the journal");
                    }
                    let max_len = u64::from(segment::MAX_RECORD_LEN) + SPLIT_HEADER_LEN as u64;
                    for e in es {
                        if within(&e, 0, size, max_len) {
                            ledgers.insert(e.ledger);
                            entries.push((id, e));
                        }
                    }
                }
                Ok(_) => tracing::error!(
                    segment = id,
                    "index file belongs to another segment; ignored"
                ),
                Err(e) => {
                    tracing::error!(segment = id, error = %e, "index file unreadable; ignored")
                }
            }
        }
        segs.map
            .insert(id, SegMeta::new(Arc::new(file), size, ledgers));
    }
    Ok(Loaded {
        segments: segs,
        entries,
        max_id,
    })
}

/// Removes segment `id` and its index (index first: a crash in between leaves an empty segment that
/// is reclaimed again, never an index pointing at nothing; with object storage, recovery drops
/// such a leftover of an uploaded segment in favour of its object, see `remote::attach`).
pub(super) fn remove(dir: &Path, id: u64) -> Result<(), BookieError> {
    for p in [idx_path(dir, id), seg_path(dir, id)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BookieError::io(format!("remove {}", p.display()), e)),
        }
    }
    fsync_dir(dir)
}
