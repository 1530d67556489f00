//! The flusher thread and recovery: flushes (saving the index of the journal files that hold
//! entries, see [`journal_seg`], and copying the write cache into segments), checkpoints, journal
//! truncation, garbage collection and compaction, the disk-space monitor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::format::checkpoint::LedgerRecord;
use crate::format::index::IndexEntry;
use crate::format::{FILE_HEADER_LEN, Payload};
use crate::metrics::Metrics;

use super::journal;
use super::journal_index::IndexAppender;
use super::journal_seg;
use super::remote::{self, Remote};
use super::seg_writer::SegWriter;
use super::segments::{self, Loc, SegMeta};
use super::sys::fsync_dir;
use super::{Ledger, Shared, State};

/// Requests to the flusher thread.
pub(super) enum Cmd {
    /// The write cache is over its threshold.
    Kick,
    /// Flush and checkpoint now.
    Flush(SyncSender<Result<(), BookieError>>),
    /// Flush, then collect garbage and compact now.
    Gc(SyncSender<Result<(), BookieError>>),
    /// Flush and seal the current segment now (object storage: it gets uploaded).
    Seal(SyncSender<Result<(), BookieError>>),
}

pub(super) const CHECKPOINT: &str = "checkpoint";

/// The flusher's own state: the segment being appended to and checkpoint bookkeeping.
pub(super) struct Flusher {
    /// The segment being appended to; created lazily (it may fail on a full disk).
    w: Option<SegWriter>,
    dir: std::path::PathBuf,
    next_seg: u64,
    ckpt_seq: u64,
    last_ckpt_pos: (u64, u64),
    last_ckpt_at: Instant,
    last_flush_pos: (u64, u64),
    last_gc: Instant,
    journal_pool: Arc<Mutex<Vec<std::path::PathBuf>>>,
    /// Old journal files being freed, a step at a time.
    trash: Vec<std::path::PathBuf>,
    /// Object storage, if sealed segments go there.
    remote: Option<Arc<Remote>>,
    /// Indexes of journal files holding entries (see [`journal_seg`]).
    jidx: IndexAppender,
}

/// Bytes freed per trash step.
const TRASH_STEP: u64 = 8 << 20;

/// Ledger states as a checkpoint (or manifest) recorded them.
pub(super) fn ledgers_from(recs: &[LedgerRecord]) -> strata_common::fast_map::FastMap<u64, Ledger> {
    recs.iter()
        .map(|l| {
            (
                l.ledger,
                Ledger {
                    key: l.key.clone(),
                    fenced: l.fenced,
                    lac: l.lac,
                    last_entry: l.last_entry,
                    lac_tx: watch::Sender::new(l.lac),
                },
            )
        })
        .collect()
}

impl Flusher {
    /// The flusher of a recovered storage: the next segment gets id `next_seg`; the journal
    /// position of the first flush is `flushed` (the checkpoint's).
    pub(super) fn new(
        cfg: &StorageConfig,
        next_seg: u64,
        ckpt_seq: u64,
        flushed: (u64, u64),
        journal_pool: Arc<Mutex<Vec<std::path::PathBuf>>>,
        remote: Option<Arc<Remote>>,
        jidx: IndexAppender,
    ) -> Self {
        Self {
            w: None,
            dir: cfg.ledger_dir.clone(),
            next_seg,
            ckpt_seq,
            last_ckpt_pos: (0, 0),
            last_ckpt_at: Instant::now(),
            last_flush_pos: flushed,
            last_gc: Instant::now(),
            journal_pool,
            trash: vec![],
            remote,
            jidx,
        }
    }
}

fn register(st: &mut State, w: &SegWriter, first_pos: (u64, u64)) {
    tracing::debug!(segment = w.id, ?first_pos, "segment created");
    let mut seg = SegMeta::new(w.file.clone(), w.size(), HashSet::new());
    seg.first_pos = first_pos;
    st.segments.map.insert(w.id, seg);
    st.segments.current = Some(w.id);
}

