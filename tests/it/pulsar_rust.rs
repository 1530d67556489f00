//! Acceptance (issue 4, point 1) with the Rust `pulsar` crate 6.x (protocol v12, no feature
//! flags): produce/consume without and with batching (+ LZ4), a Shared subscription split over two
//! consumers, against a real `strata standalone`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, ProducerOptions, Pulsar, SubType, TokioExecutor};

use crate::checker::{self, Checker};
use crate::harness::http::create_partitioned;
use crate::harness::runtime;
use crate::harness::standalone::Standalone;

const STEP: Duration = Duration::from_secs(20);

/// `Pulsar::builder(..).build()` retries forever without a broker: bound it.
async fn connect(url: &str) -> Pulsar<TokioExecutor> {
    tokio::time::timeout(STEP, Pulsar::builder(url, TokioExecutor).build())
        .await
        .expect("pulsar client connects within 20 s")
        .expect("pulsar client connects")
}

async fn consumer(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    sub_type: SubType,
    name: &str,
) -> Consumer<Vec<u8>, TokioExecutor> {
    tokio::time::timeout(
        STEP,
        client
            .consumer()
            .with_topic(topic)
            .with_subscription("sub")
            .with_subscription_type(sub_type)
            .with_consumer_name(name)
            .with_options(
                ConsumerOptions::default().with_initial_position(InitialPosition::Earliest),
            )
            .build(),
    )
    .await
    .expect("subscribe within 20 s")
    .expect("subscribe")
}

async fn produce(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    mut options: ProducerOptions,
    n: u64,
) -> Checker {
    // Wait for room in the client's outbound queue instead of failing with SlowDown.
    options.block_queue_if_full = true;
    let batching = options.batch_size.is_some_and(|b| b > 1);
    let mut producer = tokio::time::timeout(
        STEP,
        client
            .producer()
            .with_topic(topic)
            .with_name("rust-p")
            .with_options(options)
            .build(),
    )
    .await
    .expect("producer within 20 s")
    .expect("producer");
    let mut futures = Vec::new();
    for seq in 0..n {
        let body = checker::payload("rust-p", seq).into_bytes();
        futures.push((
            seq,
            producer
                .send_non_blocking(body)
                .await
                .expect("queue message"),
        ));
    }
    if batching {
        producer.send_batch().await.expect("flush batch");
    }
    let mut check = Checker::new();
    for (seq, f) in futures {
        tokio::time::timeout(STEP, f)
            .await
            .expect("receipt within 20 s")
            .expect("send acknowledged");
        check.sent_acked("rust-p", seq);
    }
    producer.close().await.expect("close producer");
    check
}

async fn consume_into(c: &mut Consumer<Vec<u8>, TokioExecutor>, check: &mut Checker, n: usize) {
    for _ in 0..n {
        let m = tokio::time::timeout(STEP, c.next())
            .await
            .expect("message within 20 s")
            .expect("stream open")
            .expect("message");
        assert!(check.received_payload(&m.deserialize()));
        c.ack(&m).await.expect("ack");
    }
}

fn produce_consume(options: ProducerOptions, topic: &str) {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let mut c = consumer(&client, topic, SubType::Exclusive, "c1").await;
        let mut check = produce(&client, topic, options, 300).await;
        consume_into(&mut c, &mut check, 300).await;
        let report = check.report();
        assert!(report.is_exactly_once(), "{report}");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), c.next())
                .await
                .is_err(),
            "no extra message"
        );
        c.close().await.expect("close consumer");
    });
}

#[test]
fn rust_client_produce_consume_without_batching() {
    produce_consume(ProducerOptions::default(), "rust-plain");
}

#[test]
fn rust_client_produce_consume_with_batching_and_lz4() {
    produce_consume(
        ProducerOptions {
            batch_size: Some(25),
            batch_timeout: Some(Duration::from_millis(10)),
            compression: Some(pulsar::compression::Compression::Lz4(
                pulsar::compression::CompressionLz4::default(),
            )),
            ..Default::default()
        },
        "rust-batched",
    );
}

#[test]
fn rust_client_shared_subscription_splits_messages() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "rust-shared";
        let mut a = consumer(&client, topic, SubType::Shared, "a").await;
        let mut b = consumer(&client, topic, SubType::Shared, "b").await;
        let check = produce(&client, topic, ProducerOptions::default(), 200).await;
        let mut got: Vec<(String, u64)> = Vec::new();
        let (mut from_a, mut from_b) = (0, 0);
        while got.len() < 200 {
            let m = tokio::time::timeout(STEP, async {
                tokio::select! {
                    m = a.next() => (true, m),
                    m = b.next() => (false, m),
                }
            })
            .await
            .expect("message within 20 s");
            let (is_a, m) = m;
            let m = m.expect("stream open").expect("message");
            let parsed = checker::parse(&m.deserialize()).expect("checker payload");
            if is_a {
                from_a += 1;
                a.ack(&m).await.expect("ack");
            } else {
                from_b += 1;
                b.ack(&m).await.expect("ack");
            }
            got.push(parsed);
        }
        let distinct: BTreeSet<_> = got.iter().cloned().collect();
        assert_eq!(distinct.len(), 200, "each message once");
        assert!(
            from_a > 0 && from_b > 0,
            "both consumers served ({from_a}/{from_b})"
        );
        assert_eq!(check.report().acked, 200);
    });
}

