//! Recovery with object storage: which segments are uploaded (the local manifest, or on an
//! empty disk the latest manifest in the store), the index blocks of the evicted ones (one
//! ranged GET each), and on an empty disk the ledger states the manifest recorded.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;

use crate::error::BookieError;
use crate::format::index::{self, IndexEntry};
use crate::format::object::{Manifest, SegmentObject};

use super::super::State;
use super::super::segments::{SegMeta, idx_path, remove};
use super::{LOCAL_MANIFEST, Remote};

/// What attaching found.
pub(in crate::storage) struct Attached {
    /// Index entries of evicted segments, as `(segment, entry)`.
    pub entries: Vec<(u64, IndexEntry)>,
    /// Highest segment id the manifest names.
    pub max_seg: u64,
    /// Whether the state came from the store (empty local disk).
    pub rebuilt: bool,
    /// Uploaded segments whose local copy was incomplete (dropped: the object is the segment);
    /// index entries loaded from their local files must be discarded.
    pub replaced: HashSet<u64>,
}

/// Marks uploaded segments in `st` (loaded from the local disk) and adds the evicted ones;
/// sets this life's generation and manifest sequence. `have_checkpoint`: the local disk has a
/// checkpoint (without one, the bookie lost its disk or is new: the latest manifest in the
/// store, if any, gives the ledger states). Blocking.
pub(in crate::storage) fn attach(
    remote: &Arc<Remote>,
    st: &mut State,
    have_checkpoint: bool,
) -> Result<Attached, BookieError> {
    let local = match std::fs::read(remote.ledger_dir.join(LOCAL_MANIFEST)) {
        Ok(b) => {
            Some(
                Manifest::decode(&Bytes::from(b)).map_err(|source| BookieError::Corrupt {
                    what: "local manifest".into(),
                    source,
                })?,
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(BookieError::io("read local manifest", e)),
    };
    // the store's view: highest generation and manifest used so far (best effort with a disk)
    let r = remote.clone();
    let listed = remote.block(async move { r.store().list(&r.prefix).await })?;
    let listed = match listed {
        Ok(l) => l,
        Err(e) if have_checkpoint => {
            tracing::warn!(error = %e, "cannot list the object store at start; using the local manifest");
            vec![]
        }
        Err(e) => {
            return Err(BookieError::objstore(
                "list the object store to rebuild an empty bookie",
                e,
            ));
        }
    };
    let max_gen = listed
        .iter()
        .filter_map(|o| SegmentObject::parse_key(&o.key).map(|(_, g)| g))
        .max()
        .unwrap_or(0);
    let mut seqs: Vec<u64> = listed
        .iter()
        .filter_map(|o| Manifest::parse_key(&o.key))
        .collect();
    seqs.sort_unstable();
    let manifest = match local {
        Some(m) => Some(m),
        None if !have_checkpoint => latest(remote, &seqs)?,
        None => None,
    };
    // Without a checkpoint the ledger states come from the manifest, local or not: a rebuild
    // killed (or failed) after it wrote the local manifest and before the first checkpoint leaves
    // exactly that, and the states must not be taken as empty (every entry would then be dropped
    // as an orphan and every object collected as dead). A journal, if any, is replayed whole on
    // top (no checkpoint: from its start).
    let rebuilt = !have_checkpoint && manifest.is_some();
    let (m, seq) = manifest.unwrap_or_default();
    remote.generation.store(
        m.generation.max(max_gen).saturating_add(1),
        Ordering::Release,
    );
    remote.manifest_seq.store(
        seq.max(seqs.last().copied().unwrap_or(0)),
        Ordering::Release,
    );
    if rebuilt {
        st.ledgers = super::super::flusher::ledgers_from(&m.state.ledgers);
        st.tombstones =
            super::super::Tombstones::new(st.tombstones.cap, m.state.deleted.iter().copied());
        st.deleted = m.state.deleted.iter().copied().collect();
        super::super::flusher::write_atomic(&remote.ledger_dir, LOCAL_MANIFEST, &m.encode(seq))?;
        tracing::info!(
            manifest = seq,
            segments = m.segments.len(),
            ledgers = st.ledgers.len(),
            "rebuilding an empty bookie from object storage"
        );
    }
    let mut fetch = vec![];
    let mut max_seg = 0;
    let mut replaced = HashSet::new();
    for o in &m.segments {
        max_seg = max_seg.max(o.segment);
        match st.segments.map.get_mut(&o.segment) {
            Some(s) if s.file.is_some() && local_copy_whole(&remote.ledger_dir, o, s.size) => {
                s.uploaded = Some(*o)
            }
            Some(s) if s.file.is_some() => {
                // an eviction stopped between its two unlinks (index first), or a damaged copy:
                // the leftover must not shadow the object (its entries would read as missing and
                // the object, seemingly dead, be deleted)
                tracing::warn!(
                    segment = o.segment,
                    "local copy of an uploaded segment is incomplete; reading it from object storage"
                );
                st.segments.map.remove(&o.segment);
                remove(&remote.ledger_dir, o.segment)?;
                replaced.insert(o.segment);
                fetch.push(*o);
            }
            _ => fetch.push(*o),
        }
    }
    let r = remote.clone();
    let fetched = remote.block(async move {
        futures::stream::iter(fetch)
            .map(|o| {
                let r = r.clone();
                async move { fetch_index(&r, o).await.map(|es| (o, es)) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
    })?;
    let mut entries = vec![];
    for f in fetched {
        let (o, es) = f?;
        let ledgers: HashSet<u64> = es.iter().map(|e| e.ledger).collect();
        st.segments
            .map
            .insert(o.segment, SegMeta::evicted(o.seg_len, ledgers, o));
        entries.extend(es.into_iter().map(|e| (o.segment, e)));
    }
    entries.sort_by_key(|(seg, _)| *seg);
    Ok(Attached {
        entries,
        max_seg,
        rebuilt,
        replaced,
    })
}

/// Whether the local files of uploaded segment `o` are exactly what was uploaded (a sealed
/// segment never changes): segment file of `size` bytes and index file of the object's lengths.
fn local_copy_whole(dir: &std::path::Path, o: &SegmentObject, size: u64) -> bool {
    size == o.seg_len
        && std::fs::metadata(idx_path(dir, o.segment)).is_ok_and(|m| m.len() == o.idx_len)
}

/// The newest manifest that decodes, of those listed.
fn latest(remote: &Arc<Remote>, seqs: &[u64]) -> Result<Option<(Manifest, u64)>, BookieError> {
    for seq in seqs.iter().rev() {
        let r = remote.clone();
        let key = remote.key(&Manifest::key(*seq));
        let got = remote.block(async move { r.store().get(&key).await })?;
        let bytes = got.map_err(|e| BookieError::objstore(format!("read manifest {seq}"), e))?;
        match Manifest::decode(&bytes) {
            Ok(m) => return Ok(Some(m)),
            Err(e) => {
                tracing::error!(manifest = seq, error = %e, "manifest unreadable; trying the previous one")
            }
        }
    }
    Ok(None)
}

/// The index entries of an uploaded segment (one ranged GET of its index part).
async fn fetch_index(remote: &Remote, o: SegmentObject) -> Result<Vec<IndexEntry>, BookieError> {
    let key = remote.key(&o.key());
    let b = remote
        .store()
        .get_range(&key, o.seg_len..o.seg_len + o.idx_len)
        .await
        .map_err(|e| BookieError::objstore(format!("read index of segment {}", o.segment), e))?;
    let corrupt = |source| BookieError::Corrupt {
        what: format!("index of segment object {key}"),
        source,
    };
    let (id, es, _, stop) = index::decode_file(&b).map_err(corrupt)?;
    if id != o.segment {
        return Err(corrupt(crate::format::FormatError::Malformed(
            "index belongs to another segment",
        )));
    }
    if let Some(e) = stop {
        // the local index had a torn tail when uploaded: those entries came from the journal
        tracing::warn!(segment = o.segment, error = %e, "uploaded index has a torn tail");
    }
    Ok(es
        .into_iter()
        .filter(|e| {
            e.offset
                .checked_add(u64::from(e.len))
                .is_some_and(|end| end <= o.seg_len)
        })
        .collect())
}
