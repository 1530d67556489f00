//! Topic series of `/metrics`, gathered at scrape time from the loaded topics and aggregated
//! per namespace (labels `cluster`, `namespace`) or, with `expose_topic_level_metrics`, per
//! topic (plus `topic`; subscription series plus `subscription`). Names are Pulsar's.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::nonpersistent::NonPersistentTopic;
use crate::stats::buckets::{ENTRY_SIZE, WRITE_LATENCY_US};
use crate::stats::{BucketCounts, MeterReading};
use crate::topic::Topic;

type Labels = Vec<(String, String)>;

/// Sums of one namespace or topic.
#[derive(Debug, Clone, Default)]
struct Row {
    topics: u64,
    subscriptions: u64,
    producers: u64,
    consumers: u64,
    msg_in: MeterReading,
    msg_out: MeterReading,
    storage_size: u64,
    backlog_size: u64,
    offloaded_size: u64,
    msg_backlog: u64,
    publish_throttled: u64,
    dispatch_throttled: u64,
    write_latency: BucketCounts,
    entry_size: BucketCounts,
}

/// Sums of one subscription (per topic) or of a namespace's subscriptions.
#[derive(Debug, Clone, Default)]
struct SubRow {
    back_log: u64,
    delayed: u64,
    unacked: u64,
    blocked: u64,
    msg_rate_out: f64,
    msg_throughput_out: f64,
    msg_rate_redeliver: f64,
}

/// The topic series of one scrape.
#[derive(Debug, Clone, Default)]
pub struct TopicCollector {
    rows: BTreeMap<Labels, Row>,
    subs: BTreeMap<Labels, SubRow>,
}

impl TopicCollector {
    /// Gathers the series of `topics` (`topic_level`: per topic, else per namespace).
    pub async fn gather(cluster: &str, topics: &[Arc<Topic>], topic_level: bool) -> Self {
        let mut c = TopicCollector::default();
        for t in topics {
            let mut labels: Labels = vec![
                ("cluster".into(), cluster.to_owned()),
                ("namespace".into(), t.name().namespace_name()),
            ];
            if topic_level {
                labels.push(("topic".into(), t.name().to_string()));
            }
            c.add_topic(t, labels).await;
        }
        c
    }

    async fn add_topic(&mut self, t: &Topic, labels: Labels) {
        let subs = t.subscription_snapshots().await;
        let topic_level = labels.len() > 2;
        let row = self.rows.entry(labels.clone()).or_default();
        let series = t.series();
        row.topics += 1;
        row.subscriptions += subs.len() as u64;
        row.producers += t.producer_count() as u64;
        row.msg_in.add(&series.msg_in.read());
        row.msg_out.add(&series.msg_out.read());
        row.storage_size += t.ledger().storage_size();
        row.offloaded_size += t.offloaded_size();
        row.publish_throttled += series.publish_throttled_times();
        row.write_latency.add(&series.write_latency.snapshot());
        row.entry_size.add(&series.entry_size.snapshot());
        let slowest = subs.iter().filter(|s| s.1).map(|s| s.2.mark_delete).min();
        row.backlog_size += slowest.map(|p| t.bytes_after(p)).unwrap_or(0);
        for (name, durable, s) in &subs {
            row.consumers += s.consumers.len() as u64;
            row.dispatch_throttled += s.dispatch_throttled;
            if *durable {
                row.msg_backlog += s.backlog;
            }
            let mut sl = labels.clone();
            if topic_level {
                sl.push(("subscription".into(), name.clone()));
            }
            let r = self.subs.entry(sl).or_default();
            r.back_log += s.backlog;
            r.delayed += s.delayed;
            r.unacked += s.unacked;
            r.blocked += s.consumers.iter().filter(|c| c.blocked).count() as u64;
            r.msg_rate_out += s.out.msg_rate;
            r.msg_throughput_out += s.out.byte_rate;
            r.msg_rate_redeliver += s.redelivered.msg_rate;
        }
    }

