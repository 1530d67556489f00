//! [`Reply`]: how an append's outcome reaches its caller — a callback run where the outcome is
//! decided (often the local bookie's applier thread, for a connection that queues the receipt
//! itself), or a oneshot channel behind [`super::ManagedLedger::append`]'s future.

use tokio::sync::oneshot;

use crate::error::{BrokerError, Result};
use crate::position::Position;

type Callback = Box<dyn FnOnce(Result<Position>) + Send>;

/// The answer owed to one append: run once with its outcome. It may run on the thread that
/// made the entry durable, inside the ledger writer's ordered delivery, so it must not append to
/// the same log itself (that would wait on the delivery it runs in). Dropped unanswered (the log went
/// away first), it answers [`BrokerError::ShuttingDown`], so every append gets an answer.
pub struct Reply(Option<Callback>);

impl Reply {
    /// Runs `f` with the outcome.
    pub fn new(f: impl FnOnce(Result<Position>) + Send + 'static) -> Self {
        Reply(Some(Box::new(f)))
    }

    /// A reply that sends the outcome on a channel.
    pub fn channel() -> (Self, oneshot::Receiver<Result<Position>>) {
        let (tx, rx) = oneshot::channel();
        (
            Reply::new(move |r| {
                let _ = tx.send(r);
            }),
            rx,
        )
    }

    /// Answers with `r`.
    pub fn send(mut self, r: Result<Position>) {
        if let Some(f) = self.0.take() {
            f(r);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(BrokerError::ShuttingDown));
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn answered_once_with_the_outcome_or_shutting_down_when_dropped() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        Reply::new(move |r| g.lock().unwrap().push(r.map_err(|e| e.to_string())))
            .send(Ok(Position::new(3, 4)));
        let g = got.clone();
        drop(Reply::new(move |r| {
            g.lock().unwrap().push(r.map_err(|e| e.to_string()))
        }));
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], Ok(Position::new(3, 4)));
        assert!(matches!(&got[1], Err(e) if e.contains("shutting down") || !e.is_empty()));
    }

    #[tokio::test]
    async fn a_channel_reply_resolves_its_receiver() {
        let (reply, rx) = Reply::channel();
        reply.send(Ok(Position::new(1, 2)));
        assert_eq!(
            rx.await.ok().and_then(|r| r.ok()),
            Some(Position::new(1, 2))
        );
        let (reply, rx) = Reply::channel();
        drop(reply);
        assert!(matches!(rx.await, Ok(Err(BrokerError::ShuttingDown))));
    }
}
