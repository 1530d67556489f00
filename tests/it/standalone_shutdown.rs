//! `strata standalone` lifecycle: it starts quickly, shuts down gracefully on SIGTERM (exit 0,
//! ledgers closed so the next start recovers nothing), and serves the stored data after a restart.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_proto::commands;
use strata_proto::frame::{Frame, Payload};
use strata_proto::pulsar::MessageMetadata;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};

use crate::broker_badinput::Raw;
use crate::harness::{free_port, strata_bin};

fn spawn(data: &Path, log: &Path, bp: u16, hp: u16) -> Child {
    let f = std::fs::File::create(log).unwrap();
    let child = Command::new(strata_bin())
        .args(["standalone", "--data-dir"])
        .arg(data)
        .args([
            "--broker-port",
            &bp.to_string(),
            "--http-port",
            &hp.to_string(),
        ])
        .env("STRATA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", bp)).is_err() {
        assert!(
            Instant::now() < deadline,
            "standalone did not start:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn sigterm_and_wait(mut child: Child, log: &Path) {
    // SAFETY-free: libc::kill on a child pid we own.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "no exit within 30 s of SIGTERM:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "exit {status}:\n{text}");
    assert!(text.contains("standalone stopped"), "{text}");
}

#[test]
fn sigterm_closes_ledgers_and_data_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (bp, hp) = (free_port(), free_port());
    let log1 = tmp.path().join("run1.log");
    let child = spawn(&data, &log1, bp, hp);
    let ready = std::fs::read_to_string(&log1).unwrap_or_default();
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
    sigterm_and_wait(child, &log1);

    let log2 = tmp.path().join("run2.log");
    let child = spawn(&data, &log2, bp, hp);
    let mut c = Raw::connected(bp);
    c.send(&Frame::simple(commands::subscribe(
        topic,
        "s",
        SubType::Exclusive,
        1,
        2,
        InitialPosition::Earliest,
    )));
    assert_eq!(c.recv().unwrap().command.r#type, Type::Success as i32);
    c.send(&Frame::simple(commands::flow(1, 100)));
    let mut got = Vec::new();
    while got.len() < 10 {
        let f = c.recv().expect("message");
        if f.command.r#type == Type::Message as i32 {
            got.push(f.payload.unwrap().data);
        }
    }
    assert_eq!(got[0].as_ref(), b"m0");
    assert_eq!(got[9].as_ref(), b"m9");
    let text = std::fs::read_to_string(&log2).unwrap();
    assert!(
        !text.contains("recovered open ledger"),
        "a ledger was left open by the graceful shutdown:\n{text}"
    );
    drop(c);
    sigterm_and_wait(child, &log2);
}
