//! A subscription: its cursor and its dispatcher, run as one task (an actor) per subscription.
//!
//! Connections talk to the task through [`Subscription`]. The task owns the ack state, the
//! consumers with their permits and unacked entries, the replay set (entries to redeliver, in
//! position order, each with a redelivery count) and the read position in the managed ledger.
//!
//! Dispatch rules:
//! - Exclusive / Failover: one active consumer gets every entry in order (Failover: lowest
//!   priority level, then name; for partition `i` of a partitioned topic, consumer `i % n`).
//! - Shared: round robin over consumers that have permits.
//! - Key_Shared: an entry's key hash (murmur3 of ordering key or partition key, mod 65536) picks
//!   a consumer (auto-split: a hash ring; sticky: the consumer's declared ranges). A key hash
//!   whose earlier entries are still unacked by some consumer stays with that consumer, and an
//!   entry never overtakes an earlier one of the same hash waiting for replay: per-key order holds
//!   across joins and leaves, and no consumer is stuck behind another.
//! - A batch entry costs `num_messages` permits; an entry is sent while permits are positive.
//! - Unacked entries of a consumer that leaves (or asks for redelivery) go back to replay with
//!   their redelivery count incremented.
//!
//! Durable cursors are written to the metadata store by a flusher task that coalesces acks: at
//! most one write per `cursor_flush_interval`, never one per ack. Acks with a receipt request are
//! answered once the write that contains them is done.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::command_subscribe::SubType;
use strata_proto::pulsar::{KeySharedMode, MessageIdData};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::cursor::{AckState, CursorSnapshot};
use crate::cursor_store;
use crate::error::{BrokerError, Result};
use crate::managed_ledger::ManagedLedger;
use crate::metadata::MetaClient;
use crate::metrics::Metrics;
use crate::position::Position;
use crate::rate::RateClock;

pub use crate::outbound::Outbound;

/// Key_Shared settings of a consumer.
#[derive(Debug, Clone)]
pub struct KeySharedSpec {
    /// Auto-split or sticky.
    pub mode: KeySharedMode,
    /// Sticky hash ranges `[start, end]` (inclusive, 0..=65535).
    pub ranges: Vec<(i32, i32)>,
}

/// A consumer joining a subscription.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Unique across the broker (connection-scoped ids are not).
    pub key: u64,
    /// The client's consumer id, used in frames.
    pub consumer_id: u64,
    /// Consumer name.
    pub name: String,
    /// Priority level (lower first), Failover only.
    pub priority: i32,
    /// Subscription type requested.
    pub sub_type: SubType,
    /// Key_Shared settings.
    pub key_shared: Option<KeySharedSpec>,
    /// Where frames for this consumer go.
    pub out: Outbound,
    /// Peer address (stats).
    pub address: String,
}

/// Where to move a cursor.
#[derive(Debug, Clone, Copy)]
pub enum SeekTarget {
    /// Deliver from this entry on (inclusive).
    Position(Position),
    /// Deliver from the first entry published at or after this time (ms).
    PublishTime(u64),
}

/// Consumer statistics (CONSUMER_STATS).
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// Consumer name.
    pub name: String,
    /// Permits left.
    pub permits: i64,
    /// Entries delivered and not acked.
    pub unacked: u64,
    /// Entries after the mark-delete position.
    pub backlog: u64,
    /// Messages sent.
    pub msg_out: u64,
    /// Subscription type name.
    pub sub_type: String,
    /// Address.
    pub address: String,
}

/// An acknowledged id.
#[derive(Debug, Clone)]
pub struct AckId {
    /// The entry.
    pub position: Position,
    /// Batch-index ack set (bit set = still unacked); empty: the whole entry.
    pub ack_set: Vec<i64>,
}

enum Cmd {
    AddConsumer(ConsumerSpec, oneshot::Sender<Result<()>>),
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
    AllStats(oneshot::Sender<Vec<ConsumerStats>>),
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
}

/// Settings of a subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// Minimum time between two cursor writes.
    pub cursor_flush_interval: Duration,
    /// Entries held for replay before reading new entries stops (Key_Shared).
    pub max_replay: usize,
    /// The topic's dispatch rate clock, shared by its subscriptions.
    pub topic_dispatch: Arc<RateClock>,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            cursor_flush_interval: Duration::from_millis(100),
            max_replay: 10_000,
            topic_dispatch: Arc::new(RateClock::default()),
        }
    }
}

