//! Unit tests of subscriptions and dispatchers over in-memory storage and metadata.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::frame::Payload;
use strata_proto::pulsar::command_subscribe::SubType;
use strata_proto::pulsar::{KeySharedMode, MessageMetadata};

use crate::cache::EntryCache;
use crate::managed_ledger::{ManagedLedger, ManagedLedgerConfig};
use crate::metadata::MetaClient;
use crate::metrics::Metrics;
use crate::position::Position;
use crate::storage::MemStorage;
use crate::subscription::*;

fn entry(seq: u64, key: Option<&str>, n: i32) -> Bytes {
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: seq,
        publish_time: 1000 + seq,
        partition_key: key.map(|k| k.to_owned()),
        num_messages_in_batch: (n > 1).then_some(n),
        ..Default::default()
    };
    Payload::new(md, format!("m{seq}").as_bytes()).raw
}

struct Fixture {
    ml: ManagedLedger,
    meta: MetaClient,
    storage: MemStorage,
}

impl Fixture {
    async fn new() -> Self {
        let storage = MemStorage::default();
        let meta = crate::metadata::in_memory().unwrap();
        let ml = ManagedLedger::open(
            "t/ns/persistent/x",
            Arc::new(storage.clone()),
            meta.clone(),
            EntryCache::new(1 << 20),
            ManagedLedgerConfig::default(),
        )
        .await
        .unwrap();
        Fixture { ml, meta, storage }
    }

    async fn publish(&self, seq: u64, key: Option<&str>) -> Position {
        self.ml.append(entry(seq, key, 1)).await.unwrap()
    }

    async fn sub(&self, name: &str, initial: InitialPosition) -> Subscription {
        self.sub_with(name, initial, SubscriptionConfig::default())
            .await
    }

    async fn sub_with(
        &self,
        name: &str,
        initial: InitialPosition,
        config: SubscriptionConfig,
    ) -> Subscription {
        let id = SubscriptionId {
            topic: "persistent://t/ns/x".into(),
            partition: -1,
            name: name.into(),
            durable: true,
        };
        Subscription::open(
            id,
            initial,
            self.ml.clone(),
            crate::cursor_store::CursorStore::new(self.meta.clone()),
            config,
            Metrics::new(),
        )
        .await
        .unwrap()
    }
}

struct TestConsumer {
    key: u64,
    rx: crate::outbound::OutboundRx,
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

async fn consumer(sub: &Subscription, t: SubType, name: &str) -> TestConsumer {
    let (tx, rx) = crate::outbound::Outbound::channel();
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    sub.add_consumer(ConsumerSpec {
        key,
        consumer_id: key,
        name: name.into(),
        priority: 0,
        sub_type: t,
        key_shared: (t == SubType::KeyShared).then(|| KeySharedSpec {
            mode: KeySharedMode::AutoSplit,
            ranges: vec![],
        }),
        out: tx,
        client: Default::default(),
        metadata: Vec::new(),
        compacted: None,
    })
    .await
    .unwrap();
    TestConsumer { key, rx }
}

/// (seq, position, redelivery count) of the next MESSAGE frame.
async fn next_msg(c: &mut TestConsumer) -> Option<(u64, Position, u32)> {
    next_msg_within(c, 1000).await
}

/// (seq, position, redelivery count) of the next MESSAGE frame within `ms`.
async fn next_msg_within(c: &mut TestConsumer, ms: u64) -> Option<(u64, Position, u32)> {
    loop {
        let f = tokio::time::timeout(Duration::from_millis(ms), c.rx.recv())
            .await
            .ok()??;
        if let Some(m) = &f.command.message {
            let p = f.payload.as_ref()?;
            return Some((
                p.metadata.sequence_id,
                Position::from_wire(m.message_id.ledger_id, m.message_id.entry_id),
                m.redelivery_count.unwrap_or(0),
            ));
        }
    }
}

fn ack_id(p: Position) -> Vec<AckId> {
    vec![AckId {
        position: p,
        ack_set: vec![],
    }]
}

#[tokio::test]
async fn exclusive_honours_permits_and_order() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    for i in 0..5 {
        f.publish(i, None).await;
    }
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    assert!(next_msg(&mut c).await.is_none(), "sent without permits");
    sub.flow(c.key, 3);
    let got: Vec<u64> = [
        next_msg(&mut c).await,
        next_msg(&mut c).await,
        next_msg(&mut c).await,
    ]
    .iter()
    .map(|m| m.unwrap().0)
    .collect();
    assert_eq!(got, vec![0, 1, 2]);
    assert!(next_msg(&mut c).await.is_none(), "exceeded permits");
    // a second exclusive consumer is refused
    let (tx, _rx) = crate::outbound::Outbound::channel();
    let err = sub
        .add_consumer(ConsumerSpec {
            key: 999,
            consumer_id: 9,
            name: "x".into(),
            priority: 0,
            sub_type: SubType::Exclusive,
            key_shared: None,
            out: tx,
            client: Default::default(),
            metadata: Vec::new(),
            compacted: None,
        })
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn batch_entries_cost_num_messages_permits() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    f.ml.append(entry(0, None, 5)).await.unwrap();
    f.ml.append(entry(1, None, 5)).await.unwrap();
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 5);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 0);
    assert!(next_msg(&mut c).await.is_none());
    sub.flow(c.key, 5);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 1);
}

