//! A producer's SENDs waiting for their receipts, shared by the producer task (which adds each
//! SEND before writing it) and its connection's reader task (which resolves the messages' futures
//! when the receipt or error arrives, without a hop through the producer task).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use strata_proto::pulsar::MessageIdData;
use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, Result};
use crate::message::{MessageId, OutgoingMessage};

/// Where a message's id (or failure) goes.
pub(crate) type Reply = oneshot::Sender<Result<MessageId>>;

/// A message on its way: its reply and its place in the producer's window (given back when the
/// message is answered and this is dropped).
pub(crate) struct Queued {
    pub(crate) msg: OutgoingMessage,
    pub(crate) reply: Reply,
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// The messages of one SEND: one message, or a batch (in order).
pub(crate) enum Msgs {
    One(Queued),
    Batch(Vec<Queued>),
}

impl Msgs {
    fn len(&self) -> usize {
        match self {
            Msgs::One(_) => 1,
            Msgs::Batch(b) => b.len(),
        }
    }

    fn is_batch(&self) -> bool {
        matches!(self, Msgs::Batch(_))
    }

    /// Answers each message with `r(index)`.
    fn answer(self, r: impl FnMut(usize) -> Result<MessageId>) {
        self.answer_keeping(r, &mut None);
    }

    /// [`Msgs::answer`], keeping the messages' places in the window in `permits` (given back
    /// at once when it is dropped: one update of the window's semaphore for many answers).
    fn answer_keeping(
        self,
        mut r: impl FnMut(usize) -> Result<MessageId>,
        permits: &mut Option<OwnedSemaphorePermit>,
    ) {
        let mut one = |i: usize, q: Queued| {
            let _ = q.reply.send(r(i));
            match permits {
                Some(p) => p.merge(q._permit),
                None => *permits = Some(q._permit),
            }
        };
        match self {
            Msgs::One(q) => one(0, q),
            Msgs::Batch(b) => {
                for (i, q) in b.into_iter().enumerate() {
                    one(i, q);
                }
            }
        }
    }
}

/// The SENDs of one producer (one partition) not answered yet.
pub(crate) struct Inflight {
    /// The producer's partition (a receipt without one gets it).
    partition: i32,
    state: Mutex<State>,
    /// Cancelled when the broker or the connection closed the producer.
    closed: CancellationToken,
    /// Set with `closed`: read for every message (the token's own check takes a lock).
    is_closed: AtomicBool,
    /// Notified when the last SEND in flight is answered.
    drained: Notify,
}

#[derive(Default)]
struct State {
    /// The SENDs by sequence id, ascending (they are recorded in sequence order and usually
    /// answered in it, so a receipt finds its SEND at the front).
    sent: VecDeque<(u64, Msgs)>,
    /// Messages in `sent`.
    msgs: usize,
}

impl State {
    fn insert(&mut self, sequence_id: u64, messages: Msgs) {
        self.msgs += messages.len();
        if self.sent.back().is_none_or(|(s, _)| *s < sequence_id) {
            self.sent.push_back((sequence_id, messages));
            return;
        }
        let at = self.sent.partition_point(|(s, _)| *s < sequence_id);
        match self.sent.get_mut(at) {
            Some((s, old)) if *s == sequence_id => {
                let old = std::mem::replace(old, messages);
                self.msgs = self.msgs.saturating_sub(old.len());
            }
            _ => self.sent.insert(at, (sequence_id, messages)),
        }
    }

    fn remove(&mut self, sequence_id: u64) -> Option<Msgs> {
        let at = match self.sent.front() {
            Some((s, _)) if *s == sequence_id => 0,
            _ => self
                .sent
                .binary_search_by_key(&sequence_id, |(s, _)| *s)
                .ok()?,
        };
        let (_, messages) = self.sent.remove(at)?;
        self.msgs = self.msgs.saturating_sub(messages.len());
        Some(messages)
    }
}

impl Inflight {
    pub(crate) fn new(partition: i32) -> Self {
        Inflight {
            partition,
            state: Mutex::new(State::default()),
            closed: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
            drained: Notify::new(),
        }
    }

    /// Records a SEND before it is written (so its receipt always finds it).
    pub(crate) fn put(&self, sequence_id: u64, messages: Msgs) {
        // Closed: nobody answers it any more (what was in flight is failed once the producer's
        // timer task sees the close).
        if self.is_closed() {
            messages.answer(|_| Err(ClientError::Disconnected));
            return;
        }
        self.state.lock().insert(sequence_id, messages);
    }

    /// Messages sent and not answered.
    pub(crate) fn messages(&self) -> usize {
        self.state.lock().msgs
    }

    fn take(&self, sequence_id: u64) -> Option<Msgs> {
        let mut s = self.state.lock();
        let sent = s.remove(sequence_id)?;
        let empty = s.sent.is_empty();
        drop(s);
        if empty {
            self.drained.notify_waiters();
        }
        Some(sent)
    }

