//! `strata produce`: publish messages from the command line or stdin.

use std::time::Instant;

use anyhow::Context;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::common::{CompressionArg, DEFAULT_SERVICE_URL, PROGRESS_EVERY, progress, progress_done};
use crate::{OutgoingMessage, ProducerOptions, SendFuture};

/// Publish messages to a topic.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    /// Topic (`my-topic` means `persistent://public/default/my-topic`).
    pub topic: String,
    /// Broker service URL.
    #[arg(long, short = 'u', env = "STRATA_SERVICE_URL", default_value = DEFAULT_SERVICE_URL)]
    pub service_url: String,
    /// Authentication and TLS.
    #[command(flatten)]
    pub connect: super::common::ConnectArgs,
    /// Message bodies (repeatable). Without any, each line of stdin is one message.
    #[arg(long = "messages", short = 'm')]
    pub messages: Vec<String>,
    /// Send each message this many times.
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num_produce: u64,
    /// Message key.
    #[arg(long, short = 'k')]
    pub key: Option<String>,
    /// Send every message in its own entry.
    #[arg(long)]
    pub disable_batching: bool,
    /// Payload compression.
    #[arg(long, short = 'z', value_enum, default_value = "none")]
    pub compression: CompressionArg,
}

/// Runs `strata produce`.
pub async fn run_produce(args: ProduceArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = super::common::connect(&args.service_url, &args.connect).await?;
    let producer = client
        .producer(
            &args.topic,
            ProducerOptions {
                batching: !args.disable_batching,
                compression: args.compression.into(),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("create producer on {}", args.topic))?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last_draw = Instant::now();
    let mut pending: std::collections::VecDeque<SendFuture> = Default::default();
    let mut acked = 0u64;
    let send_one = |body: String| {
        let mut m = OutgoingMessage::new(body.into_bytes());
        m.key = args.key.clone();
        m
    };
    let mut stdin_lines = if args.messages.is_empty() {
        Some(tokio::io::BufReader::new(tokio::io::stdin()).lines())
    } else {
        None
    };
    'outer: loop {
        let bodies: Vec<String> = match &mut stdin_lines {
            Some(lines) => tokio::select! {
                _ = shutdown.cancelled() => break,
                l = lines.next_line() => match l.context("read stdin")? {
                    Some(l) => vec![l],
                    None => break,
                },
            },
            None => args.messages.clone(),
        };
        let repeat = if stdin_lines.is_some() {
            1
        } else {
            args.num_produce
        };
        for _ in 0..repeat {
            for b in &bodies {
                if shutdown.is_cancelled() {
                    break 'outer;
                }
                pending.push_back(producer.send_async(send_one(b.clone())).await?);
                sent += 1;
                while pending.len() > 500 {
                    if let Some(f) = pending.pop_front() {
                        f.await.context("send message")?;
                        acked += 1;
                    }
                }
                if last_draw.elapsed() >= PROGRESS_EVERY {
                    last_draw = Instant::now();
                    let rate = acked as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    progress(&format!("produced {acked} messages ({rate:.0} msg/s)"));
                }
            }
        }
        if stdin_lines.is_none() {
            break;
        }
    }
    producer.flush().await?;
    while let Some(f) = pending.pop_front() {
        f.await.context("send message")?;
        acked += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    progress_done(&format!(
        "produced {acked} messages to {} in {secs:.2} s ({:.0} msg/s)",
        producer.topic(),
        acked as f64 / secs.max(1e-3)
    ));
    debug_assert_eq!(sent, acked);
    producer.close().await?;
    client.close().await;
    Ok(())
}
