//! No panics on client input: random sequences of well-framed commands with random ids, topics,
//! positions and permits are thrown at an in-process broker (in-memory storage and metadata).
//! Afterwards no task has panicked and a fresh client is still served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use strata_broker::config::BrokerConfig;
use strata_broker::server::BrokerServer;
use strata_broker::service::{BrokerService, LocalOwnership};
use strata_broker::storage::MemStorage;
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload, PulsarCodec};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_ack::AckType;
use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};
use strata_proto::pulsar::{
    BaseCommand, CommandGetTopicsOfNamespace, CommandSeek, MessageIdData, MessageMetadata,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone)]
enum Op {
    Producer(u64, u8),
    Send(u64, u64, i32),
    Subscribe(u64, u8, i32, bool),
    Flow(u64, u32),
    Ack(u64, u64, u64, bool, Vec<i64>),
    Redeliver(u64),
    Seek(u64, u64, u64),
    SeekTime(u64, u64),
    Unsubscribe(u64),
    CloseConsumer(u64),
    CloseProducer(u64),
    LastId(u64),
    Lookup(String),
    Topics(String),
    Ping,
}

fn topic(i: u8) -> String {
    format!("persistent://public/default/rnd-{}", i % 3)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..4, any::<u8>()).prop_map(|(a, b)| Op::Producer(a, b)),
        (0u64..4, 0u64..50, -2i32..5).prop_map(|(a, b, c)| Op::Send(a, b, c)),
        (0u64..4, any::<u8>(), 0i32..5, any::<bool>())
            .prop_map(|(a, b, c, d)| Op::Subscribe(a, b, c, d)),
        (0u64..4, 0u32..2000).prop_map(|(a, b)| Op::Flow(a, b)),
        (
            0u64..4,
            0u64..5,
            0u64..50,
            any::<bool>(),
            proptest::collection::vec(any::<i64>(), 0..2)
        )
            .prop_map(|(a, b, c, d, e)| Op::Ack(a, b, c, d, e)),
        (0u64..4).prop_map(Op::Redeliver),
        (
            0u64..4,
            prop_oneof![Just(u64::MAX), 0u64..5, Just(i64::MAX as u64)],
            any::<u64>()
        )
            .prop_map(|(a, b, c)| Op::Seek(a, b, c)),
        (0u64..4, any::<u64>()).prop_map(|(a, b)| Op::SeekTime(a, b)),
        (0u64..4).prop_map(Op::Unsubscribe),
        (0u64..4).prop_map(Op::CloseConsumer),
        (0u64..4).prop_map(Op::CloseProducer),
        (0u64..4).prop_map(Op::LastId),
        "[a-z:/%.*-]{0,40}".prop_map(Op::Lookup),
        "[a-z/*.()\\[-]{0,20}".prop_map(Op::Topics),
        Just(Op::Ping),
    ]
}

fn frame(op: &Op, rid: u64) -> Frame {
    let sub_type = |t: i32| match t {
        0 => SubType::Exclusive,
        1 => SubType::Shared,
        2 => SubType::Failover,
        _ => SubType::KeyShared,
    };
    match op.clone() {
        Op::Producer(id, t) => Frame::simple(commands::producer(&topic(t), id, rid, None)),
        Op::Send(id, seq, n) => {
            let md = MessageMetadata {
                producer_name: "r".into(),
                sequence_id: seq,
                publish_time: seq,
                num_messages_in_batch: Some(n),
                partition_key: Some(format!("k{}", seq % 3)),
                ..Default::default()
            };
            Frame::with_payload(commands::send(id, seq, n), Payload::new(md, b"x"))
        }
        Op::Subscribe(id, t, st, earliest) => {
            let pos = if earliest {
                InitialPosition::Earliest
            } else {
                InitialPosition::Latest
            };
            Frame::simple(commands::subscribe(
                &topic(t),
                "s",
                sub_type(st),
                id,
                rid,
                pos,
            ))
        }
        Op::Flow(id, n) => Frame::simple(commands::flow(id, n)),
        Op::Ack(id, l, e, cumulative, ack_set) => {
            let t = if cumulative {
                AckType::Cumulative
            } else {
                AckType::Individual
            };
            let m = MessageIdData {
                ledger_id: l,
                entry_id: e,
                ack_set,
                ..Default::default()
            };
            Frame::simple(commands::ack(id, t, vec![m]))
        }
        Op::Redeliver(id) => Frame::simple(commands::redeliver_unacknowledged(id, vec![])),
        Op::Seek(id, l, e) => Frame::simple(BaseCommand {
            seek: Some(Box::new(CommandSeek {
                consumer_id: id,
                request_id: rid,
                message_id: Some(MessageIdData {
                    ledger_id: l,
                    entry_id: e,
                    ..Default::default()
                }),
                message_publish_time: None,
            })),
            ..commands::base(Type::Seek)
        }),
        Op::SeekTime(id, t) => Frame::simple(commands::seek_to_time(id, rid, t)),
        Op::Unsubscribe(id) => Frame::simple(commands::unsubscribe(id, rid)),
        Op::CloseConsumer(id) => Frame::simple(commands::close_consumer(id, rid, None)),
        Op::CloseProducer(id) => Frame::simple(commands::close_producer(id, rid, None)),
        Op::LastId(id) => Frame::simple(commands::get_last_message_id(id, rid)),
        Op::Lookup(t) => Frame::simple(commands::lookup(rid, &t, false)),
        Op::Topics(p) => Frame::simple(BaseCommand {
            get_topics_of_namespace: Some(Box::new(CommandGetTopicsOfNamespace {
                request_id: rid,
                namespace: "public/default".into(),
                topics_pattern: Some(p),
                ..Default::default()
            })),
            ..commands::base(Type::GetTopicsOfNamespace)
        }),
        Op::Ping => Frame::simple(commands::ping()),
    }
}

async fn connect(port: u16) -> Framed<TcpStream, PulsarCodec> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut f = Framed::new(s, PulsarCodec::new());
    f.send(Frame::simple(commands::connect("random", 20, None)))
        .await
        .unwrap();
    let r = f.next().await.unwrap().unwrap().unwrap();
    assert_eq!(r.command.r#type, Type::Connected as i32);
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn random_command_sequences_never_panic(ops in proptest::collection::vec(op(), 1..60)) {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info);
        }));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let config = BrokerConfig { broker_port: 0, http_port: 0, ..Default::default() };
            let svc = BrokerService::new(config, Arc::new(MemStorage::default()), strata_broker::metadata::in_memory().unwrap(), Arc::new(LocalOwnership));
            let server = BrokerServer::start(svc).await.unwrap();
            let port = server.broker_addr.port();
            let mut c = connect(port).await;
            for (i, op) in ops.iter().enumerate() {
                if c.send(frame(op, i as u64 + 1)).await.is_err() {
                    break;
                }
            }
            // Drain what the broker answers for a moment.
            let _ = tokio::time::timeout(Duration::from_millis(200), async { while let Some(Ok(_)) = c.next().await {} }).await;
            // A fresh client is served.
            let mut d = connect(port).await;
            d.send(Frame::simple(commands::ping())).await.unwrap();
            let pong = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    let f = d.next().await.unwrap().unwrap().unwrap();
                    if f.command.r#type == Type::Pong as i32 {
                        return;
                    }
                }
            })
            .await;
            assert!(pong.is_ok(), "broker stopped serving after {ops:?}");
            drop(c);
            drop(d);
            tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await.expect("shutdown");
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a task panicked on {:?}", ops);
    }
}
