//! Issue 6, acceptance 1 in cluster mode: the admin REST suite of `tests/it/admin_rest.rs` run
//! against a 2-broker cluster (real etcd, 2 bookies, E=Qw=Qa=2). Each scenario talks to one
//! broker; requests about topics the other broker owns are answered with 307 to the owner,
//! which the test client follows (as Pulsar's admin client does). The cluster endpoints answer
//! from the metadata store: the cluster record, both live brokers, the elected leader, the
//! registered bookies.

use serde_json::{Value, json};

use super::sandbox::{BrokerOptions, Sandbox};
use crate::admin_rest;
use crate::harness::http;

fn get_json(port: u16, path: &str) -> Value {
    let (st, _, body) = http::request(port, "GET", path, "", None);
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

async fn blocking<F: FnOnce() + Send + 'static>(f: F) {
    tokio::task::spawn_blocking(f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rest_suite_on_two_brokers() {
    let mut sb = Sandbox::start(2).await;
    // The REST scenarios name the cluster `standalone` in tenant infos; use that name here too.
    sb.cluster = "standalone".to_owned();
    sb.init_cluster();
    let opts = BrokerOptions {
        ensemble_size: 2,
        write_quorum: 2,
        ack_quorum: 2,
        ..BrokerOptions::default()
    };
    sb.start_brokers(2, opts).await;
    let (a, b) = (sb.brokers[0].http_port, sb.brokers[1].http_port);
    let (url_a, url_b) = (sb.brokers[0].url(), sb.brokers[1].url());

    blocking(move || {
        // clusters, brokers, leader, bookies: the same answers from either broker
        for hp in [a, b] {
            assert_eq!(get_json(hp, "/admin/v2/clusters"), json!(["standalone"]));
            let c = get_json(hp, "/admin/v2/clusters/standalone");
            assert!(c["serviceUrl"].is_string(), "{c}");
            let brokers = get_json(hp, "/admin/v2/brokers/standalone");
            let want = json!([
                format!("127.0.0.1:{}", a.min(b)),
                format!("127.0.0.1:{}", a.max(b))
            ]);
            assert_eq!(brokers, want, "both live brokers listed by {hp}");
            let leader = get_json(hp, "/admin/v2/brokers/leaderBroker");
            let id = leader["brokerId"].as_str().unwrap_or_default().to_owned();
            assert!(
                id == format!("127.0.0.1:{a}") || id == format!("127.0.0.1:{b}"),
                "leader {leader}"
            );
            let bookies = get_json(hp, "/admin/v2/bookies/all");
            assert_eq!(
                bookies["bookies"].as_array().map(Vec::len),
                Some(2),
                "{bookies}"
            );
            let (st, _, body) = http::request(hp, "GET", "/admin/v2/brokers/health", "", None);
            assert_eq!((st, body.as_str()), (200, "ok"));
        }
    })
    .await;
    // every scenario, half of them through each broker
    let u = url_a.clone();
    blocking(move || admin_rest::tenants_and_namespaces_with_policies_on(a, &u)).await;
    let u = url_b.clone();
    blocking(move || admin_rest::topics_partitions_stats_and_lifecycle_on(b, &u)).await;
    let u = url_a.clone();
    blocking(move || admin_rest::subscriptions_cursors_and_messages_on(a, &u)).await;
    let u = url_b.clone();
    blocking(move || admin_rest::stats_list_live_consumers_on(b, &u)).await;
    // The topics the scenarios left are spread over both brokers' bundles: a topic owned by
    // one broker is reachable through the other (307).
    blocking(move || {
        let mut owners = std::collections::BTreeMap::new();
        for i in 0..8 {
            let path = format!("/admin/v2/persistent/public/default/spread-{i}");
            let (st, _, body) = http::request(a, "PUT", &path, "", None);
            assert_eq!(st, 204, "{body}");
            for hp in [a, b] {
                let (st, _, body) = http::request(hp, "GET", &format!("{path}/stats"), "", None);
                assert_eq!(st, 200, "stats of spread-{i} through {hp}: {body}");
            }
            let l = get_json(
                a,
                &format!("/lookup/v2/topic/persistent/public/default/spread-{i}"),
            );
            *owners
                .entry(l["httpUrl"].as_str().unwrap_or("?").to_owned())
                .or_insert(0) += 1;
        }
        eprintln!("RESULT: owners of 8 topics: {owners:?}");
        assert_eq!(owners.values().sum::<u32>(), 8);
        // Through the broker that does not own it: a 307 to the owner, or with the web
        // console's X-Strata-Follow-Owner header the owner's own answer.
        for i in 0..8 {
            let l = get_json(
                a,
                &format!("/lookup/v2/topic/persistent/public/default/spread-{i}"),
            );
            let owner = l["httpUrl"].as_str().unwrap_or_default().to_owned();
            let other = if owner.ends_with(&format!(":{a}")) {
                b
            } else {
                a
            };
            let path = format!("/admin/v2/persistent/public/default/spread-{i}/stats");
            let (st, head, _) = raw_get(other, &path, "");
            assert_eq!(st, 307, "{head}");
            let (st, head, body) = raw_get(other, &path, "X-Strata-Follow-Owner: true\r\n");
            assert_eq!(st, 200, "{head}\n{body}");
            assert!(body.contains("\"msgRateIn\""), "{body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/json"),
                "{head}"
            );
        }
    })
    .await;
}

/// One GET without following redirects: (status, head, body).
fn raw_get(port: u16, path: &str, extra: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_owned(), body.to_owned())
}