#[test]
fn rust_client_zlib_zstd_snappy() {
    use pulsar::compression::{Compression, CompressionSnappy, CompressionZlib, CompressionZstd};
    for (name, c) in [
        ("rust-zlib", Compression::Zlib(CompressionZlib::default())),
        ("rust-zstd", Compression::Zstd(CompressionZstd::default())),
        (
            "rust-snappy",
            Compression::Snappy(CompressionSnappy::default()),
        ),
    ] {
        produce_consume(
            ProducerOptions {
                batch_size: Some(20),
                batch_timeout: Some(Duration::from_millis(10)),
                compression: Some(c),
                ..Default::default()
            },
            name,
        );
    }
}

/// Sends `n` messages with keys `k0..k{keys}` (sequence per key in the payload).
async fn produce_keyed(client: &Pulsar<TokioExecutor>, topic: &str, n: u64, keys: u64) {
    let mut producer = tokio::time::timeout(
        STEP,
        client
            .producer()
            .with_topic(topic)
            .with_options(ProducerOptions {
                block_queue_if_full: true,
                ..Default::default()
            })
            .build(),
    )
    .await
    .expect("producer within 20 s")
    .expect("producer");
    let mut futures = Vec::new();
    for i in 0..n {
        let key = format!("k{}", i % keys);
        let f = producer
            .create_message()
            .with_key(key.clone())
            .with_content(checker::payload(&key, i / keys).into_bytes())
            .send_non_blocking()
            .await
            .expect("queue message");
        futures.push(f);
    }
    for f in futures {
        tokio::time::timeout(STEP, f)
            .await
            .expect("receipt within 20 s")
            .expect("send acknowledged");
    }
}

#[test]
fn rust_client_failover_single_active_consumer() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "rust-failover";
        let mut a = consumer(&client, topic, SubType::Failover, "a").await;
        let mut b = consumer(&client, topic, SubType::Failover, "b").await;
        produce_keyed(&client, topic, 100, 1).await;
        let mut check = Checker::new();
        for s in 0..100 {
            check.sent_acked("k0", s);
        }
        // Whichever consumer the broker made active gets everything, in order.
        let first = tokio::time::timeout(STEP, async {
            tokio::select! {
                m = a.next() => (true, m),
                m = b.next() => (false, m),
            }
        })
        .await
        .expect("message within 20 s");
        let (a_active, m) = first;
        let m = m.expect("stream open").expect("message");
        assert!(check.received_payload(&m.deserialize()));
        let (active, standby) = if a_active {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        active.ack(&m).await.expect("ack");
        consume_into(active, &mut check, 99).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(500), standby.next())
                .await
                .is_err(),
            "the standby consumer receives nothing"
        );
        let report = check.report();
        assert!(report.is_exactly_once(), "{report}");
    });
}

#[test]
fn rust_client_key_shared_keeps_keys_on_one_consumer_in_order() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "rust-key-shared";
        let mut a = consumer(&client, topic, SubType::KeyShared, "a").await;
        let mut b = consumer(&client, topic, SubType::KeyShared, "b").await;
        produce_keyed(&client, topic, 400, 16).await;
        let mut check = Checker::new();
        for i in 0..400u64 {
            check.sent_acked(&format!("k{}", i % 16), i / 16);
        }
        let mut owner: std::collections::HashMap<String, bool> = Default::default();
        for _ in 0..400 {
            let (is_a, m) = tokio::time::timeout(STEP, async {
                tokio::select! {
                    m = a.next() => (true, m),
                    m = b.next() => (false, m),
                }
            })
            .await
            .expect("message within 20 s");
            let m = m.expect("stream open").expect("message");
            let (key, _) = checker::parse(&m.deserialize()).expect("checker payload");
            assert_eq!(
                *owner.entry(key.clone()).or_insert(is_a),
                is_a,
                "{key} moved"
            );
            assert!(check.received_payload(&m.deserialize()));
            if is_a {
                a.ack(&m).await.expect("ack");
            } else {
                b.ack(&m).await.expect("ack");
            }
        }
        let report = check.report();
        assert!(
            report.is_exactly_once(),
            "per-key order and no loss: {report}"
        );
        let on_a = owner.values().filter(|v| **v).count();
        assert!(
            on_a > 0 && on_a < 16,
            "keys spread over both consumers ({on_a}/16 on a)"
        );
    });
}

