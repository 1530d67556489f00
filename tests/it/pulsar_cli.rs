//! The `strata produce | consume | perf` commands (called as library functions, the way the
//! binary calls them) against a real `strata standalone`.

use clap::Parser;
use strata_client::cli::{ConsumeArgs, PerfArgs, ProduceArgs, run_consume, run_perf, run_produce};
use tokio_util::sync::CancellationToken;

use crate::harness::runtime;
use crate::harness::standalone::Standalone;

#[derive(Parser)]
struct Produce {
    #[command(flatten)]
    args: ProduceArgs,
}

#[derive(Parser)]
struct Consume {
    #[command(flatten)]
    args: ConsumeArgs,
}

#[derive(Parser)]
struct Perf {
    #[command(flatten)]
    args: PerfArgs,
}

/// `f` finishes successfully within 60 s (`what` names it in the failure).
async fn within_a_minute<T, E: std::fmt::Debug>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} within 60 s"))
        .unwrap()
}

#[test]
fn produce_then_consume_first_run() {
    let node = Standalone::start();
    let url = node.url();
    runtime().block_on(async {
        let p = format!("produce first-run -u {url} -m hello -m world -n 50");
        let p = Produce::parse_from(p.split_whitespace());
        within_a_minute("produce", run_produce(p.args, CancellationToken::new())).await;
        let c = format!("consume first-run -u {url} -n 100 -q --timeout-secs 20");
        let c = Consume::parse_from(c.split_whitespace());
        within_a_minute("consume", run_consume(c.args, CancellationToken::new())).await;
    });
}

#[test]
fn perf_produce_and_consume_report() {
    let node = Standalone::start();
    let url = node.url();
    runtime().block_on(async {
        let consume = Perf::parse_from([
            "perf", "consume", "perf-t", "-u", &url, "-t", "3", "-m", "3000", "-d", "60", "-i", "1",
        ]);
        let consumer = tokio::spawn(run_perf(consume.args, CancellationToken::new()));
        // Let the subscriptions exist before producing (perf consume starts at latest).
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let produce = Perf::parse_from([
            "perf", "produce", "perf-t", "-u", &url, "-t", "3", "-r", "0", "-s", "1024", "-m",
            "3000", "-i", "1", "-c", "2",
        ]);
        within_a_minute(
            "perf produce",
            run_perf(produce.args, CancellationToken::new()),
        )
        .await;
        tokio::time::timeout(std::time::Duration::from_secs(60), consumer)
            .await
            .expect("perf consume ends after 3000 messages")
            .unwrap()
            .unwrap();
    });
}
