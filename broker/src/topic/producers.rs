//! The producers of a topic and Pulsar's access modes: Shared, Exclusive, ExclusiveWithFencing
//! (fences the others, connected and queued) and WaitForExclusive (queued until the topic is
//! free). Every grant of exclusive access bumps the topic epoch, unless the producer comes back
//! with the current epoch (a reconnect); one coming back with an older epoch was fenced.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::pulsar::ProducerAccessMode;
use tokio::sync::oneshot;
use tracing::info;

use crate::error::{BrokerError, Result};
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::stats::{ClientInfo, PublisherStats, RateMeter};
use crate::topic_name::TopicName;

/// A producer attached to a topic.
struct ProducerEntry {
    name: String,
    producer_id: u64,
    mode: ProducerAccessMode,
    out: Outbound,
    client: ClientInfo,
    metadata: Vec<(String, String)>,
    meter: Arc<RateMeter>,
}

impl ProducerEntry {
    /// Tells the client the broker closed its producer (it reconnects, to `assigned` if given).
    fn close(&self, assigned: Option<String>) {
        let _ = self.out.send(Frame::simple(commands::close_producer(
            self.producer_id,
            0,
            assigned,
        )));
    }
}

/// A producer waiting for exclusive access (WaitForExclusive).
struct Waiter {
    key: u64,
    entry: ProducerEntry,
    ready: oneshot::Sender<Result<u64>>,
}

#[derive(Default)]
struct State {
    by_key: HashMap<u64, ProducerEntry>,
    waiting: Vec<Waiter>,
}

/// Outcome of adding a producer.
pub enum ProducerAdmission {
    /// Ready; the topic epoch.
    Ready(u64),
    /// Queued for exclusive access; resolves with the topic epoch when granted, or with
    /// `ProducerFenced` when an ExclusiveWithFencing producer took the topic meanwhile.
    Waiting(oneshot::Receiver<Result<u64>>),
}

/// A producer asking to join.
pub struct ProducerRequest<'a> {
    /// Unique across the broker.
    pub key: u64,
    /// The client's producer id, used in frames.
    pub producer_id: u64,
    /// Producer name (unique per topic).
    pub name: &'a str,
    /// Access mode requested.
    pub mode: ProducerAccessMode,
    /// The topic epoch the producer last had (PRODUCER's `topic_epoch`, on reconnects).
    pub epoch: Option<u64>,
    /// Where frames for this producer go.
    pub out: Outbound,
    /// Its connection (stats).
    pub client: ClientInfo,
    /// PRODUCER's metadata (stats).
    pub metadata: Vec<(String, String)>,
    /// Counts what it publishes (the connection's SEND path records into it).
    pub meter: Arc<RateMeter>,
}

/// The producers of one topic.
pub(crate) struct Producers {
    state: Mutex<State>,
    epoch: AtomicU64,
    metrics: Metrics,
}

impl Producers {
    pub fn new(metrics: Metrics) -> Self {
        Producers {
            state: Mutex::new(State::default()),
            epoch: AtomicU64::new(0),
            metrics,
        }
    }

