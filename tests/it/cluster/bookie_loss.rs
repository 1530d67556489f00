//! Acceptance (issue 5, point 2): losing a bookie.
//!
//! - 4 bookies, E=3/Qw=2/Qa=2, 2 brokers: SIGKILL a bookie of the open ledgers' ensembles during
//!   100k acknowledged sends (batched, official Python client) → zero acknowledged loss, the
//!   longest gap between acknowledgements stays under 10 s, then auto-recovery restores the
//!   replication factor (no ledger segment names the dead bookie) and everything reads back with
//!   the dead bookie still down.
//! - 3 bookies, E=3: the same kill leaves no replacement → sends stall and fail with clear errors
//!   (the broker logs "not enough bookies"), nothing is lost: after the bookie restarts every
//!   acknowledged message is readable.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::sandbox::{BrokerOptions, Sandbox};
use super::workload::{self, ProduceSpec};

/// The bookie index (in `sb.bookies`) named by the most open ledgers' current ensembles.
async fn busiest_bookie(sb: &Sandbox) -> usize {
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for l in sb.ledgers().await {
        if l.state != strata_meta::model::LedgerState::Closed
            && let Some(seg) = l.ensembles.last()
        {
            for b in &seg.bookies {
                *uses.entry(b.0.clone()).or_default() += 1;
            }
        }
    }
    let best = uses.iter().max_by_key(|(_, n)| **n).map(|(b, _)| b.clone());
    best.and_then(|b| sb.bookies.iter().position(|x| x.addr == b))
        .unwrap_or(0)
}

/// Ledgers (id, segment first entry) that still name `bookie` in an ensemble segment.
async fn segments_naming(sb: &Sandbox, bookie: &str) -> Vec<(u64, u64)> {
    let mut v = vec![];
    for l in sb.ledgers().await {
        for seg in &l.ensembles {
            if seg.bookies.iter().any(|b| b.0 == bookie) {
                v.push((l.ledger_id.0, seg.first_entry.0));
            }
        }
    }
    v
}

