//! The typed layer: where things live ([`Paths`]), what they look like ([`types`]), how they are
//! serialized (versioned JSON, [`codec`]) and helpers to read and CAS-update them
//! ([`MetaClient`]), plus the ledger-id allocator.

mod allocator;
mod bookie_disk;
pub mod codec;
pub mod paths;
mod position;
pub mod types;

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

pub use allocator::LedgerIdAllocator;
pub use bookie_disk::DiskRecord;
pub use codec::{Model, decode, encode};
pub use paths::{Paths, TopicPath, decode_segment, encode_segment};
pub use position::Position;
pub use types::*;

use crate::error::{MetaError, Result};
use crate::retry::{Change, RetryPolicy, update};
use crate::session::{EphemeralOptions, Session};
use crate::store::{EventKind, Expected, MetadataStore, Stat, WatchStream};
use strata_proto::LedgerId;

/// Typed access to the store: models in, models out, CAS with retry for updates.
///
/// # Cancel safety
/// Reads are cancel safe; writes are not (a cancelled write may or may not be applied).
#[derive(Debug, Clone)]
pub struct MetaClient {
    store: Arc<dyn MetadataStore>,
    paths: Paths,
    policy: RetryPolicy,
}

impl MetaClient {
    /// Typed access to `store` under `paths`.
    pub fn new(store: Arc<dyn MetadataStore>, paths: Paths) -> Self {
        Self {
            store,
            paths,
            policy: RetryPolicy::default(),
        }
    }

    /// The untyped store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The key layout.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Reads a model.
    pub async fn get<T: Model>(&self, key: &str) -> Result<Option<(T, Stat)>> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some(v) => Ok(Some((decode(key, &v.value)?, v.stat))),
        }
    }

    /// Reads a model that must exist.
    pub async fn get_required<T: Model>(&self, key: &str) -> Result<(T, Stat)> {
        self.get(key)
            .await?
            .ok_or_else(|| MetaError::NotFound(key.to_owned()))
    }

    /// Writes a model if `expected` holds.
    pub async fn put<T: Model>(&self, key: &str, value: &T, expected: Expected) -> Result<Stat> {
        self.store.put(key, encode(value)?, expected).await
    }

    /// Creates a model (fails with a conflict if the key exists).
    pub async fn create<T: Model>(&self, key: &str, value: &T) -> Result<Stat> {
        self.put(key, value, Expected::Absent).await
    }

    /// Read-modify-write with CAS and retry. `f` gets the current value (`None`: absent) and
    /// returns the new one (`None`: leave the key as it is). Returns what was written.
    ///
    /// # Cancel safety
    /// Not cancel safe (see [`crate::retry::update`]).
    pub async fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<(T, Stat)>>
    where
        T: Model + Clone,
        F: FnMut(Option<T>) -> Result<Option<T>> + Send,
    {
        let mut written: Option<T> = None;
        let stat = update(self.store.as_ref(), key, self.policy, |cur| {
            let cur = cur.map(|v| decode::<T>(key, &v.value)).transpose()?;
            match f(cur)? {
                None => {
                    written = None;
                    Ok(Change::Keep)
                }
                Some(new) => {
                    let bytes = encode(&new)?;
                    written = Some(new);
                    Ok(Change::Put(bytes))
                }
            }
        })
        .await?;
        Ok(match (written, stat) {
            (Some(v), Some(s)) => Some((v, s)),
            _ => None,
        })
    }

    /// Watches every model under `parent` (decoded), from `from_revision` (`None`: from now).
    pub async fn watch<T: Model>(
        &self,
        parent: &str,
        from_revision: Option<u64>,
    ) -> Result<TypedWatch<T>> {
        let prefix = format!("{}/", parent.trim_end_matches('/'));
        Ok(TypedWatch {
            inner: self.store.watch(&prefix, from_revision).await?,
            _model: PhantomData,
        })
    }

    /// Lists every model under `parent` and watches for changes after that snapshot: nothing
    /// is missed between the two (the usual way to keep a cache of policies or bookies).
    pub async fn list_and_watch<T: Model>(
        &self,
        parent: &str,
    ) -> Result<(Vec<(String, T, Stat)>, TypedWatch<T>)> {
        let prefix = format!("{}/", parent.trim_end_matches('/'));
        let scan = self.store.scan(&prefix).await?;
        let watch = self.watch(parent, Some(scan.revision + 1)).await?;
        Ok((decode_scan(scan)?, watch))
    }

    /// Every model directly or indirectly under `parent`, with its key.
    pub async fn list<T: Model>(&self, parent: &str) -> Result<Vec<(String, T, Stat)>> {
        let prefix = format!("{}/", parent.trim_end_matches('/'));
        decode_scan(self.store.scan(&prefix).await?)
    }

    /// Writes an ephemeral model bound to `session`.
    pub async fn put_ephemeral<T: Model>(
        &self,
        session: &Session,
        key: &str,
        value: &T,
        expected: Expected,
        opts: EphemeralOptions,
    ) -> Result<Stat> {
        self.store
            .put_ephemeral(session, key, encode(value)?, expected, opts)
            .await
    }

    /// Writes a live-node registration: ephemeral, re-created when the session is re-established.
    async fn register<T: Model>(&self, session: &Session, key: &str, info: &T) -> Result<Stat> {
        let opts = EphemeralOptions::recreate();
        self.put_ephemeral(session, key, info, Expected::Any, opts)
            .await
    }

    /// The values (without keys and stats) of the models under `parent`.
    async fn list_values<T: Model>(&self, parent: &str) -> Result<Vec<T>> {
        let all = self.list::<T>(parent).await?;
        Ok(all.into_iter().map(|(_, v, _)| v).collect())
    }

    /// Registers a live bookie (ephemeral, re-created when the session is re-established).
    pub async fn register_bookie(&self, session: &Session, info: &BookieInfo) -> Result<Stat> {
        self.register(session, &self.paths.bookie(&info.bookie_id.0), info)
            .await
    }

    /// Live bookies.
    pub async fn bookies(&self) -> Result<Vec<BookieInfo>> {
        self.list_values(&self.paths.bookies()).await
    }

    /// Registers a live broker (ephemeral, re-created when the session is re-established).
    pub async fn register_broker(&self, session: &Session, info: &BrokerInfo) -> Result<Stat> {
        self.register(session, &self.paths.broker(&info.broker_id), info)
            .await
    }

    /// Live brokers.
    pub async fn brokers(&self) -> Result<Vec<BrokerInfo>> {
        self.list_values(&self.paths.brokers()).await
    }

    /// Claims a bundle for `owner` if nobody owns it (ephemeral, not re-created on
    /// re-establish: ownership must be re-acquired). `None`: owned by someone else.
    pub async fn try_own_bundle(
        &self,
        session: &Session,
        tenant: &str,
        ns: &str,
        range: &BundleRange,
        owner: &BundleOwner,
    ) -> Result<Option<Stat>> {
        let key = self.paths.bundle_owner(tenant, ns, range);
        match self
            .put_ephemeral(
                session,
                &key,
                owner,
                Expected::Absent,
                EphemeralOptions::default(),
            )
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_conflict() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A ledger's metadata.
    pub async fn ledger(&self, id: LedgerId) -> Result<Option<(LedgerMetadata, Stat)>> {
        self.get(&self.paths.ledger(id)).await
    }

    /// Creates a ledger's metadata (validated; fails if the id exists).
    pub async fn create_ledger(&self, meta: &LedgerMetadata) -> Result<Stat> {
        meta.validate().map_err(MetaError::InvalidArgument)?;
        self.create(&self.paths.ledger(meta.ledger_id), meta).await
    }

    /// CAS-updates a ledger's metadata with retry; `f` returns `None` to leave it unchanged.
    /// The result is validated before it is written.
    pub async fn update_ledger<F>(
        &self,
        id: LedgerId,
        mut f: F,
    ) -> Result<Option<(LedgerMetadata, Stat)>>
    where
        F: FnMut(LedgerMetadata) -> Result<Option<LedgerMetadata>> + Send,
    {
        let key = self.paths.ledger(id);
        self.update(&key, |cur: Option<LedgerMetadata>| {
            let cur = cur.ok_or_else(|| MetaError::NotFound(key.clone()))?;
            let new = f(cur)?;
            if let Some(m) = &new {
                m.validate().map_err(MetaError::InvalidArgument)?;
            }
            Ok(new)
        })
        .await
    }

    /// A namespace's policies.
    pub async fn namespace(&self, tenant: &str, ns: &str) -> Result<Option<(Policies, Stat)>> {
        self.get(&self.paths.namespace(tenant, ns)).await
    }

    /// A ledger-id allocator over this cluster's counter.
    pub fn ledger_id_allocator(&self, batch: u64) -> LedgerIdAllocator {
        LedgerIdAllocator::new(self.store.clone(), self.paths.ledger_id_counter(), batch)
    }

    /// Decodes raw bytes of `key` (e.g. from a watch event).
    pub fn decode<T: Model>(&self, key: &str, value: &Bytes) -> Result<T> {
        decode(key, value)
    }
}

