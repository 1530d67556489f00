//! The admin REST API `/admin/v2` on a real `strata standalone`: every endpoint group with
//! Pulsar's paths, JSON shapes and status codes (404 missing, 409 exists/in use, 412
//! precondition), messages produced by the real `strata produce`.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::cli;
use crate::harness::http::{http, request};
use crate::harness::standalone::Standalone;
use crate::harness::strata_bin;

fn ok_json(port: u16, path: &str) -> Value {
    let (st, body) = http(port, "GET", path, "");
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

fn expect(port: u16, method: &str, path: &str, body: &str, status: u16) -> String {
    let (st, b) = http(port, method, path, body);
    assert_eq!(st, status, "{method} {path} {body}: {b}");
    if status >= 400 {
        let v: Value = serde_json::from_str(&b).unwrap_or_else(|_| panic!("not JSON: {b}"));
        assert!(v["reason"].is_string(), "Pulsar-shaped error expected: {b}");
    }
    b
}

/// Produces `n` messages `hello-rest` with the real CLI.
pub fn produce(url: &str, topic: &str, n: u32) {
    cli::produce(url, topic, "hello-rest", n, &["--disable-batching"]);
}

/// `#[test] fn NAME()`: the scenario `NAME_on` against a fresh standalone.
macro_rules! on_standalone {
    ($($name:ident => $scenario:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let node = Standalone::start();
            $scenario(node.http_port, &node.url());
        }
    )*};
}

on_standalone! {
    tenants_and_namespaces_with_policies => tenants_and_namespaces_with_policies_on,
    topics_partitions_stats_and_lifecycle => topics_partitions_stats_and_lifecycle_on,
    subscriptions_cursors_and_messages => subscriptions_cursors_and_messages_on,
    stats_list_live_consumers => stats_list_live_consumers_on,
}

#[test]
fn clusters_brokers_bookies() {
    let node = Standalone::start();
    let hp = node.http_port;
    assert_eq!(ok_json(hp, "/admin/v2/clusters"), json!(["standalone"]));
    let c = ok_json(hp, "/admin/v2/clusters/standalone");
    assert_eq!(
        c["brokerServiceUrl"],
        format!("pulsar://127.0.0.1:{}", node.broker_port)
    );
    expect(hp, "GET", "/admin/v2/clusters/nope", "", 404);
    assert_eq!(
        ok_json(hp, "/admin/v2/brokers/standalone"),
        json!([format!("127.0.0.1:{hp}")])
    );
    expect(hp, "GET", "/admin/v2/brokers/nope", "", 404);
    assert!(ok_json(hp, "/admin/v2/brokers/leaderBroker")["serviceUrl"].is_string());
    let (st, body) = http(hp, "GET", "/admin/v2/brokers/health", "");
    assert_eq!((st, body.as_str()), (200, "ok"));
    let b = ok_json(hp, "/admin/v2/bookies/all");
    assert_eq!(b["bookies"][0]["bookieId"], "standalone-bookie", "{b}");
    assert!(ok_json(hp, "/admin/v2/bookies/racks-info").is_object());
}

