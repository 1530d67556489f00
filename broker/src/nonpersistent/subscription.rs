//! A non-persistent subscription: its consumers with their permits, nothing else. No cursor,
//! no backlog, no redelivery: a message is sent to one consumer at the moment it is published
//! or dropped (and counted). Acks are accepted and ignored.

use std::sync::Arc;

use parking_lot::Mutex;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::MessageIdData;
use strata_proto::pulsar::command_subscribe::SubType;

use super::dispatcher;
pub use super::member::Member;
use crate::error::{BrokerError, Result};
use crate::outbound::Outbound;
use crate::stats::{ClientInfo, RateMeter, RateSampler};
use crate::subscription::KeySharedSpec;

/// A consumer joining a non-persistent subscription.
pub struct NpConsumerSpec {
    /// Broker-unique key.
    pub key: u64,
    /// The client's consumer id on its connection.
    pub consumer_id: u64,
    /// Consumer name.
    pub name: String,
    /// Priority level (lower is served first).
    pub priority: i32,
    /// Subscription type it asks for.
    pub sub_type: SubType,
    /// Key_Shared settings.
    pub key_shared: Option<KeySharedSpec>,
    /// Its connection's queue.
    pub out: Outbound,
    /// Who it is (stats).
    pub client: ClientInfo,
    /// Consumer metadata (stats).
    pub metadata: Vec<(String, String)>,
}

struct State {
    sub_type: SubType,
    members: Vec<Member>,
    /// Shared round-robin cursor.
    next: usize,
}

/// A non-persistent subscription.
pub struct NpSubscription {
    name: String,
    partition: i32,
    state: Mutex<State>,
    /// Messages sent to its consumers.
    out: Arc<RateMeter>,
    /// Messages dropped: no consumer, or none with permits and a connection that keeps up.
    drops: Arc<RateMeter>,
}

/// What the stats show of a subscription.
pub struct NpSubscriptionView<'a> {
    /// Subscription type.
    pub sub_type: SubType,
    /// Consumers.
    pub members: &'a [Member],
    /// Sent.
    pub out: &'a RateMeter,
    /// Dropped.
    pub drops: &'a RateMeter,
}

impl NpSubscription {
    /// A subscription without consumers.
    pub fn new(name: &str, partition: i32, sampler: &RateSampler) -> Self {
        NpSubscription {
            name: name.to_owned(),
            partition,
            state: Mutex::new(State {
                sub_type: SubType::Exclusive,
                members: Vec::new(),
                next: 0,
            }),
            out: sampler.meter(),
            drops: sampler.meter(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Admits a consumer: same type as those attached (an Exclusive one alone); a subscription
    /// without consumers takes the newcomer's type.
    pub fn add(&self, spec: NpConsumerSpec, sampler: &RateSampler) -> Result<()> {
        let mut st = self.state.lock();
        if !st.members.is_empty() {
            if st.sub_type != spec.sub_type {
                return Err(BrokerError::ConsumerBusy(format!(
                    "subscription {} is of type {:?}, not {:?}",
                    self.name, st.sub_type, spec.sub_type
                )));
            }
            if st.sub_type == SubType::Exclusive {
                return Err(BrokerError::ConsumerBusy(
                    "exclusive consumer is already connected".into(),
                ));
            }
        }
        if st.members.iter().any(|m| m.key == spec.key) {
            return Err(BrokerError::ConsumerBusy(
                "consumer already attached".into(),
            ));
        }
        st.sub_type = spec.sub_type;
        st.members.push(Member {
            key: spec.key,
            consumer_id: spec.consumer_id,
            name: spec.name,
            priority: spec.priority,
            permits: 0,
            key_shared: spec.key_shared,
            out: spec.out,
            client: spec.client,
            metadata: spec.metadata,
            meter: sampler.meter(),
        });
        Ok(())
    }

    /// Detaches a consumer; returns whether it was attached and how many remain.
    pub fn remove(&self, key: u64) -> (bool, usize) {
        let mut st = self.state.lock();
        let before = st.members.len();
        st.members.retain(|m| m.key != key);
        (st.members.len() < before, st.members.len())
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.state.lock().members.len()
    }

    /// FLOW: more permits for a consumer.
    pub fn flow(&self, key: u64, permits: u32) {
        let mut st = self.state.lock();
        if let Some(m) = st.members.iter_mut().find(|m| m.key == key) {
            m.permits = m.permits.saturating_add(i64::from(permits));
        }
    }

    /// Permits of a consumer (CONSUMER_STATS).
    pub fn permits(&self, key: u64) -> Option<i64> {
        let st = self.state.lock();
        st.members.iter().find(|m| m.key == key).map(|m| m.permits)
    }

    /// Sends a published message of `messages` messages (a batch costs one permit each) and
    /// Key_Shared hash `slot` to the consumer the type picks, or drops it. Returns whether it
    /// was sent.
    pub fn deliver(&self, payload: &Payload, messages: i64, slot: u32) -> bool {
        let bytes = payload.raw.len() as u64;
        let mut st = self.state.lock();
        let State {
            sub_type,
            members,
            next,
        } = &mut *st;
        let Some(i) = dispatcher::choose(*sub_type, self.partition, members, next, slot) else {
            self.drops.record(messages.max(0) as u64, bytes);
            return false;
        };
        let m = &mut members[i];
        let id = MessageIdData {
            ledger_id: 0,
            entry_id: 0,
            partition: Some(self.partition),
            ..Default::default()
        };
        let cmd = commands::message_command(m.consumer_id, id, 0);
        if !m.out.send_message(cmd, payload.raw.clone()) {
            self.drops.record(messages.max(0) as u64, bytes);
            return false;
        }
        m.permits -= messages;
        m.meter.record(messages.max(0) as u64, bytes);
        self.out.record(messages.max(0) as u64, bytes);
        true
    }

    /// Closes every consumer from the broker side (CLOSE_CONSUMER: clients reconnect through
    /// a lookup, to `assigned` when given). Returns how many were attached.
    pub fn close(&self, assigned: Option<String>) -> usize {
        let mut st = self.state.lock();
        let n = st.members.len();
        for m in st.members.drain(..) {
            let _ = m.out.send(Frame::simple(commands::close_consumer(
                m.consumer_id,
                0,
                assigned.clone(),
            )));
        }
        n
    }

    /// Runs `f` over what the stats show.
    pub fn with_view<R>(&self, f: impl FnOnce(NpSubscriptionView<'_>) -> R) -> R {
        let st = self.state.lock();
        f(NpSubscriptionView {
            sub_type: st.sub_type,
            members: &st.members,
            out: &self.out,
            drops: &self.drops,
        })
    }
}
