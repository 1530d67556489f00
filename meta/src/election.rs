//! Leader election / locks on top of sessions and CAS: the holder is whoever created the
//! ephemeral key. Leases are not locks — a holder that lost its session may not know it yet — so
//! use [`Leadership::fencing_token`] (the key's create revision, increasing with each new holder)
//! to fence storage writes.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::{MetaError, Result};
use crate::session::{EphemeralOptions, Session};
use crate::store::{EventKind, Expected, MetadataStore, Stat, Versioned};

/// Held leadership (or lock) on a key.
#[derive(Debug, Clone)]
pub struct Leadership {
    store: Arc<dyn MetadataStore>,
    session: Session,
    key: String,
    stat: Stat,
}

impl Leadership {
    /// The election key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The session it is bound to.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Strictly increasing across successive holders of this key (the store revision at which
    /// it was acquired): pass it to storage so an old holder's writes can be rejected.
    pub fn fencing_token(&self) -> u64 {
        self.stat.create_revision
    }

    /// Resolves when the leadership may be gone (its session is lost or closed).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn lost(&self) {
        self.session.lost().await
    }

    /// Whether the session still holds (as far as this process knows).
    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }

    /// Gives the key up (deletes it if this session still holds it).
    ///
    /// # Cancel safety
    /// Not cancel safe: the key may or may not be deleted.
    pub async fn resign(self) -> Result<()> {
        self.session.forget(&self.key);
        if let Some(cur) = self.store.get(&self.key).await?
            && cur.stat.session == Some(self.session.id())
        {
            match self
                .store
                .delete(&self.key, Expected::Version(cur.stat.version))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Takes `key` if nobody holds it; `value` says who holds it (e.g. a broker URL).
///
/// # Cancel safety
/// Not cancel safe: if cancelled, the key may be held by `session` without a [`Leadership`].
pub async fn try_acquire(
    store: &Arc<dyn MetadataStore>,
    session: &Session,
    key: &str,
    value: Bytes,
) -> Result<Option<Leadership>> {
    match store
        .put_ephemeral(
            session,
            key,
            value,
            Expected::Absent,
            EphemeralOptions::default(),
        )
        .await
    {
        Ok(stat) => Ok(Some(Leadership {
            store: store.clone(),
            session: session.clone(),
            key: key.to_owned(),
            stat,
        })),
        Err(MetaError::BadVersion { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Waits until `key` is free and takes it. Fails with [`MetaError::SessionLost`] if the
/// session is lost while waiting.
///
/// # Cancel safety
/// Not cancel safe (see [`try_acquire`]).
pub async fn acquire(
    store: &Arc<dyn MetadataStore>,
    session: &Session,
    key: &str,
    value: Bytes,
) -> Result<Leadership> {
    loop {
        if session.is_lost() {
            return Err(MetaError::SessionLost(session.id()));
        }
        if let Some(l) = try_acquire(store, session, key, value.clone()).await? {
            return Ok(l);
        }
        // Someone holds it: wait for a delete after the version we saw.
        let Some(holder) = store.get(key).await? else {
            continue;
        };
        let mut watch = store.watch(key, Some(holder.stat.mod_revision + 1)).await?;
        loop {
            tokio::select! {
                ev = watch.next() => match ev {
                    Some(Ok(ev)) if ev.key == key && ev.kind == EventKind::Delete => break,
                    Some(Ok(_)) => {}
                    Some(Err(MetaError::Compacted { .. })) | None => break,
                    Some(Err(e)) => return Err(e),
                },
                () = session.lost() => return Err(MetaError::SessionLost(session.id())),
            }
        }
    }
}

/// The current holder of `key`, if any.
pub async fn holder(store: &dyn MetadataStore, key: &str) -> Result<Option<Versioned>> {
    store.get(key).await
}
