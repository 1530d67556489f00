//! Recovery: checkpoint → index files (and, with object storage, the uploaded segments) →
//! journal replay from the checkpoint → flush + new checkpoint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::StorageConfig;
use crate::error::BookieError;
use crate::format::FILE_HEADER_LEN;
use crate::format::checkpoint::Checkpoint;
use crate::format::index::IndexEntry;
use crate::format::journal::JournalRecord;
use crate::metrics::Metrics;

use super::flusher::{CHECKPOINT, Flusher, ledgers_from};
use super::journal;
use super::journal_file::JournalFile;
use super::journal_index;
use super::journal_seg;
use super::remote::{self, Remote};
use super::segments::{self, Loc};
use super::{Cache, Ledger, State};

/// What recovery hands to the running storage.
pub(super) struct Recovered {
    pub ledgers: strata_common::fast_map::FastMap<u64, Ledger>,
    pub deleted: HashSet<u64>,
    pub tombstones: super::Tombstones,
    /// Replayed entries the flush after recovery could not write (a full disk), else empty.
    pub cache: Cache,
    pub index: strata_common::fast_map::FastMap<u64, super::ledger_index::LedgerIndex>,
    pub segments: segments::Segments,
    /// `None` when no journal file could be created (disk full): the bookie starts read-only.
    pub journal: Option<JournalFile>,
    /// Why the journal is missing.
    pub journal_error: Option<BookieError>,
    pub journal_pos: (u64, u64),
    /// Replayed entries indexed in journal segments whose index files the flush after recovery
    /// could not write (else empty).
    pub unsaved_index: Vec<(u64, crate::format::index::IndexEntry)>,
    pub writer: Flusher,
    pub journal_pool: Arc<Mutex<Vec<std::path::PathBuf>>>,
}

/// Recovery: checkpoint → index files (+ uploaded segments) → journal replay from the
/// checkpoint → flush + new checkpoint.
pub(super) fn recover(
    cfg: &StorageConfig,
    m: &Metrics,
    remote: Option<&Arc<Remote>>,
) -> Result<Recovered, BookieError> {
    for d in [&cfg.ledger_dir, &cfg.journal_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| BookieError::io(format!("create {}", d.display()), e))?;
    }
    let started = Instant::now();
    let cp = cfg.ledger_dir.join(CHECKPOINT);
    let (ckpt, ckpt_seq, have_checkpoint) = match std::fs::read(&cp) {
        Ok(b) => {
            let (c, seq) =
                Checkpoint::decode(&Bytes::from(b)).map_err(|source| BookieError::Corrupt {
                    what: cp.display().to_string(),
                    source,
                })?;
            (c, seq, true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Checkpoint::default(), 0, false),
        Err(e) => return Err(BookieError::io("read checkpoint", e)),
    };
    let ckpt_pos = (ckpt.journal_seq, ckpt.journal_offset);
    let mut st = State {
        ledgers: ledgers_from(&ckpt.ledgers),
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
        unsaved_index: vec![],
    };
    let loaded = segments::load(&cfg.ledger_dir)?;
    st.segments = loaded.segments;
    let mut entries = loaded.entries;
    let mut max_id = loaded.max_id;
    let mut rebuilt = false;
    if let Some(r) = remote {
        let att = remote::attach(r, &mut st, have_checkpoint)?;
        rebuilt = att.rebuilt;
        if att.rebuilt {
            tracing::info!(
                segments = att.entries.len(),
                "index of an empty bookie rebuilt from object storage"
            );
        }
        max_id = max_id.max(att.max_seg);
        entries.retain(|(seg, _)| !att.replaced.contains(seg));
        entries.extend(att.entries);
        // later segments win: every entry in segment order (stable: block order kept)
        entries.sort_by_key(|(seg, _)| *seg);
        // local segments not uploaded: their entries are in the journal from the checkpoint on
        for s in st.segments.map.values_mut() {
            if s.uploaded.is_none() {
                s.first_pos = ckpt_pos;
            }
        }
    }
    // journal files holding entries: their ids sort after every segment's (they are newer than
    // any segment a compaction could have moved their entries into, and hold the same bytes)
    let jl = journal_index::load(&cfg.journal_dir)?;
    st.segments.map.extend(jl.segments);
    entries.extend(jl.entries);
    let indexed = install_index(&mut st, entries);
    if rebuilt {
        // the manifest's last entries may name entries that were only in the lost journal:
        // report what is stored (auto-recovery copies back the rest)
        for (id, l) in st.ledgers.iter_mut() {
            l.last_entry = st
                .index
                .get(id)
                .and_then(|m| m.last_key())
                .map_or(-1, |e| e as i64);
        }
    }
    let (max_seq, replayed) = replay(cfg, &mut st, ckpt_pos, remote.is_some())?;
    drop_orphans(&mut st);
    for p in journal::list_prefixed(&cfg.journal_dir, "journal-trash-")? {
        std::fs::remove_file(&p).map_err(|e| BookieError::io("remove old journal file", e))?;
    }
    let journal_pool = Arc::new(Mutex::new(journal::list_recyclable(&cfg.journal_dir)?));
    // every replayed record is in the cache; from here the journal restarts in a fresh file
    st.journal_pos = (max_seq + 1, FILE_HEADER_LEN as u64);
    let (jf, journal_error) = match JournalFile::create(
        &cfg.journal_dir,
        max_seq + 1,
        &journal_pool,
        cfg.journal_direct_io,
    ) {
        Ok(jf) => (Some(jf), None),
        Err(e) => {
            tracing::error!(error = %e, "cannot create a journal file; starting read-only");
            (None, Some(e))
        }
    };
    // with object storage the replayed entries' segment starts at the checkpoint position: the
    // journal files from there stay until it is uploaded
    let flushed = if remote.is_some() { ckpt_pos } else { (0, 0) };
    let mut f = Flusher::new(
        cfg,
        max_id + 1,
        ckpt_seq,
        flushed,
        journal_pool.clone(),
        remote.cloned(),
        journal_index::IndexAppender::new(jl.idx_lens),
    );
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
        unsaved_index: st.unsaved_index,
        writer: f,
        journal_pool,
    })
}

