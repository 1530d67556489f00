//! The two-phase compactor: phase one in [`super::keymap`], then phase two here (write the
//! kept messages to a new ledger, in order), then the switch to the new compacted ledger.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::try_join_all;
use strata_common::clock::now_ms;
use strata_meta::model::CompactionInfo;
use strata_proto::LedgerId;
use tracing::{info, warn};

use super::keymap::{KeptStream, READ_BATCH, phase1};
use super::messages::{EntryKind, classify, retain};
use super::view::CompactedView;
use super::{COMPACTION_CURSOR, CompactionError, LedgerScan, Scan, format};
use crate::position::Position;
use crate::storage::{CreateOptions, LedgerStorage, LedgerWriter};
use crate::subscription::{InitialPosition, SeekTarget};
use crate::topic::Topic;

/// Adds in flight while writing the compacted ledger.
const PIPELINE: usize = 256;

/// What one compaction did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The new view.
    pub view: CompactedView,
    /// Passes over the topic in phase one.
    pub passes: u32,
    /// The largest key map of a pass (bytes).
    pub peak_key_map_bytes: usize,
    /// Chunks left out.
    pub chunks: u64,
}

/// A directory for spill files, removed when dropped.
struct SpillDir(PathBuf);

impl SpillDir {
    async fn new() -> Result<SpillDir, CompactionError> {
        let d = std::env::temp_dir().join(format!("strata-compaction-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&d).await?;
        Ok(SpillDir(d))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        // Small files; removing them here is cheaper than a task.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Phases one and two over `scan`: writes the compacted ledger and returns its view.
pub async fn write_compacted(
    scan: &dyn Scan,
    horizon: Position,
    storage: &dyn LedgerStorage,
    max_key_map_bytes: usize,
) -> Result<Report, CompactionError> {
    let dir = SpillDir::new().await?;
    let p1 = phase1(scan, &dir.0, max_key_map_bytes).await?;
    let mut kept = KeptStream::open(&p1.files).await?;
    let writer = storage.create(CreateOptions::default()).await?;
    let entries = match phase2(scan, &mut kept, writer.as_ref()).await {
        Ok(n) => n,
        Err(e) => {
            let _ = writer.close().await;
            let _ = storage.delete(writer.ledger_id()).await;
            return Err(e);
        }
    };
    writer.close().await?;
    Ok(Report {
        view: CompactedView {
            ledger: writer.ledger_id().0,
            entries,
            horizon,
        },
        passes: p1.passes,
        peak_key_map_bytes: p1.peak_bytes,
        chunks: p1.chunks,
    })
}

async fn phase2(
    scan: &dyn Scan,
    kept: &mut KeptStream,
    writer: &dyn LedgerWriter,
) -> Result<u64, CompactionError> {
    let mut pending = Vec::with_capacity(PIPELINE);
    let mut written = 0u64;
    let mut pos = Position::EARLIEST;
    loop {
        let batch = scan.read_after(pos, READ_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for (p, entry) in batch {
            pos = p;
            let keep = kept.take(p).await?;
            let out = match classify(&entry) {
                EntryKind::Messages(_) if !keep.is_empty() => retain(&entry, &keep),
                EntryKind::Opaque => Some(entry),
                _ => None,
            };
            if let Some(e) = out {
                pending.push(writer.add(format::encode(p, &e)));
                written += 1;
            }
            if pending.len() >= PIPELINE {
                try_join_all(pending.drain(..)).await?;
            }
        }
    }
    try_join_all(pending).await?;
    Ok(written)
}

/// Compacts `topic` up to its current last entry and switches readers to the new view.
pub async fn compact(
    topic: &Topic,
    storage: &Arc<dyn LedgerStorage>,
    max_key_map_bytes: usize,
) -> Result<Report, CompactionError> {
    let ml = topic.ledger();
    let horizon = ml.last_confirmed();
    let scan = LedgerScan { ml, horizon };
    let report = write_compacted(&scan, horizon, storage.as_ref(), max_key_map_bytes).await?;
    let v = report.view;
    let meta = topic.metadata();
    let key = meta.paths().compaction(&topic.name().meta_path());
    let mut previous = None;
    meta.update(&key, |cur: Option<CompactionInfo>| {
        previous = cur.and_then(|c| c.ledger_id);
        Ok(Some(CompactionInfo {
            ledger_id: Some(v.ledger),
            entries: v.entries,
            horizon: Some(v.horizon),
            compacted_at_ms: now_ms(),
        }))
    })
    .await?;
    topic.compaction().set_view(v);
    // The compactor's cursor: the entries after the horizon stay for compacted readers.
    let cursor = topic
        .subscribe(COMPACTION_CURSOR, true, InitialPosition::Earliest)
        .await?;
    cursor
        .seek(SeekTarget::Position(Position::new(
            v.horizon.ledger,
            v.horizon.entry + 1,
        )))
        .await?;
    cursor.flush().await;
    if let Some(old) = previous.filter(|o| *o != v.ledger)
        && let Err(e) = storage.delete(LedgerId(old)).await
    {
        warn!(topic = %topic.name(), ledger = old, error = %e, "delete of the previous compacted ledger failed");
    }
    if report.chunks > 0 {
        warn!(topic = %topic.name(), chunks = report.chunks, "chunked messages are not compacted: left out of the compacted view");
    }
    info!(topic = %topic.name(), ledger = v.ledger, entries = v.entries, horizon = %v.horizon, passes = report.passes, "topic compacted");
    Ok(report)
}
