//! [`AddDone`]: how the bookie of this process answers an add made with
//! [`crate::LocalBookie::add_then`] — by running a closure, or by telling a long-lived sink with
//! the add's tag (no allocation per add: the ledger writer's path for every entry).

use std::sync::Arc;

use crate::error::ClientError;

/// Receives the outcomes of adds told with an [`AddTag`].
pub trait AddSink: Send + Sync + 'static {
    /// The add tagged `tag` ended with `r` (called on the bookie's applier thread right after
    /// the sync, or on the caller's thread when the add is refused: short, never blocking).
    fn added(self: Arc<Self>, tag: AddTag, r: Result<(), ClientError>);
}

/// Which add an [`AddSink`] is told about: the entry, and a word the sink chose (opaque to the
/// bookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddTag {
    /// The entry added.
    pub entry: u64,
    /// The sink's own word.
    pub cookie: u64,
}

/// Receives the outcome of one [`crate::LocalBookie::add_then`]. Dropped unanswered, it tells
/// nothing.
pub enum AddDone {
    /// Runs the closure.
    Call(Box<dyn FnOnce(Result<(), ClientError>) + Send>),
    /// Tells the sink.
    Tell(Arc<dyn AddSink>, AddTag),
}

impl AddDone {
    /// Answers by running `f`.
    pub fn call(f: impl FnOnce(Result<(), ClientError>) + Send + 'static) -> Self {
        AddDone::Call(Box::new(f))
    }

    /// Answers by telling `sink` with `tag`.
    pub fn tell(sink: Arc<dyn AddSink>, tag: AddTag) -> Self {
        AddDone::Tell(sink, tag)
    }

    /// Answers with `r`.
    pub fn run(self, r: Result<(), ClientError>) {
        match self {
            AddDone::Call(f) => f(r),
            AddDone::Tell(sink, tag) => sink.added(tag, r),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;

    struct Sink(Mutex<Vec<(AddTag, bool)>>);

    impl AddSink for Sink {
        fn added(self: Arc<Self>, tag: AddTag, r: Result<(), ClientError>) {
            self.0.lock().unwrap().push((tag, r.is_ok()));
        }
    }

    #[test]
    fn both_kinds_answer_once_with_the_outcome() {
        let sink = Arc::new(Sink(Mutex::new(vec![])));
        let tag = AddTag {
            entry: 7,
            cookie: 9,
        };
        AddDone::tell(sink.clone(), tag).run(Ok(()));
        AddDone::tell(sink.clone(), tag).run(Err(ClientError::Unavailable("x".into())));
        assert_eq!(*sink.0.lock().unwrap(), vec![(tag, true), (tag, false)]);
        let (tx, rx) = std::sync::mpsc::channel();
        AddDone::call(move |r| tx.send(r.is_ok()).unwrap()).run(Ok(()));
        assert!(rx.recv().unwrap());
    }
}
