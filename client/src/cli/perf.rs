//! `strata perf produce|consume`: load generator in the style of `pulsar-perf`, with throughput
//! and HdrHistogram latency percentiles per interval and for the whole run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::common::{CompressionArg, DEFAULT_SERVICE_URL, SubTypeArg};
use super::pending::{Pending, Timed};
use super::send_stamp;
use crate::{ConsumerOptions, InitialPosition, OutgoingMessage, ProducerOptions};

/// Load generator.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// `strata perf` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PerfCommand {
    /// Publish at a rate and report publish throughput and latency.
    Produce(PerfProduceArgs),
    /// Consume and report throughput and end-to-end latency.
    Consume(PerfConsumeArgs),
}

/// The topics of a perf run and how to reach them.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfTarget {
    /// Topic (with `--num-topics N > 1`, topics `<topic>-0` .. `<topic>-{N-1}`).
    #[arg(default_value = "perf")]
    pub topic: String,
    /// Broker service URL.
    #[arg(long, short = 'u', env = "STRATA_SERVICE_URL", default_value = DEFAULT_SERVICE_URL)]
    pub service_url: String,
    /// Authentication and TLS.
    #[command(flatten)]
    pub connect: super::common::ConnectArgs,
    /// Number of topics.
    #[arg(long, short = 't', default_value_t = 1)]
    pub num_topics: usize,
    /// TCP connections to each broker (as pulsar-perf's `--max-connections`); the producers or
    /// consumers take them in turn. A broker bounds the SENDs pending on one connection (1,000
    /// by default, as Pulsar), so many producers with few messages each in flight need several.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub max_connections: usize,
}

impl PerfTarget {
    /// A client with the target's connection settings.
    async fn connect(&self) -> anyhow::Result<crate::PulsarClient> {
        let mut options = self.connect.options()?;
        options.connections_per_broker = self.max_connections.max(1);
        super::common::connect_with(&self.service_url, options).await
    }
}

/// When a perf run stops and how it reports.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfRunArgs {
    /// Stop after this many messages in total (0 = no limit).
    #[arg(long, short = 'm', default_value_t = 0)]
    pub num_messages: u64,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, short = 'd', default_value_t = 0)]
    pub duration_secs: u64,
    /// Seconds between report lines.
    #[arg(long, short = 'i', default_value_t = 5)]
    pub interval_secs: u64,
    /// Also report the resident memory of this process id (e.g. the broker's).
    #[arg(long)]
    pub watch_pid: Option<u32>,
}

/// `strata perf produce`.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfProduceArgs {
    /// Topics and how to reach them.
    #[command(flatten)]
    pub target: PerfTarget,
    /// Total publish rate in msg/s over all producers (0 = as fast as possible).
    #[arg(long, short = 'r', default_value_t = 100)]
    pub rate: u64,
    /// Message size in bytes.
    #[arg(long, short = 's', default_value_t = 1024)]
    pub size: usize,
    /// Producers per topic.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num_producers: usize,
    /// Send each message in its own entry.
    #[arg(long)]
    pub disable_batching: bool,
    /// Longest a message waits for its batch, in milliseconds.
    #[arg(long, short = 'b', default_value_t = 1)]
    pub batch_max_delay_ms: u64,
    /// Most messages in a batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_max_messages: usize,
    /// Unacknowledged messages per producer before sending waits.
    #[arg(long, short = 'o', default_value_t = 1000)]
    pub max_pending: usize,
    /// Payload compression.
    #[arg(long, short = 'z', value_enum, default_value = "none")]
    pub compression: CompressionArg,
    /// Write the send time into each payload's first 16 bytes (payloads of 16 bytes or more,
    /// each then copied), so that `perf consume` reports end-to-end latency in microseconds
    /// rather than in the publish time's whole milliseconds.
    #[arg(long)]
    pub stamp_send_time: bool,
    /// When to stop and how to report.
    #[command(flatten)]
    pub run: PerfRunArgs,
}

/// `strata perf consume`.
#[derive(Debug, Clone, clap::Args)]
pub struct PerfConsumeArgs {
    /// Topics and how to reach them.
    #[command(flatten)]
    pub target: PerfTarget,
    /// Consumers per topic.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num_consumers: usize,
    /// Subscription name.
    #[arg(long, short = 's', default_value = "perf-sub")]
    pub subscription: String,
    /// Subscription type.
    #[arg(long, value_enum, default_value = "exclusive")]
    pub sub_type: SubTypeArg,
    /// Receiver queue size (FLOW permits) per consumer.
    #[arg(long, short = 'q', default_value_t = 1000)]
    pub receiver_queue_size: u32,
    /// Start a new subscription at the earliest message.
    #[arg(long)]
    pub earliest: bool,
    /// When to stop and how to report.
    #[command(flatten)]
    pub run: PerfRunArgs,
}

