//! The journal thread: group commit. It takes every queued record (up to
//! `journal_max_batch_bytes`, waiting at most `journal_max_wait` for more), writes them with one
//! `write` and one `fdatasync`, applies them to the in-memory state, then acknowledges them. While it
//! syncs, new records queue up and form the next batch, so the batch size adapts to the load.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use crate::error::BookieError;
use crate::format::FILE_HEADER_LEN;
use crate::format::journal::{JournalRecord, file_header};

use super::{JournalOp, Shared};

/// Path of journal file `seq`.
pub(super) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:020}.log"))
}

/// Every journal file in `dir` as `(seq, path)`, ascending.
pub(super) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, BookieError> {
    let mut out = vec![];
    let rd = std::fs::read_dir(dir).map_err(|e| BookieError::io("list journal directory", e))?;
    for ent in rd {
        let ent = ent.map_err(|e| BookieError::io("list journal directory", e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix("journal-")
            .and_then(|s| s.strip_suffix(".log"))
        {
            if let Ok(seq) = seq.parse::<u64>() {
                out.push((seq, ent.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// fsyncs a directory so that created, renamed and removed names are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), BookieError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BookieError::io(format!("sync directory {}", dir.display()), e))
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

/// The journal file being appended to.
pub(super) struct JournalFile {
    dir: PathBuf,
    seq: u64,
    file: File,
    len: u64,
}

impl JournalFile {
    /// Opens journal file `seq` with its header, durably: a recycled file from `pool` if there is
    /// one (its blocks are allocated already, so an fdatasync in it changes no metadata and needs no
    /// filesystem-journal commit), else a new file.
    pub(super) fn create(
        dir: &Path,
        seq: u64,
        pool: &parking_lot::Mutex<Vec<PathBuf>>,
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
        file.write_all_at(&file_header(seq), 0)
            .and_then(|_| file.sync_all())
            .map_err(|e| BookieError::io("write journal header", e))?;
        fsync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            seq,
            file,
            len: FILE_HEADER_LEN as u64,
        })
    }
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
    )?);
    Ok(())
}

/// The journal thread's loop; returns when every sender is gone and the queue is drained.
pub(super) fn run(shared: Arc<Shared>, mut jf: JournalFile, rx: Receiver<JournalOp>) {
    let cfg = shared.cfg.clone();
    let m = shared.metrics.clone();
    let mut batch: Vec<JournalOp> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(cfg.journal_max_batch_bytes + (1 << 20));
    loop {
        let first = match rx.recv() {
            Ok(op) => op,
            Err(_) => break,
        };
        let mut bytes = first.rec.encoded_len();
        batch.push(first);
        let deadline = Instant::now() + cfg.journal_max_wait;
        while bytes < cfg.journal_max_batch_bytes {
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
            bytes += op.rec.encoded_len();
            batch.push(op);
        }
        let start = Instant::now();
        let res = if shared.journal_failed.load(Ordering::Acquire) {
            Err(BookieError::ReadOnly {
                reason: "journal failed".into(),
            })
        } else {
            commit(&shared, &mut jf, &batch, bytes, &mut buf)
        };
        m.journal_sync_latency
            .observe(start.elapsed().as_secs_f64());
        m.journal_batch_records.observe(batch.len() as f64);
        match res {
            Ok(()) => {
                let applied = Instant::now();
                m.journal_bytes.inc_by(buf.len() as u64);
                let over = {
                    let mut st = shared.state.lock();
                    for op in &batch {
                        st.apply(&op.rec);
                    }
                    st.journal_pos = (jf.seq, jf.len);
                    m.cache_bytes.set(st.cache_bytes() as i64);
                    st.cache.bytes >= cfg.flush_bytes
                };
                for op in batch.drain(..) {
                    let _ = op.done.send(Ok(()));
                }
                m.journal_apply_latency
                    .observe(applied.elapsed().as_secs_f64());
                if over {
                    shared.kick_flusher();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "journal write failed; bookie is read-only until restart");
                shared.journal_failed.store(true, Ordering::Release);
                shared.set_read_only(Some(format!("journal failed: {e}")));
                for op in batch.drain(..) {
                    let _ = op.done.send(Err(BookieError::ReadOnly {
                        reason: format!("journal failed: {e}"),
                    }));
                }
            }
        }
        shared.space.notify_waiters();
    }
    // every record committed so far is synced; nothing else to do
    let _ = jf.file.sync_data();
}

/// Writes one batch and syncs it, rolling to a new file first if this one is full.
fn commit(
    shared: &Shared,
    jf: &mut JournalFile,
    batch: &[JournalOp],
    bytes: usize,
    buf: &mut Vec<u8>,
) -> Result<(), BookieError> {
    if jf.len + bytes as u64 > shared.cfg.journal_max_file_bytes && jf.len > FILE_HEADER_LEN as u64
    {
        // the flusher usually prepared the next file already (see `prepare_next`); creating it
        // here costs a header sync and a directory sync in the middle of the add path
        let mut next = shared.journal_next.lock();
        let prepared = next.take().filter(|n| n.seq == jf.seq + 1);
        *jf = match prepared {
            Some(n) => n,
            None => JournalFile::create(&jf.dir, jf.seq + 1, &shared.journal_pool)?,
        };
        shared.journal_seq.store(jf.seq, Ordering::Release);
    }
    buf.clear();
    for op in batch {
        op.rec.encode_into(buf, jf.seq);
    }
    jf.file
        .write_all_at(buf, jf.len)
        .map_err(|e| BookieError::io("write journal", e))?;
    jf.file
        .sync_data()
        .map_err(|e| BookieError::io("fdatasync journal", e))?;
    jf.len += buf.len() as u64;
    Ok(())
}

/// Reads records of one journal file from `from` (checkpoint offset or 0). A torn or corrupt tail
/// ends the file's records cleanly (logged).
pub(super) fn replay_file(
    seq: u64,
    p: &Path,
    from: u64,
) -> Result<Vec<JournalRecord>, BookieError> {
    let data = std::fs::read(p)
        .map_err(|e| BookieError::io(format!("read journal {}", p.display()), e))?;
    let data = bytes::Bytes::from(data);
    match crate::format::journal::scan_file(&data, Some(seq), from) {
        Ok(scan) => {
            if let Some(e) = &scan.stopped {
                tracing::warn!(seq, offset = scan.end, size = data.len(), error = %e, "journal replay stopped at a torn or corrupt record");
            }
            Ok(scan.records.into_iter().map(|(r, _)| r).collect())
        }
        Err(e) => {
            // a file whose header never made it to disk (crash right after creation)
            tracing::warn!(seq, error = %e, "journal file without a valid header, skipped");
            Ok(vec![])
        }
    }
}
