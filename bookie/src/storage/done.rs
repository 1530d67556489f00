//! [`Done`]: how the journal answers one submission — through a channel an async caller awaits,
//! or by running the caller's callback itself (the ledger writer of the same process: no task,
//! timer or wake-up per entry; see [`super::Storage::add_then`]).

use tokio::sync::oneshot;

use crate::error::BookieError;

/// Receives the outcome of an add. Runs on the bookie's journal thread (or at once on the
/// caller's thread when the add is refused): it must be short and must not block.
pub type AddCallback = Box<dyn FnOnce(Result<(), BookieError>) + Send>;

/// The answer channel of one journal submission. A callback dropped unanswered (the journal
/// thread gone) is called with [`BookieError::ShuttingDown`], as a dropped channel reads.
pub(super) struct Done(Option<Answer>);

enum Answer {
    Channel(oneshot::Sender<Result<(), BookieError>>),
    Call(AddCallback),
}

impl Done {
    pub(super) fn channel(tx: oneshot::Sender<Result<(), BookieError>>) -> Done {
        Done(Some(Answer::Channel(tx)))
    }

    pub(super) fn call(f: AddCallback) -> Done {
        Done(Some(Answer::Call(f)))
    }

    /// Answers the submitter (a caller that stopped waiting is ignored).
    pub(super) fn send(mut self, r: Result<(), BookieError>) {
        self.answer(r);
    }

    fn answer(&mut self, r: Result<(), BookieError>) {
        match self.0.take() {
            Some(Answer::Channel(tx)) => {
                let _ = tx.send(r);
            }
            Some(Answer::Call(f)) => f(r),
            None => {}
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if matches!(self.0, Some(Answer::Call(_))) {
            self.answer(Err(BookieError::ShuttingDown));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_deliver_the_outcome() {
        let (tx, mut rx) = oneshot::channel();
        Done::channel(tx).send(Ok(()));
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        Done::call(Box::new(move |r| s.lock().push(r.is_ok()))).send(Ok(()));
        assert_eq!(*seen.lock(), vec![true]);
    }

    #[test]
    fn a_callback_dropped_unanswered_hears_shutting_down() {
        let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = seen.clone();
        drop(Done::call(Box::new(move |r| {
            s.lock().push(matches!(r, Err(BookieError::ShuttingDown)))
        })));
        assert_eq!(*seen.lock(), vec![true]);
    }
}