    /// Adds the series of non-persistent topics (no storage, no backlog: counts and rates).
    pub fn add_non_persistent(
        &mut self,
        cluster: &str,
        topics: &[Arc<NonPersistentTopic>],
        topic_level: bool,
    ) {
        for t in topics {
            let mut labels: Labels = vec![
                ("cluster".into(), cluster.to_owned()),
                ("namespace".into(), t.name().namespace_name()),
            ];
            if topic_level {
                labels.push(("topic".into(), t.name().to_string()));
            }
            let subs = t.subscriptions();
            let row = self.rows.entry(labels.clone()).or_default();
            row.topics += 1;
            row.subscriptions += subs.len() as u64;
            row.producers += t.producer_count() as u64;
            row.msg_in.add(&t.series().msg_in.read());
            row.msg_out.add(&t.series().msg_out.read());
            for s in subs {
                let mut sl = labels.clone();
                if topic_level {
                    sl.push(("subscription".into(), s.name().to_owned()));
                }
                let (consumers, out) = s.with_view(|v| (v.members.len(), v.out.read()));
                if let Some(row) = self.rows.get_mut(&labels) {
                    row.consumers += consumers as u64;
                }
                let r = self.subs.entry(sl).or_default();
                r.msg_rate_out += out.msg_rate;
                r.msg_throughput_out += out.byte_rate;
            }
        }
    }

    /// Number of label sets (series per metric name).
    pub fn len(&self) -> usize {
        self.rows.len() + self.subs.len()
    }

    /// Whether no topic is loaded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn gauges<T, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &BTreeMap<Labels, T>,
    value: V,
) -> Result<(), std::fmt::Error>
where
    V: Fn(&T) -> f64,
{
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, r) in rows {
        ConstGauge::new(value(r)).encode(me.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters<V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &BTreeMap<Labels, Row>,
    value: V,
) -> Result<(), std::fmt::Error>
where
    V: Fn(&Row) -> u64,
{
    let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, r) in rows {
        ConstCounter::new(value(r)).encode(me.encode_family(labels)?)?;
    }
    Ok(())
}

/// `<prefix>_<suffix>` per bucket, `<prefix>_count` and `<prefix>_sum` (`sum_scale` divides
/// the raw sum: microseconds to Pulsar's milliseconds).
fn buckets<B>(
    enc: &mut DescriptorEncoder,
    prefix: &str,
    help: &str,
    suffixes: &[&str],
    sum_scale: f64,
    rows: &BTreeMap<Labels, Row>,
    get: B,
) -> Result<(), std::fmt::Error>
where
    B: Fn(&Row) -> &BucketCounts,
{
    for (i, suffix) in suffixes.iter().enumerate() {
        let name = format!("{prefix}_{suffix}");
        gauges(enc, &name, help, rows, |r| {
            get(r).counts.get(i).copied().unwrap_or(0) as f64
        })?;
    }
    gauges(enc, &format!("{prefix}_count"), help, rows, |r| {
        get(r).count() as f64
    })?;
    gauges(enc, &format!("{prefix}_sum"), help, rows, |r| {
        get(r).sum as f64 / sum_scale
    })
}

