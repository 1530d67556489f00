//! Sessions: a lease kept alive in the background, ephemeral keys bound to it, and an awaitable
//! notification when it is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::session_id::SessionId;

/// How an ephemeral key is treated by [`crate::MetadataStore::reestablish_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EphemeralOptions {
    /// Re-create the key (same value) under the new session. Good for "I am alive" registrations
    /// (brokers, bookies); wrong for ownership claims, which must be re-acquired through the
    /// normal path so that the new owner goes through fencing.
    pub recreate_on_reestablish: bool,
}

impl EphemeralOptions {
    /// Re-create on re-establish.
    pub fn recreate() -> Self {
        Self {
            recreate_on_reestablish: true,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EphemeralRecord {
    pub value: Bytes,
    pub recreate: bool,
}

/// What [`crate::MetadataStore::reestablish_session`] did.
#[derive(Debug)]
pub struct Reestablished {
    /// The new session.
    pub session: Session,
    /// Keys re-created (or moved) under the new session.
    pub recreated: Vec<String>,
    /// Keys marked for re-creation that another session holds now (left alone).
    pub taken: Vec<String>,
    /// Keys not marked for re-creation: deleted with the old session.
    pub dropped: Vec<String>,
}

/// A session: a lease on the store kept alive in the background.
///
/// Cheap to clone (all clones are the same session). [`Session::lost`] resolves when the lease is
/// gone or cannot be proven alive anymore — with etcd, this fires when no keep-alive succeeded
/// for `ttl - margin`, i.e. *before* the server expires the lease and another node can take over
/// what it guarded. It also fires when the session is closed. A lost session never comes back:
/// call [`crate::MetadataStore::reestablish_session`] for a new one.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
}

/// Shared state of a session (crate-internal).
pub(crate) struct SessionInner {
    pub id: SessionId,
    pub ttl: Duration,
    /// Cancelled when the session is lost or closed.
    pub lost: CancellationToken,
    /// Identity of the store that created it (sessions cannot be mixed between stores).
    pub store_id: u64,
    pub ephemerals: Mutex<BTreeMap<String, EphemeralRecord>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("ttl", &self.inner.ttl)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        ttl: Duration,
        store_id: u64,
        parent: &CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(SessionInner {
                id,
                ttl,
                lost: parent.child_token(),
                store_id,
                ephemerals: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The session id (etcd lease id).
    pub fn id(&self) -> SessionId {
        self.inner.id
    }

    /// The TTL it was created with.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// Checks that a store may use this session for an ephemeral write: it was created by the
    /// store with id `store_id` and is not lost.
    pub(crate) fn check_usable(&self, store_id: u64) -> crate::error::Result<()> {
        self.check_store(store_id)?;
        if self.is_lost() {
            return Err(crate::error::MetaError::SessionLost(self.id()));
        }
        Ok(())
    }

    /// Checks that the store with id `store_id` created this session.
    pub(crate) fn check_store(&self, store_id: u64) -> crate::error::Result<()> {
        if self.inner.store_id != store_id {
            return Err(crate::error::MetaError::InvalidArgument(
                "session belongs to another store".into(),
            ));
        }
        Ok(())
    }

    /// Carries the ephemeral keys of `self` (the old session) over to `new`: each key marked for
    /// re-creation is handed to `rebind(key, value)`, which answers whether it moved to `new`
    /// (`false`: another session holds it now). The backend-independent half of
    /// [`crate::MetadataStore::reestablish_session`].
    pub(crate) async fn carry_over<F, Fut>(
        &self,
        new: Session,
        mut rebind: F,
    ) -> crate::error::Result<Reestablished>
    where
        F: FnMut(String, Bytes) -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<bool>>,
    {
        let mut recreated = Vec::new();
        let mut taken = Vec::new();
        let mut dropped = Vec::new();
        for (key, rec) in self.records() {
            if !rec.recreate {
                dropped.push(key);
                continue;
            }
            if rebind(key.clone(), rec.value.clone()).await? {
                new.record(&key, rec.value, true);
                recreated.push(key);
            } else {
                taken.push(key);
            }
        }
        Ok(Reestablished {
            session: new,
            recreated,
            taken,
            dropped,
        })
    }

    /// Whether the session is lost or closed.
    pub fn is_lost(&self) -> bool {
        self.inner.lost.is_cancelled()
    }

    /// Resolves when the session is lost or closed (immediately if it already is).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn lost(&self) {
        self.inner.lost.cancelled().await
    }

    /// A token cancelled when the session is lost or closed: hand it to tasks that must stop
    /// acting on what the session guards. Cancelling the returned token does not end the session.
    pub fn lost_token(&self) -> CancellationToken {
        self.inner.lost.child_token()
    }

    /// The ephemeral keys written through this session (and not deleted through
    /// `delete_ephemeral` / [`Session::forget`]).
    pub fn ephemeral_keys(&self) -> Vec<String> {
        self.inner.ephemerals.lock().keys().cloned().collect()
    }

    /// Stops tracking `key`: it will not be re-created by a re-establish.
    pub fn forget(&self, key: &str) {
        self.inner.ephemerals.lock().remove(key);
    }

    pub(crate) fn record(&self, key: &str, value: Bytes, recreate: bool) {
        self.inner
            .ephemerals
            .lock()
            .insert(key.to_owned(), EphemeralRecord { value, recreate });
    }

    pub(crate) fn records(&self) -> Vec<(String, EphemeralRecord)> {
        self.inner
            .ephemerals
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn mark_lost(&self) {
        self.inner.lost.cancel();
    }
}
