//! Work deferred to the end of a group of events a thread handles together: the bookie answers
//! every add of one sync inside [`run`], and whoever the answers reach can queue one batch per
//! group (one channel message for hundreds of receipts to the same connection) instead of one per
//! answer.

use std::cell::RefCell;

type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// The work [`later`] deferred in this thread's group, when one is running.
    static DEFERRED: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Runs `f` as a group: what [`later`] defers inside runs when `f` returns (also when it
/// panics), in the order it was deferred. A group inside a group joins the outer one.
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            // taken first: work deferred while this runs (none expected) runs at once
            let work = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
            for w in work {
                w();
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
}
