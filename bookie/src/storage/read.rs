//! The read path: durable queue, write cache, then segments (local files, or ranged GETs of
//! their objects once evicted), every segment read CRC-checked.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use crate::error::BookieError;
use crate::format::journal::JournalRecord;

use super::{Found, Storage, segments};

impl Storage {
    /// Reads one entry (verifying its checksum when it comes from a segment) with the ledger's LAC.
    pub async fn read(&self, ledger: u64, entry: u64) -> Result<(Bytes, i64), BookieError> {
        let (mut v, lac) = self.read_many(ledger, entry, entry, usize::MAX).await?;
        match v.pop() {
            Some((_, p)) => Ok((p, lac)),
            None => Err(BookieError::NoEntry { ledger, entry }),
        }
    }

    /// Reads entries `first..=last` in order, stopping at the first missing one or once `max_bytes`
    /// were collected (at least one entry is returned). Fails with `NoEntry` if `first` is missing.
    pub async fn read_many(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<(Vec<(u64, Bytes)>, i64), BookieError> {
        self.read_many_then(ledger, first, last, max_bytes, || async {})
            .await
    }

    /// `read_many`, running `located` after the first lookup (a test's seam: GC between the
    /// lookup and the file read).
    ///
    /// A lookup hands out an entry's file and offset under the state lock; GC may then move the
    /// entry (compaction) or drop its ledger, and recycle or trim the journal file it was in, so
    /// the read finds other bytes there (`Corrupt`). Such a read is looked up once more: the
    /// entry is read where it is now, or is reported missing. A second `Corrupt` is real.
    async fn read_many_then<F: Future<Output = ()>>(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: usize,
        located: impl FnOnce() -> F,
    ) -> Result<(Vec<(u64, Bytes)>, i64), BookieError> {
        let start = Instant::now();
        let m = &self.shared.metrics;
        let mut located = Some(located);
        let mut retried = false;
        let (out, lac) = loop {
            let (found, lac) = match self.locate(ledger, first, last, max_bytes) {
                Ok(v) => v,
                Err(e) => {
                    if matches!(e, BookieError::NoEntry { .. }) {
                        m.read_errors.inc();
                    }
                    return Err(e);
                }
            };
            if let Some(f) = located.take() {
                f().await;
            }
            match self.fetch(ledger, found).await {
                Ok(v) => break (v, lac),
                Err(BookieError::Corrupt { what, .. }) if !retried => {
                    tracing::debug!(ledger, first, %what, "entry read raced GC; looking it up again");
                    retried = true;
                }
                Err(e) => {
                    m.read_errors.inc();
                    return Err(e);
                }
            }
        };
        let n = out.len() as f64;
        let mut result = Vec::with_capacity(out.len());
        for (e, p, hit) in out {
            if hit {
                m.cache_hits.inc()
            } else {
                m.cache_misses.inc()
            };
            m.read_bytes.inc_by(p.len() as u64);
            result.push((e, p));
        }
        m.read_entries.inc_by(result.len() as u64);
        m.read_latency.observe(start.elapsed().as_secs_f64() / n);
        Ok((result, lac))
    }

    /// Where entries `first..=last` are (stopping at the first missing one or past `max_bytes`),
    /// with the ledger's LAC. Fails with `NoLedger` or `NoEntry` if `first` is nowhere.
    fn locate(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<(Vec<(u64, Found)>, i64), BookieError> {
        // synced but not yet applied entries first: an acknowledged add is either still there or
        // (removed only after it was applied) in the state
        let recent = self.durable_entries(ledger, first, last);
        let st = self.shared.state.lock();
        let lac = match st.ledgers.get(&ledger) {
            Some(l) => l.lac,
            // its first entries are acknowledged and not applied yet
            None if !recent.is_empty() => -1,
            None => return Err(BookieError::NoLedger { ledger }),
        };
        let mut found = vec![];
        let mut bytes = 0usize;
        let mut e = first;
        while e <= last {
            let Some(f) = recent
                .get(&e)
                .map(|p| Found::Cached(p.clone()))
                .or_else(|| st.lookup(ledger, e))
            else {
                break;
            };
            bytes += match &f {
                Found::Cached(p) => p.len(),
                Found::OnDisk(loc, _) | Found::Remote(loc, _) => loc.len as usize,
            };
            found.push((e, f));
            if bytes >= max_bytes || e == u64::MAX {
                break;
            }
            e += 1;
        }
        if found.is_empty() {
            return Err(BookieError::NoEntry {
                ledger,
                entry: first,
            });
        }
        Ok((found, lac))
    }

    /// Entries `first..=last` of `ledger` in synced batches the applier has not applied yet.
    fn durable_entries(&self, ledger: u64, first: u64, last: u64) -> BTreeMap<u64, Bytes> {
        let mut out = BTreeMap::new();
        if self.shared.durable_bytes.load(Ordering::Acquire) == 0 {
            // nothing can be pending: a batch is counted before it is published
            return out;
        }
        let q = self.shared.durable.lock();
        for db in q.iter() {
            for rec in &db.recs {
                if let JournalRecord::Add {
                    ledger: l,
                    entry,
                    payload,
                    ..
                } = rec
                    && *l == ledger
                    && (first..=last).contains(entry)
                {
                    out.insert(*entry, payload.bytes.clone());
                }
            }
        }
        out
    }

    /// The payloads of `found`, in order, with whether each came from memory: local segment
    /// reads on a blocking thread, evicted ones through the object-range cache.
    async fn fetch(
        &self,
        ledger: u64,
        found: Vec<(u64, Found)>,
    ) -> Result<Vec<(u64, Bytes, bool)>, BookieError> {
        let need_disk = found.iter().any(|(_, f)| matches!(f, Found::OnDisk(..)));
        let found = if need_disk {
            tokio::task::spawn_blocking(move || {
                found
                    .into_iter()
                    .map(|(e, f)| match f {
                        Found::OnDisk(loc, file) => segments::read_at(&file, loc, ledger, e)
                            .map(|p| (e, Found::Cached(p.bytes), false)),
                        f => Ok((e, f, true)),
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|_| BookieError::ShuttingDown)??
        } else {
            found.into_iter().map(|(e, f)| (e, f, true)).collect()
        };
        let mut out = Vec::with_capacity(found.len());
        for (e, f, hit) in found {
            match f {
                Found::Cached(p) => out.push((e, p, hit)),
                Found::Remote(loc, obj) => {
                    let remote = self
                        .shared
                        .remote
                        .as_ref()
                        .ok_or(BookieError::NoEntry { ledger, entry: e })?;
                    out.push((e, remote.read(obj, loc, ledger, e).await?, false));
                }
                Found::OnDisk(..) => {
                    return Err(BookieError::Invalid("segment read skipped".into()));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::StorageConfig;
    use crate::metrics::Metrics;

    const KEY: Bytes = Bytes::from_static(b"key");

    fn payload(ledger: u64, entry: u64, len: usize) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (ledger * 31 + entry * 7 + i as u64) as u8)
                .collect::<Vec<_>>(),
        )
    }

    async fn add(s: &Storage, ledger: u64, n: u64, len: usize) {
        for e in 0..n {
            let lac = e as i64 - 1;
            s.add(ledger, e, KEY, lac, payload(ledger, e, len))
                .await
                .unwrap();
        }
    }

    /// A read whose lookup found an entry in a journal file that GC then compacted away and
    /// recycled (new records written over it) reads the entry where compaction moved it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_racing_gc_reads_the_entry_where_it_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = StorageConfig::new(dir.path());
        c.min_free_bytes = 0;
        c.journal_max_file_bytes = 64 << 10;
        let s = Arc::new(Storage::open(c, Arc::new(Metrics::new())).unwrap());
        // ledger 2 (small entries) among ledger 3's large ones: once 3 is deleted, the journal
        // files are mostly dead and compaction moves 2's entries into a segment
        for e in 0..100 {
            s.add(2, e, KEY, e as i64 - 1, payload(2, e, 100))
                .await
                .unwrap();
            s.add(3, e, KEY, e as i64 - 1, payload(3, e, 2000))
                .await
                .unwrap();
        }
        s.flush_now().unwrap();
        s.delete(3).await.unwrap();
        s.flush_now().unwrap();
        let (stale, _) = s.locate(2, 0, 99, usize::MAX).unwrap();
        assert!(stale.iter().all(|(_, f)| matches!(f, Found::OnDisk(..))));
        let gc = || async {
            s.gc_now().unwrap();
            // the reclaimed files are reused: new records overwrite the old ones
            add(&s, 4, 300, 1500).await;
            s.flush_now().unwrap();
        };
        let (got, lac) = s.read_many_then(2, 0, 99, usize::MAX, gc).await.unwrap();
        assert_eq!(lac, 98);
        assert_eq!(got.len(), 100);
        for (e, p) in got {
            assert_eq!(p, payload(2, e, 100), "entry {e}");
        }
        // the first lookup's locations were stale: read there, the entries are gone
        assert!(
            matches!(s.fetch(2, stale).await, Err(BookieError::Corrupt { .. })),
            "the race did not happen"
        );
    }
}