    /// Admits a producer to `topic` under its access mode.
    pub fn admit(&self, topic: &TopicName, req: ProducerRequest<'_>) -> Result<ProducerAdmission> {
        let mut p = self.state.lock();
        let name = req.name;
        if p.by_key.values().any(|e| e.name == name)
            || p.waiting.iter().any(|w| w.entry.name == name)
        {
            return Err(BrokerError::ProducerBusy(format!(
                "producer with name '{name}' is already connected to topic {topic}"
            )));
        }
        let has_exclusive = p
            .by_key
            .values()
            .any(|e| e.mode != ProducerAccessMode::Shared);
        let entry = ProducerEntry {
            name: name.to_owned(),
            producer_id: req.producer_id,
            mode: req.mode,
            out: req.out,
            client: req.client,
            metadata: req.metadata,
            meter: req.meter,
        };
        let current = self.epoch.load(Ordering::Relaxed);
        if req.mode != ProducerAccessMode::Shared
            && let Some(e) = req.epoch
            && e < current
        {
            return Err(BrokerError::ProducerFenced(format!(
                "topic epoch of {topic} has already moved: current epoch {current}, producer epoch {e}"
            )));
        }
        // A reconnect with the current epoch keeps it; any other grant moves it.
        let grant = |epoch: &AtomicU64| {
            if req.epoch != Some(current) {
                epoch.fetch_add(1, Ordering::Relaxed);
            }
        };
        match req.mode {
            ProducerAccessMode::Shared if has_exclusive => {
                return Err(BrokerError::ProducerBusy(format!(
                    "topic {topic} has an exclusive producer"
                )));
            }
            ProducerAccessMode::Shared => {}
            ProducerAccessMode::Exclusive => {
                if !p.by_key.is_empty() {
                    return Err(BrokerError::ProducerFenced(format!(
                        "topic {topic} already has producers"
                    )));
                }
                grant(&self.epoch);
            }
            ProducerAccessMode::ExclusiveWithFencing => {
                for (_, old) in p.by_key.drain() {
                    info!(topic = %topic, producer = %old.name, "fencing producer");
                    old.close(None);
                    self.metrics.producers.dec();
                }
                for w in p.waiting.drain(..) {
                    info!(topic = %topic, producer = %w.entry.name, "fencing waiting producer");
                    let _ = w.ready.send(Err(BrokerError::ProducerFenced(format!(
                        "topic {topic} was taken by an ExclusiveWithFencing producer"
                    ))));
                }
                grant(&self.epoch);
            }
            ProducerAccessMode::WaitForExclusive => {
                if !p.by_key.is_empty() {
                    let (tx, rx) = oneshot::channel();
                    p.waiting.push(Waiter {
                        key: req.key,
                        entry,
                        ready: tx,
                    });
                    return Ok(ProducerAdmission::Waiting(rx));
                }
                grant(&self.epoch);
            }
        }
        p.by_key.insert(req.key, entry);
        self.metrics.producers.inc();
        Ok(ProducerAdmission::Ready(self.epoch.load(Ordering::Relaxed)))
    }

    /// Removes a producer; grants exclusive access to the next waiter if the topic is free.
    pub fn remove(&self, key: u64) {
        let mut p = self.state.lock();
        if p.by_key.remove(&key).is_some() {
            self.metrics.producers.dec();
        }
        p.waiting.retain(|w| w.key != key);
        while p.by_key.is_empty() && !p.waiting.is_empty() {
            let w = p.waiting.remove(0);
            let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
            if w.ready.send(Ok(epoch)).is_ok() {
                p.by_key.insert(w.key, w.entry);
                self.metrics.producers.inc();
            }
        }
    }

    /// Closes every producer from the broker side (clients reconnect, to `assigned` if given);
    /// `drop_waiting` also forgets the queued ones. Returns how many were connected.
    pub fn close_all(&self, assigned: Option<String>, drop_waiting: bool) -> usize {
        let mut p = self.state.lock();
        let n = p.by_key.len();
        for (_, e) in p.by_key.drain() {
            e.close(assigned.clone());
            self.metrics.producers.dec();
        }
        if drop_waiting {
            p.waiting.clear();
        }
        n
    }

    /// Number of producers connected.
    pub fn count(&self) -> usize {
        self.state.lock().by_key.len()
    }

    /// Names of connected producers.
    pub fn names(&self) -> Vec<String> {
        self.state
            .lock()
            .by_key
            .values()
            .map(|e| e.name.clone())
            .collect()
    }

    /// Stats of the connected producers, and how many wait for exclusive access.
    pub fn stats(&self) -> (Vec<PublisherStats>, usize) {
        let p = self.state.lock();
        let mut out: Vec<PublisherStats> = p.by_key.values().map(ProducerEntry::stats).collect();
        out.sort_by_key(|s| s.producer_id);
        (out, p.waiting.len())
    }

    /// The topic epoch (bumped by every grant of exclusive access).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }
}

