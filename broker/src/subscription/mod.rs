//! A subscription: its cursor and its dispatcher, run as one task (an actor) per subscription.
//!
//! Connections talk to the task through the [`Subscription`] handle (this file). The task
//! (`actor.rs`) owns the ack state (`acks.rs`), the consumers with their permits and unacked
//! entries (`consumers.rs`, `membership.rs`), the read position with its read-ahead and the
//! replay set (`read_position.rs`), parked delayed entries (`delayed.rs`, behind
//! [`DelayedDeliveryTracker`]) and the rate limits (`dispatch_rate.rs`). The dispatch loop
//! (`dispatch.rs`) is the same for every type; which consumer gets an entry is the
//! dispatcher's choice (`dispatcher.rs`): `single_active.rs` (Exclusive, Failover), `shared.rs`,
//! `key_shared.rs`.
//!
//! - A batch entry costs `num_messages` permits; an entry is sent while permits are positive.
//! - Unacked entries of a consumer that leaves (or asks for redelivery) go back to replay with
//!   their redelivery count incremented.
//! - Durable cursors are written by a flusher task (`flusher.rs`) that coalesces acks: at most
//!   one write between two ticks of `cursor_flush_interval` (1 s, Pulsar's default mark-delete
//!   rate; ticks shared by every cursor of the process), never one per ack. Acks with a
//!   receipt request are answered once the write that contains them is done; such a wait (or a
//!   flush, or a close) has the flusher write without waiting out the interval.

mod acks;
mod actor;
mod consumers;
mod delayed;
mod dispatch;
mod dispatch_rate;
mod dispatcher;
mod entry;
mod flusher;
mod key_shared;
mod membership;
mod read_position;
mod shared;
mod single_active;
mod stats;
mod types;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::cursor::{AckState, CursorSnapshot};
use crate::cursor_store::CursorStore;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::ManagedLedger;
use crate::metrics::Metrics;
use crate::position::Position;
use actor::Actor;
use dispatcher::Dispatcher;
use flusher::{Flusher, Wake};
use strata_proto::pulsar::command_subscribe::SubType;

pub use crate::cursor_store::cursor_key;
pub use crate::outbound::Outbound;
pub use delayed::{DelayedDeliveryTracker, InMemoryDelayedTracker};
pub use entry::murmur3_32;
pub use stats::sub_type_name;
pub use types::{
    AckId, ConsumerSpec, ConsumerStats, InitialPosition, KeySharedSpec, SeekTarget,
    SubscriptionConfig, SubscriptionId, SubscriptionSnapshot,
};

/// Commands to the subscription task.
///
/// Kept small (the consumer spec boxed): the channel of each subscription allocates its slots in
/// blocks of 32 commands, a fixed cost per subscription at 10,000 topics.
enum Cmd {
    AddConsumer(Box<ConsumerSpec>, oneshot::Sender<Result<()>>),
    RemoveConsumer(u64, oneshot::Sender<usize>),
    Flow(u64, u32),
    Ack {
        key: u64,
        cumulative: bool,
        ids: Vec<AckId>,
        reply: Option<oneshot::Sender<u64>>,
    },
    Redeliver(u64, Option<Vec<Position>>),
    Seek(SeekTarget, oneshot::Sender<Result<()>>),
    Stats(u64, oneshot::Sender<Option<ConsumerStats>>),
    AllStats(oneshot::Sender<SubscriptionSnapshot>),
    MarkDelete(oneshot::Sender<Position>),
    AckSeq(oneshot::Sender<u64>),
    Snapshot(oneshot::Sender<(u64, CursorSnapshot)>),
    Unsubscribe(u64, oneshot::Sender<Result<()>>),
    Close(Option<String>, oneshot::Sender<()>),
    ConsumerCount(oneshot::Sender<usize>),
    /// Dispatch rate limit `(messages, bytes)` per second (`None`: unlimited).
    SetDispatchRate(Option<(i64, i64)>),
}

/// Handle to a subscription task. Cheap to clone.
#[derive(Clone)]
pub struct Subscription {
    name: Arc<str>,
    durable: bool,
    tx: mpsc::UnboundedSender<Cmd>,
    persisted: watch::Receiver<u64>,
    /// Wakes the flusher for a write somebody waits for.
    wake: Arc<Wake>,
    /// The dispatch rate limit last sent to the task: the policy round sets it every second,
    /// and an unchanged limit is not worth waking the task for.
    dispatch_limit: Arc<parking_lot::Mutex<Option<(i64, i64)>>>,
}

/// Where a new cursor's mark-delete position goes.
fn initial_mark_delete(ml: &ManagedLedger, initial: InitialPosition) -> Position {
    match initial {
        InitialPosition::Latest => ml.last_confirmed(),
        InitialPosition::Earliest => ml.first_position(),
        InitialPosition::At(p) => types::before(p).max(ml.first_position()),
    }
}

/// The dispatcher of a subscription type. `partition` spreads Failover partitions over
/// consumers.
fn dispatcher_for(
    sub_type: SubType,
    partition: i32,
    config: &SubscriptionConfig,
) -> Box<dyn Dispatcher> {
    match sub_type {
        SubType::Exclusive | SubType::Failover => {
            Box::new(single_active::SingleActive::new(sub_type, partition))
        }
        SubType::Shared => Box::new(shared::Shared::default()),
        SubType::KeyShared => Box::new(key_shared::KeyShared::new(
            config.key_shared_consistent_hashing,
        )),
    }
}

