//! The flusher thread and recovery: write-cache flushes into segments, checkpoints, journal
//! truncation, garbage collection and compaction, the disk-space monitor.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::format::FILE_HEADER_LEN;
use crate::format::checkpoint::{Checkpoint, LedgerRecord};
use crate::format::index::IndexEntry;
use crate::metrics::Metrics;

use super::journal::{self, JournalFile, fsync_dir};
use super::segments::{self, Loc, SegMeta, SegWriter};
use super::{Cache, Ledger, Shared, State};

/// Requests to the flusher thread.
pub(super) enum Cmd {
    /// The write cache is over its threshold.
    Kick,
    /// Flush and checkpoint now.
    Flush(SyncSender<Result<(), BookieError>>),
    /// Flush, then collect garbage and compact now.
    Gc(SyncSender<Result<(), BookieError>>),
}

const CHECKPOINT: &str = "checkpoint";

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
}

/// Bytes freed per trash step.
const TRASH_STEP: u64 = 8 << 20;

/// What recovery hands to the running storage.
pub(super) struct Recovered {
    pub ledgers: std::collections::HashMap<u64, Ledger>,
    pub deleted: HashSet<u64>,
    pub tombstones: super::Tombstones,
    /// Replayed entries the flush after recovery could not write (a full disk), else empty.
    pub cache: Cache,
    pub index: std::collections::HashMap<u64, std::collections::BTreeMap<u64, Loc>>,
    pub segments: segments::Segments,
    /// `None` when no journal file could be created (disk full): the bookie starts read-only.
    pub journal: Option<JournalFile>,
    /// Why the journal is missing.
    pub journal_error: Option<BookieError>,
    pub journal_pos: (u64, u64),
    pub writer: Flusher,
    pub journal_pool: Arc<Mutex<Vec<std::path::PathBuf>>>,
}

