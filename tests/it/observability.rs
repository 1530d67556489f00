//! Issue 16: Pulsar-shaped stats and metrics. With the official Python client producing and
//! consuming, topic, internal and broker stats carry Pulsar's field names with live rates and
//! `/metrics` carries Pulsar's series (`tests/python/observability.py`); with 10,000 topics the
//! namespace-level scrape does not grow, and the topic-level setting adds per-topic series.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::harness::http::http;
use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script;

#[test]
fn stats_and_metrics_under_load_carry_pulsars_fields() {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script(&py, "observability", &node);
}

/// Series lines (not comments) of a scrape, and those naming `metric`.
fn scrape(port: u16, metric: &str) -> (usize, Vec<String>) {
    let (st, body) = http(port, "GET", "/metrics", "");
    assert_eq!(st, 200, "{body}");
    let lines: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    let named = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .map(|l| l.to_string())
        .collect();
    (lines.len(), named)
}

/// Creates (and so loads) `n` topics `prefix-i` in namespace `ns` over 8 connections at once.
fn create_topics(port: u16, ns: &str, prefix: &str, n: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let next = next.clone();
            let (ns, prefix) = (ns.to_owned(), prefix.to_owned());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let path = format!("/admin/v2/persistent/{ns}/{prefix}-{i}");
                    let (st, body) = http(port, "PUT", &path, "");
                    assert!(st == 204 || st == 200, "{path}: {st} {body}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("creator thread");
    }
}

#[test]
fn ten_thousand_topics_do_not_grow_the_namespace_level_scrape() {
    let node = Standalone::start();
    let hp = node.http_port;
    let (st, body) = http(hp, "PUT", "/admin/v2/namespaces/public/other", "");
    assert!(st == 204 || st == 200, "{body}");
    create_topics(hp, "public/default", "a", 10);
    create_topics(hp, "public/other", "b", 10);
    let (small, rate_small) = scrape(hp, "pulsar_rate_in");
    assert_eq!(
        rate_small.len(),
        2,
        "one series per namespace: {rate_small:?}"
    );

    create_topics(hp, "public/default", "c", 5_000);
    create_topics(hp, "public/other", "d", 4_980);
    let (st, body) = http(hp, "GET", "/admin/v2/broker-stats/load-report", "");
    assert_eq!(st, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("load report JSON");
    assert!(report["numTopics"].as_u64() >= Some(10_000), "{report}");
    let (large, rate_large) = scrape(hp, "pulsar_rate_in");
    assert_eq!(
        rate_large.len(),
        2,
        "one series per namespace: {rate_large:?}"
    );
    let (_, topics) = scrape(hp, "pulsar_topics_count");
    let total: f64 = topics
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(total >= 10_000.0, "{topics:?}");
    println!("series lines: {small} with 20 topics, {large} with 10,000 topics");
    // Only process and bookie gauges may move between scrapes; the topic series are the same
    // label sets whatever the number of topics.
    assert!(large <= small + 10, "{small} -> {large} series lines");
}

#[test]
fn topic_level_metrics_add_topic_and_subscription_labels() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("strata.toml");
    std::fs::write(&cfg, "[broker]\nexpose_topic_level_metrics = true\n").expect("write config");
    let node = Standalone::start_with(&["--config".as_ref(), cfg.as_os_str()], &[]);
    let hp = node.http_port;
    create_topics(hp, "public/default", "t", 3);
    let (st, body) = http(
        hp,
        "PUT",
        "/admin/v2/persistent/public/default/t-0/subscription/s1",
        "",
    );
    assert!(st == 204 || st == 200, "{body}");
    let (_, rates) = scrape(hp, "pulsar_rate_in");
    assert_eq!(rates.len(), 3, "{rates:?}");
    for i in 0..3 {
        let t = format!("topic=\"persistent://public/default/t-{i}\"");
        assert!(rates.iter().any(|l| l.contains(&t)), "{t} in {rates:?}");
    }
    let (_, backlog) = scrape(hp, "pulsar_subscription_back_log");
    assert!(
        backlog.iter().any(|l| l.contains("subscription=\"s1\"")),
        "{backlog:?}"
    );
}

#[test]
fn every_grafana_panel_metric_exists_in_a_live_scrape() {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/strata/dashboards");
    crate::pulsar_python::run_script_with(&py, "dashboards", &node, &[dir.to_str().unwrap_or("")]);
}
