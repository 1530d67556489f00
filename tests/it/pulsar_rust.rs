//! Acceptance (issue 4, point 1) with the Rust `pulsar` crate 6.x (protocol v12, no feature
//! flags): produce/consume without and with batching (+ LZ4), a Shared subscription split over two
//! consumers, against a real `strata standalone`.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, ProducerOptions, Pulsar, SubType, TokioExecutor};

use crate::checker::{self, Checker};
use crate::pulsar_standalone::Standalone;

const STEP: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

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
