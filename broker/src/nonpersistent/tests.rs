use std::sync::Arc;

use strata_proto::frame::Payload;
use strata_proto::pulsar::MessageMetadata;
use strata_proto::pulsar::command_subscribe::SubType;

use super::{NonPersistentTopic, NpConsumerSpec};
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundRx};
use crate::stats::{ClientInfo, RateMeter};
use crate::topic_name::TopicName;

fn topic(name: &str) -> NonPersistentTopic {
    NonPersistentTopic::new(
        TopicName::parse(&format!("non-persistent://t/ns/{name}")).unwrap(),
        Metrics::new(),
    )
}

fn spec(key: u64, name: &str, sub_type: SubType) -> (NpConsumerSpec, OutboundRx) {
    let (out, rx) = Outbound::channel();
    let spec = NpConsumerSpec {
        key,
        consumer_id: key,
        name: name.into(),
        priority: 0,
        sub_type,
        key_shared: None,
        out,
        client: ClientInfo::new("127.0.0.1:1".into(), "test".into()),
        metadata: Vec::new(),
    };
    (spec, rx)
}

fn msg(n: i32) -> Payload {
    let md = MessageMetadata {
        producer_name: "p".into(),
        num_messages_in_batch: (n > 1).then_some(n),
        ..Default::default()
    };
    Payload::new(md, b"x")
}

fn count(rx: &mut OutboundRx) -> usize {
    let mut n = 0;
    while rx.try_recv().is_some() {
        n += 1;
    }
    n
}

#[test]
fn with_no_subscription_a_message_is_dropped_on_the_publisher() {
    let t = topic("a");
    let drops = RateMeter::default();
    assert_eq!(t.publish(&msg(1), &drops), 0);
    assert_eq!(t.publish(&msg(3), &drops), 0);
    assert_eq!(drops.totals().0, 4, "a batch counts its messages");
}

#[test]
fn each_subscription_gets_the_message_while_permits_last() {
    let t = topic("b");
    let (a, mut ra) = spec(1, "a", SubType::Exclusive);
    let (b, mut rb) = spec(2, "b", SubType::Exclusive);
    let sa = t.subscribe("sa", a).unwrap();
    let sb = t.subscribe("sb", b).unwrap();
    sa.flow(1, 2);
    sb.flow(2, 100);
    let drops = RateMeter::default();
    for _ in 0..5 {
        t.publish(&msg(1), &drops);
    }
    assert_eq!(count(&mut ra), 2, "only as many as its permits");
    assert_eq!(count(&mut rb), 5);
    assert_eq!(
        drops.totals().0,
        0,
        "every message reached some subscription"
    );
    sa.with_view(|v| assert_eq!(v.drops.totals().0, 3));
    assert_eq!(sa.permits(1), Some(0));
}

#[test]
fn shared_round_robin_skips_consumers_without_permits() {
    let t = topic("c");
    let (a, mut ra) = spec(1, "a", SubType::Shared);
    let (b, mut rb) = spec(2, "b", SubType::Shared);
    let s = t.subscribe("s", a).unwrap();
    t.subscribe("s", b).unwrap();
    s.flow(1, 10);
    s.flow(2, 2);
    let drops = RateMeter::default();
    for _ in 0..8 {
        t.publish(&msg(1), &drops);
    }
    assert_eq!(count(&mut rb), 2);
    assert_eq!(count(&mut ra), 6);
}

#[test]
fn admission_rules_and_subscription_lifetime() {
    let t = topic("d");
    let (a, _ra) = spec(1, "a", SubType::Exclusive);
    let (b, _rb) = spec(2, "b", SubType::Exclusive);
    let (c, _rc) = spec(3, "c", SubType::Shared);
    let s = t.subscribe("s", a).unwrap();
    assert!(t.subscribe("s", b).is_err(), "a second exclusive consumer");
    assert!(t.subscribe("s", c).is_err(), "another type");
    assert_eq!(t.subscription_names(), vec!["s".to_owned()]);
    t.detach(&s, 1);
    assert!(
        t.subscription_names().is_empty(),
        "gone with its last consumer"
    );
    assert!(t.idle_for().is_some());
    let (d, _rd) = spec(4, "d", SubType::Shared);
    t.subscribe("s", d).unwrap();
    assert!(t.idle_for().is_none());
}

#[test]
fn failover_sends_to_one_active_consumer() {
    let t = NonPersistentTopic::new(
        TopicName::parse("non-persistent://t/ns/e-partition-1").unwrap(),
        Metrics::new(),
    );
    let (a, mut ra) = spec(1, "a", SubType::Failover);
    let (b, mut rb) = spec(2, "b", SubType::Failover);
    let s = t.subscribe("s", a).unwrap();
    t.subscribe("s", b).unwrap();
    s.flow(1, 10);
    s.flow(2, 10);
    let drops = RateMeter::default();
    for _ in 0..4 {
        t.publish(&msg(1), &drops);
    }
    // Partition 1 of two consumers sorted by name: "b".
    assert_eq!((count(&mut ra), count(&mut rb)), (0, 4));
}

#[test]
fn stats_show_drop_counters() {
    let t = topic("f");
    let (a, _ra) = spec(1, "a", SubType::Shared);
    t.subscribe("s", a).unwrap();
    let drops = Arc::new(RateMeter::default());
    t.publish(&msg(1), &drops);
    let st = t.stats("host:1");
    assert_eq!(st["subscriptions"]["s"]["msgDropCount"], 1);
    assert_eq!(st["msgDropCount"], 1);
    assert_eq!(st["msgInCounter"], 1);
    assert!(st.get("nonContiguousDeletedMessagesRanges").is_none());
    assert_eq!(t.internal_stats()["entriesAddedCounter"], 1);
}
