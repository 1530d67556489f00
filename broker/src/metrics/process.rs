//! Prometheus' standard `process_*` series of this process (CPU seconds, resident and virtual
//! memory, open file descriptors, threads, start time), read at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use strata_common::process::ProcessStats;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, seconds",
            None,
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory size, bytes",
            p.resident_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "process_virtual_memory_bytes",
            "Virtual memory size, bytes",
            p.virtual_bytes as f64,
        )?;
        gauge(
            &mut enc,
            "process_open_fds",
            "Open file descriptors",
            p.open_fds as f64,
        )?;
        gauge(&mut enc, "process_threads", "OS threads", p.threads as f64)?;
        gauge(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, seconds",
            p.start_time_seconds,
        )
    }
}
