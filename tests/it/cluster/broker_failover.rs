//! Acceptance (issue 5, point 3): SIGKILL the broker that owns a topic while a producer and a
//! consumer (official Python client, service URL naming both brokers) are using it. The other
//! broker takes the topic over once the dead broker's lease expires (fencing its ledger), the
//! clients reconnect on their own, no acknowledged message is lost, message ids never go
//! backwards, and the consumer resumes from the durable cursor: messages it acknowledged well
//! before the kill are not redelivered (redeliveries of acks that were not durable yet are
//! counted and reported).

use std::collections::HashMap;
use std::time::Duration;

use super::sandbox::BrokerOptions;
use super::workload::{self, ProduceSpec};

/// Acks older than this at the kill must have been durable (the broker flushes cursors every
/// 100 ms; the client groups acks for 100 ms).
const DURABLE_ACK_AGE: f64 = 5.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_owner_broker_mid_produce_and_consume() {
    let Some((mut sb, run)) = workload::start_cluster(3, 2, BrokerOptions::default()).await else {
        return;
    };
    let topics = vec![workload::topic("failover")];
    let mut load = run.start_load("durable", ProduceSpec::steady(&topics, 2000.0, 150));
    load.wait_flowing(8_000, 5_000).await;
    let owner = sb.wait_owner(&topics[0], Duration::from_secs(10)).await;
    let killed_at = workload::now();
    sb.kill_broker(owner);
    eprintln!(
        "SIGKILLed owner broker {owner} after {} acks, {} receives",
        load.producer.count("ack"),
        load.consumer.count("recv")
    );
    let other = 1 - owner;
    // Keep producing until well after the takeover.
    let acks_at_kill = load.producer.count("ack");
    load.producer
        .wait_count("ack", acks_at_kill + 10_000, Duration::from_secs(120))
        .await;
    let new_owner = sb.wait_owner(&topics[0], Duration::from_secs(30)).await;
    let (produced, received) = load.stop(Duration::from_secs(90)).await;
    // The new owner recovered (fenced and closed) every ledger the dead broker had open.
    let dead_id = sb.brokers[owner].id();
    let still_open: Vec<u64> = sb
        .ledgers()
        .await
        .into_iter()
        .filter(|l| l.custom_metadata.get("owner") == Some(&dead_id))
        .filter(|l| l.state != strata_meta::model::LedgerState::Closed)
        .map(|l| l.ledger_id.0)
        .collect();
    let ledgers_before_restart = sb.ledger_summary().await;
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(120))
        .await;
    let a = workload::analyse(&produced, &received);
    let (gap, gap_at) = workload::max_ack_gap(&produced, killed_at - 1.0, workload::now());

    // Redeliveries of messages the consumer had acknowledged before the kill.
    let mut first_ack: HashMap<(String, i64), f64> = HashMap::new();
    let mut redelivered_recent = 0; // ack younger than DURABLE_ACK_AGE at the kill
    let mut redelivered_old = vec![]; // ack older: the cursor lost a durable ack
    for r in &received {
        let (Some(p), Some(s), Some(t)) = (r.p.clone(), r.s, r.t) else {
            continue;
        };
        match first_ack.get(&(p.clone(), s)) {
            None => {
                first_ack.insert((p, s), t);
            }
            Some(&acked_at) if acked_at < killed_at && t > killed_at => {
                if killed_at - acked_at > DURABLE_ACK_AGE {
                    redelivered_old.push((p, s, killed_at - acked_at));
                } else {
                    redelivered_recent += 1;
                }
            }
            Some(_) => {}
        }
    }
    let first_regressions = workload::first_delivery_regressions(&received);
    eprintln!(
        "RESULT: owner broker SIGKILL: owner {owner} -> {new_owner}; {} acked, {} failed sends \
         {:?}; longest ack gap {:.1} s (at kill{:+.1} s, session TTL {} s); consumer {}; \
         redelivered after the kill although acked before it: {redelivered_recent} acked <{DURABLE_ACK_AGE} s \
         before the kill (ack not yet durable), {} acked earlier; id regressions {}, \
         first-delivery id regressions {first_regressions}",
        a.acked,
        a.failed,
        workload::failure_reasons(&produced),
        gap.as_secs_f64(),
        gap_at - killed_at,
        BrokerOptions::default().session_ttl_secs,
        a.report,
        redelivered_old.len(),
        a.id_regressions.len(),
    );
    workload::assert_stored_and_delivered("owner broker SIGKILL", &produced, &read, &received);
    assert_eq!(new_owner, other, "the surviving broker owns the topic");
    assert_eq!(
        first_regressions, 0,
        "consumer saw message ids go backwards"
    );
    assert!(
        redelivered_old.is_empty(),
        "consumer did not resume from the durable cursor: {} messages acknowledged more than \
         {DURABLE_ACK_AGE} s before the kill were redelivered (first {:?})",
        redelivered_old.len(),
        redelivered_old.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        still_open.is_empty(),
        "ledgers of the dead broker not closed by the new owner's recovery: {still_open:?}; \
         ledgers:{ledgers_before_restart}"
    );
    let reconnected = sb.broker_log_lines(other, "topic loaded");
    assert!(
        !reconnected.is_empty(),
        "surviving broker never logged 'topic loaded'"
    );
}