#[tokio::test]
async fn shared_round_robin_and_redelivery_on_leave() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mut a = consumer(&sub, SubType::Shared, "a").await;
    let mut b = consumer(&sub, SubType::Shared, "b").await;
    sub.flow(a.key, 10);
    sub.flow(b.key, 10);
    // Both flows reach the subscription before the entries do (a round trip through its task:
    // an append to the open ledger may complete without yielding).
    assert_eq!(sub.consumer_count().await, 2);
    for i in 0..4 {
        f.publish(i, None).await;
    }
    let mut got_a = vec![];
    while let Some(m) = next_msg(&mut a).await {
        got_a.push(m);
    }
    let mut got_b = vec![];
    while let Some(m) = next_msg(&mut b).await {
        got_b.push(m);
    }
    assert_eq!(got_a.len() + got_b.len(), 4);
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "not round robin: {got_a:?} {got_b:?}"
    );
    // b acks nothing and leaves: its messages go to a with redelivery_count 1
    sub.remove_consumer(b.key).await;
    let mut re = vec![];
    while let Some(m) = next_msg(&mut a).await {
        re.push(m);
    }
    assert_eq!(re.len(), got_b.len());
    assert!(re.iter().all(|m| m.2 == 1), "{re:?}");
}

#[tokio::test]
async fn redeliver_command_increments_count() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let p = f.publish(0, None).await;
    let mut c = consumer(&sub, SubType::Shared, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(next_msg(&mut c).await.unwrap().2, 0);
    sub.redeliver(c.key, Some(vec![p]));
    assert_eq!(next_msg(&mut c).await.unwrap().2, 1);
    sub.redeliver(c.key, None);
    assert_eq!(next_msg(&mut c).await.unwrap().2, 2);
    sub.ack(c.key, false, ack_id(p), false).await;
    sub.redeliver(c.key, None);
    assert!(next_msg(&mut c).await.is_none());
}

#[tokio::test]
async fn failover_picks_by_priority_then_name() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mut b = consumer(&sub, SubType::Failover, "b").await;
    let mut a = consumer(&sub, SubType::Failover, "a").await;
    sub.flow(a.key, 10);
    sub.flow(b.key, 10);
    f.publish(0, None).await;
    assert_eq!(next_msg(&mut a).await.unwrap().0, 0);
    assert!(next_msg(&mut b).await.is_none());
    // a leaves without acking: b becomes active and gets the message again
    sub.remove_consumer(a.key).await;
    assert_eq!(next_msg(&mut b).await.unwrap().0, 0);
}