/// Runs `strata perf ...`.
pub async fn run_perf(args: PerfArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    match args.command {
        PerfCommand::Produce(a) => perf_produce(a, shutdown).await,
        PerfCommand::Consume(a) => perf_consume(a, shutdown).await,
    }
}

fn topic_names(topic: &str, n: usize) -> Vec<String> {
    if n <= 1 {
        vec![topic.to_owned()]
    } else {
        (0..n).map(|i| format!("{topic}-{i}")).collect()
    }
}

// Microseconds, 1 µs .. 10 min, 3 significant digits: constant, valid bounds cannot fail.
#[allow(clippy::expect_used)]
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Counters and latency histograms shared by the workers and the reporter.
struct Stats {
    messages: AtomicU64,
    bytes: AtomicU64,
    failures: AtomicU64,
    interval: Mutex<Histogram<u64>>,
    total: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            interval: Mutex::new(new_histogram()),
            total: Mutex::new(new_histogram()),
        }
    }

    fn record(&self, bytes: usize, latency: Duration) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let us = (latency.as_micros() as u64).clamp(1, 600_000_000);
        let _ = self.interval.lock().record(us);
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_line(h: &Histogram<u64>) -> String {
    format!(
        "mean: {:.3} ms - med: {:.3} - 95pct: {:.3} - 99pct: {:.3} - 99.9pct: {:.3} - 99.99pct: {:.3} - Max: {:.3}",
        h.mean() / 1000.0,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.value_at_quantile(0.9999)),
        ms(h.max()),
    )
}

/// Producers or consumers created at the same time during setup.
const SETUP_CONCURRENCY: usize = 1000;

/// A producer loop that never waits checks for the stop every this many messages.
const STOP_CHECK: u64 = 256;

fn report_rss_at_start(watch_pid: Option<u32>) {
    if let Some(r) = watch_pid.and_then(rss_mib) {
        eprintln!(
            "RSS of pid {} before the load: {r:.1} MiB",
            watch_pid.unwrap_or_default()
        );
    }
}

/// Resident set size of `pid` in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Prints a report line every `every` until `stop`; returns when stopped.
async fn reporter(
    verb: &'static str,
    stats: Arc<Stats>,
    every: Duration,
    watch_pid: Option<u32>,
    stop: CancellationToken,
) {
    let mut last = (0u64, 0u64, 0u64, Instant::now());
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (m, b, f) = (
            stats.messages.load(Ordering::Relaxed),
            stats.bytes.load(Ordering::Relaxed),
            stats.failures.load(Ordering::Relaxed),
        );
        let secs = last.3.elapsed().as_secs_f64().max(1e-3);
        let h = {
            let mut i = stats.interval.lock();
            let snapshot = i.clone();
            i.reset();
            snapshot
        };
        let _ = stats.total.lock().add(&h);
        let rss = watch_pid
            .and_then(rss_mib)
            .map(|r| format!(" --- RSS {r:.1} MiB"))
            .unwrap_or_default();
        println!(
            "Throughput {verb}: {:.1} msg/s --- {:.3} Mbit/s --- failures {:.1} msg/s --- Latency: {}{rss}",
            (m - last.0) as f64 / secs,
            (b - last.1) as f64 * 8.0 / 1e6 / secs,
            (f - last.2) as f64 / secs,
            latency_line(&h),
        );
        last = (m, b, f, Instant::now());
    }
}

fn print_summary(verb: &str, stats: &Stats, started: Instant) {
    let h = {
        let mut total = stats.total.lock();
        let _ = total.add(&*stats.interval.lock());
        total.clone()
    };
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    let m = stats.messages.load(Ordering::Relaxed);
    let b = stats.bytes.load(Ordering::Relaxed);
    println!(
        "Aggregated throughput {verb}: {m} msgs in {secs:.1} s --- {:.1} msg/s --- {:.3} Mbit/s --- failures {}",
        m as f64 / secs,
        b as f64 * 8.0 / 1e6 / secs,
        stats.failures.load(Ordering::Relaxed),
    );
    println!("Aggregated latency: {}", latency_line(&h));
}

/// One measured run: its statistics, the token that stops it (after its duration, or on
/// shutdown) and the tasks (timer, reporter) that live as long as it.
struct Run {
    verb: &'static str,
    stats: Arc<Stats>,
    stop: CancellationToken,
    tracker: TaskTracker,
    started: Instant,
}

impl Run {
    /// Starts the clock and the reporter (a line every `--interval-secs`).
    fn start(verb: &'static str, args: &PerfRunArgs, shutdown: &CancellationToken) -> Self {
        let stats = Arc::new(Stats::new());
        let tracker = TaskTracker::new();
        let stop = stop_after(args.duration_secs, shutdown, &tracker);
        let started = Instant::now();
        let every = Duration::from_secs(args.interval_secs.max(1));
        let reporting = reporter(verb, stats.clone(), every, args.watch_pid, stop.clone());
        tracker.spawn(reporting);
        Self {
            verb,
            stats,
            stop,
            tracker,
            started,
        }
    }

