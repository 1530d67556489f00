//! `strata consume`: print messages of a topic.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::common::{DEFAULT_SERVICE_URL, PROGRESS_EVERY, SubTypeArg, progress, progress_done};
use crate::{ConsumerOptions, InitialPosition};

/// Consume messages from a topic and print them to stdout.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// Topic (`my-topic` means `persistent://public/default/my-topic`).
    pub topic: String,
    /// Broker service URL.
    #[arg(long, short = 'u', env = "STRATA_SERVICE_URL", default_value = DEFAULT_SERVICE_URL)]
    pub service_url: String,
    /// Authentication and TLS.
    #[command(flatten)]
    pub connect: super::common::ConnectArgs,
    /// Subscription name.
    #[arg(long, short = 's', default_value = "strata-consume")]
    pub subscription: String,
    /// Subscription type.
    #[arg(long, short = 't', value_enum, default_value = "exclusive")]
    pub sub_type: SubTypeArg,
    /// Stop after this many messages (0 = run until Ctrl-C).
    #[arg(long, short = 'n', default_value_t = 1)]
    pub num_messages: u64,
    /// Start a new subscription at the latest message instead of the earliest.
    #[arg(long)]
    pub latest: bool,
    /// Give up when no message arrives for this many seconds (0 = wait forever).
    #[arg(long, default_value_t = 0)]
    pub timeout_secs: u64,
    /// Do not print message bodies (only the progress line).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs `strata consume`.
pub async fn run_consume(args: ConsumeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = super::common::connect(&args.service_url, &args.connect).await?;
    let mut consumer = client
        .subscribe(
            &args.topic,
            &args.subscription,
            ConsumerOptions {
                sub_type: args.sub_type.into(),
                initial_position: if args.latest {
                    InitialPosition::Latest
                } else {
                    InitialPosition::Earliest
                },
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("subscribe to {}", args.topic))?;
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let mut n = 0u64;
    let idle = (args.timeout_secs > 0).then(|| Duration::from_secs(args.timeout_secs));
    while args.num_messages == 0 || n < args.num_messages {
        let next = async {
            match idle {
                Some(t) => tokio::time::timeout(t, consumer.receive()).await.ok(),
                None => Some(consumer.receive().await),
            }
        };
        let m = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = next => match m {
                Some(m) => m.context("receive message")?,
                None => break,
            },
        };
        if !args.quiet {
            let mut out = std::io::stdout().lock();
            out.write_all(&m.payload)?;
            out.write_all(b"\n")?;
        }
        consumer.ack(&m).await?;
        n += 1;
        if last_draw.elapsed() >= PROGRESS_EVERY {
            last_draw = Instant::now();
            progress(&format!("consumed {n} messages"));
        }
    }
    progress_done(&format!(
        "consumed {n} messages from {} in {:.2} s",
        consumer.topic(),
        started.elapsed().as_secs_f64()
    ));
    consumer.close().await?;
    client.close().await;
    Ok(())
}