#[tokio::test]
async fn key_shared_keeps_per_key_order_across_joins_and_leaves() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
    let mut cs = vec![consumer(&sub, SubType::KeyShared, "c0").await];
    sub.flow(cs[0].key, 1000);
    let mut seq = 0;
    let mut received: Vec<(u64, Position)> = vec![];
    let mut last_by_key = std::collections::HashMap::new();
    for round in 0..6 {
        for _ in 0..40 {
            f.publish(seq, Some(keys[(seq % 8) as usize])).await;
            seq += 1;
        }
        if round % 2 == 0 {
            let c = consumer(&sub, SubType::KeyShared, &format!("c{}", round + 1)).await;
            sub.flow(c.key, 1000);
            cs.push(c);
        } else if cs.len() > 1 {
            let c = cs.remove(0);
            sub.remove_consumer(c.key).await;
        }
        // every consumer processes and acks what it got, checking per-key order
        let last_round = round == 5;
        for c in cs.iter_mut() {
            while let Some((s, p, _)) =
                next_msg_within(c, if last_round { 2000 } else { 300 }).await
            {
                let k = s % 8;
                let prev = last_by_key.insert(k, s);
                assert!(
                    prev.is_none_or(|x| x < s || received.iter().any(|r| r.0 == s)),
                    "key {k}: {s} after {prev:?}"
                );
                received.push((s, p));
                sub.ack(c.key, false, ack_id(p), false).await;
            }
        }
    }
    let mut seqs: Vec<u64> = received.iter().map(|r| r.0).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(
        seqs.len() as u64,
        seq,
        "some messages never delivered (stuck consumer?)"
    );
}

#[tokio::test]
async fn cursor_survives_restart_and_writes_are_batched() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mut ps = vec![];
    for i in 0..200 {
        ps.push(f.publish(i, None).await);
    }
    let mut c = consumer(&sub, SubType::Shared, "c").await;
    sub.flow(c.key, 1000);
    let mut n = 0;
    while let Some((s, p, _)) = next_msg(&mut c).await {
        // ack all but every 10th
        if s % 10 != 0 {
            sub.ack(c.key, false, ack_id(p), false).await;
        }
        n += 1;
    }
    assert_eq!(n, 200);
    // Every write to the store bumps its revision: this counts all writes, cursors included.
    let before = f.meta.store().current_revision().await.unwrap();
    sub.close().await;
    let writes = f.meta.store().current_revision().await.unwrap();
    assert!(
        writes < 60,
        "{writes} cursor writes for 180 acks (before close: {before})"
    );
    // reopen: only the unacked ones come back
    let sub2 = f.sub("s", InitialPosition::Latest).await;
    let mut c2 = consumer(&sub2, SubType::Shared, "c2").await;
    sub2.flow(c2.key, 1000);
    let mut again = vec![];
    while let Some((s, _, _)) = next_msg(&mut c2).await {
        again.push(s);
    }
    assert_eq!(again, (0..200).step_by(10).collect::<Vec<_>>());
    let _ = &f.storage;
}

#[tokio::test]
async fn seek_moves_cursor_and_disconnects() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mut ps = vec![];
    for i in 0..5 {
        ps.push(f.publish(i, None).await);
    }
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    for _ in 0..5 {
        let (_, p, _) = next_msg(&mut c).await.unwrap();
        sub.ack(c.key, true, ack_id(p), false).await;
    }
    sub.seek(SeekTarget::Position(ps[2])).await.unwrap();
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 2);
    // The entry published at the time is delivered again (as Pulsar).
    sub.seek(SeekTarget::PublishTime(1004)).await.unwrap();
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 4);
}

/// Acks the client grouped before it learnt that a seek closed its consumer (upstream
/// `test_seek_inclusive`: the C++ client flushes them on reconnect, before SUBSCRIBE) are dropped,
/// as Pulsar drops acks of a consumer it closed; the seek's position holds.
#[tokio::test]
async fn acks_of_a_consumer_closed_by_a_seek_are_dropped() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mut ps = vec![];
    for i in 0..3 {
        ps.push(f.publish(i, None).await);
    }
    let mut c = consumer(&sub, SubType::Shared, "c").await;
    sub.flow(c.key, 10);
    for _ in 0..3 {
        next_msg(&mut c).await.unwrap();
    }
    sub.seek(SeekTarget::Position(Position::from_wire(
        u64::MAX,
        u64::MAX,
    )))
    .await
    .unwrap();
    let late = sub
        .ack(
            c.key,
            false,
            ps.iter().flat_map(|p| ack_id(*p)).collect(),
            false,
        )
        .await;
    assert_eq!(late, None);
    assert_eq!(
        sub.ack(
            c.key,
            false,
            ps.iter().flat_map(|p| ack_id(*p)).collect(),
            true
        )
        .await,
        None
    );
    let mut c = consumer(&sub, SubType::Shared, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 0);
}