    /// Waits for `workers`, stops the run and prints its summary.
    async fn finish(self, workers: TaskTracker) {
        workers.close();
        workers.wait().await;
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        print_summary(self.verb, &self.stats, self.started);
    }
}

/// Each topic `n` times (at least once): one entry per producer or consumer to create.
fn each_repeated(topics: &[String], n: usize) -> Vec<String> {
    let n = n.max(1);
    topics
        .iter()
        .flat_map(|t| std::iter::repeat_n(t.clone(), n))
        .collect()
}

fn stop_after(
    duration_secs: u64,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> CancellationToken {
    let stop = shutdown.child_token();
    if duration_secs > 0 {
        let s = stop.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = s.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(duration_secs)) => s.cancel(),
            }
        });
    }
    stop
}

/// When one producer sends: `rate` msg/s from `phase` of a period on (none: as fast as its
/// window allows), at most `limit` messages.
struct Pace {
    rate: Option<f64>,
    phase: f64,
    limit: Option<u64>,
}

/// One producer's loop. Its sends' answers are taken in this task too (polled while it waits
/// for its window or its pace), so a message costs the load generator no wake-up of a second
/// task.
async fn produce_one(
    producer: crate::Producer,
    payload: Bytes,
    stamp: bool,
    stats: Arc<Stats>,
    stop: CancellationToken,
    pace: Pace,
) {
    let size = payload.len();
    let record = |(t0, r): (Instant, crate::Result<crate::MessageId>)| match r {
        Ok(_) => stats.record(size, t0.elapsed()),
        Err(_) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
    };
    let mut pending = Pending::new(producer.partitions());
    // Polled only while the loop waits (its check takes a lock); between waits, every
    // `STOP_CHECK` messages.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let begin = Instant::now();
    let mut sent = 0u64;
    'sending: while pace.limit.is_none_or(|l| sent < l) {
        if sent.is_multiple_of(STOP_CHECK) && stop.is_cancelled() {
            break;
        }
        // Message `sent` is due `(sent + phase) / rate` seconds after the start.
        let due = pace
            .rate
            .map(|rate| begin + Duration::from_secs_f64((sent as f64 + pace.phase) / rate));
        let next = async {
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            let t0 = Instant::now();
            let payload = if stamp {
                send_stamp::stamp(&payload)
            } else {
                payload.clone()
            };
            (t0, producer.send_async(OutgoingMessage::new(payload)).await)
        };
        tokio::pin!(next);
        let (t0, f) = loop {
            tokio::select! {
                biased;
                Some(done) = pending.next() => record(done),
                out = &mut next => break out,
                _ = &mut stopped => break 'sending,
            }
        };
        match f {
            Ok(f) => pending.push(Timed(t0, f)),
            Err(_) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        sent += 1;
    }
    let _ = producer.flush().await;
    while let Some(done) = pending.next().await {
        record(done);
    }
    let _ = producer.close().await;
}

