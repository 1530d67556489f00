//! The uploader task: uploads sealed segments, commits them in a manifest, deletes objects
//! whose entries are all dead and sweeps what no manifest names (see the module invariants in
//! `remote/mod.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use strata_objstore::ObjStoreError;

use crate::error::BookieError;
use crate::format::object::{Manifest, SegmentObject};

use super::super::Shared;
use super::super::journal_seg;
use super::super::segments::{idx_path, seg_path};
use super::{LOCAL_MANIFEST, Remote};

/// Starts the uploader on the remote runtime; [`Remote::shutdown`] stops it.
pub(in crate::storage) fn start_uploader(shared: Arc<Shared>) {
    let Some(remote) = shared.remote.clone() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    *remote.uploader_done.lock() = Some(rx);
    let r = remote.clone();
    remote.handle.spawn(async move {
        let _done = tx;
        let cancel = r.cancel.clone();
        tokio::select! {
            () = cancel.cancelled() => {}
            () = run(shared, r) => {}
        }
    });
}

async fn run(shared: Arc<Shared>, remote: Arc<Remote>) {
    let mut last_sweep: Option<Instant> = None;
    // the first manifest of this life records its generation (and the sweep only ever runs
    // against a manifest this process wrote: everything it keeps is in the latest manifest)
    let mut committed = false;
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                () = remote.wake.notified() => {}
                () = tokio::time::sleep(remote.cfg.upload_interval) => {}
            }
        }
        first = false;
        if !committed {
            match commit(&shared, &remote, &[], &HashSet::new()).await {
                Ok(()) => committed = true,
                Err(e) => {
                    remote.metrics.remote_upload_failures.inc();
                    if !remote.failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(error = %e, "writing the manifest failed; retrying");
                    }
                    continue;
                }
            }
        }
        match upload_pending(&shared, &remote).await {
            Err(e) => {
                remote.metrics.remote_upload_failures.inc();
                if !remote.failing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "segment upload failed; retrying");
                }
                continue;
            }
            Ok(()) => {
                if remote.failing.swap(false, Ordering::AcqRel) {
                    tracing::info!("segment uploads succeed again");
                }
            }
        }
        // only once nothing sealed and live waits for upload: that is what makes the in-memory
        // `moved_into` of compacted segments safe across restarts (after one, every segment that
        // received moved entries is sealed and uploaded above before anything is collected)
        if let Err(e) = collect(&shared, &remote).await {
            tracing::warn!(error = %e, "deleting dead segment objects failed");
            continue;
        }
        let asked = remote.sweep_requested.swap(false, Ordering::AcqRel);
        if asked || last_sweep.is_none_or(|t| t.elapsed() >= shared.cfg.gc_interval) {
            match sweep(&shared, &remote).await {
                Ok(()) => last_sweep = Some(Instant::now()),
                Err(e) => tracing::warn!(error = %e, "object sweep failed"),
            }
        }
    }
}