#[tokio::test]
async fn terminated_topic_reaches_end_after_last_message() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    f.publish(0, None).await;
    f.publish(1, None).await;
    let last = f.ml.terminate().await.unwrap();
    assert!(f.ml.append(entry(2, None, 1)).await.is_err());
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(next_msg(&mut c).await.unwrap().0, 0);
    let (_, p, _) = next_msg(&mut c).await.unwrap();
    assert_eq!(p, last);
    let end = tokio::time::timeout(Duration::from_secs(1), c.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        end.command.reached_end_of_topic.is_some(),
        "{:?}",
        end.command
    );
}

#[tokio::test]
async fn delayed_delivery_waits_for_deliver_at_time() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 7,
        publish_time: now as u64,
        deliver_at_time: Some(now + 400),
        ..Default::default()
    };
    f.ml.append(Payload::new(md, b"later").raw).await.unwrap();
    f.publish(8, None).await;
    let mut c = consumer(&sub, SubType::Shared, "c").await;
    sub.flow(c.key, 10);
    assert_eq!(
        next_msg(&mut c).await.unwrap().0,
        8,
        "the delayed message overtook"
    );
    let m = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(m) = next_msg(&mut c).await {
                return m;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(m.0, 7);
}

#[tokio::test]
async fn key_shared_sticky_ranges_route_keys_and_reject_overlaps() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let mk = |ranges: Vec<(i32, i32)>, name: &str| {
        let (tx, rx) = crate::outbound::Outbound::channel();
        let key = NEXT.fetch_add(1, Ordering::Relaxed);
        (
            ConsumerSpec {
                key,
                consumer_id: key,
                name: name.into(),
                priority: 0,
                sub_type: SubType::KeyShared,
                key_shared: Some(KeySharedSpec {
                    mode: KeySharedMode::Sticky,
                    ranges,
                }),
                out: tx,
                client: Default::default(),
                metadata: Vec::new(),
                compacted: None,
            },
            TestConsumer { key, rx },
        )
    };
    let (sa, mut a) = mk(vec![(0, 32767)], "a");
    let (sb, mut b) = mk(vec![(32768, 65535)], "b");
    sub.add_consumer(sa).await.unwrap();
    sub.add_consumer(sb).await.unwrap();
    let assign_error = crate::error::server_error::CONSUMER_ASSIGN_ERROR;
    for (ranges, what) in [
        (vec![(100, 200)], "overlapping sticky range"),
        (vec![], "no sticky range"),
        (vec![(9, 3)], "inverted sticky range"),
    ] {
        let (sc, _c) = mk(ranges, "c");
        let err = sub.add_consumer(sc).await.err();
        assert_eq!(
            err.map(|e| e.server_error()),
            Some(assign_error),
            "{what} not refused with ConsumerAssignError"
        );
    }
    sub.flow(a.key, 100);
    sub.flow(b.key, 100);
    let keys = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    for (i, k) in keys.iter().enumerate() {
        f.publish(i as u64, Some(k)).await;
    }
    let mut got = std::collections::HashMap::new();
    for (who, c) in [("a", &mut a), ("b", &mut b)] {
        while let Some((s, _, _)) = next_msg(c).await {
            got.insert(s, who);
        }
    }
    assert_eq!(got.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let slot = (murmur3_32(k.as_bytes()) % 65536) as i32;
        let want = if slot <= 32767 { "a" } else { "b" };
        assert_eq!(got[&(i as u64)], want, "key {k} slot {slot}");
    }
}

#[tokio::test]
async fn ack_receipt_waits_for_the_cursor_write() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let p = f.publish(0, None).await;
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    next_msg(&mut c).await.unwrap();
    let seq = sub.ack(c.key, false, ack_id(p), true).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), sub.wait_durable(seq))
        .await
        .unwrap();
    // The stored cursor already has the ack.
    assert!(stored(&f, "s").await.is_acked(p));
}

#[tokio::test]
async fn a_congested_connection_is_not_fed_until_it_drains() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let big = vec![7u8; 1 << 20];
    for seq in 0..12u64 {
        let md = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: seq,
            ..Default::default()
        };
        f.ml.append(Payload::new(md, &big).raw).await.unwrap();
    }
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 1000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nothing read yet: at most HIGH_WATER (4 MiB) plus one entry was queued.
    let mut queued = 0;
    while let Some(fr) = c.rx.try_recv() {
        queued += 1;
        drop(fr);
    }
    assert!(
        (4..=6).contains(&queued),
        "{queued} entries of 1 MiB queued to a congested connection"
    );
    // Draining lets the rest through.
    let mut total = queued;
    while total < 12 {
        let fr = tokio::time::timeout(Duration::from_secs(2), c.rx.recv())
            .await
            .expect("dispatch resumed")
            .unwrap();
        drop(fr);
        total += 1;
    }
}

