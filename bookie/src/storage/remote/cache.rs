//! Reads of evicted segments: ranged GETs of fixed-size blocks into a bounded in-memory cache
//! (oldest block out first), with read-ahead of the next blocks once a reader moves on to the
//! next block of a segment (a sequential reader).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::error::BookieError;
use crate::format::FormatError;
use crate::format::object::SegmentObject;

use super::super::segments::Loc;
use super::Remote;

/// (segment, generation, block number).
type BlockKey = (u64, u64, u64);

#[derive(Default)]
struct Inner {
    blocks: HashMap<BlockKey, Arc<OnceCell<Bytes>>>,
    /// Filled blocks, oldest first.
    order: VecDeque<BlockKey>,
    bytes: usize,
    /// Last block read per segment (read-ahead detection).
    last: HashMap<u64, u64>,
}

/// The block cache.
pub(super) struct BlockCache {
    inner: Mutex<Inner>,
    cap: usize,
}

impl BlockCache {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            cap,
        }
    }

    /// The cell of a block, and whether it was already filled.
    fn cell(&self, key: BlockKey) -> (Arc<OnceCell<Bytes>>, bool) {
        let mut g = self.inner.lock();
        let c = g.blocks.entry(key).or_default().clone();
        let filled = c.initialized();
        (c, filled)
    }

    fn filled(&self, key: BlockKey, len: usize) {
        let mut g = self.inner.lock();
        g.order.push_back(key);
        g.bytes += len;
        while g.bytes > self.cap && g.order.len() > 1 {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some(c) = g.blocks.remove(&old) {
                g.bytes = g.bytes.saturating_sub(c.get().map_or(0, Bytes::len));
            }
        }
    }

    /// Records a read of blocks `b0..=b1` of `seg`; returns whether the reader is sequential
    /// (it moved from the previous block on to a new one).
    fn touch(&self, seg: u64, b0: u64, b1: u64) -> bool {
        let mut g = self.inner.lock();
        let prev = g.last.insert(seg, b1);
        if g.last.len() > 4096 {
            g.last.clear();
        }
        prev.is_some_and(|p| p < b1 && p.saturating_add(1) >= b0)
    }

    /// Forgets every block of a segment (its object was deleted).
    pub(super) fn forget(&self, seg: u64) {
        let mut g = self.inner.lock();
        let keys: Vec<BlockKey> = g.blocks.keys().filter(|k| k.0 == seg).copied().collect();
        for k in keys {
            if let Some(c) = g.blocks.remove(&k) {
                g.bytes = g.bytes.saturating_sub(c.get().map_or(0, Bytes::len));
            }
        }
        g.order.retain(|k| k.0 != seg);
        g.last.remove(&seg);
    }
}

/// One block of `obj` (from the cache or a ranged GET).
async fn block(remote: &Remote, obj: SegmentObject, b: u64) -> Result<Bytes, BookieError> {
    let bs = remote.cfg.read_block_bytes.max(4096);
    let key = (obj.segment, obj.generation, b);
    let (cell, hit) = remote.cache.cell(key);
    let m = &remote.metrics;
    if hit {
        m.remote_cache_hits.inc();
    }
    let fetched = std::sync::atomic::AtomicBool::new(false);
    let data = cell
        .get_or_try_init(|| async {
            m.remote_cache_misses.inc();
            let start = b * bs;
            let end = (start + bs).min(obj.seg_len);
            fetched.store(true, std::sync::atomic::Ordering::Relaxed);
            remote
                .store()
                .get_range(&remote.key(&obj.key()), start..end)
                .await
                .map_err(|e| BookieError::objstore(format!("read segment {}", obj.segment), e))
        })
        .await?
        .clone();
    if fetched.load(std::sync::atomic::Ordering::Relaxed) {
        remote.cache.filled(key, data.len());
    }
    Ok(data)
}

/// The bytes of `loc` in the evicted segment `obj`; starts read-ahead for sequential readers.
pub(super) async fn read_range(
    remote: &Arc<Remote>,
    obj: SegmentObject,
    loc: Loc,
) -> Result<Bytes, BookieError> {
    let end = loc.offset.checked_add(u64::from(loc.len));
    let Some(end) = end.filter(|e| *e <= obj.seg_len && loc.len > 0) else {
        return Err(BookieError::Corrupt {
            what: format!("segment {} at {}", loc.seg, loc.offset),
            source: FormatError::Malformed("index points past the segment object"),
        });
    };
    let bs = remote.cfg.read_block_bytes.max(4096);
    let (b0, b1) = (loc.offset / bs, (end - 1) / bs);
    if remote.cache.touch(obj.segment, b0, b1) {
        let last = (obj.seg_len.saturating_sub(1)) / bs;
        for b in (b1 + 1)..=(b1 + remote.cfg.read_ahead_blocks).min(last) {
            let r = remote.clone();
            remote.spawn(async move {
                if let Err(e) = block(&r, obj, b).await {
                    tracing::debug!(segment = obj.segment, block = b, error = %e, "read-ahead failed");
                }
            });
        }
    }
    if b0 == b1 {
        let data = block(remote, obj, b0).await?;
        let from = (loc.offset - b0 * bs) as usize;
        return slice(&data, from, loc.len as usize, loc);
    }
    let mut out = BytesMut::with_capacity(loc.len as usize);
    for b in b0..=b1 {
        let data = block(remote, obj, b).await?;
        let from = if b == b0 {
            (loc.offset - b0 * bs) as usize
        } else {
            0
        };
        let want = (loc.len as usize - out.len()).min(data.len().saturating_sub(from));
        out.extend_from_slice(&slice(&data, from, want, loc)?);
    }
    Ok(out.freeze())
}

fn slice(data: &Bytes, from: usize, len: usize, loc: Loc) -> Result<Bytes, BookieError> {
    if from.checked_add(len).is_some_and(|e| e <= data.len()) {
        Ok(data.slice(from..from + len))
    } else {
        Err(BookieError::Corrupt {
            what: format!("segment {} at {}", loc.seg, loc.offset),
            source: FormatError::Truncated,
        })
    }
}
