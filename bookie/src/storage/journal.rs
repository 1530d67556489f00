//! The journal thread: group commit. It takes every queued record (up to
//! `journal_max_batch_bytes`, waiting at most `journal_max_wait` for more), writes them with one
//! `write` and one `fdatasync`, publishes the batch in the durable queue and hands it to the
//! applier thread, which acknowledges its adds and then applies it to the in-memory state. While
//! it syncs, new records queue up and form the next batch, so the batch size adapts to the load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::format::journal::JournalRecord;
use crate::format::{FILE_HEADER_LEN, FormatError, ZERO_LENGTH};

use super::journal_file::JournalFile;
use super::journal_index;
use super::journal_seg;
use super::segments::SegMeta;
use super::staging::Staged;
use super::sys::BLOCK;
use super::{Done, JournalOp, Shared, State};

/// A synced batch, readable from `Shared::durable` until the applier put it into the state.
pub(super) struct DurableBatch {
    pub(super) recs: Vec<JournalRecord>,
    /// Journal file and offset of the first record (the others follow it, each
    /// `encoded_len` long).
    pub(super) first: (u64, u64),
    /// Journal position after this batch.
    pub(super) pos: (u64, u64),
    pub(super) bytes: usize,
    synced: Instant,
}

/// What the journal thread hands to the applier: a synced batch, the adds it answers at once
/// (readable from the durable queue already) and the acknowledgements that must wait until the
/// batch is applied (fence, delete).
pub(super) struct Applied {
    batch: Arc<DurableBatch>,
    acks: Vec<Done>,
    later: Vec<Done>,
}

/// A batch the applier answered and has yet to apply, with the acknowledgements that wait for it.
type Answered = (Arc<DurableBatch>, Vec<Done>);

/// The records of the next group commit, split as they are taken from the queue (each moved
/// once): the records to write, and the answers of adds and of the rest (see [`Applied`]).
#[derive(Default)]
struct Gathered {
    recs: Vec<JournalRecord>,
    acks: Vec<Done>,
    later: Vec<Done>,
    /// Encoded length of `recs`.
    bytes: usize,
}

impl Gathered {
    /// Empty, with room for `n` records (about the next commit's, if the load holds).
    fn with_room(n: usize) -> Self {
        Gathered {
            recs: Vec::with_capacity(n),
            acks: Vec::with_capacity(n),
            later: Vec::new(),
            bytes: 0,
        }
    }

    fn take(&mut self, op: JournalOp) {
        self.bytes += op.rec.encoded_len();
        match op.rec {
            JournalRecord::Add { .. } => self.acks.push(op.done),
            _ => self.later.push(op.done),
        }
        self.recs.push(op.rec);
    }
}

/// Unsaved journal index entries past which the applier asks for a flush.
const UNSAVED_KICK: usize = 1 << 16;

/// The applier thread: answers the adds of synced batches (so the journal thread starts the next
/// write at once), then moves the batches into the in-memory state (index or write cache, LAC,
/// fence, delete) in commit order and drops them from the durable queue. Waiting for the state
/// lock here delays no add acknowledgement.
pub(super) fn run_applier(shared: Arc<Shared>, rx: Receiver<Applied>) {
    let cfg = shared.cfg.clone();
    let m = shared.metrics.clone();
    let mut work: Vec<Answered> = Vec::new();
    let mut opened = None;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(a) = next.take().or_else(|| rx.try_recv().ok()) {
            Done::answer_synced(a.acks, a.batch.synced, &shared);
            work.push((a.batch, a.later));
        }
        let new_segments = match cfg.journal_holds_entries {
            true => open_journal_segments(&cfg, &work, &mut opened),
            false => vec![],
        };
        let over = {
            let mut st = shared.state.lock();
            for (id, meta) in new_segments {
                st.segments.map.entry(id).or_insert(meta);
            }
            for (db, _) in &work {
                apply_batch(&mut st, db, cfg.journal_holds_entries);
            }
            m.cache_bytes.set(st.cache_bytes() as i64);
            st.cache.bytes >= cfg.flush_bytes || st.unsaved_index.len() >= UNSAVED_KICK
        };
        {
            let mut q = shared.durable.lock();
            for _ in 0..work.len() {
                q.pop_front();
            }
        }
        for (db, later) in work.drain(..) {
            shared.durable_bytes.fetch_sub(db.bytes, Ordering::AcqRel);
            m.journal_apply_latency
                .observe(db.synced.elapsed().as_secs_f64());
            for done in later {
                done.send(Ok(()), &shared);
            }
        }
        if over {
            shared.kick_flusher();
        }
        shared.space.notify_waiters();
    }
}