/// An entry of `size` bytes; `chunk`: (chunk id, number of chunks) of a chunked message.
fn sized_entry(seq: u64, size: usize, chunk: Option<(i32, i32)>) -> Bytes {
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: seq,
        publish_time: 1000 + seq,
        uuid: chunk.map(|_| "p-1".to_owned()),
        chunk_id: chunk.map(|c| c.0),
        num_chunks_from_msg: chunk.map(|c| c.1),
        ..Default::default()
    };
    Payload::new(md, &vec![0u8; size]).raw
}

/// A chunked message's chunks go out in one step even when the connection becomes congested
/// after its first chunk, as new entries and as replay: a seek or close between two chunks
/// would leave the C++ client a partial message (MessageChunkingTest.testSeekChunkMessages).
#[tokio::test]
async fn chunks_of_a_message_are_not_split_by_congestion() {
    let f = Fixture::new().await;
    let sub = f.sub("s", InitialPosition::Earliest).await;
    let third = crate::outbound::HIGH_WATER / 3;
    f.ml.append(sized_entry(0, 2 * third, None)).await.unwrap();
    // Its first chunk takes the queue over the high-water mark.
    f.ml.append(sized_entry(1, 2 * third, Some((0, 2))))
        .await
        .unwrap();
    f.ml.append(sized_entry(2, third, Some((1, 2))))
        .await
        .unwrap();
    f.ml.append(sized_entry(3, 16, None)).await.unwrap();
    for round in ["new", "replay"] {
        let mut c = consumer(&sub, SubType::Exclusive, "c").await;
        sub.flow(c.key, 10);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seqs = vec![];
        while let Some(fr) = c.rx.try_recv() {
            if let Some(p) = fr.payload.as_ref().filter(|_| fr.command.message.is_some()) {
                seqs.push(p.metadata.sequence_id);
            }
        }
        assert_eq!(seqs, vec![0, 1, 2], "{round}: both chunks, then the pause");
        // The consumer leaves unacknowledged: its entries are replayed to the next one.
        sub.remove_consumer(c.key).await;
    }
}

/// The cursor as stored.
async fn stored(f: &Fixture, sub: &str) -> crate::cursor::AckState {
    let snap = crate::cursor_store::CursorStore::new(f.meta.clone())
        .load(f.ml.name(), sub)
        .await
        .unwrap()
        .unwrap();
    crate::cursor::AckState::from_snapshot(&snap)
}

#[tokio::test]
async fn plain_acks_wait_out_the_interval_and_a_receipt_does_not() {
    let f = Fixture::new().await;
    let config = SubscriptionConfig {
        cursor_flush_interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let sub = f.sub_with("s", InitialPosition::Earliest, config).await;
    let mut ps = vec![];
    for i in 0..4 {
        ps.push(f.publish(i, None).await);
    }
    let mut c = consumer(&sub, SubType::Exclusive, "c").await;
    sub.flow(c.key, 10);
    for _ in 0..4 {
        next_msg(&mut c).await.unwrap();
    }
    // The first ack after a quiet period is written at once.
    sub.ack(c.key, false, ack_id(ps[0]), false).await;
    let mut waited = 0;
    while !stored(&f, "s").await.is_acked(ps[0]) {
        assert!(waited < 200, "first ack not written within 2 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    // The next one waits for the interval...
    sub.ack(c.key, false, ack_id(ps[1]), false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stored(&f, "s").await.is_acked(ps[1]));
    // ...unless somebody waits for a write: an ack receipt takes the earlier ack along.
    let seq = sub.ack(c.key, false, ack_id(ps[2]), true).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), sub.wait_durable(seq))
        .await
        .unwrap();
    let st = stored(&f, "s").await;
    assert!(st.is_acked(ps[1]) && st.is_acked(ps[2]));
    // A close writes without waiting either.
    sub.ack(c.key, false, ack_id(ps[3]), false).await;
    tokio::time::timeout(Duration::from_secs(2), sub.close())
        .await
        .unwrap();
    assert!(stored(&f, "s").await.is_acked(ps[3]));
}
