//! SEND_RECEIPTs that one read of a connection brought, answered together: the reader task
//! collects the receipts it can read without waiting (up to [`MAX`]) and hands each producer's
//! run of them to its [`Inflight`] at once — one lock of the producer's SENDs in flight and one
//! release of its window per run instead of one each per receipt (the producer's task takes the
//! same lock and window on the other core for every message it sends).
//!
//! The reader answers the collected receipts before it waits for the socket and before any
//! other frame, so every answer keeps the order the broker sent it in.

use std::sync::Arc;

use strata_proto::pulsar::CommandSendReceipt;

use crate::inflight::Inflight;

/// Receipts collected before they are answered.
const MAX: usize = 256;

#[derive(Default)]
pub(crate) struct ReceiptBatch {
    receipts: Vec<CommandSendReceipt>,
}

impl ReceiptBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.receipts.is_empty()
    }

    /// Collects `r`; answers what was collected when the batch is full (`producer` finds a
    /// producer's SENDs in flight).
    pub(crate) fn push(
        &mut self,
        r: CommandSendReceipt,
        producer: impl Fn(u64) -> Option<Arc<Inflight>>,
    ) {
        self.receipts.push(r);
        if self.receipts.len() >= MAX {
            self.answer(producer);
        }
    }

    /// Answers every collected receipt, in order, one producer's run at a time.
    pub(crate) fn answer(&mut self, producer: impl Fn(u64) -> Option<Arc<Inflight>>) {
        let mut rest = &self.receipts[..];
        while let Some(first) = rest.first() {
            let id = first.producer_id;
            let run = rest
                .iter()
                .position(|r| r.producer_id != id)
                .unwrap_or(rest.len());
            if let Some(inflight) = producer(id) {
                inflight.receipts(
                    rest[..run]
                        .iter()
                        .map(|r| (r.sequence_id, r.message_id.as_ref())),
                );
            }
            rest = &rest[run..];
        }
        self.receipts.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use strata_proto::pulsar::MessageIdData;
    use tokio::sync::{Semaphore, oneshot};

    use super::*;
    use crate::inflight::{Msgs, Queued};
    use crate::message::OutgoingMessage;

    fn receipt(producer_id: u64, sequence_id: u64) -> CommandSendReceipt {
        CommandSendReceipt {
            producer_id,
            sequence_id,
            message_id: Some(MessageIdData {
                ledger_id: 1,
                entry_id: sequence_id,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Runs of receipts go to their producers in order, the window's room comes back for
    /// every answered message, and a receipt of an unknown producer is ignored.
    #[tokio::test]
    async fn each_producer_gets_its_receipts_in_order_and_its_room_back() {
        let window = Arc::new(Semaphore::new(8));
        let producers = [Arc::new(Inflight::new(0)), Arc::new(Inflight::new(1))];
        let mut answers = vec![];
        for seq in 0..6u64 {
            let p = &producers[(seq % 2) as usize];
            let (reply, rx) = oneshot::channel();
            let permit = window.clone().acquire_owned().await.unwrap();
            p.put(
                seq,
                Msgs::One(Queued {
                    msg: OutgoingMessage::new(bytes::Bytes::from_static(b"x")),
                    reply,
                    _permit: permit,
                }),
            );
            answers.push(rx);
        }
        assert_eq!(window.available_permits(), 2);
        let mut batch = ReceiptBatch::default();
        let find = |id: u64| producers.get(id as usize).cloned();
        for seq in [0, 2, 1, 3, 5, 4] {
            batch.push(receipt(seq % 2, seq), find);
        }
        batch.push(receipt(9, 0), find);
        assert!(!batch.is_empty());
        batch.answer(find);
        assert!(batch.is_empty());
        for (seq, rx) in answers.into_iter().enumerate() {
            let id = rx.await.unwrap().unwrap();
            assert_eq!(id.entry_id, seq as u64);
            assert_eq!(id.partition, (seq % 2) as i32);
        }
        assert_eq!(window.available_permits(), 8);
        assert_eq!(producers[0].messages() + producers[1].messages(), 0);
    }
}
