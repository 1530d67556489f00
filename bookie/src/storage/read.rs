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
        let start = Instant::now();
        let m = &self.shared.metrics;
        // synced but not yet applied entries first: an acknowledged add is either still there or
        // (removed only after it was applied) in the state
        let recent = self.durable_entries(ledger, first, last);
        let (found, lac) = {
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
            (found, lac)
        };
        if found.is_empty() {
            m.read_errors.inc();
            return Err(BookieError::NoEntry {
                ledger,
                entry: first,
            });
        }
        let out = match self.fetch(ledger, found).await {
            Ok(v) => v,
            Err(e) => {
                m.read_errors.inc();
                return Err(e);
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
                {
                    if *l == ledger && (first..=last).contains(entry) {
                        out.insert(*entry, payload.bytes.clone());
                    }
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
