//! A connection served over an in-memory byte stream, driven frame by frame: PRODUCER and
//! SUBSCRIBE on tasks of the connection (`create.rs`).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use strata_proto::commands;
use strata_proto::frame::{Frame, PulsarCodec};
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_subscribe::{InitialPosition, SubType};
use strata_proto::pulsar::{BaseCommand, ServerError};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerConfig;
use crate::service::{BrokerService, LocalOwnership};
use crate::storage::MemStorage;
use crate::topic::Topic;
use crate::topic_name::TopicName;

struct Client {
    rd: FramedRead<ReadHalf<DuplexStream>, PulsarCodec>,
    wr: WriteHalf<DuplexStream>,
    server: tokio::task::JoinHandle<()>,
}

async fn service() -> Arc<BrokerService> {
    let svc = BrokerService::new(
        BrokerConfig::default(),
        Arc::new(MemStorage::default()),
        crate::metadata::in_memory().unwrap(),
        Arc::new(LocalOwnership),
    );
    svc.create_namespace("t", "ns").await.unwrap();
    svc
}

impl Client {
    async fn connect(svc: &Arc<BrokerService>) -> Client {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(super::serve_stream(
            theirs,
            "127.0.0.1:1".parse().unwrap(),
            None,
            svc.clone(),
            CancellationToken::new(),
        ));
        let (rd, wr) = tokio::io::split(ours);
        let mut c = Client {
            rd: FramedRead::new(rd, PulsarCodec::new()),
            wr,
            server,
        };
        c.write(&[commands::connect("test", 21, None)]).await;
        assert_eq!(c.next().await.r#type, Type::Connected as i32);
        c
    }

    /// Writes the commands in one write (the server reads them in one go).
    async fn write(&mut self, cmds: &[BaseCommand]) {
        let mut buf = Vec::new();
        for c in cmds {
            buf.extend_from_slice(&Frame::simple(c.clone()).to_bytes().unwrap());
        }
        self.wr.write_all(&buf).await.unwrap();
    }

    async fn next(&mut self) -> BaseCommand {
        let f = tokio::time::timeout(Duration::from_secs(10), self.rd.next())
            .await
            .expect("an answer within 10 s")
            .expect("connection open")
            .unwrap()
            .unwrap();
        *f.command
    }

    /// Sends `cmd` until it is not refused with ServiceNotReady (as a client retries).
    async fn request(&mut self, cmd: BaseCommand) -> BaseCommand {
        for _ in 0..100 {
            self.write(std::slice::from_ref(&cmd)).await;
            let answer = self.next().await;
            match &answer.error {
                Some(e) if e.error == ServerError::ServiceNotReady as i32 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => return answer,
            }
        }
        panic!("still ServiceNotReady");
    }
}

fn sub(topic: &str, consumer_id: u64, request_id: u64) -> BaseCommand {
    commands::subscribe(
        topic,
        "s",
        SubType::Shared,
        consumer_id,
        request_id,
        InitialPosition::Latest,
    )
}

async fn topic(svc: &BrokerService, name: &str) -> Arc<Topic> {
    svc.topic(&TopicName::parse(name).unwrap(), false)
        .await
        .unwrap()
}

fn request_id(c: &BaseCommand) -> u64 {
    c.success
        .as_ref()
        .map(|s| s.request_id)
        .or(c.error.as_ref().map(|e| e.request_id))
        .or(c.producer_success.as_ref().map(|p| p.request_id))
        .expect("an answer to a request")
}

#[tokio::test]
async fn pipelined_subscribes_and_producers_are_all_answered() {
    let svc = service().await;
    let mut c = Client::connect(&svc).await;
    let mut cmds = Vec::new();
    for i in 0..40u64 {
        let t = format!("persistent://t/ns/x{i}");
        cmds.push(sub(&t, i, 2 * i));
        cmds.push(commands::producer(&t, i, 2 * i + 1, None));
    }
    cmds.push(commands::ping());
    c.write(&cmds).await;
    let mut answered = std::collections::BTreeSet::new();
    let mut pong = false;
    while answered.len() < 80 || !pong {
        let a = c.next().await;
        if a.r#type == Type::Pong as i32 {
            pong = true;
            continue;
        }
        assert!(a.error.is_none(), "{a:?}");
        assert!(answered.insert(request_id(&a)));
    }
    for i in 0..40 {
        let t = topic(&svc, &format!("persistent://t/ns/x{i}")).await;
        assert_eq!((t.consumer_count().await, t.producer_count()), (1, 1));
    }
}

#[tokio::test]
async fn a_pending_subscribe_refuses_its_id_and_a_close_discards_it() {
    let svc = service().await;
    let mut c = Client::connect(&svc).await;
    let t = "persistent://t/ns/pending";
    // The loop reads the three frames before the create's task runs (one thread).
    c.write(&[
        sub(t, 1, 1),
        sub(t, 1, 2),
        commands::close_consumer(1, 3, None),
    ])
    .await;
    let dup = c.next().await;
    let e = dup.error.expect("the duplicate is refused");
    assert_eq!(
        (e.request_id, e.error),
        (2, ServerError::ServiceNotReady as i32)
    );
    assert_eq!(e.message, "Consumer is already present on the connection");
    let closed = c.next().await;
    assert_eq!(closed.success.map(|s| s.request_id), Some(3));
    // The first SUBSCRIBE is not answered; once its create is done, the id is free again and
    // what it made was detached.
    let again = c.request(sub(t, 1, 4)).await;
    assert_eq!(
        again.success.as_ref().map(|s| s.request_id),
        Some(4),
        "{again:?}"
    );
    assert_eq!(topic(&svc, t).await.consumer_count().await, 1);
}

#[tokio::test]
async fn a_close_of_a_pending_producer_discards_it() {
    let svc = service().await;
    let mut c = Client::connect(&svc).await;
    let t = "persistent://t/ns/pending-producer";
    c.write(&[
        commands::producer(t, 5, 1, None),
        commands::producer(t, 5, 2, None),
        commands::close_producer(5, 3, None),
    ])
    .await;
    let e = c.next().await.error.expect("the duplicate is refused");
    assert_eq!(
        (e.request_id, e.error),
        (2, ServerError::ServiceNotReady as i32)
    );
    assert_eq!(e.message, "Producer is already present on the connection");
    assert_eq!(c.next().await.success.map(|s| s.request_id), Some(3));
    let again = c.request(commands::producer(t, 5, 4, None)).await;
    assert_eq!(
        again.producer_success.as_ref().map(|p| p.request_id),
        Some(4),
        "{again:?}"
    );
    assert_eq!(topic(&svc, t).await.producer_count(), 1);
}

#[tokio::test]
async fn closing_the_connection_detaches_pending_creates() {
    let svc = service().await;
    let mut c = Client::connect(&svc).await;
    let t = "persistent://t/ns/gone";
    c.write(&[sub(t, 1, 1), commands::producer(t, 2, 2, None)])
        .await;
    let Client { rd, wr, server } = c;
    drop((rd, wr));
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the connection ends")
        .unwrap();
    let topic = topic(&svc, t).await;
    assert_eq!(
        (topic.consumer_count().await, topic.producer_count()),
        (0, 0)
    );
}