/// How a new cursor is positioned.
#[derive(Debug, Clone, Copy)]
pub enum InitialPosition {
    /// After the last entry.
    Latest,
    /// Before the first entry.
    Earliest,
    /// So that this entry is the first delivered.
    At(Position),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Position before `p` such that `p` is the next entry delivered.
fn before(p: Position) -> Position {
    Position::new(p.ledger, p.entry.max(0) - 1)
}

impl Subscription {
    /// Opens a subscription: loads a durable cursor or creates it at `initial`.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        topic: &str,
        partition: i32,
        name: &str,
        durable: bool,
        initial: InitialPosition,
        ml: ManagedLedger,
        meta: MetaClient,
        config: SubscriptionConfig,
        metrics: Metrics,
    ) -> Result<Self> {
        let key = cursor_store::cursor_key(&meta, ml.name(), name);
        let resolve = |ml: &ManagedLedger| match initial {
            InitialPosition::Latest => ml.last_confirmed(),
            InitialPosition::Earliest => ml.first_position(),
            InitialPosition::At(p) => before(p).max(before_first(ml)),
        };
        let acks = if durable {
            match cursor_store::load(&meta, &key).await? {
                Some(st) => st,
                None => {
                    let st = AckState::new(resolve(&ml));
                    cursor_store::save(&meta, &key, &st.snapshot()).await?;
                    st
                }
            }
        } else {
            AckState::new(resolve(&ml))
        };
        let series = crate::topic_name::TopicName::parse(topic)
            .map(|t| metrics.topic(&t))
            .unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        let (persisted_tx, persisted) = watch::channel(0u64);
        let dirty = Arc::new(Notify::new());
        let sub = Subscription {
            name: name.into(),
            durable,
            tx: tx.clone(),
            persisted,
        };
        let mut actor = Actor {
            topic_dispatch: config.topic_dispatch.clone(),
            sub_dispatch: RateClock::default(),
            dispatch_wait: None,
            topic: topic.to_owned(),
            name: name.to_owned(),
            partition,
            lac: ml.watch_lac(),
            ml,
            read_pos: acks.mark_delete(),
            acks,
            consumers: Vec::new(),
            sub_type: None,
            rr: 0,
            replay: BTreeSet::new(),
            redeliveries: HashMap::new(),
            pending: HashMap::new(),
            read_buf: VecDeque::new(),
            delayed: BTreeMap::new(),
            ks_holders: HashMap::new(),
            pending_slot: HashMap::new(),
            active: None,
            ack_seq: 0,
            dirty: dirty.clone(),
            config,
            metrics,
            ring: BTreeMap::new(),
            deferred_slots: HashMap::new(),
            durable,
            ended: HashSet::new(),
            retry: false,
            congested: false,
            series,
        };
        actor.advance();
        let flusher = if durable {
            Some(tokio::spawn(flush_loop(
                tx,
                dirty,
                meta,
                key,
                persisted_tx,
                actor.config.cursor_flush_interval,
            )))
        } else {
            None
        };
        tokio::spawn(async move {
            actor.run(rx).await;
            if let Some(f) = flusher {
                let _ = f.await;
            }
        });
        Ok(sub)
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
        self.send(Cmd::AddConsumer(spec, tx))?;
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

    /// Statistics of every attached consumer (admin topic stats).
    pub async fn consumer_stats(&self) -> Vec<ConsumerStats> {
        let (tx, rx) = oneshot::channel();
        if self.send(Cmd::AllStats(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Sets the dispatch rate limit `(messages, bytes)` per second (`None`: unlimited).
    pub fn set_dispatch_rate(&self, limit: Option<(i64, i64)>) {
        let _ = self.send(Cmd::SetDispatchRate(limit));
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

fn before_first(ml: &ManagedLedger) -> Position {
    ml.first_position()
}

async fn flush_loop(
    tx: mpsc::UnboundedSender<Cmd>,
    dirty: Arc<Notify>,
    meta: MetaClient,
    key: String,
    persisted: watch::Sender<u64>,
    interval: Duration,
) {
    let mut last_written = 0u64;
    loop {
        dirty.notified().await;
        let (rtx, rrx) = oneshot::channel();
        if tx.send(Cmd::Snapshot(rtx)).is_err() {
            return;
        }
        let Ok((seq, snap)) = rrx.await else { return };
        // seq == u64::MAX: the subscription was deleted, stop without writing.
        if seq == u64::MAX {
            return;
        }
        if seq > last_written {
            let mut backoff = Duration::from_millis(50);
            let written = loop {
                match cursor_store::save(&meta, &key, &snap).await {
                    Ok(n) => break n,
                    Err(e) => {
                        warn!(cursor = %key, error = %e, "persist cursor failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            };
            last_written = seq;
            persisted.send_replace(seq);
            // Large cursors (many ack holes) are written less often: ~4 MB/s at most.
            let extra = Duration::from_micros(written as u64 / 4);
            tokio::time::sleep(interval.max(extra)).await;
            continue;
        }
        tokio::time::sleep(interval).await;
    }
}

struct Consumer {
    spec: ConsumerSpec,
    permits: i64,
    unacked: BTreeSet<Position>,
    msg_out: u64,
}

struct Actor {
    /// Dispatch rate limit (messages, bytes per second) and its reservation clock.
    /// The topic's dispatch rate clock (shared with the topic's other subscriptions).
    topic_dispatch: Arc<RateClock>,
    /// This subscription's own dispatch rate clock.
    sub_dispatch: RateClock,
    /// Dispatch paused by the rate limit until then.
    dispatch_wait: Option<tokio::time::Instant>,
    topic: String,
    name: String,
    partition: i32,
    ml: ManagedLedger,
    lac: watch::Receiver<Position>,
    acks: AckState,
    consumers: Vec<Consumer>,
    sub_type: Option<SubType>,
    rr: usize,
    /// Last position taken from the log (delivered, deferred or skipped).
    read_pos: Position,
    replay: BTreeSet<Position>,
    redeliveries: HashMap<Position, u32>,
    /// Entry -> consumer key holding it unacked.
    pending: HashMap<Position, u64>,
    /// Read-ahead of catch-up reads; front is the entry after `read_pos`.
    read_buf: VecDeque<(Position, Bytes)>,
    /// deliver_at_time -> entries (Shared / Key_Shared delayed delivery).
    delayed: BTreeMap<(u64, Position), ()>,
    /// Key_Shared: hash slot -> (consumer key, entries unacked).
    ks_holders: HashMap<u32, (u64, u32)>,
    pending_slot: HashMap<Position, u32>,
    /// Exclusive/Failover active consumer key.
    active: Option<u64>,
    ack_seq: u64,
    dirty: Arc<Notify>,
    config: SubscriptionConfig,
    metrics: Metrics,
    /// Key_Shared auto-split hash ring: point -> consumer key.
    ring: BTreeMap<u32, u64>,
    /// Key_Shared: hash slot of each entry waiting in replay.
    deferred_slots: HashMap<Position, u32>,
    /// Whether a flusher persists this cursor.
    durable: bool,
    /// Consumers told REACHED_END_OF_TOPIC.
    ended: HashSet<u64>,
    /// A read failed: try again shortly.
    retry: bool,
    /// A consumer with permits was skipped because its connection is congested.
    congested: bool,
    /// The topic's metric series.
    series: crate::metrics::TopicMetrics,
}

/// A consumer can take an entry: it has permits and its connection keeps up.
fn ready(c: &Consumer) -> bool {
    c.permits > 0 && !c.spec.out.is_congested()
}

/// Murmur3 32-bit (seed 0), the hash Pulsar uses for Key_Shared ranges.
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut k: u32 = 0;
        for (i, b) in rem.iter().enumerate() {
            k ^= u32::from(*b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// What the dispatcher needs from an entry's metadata.
struct EntryView {
    payload: Payload,
    num_messages: i64,
    slot: u32,
    deliver_at: Option<u64>,
}

fn view(data: Bytes) -> Option<EntryView> {
    let payload = Payload::from_raw(data).ok()?;
    let md = &payload.metadata;
    let num_messages = i64::from(md.num_messages_in_batch.unwrap_or(1).max(1));
    let key: &[u8] = match (&md.ordering_key, &md.partition_key) {
        (Some(k), _) if !k.is_empty() => k,
        (_, Some(k)) => k.as_bytes(),
        _ => b"",
    };
    let slot = murmur3_32(key) % 65536;
    let deliver_at = md.deliver_at_time.filter(|t| *t > 0).map(|t| t as u64);
    Some(EntryView {
        payload,
        num_messages,
        slot,
        deliver_at,
    })
}

impl Actor {
    fn consumer_stats_of(c: &Consumer, backlog: u64) -> ConsumerStats {
        ConsumerStats {
            name: c.spec.name.clone(),
            permits: c.permits,
            unacked: c.unacked.len() as u64,
            backlog,
            msg_out: c.msg_out,
            sub_type: format!("{:?}", c.spec.sub_type),
            address: c.spec.address.clone(),
        }
    }

    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        debug!(topic = %self.topic, sub = %self.name, md = %self.acks.mark_delete(), "subscription started");
        loop {
            let next_delay = self.delayed.keys().next().map(|(t, _)| *t);
            let delay_sleep = async {
                match next_delay {
                    Some(t) => {
                        tokio::time::sleep(Duration::from_millis(t.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    match cmd {
                        Cmd::Close(assigned, reply) => {
                            self.close_all_consumers_to(assigned);
                            if self.durable {
                                self.dirty.notify_one();
                                // Let the flusher take its final snapshot (none when another
                                // broker took the topic over: the flusher has stopped or stops
                                // when it finds the actor gone).
                                if !self.ml.is_fenced() {
                                    self.drain_snapshots(&mut rx).await;
                                }
                            }
                            let _ = reply.send(());
                            return;
                        }
                        Cmd::Unsubscribe(key, reply) => {
                            if self.consumers.iter().any(|c| c.spec.key != key) {
                                let _ = reply.send(Err(BrokerError::ConsumerBusy("subscription has other connected consumers".into())));
                                continue;
                            }
                            self.consumers.clear();
                            if self.durable {
                                self.stop_flusher(&mut rx).await;
                            }
                            let _ = reply.send(Ok(()));
                            return;
                        }
                        other => self.handle(other).await,
                    }
                }
                _ = self.lac.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)), if self.retry => {
                    self.retry = false;
                }
                _ = tokio::time::sleep(Duration::from_millis(5)), if self.congested => {
                    self.congested = false;
                }
                _ = tokio::time::sleep_until(self.dispatch_wait.unwrap_or_else(tokio::time::Instant::now)), if self.dispatch_wait.is_some() => {
                    self.dispatch_wait = None;
                }
                _ = delay_sleep => {
                    let now = now_ms();
                    let due: Vec<(u64, Position)> = self.delayed.range(..(now + 1, Position::EARLIEST)).map(|(k, _)| *k).collect();
                    for k in due {
                        self.delayed.remove(&k);
                        self.replay.insert(k.1);
                    }
                }
            }
            self.dispatch().await;
        }
    }

    /// Answers snapshot requests until the flusher has written the latest state, then stops it.
    async fn drain_snapshots(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        let target = self.ack_seq;
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        let mut answered = target == 0;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Snapshot(r)) => {
                        if answered || self.ml.is_fenced() {
                            let _ = r.send((u64::MAX, self.acks.snapshot()));
                            return;
                        }
                        let _ = r.send((self.ack_seq, self.acks.snapshot()));
                        answered = true;
                        // One more round so the flusher gets told to stop after writing.
                        self.dirty.notify_one();
                    }
                    Some(Cmd::AddConsumer(_, r)) => { let _ = r.send(Err(BrokerError::ServiceNotReady("subscription closing".into()))); }
                    Some(_) => {}
                    None => return,
                },
                _ = &mut deadline => {
                    warn!(topic = %self.topic, sub = %self.name, "cursor flush on close timed out");
                    return;
                }
            }
        }
    }

    async fn stop_flusher(&mut self, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        self.dirty.notify_one();
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Snapshot(r)) => { let _ = r.send((u64::MAX, self.acks.snapshot())); return; }
                    Some(_) => {}
                    None => return,
                },
                _ = &mut deadline => return,
            }
        }
    }

    fn close_all_consumers(&mut self) {
        self.close_all_consumers_to(None)
    }

    fn close_all_consumers_to(&mut self, assigned: Option<String>) {
        for c in self.consumers.drain(..) {
            self.metrics.consumers.dec();
            let _ = c.spec.out.send(Frame::simple(commands::close_consumer(
                c.spec.consumer_id,
                0,
                assigned.clone(),
            )));
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::AddConsumer(spec, reply) => {
                let r = self.add_consumer(spec);
                let _ = reply.send(r);
            }
            Cmd::RemoveConsumer(key, reply) => {
                self.remove_consumer(key);
                let _ = reply.send(self.consumers.len());
            }
            Cmd::Flow(key, n) => {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.key == key) {
                    c.permits = c.permits.saturating_add(i64::from(n));
                }
            }
            Cmd::Ack {
                key,
                cumulative,
                ids,
                reply,
            } => {
                self.ack(key, cumulative, ids);
                if let Some(r) = reply {
                    let _ = r.send(self.ack_seq);
                }
            }
            Cmd::Redeliver(key, positions) => self.redeliver(key, positions),
            Cmd::Seek(target, reply) => {
                let r = self.seek(target).await;
                let _ = reply.send(r);
            }
            Cmd::SetDispatchRate(limit) => {
                if self.sub_dispatch.set(limit) {
                    self.dispatch_wait = None;
                }
            }
            Cmd::ConsumerCount(reply) => {
                let _ = reply.send(self.consumers.len());
            }
            Cmd::Stats(key, reply) => {
                let backlog = self.ml.entries_after(self.acks.mark_delete());
                let st = self
                    .consumers
                    .iter()
                    .find(|c| c.spec.key == key)
                    .map(|c| Self::consumer_stats_of(c, backlog));
                let _ = reply.send(st);
            }
            Cmd::AllStats(reply) => {
                let backlog = self.ml.entries_after(self.acks.mark_delete());
                let st = self
                    .consumers
                    .iter()
                    .map(|c| Self::consumer_stats_of(c, backlog))
                    .collect();
                let _ = reply.send(st);
            }
            Cmd::MarkDelete(reply) => {
                let _ = reply.send(self.acks.mark_delete());
            }
            Cmd::AckSeq(reply) => {
                let _ = reply.send(self.ack_seq);
            }
            Cmd::Snapshot(reply) => {
                // Another broker owns the topic now (its ledger was fenced): it is the only
                // writer of the cursor; stop persisting ours.
                let seq = if self.ml.is_fenced() {
                    u64::MAX
                } else {
                    self.ack_seq
                };
                let _ = reply.send((seq, self.acks.snapshot()));
            }
            Cmd::Unsubscribe(..) | Cmd::Close(..) => {}
        }
    }

    fn add_consumer(&mut self, spec: ConsumerSpec) -> Result<()> {
        if let Some(t) = self.sub_type
            && !self.consumers.is_empty()
        {
            if t != spec.sub_type {
                return Err(BrokerError::ConsumerBusy(format!(
                    "subscription {} is of type {:?}, not {:?}",
                    self.name, t, spec.sub_type
                )));
            }
            if t == SubType::Exclusive {
                return Err(BrokerError::ConsumerBusy(
                    "exclusive consumer is already connected".into(),
                ));
            }
            if t == SubType::KeyShared {
                let mode = |c: &ConsumerSpec| {
                    c.key_shared
                        .as_ref()
                        .map(|k| k.mode)
                        .unwrap_or(KeySharedMode::AutoSplit)
                };
                if mode(&self.consumers[0].spec) != mode(&spec) {
                    return Err(BrokerError::ConsumerBusy(
                        "key_shared mode differs from other consumers".into(),
                    ));
                }
            }
        }
        if spec.sub_type == SubType::KeyShared
            && let Some(ks) = &spec.key_shared
            && ks.mode == KeySharedMode::Sticky
        {
            for (s, e) in &ks.ranges {
                if *s < 0 || *e > 65535 || s > e {
                    return Err(BrokerError::NotAllowed(format!(
                        "invalid hash range [{s}, {e}]"
                    )));
                }
                for c in &self.consumers {
                    if let Some(o) = &c.spec.key_shared
                        && o.ranges.iter().any(|(os, oe)| s <= oe && os <= e)
                    {
                        return Err(BrokerError::ConsumerBusy(format!(
                            "hash range [{s}, {e}] overlaps consumer {}",
                            c.spec.name
                        )));
                    }
                }
            }
        }
        self.sub_type = Some(spec.sub_type);
        debug!(topic = %self.topic, sub = %self.name, consumer = %spec.name, sub_type = ?spec.sub_type, "consumer added");
        if spec.sub_type == SubType::KeyShared {
            for i in 0..100u32 {
                let point =
                    murmur3_32(format!("{}-{}-{i}", spec.name, spec.key).as_bytes()) % 65536;
                self.ring.insert(point, spec.key);
            }
        }
        self.consumers.push(Consumer {
            spec,
            permits: 0,
            unacked: BTreeSet::new(),
            msg_out: 0,
        });
        self.metrics.consumers.inc();
        self.update_active(true);
        Ok(())
    }

    fn remove_consumer(&mut self, key: u64) {
        let Some(idx) = self.consumers.iter().position(|c| c.spec.key == key) else {
            return;
        };
        let c = self.consumers.remove(idx);
        self.metrics.consumers.dec();
        self.ring.retain(|_, k| *k != key);
        debug!(topic = %self.topic, sub = %self.name, consumer = %c.spec.name, unacked = c.unacked.len(), "consumer removed");
        for p in c.unacked {
            self.push_replay(p, true);
        }
        if self.active == Some(key) {
            self.active = None;
        }
        self.update_active(false);
    }

    /// Moves an unacked entry back to replay.
    fn push_replay(&mut self, p: Position, count: bool) {
        self.pending.remove(&p);
        if let Some(slot) = self.pending_slot.remove(&p) {
            self.deferred_slots.insert(p, slot);
            if let Some(h) = self.ks_holders.get_mut(&slot) {
                h.1 = h.1.saturating_sub(1);
                if h.1 == 0 {
                    self.ks_holders.remove(&slot);
                }
            }
        }
        if !self.acks.is_acked(p) {
            if count {
                *self.redeliveries.entry(p).or_insert(0) += 1;
            }
            self.replay.insert(p);
        }
    }

    /// Recomputes the Exclusive/Failover active consumer; on a change, everything the old one
    /// had unacked is redelivered and ACTIVE_CONSUMER_CHANGE goes to every consumer.
    fn update_active(&mut self, joined: bool) {
        let Some(t) = self.sub_type else { return };
        if t != SubType::Failover && t != SubType::Exclusive {
            return;
        }
        let mut order: Vec<usize> = (0..self.consumers.len()).collect();
        order.sort_by(|&a, &b| {
            let (ca, cb) = (&self.consumers[a].spec, &self.consumers[b].spec);
            (ca.priority, &ca.name).cmp(&(cb.priority, &cb.name))
        });
        let new_active = if order.is_empty() {
            None
        } else {
            let idx = if self.partition >= 0 {
                // Partitions spread over consumers of the same priority level.
                let top = self.consumers[order[0]].spec.priority;
                let same = order
                    .iter()
                    .take_while(|&&i| self.consumers[i].spec.priority == top)
                    .count();
                order[self.partition as usize % same]
            } else {
                order[0]
            };
            Some(self.consumers[idx].spec.key)
        };
        let changed = new_active != self.active;
        if changed && let Some(old) = self.active {
            if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.key == old) {
                let unacked = std::mem::take(&mut c.unacked);
                for p in unacked {
                    self.push_replay(p, false);
                }
            }
        }
        self.active = new_active;
        if t == SubType::Failover && (changed || joined) {
            for c in &self.consumers {
                let is_active = Some(c.spec.key) == self.active;
                let _ = c
                    .spec
                    .out
                    .send(Frame::simple(commands::active_consumer_change(
                        c.spec.consumer_id,
                        is_active,
                    )));
            }
        }
    }

    fn ack(&mut self, key: u64, cumulative: bool, ids: Vec<AckId>) {
        let mut changed = false;
        for id in ids {
            let p = id.position;
            if cumulative {
                let upto = if id.ack_set.is_empty() { p } else { before(p) };
                if upto > self.acks.mark_delete() {
                    self.acks.ack_cumulative(upto);
                    changed = true;
                }
                if !id.ack_set.is_empty() {
                    changed |= self.ack_batch(p, &id.ack_set);
                }
                // Drop every pending entry of this consumer up to `upto`.
                let done: Vec<Position> = self
                    .consumers
                    .iter()
                    .find(|c| c.spec.key == key)
                    .map(|c| c.unacked.range(..=upto).copied().collect())
                    .unwrap_or_default();
                for d in done {
                    self.forget(d);
                }
                self.replay.retain(|r| *r > upto);
                self.redeliveries.retain(|r, _| *r > upto);
            } else if !id.ack_set.is_empty() {
                changed |= self.ack_batch(p, &id.ack_set);
            } else if self.acks.ack(p) {
                self.forget(p);
                changed = true;
            }
        }
        if changed {
            let ml = &self.ml;
            self.acks.advance(|p| ml.next_position(p));
            self.ack_seq += 1;
            self.dirty.notify_one();
        }
    }

    fn ack_batch(&mut self, p: Position, set: &[i64]) -> bool {
        if self.acks.is_acked(p) {
            return false;
        }
        if self.acks.ack_batch(p, set) {
            self.forget(p);
        }
        true
    }

    /// An entry is fully acknowledged: drop it from every tracking structure.
    fn forget(&mut self, p: Position) {
        if let Some(k) = self.pending.remove(&p)
            && let Some(c) = self.consumers.iter_mut().find(|c| c.spec.key == k)
        {
            c.unacked.remove(&p);
        }
        if let Some(slot) = self.pending_slot.remove(&p)
            && let Some(h) = self.ks_holders.get_mut(&slot)
        {
            h.1 = h.1.saturating_sub(1);
            if h.1 == 0 {
                self.ks_holders.remove(&slot);
            }
        }
        self.replay.remove(&p);
        self.deferred_slots.remove(&p);
        self.redeliveries.remove(&p);
    }

    fn redeliver(&mut self, key: u64, positions: Option<Vec<Position>>) {
        let Some(c) = self.consumers.iter_mut().find(|c| c.spec.key == key) else {
            return;
        };
        let list: Vec<Position> = match positions {
            Some(ps) if !ps.is_empty() => ps.into_iter().filter(|p| c.unacked.remove(p)).collect(),
            _ => std::mem::take(&mut c.unacked).into_iter().collect(),
        };
        for p in list {
            self.push_replay(p, true);
        }
    }

    async fn seek(&mut self, target: SeekTarget) -> Result<()> {
        let md = match target {
            SeekTarget::Position(p) => {
                if p.ledger == u64::MAX {
                    self.ml.first_position()
                } else if p.ledger == i64::MAX as u64 {
                    self.ml.last_confirmed()
                } else {
                    before(p).max(self.ml.first_position())
                }
            }
            SeekTarget::PublishTime(t) => {
                let found = self
                    .ml
                    .find_first(|d| {
                        Payload::from_raw(d.clone())
                            .map(|p| p.metadata.publish_time >= t)
                            .unwrap_or(false)
                    })
                    .await?;
                match found {
                    Some(p) => before(p),
                    None => self.ml.last_confirmed(),
                }
            }
        };
        info!(topic = %self.topic, sub = %self.name, md = %md, "seek");
        self.acks.reset(md);
        self.read_pos = md;
        self.replay.clear();
        self.pending.clear();
        self.pending_slot.clear();
        self.ks_holders.clear();
        self.read_buf.clear();
        self.delayed.clear();
        self.redeliveries.clear();
        self.deferred_slots.clear();
        self.active = None;
        self.ack_seq += 1;
        self.dirty.notify_one();
        // Consumers reconnect and resubscribe, so client and broker agree on permits.
        self.close_all_consumers();
        self.ring.clear();
        Ok(())
    }

    /// Skips over acknowledged entries at the read position.
    fn advance(&mut self) {
        if self.read_pos < self.acks.mark_delete() {
            self.read_pos = self.acks.mark_delete();
            self.read_buf.clear();
        }
    }

    /// Tells consumers of a terminated topic that they have read everything.
    fn notify_end(&mut self) {
        if !self.ml.is_terminated() || !self.replay.is_empty() || !self.delayed.is_empty() {
            return;
        }
        for c in &self.consumers {
            if self.ended.insert(c.spec.key) {
                let _ = c
                    .spec
                    .out
                    .send(Frame::simple(commands::reached_end_of_topic(
                        c.spec.consumer_id,
                    )));
            }
        }
    }

    /// Whether some consumer can take an entry now. A consumer with permits whose connection is
    /// congested schedules a quick retry instead.
    fn has_permits(&mut self) -> bool {
        let mut congested = false;
        for c in &self.consumers {
            if c.permits > 0 {
                if !c.spec.out.is_congested() {
                    return true;
                }
                congested = true;
            }
        }
        self.congested |= congested;
        false
    }

    /// Picks the consumer index for an entry, or None if it must wait.
    fn pick(&mut self, v: &EntryView, blocked_slots: &HashSet<u32>) -> Option<usize> {
        match self.sub_type? {
            SubType::Exclusive | SubType::Failover => {
                let a = self.active?;
                let i = self.consumers.iter().position(|c| c.spec.key == a)?;
                ready(&self.consumers[i]).then_some(i)
            }
            SubType::Shared => {
                let n = self.consumers.len();
                for k in 0..n {
                    let i = (self.rr + k) % n;
                    if ready(&self.consumers[i]) {
                        self.rr = (i + 1) % n;
                        return Some(i);
                    }
                }
                None
            }
            SubType::KeyShared => {
                if blocked_slots.contains(&v.slot) {
                    return None;
                }
                let target = if let Some((holder, n)) = self.ks_holders.get(&v.slot)
                    && *n > 0
                {
                    *holder
                } else {
                    self.owner_of(v.slot)?
                };
                let i = self.consumers.iter().position(|c| c.spec.key == target)?;
                ready(&self.consumers[i]).then_some(i)
            }
        }
    }

    fn owner_of(&self, slot: u32) -> Option<u64> {
        let sticky = self
            .consumers
            .first()
            .and_then(|c| c.spec.key_shared.as_ref())
            .is_some_and(|k| k.mode == KeySharedMode::Sticky);
        if sticky {
            let s = slot as i32;
            return self
                .consumers
                .iter()
                .find(|c| {
                    c.spec
                        .key_shared
                        .as_ref()
                        .is_some_and(|k| k.ranges.iter().any(|(a, b)| *a <= s && s <= *b))
                })
                .map(|c| c.spec.key);
        }
        self.ring
            .range(slot..)
            .next()
            .or_else(|| self.ring.iter().next())
            .map(|(_, k)| *k)
    }

    fn send_to(&mut self, i: usize, p: Position, v: EntryView) {
        let redelivery = self.redeliveries.get(&p).copied().unwrap_or(0);
        let ack_set = self
            .acks
            .batch_remaining(p)
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let c = &mut self.consumers[i];
        let mut cmd = commands::message(
            c.spec.consumer_id,
            MessageIdData {
                ledger_id: p.ledger,
                entry_id: p.wire_entry(),
                partition: Some(self.partition),
                batch_index: None,
                ..Default::default()
            },
            redelivery,
        );
        if let Some(m) = cmd.message.as_mut() {
            m.ack_set = ack_set;
        }
        c.permits -= v.num_messages;
        c.msg_out += v.num_messages as u64;
        c.unacked.insert(p);
        let key = c.spec.key;
        let bytes = v.payload.raw.len() as u64;
        if c.spec
            .out
            .send(Frame::with_payload(cmd, v.payload))
            .is_err()
        {
            debug!(consumer = key, "consumer connection gone");
        }
        self.series.out_messages.inc_by(v.num_messages as u64);
        self.series.out_bytes.inc_by(bytes);
        self.charge_rate(v.num_messages.max(1) as u64, bytes);
        self.pending.insert(p, key);
        if self.sub_type == Some(SubType::KeyShared) {
            let h = self.ks_holders.entry(v.slot).or_insert((key, 0));
            h.0 = key;
            h.1 += 1;
            self.pending_slot.insert(p, v.slot);
        }
    }

    async fn read_entry(&mut self, p: Position) -> Option<Bytes> {
        match self.ml.read_one(p).await {
            Ok(d) => d,
            Err(e) => {
                warn!(topic = %self.topic, sub = %self.name, position = %p, error = %e, "read failed; retrying");
                self.retry = true;
                None
            }
        }
    }

    /// Sends whatever can be sent now.
    async fn dispatch(&mut self) {
        self.dispatch_inner().await;
        if self
            .consumers
            .iter()
            .any(|c| c.permits > 0 && c.spec.out.is_congested())
        {
            self.congested = true;
        }
    }

    /// Whether a dispatch rate limit (the subscription's or the topic's) pauses dispatching now
    /// (then `dispatch_wait` is set).
    fn rate_limited(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if let Some(w) = self.dispatch_wait {
            if w > now {
                return true;
            }
            self.dispatch_wait = None;
        }
        let wait = self
            .topic_dispatch
            .wait_until(now)
            .max(self.sub_dispatch.wait_until(now));
        self.dispatch_wait = wait;
        wait.is_some()
    }

    /// Charges one dispatched entry to the rate limits' reservation clocks.
    fn charge_rate(&mut self, msgs: u64, bytes: u64) {
        self.topic_dispatch.charge(msgs, bytes);
        self.sub_dispatch.charge(msgs, bytes);
    }

    async fn dispatch_inner(&mut self) {
        let key_shared = self.sub_type == Some(SubType::KeyShared);
        let shared_like = matches!(self.sub_type, Some(SubType::Shared | SubType::KeyShared));
        loop {
            if self.rate_limited() {
                return;
            }
            if self.ml.is_terminated()
                && self.read_buf.is_empty()
                && self.ml.next_position(self.read_pos).is_none()
            {
                self.notify_end();
            }
            if self.consumers.is_empty() || !self.has_permits() {
                return;
            }
            let mut progressed = false;
            let mut deferred = false;
            let mut blocked: HashSet<u32> = HashSet::new();
            // 1. Replay, oldest first.
            if !self.replay.is_empty() {
                let batch: Vec<Position> = self.replay.iter().take(256).copied().collect();
                for p in batch {
                    if !self.has_permits() || self.rate_limited() {
                        break;
                    }
                    if self.acks.is_acked(p) {
                        self.replay.remove(&p);
                        continue;
                    }
                    let Some(data) = self.read_entry(p).await else {
                        return;
                    };
                    let Some(v) = view(data) else {
                        warn!(topic = %self.topic, position = %p, "unreadable entry skipped");
                        self.replay.remove(&p);
                        continue;
                    };
                    match self.pick(&v, &blocked) {
                        Some(i) => {
                            self.replay.remove(&p);
                            self.deferred_slots.remove(&p);
                            self.send_to(i, p, v);
                            progressed = true;
                        }
                        None if key_shared => {
                            blocked.insert(v.slot);
                        }
                        None => break,
                    }
                }
                if !self.replay.is_empty() && !key_shared {
                    // Exclusive/Failover/Shared: replay strictly before new entries.
                    if !progressed {
                        return;
                    }
                    continue;
                }
                if key_shared {
                    for p in &self.replay {
                        if let Some(s) = self.deferred_slots.get(p) {
                            blocked.insert(*s);
                        }
                    }
                }
            }
            if self.replay.len() >= self.config.max_replay {
                return;
            }
            // 2. New entries.
            if self.read_buf.is_empty() {
                let Some(next) = self.ml.next_position(self.read_pos) else {
                    self.notify_end();
                    return;
                };
                match self.ml.read(next, 64).await {
                    Ok(es) => self.read_buf.extend(es),
                    Err(e) => {
                        warn!(topic = %self.topic, sub = %self.name, error = %e, "read failed; retrying");
                        self.retry = true;
                        return;
                    }
                }
                if self.read_buf.is_empty() {
                    return;
                }
            }
            while let Some((p, data)) = self.read_buf.front().cloned() {
                if !self.has_permits() || self.rate_limited() {
                    return;
                }
                if self.acks.is_acked(p) {
                    self.read_buf.pop_front();
                    self.read_pos = p;
                    continue;
                }
                let Some(v) = view(data) else {
                    warn!(topic = %self.topic, position = %p, "unreadable entry skipped");
                    self.read_buf.pop_front();
                    self.read_pos = p;
                    continue;
                };
                if shared_like
                    && let Some(t) = v.deliver_at
                    && t > now_ms()
                {
                    self.delayed.insert((t, p), ());
                    self.read_buf.pop_front();
                    self.read_pos = p;
                    continue;
                }
                match self.pick(&v, &blocked) {
                    Some(i) => {
                        self.read_buf.pop_front();
                        self.read_pos = p;
                        self.send_to(i, p, v);
                        progressed = true;
                    }
                    None if key_shared => {
                        // Defer: keeps this key's order behind it.
                        blocked.insert(v.slot);
                        self.read_buf.pop_front();
                        self.read_pos = p;
                        self.replay.insert(p);
                        self.deferred_slots.insert(p, v.slot);
                        deferred = true;
                        if self.replay.len() >= self.config.max_replay {
                            return;
                        }
                    }
                    None => return,
                }
            }
            if !progressed && !deferred {
                return;
            }
        }
    }
}