/// Opens (outside the state lock) the journal files that `work` added entries to and that are
/// not journal segments yet; `opened` is the last one opened.
fn open_journal_segments(
    cfg: &crate::config::StorageConfig,
    work: &[Answered],
    opened: &mut Option<u64>,
) -> Vec<(u64, SegMeta)> {
    let mut out = vec![];
    for (db, _) in work {
        let seq = db.first.0;
        let adds = db
            .recs
            .iter()
            .any(|r| matches!(r, JournalRecord::Add { .. }));
        if !adds || *opened == Some(seq) {
            continue;
        }
        if let Some(meta) = journal_index::open_segment(&cfg.journal_dir, seq) {
            out.push((journal_seg::seg_id(seq), meta));
            *opened = Some(seq);
        }
    }
    out
}

/// Applies one synced batch: an add is indexed where the journal wrote it when its file is a
/// journal segment (`holds`), else cached.
pub(super) fn apply_batch(st: &mut State, db: &DurableBatch, holds: bool) {
    let (seq, mut at) = db.first;
    let in_journal = holds && st.segments.map.contains_key(&journal_seg::seg_id(seq));
    for rec in &db.recs {
        let len = rec.encoded_len();
        let loc = (in_journal && matches!(rec, JournalRecord::Add { .. }))
            .then(|| journal_index::loc(seq, at, len));
        st.apply(rec, loc);
        at += len as u64;
    }
    st.journal_pos = db.pos;
}

/// Every journal file in `dir` as `(seq, path)`, ascending.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, BookieError> {
    super::numbered::list(dir, "journal-", "journal")
}

/// Path of a journal file kept for reuse.
pub(super) fn recycle_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-recycle-{seq:020}.log"))
}

/// Journal files kept for reuse in `dir`.
pub(super) fn list_recyclable(dir: &Path) -> Result<Vec<PathBuf>, BookieError> {
    list_prefixed(dir, "journal-recycle-")
}