impl Flusher {
    /// Appends one entry, rolling to a new segment when the current one is full.
    fn append(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        ledger: u64,
        entry: u64,
        payload: &Payload,
        out: &mut Vec<(u64, IndexEntry)>,
    ) -> Result<(), BookieError> {
        if self
            .w
            .as_ref()
            .is_some_and(|w| w.size() >= cfg.segment_max_bytes)
        {
            self.sync(st, out)?;
            self.seal(st);
        }
        if self.w.is_none() {
            let id = self.next_seg;
            // never retry an id: a failed attempt may have left the file behind
            self.next_seg += 1;
            let w = SegWriter::create(&self.dir, id, cfg.flush_chunk_bytes, cfg.segment_direct_io)?;
            register(&mut st.lock(), &w, self.last_flush_pos);
            self.w = Some(w);
        }
        if let Some(w) = self.w.as_mut()
            && let Err(e) = w.append(ledger, entry, payload)
        {
            self.abandon_writer(st);
            return Err(e);
        }
        Ok(())
    }

    /// After a failed append or sync: the current segment is sealed as it stands and what it
    /// holds unsynced is dropped, so that entries appended before the failure are never installed
    /// by a later sync (the cache keeps them for the next flush; a compaction keeps its source).
    fn abandon_writer(&mut self, st: &Mutex<State>) {
        if self.w.is_some() {
            tracing::warn!("segment writer failed: sealing its segment");
            self.seal(st);
        }
    }

    fn sync(
        &mut self,
        st: &Mutex<State>,
        out: &mut Vec<(u64, IndexEntry)>,
    ) -> Result<(), BookieError> {
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        let id = w.id;
        match w.sync() {
            Ok(synced) => out.extend(synced.into_iter().map(|e| (id, e))),
            Err(e) => {
                self.abandon_writer(st);
                return Err(e);
            }
        }
        let Some(w) = self.w.as_ref() else {
            return Ok(());
        };
        let size = w.size();
        if let Some(s) = st.lock().segments.map.get_mut(&id) {
            s.size = size;
        }
        Ok(())
    }

    /// Saves the index entries of journal segments to their index files and copies the write
    /// cache (what the journal does not hold) into segments, installing those entries' locations;
    /// then, if `force` or
    /// `checkpoint_interval` passed, writes a checkpoint at the journal position the cache was
    /// swapped at and deletes journal files before it. Small, frequent flushes keep the disk load
    /// smooth (a journal fdatasync never queues behind a big writeback); checkpoints (which write
    /// every ledger's state) stay at most one per interval.
    pub(super) fn flush(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        m: &Metrics,
        force: bool,
    ) -> Result<(), BookieError> {
        self.flush_cache(st, cfg, m)?;
        let due = force || self.last_ckpt_at.elapsed() >= cfg.checkpoint_interval;
        // with object storage the journal stays until the segments holding its entries are
        // uploaded (see `remote::trim_pos`)
        let pos = match &self.remote {
            Some(_) => remote::trim_pos(st, self.last_flush_pos),
            None => self.last_flush_pos,
        };
        if due && pos != self.last_ckpt_pos {
            self.checkpoint(st, cfg, pos)?;
            self.last_ckpt_at = Instant::now();
        }
        if let Some(r) = &self.remote {
            // the entries are safe in the store either way: a failed eviction is retried
            if let Err(e) = remote::evict(r, st) {
                tracing::warn!(error = %e, "evicting an uploaded segment failed");
            }
        }
        Ok(())
    }

    /// Seals the current segment (the next append starts a new one); the uploader is woken.
    fn seal(&mut self, st: &Mutex<State>) {
        if let Some(w) = self.w.take() {
            tracing::debug!(segment = w.id, size = w.size(), "segment sealed");
        }
        st.lock().segments.current = None;
        if let Some(r) = &self.remote {
            r.wake.notify_one();
        }
    }

    /// With object storage: flushes and seals the current segment if it is older than
    /// `segment_max_age` (or `now`), so that it gets uploaded.
    fn seal_if_due(&mut self, st: &Mutex<State>, now: bool) -> Result<(), BookieError> {
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let age = r.cfg.segment_max_age;
        let due = self.w.as_ref().is_some_and(|w| {
            w.size() > FILE_HEADER_LEN as u64 && (now || w.created.elapsed() >= age)
        });
        if due {
            let mut out = vec![];
            self.sync(st, &mut out)?;
            self.seal(st);
        }
        Ok(())
    }

