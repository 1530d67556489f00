//! `nats-perf`: publishes to a NATS JetStream stream as fast as the server acknowledges, with a
//! bounded number of unacknowledged publishes per producer (as `strata perf produce -r 0`), and
//! prints the same summary lines as `strata perf` so that `scripts/bench-vs-nats` parses both alike:
//!
//! ```text
//! Aggregated throughput produced: N msgs in S s --- R msg/s --- M Mbit/s --- failures F
//! Aggregated latency: mean: .. ms - med: .. - 95pct: .. - 99pct: .. - 99.9pct: .. - ...
//! ```

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
struct Args {
    /// Server URL.
    #[arg(long, short = 'u', default_value = "nats://127.0.0.1:4222")]
    url: String,
    /// Number of subjects (`perf.0` .. `perf.{N-1}`), one producer each, all in stream `PERF`.
    #[arg(long, short = 't', default_value_t = 1)]
    num_topics: usize,
    /// Message size in bytes.
    #[arg(long, short = 's', default_value_t = 1024)]
    size: usize,
    /// Unacknowledged publishes per producer before publishing waits.
    #[arg(long, short = 'o', default_value_t = 1000)]
    max_pending: usize,
    /// Seconds to publish.
    #[arg(long, short = 'd', default_value_t = 10)]
    duration_secs: u64,
}

/// One producer's outcome.
struct Outcome {
    acked: u64,
    failures: u64,
    latency: Histogram<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(&args.url)
        .await
        .with_context(|| format!("connect to {}", args.url))?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: "PERF".to_owned(),
        subjects: vec!["perf.>".to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("create stream PERF")?;
    let payload = Bytes::from(vec![b'x'; args.size]);
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let started = Instant::now();
    let producers: Vec<_> = (0..args.num_topics)
        .map(|i| {
            let (js, payload) = (js.clone(), payload.clone());
            let subject = format!("perf.{i}");
            tokio::spawn(produce(js, subject, payload, args.max_pending, deadline))
        })
        .collect();
    let mut total = Histogram::<u64>::new(3)?;
    let (mut acked, mut failures) = (0u64, 0u64);
    for p in producers {
        let o = p.await??;
        acked += o.acked;
        failures += o.failures;
        total.add(&o.latency)?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    println!(
        "Aggregated throughput produced: {acked} msgs in {secs:.1} s --- {:.1} msg/s --- {:.3} Mbit/s --- failures {failures}",
        acked as f64 / secs,
        (acked * args.size as u64) as f64 * 8.0 / 1e6 / secs,
    );
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "Aggregated latency: mean: {:.3} ms - med: {:.3} - 95pct: {:.3} - 99pct: {:.3} - 99.9pct: {:.3} - 99.99pct: {:.3} - Max: {:.3}",
        total.mean() / 1000.0,
        ms(0.5),
        ms(0.95),
        ms(0.99),
        ms(0.999),
        ms(0.9999),
        total.max() as f64 / 1000.0,
    );
    Ok(())
}

/// Publishes to `subject` until `deadline`, keeping at most `max_pending` publishes unacknowledged.
async fn produce(
    js: jetstream::Context,
    subject: String,
    payload: Bytes,
    max_pending: usize,
    deadline: Instant,
) -> anyhow::Result<Outcome> {
    let mut out = Outcome {
        acked: 0,
        failures: 0,
        latency: Histogram::new(3)?,
    };
    let mut pending = FuturesUnordered::new();
    while Instant::now() < deadline {
        while pending.len() >= max_pending.max(1) {
            settle(pending.next().await, &mut out);
        }
        let sent = Instant::now();
        match js.publish(subject.clone(), payload.clone()).await {
            Ok(ack) => pending.push(async move { (ack.await.is_ok(), sent) }),
            Err(_) => out.failures += 1,
        }
    }
    while let Some(r) = pending.next().await {
        settle(Some(r), &mut out);
    }
    Ok(out)
}

fn settle(r: Option<(bool, Instant)>, out: &mut Outcome) {
    let Some((ok, sent)) = r else { return };
    if ok {
        out.acked += 1;
        let us = sent.elapsed().as_micros() as u64;
        let _ = out.latency.record(us.max(1));
    } else {
        out.failures += 1;
    }
}
