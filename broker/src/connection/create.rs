//! PRODUCER and SUBSCRIBE run as tasks of the connection, as Pulsar's `ServerCnx` runs them
//! (futures kept per id): the command loop starts the create and goes on with the next frame,
//! so one connection's creates run side by side and a slow one (topic load, cursor write,
//! schema check) holds up no other command of the connection.
//!
//! The command loop keeps one [`Pending`] mark per producer/consumer id being created, and the
//! create's result comes back to it through a channel: the loop registers what was created and
//! only then answers, so a FLOW or SEND that follows the answer always finds its consumer or
//! producer. Pulsar's rules for ids:
//! - a second PRODUCER/SUBSCRIBE with an id whose create is pending is refused with
//!   `ServiceNotReady` ("Producer/Consumer is already present on the connection"); the client
//!   retries;
//! - CLOSE_PRODUCER/CLOSE_CONSUMER of a pending id is answered at once; what the create makes is
//!   then closed (detached) and the create is not answered, as Pulsar completes its future
//!   exceptionally;
//! - when the connection closes, the channel closes: results already delivered are detached
//!   there, a create that finishes later detaches what it made itself. Every create runs on the
//!   connection's task tracker, which the connection waits for before it ends.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use strata_proto::commands;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::{BaseCommand, ServerError};
use tokio::sync::mpsc;
use tracing::{Instrument, Span, debug, info, warn};

use super::{Conn, Kind, NewConsumer, NewProducer, Origin, ProducerKind};
use super::{authorize, consumer, non_persistent, producer};
use crate::error::{BrokerError, Result};
use crate::topic_name::TopicName;

/// The result of a create task.
pub(super) enum Created {
    Producer {
        id: u64,
        request_id: u64,
        /// Boxed: two whole commands.
        result: Result<Box<NewProducer>>,
    },
    Consumer {
        id: u64,
        request_id: u64,
        result: Result<NewConsumer>,
    },
}

impl Created {
    /// Detaches what was created (nobody will use it).
    pub async fn discard(self) {
        match self {
            Created::Producer { result: Ok(p), .. } => match p.kind {
                ProducerKind::Persistent(s) => s.topic.remove_producer(s.key),
                ProducerKind::NonPersistent(s) => s.detach(),
            },
            Created::Consumer { result: Ok(c), .. } => match c {
                NewConsumer::Persistent(s) => s.detach().await,
                NewConsumer::NonPersistent(s) => s.detach(),
            },
            _ => {}
        }
    }
}

/// The mark of one pending create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Open,
    /// CLOSE_PRODUCER/CLOSE_CONSUMER came first: what the create makes is discarded.
    Closed,
}

/// The creates of a connection still running, and the channel their results come back on.
pub(super) struct Creating {
    producers: HashMap<u64, Pending>,
    consumers: HashMap<u64, Pending>,
    tx: mpsc::UnboundedSender<Created>,
    rx: mpsc::UnboundedReceiver<Created>,
}

impl Creating {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Creating {
            producers: HashMap::new(),
            consumers: HashMap::new(),
            tx,
            rx,
        }
    }

    fn marks(&mut self, kind: Kind) -> &mut HashMap<u64, Pending> {
        match kind {
            Kind::Producer => &mut self.producers,
            Kind::Consumer => &mut self.consumers,
        }
    }

    /// Marks `id` pending; false if a create of that id is already pending (closed or not).
    pub fn begin(&mut self, kind: Kind, id: u64) -> bool {
        match self.marks(kind).entry(id) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(Pending::Open);
                true
            }
        }
    }

    /// CLOSE of `id`: true if its create is pending (it is now marked closed).
    pub fn close(&mut self, kind: Kind, id: u64) -> bool {
        match self.marks(kind).get_mut(&id) {
            Some(p) => {
                *p = Pending::Closed;
                true
            }
            None => false,
        }
    }

    /// The create of `id` finished: true if what it made is kept, false if it was closed.
    pub fn finish(&mut self, kind: Kind, id: u64) -> bool {
        self.marks(kind).remove(&id) == Some(Pending::Open)
    }

    /// The next finished create.
    ///
    /// # Cancel safety
    /// Cancel safe (an mpsc receive).
    pub async fn next(&mut self) -> Option<Created> {
        self.rx.recv().await
    }

    /// The connection is closing: no more results are taken (later creates detach what they
    /// made themselves) and the ones delivered are detached.
    pub async fn shutdown(&mut self) {
        self.rx.close();
        while let Ok(c) = self.rx.try_recv() {
            c.discard().await;
        }
        self.producers.clear();
        self.consumers.clear();
    }
}

