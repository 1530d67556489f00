//! The cluster workload itself, against a `strata standalone`: producers (batched, async sends
//! with callbacks), a consumer and a reader from the official Python client feed the checker —
//! a clean run has no loss, no duplicates, no id regression. Runs in a few seconds; it keeps the
//! workload honest independently of cluster mode.

use std::time::Duration;

use crate::harness::standalone::Standalone;

use super::workload::{self, ProduceSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_on_standalone_is_exactly_once() {
    let Some(py) = workload::python() else { return };
    let node = tokio::task::spawn_blocking(Standalone::start)
        .await
        .unwrap();
    let run = workload::Run::new(py, node.url());
    let topics = vec![workload::topic("smoke-a"), workload::topic("smoke-b")];
    let stop = run.path("stop");
    let mut consumer = run.consume(&topics, "checker", &stop, 2.0, 120);
    let spec = ProduceSpec {
        topics: topics.clone(),
        count: 3000,
        producers_per_topic: 2,
        ..Default::default()
    };
    let mut producer = run.produce("producer", &spec);
    producer.wait(Duration::from_secs(120)).await;
    workload::touch(&stop);
    consumer.wait(Duration::from_secs(120)).await;
    let produced = producer.records();
    let received = consumer.records();
    let read = run
        .read_all("reader", &topics, Duration::from_secs(120))
        .await;
    let a = workload::analyse(&produced, &received);
    let r = workload::analyse(&produced, &read);
    eprintln!(
        "RESULT: workload smoke: consumer {} | reader {}",
        a.report, r.report
    );
    a.assert_safe("consumer");
    r.assert_safe("reader");
    assert_eq!(a.acked, 12_000, "every send acknowledged");
    assert!(a.report.is_exactly_once(), "{}", a.report);
    assert!(r.report.is_exactly_once(), "{}", r.report);
    assert_eq!(workload::first_delivery_regressions(&received), 0);
}
