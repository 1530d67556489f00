//! Acceptance (issue 4, point 2): `strata standalone` killed with SIGKILL during a produce run.
//! After the restart every message whose send was acknowledged is consumed, messages the consumer
//! acknowledged (and that had time to be persisted) are not redelivered, and per-producer order
//! holds — all judged by the lost/duplicate/reorder checker.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_client::{
    Consumer, ConsumerOptions, InitialPosition, OutgoingMessage, ProducerOptions, PulsarClient,
    SubType,
};

use crate::checker::{self, Checker};
use crate::harness::runtime;
use crate::harness::standalone::Standalone;

const TOPIC: &str = "durability";
const SUB: &str = "durable-sub";
/// Time given to the broker to persist acknowledgements before the kill.
const ACK_SETTLE: Duration = Duration::from_secs(3);

/// A client on `url` and an exclusive consumer of [`SUB`] on [`TOPIC`] from the earliest message.
async fn subscribe(url: &str) -> (PulsarClient, Consumer) {
    let client = PulsarClient::connect(url).await.unwrap();
    let options = ConsumerOptions {
        sub_type: SubType::Exclusive,
        initial_position: InitialPosition::Earliest,
        ..Default::default()
    };
    let consumer = client.subscribe(TOPIC, SUB, options).await.unwrap();
    (client, consumer)
}

#[test]
fn sigkill_during_produce_loses_no_acknowledged_message() {
    let mut node = Standalone::start();
    let rt = runtime();
    let check = Arc::new(Mutex::new(Checker::new()));

    // Phase 1: produce 2000, consume and acknowledge the first 1000, let the acks settle.
    let consumer_acked: BTreeSet<u64> = rt.block_on(async {
        let (client, mut consumer) = subscribe(&node.url()).await;
        let producer = client
            .producer(TOPIC, ProducerOptions::default())
            .await
            .unwrap();
        let mut pending = Vec::new();
        for seq in 0..2000u64 {
            let body = checker::payload("p1", seq);
            pending.push((
                seq,
                producer
                    .send_async(OutgoingMessage::new(body))
                    .await
                    .unwrap(),
            ));
        }
        for (seq, f) in pending {
            f.await.unwrap();
            check.lock().unwrap().sent_acked("p1", seq);
        }
        let mut acked = BTreeSet::new();
        for _ in 0..1000 {
            let m = tokio::time::timeout(Duration::from_secs(20), consumer.receive())
                .await
                .expect("message within 20 s")
                .unwrap();
            let (p, seq) = checker::parse(&m.payload).unwrap();
            check.lock().unwrap().received(&p, seq);
            consumer.ack(&m).await.unwrap();
            acked.insert(seq);
        }
        tokio::time::sleep(ACK_SETTLE).await;
        producer.close().await.unwrap();
        consumer.close().await.unwrap();
        client.close().await;
        acked
    });

    // Phase 2: keep producing and SIGKILL the broker in the middle of it.
    rt.block_on(async {
        let client = PulsarClient::connect(&node.url()).await.unwrap();
        let producer = Arc::new(
            client
                .producer(TOPIC, ProducerOptions::default())
                .await
                .unwrap(),
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = producer.clone();
        let sender = tokio::spawn(async move {
            for seq in 2000..1_000_000u64 {
                let body = checker::payload("p1", seq);
                match p.send_async(OutgoingMessage::new(body)).await {
                    Ok(f) => {
                        if tx.send((seq, f)).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let c = check.clone();
        let collector = tokio::spawn(async move {
            let mut acked = 0u64;
            while let Some((seq, f)) = rx.recv().await {
                match f.await {
                    Ok(_) => {
                        c.lock().unwrap().sent_acked("p1", seq);
                        acked += 1;
                    }
                    Err(_) => c.lock().unwrap().sent_unacked("p1", seq),
                }
            }
            acked
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        node.kill();
        let _ = tokio::time::timeout(Duration::from_secs(30), sender).await;
        let acked_in_phase2 = tokio::time::timeout(Duration::from_secs(60), collector)
            .await
            .expect("collector ends once the connection is gone")
            .unwrap();
        println!("phase 2: {acked_in_phase2} sends acknowledged before the kill");
        assert!(
            acked_in_phase2 > 0,
            "the kill happened during the produce run"
        );
    });

    // Phase 3: restart on the same data, consume everything that is left.
    node.restart_after_kill();
    let redelivered_acked = rt.block_on(async {
        let (client, mut consumer) = subscribe(&node.url()).await;
        let mut redelivered_acked = Vec::new();
        while let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.receive()).await {
            let m = m.unwrap();
            let (p, seq) = checker::parse(&m.payload).unwrap();
            if consumer_acked.contains(&seq) {
                redelivered_acked.push(seq);
            }
            check.lock().unwrap().received(&p, seq);
            consumer.ack(&m).await.unwrap();
        }
        client.close().await;
        redelivered_acked
    });

    let report = check.lock().unwrap().report();
    println!("{report}");
    assert!(
        report.is_valid_at_least_once(),
        "lost or reordered after SIGKILL: {report}\n{}",
        node.log_tail()
    );
    assert!(
        redelivered_acked.is_empty(),
        "{} acknowledged messages were redelivered after restart (first: {:?})",
        redelivered_acked.len(),
        &redelivered_acked[..redelivered_acked.len().min(10)]
    );
}