    fn flush_cache(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        m: &Metrics,
    ) -> Result<(), BookieError> {
        let start = Instant::now();
        let (cache, unsaved, pos) = {
            let mut s = st.lock();
            // room for as many as this flush takes: the applier pushes one per add, and
            // growing from empty by doubling copies the whole vector each time
            let room = s.unsaved_index.len();
            let mut unsaved = std::mem::replace(&mut s.unsaved_index, Vec::with_capacity(room));
            if s.cache.is_empty() && unsaved.is_empty() {
                // nothing to write; the position still moves (fence and delete records)
                self.last_flush_pos = s.journal_pos;
                return Ok(());
            }
            // deleted meanwhile: the bytes are dead
            unsaved.retain(|(_, e)| s.ledgers.contains_key(&e.ledger));
            let c = Arc::new(std::mem::take(&mut s.cache));
            s.flushing = Some(c.clone());
            (c, unsaved, s.journal_pos)
        };
        let mut written = Vec::new();
        let res = (|| {
            let mut ledgers: Vec<u64> = cache.entries.keys().copied().collect();
            ledgers.sort_unstable();
            for l in ledgers {
                if let Some(es) = cache.entries.get(&l) {
                    for (e, p) in es {
                        self.append(st, cfg, l, *e, p, &mut written)?;
                    }
                }
            }
            self.sync(st, &mut written)?;
            self.save_journal_index(cfg, &unsaved)
        })();
        if res.is_ok() {
            // installed in chunks so adds and reads never wait long for the lock; until the end
            // the entries stay readable from the cache being flushed
            for chunk in written.chunks(1024) {
                let mut s = st.lock();
                for (seg, ie) in chunk {
                    if !s.ledgers.contains_key(&ie.ledger) {
                        continue; // deleted meanwhile: the bytes are dead
                    }
                    let loc = Loc {
                        seg: *seg,
                        offset: ie.offset,
                        len: ie.len,
                    };
                    if let Some(old) = s.index.entry(ie.ledger).or_default().insert(ie.entry, loc) {
                        s.segments.dead(&old);
                    }
                    s.segments.live(&loc, ie.ledger);
                }
            }
        }
        {
            let mut s = st.lock();
            if res.is_err() {
                // keep the entries readable and flush them again later
                for (l, es) in &cache.entries {
                    if !s.ledgers.contains_key(l) {
                        continue;
                    }
                    for (e, p) in es {
                        if s.cache.get(*l, *e).is_none() {
                            s.cache.insert(*l, *e, p.clone());
                        }
                    }
                }
                // saved again by the next flush (an entry saved twice reads the same)
                s.unsaved_index.splice(0..0, unsaved);
            }
            s.flushing = None;
            m.cache_bytes.set(s.cache_bytes() as i64);
            m.segment_bytes.set(s.segments.total_bytes() as i64);
        }
        res?;
        self.last_flush_pos = pos;
        // no entry of an earlier journal file is flushed any more
        self.jidx.close_before(pos.0);
        m.flush_latency.observe(start.elapsed().as_secs_f64());
        Ok(())
    }

    /// Appends the index entries of journal segments (`(segment id, entry)`) to their index
    /// files, one block per file, synced.
    fn save_journal_index(
        &mut self,
        cfg: &StorageConfig,
        unsaved: &[(u64, IndexEntry)],
    ) -> Result<(), BookieError> {
        let mut by_file: BTreeMap<u64, Vec<IndexEntry>> = BTreeMap::new();
        for (seg, e) in unsaved {
            if let Some(seq) = journal_seg::seq_of(*seg) {
                by_file.entry(seq).or_default().push(*e);
            }
        }
        for (seq, es) in by_file {
            self.jidx.append(&cfg.journal_dir, seq, &es)?;
        }
        Ok(())
    }