async fn perf_produce(args: PerfProduceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = args.target.connect().await?;
    let topics = topic_names(&args.target.topic, args.target.num_topics);
    let options = ProducerOptions {
        batching: !args.disable_batching,
        batch_max_delay: Duration::from_millis(args.batch_max_delay_ms),
        batch_max_messages: args.batch_max_messages.max(1),
        max_pending: args.max_pending.max(1),
        compression: args.compression.into(),
        ..Default::default()
    };
    let setup = Instant::now();
    let wanted = each_repeated(&topics, args.num_producers);
    // Create them concurrently (1,000 topics means 1,000 lookups and PRODUCER round trips).
    let producers: Vec<_> = futures::stream::iter(wanted)
        .map(|t| {
            let (client, options) = (client.clone(), options.clone());
            async move {
                client
                    .producer(&t, options)
                    .await
                    .with_context(|| format!("create producer on {t}"))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "created {} producer(s) in {:.2} s",
        producers.len(),
        setup.elapsed().as_secs_f64()
    );
    report_rss_at_start(args.run.watch_pid);
    eprintln!(
        "producing to {} topic(s) with {} producer(s), {} B messages, rate {}",
        topics.len(),
        producers.len(),
        args.size,
        if args.rate == 0 {
            "unlimited".to_owned()
        } else {
            format!("{} msg/s", args.rate)
        }
    );
    let payload = Bytes::from(vec![b'x'; args.size]);
    let run = Run::start("produced", &args.run, &shutdown);
    let (stats, stop) = (run.stats.clone(), run.stop.clone());
    let n = producers.len() as u64;
    let per_producer_rate = (args.rate > 0).then(|| (args.rate as f64 / n as f64).max(0.001));
    let per_producer_limit = (args.run.num_messages > 0).then(|| args.run.num_messages.div_ceil(n));
    let workers = TaskTracker::new();
    for (index, producer) in producers.into_iter().enumerate() {
        // Producers are spread over one period of their rate, so that N producers at a total R
        // msg/s publish evenly, not in bursts of N every N/R seconds.
        let phase = index as f64 / n as f64;
        workers.spawn(produce_one(
            producer,
            payload.clone(),
            args.stamp_send_time,
            stats.clone(),
            stop.clone(),
            Pace {
                rate: per_producer_rate,
                phase,
                limit: per_producer_limit,
            },
        ));
    }
    run.finish(workers).await;
    client.close().await;
    Ok(())
}

async fn perf_consume(args: PerfConsumeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = args.target.connect().await?;
    let topics = topic_names(&args.target.topic, args.target.num_topics);
    let options = ConsumerOptions {
        sub_type: args.sub_type.into(),
        initial_position: if args.earliest {
            InitialPosition::Earliest
        } else {
            InitialPosition::Latest
        },
        receiver_queue_size: args.receiver_queue_size.max(1),
        ..Default::default()
    };
    let wanted = each_repeated(&topics, args.num_consumers);
    let setup = Instant::now();
    let consumers: Vec<_> = futures::stream::iter(wanted)
        .map(|t| {
            let (client, options, sub) =
                (client.clone(), options.clone(), args.subscription.clone());
            async move {
                client
                    .subscribe(&t, &sub, options)
                    .await
                    .with_context(|| format!("subscribe to {t}"))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await?;
    eprintln!(
        "created {} consumer(s) in {:.2} s",
        consumers.len(),
        setup.elapsed().as_secs_f64()
    );
    report_rss_at_start(args.run.watch_pid);
    eprintln!(
        "consuming from {} topic(s) with {} consumer(s)",
        topics.len(),
        consumers.len()
    );
    let run = Run::start("received", &args.run, &shutdown);
    let (stats, stop) = (run.stats.clone(), run.stop.clone());
    let limit = args.run.num_messages;
    let workers = TaskTracker::new();
    for mut consumer in consumers {
        let stats = stats.clone();
        let stop = stop.clone();
        workers.spawn(async move {
            loop {
                if limit > 0 && stats.messages.load(Ordering::Relaxed) >= limit {
                    stop.cancel();
                    break;
                }
                let m = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = consumer.receive() => m,
                };
                match m {
                    Ok(m) => {
                        let e2e = send_stamp::elapsed(&m.payload).unwrap_or_else(|| {
                            Duration::from_millis(
                                strata_common::clock::now_ms().saturating_sub(m.publish_time),
                            )
                        });
                        stats.record(m.payload.len(), e2e);
                        if consumer.ack(&m).await.is_err() {
                            stats.failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            let _ = consumer.close().await;
        });
    }
    run.finish(workers).await;
    client.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_flags_parse_for_both_commands() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            perf: PerfArgs,
        }
        let flags = [
            "-u",
            "pulsar://h:1",
            "-t",
            "2",
            "-m",
            "5",
            "-d",
            "3",
            "-i",
            "2",
        ];
        let produce = [&["x", "produce", "top"][..], &flags[..], &["-r", "7"]].concat();
        let consume = [&["x", "consume", "top"][..], &flags[..], &["-s", "sub"]].concat();
        for argv in [produce, consume] {
            let cli = <Cli as clap::Parser>::try_parse_from(&argv).unwrap();
            let (target, run) = match cli.perf.command {
                PerfCommand::Produce(a) => {
                    assert_eq!(a.rate, 7);
                    (a.target, a.run)
                }
                PerfCommand::Consume(a) => {
                    assert_eq!(a.subscription, "sub");
                    (a.target, a.run)
                }
            };
            assert_eq!(target.topic, "top");
            assert_eq!(target.service_url, "pulsar://h:1");
            assert_eq!(target.num_topics, 2);
            assert_eq!(run.num_messages, 5);
            assert_eq!(run.duration_secs, 3);
            assert_eq!(run.interval_secs, 2);
            assert_eq!(run.watch_pid, None);
        }
    }

    #[test]
    fn histogram_and_report_format() {
        let s = Stats::new();
        for i in 1..=100 {
            s.record(10, Duration::from_micros(i * 100));
        }
        let line = latency_line(&s.interval.lock());
        assert!(line.contains("99pct"), "{line}");
        assert_eq!(s.messages.load(Ordering::Relaxed), 100);
        assert_eq!(topic_names("t", 3), vec!["t-0", "t-1", "t-2"]);
    }
}
