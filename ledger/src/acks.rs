//! Bookie acknowledgements counted once per group: the bookie of this process answers every add
//! of one journal sync inside a [`strata_common::group`], on its applier thread. Each
//! acknowledgement told there is collected on the thread and counted at the group's end, one
//! state lock per run of acknowledgements to the same writer instead of one per entry (that
//! lock's line is the one the adding thread takes next). Outside a group (a remote bookie's
//! answer on a Tokio task) an acknowledgement is counted at once.
//!
//! Order: a writer hears its outcomes in the order they were told. An error told to a writer
//! first counts the acknowledgements collected before it ([`flush`]), so a fence or a failure
//! never overtakes an entry the bookie had already made durable.

use std::cell::RefCell;
use std::sync::Arc;

use strata_common::group;

/// One acknowledgement: the entry, and the ensemble slot (with its epoch) whose bookie made it
/// durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    pub entry: u64,
    pub slot: usize,
    pub epoch: u32,
}

/// What counts acknowledgements (a ledger writer).
pub(crate) trait Acked: Send + Sync {
    /// Counts `acks`, in order.
    fn acked(&self, acks: &mut dyn Iterator<Item = Ack>);
}

type Told = Vec<(Arc<dyn Acked>, Ack)>;

thread_local! {
    /// Acknowledgements told in this thread's group and not counted yet.
    static TOLD: RefCell<Told> = const { RefCell::new(Vec::new()) };
}

/// Tells `to` of `ack`: at the end of this thread's group, or now when no group is running.
pub(crate) fn tell(to: Arc<dyn Acked>, ack: Ack) {
    group::collect(&TOLD, (to, ack), flush);
}

/// Counts the acknowledgements collected on this thread, in order, one call per run of the same
/// writer.
pub(crate) fn flush() {
    group::handle_all(&TOLD, |told| {
        let mut rest = told.as_slice();
        while let Some((to, _)) = rest.first() {
            let same = rest
                .iter()
                .take_while(|(t, _)| std::ptr::addr_eq(Arc::as_ptr(t), Arc::as_ptr(to)))
                .count();
            let (run, after) = rest.split_at(same);
            to.acked(&mut run.iter().map(|(_, a)| *a));
            rest = after;
        }
    });
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;

    #[derive(Default)]
    struct Log(Mutex<Vec<Vec<u64>>>);

    impl Acked for Log {
        fn acked(&self, acks: &mut dyn Iterator<Item = Ack>) {
            self.0.lock().push(acks.map(|a| a.entry).collect());
        }
    }

    fn ack(entry: u64) -> Ack {
        Ack {
            entry,
            slot: 0,
            epoch: 0,
        }
    }

    #[test]
    fn outside_a_group_an_ack_is_counted_at_once() {
        let log = Arc::new(Log::default());
        tell(log.clone(), ack(1));
        tell(log.clone(), ack(2));
        assert_eq!(*log.0.lock(), vec![vec![1], vec![2]]);
    }

    #[test]
    fn in_a_group_acks_are_counted_at_its_end_once_per_run_of_a_writer() {
        let (a, b) = (Arc::new(Log::default()), Arc::new(Log::default()));
        strata_common::group::run(|| {
            for e in 0..3 {
                tell(a.clone(), ack(e));
            }
            tell(b.clone(), ack(10));
            tell(a.clone(), ack(3));
            assert!(
                a.0.lock().is_empty(),
                "nothing counted before the group ends"
            );
        });
        assert_eq!(*a.0.lock(), vec![vec![0, 1, 2], vec![3]]);
        assert_eq!(*b.0.lock(), vec![vec![10]]);
    }

    #[test]
    fn flush_counts_what_was_collected_before_an_error_is_told() {
        let a = Arc::new(Log::default());
        strata_common::group::run(|| {
            tell(a.clone(), ack(7));
            flush();
            assert_eq!(*a.0.lock(), vec![vec![7]]);
            tell(a.clone(), ack(8));
        });
        assert_eq!(*a.0.lock(), vec![vec![7], vec![8]]);
    }
}