    /// Keeps journal file `jseq` (at `p`, no longer needed) for reuse, or moves it to the trash
    /// to be freed a few MiB at a time. The caller syncs the directory.
    fn retire_journal_file(
        &mut self,
        cfg: &StorageConfig,
        jseq: u64,
        p: &Path,
    ) -> Result<(), BookieError> {
        // its index first (a journal segment's, or one a restart could not use): it points
        // nowhere once the file goes (the caller's directory sync covers both)
        match std::fs::remove_file(journal_seg::idx_path(&cfg.journal_dir, jseq)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BookieError::io("remove journal index", e)),
        }
        // keep a few for reuse (no block allocation, no metadata commit when written again)
        let mut pool = self.journal_pool.lock();
        if pool.len() < cfg.journal_recycle_files {
            let to = journal::recycle_path(&cfg.journal_dir, jseq);
            std::fs::rename(p, &to)
                .map_err(|e| BookieError::io("keep old journal file for reuse", e))?;
            pool.insert(0, to);
        } else {
            // freed a few MiB at a time (see `take_out_trash`): deleting a large file at once
            // stalls the filesystem journal and with it every journal fdatasync
            let to = cfg
                .journal_dir
                .join(format!("journal-trash-{jseq:020}.log"));
            std::fs::rename(p, &to)
                .map_err(|e| BookieError::io("move old journal file to trash", e))?;
            self.trash.push(to);
        }
        Ok(())
    }

    /// Retires journal segment `seq` (its index file first, see `retire_journal_file`).
    fn reclaim_journal(&mut self, cfg: &StorageConfig, seq: u64) -> Result<(), BookieError> {
        self.jidx.forget(seq);
        let p = super::journal_file::path(&cfg.journal_dir, seq);
        self.retire_journal_file(cfg, seq, &p)?;
        fsync_dir(&cfg.journal_dir)
    }

    /// Frees one step of the oldest trashed journal file.
    fn take_out_trash(&mut self) {
        let Some(p) = self.trash.first().cloned() else {
            return;
        };
        let step = || -> std::io::Result<bool> {
            let f = std::fs::OpenOptions::new().write(true).open(&p)?;
            let len = f.metadata()?.len();
            if len > TRASH_STEP {
                f.set_len(len - TRASH_STEP)?;
                Ok(false)
            } else {
                drop(f);
                std::fs::remove_file(&p)?;
                Ok(true)
            }
        };
        match step() {
            Ok(false) => {}
            Ok(true) => {
                self.trash.remove(0);
            }
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot free old journal file");
                self.trash.remove(0);
            }
        }
    }

    fn checkpoint(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        pos: (u64, u64),
    ) -> Result<(), BookieError> {
        tracing::debug!(?pos, "checkpoint");
        let ck = st.lock().durable_record(pos);
        let seq = self.ckpt_seq + 1;
        write_atomic(&cfg.ledger_dir, CHECKPOINT, &ck.encode(seq))?;
        self.ckpt_seq = seq;
        self.last_ckpt_pos = pos;
        let mut removed = false;
        for (jseq, p) in journal::list(&cfg.journal_dir)? {
            // a journal segment stays until GC reclaims it
            let holds = || {
                let id = journal_seg::seg_id(jseq);
                st.lock().segments.map.contains_key(&id)
            };
            if jseq < pos.0 && !holds() {
                self.retire_journal_file(cfg, jseq, &p)?;
                removed = true;
            }
        }
        if removed {
            fsync_dir(&cfg.journal_dir)?;
        }
        Ok(())
    }

    /// Reclaims sealed segments with no live entry and compacts those mostly dead.
    ///
    /// With object storage, uploaded segments are compacted too (their live entries move to
    /// the current segment, which is sealed and uploaded under a new key like any other; the
    /// uploader deletes the old object once the new ones are committed, see
    /// `Segments::moved_not_uploaded`); segments not uploaded yet wait for their upload.
    fn gc(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        m: &Metrics,
    ) -> Result<(), BookieError> {
        self.last_gc = Instant::now();
        let (empty, mut sparse, mut uploaded_sparse) = {
            let s = st.lock();
            let mut empty = vec![];
            let mut sparse = vec![];
            let mut uploaded_sparse = vec![];
            // not while uploads fail: the object may be unreachable, and the moved entries could
            // not be uploaded either
            let store_ok = self
                .remote
                .as_ref()
                .is_some_and(|r| !r.failing.load(Ordering::Acquire));
            for (id, seg) in &s.segments.map {
                if Some(*id) == self.w.as_ref().map(|w| w.id) {
                    continue;
                }
                // a journal file replay may still need stays until a checkpoint is past it
                if journal_seg::seq_of(*id).is_some_and(|q| q >= self.last_ckpt_pos.0) {
                    continue;
                }
                let data = seg.size.saturating_sub(FILE_HEADER_LEN as u64);
                let mostly_dead =
                    seg.live > 0 && (seg.live as f64) < cfg.compaction_threshold * data as f64;
                match (&self.remote, seg.uploaded.is_some()) {
                    // objects are deleted by the uploader (manifest first)
                    (Some(_), true)
                        if store_ok && mostly_dead && !s.segments.moved_not_uploaded(*id) =>
                    {
                        uploaded_sparse.push((seg.live, *id))
                    }
                    (_, true) => {}
                    // moved entries would be only in a local segment the journal no longer
                    // covers while the original is not uploaded either: compacted once uploaded
                    (Some(_), false) if seg.live > 0 => {}
                    _ if seg.live == 0 => empty.push(*id),
                    _ if mostly_dead => sparse.push(*id),
                    _ => {}
                }
            }
            (empty, sparse, uploaded_sparse)
        };
        // uploaded segments: at most about one segment's worth of live bytes moved per pass (the
        // sparsest first), so that a large deletion does not fill the local disk or the upload
        // backlog at once, nor hold the flusher on the object store for long
        uploaded_sparse.sort_unstable();
        let mut budget = cfg.segment_max_bytes;
        for (live, id) in uploaded_sparse {
            if live > budget && budget < cfg.segment_max_bytes {
                break;
            }
            budget = budget.saturating_sub(live);
            sparse.push(id);
        }
        let mut reclaim = empty;
        for id in sparse {
            match self.compact(st, cfg, m, id) {
                Ok(true) => reclaim.push(id),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(segment = id, error = %e, "compaction failed; segment kept")
                }
            }
        }
        for id in reclaim {
            let size = {
                let mut s = st.lock();
                match s.segments.map.get(&id) {
                    Some(seg) if seg.live == 0 && seg.uploaded.is_none() => {
                        s.segments.map.remove(&id).map(|x| x.size).unwrap_or(0)
                    }
                    _ => continue,
                }
            };
            match journal_seg::seq_of(id) {
                Some(seq) => self.reclaim_journal(cfg, seq)?,
                None => segments::remove(&cfg.ledger_dir, id)?,
            }
            m.gc_reclaimed_bytes.inc_by(size);
            tracing::info!(segment = id, bytes = size, "segment reclaimed");
        }
        let mut s = st.lock();
        let referenced: HashSet<u64> = s
            .segments
            .map
            .values()
            .flat_map(|x| x.ledgers.iter().copied())
            .collect();
        s.deleted.retain(|l| referenced.contains(l));
        m.segment_bytes.set(s.segments.total_bytes() as i64);
        Ok(())
    }

    /// Copies the live entries of segment `id` into the current segment and repoints the index.
    /// Returns whether the segment may be reclaimed locally now (`false` for an uploaded one:
    /// the uploader deletes its object once the moved entries are uploaded).
    fn compact(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        m: &Metrics,
        id: u64,
    ) -> Result<bool, BookieError> {
        let (src, mut live) = {
            let s = st.lock();
            let Some(src) = s.segments.source(id) else {
                return Ok(false);
            };
            let mut live = vec![];
            for (l, es) in &s.index {
                for (e, loc) in es.iter() {
                    if loc.seg == id {
                        live.push((*l, e, loc));
                    }
                }
            }
            (src, live)
        };
        live.sort_unstable_by_key(|(l, e, _)| (*l, *e));
        let uploaded = match &src {
            segments::SegSource::Local(_) => st
                .lock()
                .segments
                .map
                .get(&id)
                .is_some_and(|s| s.uploaded.is_some()),
            segments::SegSource::Remote(_) => true,
        };
        // an evicted segment is read whole (one GET) rather than entry by entry
        let whole = match (&src, &self.remote) {
            (segments::SegSource::Remote(o), Some(r)) => Some(r.fetch_segment(*o)?),
            (segments::SegSource::Remote(_), None) => return Ok(false),
            (segments::SegSource::Local(_), _) => None,
        };
        let mut written = vec![];
        let mut moved = 0u64;
        let copied = (|| {
            for (l, e, loc) in &live {
                let p = match (&src, &whole) {
                    (segments::SegSource::Local(f), _) => segments::read_at(f, *loc, *l, *e)?,
                    (_, Some(b)) => {
                        let end = loc.offset.saturating_add(u64::from(loc.len));
                        if end > b.len() as u64 {
                            return Err(BookieError::Corrupt {
                                what: format!("segment object {id}"),
                                source: crate::format::FormatError::Truncated,
                            });
                        }
                        segments::decode_at(
                            b.slice(loc.offset as usize..end as usize),
                            *loc,
                            *l,
                            *e,
                        )?
                    }
                    _ => return Ok(false),
                };
                moved += u64::from(loc.len);
                self.append(st, cfg, *l, *e, &p, &mut written)?;
            }
            self.sync(st, &mut written)?;
            Ok(true)
        })();
        match copied {
            Ok(true) => {}
            other => {
                // nothing moved is installed: the segment keeps every entry it had
                self.abandon_writer(st);
                return other.map(|_| false);
            }
        }
        let mut s = st.lock();
        // paired by (ledger, entry), not by position: `written` is exactly what this call
        // appended (a failed flush never leaves entries behind), but a mismatch must not repoint
        // an entry to another entry's bytes
        let moved_to: HashMap<(u64, u64), Loc> = written
            .iter()
            .map(|(seg, ie)| {
                let loc = Loc {
                    seg: *seg,
                    offset: ie.offset,
                    len: ie.len,
                };
                ((ie.ledger, ie.entry), loc)
            })
            .collect();
        for (l, e, old) in &live {
            let Some(new) = moved_to.get(&(*l, *e)).copied() else {
                continue;
            };
            if s.index
                .get_mut(l)
                .is_some_and(|m| m.move_if_at(*e, *old, new))
            {
                s.segments.dead(old);
                s.segments.live(&new, *l);
            }
        }
        if uploaded {
            let range = written
                .iter()
                .map(|(seg, _)| *seg)
                .fold(None, |r, seg| match r {
                    None => Some((seg, seg)),
                    Some((lo, hi)) => Some((lo.min(seg), hi.max(seg))),
                });
            if let Some(meta) = s.segments.map.get_mut(&id) {
                meta.moved_into = match (meta.moved_into, range) {
                    (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                    (x, y) => y.or(x),
                };
            }
            m.remote_compacted_segments.inc();
            m.remote_compacted_bytes.inc_by(moved);
        }
        drop(s);
        tracing::info!(
            segment = id,
            moved = live.len(),
            uploaded,
            "segment compacted"
        );
        Ok(!uploaded)
    }
}

