//! The load generator's sends waiting for their answers, each with the instant it was sent.
//!
//! A producer on one partition is answered in the order it sent (one connection, receipts in
//! sequence order): only its oldest send is polled, from a queue, so a message costs no task
//! and no allocation of its own. A producer on several partitions is answered out of order;
//! its sends are polled as a set.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::{MessageId, SendFuture};

/// A send and when it was made.
pub(super) struct Timed(pub(super) Instant, pub(super) SendFuture);

impl Future for Timed {
    type Output = (Instant, crate::Result<MessageId>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let t0 = self.0;
        Pin::new(&mut self.1).poll(cx).map(|r| (t0, r))
    }
}

/// Sends not answered yet.
pub(super) enum Pending {
    InOrder(VecDeque<Timed>),
    AnyOrder(FuturesUnordered<Timed>),
}

impl Pending {
    /// For a producer on `partitions` partitions.
    pub(super) fn new(partitions: usize) -> Self {
        if partitions <= 1 {
            Pending::InOrder(VecDeque::new())
        } else {
            Pending::AnyOrder(FuturesUnordered::new())
        }
    }

    pub(super) fn push(&mut self, t: Timed) {
        match self {
            Pending::InOrder(q) => q.push_back(t),
            Pending::AnyOrder(s) => s.push(t),
        }
    }

    /// The next answer; `None` when nothing is pending.
    pub(super) async fn next(&mut self) -> Option<(Instant, crate::Result<MessageId>)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(Instant, crate::Result<MessageId>)>> {
        match self {
            Pending::InOrder(q) => {
                let Some(front) = q.front_mut() else {
                    return Poll::Ready(None);
                };
                let out = ready!(Pin::new(front).poll(cx));
                q.pop_front();
                Poll::Ready(Some(out))
            }
            Pending::AnyOrder(s) => s.poll_next_unpin(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::sync::oneshot;

    fn id(entry: u64) -> MessageId {
        MessageId {
            ledger_id: 0,
            entry_id: entry,
            partition: -1,
            batch_index: -1,
            batch_size: 0,
        }
    }

    #[tokio::test]
    async fn answers_come_out_in_send_order_for_one_partition_and_as_ready_for_several() {
        for partitions in [1, 3] {
            let mut p = Pending::new(partitions);
            assert!(p.next().await.is_none());
            let (tx1, rx1) = oneshot::channel();
            let (tx2, rx2) = oneshot::channel();
            let t0 = Instant::now();
            p.push(Timed(t0, SendFuture(rx1)));
            p.push(Timed(t0, SendFuture(rx2)));
            tx2.send(Ok(id(2))).unwrap();
            let mut got = Vec::new();
            if partitions == 1 {
                // the second is answered, the first is not: nothing comes out yet
                let waiting = std::future::poll_fn(|cx| Poll::Ready(p.poll_next(cx).is_pending()));
                assert!(waiting.await);
            } else {
                got.push(p.next().await.unwrap().1.unwrap().entry_id);
            }
            tx1.send(Ok(id(1))).unwrap();
            while let Some((_, r)) = p.next().await {
                got.push(r.unwrap().entry_id);
            }
            let want = if partitions == 1 { [1, 2] } else { [2, 1] };
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn a_dropped_answer_is_a_disconnect() {
        let mut p = Pending::new(1);
        let (tx, rx) = oneshot::channel();
        p.push(Timed(Instant::now(), SendFuture(rx)));
        drop(tx);
        assert!(matches!(
            p.next().await,
            Some((_, Err(crate::ClientError::Disconnected)))
        ));
    }
}