/// A change of a model, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedEvent<T> {
    /// What happened.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new value (`None` for deletes).
    pub value: Option<T>,
    /// Version after the change (0 for deletes).
    pub version: u64,
    /// Store revision of the change.
    pub revision: u64,
}

/// A watch whose values are decoded as `T` (see [`MetaClient::watch`]).
#[derive(Debug)]
pub struct TypedWatch<T> {
    inner: WatchStream,
    _model: PhantomData<fn() -> T>,
}

impl<T: Model> TypedWatch<T> {
    /// The next change. A value that does not decode yields `Some(Err(MetaError::Decode))` and
    /// the watch goes on.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next(&mut self) -> Option<Result<TypedEvent<T>>> {
        let ev = match self.inner.next().await? {
            Ok(ev) => ev,
            Err(e) => return Some(Err(e)),
        };
        let value = match ev.kind {
            EventKind::Delete => None,
            _ => match decode::<T>(&ev.key, &ev.value) {
                Ok(v) => Some(v),
                Err(e) => return Some(Err(e)),
            },
        };
        Some(Ok(TypedEvent {
            kind: ev.kind,
            key: ev.key,
            value,
            version: ev.version,
            revision: ev.revision,
        }))
    }

    /// The first revision not yet returned (to resume after a restart).
    pub fn next_revision(&self) -> u64 {
        self.inner.next_revision()
    }
}

/// The models of a scan, each with its key and stat.
fn decode_scan<T: Model>(scan: crate::store::Scan) -> Result<Vec<(String, T, Stat)>> {
    scan.entries
        .into_iter()
        .map(|kv| {
            let value = decode(&kv.key, &kv.value.value)?;
            Ok((kv.key, value, kv.value.stat))
        })
        .collect()
}
