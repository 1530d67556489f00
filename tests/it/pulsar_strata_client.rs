//! Strata's own client (`strata-client`, used by `strata produce|consume|perf`) against a real
//! `strata standalone`: partitioned topics with keys, Failover active-consumer changes, consumer
//! stats, last message ids and unsubscribe.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use strata_client::{
    ConsumerOptions, InitialPosition, OutgoingMessage, Producer, ProducerOptions, PulsarClient,
    SubType,
};

use crate::checker::{self, Checker};
use crate::harness::http::create_partitioned;
use crate::harness::runtime;
use crate::harness::standalone::Standalone;

const STEP: Duration = Duration::from_secs(20);

/// A producer with default options on `topic`.
async fn producer(client: &PulsarClient, topic: &str) -> Producer {
    client
        .producer(topic, ProducerOptions::default())
        .await
        .unwrap()
}

#[test]
fn strata_client_partitioned_keys_stats_and_unsubscribe() {
    let node = Standalone::start();
    create_partitioned(node.http_port, "own-parted", 4);
    runtime().block_on(async {
        let client = PulsarClient::connect(&node.url()).await.unwrap();
        assert_eq!(client.partitions("own-parted").await.unwrap(), 4);
        let mut consumer = client
            .subscribe(
                "own-parted",
                "sub",
                ConsumerOptions {
                    sub_type: SubType::Shared,
                    initial_position: InitialPosition::Earliest,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let producer = producer(&client, "own-parted").await;
        let mut check = Checker::new();
        let mut pending = Vec::new();
        for i in 0..400u64 {
            let key = format!("k{}", i % 10);
            let m = OutgoingMessage::new(checker::payload(&key, i / 10)).with_key(key.clone());
            pending.push((key, i / 10, producer.send_async(m).await.unwrap()));
        }
        let mut partition_of_key: HashMap<String, i32> = HashMap::new();
        for (key, seq, f) in pending {
            let id = f.await.unwrap();
            check.sent_acked(&key, seq);
            let p = *partition_of_key.entry(key.clone()).or_insert(id.partition);
            assert_eq!(p, id.partition, "{key} always goes to one partition");
        }
        let used: BTreeSet<i32> = partition_of_key.values().copied().collect();
        assert!(used.len() > 1, "keys spread over partitions: {used:?}");
        for _ in 0..400 {
            let m = tokio::time::timeout(STEP, consumer.receive())
                .await
                .expect("message within 20 s")
                .unwrap();
            assert!(m.topic.contains("-partition-"), "{}", m.topic);
            assert!(check.received_payload(&m.payload));
            consumer.ack(&m).await.unwrap();
        }
        let report = check.report();
        assert!(report.is_exactly_once(), "{report}");

        let stats = consumer.stats().await.unwrap();
        assert_eq!(stats.len(), 4, "one stats answer per partition");
        let last = consumer.last_message_ids().await.unwrap();
        assert_eq!(last.len(), 4);
        assert!(last.iter().filter(|id| id.entry_id != u64::MAX).count() >= used.len());
        producer.close().await.unwrap();
        consumer.unsubscribe().await.unwrap();
        client.close().await;
    });
}

#[test]
fn strata_client_failover_reports_active_consumer() {
    let node = Standalone::start();
    runtime().block_on(async {
        let client = PulsarClient::connect(&node.url()).await.unwrap();
        let options = |name: &str| ConsumerOptions {
            sub_type: SubType::Failover,
            initial_position: InitialPosition::Earliest,
            consumer_name: Some(name.to_owned()),
            ..Default::default()
        };
        let mut a = client
            .subscribe("own-failover", "sub", options("a"))
            .await
            .unwrap();
        let mut b = client
            .subscribe("own-failover", "sub", options("b"))
            .await
            .unwrap();
        let producer = producer(&client, "own-failover").await;
        producer.send(OutgoingMessage::new("x")).await.unwrap();
        // The active consumer receives; ACTIVE_CONSUMER_CHANGE told each side its role.
        let (got_a, m) = tokio::time::timeout(STEP, async {
            tokio::select! {
                m = a.receive() => (true, m),
                m = b.receive() => (false, m),
            }
        })
        .await
        .expect("message within 20 s");
        let m = m.unwrap();
        assert_eq!(&m.payload[..], b"x");
        let (active, standby) = if got_a {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        // The notifications may trail the first message: give them a moment.
        for _ in 0..50 {
            if active.active().unwrap() == vec![Some(true)]
                && standby.active().unwrap() == vec![Some(false)]
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            active.active().unwrap(),
            vec![Some(true)],
            "receiver told it is active"
        );
        assert_eq!(
            standby.active().unwrap(),
            vec![Some(false)],
            "standby told it is not"
        );
        client.close().await;
    });
}

/// The peer addresses of the publishers of `topic` (topic stats).
fn publisher_addresses(http_port: u16, topic: &str) -> Vec<String> {
    let path = format!("/admin/v2/persistent/public/default/{topic}/stats");
    let (status, body) = crate::harness::http::http(http_port, "GET", &path, "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["publishers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn strata_client_spreads_producers_over_its_connections_per_broker() {
    let node = Standalone::start();
    runtime().block_on(async {
        for (per_broker, expected) in [(3, 3), (1, 1)] {
            let options = strata_client::connection::ConnectOptions {
                connections_per_broker: per_broker,
                ..Default::default()
            };
            let client = PulsarClient::connect_with_options(&node.url(), STEP, options)
                .await
                .unwrap();
            let topics: Vec<String> = (0..6).map(|i| format!("spread-{per_broker}-{i}")).collect();
            let mut producers = Vec::new();
            for t in &topics {
                let p = producer(&client, t).await;
                p.send(OutgoingMessage::new(&b"m"[..])).await.unwrap();
                producers.push(p);
            }
            let addresses: BTreeSet<String> = topics
                .iter()
                .flat_map(|t| publisher_addresses(node.http_port, t))
                .collect();
            assert_eq!(
                addresses.len(),
                expected,
                "{per_broker} per broker: {addresses:?}"
            );
            for p in producers {
                p.close().await.unwrap();
            }
            client.close().await;
        }
    });
}
