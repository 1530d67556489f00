//! Non-persistent topics against a real `strata standalone`: with the official Python client
//! (`tests/python/non_persistent.py`: fan-out to every connected subscription with immediate
//! receipts, drops under load counted in stats, listing by mode over REST and the binary
//! protocol, a partitioned non-persistent topic) and over raw frames (receipt and message ids,
//! GET_TOPICS_OF_NAMESPACE modes, ack receipts, `/metrics`).

use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_get_topics_of_namespace::Mode;
use strata_proto::pulsar::command_subscribe::SubType;
use strata_proto::pulsar::{BaseCommand, CommandGetTopicsOfNamespace, MessageMetadata};

use crate::broker_badinput::Raw;
use crate::harness::http::http;
use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script_with;

fn scenario(name: &str) {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script_with(&py, "non_persistent", &node, &[name]);
}

#[test]
fn non_persistent_fanout_immediate_receipts_and_subscription_lifetime() {
    scenario("fanout");
}

#[test]
fn non_persistent_drops_under_load_are_counted_in_stats() {
    scenario("drops");
}

#[test]
fn non_persistent_listing_by_mode_rest_and_pattern_consumers() {
    scenario("listing");
}

#[test]
fn non_persistent_partitioned_topic() {
    scenario("partitioned");
}

/// The next frame that is not a PING.
fn next(r: &mut Raw) -> Frame {
    loop {
        let f = r.recv().expect("connection open");
        if f.command.r#type != Type::Ping as i32 {
            return f;
        }
    }
}

fn topics(r: &mut Raw, rid: u64, mode: Mode) -> Vec<String> {
    r.send(&Frame::simple(BaseCommand {
        get_topics_of_namespace: Some(Box::new(CommandGetTopicsOfNamespace {
            request_id: rid,
            namespace: "public/default".into(),
            mode: Some(mode as i32),
            ..Default::default()
        })),
        ..commands::base(Type::GetTopicsOfNamespace)
    }));
    let f = next(r);
    let mut t = f
        .command
        .get_topics_of_namespace_response
        .as_ref()
        .expect("topics")
        .topics
        .clone();
    t.sort();
    t
}

#[test]
fn non_persistent_raw_ids_listing_modes_and_ack_receipts() {
    let node = Standalone::start();
    let np = "non-persistent://public/default/np-raw";
    let per = "persistent://public/default/p-raw";
    let mut c = Raw::connected(node.broker_port);
    c.subscribe(np, SubType::Shared, 1, 1);
    assert_eq!(next(&mut c).command.r#type, Type::Success as i32);
    c.send(&Frame::simple(commands::flow(1, 100)));
    c.send(&Frame::simple(commands::producer(
        np,
        7,
        2,
        Some("p".into()),
    )));
    assert_eq!(next(&mut c).command.r#type, Type::ProducerSuccess as i32);
    c.send(&Frame::simple(commands::producer(
        per,
        8,
        3,
        Some("q".into()),
    )));
    assert_eq!(next(&mut c).command.r#type, Type::ProducerSuccess as i32);

    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 0,
        publish_time: 1,
        ..Default::default()
    };
    c.send(&Frame::with_payload(
        commands::send(7, 0, 1),
        Payload::new(md, b"hello"),
    ));
    // The message and the receipt, in either order.
    let (mut receipt, mut message) = (None, None);
    while receipt.is_none() || message.is_none() {
        let f = next(&mut c);
        match Type::try_from(f.command.r#type) {
            Ok(Type::SendReceipt) => receipt = f.command.send_receipt.clone(),
            Ok(Type::Message) => message = Some(f),
            other => panic!("unexpected {other:?}"),
        }
    }
    let id = receipt.expect("receipt").message_id.expect("id");
    assert_eq!(
        (id.ledger_id, id.entry_id),
        (0, 0),
        "Pulsar's non-persistent id"
    );
    let m = message.expect("message");
    let mid = m
        .command
        .message
        .as_ref()
        .expect("message")
        .message_id
        .clone();
    assert_eq!((mid.ledger_id, mid.entry_id), (0, 0));
    assert_eq!(&m.payload.as_ref().expect("payload").data[..], b"hello");

    // Acks are accepted, with a receipt when asked.
    let mut ack = commands::ack(1, AckType::Individual, vec![mid]);
    if let Some(a) = ack.ack.as_mut() {
        a.request_id = Some(9);
    }
    c.send(&Frame::simple(ack));
    let f = next(&mut c);
    assert_eq!(f.command.r#type, Type::AckResponse as i32);
    assert_eq!(f.command.ack_response.as_ref().and_then(|a| a.error), None);

    assert_eq!(topics(&mut c, 10, Mode::NonPersistent), vec![np.to_owned()]);
    assert_eq!(topics(&mut c, 11, Mode::Persistent), vec![per.to_owned()]);
    assert_eq!(
        topics(&mut c, 12, Mode::All),
        vec![np.to_owned(), per.to_owned()]
    );
    // /metrics counts the non-persistent topic (its consumer is the only one of the namespace).
    let (st, body) = http(node.http_port, "GET", "/metrics", "");
    assert_eq!(st, 200);
    assert!(
        body.lines()
            .any(|l| l.starts_with("pulsar_consumers_count{")
                && l.contains("namespace=\"public/default\"")
                && l.ends_with(" 1.0")),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("pulsar_topics_count{") && l.ends_with(" 2.0")),
        "{body}"
    );
    c.ping_pong();
}
