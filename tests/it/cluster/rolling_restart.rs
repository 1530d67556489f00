//! Acceptance (issue 5, point 6): rolling restart of both brokers under load. Producers at a fixed
//! rate (open loop, so latency is meaningful) and a consumer run while each broker in turn gets
//! SIGTERM (graceful: releases its bundles, the other broker takes over), is started again and
//! becomes ready. Zero acknowledged loss is asserted; publish latency p50/p99 during the restarts
//! versus steady state, the longest gap between acks and duplicates are reported.

use std::time::Duration;

use super::sandbox::BrokerOptions;
use super::workload::{self, ProduceSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_all_brokers_under_load() {
    let Some((mut sb, run)) = workload::start_cluster(3, 2, BrokerOptions::default()).await else {
        return;
    };
    let topics = vec![
        workload::topic("roll-a"),
        workload::topic("roll-b"),
        workload::topic("roll-c"),
    ];
    let mut load = run.start_load("rolling", ProduceSpec::steady(&topics, 1500.0, 180));
    load.wait_flowing(1_500, 0).await;
    // Steady state for 10 s.
    let steady_from = workload::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let restart_from = workload::now();
    let mut steps = vec![];
    for i in 0..sb.brokers.len() {
        let t0 = workload::now();
        let stop_took = sb.stop_broker(i).await;
        sb.start_broker(i).await;
        let ready_after = workload::now() - t0;
        steps.push(format!(
            "broker {i}: SIGTERM exit {:.1} s, ready again {ready_after:.1} s",
            stop_took.as_secs_f64()
        ));
        // Let clients settle on the other broker before the next one goes.
        let acks = load.producer.count("ack");
        load.producer
            .wait_count("ack", acks + 1_500, Duration::from_secs(60))
            .await;
    }
    let restart_to = workload::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (produced, received) = load.stop(Duration::from_secs(120)).await;
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(120))
        .await;
    let a = workload::analyse(&produced, &received);
    let pct = |from, to, q| {
        workload::latency_percentile(&produced, from, to, q)
            .map_or("n/a".to_owned(), |v| format!("{v:.1} ms"))
    };
    let (gap, gap_at) = workload::max_ack_gap(&produced, restart_from, restart_to);
    eprintln!(
        "RESULT: rolling restart ({}): publish latency steady p50 {} p99 {} vs during restarts \
         p50 {} p99 {} ({:.0} s window); longest ack gap during restarts {:.1} s (at +{:.1} s); \
         {} acked, failed sends {:?}; consumer {}",
        steps.join("; "),
        pct(steady_from, restart_from, 0.5),
        pct(steady_from, restart_from, 0.99),
        pct(restart_from, restart_to, 0.5),
        pct(restart_from, restart_to, 0.99),
        restart_to - restart_from,
        gap.as_secs_f64(),
        gap_at - restart_from,
        a.acked,
        workload::failure_reasons(&produced),
        a.report
    );
    workload::assert_stored_and_delivered("rolling restart", &produced, &read, &received);
    assert_eq!(workload::first_delivery_regressions(&received), 0);
}
