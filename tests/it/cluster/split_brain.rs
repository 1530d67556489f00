//! Acceptance (issue 5, point 4): split brain. Broker A (the topic's owner) is cut off from etcd
//! only — its etcd connections go through a proxy the test cuts — while it still reaches the
//! bookies and its clients. Once A's lease has expired, a producer connecting to B alone makes B
//! take the topic over: B fences A's ledger, so A's further adds fail (fenced) and A gives the
//! topic up. No acknowledged message is lost (consumer and a reader from the earliest message
//! both see every acknowledged id), and nothing A wrote after the fence is visible: no message
//! read lies beyond the last entry of its (closed) ledger.

use std::collections::HashMap;
use std::time::Duration;

use strata_meta::model::LedgerState;

use super::sandbox::BrokerOptions;
use super::workload::{self, ProduceSpec, Rec};

/// Messages read beyond the recorded end of a closed ledger (written after the fence).
fn beyond_close(
    read: &[Rec],
    ledgers: &[strata_meta::model::LedgerMetadata],
) -> Vec<(String, i64, i64, i64)> {
    let closed: HashMap<u64, Option<u64>> = ledgers
        .iter()
        .filter(|l| l.state == LedgerState::Closed)
        .map(|l| (l.ledger_id.0, l.last_entry_id.map(|e| e.0)))
        .collect();
    read.iter()
        .filter_map(|r| {
            let (l, n) = (r.l?, r.n?);
            let last = closed.get(&(l as u64))?;
            let beyond = match last {
                None => true,
                Some(last) => n as u64 > *last,
            };
            beyond.then(|| (r.p.clone().unwrap_or_default(), r.s.unwrap_or(-1), l, n))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_owner_from_etcd_b_takes_over_a_is_fenced_nothing_lost() {
    let opts = BrokerOptions::default();
    let ttl = opts.session_ttl_secs;
    let Some((mut sb, run)) = workload::start_cluster(3, 2, opts).await else {
        return;
    };
    let topics = vec![workload::topic("split")];
    let spec = ProduceSpec {
        send_timeout_ms: 20_000,
        ..ProduceSpec::steady(&topics, 1000.0, 150)
    };
    let mut load = run.start_load("split", spec);
    load.wait_flowing(3_000, 0).await;
    let a = sb.wait_owner(&topics[0], Duration::from_secs(10)).await;
    let b = 1 - a;
    let cut_at = workload::now();
    sb.cut_etcd(a);
    eprintln!(
        "cut broker {a} from etcd after {} acks",
        load.producer.count("ack")
    );
    // Let A's lease expire on the server, then make B serve the topic.
    tokio::time::sleep(Duration::from_secs(ttl + 2)).await;
    let b_spec = ProduceSpec {
        name_prefix: "via-b-".into(),
        rate: 200.0,
        ..load.spec.clone()
    };
    let mut p2 = workload::produce(
        &run.py,
        run.dir.path(),
        "producer-b",
        &sb.brokers[b].url(),
        &b_spec,
    );
    p2.wait_count("ack", 500, Duration::from_secs(60)).await;
    let b_serving_at = workload::now();
    // Keep both producers going for a while with A still cut off, then heal.
    let acks = load.producer.count("ack");
    load.producer
        .wait_count("ack", acks + 2_000, Duration::from_secs(60))
        .await;
    let healed_at = workload::now();
    sb.restore_etcd(a);
    tokio::time::sleep(Duration::from_secs(5)).await;
    load.stop_producing(Duration::from_secs(90)).await;
    p2.wait(Duration::from_secs(90)).await;
    let received = load.stop_consuming().await;

    let mut produced = load.producer.records();
    produced.extend(p2.records());
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(120))
        .await;
    let ledgers = sb.ledgers().await;
    let mut leaked = beyond_close(&read, &ledgers);
    leaked.extend(beyond_close(&received, &ledgers));
    let fenced: Vec<String> = sb.brokers[a]
        .log()
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("fenced"))
        .map(str::to_owned)
        .collect();
    let fenced_lines = fenced.len();
    if let Some(first) = fenced.first() {
        eprintln!("split brain: A's first fenced line: {first}");
    }
    let session_lost = sb.broker_log_lines(a, "session lost");
    let (gap, gap_at) = workload::max_ack_gap(&load.producer.records(), cut_at - 1.0, healed_at);
    eprintln!(
        "RESULT: split brain: A=broker {a} cut from etcd; B served the topic {:.1} s after the cut; \
         A logged {fenced_lines} 'fenced' lines and {} 'session lost'; producer on both brokers: \
         longest ack gap {:.1} s (at cut{:+.1} s), failed sends {:?}; reads beyond a closed \
         ledger's end: {}",
        b_serving_at - cut_at,
        session_lost.len(),
        gap.as_secs_f64(),
        gap_at - cut_at,
        workload::failure_reasons(&produced),
        leaked.len()
    );
    workload::assert_stored_and_delivered("split brain", &produced, &read, &received);
    assert!(
        leaked.is_empty(),
        "messages visible beyond the end of a closed (fenced) ledger: {:?}",
        leaked.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(
        workload::first_delivery_regressions(&received),
        0,
        "consumer saw ids go backwards"
    );
    assert!(
        fenced_lines > 0,
        "broker A (cut off, still serving its open topic) never logged a fenced add after B took \
         over"
    );
}