impl TopicCollector {
    fn encode_rows(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.rows;
        gauges(enc, "pulsar_topics_count", "Loaded topics", r, |x| {
            x.topics as f64
        })?;
        gauges(enc, "pulsar_subscriptions_count", "Subscriptions", r, |x| {
            x.subscriptions as f64
        })?;
        gauges(
            enc,
            "pulsar_producers_count",
            "Connected producers",
            r,
            |x| x.producers as f64,
        )?;
        gauges(
            enc,
            "pulsar_consumers_count",
            "Connected consumers",
            r,
            |x| x.consumers as f64,
        )?;
        gauges(
            enc,
            "pulsar_rate_in",
            "Messages per second published",
            r,
            |x| x.msg_in.msg_rate,
        )?;
        gauges(
            enc,
            "pulsar_rate_out",
            "Messages per second dispatched",
            r,
            |x| x.msg_out.msg_rate,
        )?;
        gauges(
            enc,
            "pulsar_throughput_in",
            "Bytes per second published",
            r,
            |x| x.msg_in.byte_rate,
        )?;
        gauges(
            enc,
            "pulsar_throughput_out",
            "Bytes per second dispatched",
            r,
            |x| x.msg_out.byte_rate,
        )?;
        counters(enc, "pulsar_in_messages", "Messages published", r, |x| {
            x.msg_in.messages
        })?;
        counters(enc, "pulsar_in_bytes", "Bytes published", r, |x| {
            x.msg_in.bytes
        })?;
        counters(enc, "pulsar_out_messages", "Messages dispatched", r, |x| {
            x.msg_out.messages
        })?;
        counters(enc, "pulsar_out_bytes", "Bytes dispatched", r, |x| {
            x.msg_out.bytes
        })?;
        gauges(enc, "pulsar_storage_size", "Bytes stored", r, |x| {
            x.storage_size as f64
        })?;
        gauges(
            enc,
            "pulsar_storage_backlog_size",
            "Bytes of the slowest durable subscription's backlog",
            r,
            |x| x.backlog_size as f64,
        )?;
        gauges(
            enc,
            "pulsar_storage_offloaded_size",
            "Bytes offloaded to object storage",
            r,
            |x| x.offloaded_size as f64,
        )?;
        gauges(
            enc,
            "pulsar_msg_backlog",
            "Entries not acknowledged by durable subscriptions",
            r,
            |x| x.msg_backlog as f64,
        )?;
        gauges(
            enc,
            "pulsar_publish_rate_limit_times",
            "Times the publish rate limit paused a producer",
            r,
            |x| x.publish_throttled as f64,
        )?;
        gauges(
            enc,
            "pulsar_dispatch_rate_limit_times",
            "Times a dispatch rate limit paused a subscription",
            r,
            |x| x.dispatch_throttled as f64,
        )?;
        buckets(
            enc,
            "pulsar_storage_write_latency",
            "Entries persisted within the bound (ms)",
            WRITE_LATENCY_US.suffixes,
            1000.0,
            r,
            |x| &x.write_latency,
        )?;
        buckets(
            enc,
            "pulsar_entry_size",
            "Entries of at most the bound (bytes)",
            ENTRY_SIZE.suffixes,
            1.0,
            r,
            |x| &x.entry_size,
        )
    }

    fn encode_subs(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.subs;
        gauges(
            enc,
            "pulsar_subscription_back_log",
            "Entries not acknowledged",
            s,
            |x| x.back_log as f64,
        )?;
        gauges(
            enc,
            "pulsar_subscription_back_log_no_delayed",
            "Entries not acknowledged, delayed ones aside",
            s,
            |x| x.back_log.saturating_sub(x.delayed) as f64,
        )?;
        gauges(
            enc,
            "pulsar_subscription_delayed",
            "Entries held back by delayed delivery",
            s,
            |x| x.delayed as f64,
        )?;
        gauges(
            enc,
            "pulsar_subscription_unacked_messages",
            "Entries delivered and not acknowledged",
            s,
            |x| x.unacked as f64,
        )?;
        gauges(
            enc,
            "pulsar_subscription_blocked_on_unacked_messages",
            "Consumers blocked on unacked messages",
            s,
            |x| x.blocked as f64,
        )?;
        gauges(
            enc,
            "pulsar_subscription_msg_rate_out",
            "Messages per second dispatched",
            s,
            |x| x.msg_rate_out,
        )?;
        gauges(
            enc,
            "pulsar_subscription_msg_throughput_out",
            "Bytes per second dispatched",
            s,
            |x| x.msg_throughput_out,
        )?;
        gauges(
            enc,
            "pulsar_subscription_msg_rate_redeliver",
            "Messages per second redelivered",
            s,
            |x| x.msg_rate_redeliver,
        )
    }
}

impl Collector for TopicCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.encode_rows(&mut enc)?;
        self.encode_subs(&mut enc)
    }
}