impl Subscription {
    /// Opens a subscription: loads a durable cursor from `cursors` or creates it at `initial`,
    /// then starts its task (and, when durable, its flusher).
    pub async fn open(
        id: SubscriptionId,
        initial: InitialPosition,
        ml: ManagedLedger,
        cursors: CursorStore,
        config: SubscriptionConfig,
        metrics: Metrics,
    ) -> Result<Self> {
        let (name, durable) = (id.name.clone(), id.durable);
        let acks = if durable {
            match cursors.load(ml.name(), &name).await? {
                Some(snap) => AckState::from_snapshot(&snap),
                None => {
                    let st = AckState::new(initial_mark_delete(&ml, initial));
                    cursors.save(ml.name(), &name, &st.snapshot()).await?;
                    st
                }
            }
        } else {
            AckState::new(initial_mark_delete(&ml, initial))
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (persisted_tx, persisted) = watch::channel(0u64);
        let wake = Arc::new(Wake::default());
        let flusher = durable.then(|| Flusher {
            key: cursors.key(ml.name(), &name),
            store: cursors,
            interval: config.cursor_flush_interval,
        });
        let mut actor = Actor::new(id, ml, acks, wake.clone(), config, metrics);
        let flusher = flusher.map(|f| tokio::spawn(f.run(tx.clone(), wake.clone(), persisted_tx)));
        tokio::spawn(async move {
            actor.run(rx).await;
            if let Some(f) = flusher {
                let _ = f.await;
            }
        });
        Ok(Subscription {
            name: name.into(),
            durable,
            tx,
            persisted,
            wake,
            dispatch_limit: Arc::default(),
        })
    }

    /// The subscription name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the cursor is durable.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Adds a consumer.
    pub async fn add_consumer(&self, spec: ConsumerSpec) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::AddConsumer(Box::new(spec), tx))?;
        rx.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Removes a consumer; its unacked entries are redelivered to others. Returns how many
    /// consumers remain.
    pub async fn remove_consumer(&self, key: u64) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::RemoveConsumer(key, tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Grants permits.
    pub fn flow(&self, key: u64, permits: u32) {
        let _ = self.send(Cmd::Flow(key, permits));
    }

    /// Acknowledges; with `want_receipt`, returns the ack sequence to wait for with
    /// [`Subscription::wait_durable`].
    pub async fn ack(
        &self,
        key: u64,
        cumulative: bool,
        ids: Vec<AckId>,
        want_receipt: bool,
    ) -> Option<u64> {
        if want_receipt {
            let (tx, rx) = oneshot::channel();
            self.send(Cmd::Ack {
                key,
                cumulative,
                ids,
                reply: Some(tx),
            })
            .ok()?;
            rx.await.ok()
        } else {
            let _ = self.send(Cmd::Ack {
                key,
                cumulative,
                ids,
                reply: None,
            });
            None
        }
    }

    /// Waits until the cursor write that contains ack `seq` is done (immediately for a
    /// non-durable cursor).
    pub async fn wait_durable(&self, seq: u64) {
        if !self.durable {
            return;
        }
        let mut rx = self.persisted.clone();
        if *rx.borrow() >= seq {
            return;
        }
        self.wake.urgent();
        let _ = rx.wait_for(|v| *v >= seq).await;
    }

    /// Waits until every ack received so far is persisted.
    pub async fn flush(&self) {
        if !self.durable {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::AckSeq(tx)).is_ok()
            && let Ok(seq) = rx.await
        {
            self.wait_durable(seq).await;
        }
    }

    /// Redelivers the consumer's unacked entries (all, or the given ones).
    pub fn redeliver(&self, key: u64, positions: Option<Vec<Position>>) {
        let _ = self.send(Cmd::Redeliver(key, positions));
    }

    /// Moves the cursor; consumers are disconnected and reconnect.
    pub async fn seek(&self, target: SeekTarget) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Seek(target, tx))?;
        rx.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Statistics of one consumer.
    pub async fn stats(&self, key: u64) -> Option<ConsumerStats> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Stats(key, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// Statistics of the subscription and its consumers (topic stats, metrics); None once
    /// the subscription is closed.
    pub async fn snapshot_stats(&self) -> Option<SubscriptionSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::AllStats(tx)).ok()?;
        rx.await.ok()
    }

    /// Sets the dispatch rate limit `(messages, bytes)` per second (`None`: unlimited).
    pub fn set_dispatch_rate(&self, limit: Option<(i64, i64)>) {
        // as the rate clock reads it: no positive part, no limit
        let limit = limit.filter(|(m, b)| *m > 0 || *b > 0);
        let mut last = self.dispatch_limit.lock();
        if *last != limit && self.send(Cmd::SetDispatchRate(limit)).is_ok() {
            *last = limit;
        }
    }

    /// Number of attached consumers.
    pub async fn consumer_count(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::ConsumerCount(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// The mark-delete position.
    pub async fn mark_delete(&self) -> Option<Position> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::MarkDelete(tx)).ok()?;
        rx.await.ok()
    }

    /// Unsubscribes on behalf of consumer `key` (fails if others are connected); the task ends.
    pub async fn unsubscribe(&self, key: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Unsubscribe(key, tx))?;
        rx.await.map_err(|_| BrokerError::ShuttingDown)?
    }

    /// Flushes the cursor and stops the task.
    pub async fn close(&self) {
        self.close_to(None).await
    }

    /// Flushes the cursor and stops the task; consumers are told to reconnect to `assigned`
    /// (the topic's new owner) when given.
    pub async fn close_to(&self, assigned: Option<String>) {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::Close(assigned, tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| BrokerError::ServiceNotReady("subscription closed".into()))
    }
}
