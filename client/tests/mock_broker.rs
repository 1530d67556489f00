//! The client against a minimal in-process broker speaking the real codec on a loopback socket:
//! handshake, lookup, partitioned metadata, batched and compressed produce, consume with permits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use strata_client::{
    CompressionType, ConsumerOptions, InitialPosition, OutgoingMessage, ProducerOptions,
    PulsarClient,
};
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload, PulsarCodec};
use strata_proto::pulsar::MessageIdData;
use strata_proto::pulsar::base_command::Type;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

#[derive(Default)]
struct Log {
    /// topic → stored entries (raw metadata + payload).
    topics: HashMap<String, Vec<bytes::Bytes>>,
    acks: usize,
}

async fn mock_broker() -> (String, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("pulsar://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let (u, l) = (url.clone(), log.clone());
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(sock, u.clone(), l.clone()));
        }
    });
    (url, log)
}

async fn serve(sock: tokio::net::TcpStream, url: String, log: Arc<Mutex<Log>>) {
    let mut framed = Framed::new(sock, PulsarCodec::new());
    // consumer id → (topic, next entry, permits)
    let mut consumers: HashMap<u64, (String, usize, u32)> = HashMap::new();
    let mut producers: HashMap<u64, String> = HashMap::new();
    while let Some(Ok(Ok(frame))) = framed.next().await {
        let c = *frame.command;
        let mut out = Vec::new();
        match Type::try_from(c.r#type).unwrap() {
            Type::Connect => out.push(Frame::simple(commands::connected(
                "mock",
                20,
                5 * 1024 * 1024,
                Default::default(),
            ))),
            Type::PartitionedMetadata => {
                let m = c.partition_metadata.unwrap();
                let n = if m.topic.contains("parted") { 3 } else { 0 };
                out.push(Frame::simple(commands::partitioned_metadata_response(
                    m.request_id,
                    n,
                )));
            }
            Type::Lookup => {
                let l = c.lookup_topic.unwrap();
                out.push(Frame::simple(commands::lookup_connect(
                    l.request_id,
                    &url,
                    true,
                )));
            }
            Type::Producer => {
                let p = c.producer.unwrap();
                producers.insert(p.producer_id, p.topic);
                out.push(Frame::simple(commands::producer_success(
                    p.request_id,
                    "mock-producer",
                    -1,
                    None,
                )));
            }
            Type::Send => {
                let s = c.send.unwrap();
                let topic = producers[&s.producer_id].clone();
                let payload = frame.payload.unwrap();
                let entry = {
                    let mut log = log.lock();
                    let t = log.topics.entry(topic).or_default();
                    t.push(payload.raw.clone());
                    t.len() as u64 - 1
                };
                let id = MessageIdData {
                    ledger_id: 7,
                    entry_id: entry,
                    ..Default::default()
                };
                out.push(Frame::simple(commands::send_receipt(
                    s.producer_id,
                    s.sequence_id,
                    id,
                )));
            }
            Type::Subscribe => {
                let s = c.subscribe.unwrap();
                consumers.insert(s.consumer_id, (s.topic, 0, 0));
                out.push(Frame::simple(commands::success(s.request_id)));
            }
            Type::Flow => {
                let f = c.flow.unwrap();
                consumers.get_mut(&f.consumer_id).unwrap().2 += f.message_permits;
            }
            Type::Ack => log.lock().acks += c.ack.unwrap().message_id.len(),
            Type::CloseProducer => {
                let p = c.close_producer.unwrap();
                out.push(Frame::simple(commands::success(p.request_id)));
            }
            Type::CloseConsumer => {
                let p = c.close_consumer.unwrap();
                consumers.remove(&p.consumer_id);
                out.push(Frame::simple(commands::success(p.request_id)));
            }
            Type::Ping => out.push(Frame::simple(commands::pong())),
            _ => {}
        }
        // Dispatch what permits allow.
        for (cid, (topic, next, permits)) in consumers.iter_mut() {
            let log = log.lock();
            let entries = log.topics.get(topic).cloned().unwrap_or_default();
            while *permits > 0 && *next < entries.len() {
                let p = Payload::from_raw(entries[*next].clone()).unwrap();
                *permits = permits.saturating_sub(p.num_messages() as u32);
                let id = MessageIdData {
                    ledger_id: 7,
                    entry_id: *next as u64,
                    ..Default::default()
                };
                out.push(Frame::with_payload(commands::message(*cid, id, 0), p));
                *next += 1;
            }
        }
        for f in out {
            framed.send(f).await.unwrap();
        }
    }
}