impl Conn {
    /// What a create task needs of this connection.
    pub(super) fn origin(&self) -> Origin {
        Origin {
            service: self.service.clone(),
            out: self.out.clone(),
            peer: self.peer,
            client_version: self.client_version.as_str().into(),
            role: self.session.as_ref().map(|s| s.role().into()),
        }
    }

    /// PRODUCER or SUBSCRIBE: refused while a create of the same id is pending; otherwise the
    /// producer/consumer this connection has under that id is replaced, and the create (its
    /// authorization included) runs on a task of the connection.
    pub(super) async fn start_create(&mut self, t: Type, cmd: BaseCommand) {
        let (kind, id, rid) = match (t, &cmd.producer, &cmd.subscribe) {
            (Type::Producer, Some(c), _) => (Kind::Producer, c.producer_id, c.request_id),
            (Type::Subscribe, _, Some(c)) => (Kind::Consumer, c.consumer_id, c.request_id),
            _ => return,
        };
        if !self.creating.begin(kind, id) {
            warn!(peer = %self.peer, id, ?kind, "create with the id of a pending create refused");
            let what = match kind {
                Kind::Producer => "Producer",
                Kind::Consumer => "Consumer",
            };
            self.send(commands::error(
                rid,
                ServerError::ServiceNotReady,
                format!("{what} is already present on the connection"),
            ));
            return;
        }
        self.replace(kind, id).await;
        let origin = self.origin();
        let tx = self.creating.tx.clone();
        let task = async move {
            let created = match kind {
                Kind::Producer => Created::Producer {
                    id,
                    request_id: rid,
                    result: create_producer(&origin, cmd).await.map(Box::new),
                },
                Kind::Consumer => Created::Consumer {
                    id,
                    request_id: rid,
                    result: create_consumer(&origin, cmd).await,
                },
            };
            if let Err(mpsc::error::SendError(created)) = tx.send(created) {
                debug!("connection closed during a create; detaching what it made");
                created.discard().await;
            }
        };
        self.tasks.spawn(task.instrument(Span::current()));
    }

    /// A new PRODUCER/SUBSCRIBE with the id of one of this connection's producers/consumers
    /// replaces it.
    async fn replace(&mut self, kind: Kind, id: u64) {
        match kind {
            Kind::Producer => {
                if let Some(old) = self.producers.remove(&id) {
                    old.topic.remove_producer(old.key);
                }
                self.close_np_producer(id);
            }
            Kind::Consumer => {
                if let Some(old) = self.consumers.remove(&id) {
                    old.sub.remove_consumer(old.key).await;
                }
                if let Some(old) = self.np_consumers.remove(&id) {
                    old.detach();
                }
            }
        }
    }

    /// CLOSE_PRODUCER/CLOSE_CONSUMER of an id whose create is pending: answered now, what the
    /// create makes is discarded. False if no create of that id is pending.
    pub(super) fn close_pending(&mut self, kind: Kind, id: u64, request_id: u64) -> bool {
        if !self.creating.close(kind, id) {
            return false;
        }
        info!(peer = %self.peer, id, ?kind, "closed before its creation was complete");
        self.send(commands::success(request_id));
        true
    }

