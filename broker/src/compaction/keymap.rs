//! Phase one of compaction with bounded memory: which message is the latest of each key.
//!
//! The key map of one pass holds at most `max_bytes` (keys and positions). Keys are split
//! into buckets by hash (`hash % modulus == residue`, moduli powers of two); a pass reads the
//! topic up to the horizon and maps only its bucket's keys. A pass that overflows the budget is
//! abandoned and its bucket split in two, so every key ends up in exactly one completed pass
//! whatever the number of keys — at the cost of one more read of the topic per bucket. Each
//! completed pass writes its kept positions, sorted, to a spill file; phase two merges them.

use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use super::messages::{EntryKind, classify};
use super::{CompactionError, Scan};
use crate::position::Position;

/// A kept message: its entry and its index in the entry's batch.
pub type Kept = (Position, u32);

/// Bytes one map slot costs besides its key (position, index, flag, hash-table overhead).
const SLOT_BYTES: usize = 64;
/// Entries per read of the topic.
pub const READ_BATCH: u64 = 256;
/// One spilled record: ledger u64, entry i64, index u32.
const RECORD: usize = 20;

fn bucket_of(key: &str, modulus: u64) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() % modulus
}

/// What phase one found.
pub struct Phase1 {
    /// One sorted spill file per completed bucket.
    pub files: Vec<PathBuf>,
    /// Passes over the topic (completed and abandoned).
    pub passes: u32,
    /// The largest key map of a pass, in bytes.
    pub peak_bytes: usize,
    /// Distinct keys kept (not removed by a tombstone).
    pub kept: u64,
    /// Chunks left out.
    pub chunks: u64,
}

/// Runs phase one over `scan` (the topic up to the horizon), spilling into `dir`.
pub async fn phase1(
    scan: &dyn Scan,
    dir: &Path,
    max_bytes: usize,
) -> Result<Phase1, CompactionError> {
    let mut todo = vec![(1u64, 0u64)];
    let mut out = Phase1 {
        files: Vec::new(),
        passes: 0,
        peak_bytes: 0,
        kept: 0,
        chunks: 0,
    };
    while let Some((modulus, residue)) = todo.pop() {
        out.passes += 1;
        let mut map: HashMap<String, (Position, u32, bool)> = HashMap::new();
        let mut bytes = 0usize;
        let mut overflow = false;
        let mut chunks = 0u64;
        let mut pos = Position::EARLIEST;
        'read: loop {
            let batch = scan.read_after(pos, READ_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            for (p, entry) in batch {
                pos = p;
                match classify(&entry) {
                    EntryKind::Messages(msgs) => {
                        for m in msgs {
                            let Some(k) = m.key else { continue };
                            if bucket_of(&k, modulus) != residue {
                                continue;
                            }
                            let len = k.len();
                            if map.insert(k, (p, m.index, m.tombstone)).is_none() {
                                bytes += len + SLOT_BYTES;
                                if bytes > max_bytes {
                                    overflow = true;
                                    break 'read;
                                }
                            }
                        }
                    }
                    EntryKind::Chunk => chunks += 1,
                    EntryKind::Opaque | EntryKind::Invalid => {}
                }
            }
        }
        out.peak_bytes = out.peak_bytes.max(bytes);
        if overflow {
            todo.push((modulus * 2, residue));
            todo.push((modulus * 2, residue + modulus));
            continue;
        }
        out.chunks = chunks;
        let mut kept: Vec<Kept> = map
            .into_values()
            .filter(|(_, _, tombstone)| !tombstone)
            .map(|(p, i, _)| (p, i))
            .collect();
        kept.sort_unstable();
        out.kept += kept.len() as u64;
        let file = dir.join(format!("bucket-{}.kept", out.files.len()));
        spill(&file, &kept).await?;
        out.files.push(file);
    }
    Ok(out)
}

async fn spill(path: &Path, kept: &[Kept]) -> Result<(), CompactionError> {
    let f = tokio::fs::File::create(path).await?;
    let mut w = BufWriter::new(f);
    for (p, i) in kept {
        w.write_u64(p.ledger).await?;
        w.write_i64(p.entry).await?;
        w.write_u32(*i).await?;
    }
    w.flush().await?;
    Ok(())
}

/// The kept messages of every bucket, merged in position order.
pub struct KeptStream {
    readers: Vec<BufReader<tokio::fs::File>>,
    heap: BinaryHeap<std::cmp::Reverse<(Kept, usize)>>,
}

impl KeptStream {
    /// Opens the spill files.
    pub async fn open(files: &[PathBuf]) -> Result<KeptStream, CompactionError> {
        let mut s = KeptStream {
            readers: Vec::with_capacity(files.len()),
            heap: BinaryHeap::new(),
        };
        for f in files {
            s.readers
                .push(BufReader::new(tokio::fs::File::open(f).await?));
        }
        for i in 0..s.readers.len() {
            s.refill(i).await?;
        }
        Ok(s)
    }

    async fn refill(&mut self, i: usize) -> Result<(), CompactionError> {
        let mut rec = [0u8; RECORD];
        let Some(r) = self.readers.get_mut(i) else {
            return Ok(());
        };
        match r.read_exact(&mut rec).await {
            Ok(_) => {
                let mut b = &rec[..];
                let ledger = bytes::Buf::get_u64(&mut b);
                let entry = bytes::Buf::get_i64(&mut b);
                let index = bytes::Buf::get_u32(&mut b);
                self.heap.push(std::cmp::Reverse((
                    (Position::new(ledger, entry), index),
                    i,
                )));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The batch indexes kept in entry `pos` (sorted; empty when none). Calls must come in
    /// increasing `pos` order.
    pub async fn take(&mut self, pos: Position) -> Result<Vec<u32>, CompactionError> {
        let mut out = Vec::new();
        while let Some(std::cmp::Reverse(((p, idx), i))) = self.heap.peek().copied() {
            if p > pos {
                break;
            }
            self.heap.pop();
            if p == pos {
                out.push(idx);
            }
            self.refill(i).await?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