/// Uploads and commits every sealed segment not uploaded yet, oldest first: up to
/// `upload_concurrency` objects put at once, then one manifest committing those that landed.
async fn upload_pending(shared: &Shared, remote: &Remote) -> Result<(), BookieError> {
    loop {
        let next: Vec<u64> = {
            let st = shared.state.lock();
            let cur = st.segments.current;
            st.segments
                .map
                .iter()
                // journal segments (left by a run without object storage) stay local
                .filter(|(id, s)| {
                    s.uploaded.is_none()
                        && s.file.is_some()
                        && Some(**id) != cur
                        && s.live > 0
                        && journal_seg::seq_of(**id).is_none()
                })
                .map(|(id, _)| *id)
                .take(remote.cfg.upload_concurrency.max(1))
                .collect()
        };
        if next.is_empty() {
            remote.metrics.remote_pending_bytes.set(0);
            return Ok(());
        }
        let start = Instant::now();
        let results =
            futures::future::join_all(next.iter().map(|id| put_object(remote, *id))).await;
        let mut landed = vec![];
        let mut failed = None;
        for r in results {
            match r {
                Ok(Some(obj)) => landed.push(obj),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        if !landed.is_empty() {
            // every object that landed is committed; a failed put may still have landed (its
            // segment is put again, under the next generation if needed): the sweep removes it
            commit(shared, remote, &landed, &HashSet::new()).await?;
            let m = &remote.metrics;
            for obj in &landed {
                m.remote_upload_latency
                    .observe(start.elapsed().as_secs_f64());
                m.remote_uploaded_bytes.inc_by(obj.object_len());
                m.remote_uploaded_segments.inc();
                tracing::debug!(
                    segment = obj.segment,
                    bytes = obj.object_len(),
                    "segment uploaded"
                );
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
}

/// Reads sealed segment `id` with its index and puts it as a new object; `None` if the segment
/// was reclaimed meanwhile.
async fn put_object(remote: &Remote, id: u64) -> Result<Option<SegmentObject>, BookieError> {
    let dir = remote.ledger_dir.clone();
    let generation = remote.generation();
    // one buffer of the object's final size, filled by one read of each file: segment ‖ index ‖
    // footer (no growth, no second copy of the segment)
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut seg = std::fs::File::open(seg_path(&dir, id))?;
        let mut idx = std::fs::File::open(idx_path(&dir, id))?;
        let (seg_len, idx_len) = (seg.metadata()?.len(), idx.metadata()?.len());
        let obj = SegmentObject {
            segment: id,
            generation,
            seg_len,
            idx_len,
        };
        let footer = obj.encode_footer();
        let total = usize::try_from(obj.object_len()).map_err(std::io::Error::other)?;
        let mut body = Vec::with_capacity(total.max(footer.len()));
        (&mut seg).take(seg_len).read_to_end(&mut body)?;
        (&mut idx).take(idx_len).read_to_end(&mut body)?;
        if body.len() as u64 != seg_len + idx_len {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        body.extend_from_slice(&footer);
        Ok::<_, std::io::Error>((obj, body))
    })
    .await
    .map_err(|_| BookieError::ShuttingDown)?;
    let (obj, body) = match read {
        Ok(x) => x,
        // reclaimed meanwhile
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BookieError::io(format!("read segment {id} for upload"), e)),
    };
    match remote
        .store()
        .put_create(&remote.key(&obj.key()), Bytes::from(body))
        .await
    {
        Ok(()) => Ok(Some(obj)),
        Err(ObjStoreError::AlreadyExists(k)) => {
            // someone (an earlier life of this bookie) used this generation: take the next one
            let _ = remote.generation.compare_exchange(
                generation,
                generation + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            Err(BookieError::objstore(
                "upload segment",
                ObjStoreError::AlreadyExists(k),
            ))
        }
        Err(e) => Err(BookieError::objstore(format!("upload segment {id}"), e)),
    }
}

/// Writes the next manifest (every uploaded segment, plus `add`, minus `remove`; ledger states),
/// then its local copy; then marks `add` uploaded.
async fn commit(
    shared: &Shared,
    remote: &Remote,
    add: &[SegmentObject],
    remove: &HashSet<u64>,
) -> Result<(), BookieError> {
    let manifest = {
        let st = shared.state.lock();
        let mut segments: Vec<SegmentObject> = st
            .segments
            .map
            .iter()
            .filter(|(id, _)| !remove.contains(id))
            .filter_map(|(_, s)| s.uploaded)
            .collect();
        segments.extend(
            add.iter()
                .filter(|o| st.segments.map.contains_key(&o.segment))
                .copied(),
        );
        segments.sort_by_key(|o| o.segment);
        Manifest {
            generation: remote.generation(),
            segments,
            state: st.durable_record((0, 0)),
        }
    };
    let mut bytes = Bytes::new();
    for _ in 0..16 {
        let seq = remote.manifest_seq.load(Ordering::Acquire) + 1;
        bytes = Bytes::from(manifest.encode(seq));
        match remote
            .store()
            .put_create(&remote.key(&Manifest::key(seq)), bytes.clone())
            .await
        {
            Ok(()) => {
                remote.manifest_seq.store(seq, Ordering::Release);
                *remote.named.lock() = manifest
                    .segments
                    .iter()
                    .map(|o| (o.segment, o.generation))
                    .collect();
                break;
            }
            // written by an earlier life whose local copy is older: skip past it
            Err(ObjStoreError::AlreadyExists(_)) => {
                remote.manifest_seq.store(seq, Ordering::Release);
                bytes = Bytes::new();
            }
            Err(e) => return Err(BookieError::objstore("write manifest", e)),
        }
    }
    if bytes.is_empty() {
        return Err(BookieError::Invalid("no free manifest sequence".into()));
    }
    let dir = remote.ledger_dir.clone();
    remote
        .file_op(move || super::super::flusher::write_atomic(&dir, LOCAL_MANIFEST, &bytes))
        .await?;
    let mut st = shared.state.lock();
    for o in add {
        if let Some(s) = st.segments.map.get_mut(&o.segment) {
            s.uploaded = Some(*o);
        }
    }
    Ok(())
}

/// Deletes uploaded segments with no live entry: manifest without them first, then the objects
/// and local files.
async fn collect(shared: &Shared, remote: &Remote) -> Result<(), BookieError> {
    let doomed: HashSet<u64> = {
        let st = shared.state.lock();
        let cur = st.segments.current;
        st.segments
            .map
            .iter()
            .filter(|(id, s)| s.uploaded.is_some() && s.live == 0 && Some(**id) != cur)
            // compacted: the moved entries must be committed in their new objects first
            .filter(|(id, _)| !st.segments.moved_not_uploaded(**id))
            .map(|(id, _)| *id)
            .collect()
    };
    if doomed.is_empty() {
        return Ok(());
    }
    commit(shared, remote, &[], &doomed).await?;
    let removed: Vec<(u64, SegmentObject, bool, u64)> = {
        let mut st = shared.state.lock();
        let mut out = vec![];
        for id in &doomed {
            if let Some(s) = st.segments.map.remove(id)
                && let Some(o) = s.uploaded
            {
                out.push((*id, o, s.file.is_some(), s.size));
            }
        }
        out
    };
    for (id, obj, local, size) in removed {
        remote.cache.forget(id);
        if local {
            let dir = remote.ledger_dir.clone();
            remote
                .file_op(move || super::super::segments::remove(&dir, id))
                .await?;
        }
        // after the commit: a failure here leaves an unreferenced object for the sweep
        if let Err(e) = remote.store().delete(&remote.key(&obj.key())).await {
            tracing::warn!(segment = id, error = %e, "deleting a dead segment object failed; the sweep retries");
        }
        remote.metrics.gc_reclaimed_bytes.inc_by(size);
        tracing::info!(segment = id, bytes = size, "segment object deleted");
    }
    Ok(())
}

/// Removes segment objects no manifest names (crash leftovers) and manifests older than the
/// previous one.
async fn sweep(shared: &Shared, remote: &Remote) -> Result<(), BookieError> {
    let listed = remote
        .store()
        .list(&remote.prefix)
        .await
        .map_err(|e| BookieError::objstore("list bookie objects", e))?;
    let in_memory = || -> HashSet<(u64, u64)> {
        let st = shared.state.lock();
        st.segments
            .map
            .values()
            .filter_map(|s| s.uploaded.map(|o| (o.segment, o.generation)))
            .collect()
    };
    let mut referenced = in_memory();
    // a segment reclaimed while the latest manifest was being written is still named by it:
    // write a manifest without it first, so that the sweep never deletes what the latest
    // manifest names (a restart would need it)
    if !remote.named.lock().is_subset(&referenced) {
        commit(shared, remote, &[], &HashSet::new()).await?;
        referenced = in_memory();
    }
    referenced.extend(remote.named.lock().iter().copied());
    let seq = remote.manifest_seq.load(Ordering::Acquire);
    let mut removed = 0usize;
    for o in listed {
        let stale = match (
            SegmentObject::parse_key(&o.key),
            Manifest::parse_key(&o.key),
        ) {
            (Some(sg), _) => o.key.contains("/segments/") && !referenced.contains(&sg),
            (None, Some(s)) => s + 1 < seq,
            (None, None) => false,
        };
        if stale {
            remote
                .store()
                .delete(&o.key)
                .await
                .map_err(|e| BookieError::objstore("delete leftover object", e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "swept unreferenced objects");
    }
    Ok(())
}