/// Installs index entries (in segment order: later ones win); returns how many.
fn install_index(st: &mut State, entries: Vec<(u64, IndexEntry)>) -> usize {
    let mut indexed = 0usize;
    for (seg, e) in entries {
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
    indexed
}

/// Replays the journal from `from`; returns the highest journal file number and the records
/// replayed. `skip_indexed`: adds whose entry a segment already holds only update the ledger
/// (object storage keeps the journal until segments are uploaded, so most replayed adds are
/// already in segments).
fn replay(
    cfg: &StorageConfig,
    st: &mut State,
    from: (u64, u64),
    skip_indexed: bool,
) -> Result<(u64, usize), BookieError> {
    let mut max_seq = from.0;
    let mut replayed = 0usize;
    for (seq, p) in journal::list(&cfg.journal_dir)? {
        max_seq = max_seq.max(seq);
        if seq < from.0 {
            continue;
        }
        let off = if seq == from.0 { from.1 } else { 0 };
        let id = journal_seg::seg_id(seq);
        if cfg.journal_holds_entries
            && !st.segments.map.contains_key(&id)
            && let Some(meta) = journal_index::open_segment(&cfg.journal_dir, seq)
        {
            st.segments.map.insert(id, meta);
        }
        let in_journal = cfg.journal_holds_entries && st.segments.map.contains_key(&id);
        for (rec, at, len) in journal::replay_file(seq, &p, off)? {
            replayed += 1;
            if skip_indexed
                && let JournalRecord::Add {
                    ledger,
                    entry,
                    lac,
                    key,
                    ..
                } = &rec
                && st.index.get(ledger).is_some_and(|m| m.contains_key(*entry))
            {
                st.apply_add_meta(*ledger, *entry, *lac, key);
                continue;
            }
            let loc = (in_journal && matches!(rec, JournalRecord::Add { .. }))
                .then(|| journal_index::loc(seq, at, len));
            st.apply(&rec, loc);
        }
    }
    Ok((max_seq, replayed))
}

/// Drops index entries of ledgers no state knows (deleted before a lost checkpoint).
fn drop_orphans(st: &mut State) {
    let orphans: Vec<u64> = st
        .index
        .keys()
        .filter(|l| !st.ledgers.contains_key(l))
        .copied()
        .collect();
    for l in orphans {
        if let Some(es) = st.index.remove(&l) {
            for loc in es.values() {
                st.segments.dead(&loc);
            }
        }
    }
}
