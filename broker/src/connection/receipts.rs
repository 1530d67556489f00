//! The answers to a connection's SENDs. Each SEND's outcome becomes its SEND_RECEIPT or
//! SEND_ERROR where the outcome is decided (for an append to a healthy log, the thread that made
//! the entry durable) and goes straight to the connection's outbound queue: no channel, future or
//! wake-up of the reading task per SEND. A producer's receipts keep its SEND order, because a
//! topic answers its appends in log order. The number of SENDs in flight bounds how far the
//! reading task runs ahead (`max_pending_sends`).
//!
//! Answers given inside a [`strata_common::group`] (the journal answering every add of one
//! sync) are collected and queued once, at the group's end: one message of the outbound queue
//! for the receipts of a whole sync. Whatever answers the same connection meanwhile, on any
//! thread, joins the collected answers, so they keep the order they were given in.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::outgoing::Outgoing;
use strata_proto::pulsar::CommandSendReceipt;
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::{server_error, wire_id};
use crate::error::{BrokerError, Result};
use crate::managed_ledger::Reply;
use crate::outbound::Outbound;
use crate::position::Position;

/// Who sent a SEND, as its receipt names it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SendId {
    pub producer_id: u64,
    pub sequence_id: u64,
    /// The SEND's `highest_sequence_id` (0: none).
    pub highest_sequence_id: u64,
    /// The topic's partition index, or -1.
    pub partition: i32,
}

/// The SENDs of one connection waiting for their outcome.
pub(super) struct Receipts {
    out: Outbound,
    peer: SocketAddr,
    max_pending: usize,
    /// SENDs whose reply has not run yet.
    pending: AtomicUsize,
    /// Notified when `pending` falls below `max_pending`, and at zero while draining.
    room: Notify,
    draining: AtomicBool,
    /// Answers given and not queued yet (see the module documentation).
    collected: Mutex<Vec<Outgoing>>,
}

impl Receipts {
    pub fn new(out: Outbound, peer: SocketAddr, max_pending: usize) -> Arc<Self> {
        Arc::new(Receipts {
            out,
            peer,
            max_pending: max_pending.max(1),
            pending: AtomicUsize::new(0),
            room: Notify::new(),
            draining: AtomicBool::new(false),
            collected: Mutex::new(Vec::new()),
        })
    }

    /// Whether as many SENDs as allowed are in flight (stop reading frames).
    pub fn is_full(&self) -> bool {
        self.pending.load(Ordering::Acquire) >= self.max_pending
    }

    /// Resolves once a SEND in flight was answered after [`Self::is_full`] said true (a
    /// wake-up may be spurious: check again).
    pub async fn room(&self) {
        self.room.notified().await
    }

    /// The reply of SEND `id`: queues its receipt or error when it runs. Once the connection
    /// is gone, it does nothing.
    pub fn reply(self: &Arc<Self>, id: SendId) -> Reply {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let me: Weak<Self> = Arc::downgrade(self);
        Reply::new(move |r| {
            if let Some(me) = me.upgrade() {
                me.answer(id, r);
            }
        })
    }

    /// Queues the answer of SEND `id`.
    fn answer(self: Arc<Self>, id: SendId, r: Result<Position>) {
        let (o, at_once) = match r {
            Ok(p) => {
                let receipt = CommandSendReceipt {
                    producer_id: id.producer_id,
                    sequence_id: id.sequence_id,
                    message_id: Some(wire_id(p, id.partition)),
                    highest_sequence_id: (id.highest_sequence_id > 0)
                        .then_some(id.highest_sequence_id),
                };
                (Outgoing::Receipt(receipt), false)
            }
            Err(e) => {
                // refusals a client retries (quota, an earlier copy in flight): not worth a
                // warning per message
                if matches!(
                    e,
                    BrokerError::LimitReached(..) | BrokerError::ServiceNotReady(_)
                ) {
                    debug!(peer = %self.peer, producer = id.producer_id, seq = id.sequence_id, error = %e, "send refused");
                } else {
                    warn!(peer = %self.peer, producer = id.producer_id, seq = id.sequence_id, error = %e, "send failed");
                }
                let error = commands::send_error(
                    id.producer_id,
                    id.sequence_id,
                    server_error(&e),
                    e.to_string(),
                );
                (Outgoing::Frame(Frame::simple(error)), true)
            }
        };
        let first = {
            let mut c = self.collected.lock();
            c.push(o);
            c.len() == 1
        };
        if at_once {
            self.flush();
        } else if first {
            strata_common::group::later(move || self.flush());
        }
    }

    /// Queues the collected answers, in order, and gives their SENDs' room back.
    fn flush(&self) {
        let mut c = self.collected.lock();
        let n = c.len();
        match n {
            0 => return,
            1 => {
                if let Some(o) = c.pop() {
                    self.out.send_outgoing(o);
                }
            }
            _ => {
                // the next group's answers likely as many
                self.out
                    .send_all(std::mem::replace(&mut *c, Vec::with_capacity(n)));
            }
        }
        drop(c);
        // SeqCst with `drain`'s store and load: either it sees zero or this sees it draining
        let before = self.pending.fetch_sub(n, Ordering::SeqCst);
        let crossed = before >= self.max_pending && before - n < self.max_pending;
        if crossed || (before == n && self.draining.load(Ordering::SeqCst)) {
            self.room.notify_one();
        }
    }

