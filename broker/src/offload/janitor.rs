//! The janitor: lists the object store and removes every object no committed offload names —
//! attempts that failed or were cut short by a killed broker, objects of deleted topics or of
//! ledgers retention removed — once they are older than the grace period (a running upload's
//! objects are young and, on this broker, known to be in flight).

use std::collections::{BTreeMap, HashMap};

use strata_common::clock::now_ms;
use strata_meta::model::ManagedLedgerInfo;
use tracing::{info, warn};

use super::Offloader;
use super::error::TierError;
use super::keys::{self, OffloadKeys};
use crate::managed_ledger::ml_key;
use crate::metadata::MetaClient;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Attempts (ledger, offload id) seen.
    pub attempts: usize,
    /// Objects deleted.
    pub deleted: usize,
}

impl Offloader {
    /// One sweep over the whole store.
    pub async fn sweep(&self, meta: &MetaClient) -> Result<Swept, TierError> {
        let grace_ms = self.config().janitor_grace.as_millis() as u64;
        let now = now_ms();
        // (topic dir, ledger, offload id) → (newest modification, keys)
        let mut attempts: BTreeMap<(String, u64, String), (u64, Vec<String>)> = BTreeMap::new();
        for o in self.tier().store().list("").await? {
            let Some(id) = keys::parse(&o.key) else {
                continue;
            };
            let e = attempts.entry(id).or_default();
            e.0 = e.0.max(o.last_modified_ms);
            e.1.push(o.key);
        }
        let mut lists: HashMap<String, Option<ManagedLedgerInfo>> = HashMap::new();
        let mut out = Swept {
            attempts: attempts.len(),
            ..Default::default()
        };
        for ((dir, ledger, id), (modified, objs)) in attempts {
            let Some(name) = keys::ml_name_of(&dir) else {
                continue;
            };
            let attempt_dir = OffloadKeys::new(&name, ledger, &id).dir().to_string();
            if self.is_in_flight(&attempt_dir) || now.saturating_sub(modified) < grace_ms {
                continue;
            }
            if !lists.contains_key(&name) {
                let info = meta
                    .get::<ManagedLedgerInfo>(&ml_key(meta, &name))
                    .await
                    .map_err(|e| TierError::Refused(format!("read ledger list of {name}: {e}")))?
                    .map(|(i, _)| i);
                lists.insert(name.clone(), info);
            }
            let committed = lists.get(&name).and_then(|i| i.as_ref()).is_some_and(|i| {
                i.ledgers.iter().any(|l| {
                    l.ledger_id.0 == ledger
                        && l.offload.as_ref().is_some_and(|o| o.offload_id == id)
                })
            });
            if committed {
                continue;
            }
            for k in objs {
                match self.tier().store().delete(&k).await {
                    Ok(()) => out.deleted += 1,
                    Err(e) => warn!(key = %k, error = %e, "janitor delete failed"),
                }
            }
        }
        if out.deleted > 0 {
            info!(
                attempts = out.attempts,
                deleted = out.deleted,
                "offload janitor removed orphaned objects"
            );
        }
        Ok(out)
    }
}