impl ProducerEntry {
    fn stats(&self) -> PublisherStats {
        let mut s = PublisherStats {
            access_mode: self.mode.as_str_name().to_owned(),
            producer_id: self.producer_id,
            producer_name: self.name.clone(),
            metadata: self.metadata.iter().cloned().collect(),
            ..Default::default()
        };
        s.set_meter(&self.meter.read());
        s.set_client(&self.client);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundRx;

    struct Fixture {
        producers: Producers,
        topic: TopicName,
        out: Outbound,
        rx: OutboundRx,
        meter: Arc<RateMeter>,
    }

    fn fixture() -> Fixture {
        let (out, rx) = Outbound::channel();
        Fixture {
            producers: Producers::new(Metrics::new()),
            topic: TopicName::parse("persistent://public/default/modes").expect("topic name"),
            out,
            rx,
            meter: Arc::new(RateMeter::default()),
        }
    }

    impl Fixture {
        fn admit(
            &self,
            key: u64,
            mode: ProducerAccessMode,
            epoch: Option<u64>,
        ) -> Result<ProducerAdmission> {
            let name = format!("p{key}");
            self.producers.admit(
                &self.topic,
                ProducerRequest {
                    key,
                    producer_id: key,
                    name: &name,
                    mode,
                    epoch,
                    out: self.out.clone(),
                    client: ClientInfo::new("127.0.0.1:1".into(), "test".into()),
                    metadata: Vec::new(),
                    meter: self.meter.clone(),
                },
            )
        }
    }

    fn ready(a: Result<ProducerAdmission>) -> u64 {
        match a {
            Ok(ProducerAdmission::Ready(epoch)) => epoch,
            Ok(ProducerAdmission::Waiting(_)) => panic!("queued, expected ready"),
            Err(e) => panic!("refused: {e}"),
        }
    }

    fn code(a: Result<ProducerAdmission>) -> i32 {
        match a {
            Err(e) => e.server_error(),
            Ok(_) => panic!("admitted, expected an error"),
        }
    }

    #[test]
    fn exclusive_refuses_others() {
        let f = fixture();
        assert_eq!(ready(f.admit(1, ProducerAccessMode::Exclusive, None)), 1);
        let fenced = crate::error::server_error::PRODUCER_FENCED;
        let busy = crate::error::server_error::PRODUCER_BUSY;
        assert_eq!(
            code(f.admit(2, ProducerAccessMode::Exclusive, None)),
            fenced
        );
        assert_eq!(code(f.admit(3, ProducerAccessMode::Shared, None)), busy);
        f.producers.remove(1);
        assert_eq!(ready(f.admit(2, ProducerAccessMode::Exclusive, None)), 2);
    }

    #[tokio::test]
    async fn wait_for_exclusive_is_granted_when_the_topic_frees() {
        let f = fixture();
        assert_eq!(ready(f.admit(1, ProducerAccessMode::Exclusive, None)), 1);
        let Ok(ProducerAdmission::Waiting(rx)) =
            f.admit(2, ProducerAccessMode::WaitForExclusive, None)
        else {
            panic!("expected to wait");
        };
        f.producers.remove(1);
        assert_eq!(rx.await.expect("granted").expect("not fenced"), 2);
        assert_eq!(f.producers.names(), vec!["p2".to_owned()]);
    }

    #[tokio::test]
    async fn exclusive_with_fencing_fences_connected_and_waiting() {
        let mut f = fixture();
        ready(f.admit(1, ProducerAccessMode::Exclusive, None));
        let Ok(ProducerAdmission::Waiting(rx)) =
            f.admit(2, ProducerAccessMode::WaitForExclusive, None)
        else {
            panic!("expected to wait");
        };
        assert_eq!(
            ready(f.admit(3, ProducerAccessMode::ExclusiveWithFencing, None)),
            2
        );
        let waiter = rx.await.expect("answered");
        assert_eq!(
            waiter.err().map(|e| e.server_error()),
            Some(crate::error::server_error::PRODUCER_FENCED)
        );
        // The connected one was told to close (its client reconnects and is then refused).
        let frame = f.rx.try_recv().expect("CLOSE_PRODUCER sent");
        let close = frame.command.close_producer.expect("a CLOSE_PRODUCER");
        assert_eq!(close.producer_id, 1);
        assert_eq!(f.producers.names(), vec!["p3".to_owned()]);
        // Producer 1 comes back with its old epoch after producer 3 left: still fenced.
        f.producers.remove(3);
        assert_eq!(
            code(f.admit(1, ProducerAccessMode::Exclusive, Some(1))),
            crate::error::server_error::PRODUCER_FENCED
        );
    }

    #[test]
    fn reconnect_with_the_current_epoch_keeps_it() {
        let f = fixture();
        assert_eq!(ready(f.admit(1, ProducerAccessMode::Exclusive, None)), 1);
        f.producers.remove(1);
        assert_eq!(ready(f.admit(1, ProducerAccessMode::Exclusive, Some(1))), 1);
        f.producers.remove(1);
        // An epoch from before a restart (ahead of this broker's) is a new grant.
        assert_eq!(ready(f.admit(1, ProducerAccessMode::Exclusive, Some(7))), 2);
    }
}