/// `PUT /admin/v2/persistent/public/default/{topic}/partitions` with a plain HTTP/1.1 request.
#[test]
fn rust_client_partitioned_topic_with_4_partitions() {
    let node = Standalone::start();
    create_partitioned(node.http_port, "rust-parted", 4);
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "persistent://public/default/rust-parted";
        let mut c = consumer(&client, topic, SubType::Shared, "c").await;
        produce_keyed(&client, topic, 200, 8).await;
        let mut check = Checker::new();
        for i in 0..200u64 {
            check.sent_acked(&format!("k{}", i % 8), i / 8);
        }
        let mut partitions = BTreeSet::new();
        for _ in 0..200 {
            let m = tokio::time::timeout(STEP, c.next())
                .await
                .expect("message within 20 s")
                .expect("stream open")
                .expect("message");
            partitions.insert(m.topic.clone());
            assert!(check.received_payload(&m.deserialize()));
            c.ack(&m).await.expect("ack");
        }
        let report = check.report();
        assert!(report.is_exactly_once(), "{report}");
        assert!(
            partitions.len() > 1,
            "messages from several partitions: {partitions:?}"
        );
    });
}

#[test]
fn rust_client_nack_then_dead_letter_topic() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "persistent://public/default/rust-dlq";
        let dlq = "persistent://public/default/rust-dlq-dead";
        let mut dead = consumer(&client, dlq, SubType::Exclusive, "dead").await;
        let mut c: Consumer<Vec<u8>, TokioExecutor> = tokio::time::timeout(
            STEP,
            client
                .consumer()
                .with_topic(topic)
                .with_subscription("sub")
                .with_subscription_type(SubType::Shared)
                .with_dead_letter_policy(pulsar::consumer::DeadLetterPolicy {
                    max_redeliver_count: 2,
                    dead_letter_topic: dlq.to_owned(),
                })
                .with_options(
                    ConsumerOptions::default().with_initial_position(InitialPosition::Earliest),
                )
                .build(),
        )
        .await
        .expect("subscribe within 20 s")
        .expect("subscribe");
        produce(&client, topic, ProducerOptions::default(), 1).await;
        // Nack until the client gives up and moves the message to the dead-letter topic.
        let mut deliveries = 0;
        let moved = loop {
            tokio::select! {
                m = c.next() => {
                    let m = m.expect("stream open").expect("message");
                    deliveries += 1;
                    assert!(deliveries <= 5, "redelivered too often");
                    c.nack(&m).await.expect("nack");
                }
                m = dead.next() => break m.expect("stream open").expect("message"),
                _ = tokio::time::sleep(STEP) => panic!("nothing reached the dead-letter topic"),
            }
        };
        assert_eq!(
            checker::parse(&moved.deserialize()),
            Some(("rust-p".to_owned(), 0))
        );
        assert!(
            deliveries >= 2,
            "the message was redelivered before moving ({deliveries})"
        );
    });
}

#[test]
fn rust_client_reader_from_earliest_and_from_message_id() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = connect(&node.url()).await;
        let topic = "persistent://public/default/rust-reader";
        // Collect the ids by consuming once.
        let mut c = consumer(&client, topic, SubType::Exclusive, "ids").await;
        produce(&client, topic, ProducerOptions::default(), 20).await;
        let mut ids = Vec::new();
        for _ in 0..20 {
            let m = c.next().await.expect("stream open").expect("message");
            ids.push(m.message_id().clone());
            c.ack(&m).await.expect("ack");
        }
        let read = |start: Option<pulsar::proto::MessageIdData>, name: &'static str| {
            let client = client.clone();
            async move {
                let mut options =
                    ConsumerOptions::default().with_initial_position(InitialPosition::Earliest);
                if let Some(id) = start {
                    options = options.starting_on_message(id);
                }
                let mut r = tokio::time::timeout(
                    STEP,
                    client
                        .reader()
                        .with_topic(topic)
                        .with_consumer_name(name)
                        .with_options(options)
                        .into_reader::<Vec<u8>>(),
                )
                .await
                .expect("reader within 20 s")
                .expect("reader");
                let mut seqs = Vec::new();
                while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), r.next()).await
                {
                    let m = m.expect("message");
                    seqs.push(checker::parse(&m.deserialize()).expect("payload").1);
                }
                seqs
            }
        };
        assert_eq!(
            read(None, "r-earliest").await,
            (0..20).collect::<Vec<u64>>()
        );
        let from10 = read(Some(ids[10].clone()), "r-from-10").await;
        // As Pulsar brokers do, delivery restarts at the start id's entry; clients that want it
        // exclusive (the C++ and Java readers by default) drop that message themselves.
        assert_eq!(from10, (10..20).collect::<Vec<u64>>(), "reader from id 10");
    });
}