    /// SEND_RECEIPTs read together, `(sequence id, message id)` in the order they came: the
    /// SENDs are taken under one lock, and the window's room is given back once. Each message
    /// of a SEND gets its id (its index in a batch).
    pub(crate) fn receipts<'a>(
        &self,
        receipts: impl Iterator<Item = (u64, Option<&'a MessageIdData>)>,
    ) {
        let taken: Vec<_> = {
            let mut s = self.state.lock();
            let taken = receipts
                .filter_map(|(seq, id)| s.remove(seq).map(|m| (m, id)))
                .collect();
            if s.sent.is_empty() {
                drop(s);
                self.drained.notify_waiters();
            }
            taken
        };
        let mut permits = None;
        for (messages, id) in taken {
            self.answer_receipt(messages, id, &mut permits);
        }
    }

    fn answer_receipt(
        &self,
        messages: Msgs,
        message_id: Option<&MessageIdData>,
        permits: &mut Option<OwnedSemaphorePermit>,
    ) {
        let base = message_id.map(MessageId::from_proto);
        let (is_batch, n) = (messages.is_batch(), messages.len() as i32);
        let answer = |i| match base {
            Some(mut id) => {
                if id.partition < 0 {
                    id.partition = self.partition;
                }
                if is_batch {
                    id.batch_index = i as i32;
                    id.batch_size = n;
                }
                Ok(id)
            }
            None => Err(ClientError::Protocol("receipt without message id".into())),
        };
        messages.answer_keeping(answer, permits);
    }

    /// A SEND_ERROR: every message of the SEND fails with it.
    pub(crate) fn error(&self, sequence_id: u64, error: &ClientError) {
        if let Some(messages) = self.take(sequence_id) {
            let msg = error.to_string();
            messages.answer(|_| Err(ClientError::Protocol(msg.clone())));
        }
    }

    /// Fails every message in flight with `err`.
    pub(crate) fn fail_all(&self, err: impl Fn() -> ClientError) {
        let sent = {
            let mut s = self.state.lock();
            s.msgs = 0;
            std::mem::take(&mut s.sent)
        };
        for (_, messages) in sent {
            messages.answer(|_| Err(err()));
        }
        self.drained.notify_waiters();
    }

    /// The broker or the connection closed the producer.
    pub(crate) fn close(&self) {
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
    }

    /// Whether the producer was closed by the broker or the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Resolves when the producer was closed by the broker or the connection.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Waits until every SEND in flight is answered or the producer is closed.
    pub(crate) async fn drain(&self) {
        loop {
            // created before the check: a notification between the two is not missed
            let drained = self.drained.notified();
            if self.state.lock().sent.is_empty() || self.is_closed() {
                return;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closed.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Semaphore;

    use super::*;

    fn queued(window: &Arc<Semaphore>) -> (Queued, oneshot::Receiver<Result<MessageId>>) {
        let (reply, rx) = oneshot::channel();
        let q = Queued {
            msg: OutgoingMessage::new(&b"m"[..]),
            reply,
            _permit: window.clone().try_acquire_owned().unwrap(),
        };
        (q, rx)
    }

    #[tokio::test]
    async fn a_receipt_resolves_each_message_of_its_batch_and_frees_the_window() {
        let window = Arc::new(Semaphore::new(3));
        let inflight = Inflight::new(2);
        let (a, ra) = queued(&window);
        let (b, rb) = queued(&window);
        let (c, rc) = queued(&window);
        inflight.put(10, Msgs::Batch(vec![a, b]));
        inflight.put(12, Msgs::One(c));
        assert_eq!((inflight.messages(), window.available_permits()), (3, 0));
        let id = MessageIdData {
            ledger_id: 7,
            entry_id: 1,
            partition: Some(-1),
            ..Default::default()
        };
        inflight.receipts(std::iter::once((10, Some(&id))));
        // a duplicate finds nothing
        inflight.receipts(std::iter::once((10, Some(&id))));
        let (a, b) = (ra.await.unwrap().unwrap(), rb.await.unwrap().unwrap());
        assert_eq!((a.ledger_id, a.entry_id, a.partition), (7, 1, 2));
        assert_eq!((a.batch_index, a.batch_size, b.batch_index), (0, 2, 1));
        assert_eq!((inflight.messages(), window.available_permits()), (1, 2));
        // drain waits for the last SEND
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), inflight.drain());
        assert!(waiting.await.is_err());
        inflight.error(12, &ClientError::Protocol("no".into()));
        assert!(rc.await.unwrap().is_err());
        inflight.drain().await;
        assert_eq!(window.available_permits(), 3);
    }

    #[tokio::test]
    async fn closing_ends_the_drain_and_fail_all_answers_every_message() {
        let window = Arc::new(Semaphore::new(2));
        let inflight = Inflight::new(-1);
        let (a, ra) = queued(&window);
        inflight.put(1, Msgs::One(a));
        inflight.close();
        inflight.closed().await;
        inflight.drain().await;
        inflight.fail_all(|| ClientError::ClosedByBroker);
        assert!(matches!(ra.await, Ok(Err(ClientError::ClosedByBroker))));
        assert_eq!((inflight.messages(), window.available_permits()), (0, 2));
        // a SEND recorded once closed fails at once (nobody would answer it)
        let (b, rb) = queued(&window);
        inflight.put(2, Msgs::One(b));
        assert!(matches!(rb.await, Ok(Err(ClientError::Disconnected))));
        assert_eq!((inflight.messages(), window.available_permits()), (0, 2));
    }
}
