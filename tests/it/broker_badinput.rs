//! Bad input on the Pulsar port of a real `strata standalone`: an oversized frame, a bad checksum,
//! an unknown command, a command before CONNECT, garbage, and a client that disconnects
//! mid-frame. Each closes (or, for a corrupt SEND payload, answers) only the offending connection;
//! a well-behaved client connected the whole time keeps being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload, PulsarCodec};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};
use strata_proto::pulsar::{BaseCommand, MessageMetadata, ServerError};
use tokio_util::codec::Decoder;

use crate::harness::standalone::Standalone;

/// A blocking raw Pulsar connection.
pub struct Raw {
    s: TcpStream,
    buf: BytesMut,
    codec: PulsarCodec,
}

impl Raw {
    pub fn open(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw {
            s,
            buf: BytesMut::new(),
            codec: PulsarCodec::new(),
        }
    }

    /// Sends SUBSCRIBE for subscription "s" on `topic` from the earliest message.
    pub fn subscribe(&mut self, topic: &str, sub_type: SubType, consumer_id: u64, request_id: u64) {
        self.send(&Frame::simple(commands::subscribe(
            topic,
            "s",
            sub_type,
            consumer_id,
            request_id,
            InitialPosition::Earliest,
        )));
    }

    pub fn connected(port: u16) -> Raw {
        let mut r = Raw::open(port);
        r.send(&Frame::simple(commands::connect("badinput-test", 20, None)));
        let f = r.recv().expect("CONNECTED");
        assert_eq!(f.command.r#type, Type::Connected as i32);
        let c = f.command.connected.as_ref().unwrap();
        assert!(!c.server_version.is_empty());
        assert_eq!(c.protocol_version, Some(20));
        r
    }

    pub fn send(&mut self, f: &Frame) {
        self.s.write_all(&f.to_bytes().unwrap()).unwrap();
    }

    fn raw(&mut self, bytes: &[u8]) {
        // The broker may already have closed: errors are fine here.
        let _ = self.s.write_all(bytes);
    }

    /// The next frame, or None when the broker closed the connection.
    pub fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(Ok(f))) => return Some(f),
                Ok(Some(Err(bad))) => panic!("broker sent a bad payload: {bad}"),
                Err(e) => panic!("broker sent a malformed frame: {e}"),
                Ok(None) => {}
            }
            let mut tmp = [0u8; 8192];
            match self.s.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// True if the broker closed the connection (ignoring frames it sent before closing).
    fn closed(&mut self) -> bool {
        loop {
            match self.recv() {
                None => return true,
                Some(f) if f.command.r#type == Type::Ping as i32 => continue,
                Some(f) if f.command.r#type == Type::Error as i32 => continue,
                Some(_) => return false,
            }
        }
    }

    pub fn ping_pong(&mut self) {
        self.send(&Frame::simple(commands::ping()));
        loop {
            let f = self.recv().expect("connection alive");
            if f.command.r#type == Type::Pong as i32 {
                return;
            }
        }
    }
}

fn frame_with_type(t: i32) -> Vec<u8> {
    let cmd = BaseCommand {
        r#type: t,
        ..Default::default()
    };
    let body = prost::Message::encode_to_vec(&cmd);
    let mut b = BytesMut::new();
    b.put_u32(4 + body.len() as u32);
    b.put_u32(body.len() as u32);
    b.put_slice(&body);
    b.to_vec()
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let node = Standalone::start();
    let port = node.broker_port;
    let mut good = Raw::connected(port);

    // Oversized frame: rejected from its size field, before any allocation.
    let mut r = Raw::connected(port);
    r.raw(&(200u32 << 20).to_be_bytes());
    r.raw(&[0u8; 64]);
    assert!(r.closed(), "oversized frame did not close the connection");
    good.ping_pong();

    // Unknown command type.
    let mut r = Raw::connected(port);
    r.raw(&frame_with_type(99));
    assert!(r.closed(), "unknown command did not close the connection");
    good.ping_pong();

    // Command before CONNECT.
    let mut r = Raw::open(port);
    r.send(&Frame::simple(commands::lookup(
        1,
        "persistent://public/default/x",
        false,
    )));
    assert!(r.closed(), "command before CONNECT was served");
    good.ping_pong();

    // Garbage that is not a frame at all.
    let mut r = Raw::open(port);
    r.raw(&[0, 0, 0, 8, 0, 0, 0, 200, 1, 2, 3, 4]);
    assert!(r.closed(), "garbage did not close the connection");
    good.ping_pong();

    // A client that disconnects mid-frame.
    for cut in [2usize, 6, 20] {
        let mut r = Raw::connected(port);
        let f = Frame::simple(commands::lookup(
            7,
            "persistent://public/default/mid-frame",
            false,
        ))
        .to_bytes()
        .unwrap();
        r.raw(&f[..cut.min(f.len() - 1)]);
        drop(r);
        good.ping_pong();
    }

    // Bad checksum on a SEND: SEND_ERROR(ChecksumError) and the connection stays usable.
    let mut p = Raw::connected(port);
    p.send(&Frame::simple(commands::producer(
        "persistent://public/default/badcrc",
        1,
        1,
        None,
    )));
    let f = p.recv().unwrap();
    assert_eq!(
        f.command.r#type,
        Type::ProducerSuccess as i32,
        "{:?}",
        f.command
    );
    let payload = Payload::new(
        MessageMetadata {
            producer_name: "x".into(),
            sequence_id: 0,
            publish_time: 1,
            ..Default::default()
        },
        b"hello",
    );
    let mut bytes = Frame::with_payload(commands::send(1, 0, 1), payload.clone())
        .to_bytes()
        .unwrap()
        .to_vec();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff; // corrupt the payload after the checksum was computed
    p.raw(&bytes);
    let f = p.recv().unwrap();
    assert_eq!(f.command.r#type, Type::SendError as i32, "{:?}", f.command);
    assert_eq!(
        f.command.send_error.as_ref().unwrap().error,
        ServerError::ChecksumError as i32
    );
    // ...and a correct SEND on the same connection is stored.
    p.send(&Frame::with_payload(commands::send(1, 1, 1), payload));
    let f = p.recv().unwrap();
    assert_eq!(
        f.command.r#type,
        Type::SendReceipt as i32,
        "{:?}",
        f.command
    );
    p.ping_pong();

    good.ping_pong();
    let log = node.log_tail();
    assert!(!log.contains("panicked"), "broker panicked:\n{log}");
    assert!(
        log.contains("malformed frame"),
        "no clear log line for the malformed frame:\n{log}"
    );
}