/// Replaces `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), BookieError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| BookieError::io("create checkpoint", e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| BookieError::io("write checkpoint", e))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(|e| BookieError::io("rename checkpoint", e))?;
    fsync_dir(dir)
}

/// Measures free space and switches read-only mode (with 10% hysteresis).
pub(super) fn check_disk(shared: &Shared) {
    let free = |p: &Path| -> Option<u64> {
        rustix::fs::statvfs(p)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    };
    let (Some(l), Some(j)) = (free(&shared.cfg.ledger_dir), free(&shared.cfg.journal_dir)) else {
        return;
    };
    let m = &shared.metrics;
    m.ledger_dir_free_bytes.set(l.min(i64::MAX as u64) as i64);
    m.journal_dir_free_bytes.set(j.min(i64::MAX as u64) as i64);
    if shared.journal_failed.load(Ordering::Acquire) || shared.flush_failed.load(Ordering::Acquire)
    {
        return;
    }
    let min = shared.cfg.min_free_bytes;
    let ro = shared.read_only.lock().is_some();
    let low = l < min || j < min;
    let space_ok = l >= min.saturating_add(min / 10) && j >= min.saturating_add(min / 10);
    // object storage: sealed segments that cannot be uploaded fill the local bound
    let backlog = shared
        .remote
        .as_ref()
        .and_then(|r| remote::backlog_reason(r, &shared.state, ro));
    if low {
        if !ro {
            shared.set_read_only(Some(format!(
                "free space below {min} bytes (ledger dir {l}, journal dir {j})"
            )));
        }
    } else if let Some(reason) = backlog {
        shared.set_read_only(Some(reason));
    } else if ro && space_ok {
        shared.set_read_only(None);
    }
}