    /// Waits until every SEND in flight was answered, at most `limit` (the connection is
    /// closing: let its producers get their receipts where possible).
    pub async fn drain(&self, limit: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(limit, async {
            // `answer` notifies at zero while draining; a stale permit only loops once more
            while self.pending.load(Ordering::SeqCst) > 0 {
                self.room.notified().await;
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn id(seq: u64) -> SendId {
        SendId {
            producer_id: 1,
            sequence_id: seq,
            highest_sequence_id: 0,
            partition: -1,
        }
    }

    /// The read loop's gate under load: replies answered on other threads, in bursts and one
    /// by one, while the reader waits for room (sometimes leaving the wait for another branch
    /// of its `select!`, as the read loop does). A lost wake-up would stop it: it must finish
    /// every send, and every reply must be counted out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_always_gets_room_back_and_every_reply_is_counted() {
        let (out, mut rx) = Outbound::channel();
        let receipts = Receipts::new(out, "127.0.0.1:6650".parse().unwrap(), 8);
        let (tx, replies) = std::sync::mpsc::channel::<Reply>();
        let replies = Arc::new(std::sync::Mutex::new(replies));
        let answered = Arc::new(AtomicU64::new(0));
        let answerers: Vec<_> = (0..2)
            .map(|_| {
                let (replies, answered) = (replies.clone(), answered.clone());
                std::thread::spawn(move || {
                    for turn in 0u64.. {
                        let burst = {
                            let replies = replies.lock().unwrap();
                            let Ok(first) = replies.recv() else { return };
                            let mut burst = vec![first];
                            burst.extend(replies.try_iter().take(15));
                            burst
                        };
                        let n = burst.len() as u64;
                        let answer = move || {
                            for reply in burst {
                                reply.send(Ok(Position::new(1, 1)));
                            }
                        };
                        // every other burst answered as a journal sync's group is
                        if turn % 2 == 0 {
                            strata_common::group::run(answer);
                        } else {
                            answer();
                        }
                        answered.fetch_add(n, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let total = 100_000u64;
        let r = receipts.clone();
        let sender = async move {
            for seq in 0..total {
                while r.is_full() {
                    tokio::select! {
                        _ = r.room() => {}
                        _ = tokio::task::yield_now(), if seq % 3 == 0 => {}
                    }
                }
                if tx.send(r.reply(id(seq))).is_err() {
                    return;
                }
            }
        };
        let drain_frames = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let sent = tokio::time::timeout(Duration::from_secs(120), sender).await;
        assert!(
            sent.is_ok(),
            "the reader waited for room that never came back"
        );
        for a in answerers {
            a.join().unwrap();
        }
        assert_eq!(answered.load(Ordering::Relaxed), total);
        receipts.drain(Duration::from_secs(5)).await;
        assert_eq!(receipts.pending.load(Ordering::SeqCst), 0);
        drop(receipts);
        drain_frames.await.unwrap();
    }

    /// Answers given in a group are queued once, at its end, in the order given; an error
    /// goes out at once, after what was collected before it.
    #[tokio::test]
    async fn answers_in_a_group_are_queued_together_in_order() {
        let (out, mut rx) = Outbound::channel();
        let receipts = Receipts::new(out, "127.0.0.1:6650".parse().unwrap(), 2);
        let replies: Vec<Reply> = (0..6).map(|seq| receipts.reply(id(seq))).collect();
        assert!(receipts.is_full());
        strata_common::group::run(|| {
            for (seq, reply) in replies.into_iter().enumerate() {
                match seq {
                    2 => reply.send(Err(BrokerError::ServiceNotReady("busy".into()))),
                    _ => reply.send(Ok(Position::new(1, seq as i64))),
                }
                if seq == 3 {
                    // 0-2 queued with the error, 3 collected; the room comes back as they are
                    // queued
                    assert!(
                        rx.try_recv()
                            .is_some_and(|f| f.command.send_receipt.is_some())
                    );
                    assert!(rx.try_recv().is_some());
                    assert!(
                        rx.try_recv()
                            .is_some_and(|f| f.command.send_error.is_some())
                    );
                    assert!(rx.try_recv().is_none());
                    assert!(receipts.is_full());
                }
            }
        });
        let mut got = vec![];
        while let Some(f) = rx.try_recv() {
            got.push(f.command.send_receipt.map(|r| r.sequence_id));
        }
        assert_eq!(got, [Some(3), Some(4), Some(5)]);
        assert_eq!(receipts.pending.load(Ordering::SeqCst), 0);
        assert!(!receipts.is_full());
    }

    /// A reply dropped unanswered (its log went away) still answers: an error receipt, and the
    /// count goes down.
    #[tokio::test]
    async fn a_dropped_reply_answers_an_error() {
        let (out, mut rx) = Outbound::channel();
        let receipts = Receipts::new(out, "127.0.0.1:6650".parse().unwrap(), 8);
        drop(receipts.reply(id(7)));
        assert_eq!(receipts.pending.load(Ordering::SeqCst), 0);
        let f = rx.recv().await.unwrap();
        let e = f.command.send_error.unwrap();
        assert_eq!(e.sequence_id, 7);
    }
}