/// Files in `dir` whose name starts with `prefix`, sorted.
pub(super) fn list_prefixed(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, BookieError> {
    let mut out = vec![];
    let rd = std::fs::read_dir(dir).map_err(|e| BookieError::io("list journal directory", e))?;
    for ent in rd {
        let ent = ent.map_err(|e| BookieError::io("list journal directory", e))?;
        if ent
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            out.push(ent.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Prepares the journal file the journal thread will roll to next (called by the flusher, off the
/// add path). Creation happens under the `journal_next` lock, which the journal thread also holds
/// when it rolls over, so the two never create the same file.
pub(super) fn prepare_next(shared: &Shared) -> Result<(), BookieError> {
    let mut next = shared.journal_next.lock();
    let seq = shared.journal_seq.load(Ordering::Acquire) + 1;
    if next.as_ref().is_some_and(|n| n.seq == seq) || shared.journal_failed.load(Ordering::Acquire)
    {
        return Ok(());
    }
    *next = Some(JournalFile::create(
        &shared.cfg.journal_dir,
        seq,
        &shared.journal_pool,
        shared.cfg.journal_direct_io,
    )?);
    Ok(())
}

/// The journal thread's loop; returns when every sender is gone and the queue is drained.
pub(super) fn run(
    shared: Arc<Shared>,
    mut jf: JournalFile,
    rx: Receiver<JournalOp>,
    apply_tx: std::sync::mpsc::Sender<Applied>,
) {
    let cfg = shared.cfg.clone();
    let m = shared.metrics.clone();
    let mut batch = Gathered::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let first = match rx.recv() {
            Ok(op) => op,
            Err(_) => break,
        };
        let first_queued = first.queued;
        batch.take(first);
        let deadline = Instant::now() + cfg.journal_max_wait;
        while batch.bytes < cfg.journal_max_batch_bytes {
            let next = match rx.try_recv() {
                Ok(op) => Some(op),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        None
                    } else {
                        rx.recv_timeout(deadline - now).ok()
                    }
                }
            };
            let Some(op) = next else { break };
            batch.take(op);
        }
        let mut staged = take_staged(&shared, &jf, &mut batch, std::mem::take(&mut spare), &rx);
        let start = Instant::now();
        let records = batch.recs.len();
        m.journal_queue_latency
            .observe(start.duration_since(first_queued).as_secs_f64());
        let res = if shared.journal_failed.load(Ordering::Acquire) {
            Err(BookieError::ReadOnly {
                reason: "journal failed".into(),
            })
        } else {
            commit(&shared, &mut jf, &batch, &mut staged, &mut buf)
        };
        spare = staged.into_buf();
        m.journal_sync_latency
            .observe(start.elapsed().as_secs_f64());
        m.journal_batch_records.observe(records as f64);
        let Gathered {
            recs,
            acks,
            later,
            bytes,
        } = std::mem::replace(&mut batch, Gathered::with_room(records));
        match res {
            Ok(wrote) => {
                m.journal_bytes.inc_by(wrote as u64);
                // the applier thread acknowledges adds first, without the state lock (the batch is
                // published in the durable queue, readable from there, before it is handed over),
                // then moves the batch into the state; this thread writes the next batch
                // meanwhile. Fences and deletes are acknowledged once their effects (and every
                // earlier add) are in the state.
                let db = Arc::new(DurableBatch {
                    recs,
                    first: (jf.seq, jf.len - wrote as u64),
                    pos: (jf.seq, jf.len),
                    bytes,
                    synced: Instant::now(),
                });
                shared.durable_bytes.fetch_add(bytes, Ordering::AcqRel);
                shared.durable.lock().push_back(db.clone());
                let applied = Applied {
                    batch: db,
                    acks,
                    later,
                };
                if let Err(lost) = apply_tx.send(applied) {
                    tracing::error!("journal applier gone");
                    let Applied { batch, acks, .. } = lost.0;
                    Done::answer_synced(acks, batch.synced, &shared);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; bookie is read-only until restart");
                shared.journal_failed.store(true, Ordering::Release);
                shared.set_read_only(Some(format!("journal failed: {e}")));
                for done in acks.into_iter().chain(later) {
                    let reason = format!("journal failed: {e}");
                    done.send(Err(BookieError::ReadOnly { reason }), &shared);
                }
                shared.space.notify_waiters();
            }
        }
    }
    // every record committed so far is synced; nothing else to do
    let _ = jf.sync();
}

/// Takes the staged records of the batch gathered so far, and of any op queued since (their ops
/// are received here) as long as the batch stays within `journal_max_batch_bytes`; a fresh
/// staging buffer takes their place, laid out for where this commit will end. Counts them as
/// taken from the queue (its gauge set under the same lock).
fn take_staged(
    shared: &Shared,
    jf: &JournalFile,
    batch: &mut Gathered,
    spare: Vec<u8>,
    rx: &Receiver<JournalOp>,
) -> Staged {
    let cfg = &shared.cfg;
    let taken = {
        let mut ad = shared.admission.lock();
        let st = &mut ad.staging;
        let (records, bytes) = match st.bytes() <= cfg.journal_max_batch_bytes.max(batch.bytes) {
            true => (st.records(), st.bytes()),
            false => (batch.recs.len(), batch.bytes),
        };
        let (seq, end) = end_after(jf, bytes, cfg.journal_max_file_bytes);
        let room = (end % BLOCK as u64) as usize;
        let taken = st.take(records, bytes, spare, (seq, room), staging_capacity(cfg));
        let n = taken.records() as u64;
        let all = shared.journal_taken.fetch_add(n, Ordering::AcqRel) + n;
        ad.publish_queue_size(all, &shared.metrics);
        taken
    };
    // every staged record's op was sent before it was staged (under the admission lock)
    while batch.recs.len() < taken.records() {
        match rx.recv() {
            Ok(op) => batch.take(op),
            Err(_) => break,
        }
    }
    taken
}

/// Bytes of records a staging buffer holds: a commit's worth at the loads measured (up to ~750
/// KiB at 1 GB/s), not a backlog. Its pages stay resident once touched, two buffers take turns,
/// and a larger commit (the journal is behind) is encoded by the journal thread as before.
const STAGING_BYTES: usize = 2 << 20;

fn staging_capacity(cfg: &StorageConfig) -> usize {
    cfg.journal_max_batch_bytes.min(STAGING_BYTES)
}

/// The staging buffer for the records that follow what `jf` holds.
pub(super) fn staging_for(jf: &JournalFile, cfg: &StorageConfig) -> Staged {
    let room = (jf.len % BLOCK as u64) as usize;
    Staged::new(Vec::new(), jf.seq, room, staging_capacity(cfg))
}

/// Whether a commit of `bytes` rolls to the next journal file first (`jf` is full and holds
/// records).
fn rolls(jf: &JournalFile, bytes: usize, max_file_bytes: u64) -> bool {
    jf.len + bytes as u64 > max_file_bytes && jf.len > FILE_HEADER_LEN as u64
}

/// The journal file and offset where a commit of `bytes` will end.
fn end_after(jf: &JournalFile, bytes: usize, max_file_bytes: u64) -> (u64, u64) {
    match rolls(jf, bytes, max_file_bytes) {
        true => (jf.seq + 1, (FILE_HEADER_LEN + bytes) as u64),
        false => (jf.seq, jf.len + bytes as u64),
    }
}

/// Writes one batch and syncs it, rolling to a new file first if this one is full: from the
/// staging buffer if its records were staged for where they land, else encoded again into `buf`.
fn commit(
    shared: &Shared,
    jf: &mut JournalFile,
    batch: &Gathered,
    staged: &mut Staged,
    buf: &mut Vec<u8>,
) -> Result<usize, BookieError> {
    if rolls(jf, batch.bytes, shared.cfg.journal_max_file_bytes) {
        // the flusher usually prepared the next file already (see `prepare_next`); creating it
        // here costs a header sync and a directory sync in the middle of the add path
        let mut next = shared.journal_next.lock();
        let prepared = next.take().filter(|n| n.seq == jf.seq + 1);
        *jf = match prepared {
            Some(n) => n,
            None => JournalFile::create(
                &jf.dir,
                jf.seq + 1,
                &shared.journal_pool,
                shared.cfg.journal_direct_io,
            )?,
        };
        shared.journal_seq.store(jf.seq, Ordering::Release);
    }
    let io = |e| BookieError::io("write and fdatasync journal", e);
    let same = staged.records() == batch.recs.len() && staged.bytes() == batch.bytes;
    if same && let Some(wrote) = jf.append_staged(staged).map_err(io)? {
        return Ok(wrote);
    }
    let seq = jf.seq;
    jf.append(buf, batch.bytes, |out| {
        for rec in &batch.recs {
            rec.encode_into(out, seq);
        }
    })
    .map_err(io)
}

/// Reads records of one journal file from `from` (checkpoint offset or 0), each with its frame's
/// offset and length. A torn or corrupt tail ends the file's records cleanly (logged).
pub(super) fn replay_file(
    seq: u64,
    p: &Path,
    from: u64,
) -> Result<Vec<(JournalRecord, u64, usize)>, BookieError> {
    let data = std::fs::read(p)
        .map_err(|e| BookieError::io(format!("read journal {}", p.display()), e))?;
    let data = bytes::Bytes::from(data);
    match crate::format::journal::scan_file(&data, Some(seq), from) {
        Ok(scan) => {
            if let Some(FormatError::Malformed(ZERO_LENGTH)) = &scan.stopped {
                // Zeros after the last record: a direct write's padding or an unused tail (or,
                // rarely, a lost write: the offset says where replay ended).
                tracing::info!(
                    seq,
                    offset = scan.end,
                    size = data.len(),
                    "journal replay ended at zeros"
                );
            } else if let Some(e) = &scan.stopped {
                tracing::warn!(seq, offset = scan.end, size = data.len(), error = %e, "journal replay stopped at a torn or corrupt record");
            }
            // records are contiguous: each starts where the one before ended
            let mut at = (FILE_HEADER_LEN as u64).max(from);
            let mut out = Vec::with_capacity(scan.records.len());
            for (r, end) in scan.records {
                out.push((r, at, (end - at) as usize));
                at = end;
            }
            Ok(out)
        }
        Err(e) => {
            // a file whose header never made it to disk (crash right after creation)
            tracing::warn!(seq, error = %e, "journal file without a valid header, skipped");
            Ok(vec![])
        }
    }
}
