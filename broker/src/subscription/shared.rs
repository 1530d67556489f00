//! Shared: round robin over the consumers that can take an entry.

use strata_proto::pulsar::command_subscribe::SubType;

use super::consumers::Consumers;
use super::dispatcher::{Dispatcher, Pick};
use super::entry::EntryView;

/// The Shared dispatcher.
#[derive(Default)]
pub(super) struct Shared {
    /// Where the next round-robin search starts.
    next: usize,
}

impl Dispatcher for Shared {
    fn sub_type(&self) -> SubType {
        SubType::Shared
    }

    fn delays_delivery(&self) -> bool {
        true
    }

    fn pick(&mut self, consumers: &Consumers, _entry: &EntryView) -> Pick {
        let n = consumers.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if consumers.get(i).ready() {
                self.next = (i + 1) % n;
                return Pick::To(i);
            }
        }
        Pick::Wait
    }
}