    /// A create finished: register and answer, or discard what a CLOSE came for first.
    pub(super) async fn on_created(&mut self, created: Created) {
        let (kind, id) = match &created {
            Created::Producer { id, .. } => (Kind::Producer, *id),
            Created::Consumer { id, .. } => (Kind::Consumer, *id),
        };
        if !self.creating.finish(kind, id) {
            debug!(peer = %self.peer, id, ?kind, "discarding what a closed create made");
            created.discard().await;
            return;
        }
        match created {
            Created::Producer {
                request_id, result, ..
            } => match result {
                Ok(p) => self.producer_created(id, *p),
                Err(e) => {
                    debug!(error = %e, "producer rejected");
                    self.error(request_id, &e);
                }
            },
            Created::Consumer {
                request_id, result, ..
            } => match result {
                Ok(NewConsumer::Persistent(s)) => {
                    self.consumers.insert(id, s);
                    self.send(commands::success(request_id));
                }
                Ok(NewConsumer::NonPersistent(s)) => {
                    self.np_consumers.insert(id, s);
                    self.send(commands::success(request_id));
                }
                Err(e) => {
                    debug!(error = %e, "subscribe rejected");
                    self.error(request_id, &e);
                }
            },
        }
    }

    fn producer_created(&mut self, id: u64, p: NewProducer) {
        match p.kind {
            ProducerKind::Persistent(s) => {
                self.producers.insert(id, s);
            }
            ProducerKind::NonPersistent(s) => {
                self.np_producers.insert(id, s);
            }
        }
        self.send(p.success);
        if let Some((rx, ready, ready_cmd)) = p.waiting {
            self.await_exclusive_grant(rx, ready, ready_cmd);
        }
    }
}

/// PRODUCER: authorization, then the persistent or non-persistent create.
async fn create_producer(o: &Origin, cmd: BaseCommand) -> Result<NewProducer> {
    authorize::check(&o.service, o.role.as_deref(), Type::Producer, &cmd).await?;
    let Some(c) = cmd.producer else {
        return Err(BrokerError::Protocol("PRODUCER without body".into()));
    };
    let name = TopicName::parse(&c.topic)?;
    if name.is_persistent() {
        producer::create_producer(o, *c, name).await
    } else {
        non_persistent::create_np_producer(o, *c, name).await
    }
}

/// SUBSCRIBE: authorization, then the persistent or non-persistent create.
async fn create_consumer(o: &Origin, cmd: BaseCommand) -> Result<NewConsumer> {
    authorize::check(&o.service, o.role.as_deref(), Type::Subscribe, &cmd).await?;
    let Some(c) = cmd.subscribe else {
        return Err(BrokerError::Protocol("SUBSCRIBE without body".into()));
    };
    let name = TopicName::parse(&c.topic)?;
    if c.subscription.is_empty() {
        return Err(BrokerError::InvalidSubscriptionName(
            "subscription name cannot be empty".into(),
        ));
    }
    if name.is_persistent() {
        consumer::create_consumer(o, *c, name).await
    } else {
        non_persistent::create_np_consumer(o, *c, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_create_of_a_pending_id_is_refused() {
        let mut c = Creating::new();
        assert!(c.begin(Kind::Consumer, 1));
        assert!(!c.begin(Kind::Consumer, 1));
        // Producer and consumer ids are separate spaces.
        assert!(c.begin(Kind::Producer, 1));
        assert!(c.finish(Kind::Consumer, 1));
        assert!(c.begin(Kind::Consumer, 1));
    }

    #[test]
    fn a_closed_create_is_discarded_and_refuses_the_id_until_it_finishes() {
        let mut c = Creating::new();
        assert!(!c.close(Kind::Producer, 7), "nothing pending");
        assert!(c.begin(Kind::Producer, 7));
        assert!(c.close(Kind::Producer, 7));
        assert!(!c.begin(Kind::Producer, 7), "still running");
        assert!(!c.finish(Kind::Producer, 7), "discarded");
        assert!(c.begin(Kind::Producer, 7));
        assert!(c.finish(Kind::Producer, 7), "kept");
    }
}
