//! Writing one closed ledger to object storage: entries read from the bookies in batches, packed
//! into blocks, blocks into data objects written create-only as they fill, the index last.
//! Memory: one data object and one read batch at a time.

use bytes::{Bytes, BytesMut};
use strata_objstore::Store;
use strata_proto::{EntryId, LedgerId};

use super::config::OffloadConfig;
use super::error::TierError;
use super::format::{BlockRef, Index, encode_block};
use super::keys::OffloadKeys;
use crate::storage::LedgerStorage;

/// Entries read from the bookies per request.
const READ_BATCH: u64 = 64;

/// What an upload wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    /// Data objects.
    pub parts: u32,
    /// Bytes written (data and index).
    pub bytes: u64,
}

struct Parts<'a> {
    store: &'a Store,
    keys: &'a OffloadKeys,
    buf: BytesMut,
    part: u32,
    written: u64,
    limit: usize,
}

impl Parts<'_> {
    async fn add_block(&mut self, first: u64, entries: &[Bytes]) -> Result<BlockRef, TierError> {
        let block = encode_block(first, entries);
        let r = BlockRef {
            first_entry: first,
            count: entries.len() as u32,
            part: self.part,
            offset: self.buf.len() as u64,
            len: block.len() as u32,
        };
        self.buf.extend_from_slice(&block);
        if self.buf.len() >= self.limit {
            self.flush().await?;
        }
        Ok(r)
    }

    async fn flush(&mut self) -> Result<(), TierError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        self.written += data.len() as u64;
        self.store
            .put_create(&self.keys.data(self.part), data)
            .await?;
        self.part += 1;
        Ok(())
    }
}

/// Uploads entries `0..entries` of `ledger` under `keys`; the index object is written last, so a
/// readable index means every data object is there.
pub async fn upload_ledger(
    store: &Store,
    storage: &dyn LedgerStorage,
    keys: &OffloadKeys,
    ledger: LedgerId,
    entries: u64,
    cfg: &OffloadConfig,
) -> Result<Uploaded, TierError> {
    let mut parts = Parts {
        store,
        keys,
        buf: BytesMut::new(),
        part: 0,
        written: 0,
        limit: cfg.part_bytes.max(1),
    };
    let mut blocks = Vec::new();
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut pending_first = 0u64;
    let mut next = 0u64;
    while next < entries {
        let last = (next + READ_BATCH - 1).min(entries - 1);
        let batch = storage
            .read(ledger, EntryId(next), EntryId(last))
            .await
            .map_err(|e| TierError::Bookies(e.to_string()))?;
        if batch.len() as u64 != last - next + 1 {
            return Err(TierError::Bookies(format!(
                "asked entries {next}..={last} of ledger {ledger}, got {}",
                batch.len()
            )));
        }
        for e in batch {
            if pending.is_empty() {
                pending_first = next;
            }
            pending_bytes += e.len() + 4;
            pending.push(e);
            next += 1;
            if pending_bytes >= cfg.block_bytes {
                blocks.push(parts.add_block(pending_first, &pending).await?);
                pending.clear();
                pending_bytes = 0;
            }
        }
    }
    if !pending.is_empty() {
        blocks.push(parts.add_block(pending_first, &pending).await?);
    }
    parts.flush().await?;
    let index = Index {
        ledger: ledger.0,
        entries,
        parts: parts.part,
        blocks,
    }
    .encode();
    let bytes = parts.written + index.len() as u64;
    store.put_create(&keys.index(), index).await?;
    Ok(Uploaded {
        parts: parts.part,
        bytes,
    })
}