/// After GC: forgets the refused ids that are neither recent deletes nor held by a segment any
/// more (`Admission::deleted_pinned` shrinks to `State::deleted`). Ids are moved there only after
/// `deleted_ledgers_remembered` later deletes, long after their own delete was applied, so
/// `State::deleted` has them until GC reclaimed their segments.
fn prune_admission(shared: &Shared) {
    let keep: HashSet<u64> = shared.state.lock().deleted.clone();
    shared
        .admission
        .lock()
        .deleted_pinned
        .retain(|l| keep.contains(l));
}

/// The flusher thread's loop; returns after a final flush once the command channel closes.
pub(super) fn run(shared: Arc<Shared>, mut f: Flusher, rx: Receiver<Cmd>) {
    let cfg = shared.cfg.clone();
    let m = shared.metrics.clone();
    let flush = |f: &mut Flusher, force: bool| {
        let r = f.flush(&shared.state, &cfg, &m, force);
        match &r {
            Err(e) => {
                // entries stay in the cache (and the journal); refuse adds until a flush succeeds
                if !shared.flush_failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "write-cache flush failed");
                }
                shared.set_read_only(Some(format!("write-cache flush failed: {e}")));
            }
            Ok(()) => {
                if shared.flush_failed.swap(false, Ordering::AcqRel) {
                    tracing::info!("write-cache flush succeeded again");
                    if !shared.journal_failed.load(Ordering::Acquire) {
                        shared.set_read_only(None);
                    }
                    check_disk(&shared);
                }
            }
        }
        shared.space.notify_waiters();
        r
    };
    let mut last_tick = Instant::now();
    loop {
        let wait = cfg.flush_interval.saturating_sub(last_tick.elapsed());
        match rx.recv_timeout(wait) {
            Ok(Cmd::Kick) => {
                shared.flush_kicked.store(false, Ordering::Release);
                let _ = flush(&mut f, false);
            }
            Ok(Cmd::Flush(tx)) => {
                let _ = tx.send(flush(&mut f, true));
            }
            Ok(Cmd::Gc(tx)) => {
                let r = flush(&mut f, true).and_then(|_| f.gc(&shared.state, &cfg, &m));
                prune_admission(&shared);
                let _ = tx.send(r);
            }
            Ok(Cmd::Seal(tx)) => {
                let r = flush(&mut f, true).and_then(|_| f.seal_if_due(&shared.state, true));
                let _ = tx.send(r);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = flush(&mut f, true);
                return;
            }
        }
        f.take_out_trash();
        if shared.journal_next.lock().is_none()
            && let Err(e) = journal::prepare_next(&shared)
        {
            tracing::warn!(error = %e, "cannot prepare the next journal file");
        }
        // periodic work, also under a steady stream of kicks
        if last_tick.elapsed() >= cfg.flush_interval {
            last_tick = Instant::now();
            if let Err(e) = f.seal_if_due(&shared.state, false) {
                tracing::warn!(error = %e, "cannot seal the current segment");
            }
            check_disk(&shared);
            let _ = flush(&mut f, false);
            if f.last_gc.elapsed() >= cfg.gc_interval {
                if let Err(e) = f.gc(&shared.state, &cfg, &m) {
                    tracing::warn!(error = %e, "garbage collection failed");
                }
                prune_admission(&shared);
            }
        }
    }
}
