//! Protocol behaviour of a real `strata standalone` over raw frames: version negotiation,
//! producer access modes, GET_TOPICS_OF_NAMESPACE with a pattern, GET_LAST_MESSAGE_ID,
//! CONSUMER_STATS, ACK receipts, and an unsupported command answered with an ERROR.

use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_subscribe::SubType;
use strata_proto::pulsar::{
    BaseCommand, CommandConsumerStats, CommandGetTopicsOfNamespace, CommandNewTxn, MessageMetadata,
    ProducerAccessMode, ServerError,
};

use crate::broker_badinput::Raw;
use crate::harness::standalone::Standalone;

/// The next frame that is not a PING.
fn next(r: &mut Raw) -> Frame {
    loop {
        let f = r.recv().expect("connection open");
        if f.command.r#type != Type::Ping as i32 {
            return f;
        }
    }
}

fn producer(r: &mut Raw, topic: &str, id: u64, name: &str, mode: ProducerAccessMode) -> Frame {
    let mut cmd = commands::producer(topic, id, id + 100, Some(name.into()));
    if let Some(p) = cmd.producer.as_mut() {
        p.producer_access_mode = Some(mode as i32);
    }
    r.send(&Frame::simple(cmd));
    next(r)
}

fn send(r: &mut Raw, pid: u64, seq: u64, n: i32) -> Frame {
    let md = MessageMetadata {
        producer_name: "x".into(),
        sequence_id: seq,
        publish_time: 1,
        num_messages_in_batch: (n > 1).then_some(n),
        ..Default::default()
    };
    r.send(&Frame::with_payload(
        commands::send(pid, seq, n),
        Payload::new(md, b"body"),
    ));
    next(r)
}

#[test]
fn negotiation_access_modes_and_queries() {
    let node = Standalone::start();
    let port = node.broker_port;

    // Version negotiation: min(client, server).
    for (client, expect) in [(12, 12), (20, 20), (21, 21), (99, 21)] {
        let mut r = Raw::open(port);
        r.send(&Frame::simple(commands::connect(
            "proto-test",
            client,
            None,
        )));
        let f = next(&mut r);
        let c = f.command.connected.as_ref().expect("CONNECTED");
        assert_eq!(c.protocol_version, Some(expect), "client v{client}");
        assert!(c.max_message_size.unwrap_or(0) >= 5 * 1024 * 1024);
    }

    let topic = "persistent://public/default/modes";
    let mut a = Raw::connected(port);
    let mut b = Raw::connected(port);
    // Exclusive: a second producer is refused.
    let f = producer(&mut a, topic, 1, "ex", ProducerAccessMode::Exclusive);
    assert_eq!(
        f.command.r#type,
        Type::ProducerSuccess as i32,
        "{:?}",
        f.command
    );
    let f = producer(&mut b, topic, 1, "other", ProducerAccessMode::Shared);
    assert_eq!(f.command.r#type, Type::Error as i32);
    // WaitForExclusive: queued (producer_ready=false), granted when the holder leaves.
    let f = producer(
        &mut b,
        topic,
        2,
        "waiter",
        ProducerAccessMode::WaitForExclusive,
    );
    assert_eq!(
        f.command.producer_success.as_ref().unwrap().producer_ready,
        Some(false)
    );
    a.send(&Frame::simple(commands::close_producer(1, 7, None)));
    assert_eq!(next(&mut a).command.r#type, Type::Success as i32);
    let f = next(&mut b);
    assert_eq!(
        f.command.producer_success.as_ref().unwrap().producer_ready,
        Some(true),
        "{:?}",
        f.command
    );
    assert_eq!(
        send(&mut b, 2, 0, 1).command.r#type,
        Type::SendReceipt as i32
    );
    // ExclusiveWithFencing: takes over and closes the old producer.
    let f = producer(
        &mut a,
        topic,
        3,
        "fencer",
        ProducerAccessMode::ExclusiveWithFencing,
    );
    assert_eq!(
        f.command.r#type,
        Type::ProducerSuccess as i32,
        "{:?}",
        f.command
    );
    assert_eq!(next(&mut b).command.r#type, Type::CloseProducer as i32);
    let f = send(&mut a, 3, 1, 3);
    let receipt = f.command.send_receipt.as_ref().expect("receipt");
    let last = receipt.message_id.clone().unwrap();

    // Consumer: GET_LAST_MESSAGE_ID reports the last batch's last index; stats; ack receipt.
    let mut c = Raw::connected(port);
    c.subscribe(topic, SubType::Shared, 1, 1);
    assert_eq!(next(&mut c).command.r#type, Type::Success as i32);
    c.send(&Frame::simple(commands::get_last_message_id(1, 2)));
    let f = next(&mut c);
    let r = f
        .command
        .get_last_message_id_response
        .as_ref()
        .expect("last id");
    assert_eq!(
        (r.last_message_id.ledger_id, r.last_message_id.entry_id),
        (last.ledger_id, last.entry_id)
    );
    assert_eq!(r.last_message_id.batch_index, Some(2));
    c.send(&Frame::simple(commands::flow(1, 10)));
    let m1 = next(&mut c);
    let m2 = next(&mut c);
    assert_eq!(
        (m1.command.r#type, m2.command.r#type),
        (Type::Message as i32, Type::Message as i32)
    );
    let mut ack = commands::ack(
        1,
        AckType::Individual,
        vec![
            m1.command.message.as_ref().unwrap().message_id.clone(),
            m2.command.message.as_ref().unwrap().message_id.clone(),
        ],
    );
    if let Some(a) = ack.ack.as_mut() {
        a.request_id = Some(3);
    }
    c.send(&Frame::simple(ack));
    let f = next(&mut c);
    assert_eq!(
        f.command.r#type,
        Type::AckResponse as i32,
        "{:?}",
        f.command
    );
    c.send(&Frame::simple(BaseCommand {
        consumer_stats: Some(Box::new(CommandConsumerStats {
            request_id: 4,
            consumer_id: 1,
        })),
        ..commands::base(Type::ConsumerStats)
    }));
    let f = next(&mut c);
    let st = f.command.consumer_stats_response.as_ref().expect("stats");
    assert_eq!(st.error_code, None);
    assert_eq!(st.msg_backlog, Some(0));

    // GET_TOPICS_OF_NAMESPACE with a pattern.
    c.send(&Frame::simple(BaseCommand {
        get_topics_of_namespace: Some(Box::new(CommandGetTopicsOfNamespace {
            request_id: 5,
            namespace: "public/default".into(),
            topics_pattern: Some("persistent://public/default/mod.*".into()),
            ..Default::default()
        })),
        ..commands::base(Type::GetTopicsOfNamespace)
    }));
    let f = next(&mut c);
    let t = f
        .command
        .get_topics_of_namespace_response
        .as_ref()
        .expect("topics");
    assert_eq!(t.topics, vec![topic.to_owned()]);
    assert_eq!(t.filtered, Some(true));

    // Transactions are not supported: an ERROR, and the connection stays up.
    c.send(&Frame::simple(BaseCommand {
        new_txn: Some(Box::new(CommandNewTxn {
            request_id: 6,
            ..Default::default()
        })),
        ..commands::base(Type::NewTxn)
    }));
    let f = next(&mut c);
    assert_eq!(
        f.command.error.as_ref().map(|e| e.error),
        Some(ServerError::NotAllowedError as i32)
    );
    c.ping_pong();
}