/// Every ledger's first ensemble segment: (ledger id, its bookies).
async fn first_segments_of<C: FromIterator<(u64, Vec<String>)>>(sb: &Sandbox) -> C {
    sb.ledgers()
        .await
        .iter()
        .map(|l| {
            let b = l.ensembles[0].bookies.iter().map(|b| b.0.clone()).collect();
            (l.ledger_id.0, b)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_bookie_during_100k_sends_loses_nothing_and_autorecovery_restores_rf() {
    let topics = vec![workload::topic("bk-a"), workload::topic("bk-b")];
    let Some((mut sb, run)) = workload::start_cluster(4, 2, BrokerOptions::default()).await else {
        return;
    };
    let spec = ProduceSpec {
        topics: topics.clone(),
        count: 50_000, // per producer: 100k in all
        batching: true,
        max_secs: 240,
        ..Default::default()
    };
    let started = workload::now();
    let mut producer = run.produce("producer", &spec);
    producer
        .wait_count("ack", 30_000, Duration::from_secs(180))
        .await;
    let victim = busiest_bookie(&sb).await;
    let victim_id = sb.bookies[victim].addr.clone();
    let killed_at = workload::now();
    sb.kill_bookie(victim);
    // First segments as written (auto-recovery rewrites the ones naming the victim).
    let first_segments: Vec<(u64, Vec<String>)> = first_segments_of(&sb).await;
    eprintln!(
        "killed bookie {victim} ({victim_id}) after {} acks",
        producer.count("ack")
    );
    producer.wait(Duration::from_secs(300)).await;
    let produced = producer.records();
    let done_at = workload::now();
    let (gap, gap_at) = workload::max_ack_gap(&produced, killed_at - 1.0, done_at);
    let (gap_before, _) = workload::max_ack_gap(&produced, started, killed_at);
    let acked = workload::acks(&produced).len();
    eprintln!(
        "RESULT: bookie SIGKILL (4 bookies, E3/Qw2/Qa2): {acked} acknowledged of 100000 in {:.1} s, \
         longest gap between acks after the kill {:.2} s (at kill{:+.2} s; before the kill {:.2} s), \
         failed sends {:?}",
        done_at - started,
        gap.as_secs_f64(),
        gap_at - killed_at,
        gap_before.as_secs_f64(),
        workload::failure_reasons(&produced)
    );

    // Auto-recovery: no segment names the dead bookie any more.
    let recovery_started = Instant::now();
    let deadline = recovery_started + Duration::from_secs(120);
    let mut left = segments_naming(&sb, &victim_id).await;
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = segments_naming(&sb, &victim_id).await;
    }
    let restored_after = workload::now() - killed_at;
    let ledgers = sb.ledgers().await;
    let under: Vec<u64> = ledgers
        .iter()
        .filter(|l| {
            l.ensembles.iter().any(|s| {
                let mut b: Vec<&str> = s.bookies.iter().map(|b| b.0.as_str()).collect();
                b.sort();
                b.dedup();
                b.len() != l.ensemble_size as usize
            })
        })
        .map(|l| l.ledger_id.0)
        .collect();
    eprintln!(
        "RESULT: auto-recovery: {} ledgers, segments still naming the dead bookie: {} {:?}, \
         replication factor restored {:.1} s after the kill (grace {} s)",
        ledgers.len(),
        left.len(),
        left.iter().take(5).collect::<Vec<_>>(),
        restored_after,
        BrokerOptions::default().autorecovery_grace_secs
    );

    // Everything reads back with the dead bookie still down (fresh brokers: no entry cache).
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(180))
        .await;
    let a = workload::analyse(&produced, &read);
    eprintln!("RESULT: bookie SIGKILL read-back: {}", a.report);
    a.assert_safe("bookie SIGKILL, read back");
    assert!(
        gap < Duration::from_secs(10),
        "producers stalled {:.2} s after the bookie kill (limit 10 s)",
        gap.as_secs_f64()
    );
    let registered: Vec<String> = sb
        .meta()
        .await
        .bookies()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.bookie_id.0)
        .collect();
    let recovery_log: Vec<String> = (0..sb.brokers.len())
        .flat_map(|i| sb.broker_log_lines(i, "recovery"))
        .collect();
    assert!(
        left.is_empty(),
        "AUTO-RECOVERY did not restore the replication factor within 120 s: segments still on \
         {victim_id}: {left:?}; registered bookies now {registered:?}; broker log lines about \
         recovery: {recovery_log:#?}; ledgers: {ledgers:#?}"
    );
    assert!(
        under.is_empty(),
        "segments with duplicate bookies: {under:?}"
    );

    // The copies are real: kill a bookie that shared the victim's first segments, so that entries
    // once on (victim, it) now live only on the replacement, and read everything again.
    let after: BTreeMap<u64, Vec<String>> = first_segments_of(&sb).await;
    let second = first_segments
        .iter()
        .filter(|(_, b)| b.contains(&victim_id))
        .find_map(|(id, b)| {
            let now = after.get(id)?;
            b.iter()
                .find(|x| **x != victim_id && now.contains(x))
                .cloned()
        })
        .expect("a surviving bookie of a repaired segment");
    let second_idx = sb.bookies.iter().position(|b| b.addr == second).unwrap();
    sb.kill_bookie(second_idx);
    let read2 = run
        .read_back(&mut sb, "reader-2", &topics, Duration::from_secs(180))
        .await;
    let a2 = workload::analyse(&produced, &read2);
    eprintln!(
        "RESULT: after auto-recovery, second bookie {second} SIGKILLed too (entries of the \
         repaired segments now only on the replacement): read-back {}",
        a2.report
    );
    a2.assert_safe("read back from re-replicated copies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_bookies_e3_stall_with_clear_errors_and_never_lose() {
    let opts = BrokerOptions {
        // Keep the dead bookie out of auto-recovery's way: this test restarts it.
        autorecovery_grace_secs: 600,
        ..Default::default()
    };
    let Some((mut sb, run)) = workload::start_cluster(3, 2, opts).await else {
        return;
    };
    let topics = vec![workload::topic("stall")];
    let stop = run.path("stop");
    let spec = ProduceSpec {
        send_timeout_ms: 5_000,
        stop_file: Some(stop.clone()),
        ..ProduceSpec::steady(&topics, 2000.0, 150)
    };
    let mut producer = run.produce("producer", &spec);
    producer
        .wait_count("ack", 4_000, Duration::from_secs(120))
        .await;
    let killed_at = workload::now();
    sb.kill_bookie(0);
    let acks_at_kill = producer.count("ack");
    // Stall window: nothing can be placed on 3 bookies with one dead.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let acks_in_stall = producer.count("ack") - acks_at_kill;
    let errs_in_stall = producer.count("err");
    let restarted_at = workload::now();
    sb.start_bookie(0).await;
    // Service resumes: wait for fresh acknowledgements, then stop.
    let resume_deadline = Instant::now() + Duration::from_secs(60);
    let mut resumed_after = None;
    while Instant::now() < resume_deadline {
        let after: Vec<f64> = producer
            .records()
            .iter()
            .filter(|r| r.e == "ack" && r.t.is_some_and(|t| t > restarted_at))
            .filter_map(|r| r.t)
            .collect();
        if after.len() >= 500 {
            resumed_after = after
                .iter()
                .copied()
                .reduce(f64::min)
                .map(|t| t - restarted_at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    workload::touch(&stop);
    producer.wait(Duration::from_secs(90)).await;
    let produced = producer.records();
    let mut clear_errors: Vec<String> = vec![];
    for i in 0..sb.brokers.len() {
        for l in sb.brokers[i].log().lines() {
            let low = l.to_ascii_lowercase();
            if low.contains("not enough bookies") || low.contains("notenoughbookies") {
                clear_errors.push(format!("broker {i}: {l}"));
            }
        }
    }
    let (gap, _) = workload::max_ack_gap(&produced, killed_at - 1.0, workload::now());
    eprintln!(
        "RESULT: 3 bookies E3, one SIGKILLed: {acks_in_stall} acks in the 15 s after the kill, \
         {errs_in_stall} failed sends by then ({:?}), longest ack gap {:.1} s, resumed {} after \
         the restart; broker log lines naming not-enough-bookies: {} (first: {:?})",
        workload::failure_reasons(&produced),
        gap.as_secs_f64(),
        resumed_after.map_or("NOT".to_owned(), |s| format!("{s:.1} s")),
        clear_errors.len(),
        clear_errors.first()
    );
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(120))
        .await;
    let a = workload::analyse(&produced, &read);
    eprintln!(
        "RESULT: 3-bookie stall read-back: {}{}",
        a.report,
        workload::reorder_detail(&read, &a.report)
            .map(|d| format!("; first stored reorder: {d}"))
            .unwrap_or_default()
    );
    if !a.report.reordered.is_empty() {
        eprintln!(
            "WARNING: 3-bookie stall: {} messages stored out of their producer's order (a later \
             SEND persisted before earlier ones that failed in the stall and were resent); \
             reported, not asserted",
            a.report.reordered.len()
        );
    }
    a.assert_safe("3-bookie stall, read back");
    assert!(
        !clear_errors.is_empty(),
        "no broker logged a not-enough-bookies error during the stall"
    );
    assert!(
        resumed_after.is_some(),
        "producers did not resume within 60 s of the bookie restart"
    );
}
