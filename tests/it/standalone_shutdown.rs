//! `strata standalone` lifecycle: it starts quickly, shuts down gracefully on SIGTERM (exit 0,
//! ledgers closed so the next start recovers nothing), and serves the stored data after a restart.

use bytes::Bytes;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_subscribe::SubType;
use strata_proto::pulsar::{MessageIdData, MessageMetadata};

use crate::broker_badinput::Raw;
use crate::harness::standalone::Standalone;

/// SIGTERM: the process exits 0 and logs that it stopped.
fn stop_gracefully(node: &mut Standalone) {
    let status = node.terminate();
    let text = node.log_of_run();
    assert!(status.success(), "exit {status}:\n{text}");
    assert!(text.contains("standalone stopped"), "{text}");
}

#[test]
fn sigterm_closes_ledgers_and_data_survives() {
    let mut node = Standalone::start();
    let bp = node.broker_port;
    let ready = node.log_of_run();
    if let Some(line) = ready.lines().find(|l| l.contains("standalone ready")) {
        eprintln!("{line}");
    }

    let topic = "persistent://public/default/shutdown";
    let mut p = Raw::connected(bp);
    p.send(&Frame::simple(commands::producer(
        topic,
        1,
        1,
        Some("p".into()),
    )));
    assert_eq!(
        p.recv().unwrap().command.r#type,
        Type::ProducerSuccess as i32
    );
    for seq in 0..10u64 {
        let md = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: 1,
            ..Default::default()
        };
        p.send(&Frame::with_payload(
            commands::send(1, seq, 1),
            Payload::new(md, format!("m{seq}").as_bytes()),
        ));
    }
    for _ in 0..10 {
        assert_eq!(p.recv().unwrap().command.r#type, Type::SendReceipt as i32);
    }
    drop(p);
    stop_gracefully(&mut node);

    node.start_again();
    let mut c = subscribed(bp, topic);
    let got = receive(&mut c, 10);
    assert_eq!(got[0].1.as_ref(), b"m0");
    assert_eq!(got[9].1.as_ref(), b"m9");
    let text = node.log_of_run();
    assert!(
        !text.contains("recovered open ledger"),
        "a ledger was left open by the graceful shutdown:\n{text}"
    );
    // Acks without a receipt: the first is written at once, the next ones wait for the cursor
    // flush interval (1 s), which SIGTERM does not wait out: the shutdown writes them.
    let ack = |c: &mut Raw, ids: &[(MessageIdData, Bytes)]| {
        let ids = ids.iter().map(|(id, _)| id.clone()).collect();
        c.send(&Frame::simple(commands::ack(1, AckType::Individual, ids)));
    };
    ack(&mut c, &got[..1]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    ack(&mut c, &got[1..5]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop_gracefully(&mut node);
    drop(c);

    node.start_again();
    let mut c = subscribed(bp, topic);
    let again = receive(&mut c, 5);
    assert_eq!(again[0].1.as_ref(), b"m5", "acked messages redelivered");
    assert_eq!(again[4].1.as_ref(), b"m9");
    drop(c);
    stop_gracefully(&mut node);
}

/// An exclusive consumer of `topic` with 100 permits.
fn subscribed(bp: u16, topic: &str) -> Raw {
    let mut c = Raw::connected(bp);
    c.subscribe(topic, SubType::Exclusive, 1, 2);
    assert_eq!(c.recv().unwrap().command.r#type, Type::Success as i32);
    c.send(&Frame::simple(commands::flow(1, 100)));
    c
}

/// The next `n` messages on `c`: their ids and payloads.
fn receive(c: &mut Raw, n: usize) -> Vec<(MessageIdData, Bytes)> {
    let mut got = Vec::new();
    while got.len() < n {
        let f = c.recv().expect("message");
        if f.command.r#type == Type::Message as i32 {
            let id = f.command.message.expect("message command").message_id;
            got.push((id, f.payload.expect("payload").data));
        }
    }
    got
}