/// Recovery: checkpoint → index files → journal replay from the checkpoint → flush + new checkpoint.
pub(super) fn recover(cfg: &StorageConfig, m: &Metrics) -> Result<Recovered, BookieError> {
    for d in [&cfg.ledger_dir, &cfg.journal_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| BookieError::io(format!("create {}", d.display()), e))?;
    }
    let started = Instant::now();
    let cp = cfg.ledger_dir.join(CHECKPOINT);
    let (ckpt, ckpt_seq) = match std::fs::read(&cp) {
        Ok(b) => Checkpoint::decode(&Bytes::from(b)).map_err(|source| BookieError::Corrupt {
            what: cp.display().to_string(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Checkpoint::default(), 0),
        Err(e) => return Err(BookieError::io("read checkpoint", e)),
    };
    let mut st = State {
        ledgers: ckpt
            .ledgers
            .into_iter()
            .map(|l| {
                (
                    l.ledger,
                    Ledger {
                        key: l.key,
                        fenced: l.fenced,
                        lac: l.lac,
                        last_entry: l.last_entry,
                        lac_tx: watch::Sender::new(l.lac),
                    },
                )
            })
            .collect(),
        // oldest first: the ids GC still had to keep, then the most recent deletes
        tombstones: super::Tombstones::new(
            cfg.deleted_ledgers_remembered,
            ckpt.deleted.iter().copied(),
        ),
        deleted: ckpt.deleted.into_iter().collect(),
        cache: Cache::default(),
        flushing: None,
        index: Default::default(),
        segments: Default::default(),
        journal_pos: (0, 0),
    };
    let loaded = segments::load(&cfg.ledger_dir)?;
    st.segments = loaded.segments;
    let mut indexed = 0usize;
    for (seg, e) in loaded.entries {
        if st.deleted.contains(&e.ledger) {
            continue;
        }
        let loc = Loc {
            seg,
            offset: e.offset,
            len: e.len,
        };
        if let Some(old) = st.index.entry(e.ledger).or_default().insert(e.entry, loc) {
            st.segments.dead(&old);
        }
        st.segments.live(&loc, e.ledger);
        indexed += 1;
    }
    let mut max_seq = ckpt.journal_seq;
    let mut replayed = 0usize;
    for (seq, p) in journal::list(&cfg.journal_dir)? {
        max_seq = max_seq.max(seq);
        if seq < ckpt.journal_seq {
            continue;
        }
        let from = if seq == ckpt.journal_seq {
            ckpt.journal_offset
        } else {
            0
        };
        for rec in journal::replay_file(seq, &p, from)? {
            st.apply(&rec);
            replayed += 1;
        }
    }
    let orphans: Vec<u64> = st
        .index
        .keys()
        .filter(|l| !st.ledgers.contains_key(l))
        .copied()
        .collect();
    for l in orphans {
        if let Some(es) = st.index.remove(&l) {
            for loc in es.values() {
                st.segments.dead(loc);
            }
        }
    }
    for p in journal::list_prefixed(&cfg.journal_dir, "journal-trash-")? {
        std::fs::remove_file(&p).map_err(|e| BookieError::io("remove old journal file", e))?;
    }
    let journal_pool = Arc::new(Mutex::new(journal::list_recyclable(&cfg.journal_dir)?));
    // every replayed record is in the cache; from here the journal restarts in a fresh file
    st.journal_pos = (max_seq + 1, FILE_HEADER_LEN as u64);
    let (jf, journal_error) =
        match JournalFile::create(&cfg.journal_dir, max_seq + 1, &journal_pool) {
            Ok(jf) => (Some(jf), None),
            Err(e) => {
                tracing::error!(error = %e, "cannot create a journal file; starting read-only");
                (None, Some(e))
            }
        };
    let mut f = Flusher {
        w: None,
        dir: cfg.ledger_dir.clone(),
        next_seg: loaded.max_id + 1,
        ckpt_seq,
        last_ckpt_pos: (0, 0),
        last_ckpt_at: Instant::now(),
        last_flush_pos: (0, 0),
        last_gc: Instant::now(),
        journal_pool: journal_pool.clone(),
        trash: vec![],
    };
    let st = Mutex::new(st);
    if let Err(e) = f.flush(&st, cfg, m, true) {
        // e.g. a full disk: the replayed entries stay in the cache and in the old journal files
        tracing::error!(error = %e, "flush after recovery failed; replayed entries kept in memory");
    }
    let st = st.into_inner();
    tracing::info!(
        ledgers = st.ledgers.len(),
        indexed,
        replayed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bookie storage recovered"
    );
    Ok(Recovered {
        ledgers: st.ledgers,
        deleted: st.deleted,
        tombstones: st.tombstones,
        cache: st.cache,
        index: st.index,
        segments: st.segments,
        journal: jf,
        journal_error,
        journal_pos: st.journal_pos,
        writer: f,
        journal_pool,
    })
}

fn register(st: &mut State, w: &SegWriter) {
    let seg = SegMeta::new(w.file.clone(), w.size(), HashSet::new());
    st.segments.map.insert(w.id, seg);
}

impl Flusher {
    /// Appends one entry, rolling to a new segment when the current one is full.
    fn append(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        ledger: u64,
        entry: u64,
        payload: &Bytes,
        out: &mut Vec<(u64, IndexEntry)>,
    ) -> Result<(), BookieError> {
        if self
            .w
            .as_ref()
            .is_some_and(|w| w.size() >= cfg.segment_max_bytes)
        {
            self.sync(st, out)?;
            self.w = None;
        }
        if self.w.is_none() {
            let id = self.next_seg;
            // never retry an id: a failed attempt may have left the file behind
            self.next_seg += 1;
            let w = SegWriter::create(&self.dir, id, cfg.flush_chunk_bytes)?;
            register(&mut st.lock(), &w);
            self.w = Some(w);
        }
        if let Some(w) = self.w.as_mut() {
            w.append(ledger, entry, payload)?;
        }
        Ok(())
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
        out.extend(w.sync()?.into_iter().map(|e| (id, e)));
        let size = w.size();
        if let Some(s) = st.lock().segments.map.get_mut(&id) {
            s.size = size;
        }
        Ok(())
    }

    /// Moves the write cache into segments and installs the index entries; then, if `force` or
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
        if due && self.last_flush_pos != self.last_ckpt_pos {
            let pos = self.last_flush_pos;
            self.checkpoint(st, cfg, pos)?;
            self.last_ckpt_at = Instant::now();
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
        let (cache, pos) = {
            let mut s = st.lock();
            if s.cache.is_empty() {
                // nothing to write; the position still moves (fence and delete records)
                self.last_flush_pos = s.journal_pos;
                return Ok(());
            }
            let c = Arc::new(std::mem::take(&mut s.cache));
            s.flushing = Some(c.clone());
            (c, s.journal_pos)
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
            self.sync(st, &mut written)
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
            }
            s.flushing = None;
            m.cache_bytes.set(s.cache_bytes() as i64);
            m.segment_bytes.set(s.segments.total_bytes() as i64);
        }
        res?;
        self.last_flush_pos = pos;
        m.flush_latency.observe(start.elapsed().as_secs_f64());
        Ok(())
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
        let ck = {
            let s = st.lock();
            Checkpoint {
                journal_seq: pos.0,
                journal_offset: pos.1,
                ledgers: s
                    .ledgers
                    .iter()
                    .map(|(id, l)| LedgerRecord {
                        ledger: *id,
                        fenced: l.fenced,
                        lac: l.lac,
                        last_entry: l.last_entry,
                        key: l.key.clone(),
                    })
                    .collect(),
                // older ids GC still keeps first, then the recent deletes, oldest first
                deleted: s
                    .deleted
                    .iter()
                    .filter(|l| !s.tombstones.contains(l))
                    .chain(s.tombstones.iter())
                    .copied()
                    .collect(),
            }
        };
        let seq = self.ckpt_seq + 1;
        write_atomic(&cfg.ledger_dir, CHECKPOINT, &ck.encode(seq))?;
        self.ckpt_seq = seq;
        self.last_ckpt_pos = pos;
        let mut removed = false;
        for (jseq, p) in journal::list(&cfg.journal_dir)? {
            if jseq < pos.0 {
                // keep a few for reuse (no block allocation, no metadata commit when written again)
                let mut pool = self.journal_pool.lock();
                if pool.len() < cfg.journal_recycle_files {
                    let to = journal::recycle_path(&cfg.journal_dir, jseq);
                    std::fs::rename(&p, &to)
                        .map_err(|e| BookieError::io("keep old journal file for reuse", e))?;
                    pool.insert(0, to);
                } else {
                    // freed a few MiB at a time (see `take_out_trash`): deleting a large file at
                    // once stalls the filesystem journal and with it every journal fdatasync
                    let to = cfg
                        .journal_dir
                        .join(format!("journal-trash-{jseq:020}.log"));
                    std::fs::rename(&p, &to)
                        .map_err(|e| BookieError::io("move old journal file to trash", e))?;
                    self.trash.push(to);
                }
                removed = true;
            }
        }
        if removed {
            fsync_dir(&cfg.journal_dir)?;
        }
        Ok(())
    }

    /// Reclaims sealed segments with no live entry and compacts those mostly dead.
    fn gc(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        m: &Metrics,
    ) -> Result<(), BookieError> {
        self.last_gc = Instant::now();
        let (empty, sparse) = {
            let s = st.lock();
            let mut empty = vec![];
            let mut sparse = vec![];
            for (id, seg) in &s.segments.map {
                if Some(*id) == self.w.as_ref().map(|w| w.id) {
                    continue;
                }
                let data = seg.size.saturating_sub(FILE_HEADER_LEN as u64);
                if seg.live == 0 {
                    empty.push(*id);
                } else if (seg.live as f64) < cfg.compaction_threshold * data as f64 {
                    sparse.push(*id);
                }
            }
            (empty, sparse)
        };
        let mut reclaim = empty;
        for id in sparse {
            match self.compact(st, cfg, id) {
                Ok(()) => reclaim.push(id),
                Err(e) => {
                    tracing::warn!(segment = id, error = %e, "compaction failed; segment kept")
                }
            }
        }
        for id in reclaim {
            let size = {
                let mut s = st.lock();
                match s.segments.map.get(&id) {
                    Some(seg) if seg.live == 0 => {
                        s.segments.map.remove(&id).map(|x| x.size).unwrap_or(0)
                    }
                    _ => continue,
                }
            };
            segments::remove(&cfg.ledger_dir, id)?;
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
    fn compact(
        &mut self,
        st: &Mutex<State>,
        cfg: &StorageConfig,
        id: u64,
    ) -> Result<(), BookieError> {
        let (file, live) = {
            let s = st.lock();
            let Some(file) = s.segments.file(id) else {
                return Ok(());
            };
            let mut live = vec![];
            for (l, es) in &s.index {
                for (e, loc) in es {
                    if loc.seg == id {
                        live.push((*l, *e, *loc));
                    }
                }
            }
            (file, live)
        };
        let mut written = vec![];
        for (l, e, loc) in &live {
            let p = segments::read_at(&file, *loc, *l, *e)?;
            self.append(st, cfg, *l, *e, &p, &mut written)?;
        }
        self.sync(st, &mut written)?;
        let mut s = st.lock();
        for ((l, e, old), (seg, ie)) in live.iter().zip(written.iter()) {
            let new = Loc {
                seg: *seg,
                offset: ie.offset,
                len: ie.len,
            };
            if let Some(cur) = s.index.get_mut(l).and_then(|m| m.get_mut(e)) {
                if cur == old {
                    *cur = new;
                    s.segments.dead(old);
                    s.segments.live(&new, *l);
                }
            }
        }
        tracing::info!(segment = id, moved = live.len(), "segment compacted");
        Ok(())
    }
}

/// Replaces `dir/name` atomically and durably.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), BookieError> {
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
    if low && !ro {
        shared.set_read_only(Some(format!(
            "free space below {min} bytes (ledger dir {l}, journal dir {j})"
        )));
    } else if ro && !low && l >= min.saturating_add(min / 10) && j >= min.saturating_add(min / 10) {
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
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = flush(&mut f, true);
                return;
            }
        }
        f.take_out_trash();
        if shared.journal_next.lock().is_none() {
            if let Err(e) = journal::prepare_next(&shared) {
                tracing::warn!(error = %e, "cannot prepare the next journal file");
            }
        }
        // periodic work, also under a steady stream of kicks
        if last_tick.elapsed() >= cfg.flush_interval {
            last_tick = Instant::now();
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
