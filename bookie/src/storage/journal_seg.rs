//! Journal files that hold entries: each entry written to the device once.
//!
//! With `StorageConfig::journal_holds_entries` nothing is copied into segments: the journal file
//! an add lands in is a *journal segment*, the applier points the in-memory index at the add's
//! record there (no write cache), and a flush appends those locations to the file's index
//! (`journal-<seq>.idx`, the segment index format with the journal segment's id). A journal
//! segment is read, garbage collected and compacted like a segment (its records are journal
//! frames, seeded with the file's sequence), and kept past checkpoints until GC reclaims it. Ids of journal segments are [`JOURNAL_SEG`] + the file's sequence, above every
//! segment id. Loading and writing their index files: [`super::journal_index`].
//!
//! Invariants:
//! - An index block is written and synced only for records already synced (they were
//!   acknowledged), and the checkpoint that lets replay skip those records only after it (the
//!   entries a flush saves were taken with the journal position it checkpoints, under one lock).
//! - A journal file is reclaimed only when its sequence is below the last checkpoint's (replay
//!   never needs it) and no index entry points into it; its index file goes first, then the file
//!   (recycled or freed), so a crash in between leaves a journal file without an index, which the
//!   next checkpoint frees like any journal file before it (or, were the two unsynced removals
//!   kept out of order, an index without its file, which loading ignores).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::BookieError;
use crate::format::journal::JournalRecord;
use crate::format::{FormatError, Payload};

/// Segment id of journal file 0; journal file `seq` is segment `JOURNAL_SEG + seq`.
pub const JOURNAL_SEG: u64 = 1 << 62;

/// The segment id of journal file `seq`.
pub(super) fn seg_id(seq: u64) -> u64 {
    JOURNAL_SEG | seq
}

/// The journal sequence of segment `id`, if it is a journal segment.
pub(super) fn seq_of(id: u64) -> Option<u64> {
    (id >= JOURNAL_SEG).then_some(id & !JOURNAL_SEG)
}

/// Path of the index of journal file `seq`.
pub(super) fn idx_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:020}.idx"))
}

/// Decodes and verifies the add record `buf` read from journal file `seq`
/// (`len`: the frame length the index gives, `offset` only names the place in errors).
pub(super) fn decode_at(
    buf: &Bytes,
    seq: u64,
    offset: u64,
    len: u32,
    ledger: u64,
    entry: u64,
) -> Result<Payload, BookieError> {
    let corrupt = |source| BookieError::Corrupt {
        what: format!("journal file {seq} at {offset}"),
        source,
    };
    match JournalRecord::decode(buf, seq).map_err(corrupt)? {
        (
            JournalRecord::Add {
                ledger: l,
                entry: e,
                payload,
                ..
            },
            used,
        ) if used == len as usize && l == ledger && e == entry => Ok(payload),
        _ => Err(corrupt(FormatError::Malformed(
            "journal record kind, ids or length do not match the index",
        ))),
    }
}