async fn round_trip(batching: bool, compression: CompressionType, topic: &str) {
    let (url, log) = mock_broker().await;
    let client = PulsarClient::connect(&url).await.unwrap();
    let producer = client
        .producer(
            topic,
            ProducerOptions {
                batching,
                compression,
                batch_max_messages: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut futs = Vec::new();
    for i in 0..95 {
        let m =
            OutgoingMessage::new(format!("msg-{i}").into_bytes()).with_key(format!("k{}", i % 5));
        futs.push(producer.send_async(m).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut ids = Vec::new();
    for f in futs {
        ids.push(f.await.unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 95, "message ids are unique");
    let entries: usize = log.lock().topics.values().map(Vec::len).sum();
    if batching {
        assert!(entries < 95, "batches make fewer entries ({entries})");
    } else {
        assert_eq!(entries, 95);
    }
    producer.close().await.unwrap();

    let mut consumer = client
        .subscribe(
            topic,
            "sub",
            ConsumerOptions {
                initial_position: InitialPosition::Earliest,
                receiver_queue_size: 8,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..95 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("message within 10 s")
            .unwrap();
        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
        consumer.ack(&m).await.unwrap();
    }
    got.sort();
    let mut want: Vec<String> = (0..95).map(|i| format!("msg-{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    consumer.close().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn produce_consume_batched() {
    round_trip(true, CompressionType::None, "batched").await;
}

#[tokio::test]
async fn produce_consume_unbatched() {
    round_trip(false, CompressionType::None, "single").await;
}

#[tokio::test]
async fn produce_consume_every_compression() {
    for c in [
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ] {
        round_trip(true, c, "compressed").await;
        round_trip(false, c, "compressed-single").await;
    }
}

#[tokio::test]
async fn partitioned_topic_spreads_over_partitions() {
    round_trip(true, CompressionType::None, "parted").await;
}

#[tokio::test]
async fn a_batch_that_cannot_grow_goes_without_waiting_for_its_timer() {
    let (url, log) = mock_broker().await;
    let client = PulsarClient::connect(&url).await.unwrap();
    let options = ProducerOptions {
        batching: true,
        batch_max_messages: 100,
        batch_max_delay: Duration::from_secs(3600),
        max_pending: 3,
        ..Default::default()
    };
    let producer = client.producer("window", options).await.unwrap();
    // Three messages fill the pending window: no fourth can join their batch before a receipt,
    // so it is sent at once (the timer would wait an hour).
    for round in 0..2 {
        let mut futs = Vec::new();
        for i in 0..3 {
            let m = OutgoingMessage::new(format!("m{round}-{i}").into_bytes());
            futs.push(producer.send_async(m).await.unwrap());
        }
        for f in futs {
            tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .expect("receipt without the batch timer")
                .unwrap();
        }
        let log = log.lock();
        let entries: Vec<_> = log.topics.values().flatten().collect();
        assert_eq!(entries.len(), round + 1, "one entry per full window");
        let last = Payload::from_raw((*entries[round]).clone()).unwrap();
        assert_eq!(last.num_messages(), 3);
    }
    producer.close().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn batches_go_on_their_timer_and_close_waits_for_the_receipts() {
    let (url, log) = mock_broker().await;
    let client = PulsarClient::connect(&url).await.unwrap();
    let options = ProducerOptions {
        batching: true,
        batch_max_messages: 100,
        batch_max_delay: Duration::from_millis(20),
        max_pending: 100,
        ..Default::default()
    };
    let producer = client.producer("timer", options).await.unwrap();
    // Two messages in a batch that is neither full nor stuck: the timer sends it.
    let mut futs = Vec::new();
    for i in 0..2 {
        let m = OutgoingMessage::new(format!("t{i}").into_bytes());
        futs.push(producer.send_async(m).await.unwrap());
    }
    for (i, f) in futs.into_iter().enumerate() {
        let id = tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("the batch timer sent the batch")
            .unwrap();
        assert_eq!((id.batch_index, id.batch_size), (i as i32, 2));
    }
    // Messages still batched when the producer closes are sent, and close returns only once
    // their receipts are in.
    let mut futs = Vec::new();
    for i in 0..3 {
        let m = OutgoingMessage::new(format!("c{i}").into_bytes());
        futs.push(producer.send_async(m).await.unwrap());
    }
    producer.close().await.unwrap();
    for f in futs {
        let id = tokio::time::timeout(Duration::from_secs(1), f)
            .await
            .expect("answered by close")
            .unwrap();
        assert_eq!(id.batch_size, 3);
    }
    let entries: usize = log.lock().topics.values().map(|t| t.len()).sum();
    assert_eq!(entries, 2);
    client.close().await;
}

/// A message over the broker's `max_message_size` (5 MiB here) fails alone, before it is sent,
/// batched or not; the connection and the producer go on. Unbatched, the limit applies to the
/// compressed payload (a compressible message over it goes), as the Java client does.
#[tokio::test]
async fn a_message_over_the_broker_limit_fails_alone() {
    let (url, log) = mock_broker().await;
    let client = PulsarClient::connect(&url).await.unwrap();
    let too_big = vec![7u8; 5 * 1024 * 1024 + 1];
    for (batching, compression) in [
        (false, CompressionType::None),
        (true, CompressionType::None),
        (true, CompressionType::Lz4),
    ] {
        let options = ProducerOptions {
            batching,
            compression,
            batch_max_delay: Duration::from_millis(5),
            ..Default::default()
        };
        let topic = format!("limit-{batching}-{compression:?}");
        let producer = client.producer(&topic, options).await.unwrap();
        let refused = producer
            .send_async(OutgoingMessage::new(too_big.clone()))
            .await;
        assert!(
            matches!(
                refused,
                Err(strata_client::ClientError::MessageTooLarge { size, max })
                    if size == too_big.len() && max == 5 * 1024 * 1024
            ),
            "batching {batching}, {compression:?}: {:?}",
            refused.err()
        );
        let id = producer
            .send(OutgoingMessage::new(b"small".to_vec()))
            .await
            .unwrap();
        assert_eq!(id.entry_id, 0, "only the small message was stored");
        producer.close().await.unwrap();
    }
    // compressed below the limit: it goes
    let options = ProducerOptions {
        batching: false,
        compression: CompressionType::Lz4,
        ..Default::default()
    };
    let producer = client.producer("limit-compressed", options).await.unwrap();
    producer
        .send(OutgoingMessage::new(too_big.clone()))
        .await
        .unwrap();
    producer.close().await.unwrap();
    assert_eq!(log.lock().topics.len(), 4);
    client.close().await;
}
