//! A topic's compaction state: its current compacted view (loaded once from the metadata
//! store, so a restarted or new owner keeps it), the status of the last run (Pulsar's
//! `LongRunningProcessStatus`), manual triggers and automatic compaction from the
//! `compactionThreshold` policy.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_meta::model::{CompactionInfo, Policies};
use tracing::warn;

use super::compactor::compact;
use super::view::CompactedView;
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::service::BrokerService;
use crate::topic::Topic;
use crate::topic_name::TopicName;

/// Status of a topic's last compaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionStatus {
    /// Never run since the topic was loaded.
    NotRun,
    /// Running.
    Running,
    /// The last run succeeded.
    Success,
    /// The last run failed.
    Error(String),
}

impl CompactionStatus {
    /// Pulsar's `LongRunningProcessStatus` JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let (status, err) = match self {
            CompactionStatus::NotRun => ("NOT_RUN", ""),
            CompactionStatus::Running => ("RUNNING", ""),
            CompactionStatus::Success => ("SUCCESS", ""),
            CompactionStatus::Error(e) => ("ERROR", e.as_str()),
        };
        serde_json::json!({ "status": status, "lastError": err })
    }
}

/// One topic's compaction state.
#[derive(Debug)]
pub struct TopicCompaction {
    loaded: tokio::sync::OnceCell<()>,
    view: RwLock<Option<CompactedView>>,
    status: Mutex<CompactionStatus>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The topic's own `compactionThreshold` and when it was read (re-read at most every
    /// [`OWN_POLICY_TTL`], not on every policy round).
    own_threshold: Mutex<Option<(std::time::Instant, Option<i64>)>>,
}

/// How long the topic's own compaction threshold is reused before it is read again.
const OWN_POLICY_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl Default for TopicCompaction {
    fn default() -> Self {
        TopicCompaction {
            loaded: tokio::sync::OnceCell::new(),
            view: RwLock::new(None),
            status: Mutex::new(CompactionStatus::NotRun),
            task: Mutex::new(None),
            own_threshold: Mutex::new(None),
        }
    }
}

impl Drop for TopicCompaction {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

impl TopicCompaction {
    /// The current view (`None`: never compacted, or not loaded yet).
    pub fn view(&self) -> Option<CompactedView> {
        *self.view.read()
    }

    /// Installs a new view.
    pub fn set_view(&self, v: CompactedView) {
        *self.view.write() = Some(v);
    }

    /// Loads the stored view once (no-op afterwards).
    pub async fn load(&self, topic: &Topic) -> Result<()> {
        self.loaded
            .get_or_try_init(|| async {
                let meta = topic.metadata();
                let key = meta.paths().compaction(&topic.name().meta_path());
                if let Some((info, _)) = meta.get::<CompactionInfo>(&key).await?
                    && let (Some(ledger), Some(horizon)) = (info.ledger_id, info.horizon)
                {
                    let mut v = self.view.write();
                    if v.is_none() {
                        *v = Some(CompactedView {
                            ledger,
                            entries: info.entries,
                            horizon,
                        });
                    }
                }
                Ok::<(), BrokerError>(())
            })
            .await?;
        Ok(())
    }

    /// Status of the last run.
    pub fn status(&self) -> CompactionStatus {
        self.status.lock().clone()
    }

    /// Starts a compaction of `topic` in the background; `Conflict` while one runs.
    pub fn trigger(&self, service: &BrokerService, topic: Arc<Topic>) -> Result<()> {
        {
            let mut st = self.status.lock();
            if *st == CompactionStatus::Running {
                return Err(BrokerError::Conflict(
                    "Compaction already in progress".into(),
                ));
            }
            *st = CompactionStatus::Running;
        }
        let storage = service.storage().clone();
        let budget = service.config.compaction_key_map_bytes;
        let handle = tokio::spawn(async move {
            let state = topic.compaction().clone();
            let r = match state.load(&topic).await {
                Ok(()) => compact(&topic, &storage, budget)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            *state.status.lock() = match r {
                Ok(_) => CompactionStatus::Success,
                Err(e) => {
                    warn!(topic = %topic.name(), error = %e, "compaction failed");
                    CompactionStatus::Error(e)
                }
            };
        });
        if let Some(old) = self.task.lock().replace(handle) {
            drop(old);
        }
        Ok(())
    }
}

/// Forgets a deleted topic's compacted view (pointer and ledger) and its own policies (a
/// partition's policies are its partitioned topic's, deleted with it), so a topic created
/// again under the same name starts without them.
pub async fn delete_compacted(service: &BrokerService, name: &TopicName) -> Result<()> {
    let meta = service.metadata();
    let key = meta.paths().compaction(&name.meta_path());
    if let Some((info, _)) = meta.get::<CompactionInfo>(&key).await?
        && let Some(ledger) = info.ledger_id
        && let Err(e) = service
            .storage()
            .delete(strata_proto::LedgerId(ledger))
            .await
    {
        warn!(topic = %name, ledger, error = %e, "delete of the compacted ledger failed");
    }
    meta.store()
        .delete(&key, strata_meta::Expected::Any)
        .await?;
    if name.partition_index().is_none() {
        meta.store()
            .delete(
                &crate::schema::admission::topic_policies_key(service, name),
                strata_meta::Expected::Any,
            )
            .await?;
    }
    Ok(())
}

/// Bytes written to `topic` after the compacted view's horizon (an estimate from the average
/// entry size).
fn bytes_after_horizon(topic: &Topic) -> u64 {
    let ml = topic.ledger();
    let horizon = topic
        .compaction()
        .view()
        .map(|v| v.horizon)
        .unwrap_or(Position::EARLIEST);
    let all = ml.entries_after(Position::EARLIEST).max(1);
    let after = ml.entries_after(horizon);
    ml.storage_size().saturating_mul(after) / all
}

/// Automatic compaction: triggers one when the `compactionThreshold` (the topic's, else the
/// namespace's) is set and more than that many bytes were written since the last compaction.
pub async fn maybe_compact(service: &BrokerService, topic: &Arc<Topic>, p: &Policies) {
    let state = topic.compaction();
    let cached = *state.own_threshold.lock();
    let own = match cached {
        Some((at, v)) if at.elapsed() < OWN_POLICY_TTL => v,
        _ => {
            let v = crate::schema::admission::topic_policies(service, topic.name())
                .await
                .ok()
                .and_then(|t| t.compaction_threshold);
            *state.own_threshold.lock() = Some((std::time::Instant::now(), v));
            v
        }
    };
    let Some(threshold) = own.or(p.compaction_threshold).filter(|t| *t > 0) else {
        return;
    };
    if state.status() == CompactionStatus::Running {
        return;
    }
    if let Err(e) = state.load(topic).await {
        warn!(topic = %topic.name(), error = %e, "load of the compacted view failed");
        return;
    }
    if bytes_after_horizon(topic) > threshold as u64
        && let Err(e) = state.trigger(service, topic.clone())
    {
        warn!(topic = %topic.name(), error = %e, "automatic compaction not started");
    }
}