/// The scenario against any node (standalone, or one broker of a cluster).
pub fn tenants_and_namespaces_with_policies_on(hp: u16, _url: &str) {
    let info = r#"{"adminRoles":["alice"],"allowedClusters":["standalone"]}"#;
    expect(hp, "PUT", "/admin/v2/tenants/acme", info, 204);
    expect(hp, "PUT", "/admin/v2/tenants/acme", info, 409);
    expect(
        hp,
        "PUT",
        "/admin/v2/tenants/other",
        r#"{"allowedClusters":["mars"]}"#,
        412,
    );
    let t = ok_json(hp, "/admin/v2/tenants/acme");
    assert_eq!(t["adminRoles"], json!(["alice"]), "{t}");
    let all = ok_json(hp, "/admin/v2/tenants");
    assert!(all.as_array().unwrap().contains(&json!("acme")), "{all}");
    expect(
        hp,
        "POST",
        "/admin/v2/tenants/acme",
        r#"{"adminRoles":["alice","bob"],"allowedClusters":["standalone"]}"#,
        204,
    );
    assert_eq!(
        ok_json(hp, "/admin/v2/tenants/acme")["adminRoles"],
        json!(["alice", "bob"])
    );
    expect(hp, "POST", "/admin/v2/tenants/ghost", info, 404);
    expect(hp, "GET", "/admin/v2/tenants/ghost", "", 404);

    // Namespaces.
    expect(hp, "PUT", "/admin/v2/namespaces/ghost/ns", "", 404);
    expect(hp, "PUT", "/admin/v2/namespaces/acme/ns", "", 204);
    expect(hp, "PUT", "/admin/v2/namespaces/acme/ns", "", 409);
    assert_eq!(ok_json(hp, "/admin/v2/namespaces/acme"), json!(["acme/ns"]));
    expect(hp, "DELETE", "/admin/v2/tenants/acme", "", 409);

    let ns = "/admin/v2/namespaces/acme/ns";
    let set = |p: &str, body: &str| expect(hp, "POST", &format!("{ns}/{p}"), body, 204);
    set(
        "retention",
        r#"{"retentionTimeInMinutes":180,"retentionSizeInMB":10}"#,
    );
    set("messageTTL", "3600");
    set(
        "backlogQuota?backlogQuotaType=destination_storage",
        r#"{"limitSize":1073741824,"limitTime":-1,"policy":"producer_exception"}"#,
    );
    set(
        "persistence",
        r#"{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":1,"bookkeeperAckQuorum":1,"managedLedgerMaxMarkDeleteRate":0}"#,
    );
    expect(
        hp,
        "POST",
        &format!("{ns}/persistence"),
        r#"{"bookkeeperEnsemble":1,"bookkeeperWriteQuorum":2,"bookkeeperAckQuorum":1}"#,
        412,
    );
    set("deduplication", "true");
    set("maxProducersPerTopic", "3");
    set("maxConsumersPerTopic", "4");
    set(
        "dispatchRate",
        r#"{"dispatchThrottlingRateInMsg":1000,"dispatchThrottlingRateInByte":-1,"ratePeriodInSecond":1}"#,
    );
    set(
        "publishRate",
        r#"{"publishThrottlingRateInMsg":500,"publishThrottlingRateInByte":-1}"#,
    );
    expect(
        hp,
        "PUT",
        &format!("{ns}/offloadThreshold"),
        "1073741824",
        204,
    );
    set("permissions/app", r#"["produce","consume"]"#);

    let get = |p: &str| ok_json(hp, &format!("{ns}/{p}"));
    assert_eq!(
        get("retention"),
        json!({"retentionTimeInMinutes":180,"retentionSizeInMB":10})
    );
    assert_eq!(get("messageTTL"), json!(3600));
    assert_eq!(
        get("backlogQuotaMap")["destination_storage"]["policy"],
        "producer_exception"
    );
    assert_eq!(get("persistence")["bookkeeperEnsemble"], 1);
    assert_eq!(get("deduplication"), json!(true));
    assert_eq!(get("maxProducersPerTopic"), json!(3));
    assert_eq!(get("maxConsumersPerTopic"), json!(4));
    assert_eq!(get("dispatchRate")["dispatchThrottlingRateInMsg"], 1000);
    assert_eq!(get("publishRate")["publishThrottlingRateInMsg"], 500);
    assert_eq!(get("offloadThreshold"), json!(1073741824i64));
    assert_eq!(get("permissions")["app"], json!(["produce", "consume"]));
    let p = ok_json(hp, ns);
    assert_eq!(p["message_ttl_in_seconds"], 3600, "{p}");
    assert_eq!(p["max_producers_per_topic"], 3, "{p}");
    assert_eq!(p["retention_policies"]["retentionSizeInMB"], 10, "{p}");
    assert_eq!(
        p["auth_policies"]["namespace_auth"]["app"],
        json!(["produce", "consume"])
    );

    expect(hp, "DELETE", &format!("{ns}/permissions/app"), "", 204);
    assert_eq!(get("permissions"), json!({}));
    expect(hp, "DELETE", &format!("{ns}/messageTTL"), "", 204);
    assert_eq!(get("messageTTL"), Value::Null);
    expect(hp, "GET", &format!("{ns}/noSuchPolicy"), "", 404);

    // A namespace with a topic cannot be deleted.
    expect(hp, "PUT", "/admin/v2/persistent/acme/ns/t1", "", 204);
    expect(hp, "DELETE", ns, "", 409);
    expect(hp, "DELETE", "/admin/v2/persistent/acme/ns/t1", "", 204);
    expect(hp, "DELETE", ns, "", 204);
    expect(hp, "GET", ns, "", 404);
    expect(hp, "DELETE", ns, "", 404);
    expect(hp, "DELETE", "/admin/v2/tenants/acme", "", 204);
    expect(hp, "GET", "/admin/v2/tenants/acme", "", 404);
}

/// The scenario against any node (standalone, or one broker of a cluster).
pub fn topics_partitions_stats_and_lifecycle_on(hp: u16, url: &str) {
    let base = "/admin/v2/persistent/public/default";
    expect(hp, "PUT", &format!("{base}/plain"), "", 204);
    expect(hp, "PUT", &format!("{base}/plain"), "", 409);
    expect(hp, "PUT", &format!("{base}/grow/partitions"), "2", 204);
    expect(hp, "PUT", &format!("{base}/grow/partitions"), "2", 409);
    expect(hp, "POST", &format!("{base}/grow/partitions"), "4", 204);
    expect(hp, "POST", &format!("{base}/grow/partitions"), "3", 412);
    assert_eq!(
        ok_json(hp, &format!("{base}/grow/partitions"))["partitions"],
        4
    );
    let list = ok_json(hp, base);
    for t in ["plain", "grow-partition-0", "grow-partition-3"] {
        assert!(
            list.as_array()
                .unwrap()
                .contains(&json!(format!("persistent://public/default/{t}"))),
            "{t}: {list}"
        );
    }
    assert_eq!(
        ok_json(hp, &format!("{base}/partitioned")),
        json!(["persistent://public/default/grow"])
    );

    produce(url, "persistent://public/default/grow", 8);
    produce(url, "persistent://public/default/plain", 3);
    let st = ok_json(hp, &format!("{base}/plain/stats"));
    assert_eq!(st["msgInCounter"], 3, "{st}");
    let ist = ok_json(hp, &format!("{base}/plain/internalStats"));
    assert!(
        ist["ledgers"].is_array() && ist["lastConfirmedEntry"].is_string(),
        "{ist}"
    );
    let ps = ok_json(
        hp,
        &format!("{base}/grow/partitioned-stats?perPartition=true"),
    );
    assert_eq!(ps["metadata"]["partitions"], 4, "{ps}");
    assert_eq!(ps["msgInCounter"], 8, "{ps}");
    assert_eq!(ps["partitions"].as_object().unwrap().len(), 4, "{ps}");
    expect(hp, "GET", &format!("{base}/nope/stats"), "", 404);
    expect(
        hp,
        "GET",
        &format!("{base}/plain/partitioned-stats"),
        "",
        404,
    );

    expect(hp, "PUT", &format!("{base}/plain/unload"), "", 204);
    expect(hp, "PUT", &format!("{base}/nope/unload"), "", 404);
    let last = ok_json(hp, &format!("{base}/plain/lastMessageId"));
    assert!(
        last["ledgerId"].is_number() && last["entryId"] == 2,
        "{last}"
    );

    // Compaction: NOT_RUN, then triggered, RUNNING until SUCCESS.
    let cs = ok_json(hp, &format!("{base}/plain/compaction"));
    assert_eq!(cs["status"], "NOT_RUN", "{cs}");
    expect(hp, "PUT", &format!("{base}/plain/compaction"), "", 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let cs = ok_json(hp, &format!("{base}/plain/compaction"));
        if cs["status"] != "RUNNING" {
            assert_eq!(cs["status"], "SUCCESS", "{cs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cs}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let term = ok_json_post(hp, &format!("{base}/plain/terminate"));
    assert_eq!(term["entryId"], 2, "{term}");

    expect(hp, "DELETE", &format!("{base}/plain"), "", 204);
    expect(hp, "DELETE", &format!("{base}/plain"), "", 404);
    expect(hp, "GET", &format!("{base}/plain/stats"), "", 404);
    expect(
        hp,
        "DELETE",
        &format!("{base}/grow/partitions?force=true"),
        "",
        204,
    );
    expect(
        hp,
        "GET",
        &format!("{base}/grow/partitioned-stats"),
        "",
        404,
    );
    let list = ok_json(hp, base);
    assert!(
        !list.to_string().contains("grow") && !list.to_string().contains("plain"),
        "{list}"
    );
}

fn ok_json_post(port: u16, path: &str) -> Value {
    let (st, body) = http(port, "POST", path, "");
    assert_eq!(st, 200, "POST {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The scenario against any node (standalone, or one broker of a cluster).
pub fn subscriptions_cursors_and_messages_on(hp: u16, url: &str) {
    let t = "/admin/v2/persistent/public/default/subs";
    expect(hp, "PUT", t, "", 204);
    expect(
        hp,
        "PUT",
        &format!("{t}/subscription/early"),
        r#"{"ledgerId":-1,"entryId":-1}"#,
        204,
    );
    expect(hp, "PUT", &format!("{t}/subscription/early"), "", 409);
    expect(hp, "PUT", &format!("{t}/subscription/late"), "", 204);
    produce(url, "persistent://public/default/subs", 10);
    assert_eq!(
        ok_json(hp, &format!("{t}/subscriptions")),
        json!(["early", "late"])
    );
    let backlog =
        |sub: &str| ok_json(hp, &format!("{t}/stats"))["subscriptions"][sub]["msgBacklog"].as_i64();
    assert_eq!(backlog("early"), Some(10));
    assert_eq!(backlog("late"), Some(10));

    // POST `{t}/subscription/early/<op>` with no body: 204.
    let early_post = |op: &str| {
        expect(hp, "POST", &format!("{t}/subscription/early/{op}"), "", 204);
    };
    early_post("skip/3");
    assert_eq!(backlog("early"), Some(7));
    let (st, head, body) = request(
        hp,
        "GET",
        &format!("{t}/subscription/early/position/1"),
        "",
        None,
    );
    assert_eq!(st, 200, "{head}");
    assert!(body.contains("hello-rest"), "{body}");
    assert!(
        head.to_ascii_lowercase().contains("x-pulsar-message-id"),
        "{head}"
    );
    expect(
        hp,
        "GET",
        &format!("{t}/subscription/early/position/8"),
        "",
        404,
    );

    early_post("skip_all");
    assert_eq!(backlog("early"), Some(0));
    expect(
        hp,
        "POST",
        &format!("{t}/subscription/early/resetcursor"),
        r#"{"ledgerId":-1,"entryId":-1}"#,
        204,
    );
    assert_eq!(backlog("early"), Some(10));
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    early_post("skip_all");
    early_post(&format!("resetcursor/{hour_ago}"));
    assert_eq!(backlog("early"), Some(10));
    // Nothing is an hour old: expiring after 3600 s changes nothing; after 0 s, everything.
    early_post("expireMessages/3600");
    assert_eq!(backlog("early"), Some(10));
    early_post("expireMessages/0");
    assert_eq!(backlog("early"), Some(0));

    let last = ok_json(hp, &format!("{t}/lastMessageId"));
    let (l, e) = (
        last["ledgerId"].as_i64().unwrap(),
        last["entryId"].as_i64().unwrap(),
    );
    let (st, head, body) = request(hp, "GET", &format!("{t}/ledger/{l}/entry/{e}"), "", None);
    assert_eq!(st, 200, "{head}");
    assert!(body.contains("hello-rest"), "{body}");
    expect(
        hp,
        "GET",
        &format!("{t}/ledger/{l}/entry/{}", e + 1),
        "",
        404,
    );
    expect(hp, "GET", &format!("{t}/ledger/999999/entry/0"), "", 404);

    // examinemessage: the n-th message from either end.
    let examine = |q: &str| {
        let (st, head, body) = request(hp, "GET", &format!("{t}/examinemessage?{q}"), "", None);
        let id = head.lines().find_map(|h| {
            h.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-pulsar-message-id"))
                .map(|(_, v)| v.trim().to_owned())
        });
        (st, id, body)
    };
    let (st, id, body) = examine("initialPosition=latest&messagePosition=1");
    assert_eq!(st, 200, "{body}");
    assert_eq!(id.as_deref(), Some(format!("{l}:{e}").as_str()));
    assert!(body.contains("hello-rest"), "{body}");
    let (st, first, _) = examine("initialPosition=earliest&messagePosition=1");
    assert_eq!(st, 200);
    let (_, tenth_from_end, _) = examine("initialPosition=latest&messagePosition=10");
    assert_eq!(first, tenth_from_end);
    assert_ne!(first, id);
    assert_eq!(
        examine("initialPosition=earliest&messagePosition=11").0,
        404
    );
    assert_eq!(examine("initialPosition=latest&messagePosition=11").0, 404);
    assert_eq!(examine("initialPosition=middle").0, 412);

    expect(hp, "DELETE", &format!("{t}/subscription/late"), "", 204);
    expect(hp, "DELETE", &format!("{t}/subscription/late"), "", 404);
    expect(
        hp,
        "POST",
        &format!("{t}/subscription/late/skip_all"),
        "",
        404,
    );
    assert_eq!(ok_json(hp, &format!("{t}/subscriptions")), json!(["early"]));
}

/// Topic stats list the consumers attached to each subscription (name, permits, unacked,
/// counters) and the subscription type.
/// The scenario against any node (standalone, or one broker of a cluster).
pub fn stats_list_live_consumers_on(hp: u16, url: &str) {
    let t = "/admin/v2/persistent/public/default/live-stats";
    expect(hp, "PUT", t, "", 204);
    let mut consumer = Command::new(strata_bin())
        .args(["consume", "persistent://public/default/live-stats", "-u"])
        .arg(url)
        .args(["-s", "watch", "-t", "shared", "-n", "1000000"])
        .env("STRATA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata consume");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = ok_json(hp, &format!("{t}/stats"));
        // Listed at SUBSCRIBE; its permits come with the client's first FLOW, just after.
        let consumers = &st["subscriptions"]["watch"]["consumers"];
        if consumers.as_array().is_some_and(|c| c.len() == 1)
            && consumers[0]["availablePermits"].as_i64() > Some(0)
        {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no consumer listed with permits: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = consumer.kill();
    let _ = consumer.wait();
    let sub = &st["subscriptions"]["watch"];
    assert_eq!(sub["type"], json!("Shared"), "{st}");
    let c = &sub["consumers"][0];
    assert!(
        c["consumerName"].as_str().is_some_and(|n| !n.is_empty()),
        "{st}"
    );
    assert!(
        c["availablePermits"].as_i64().is_some_and(|p| p > 0),
        "{st}"
    );
    assert_eq!(c["unackedMessages"], json!(0), "{st}");
}
