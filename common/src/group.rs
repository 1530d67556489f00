//! Work deferred to the end of a group of events a thread handles together: the bookie answers
//! every add of one sync inside [`run`], and whoever the answers reach can queue one batch per
//! group (one channel message for hundreds of receipts to the same connection) instead of one per
//! answer.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// The work [`later`] deferred in this thread's group, when one is running.
    static DEFERRED: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Runs `f` as a group: what [`later`] defers inside runs when `f` returns (also when it
/// panics), in the order it was deferred; what that work defers runs after it, in the same way,
/// until nothing is left. A group inside a group joins the outer one.
///
/// Every piece of deferred work runs even when another panics (a piece skipped would leave a
/// [`collect`]ed list that is never handled again); the first such panic is raised again once
/// the group has ended, unless the thread is already unwinding from `f`'s.
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            // in rounds: work that the deferred work defers runs in the next round, still
            // collected (the writer counts a sync's acks at the group's end, and the receipts
            // those confirm are queued once per connection after that)
            let mut first_panic = None;
            loop {
                let work = DEFERRED.with(|d| d.borrow_mut().replace(Vec::new()));
                match work {
                    Some(work) if !work.is_empty() => {
                        for w in work {
                            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(w)) {
                                first_panic.get_or_insert(p);
                            }
                        }
                    }
                    _ => break,
                }
            }
            DEFERRED.with(|d| d.borrow_mut().take());
            if let Some(p) = first_panic
                && !std::thread::panicking()
            {
                panic::resume_unwind(p);
            }
        }
    }
    let outer = DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        let outer = d.is_some();
        if !outer {
            *d = Some(Vec::new());
        }
        outer
    });
    if outer {
        return f();
    }
    let _end = End;
    f()
}

/// Runs `w` at the end of this thread's group, or now when no group is running (boxed only
/// when deferred).
pub fn later(w: impl FnOnce() + 'static) {
    let mut w = Some(w);
    DEFERRED.with(|d| {
        if let Some(work) = d.borrow_mut().as_mut()
            && let Some(f) = w.take()
        {
            work.push(Box::new(f));
        }
    });
    if let Some(w) = w {
        w();
    }
}

/// A per-thread list of things collected in a group and handled together at its end (see
/// [`collect`]).
pub type Collected<T> = std::thread::LocalKey<RefCell<Vec<T>>>;

/// Adds `item` to this thread's `list`; the first added since the list was last handled
/// defers `handle` (which handles the list with [`handle_all`]) to the end of the group, or runs
/// it now when no group is running.
pub fn collect<T: 'static>(list: &'static Collected<T>, item: T, handle: fn()) {
    let first = list.with(|l| {
        let mut l = l.borrow_mut();
        l.push(item);
        l.len() == 1
    });
    if first {
        later(handle);
    }
}

/// Hands what this thread's `list` holds to `f`, in the order it was collected, taken out of
/// the list first (what `f` collects meanwhile defers its own handling, see [`collect`]); the
/// list keeps its room.
pub fn handle_all<T: 'static>(list: &'static Collected<T>, f: impl FnOnce(&mut Vec<T>)) {
    let mut items = list.with(|l| std::mem::take(&mut *l.borrow_mut()));
    if items.is_empty() {
        return;
    }
    f(&mut items);
    items.clear();
    list.with(|l| {
        let mut l = l.borrow_mut();
        if l.is_empty() {
            *l = items;
        }
    });
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    fn log() -> (
        Rc<RefCell<Vec<&'static str>>>,
        impl Fn(&'static str) + Clone,
    ) {
        let l = Rc::new(RefCell::new(vec![]));
        let l2 = l.clone();
        (l, move |s| l2.borrow_mut().push(s))
    }

    #[test]
    fn deferred_work_runs_at_the_end_of_the_outermost_group_in_order() {
        let (l, push) = log();
        let p = push.clone();
        run(|| {
            let p2 = p.clone();
            later(move || p2("first"));
            run(|| {
                let p3 = p.clone();
                later(move || p3("inner"));
                p("inner body");
            });
            p("outer body");
        });
        assert_eq!(
            *l.borrow(),
            ["inner body", "outer body", "first", "inner"],
            "a nested group joins the outer one"
        );
        // outside a group, at once
        later(move || push("now"));
        assert_eq!(l.borrow().last(), Some(&"now"));
    }

    #[test]
    fn work_deferred_by_deferred_work_runs_after_it_in_the_same_group() {
        let (l, push) = log();
        let p = push.clone();
        run(|| {
            let p2 = p.clone();
            later(move || {
                let p3 = p2.clone();
                later(move || p3("second round"));
                p2("first round");
            });
            let p4 = p.clone();
            later(move || p4("first round, later"));
        });
        assert_eq!(
            *l.borrow(),
            ["first round", "first round, later", "second round"]
        );
        later(move || push("now"));
        assert_eq!(l.borrow().last(), Some(&"now"), "the group ended");
    }

    thread_local! {
        static ITEMS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        static HANDLED: RefCell<Vec<Vec<u32>>> = const { RefCell::new(Vec::new()) };
    }

    fn handle_items() {
        handle_all(&ITEMS, |items| {
            HANDLED.with(|h| h.borrow_mut().push(items.clone()));
        });
    }

    #[test]
    fn collected_items_are_handled_together_at_the_end_of_a_group() {
        run(|| {
            for i in 0..3 {
                collect(&ITEMS, i, handle_items);
            }
            assert!(HANDLED.with(|h| h.borrow().is_empty()));
        });
        collect(&ITEMS, 7, handle_items);
        let handled = HANDLED.with(|h| h.take());
        assert_eq!(
            handled,
            [vec![0, 1, 2], vec![7]],
            "outside a group, at once"
        );
        assert!(ITEMS.with(|i| i.borrow().is_empty()));
    }

    #[test]
    fn deferred_work_runs_when_the_group_panics() {
        let (l, push) = log();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(|| {
                let p = push.clone();
                later(move || p("deferred"));
                panic!("boom");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(*l.borrow(), ["deferred"]);
        // the group ended: work runs at once again
        later(move || push("after"));
        assert_eq!(*l.borrow(), ["deferred", "after"]);
    }

    #[test]
    fn a_panic_in_deferred_work_skips_no_other_work_and_is_raised_after_the_group() {
        let (l, push) = log();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(|| {
                later(|| panic!("deferred boom"));
                let p = push.clone();
                later(move || p("after the panic"));
                collect(&ITEMS, 1, handle_items);
            })
        }));
        assert!(caught.is_err(), "the deferred panic is raised again");
        assert_eq!(*l.borrow(), ["after the panic"]);
        assert_eq!(
            HANDLED.with(|h| h.take()),
            [vec![1]],
            "the list was handled"
        );
        // the list is scheduled again by the next item
        collect(&ITEMS, 2, handle_items);
        assert_eq!(HANDLED.with(|h| h.take()), [vec![2]]);
        later(move || push("now"));
        assert_eq!(l.borrow().last(), Some(&"now"), "the group ended");
    }
}
