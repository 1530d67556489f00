//! `strata admin` end to end: the real binary against a real `strata standalone`, one test per
//! command group, including error output (one `error: ...` line on stderr, exit status 1).
//!
//! Also run against a standalone with token authentication (no token → 401, a role without
//! rights → 401 too (as Pulsar), a forged token → 401, the token never printed).

use std::process::{Command, Stdio};

use crate::harness::cli;
use crate::harness::secured::SecuredStandalone;
use crate::harness::standalone::Standalone;
use crate::harness::strata_bin;

/// What one `strata admin` run printed.
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `strata admin --admin-url http://127.0.0.1:PORT ARGS...` (each request bounded by 15 s).
fn admin_at(http_port: u16, args: &[&str]) -> Run {
    let out = Command::new(strata_bin())
        .arg("admin")
        .args([
            "--admin-url",
            &format!("http://127.0.0.1:{http_port}"),
            "--request-timeout-secs",
            "15",
        ])
        .args(args)
        .env("STRATA_LOG", "warn")
        .env_remove("STRATA_ADMIN_URL")
        .env_remove("STRATA_AUTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run strata admin");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn admin(node: &Standalone, args: &[&str]) -> Run {
    admin_at(node.http_port, args)
}

/// Runs and asserts success; returns stdout.
fn ok(node: &Standalone, args: &[&str]) -> String {
    let r = admin(node, args);
    assert!(r.ok, "strata admin {args:?} failed: {r:?}");
    r.stdout
}

/// Runs and asserts the one-line error with exit status 1; returns the line.
fn fails(node: &Standalone, args: &[&str], expected_prefix: &str) -> String {
    let r = admin(node, args);
    assert_eq!(r.code, Some(1), "strata admin {args:?} should fail: {r:?}");
    let line = r.stderr.trim_end();
    assert!(
        line.starts_with(expected_prefix) && !line.contains('\n'),
        "strata admin {args:?}: expected one line starting with {expected_prefix:?}: {r:?}"
    );
    line.to_owned()
}

/// The words of `line` as arguments (no argument of these tests contains a space).
fn w(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Produces `n` messages with `strata produce`, one entry each.
fn produce(node: &Standalone, topic: &str, n: u32) {
    produce_with(node, topic, n, &["--disable-batching"]);
}

/// Produces `n` messages with `strata produce` and extra options.
fn produce_with(node: &Standalone, topic: &str, n: u32, extra: &[&str]) {
    cli::produce(&node.url(), topic, "hello-admin", n, extra);
}

#[test]
fn tenants_list_get_create_and_missing_tenant_error() {
    let node = Standalone::start();
    assert!(
        ok(&node, &["tenants", "list"])
            .lines()
            .any(|l| l == "public")
    );
    let info = json(&ok(&node, &["tenants", "get", "public", "-o", "json"]));
    assert!(info["allowedClusters"].is_array(), "{info}");
    ok(
        &node,
        &w("tenants create acme --admin-roles alice --allowed-clusters standalone"),
    );
    let list = json(&ok(&node, &["-o", "json", "tenants", "list"]));
    assert!(
        list.as_array().unwrap().iter().any(|t| t == "acme"),
        "{list}"
    );
    let line = fails(
        &node,
        &["tenants", "get", "no-such-tenant"],
        "error: 404 Not Found: ",
    );
    assert_eq!(line, "error: 404 Not Found: Tenant does not exist");
}

#[test]
fn namespaces_create_list_topics_and_policies() {
    let node = Standalone::start();
    ok(&node, &["tenants", "create", "acme"]);
    ok(&node, &["namespaces", "create", "acme/orders"]);
    let list = ok(&node, &["namespaces", "list", "acme"]);
    assert!(list.lines().any(|l| l == "acme/orders"), "{list}");
    // The namespace's topic list includes partitions of a partitioned topic.
    ok(
        &node,
        &w("topics create-partitioned-topic persistent://acme/orders/p -p 2"),
    );
    let topics = json(&ok(
        &node,
        &["namespaces", "topics", "acme/orders", "-o", "json"],
    ));
    assert!(topics.is_array(), "{topics}");
    // Policies of an existing namespace are a JSON object; a missing one is a 404.
    let p = json(&ok(
        &node,
        &["-o", "json", "namespaces", "policies", "acme/orders"],
    ));
    assert!(p.is_object(), "{p}");
    fails(
        &node,
        &["namespaces", "policies", "acme/nope"],
        "error: 404 Not Found: Namespace does not exist",
    );
    fails(
        &node,
        &["namespaces", "policies", "not-a-namespace"],
        "error: invalid namespace",
    );
}

#[test]
fn topics_partitions_create_stats_unload_terminate() {
    let node = Standalone::start();
    let t = "persistent://public/default/admin-p";
    ok(&node, &["topics", "create-partitioned-topic", t, "-p", "3"]);
    let meta = json(&ok(
        &node,
        &["topics", "get-partitioned-topic-metadata", t, "-o", "json"],
    ));
    assert_eq!(meta["partitions"], 3, "{meta}");
    assert_eq!(
        ok(&node, &["topics", "get-partitioned-topic-metadata", t]),
        "partitions  3\n"
    );
    fails(
        &node,
        &["topics", "create-partitioned-topic", t, "-p", "3"],
        "error: 409 Conflict: ",
    );
    let partitioned = ok(
        &node,
        &["topics", "list-partitioned-topics", "public/default"],
    );
    assert!(partitioned.lines().any(|l| l == t), "{partitioned}");

    // A non-partitioned topic: create, write to it, read stats, unload, terminate.
    let plain = "persistent://public/default/admin-plain";
    ok(&node, &["topics", "create", plain]);
    produce(&node, plain, 5);
    let stats = json(&ok(&node, &["-o", "json", "topics", "stats", plain]));
    assert!(stats["storageSize"].as_u64().unwrap_or(0) > 0, "{stats}");
    let internal = json(&ok(
        &node,
        &["-o", "json", "topics", "stats-internal", plain],
    ));
    assert!(internal["ledgers"].is_array(), "{internal}");
    let table = ok(&node, &["topics", "stats", plain]);
    assert!(table.contains("storageSize"), "{table}");
    ok(&node, &["topics", "unload", plain]);
    let out = ok(&node, &["topics", "terminate", plain]);
    assert!(
        out.starts_with("Topic successfully terminated. Last message id: "),
        "{out}"
    );
    let id = json(&ok(&node, &["-o", "json", "topics", "terminate", plain]));
    assert!(
        id["ledgerId"].is_number() && id["entryId"].is_number(),
        "{id}"
    );
    fails(
        &node,
        &["topics", "stats", "public/default/never-created"],
        "error: 404 Not Found: ",
    );
}

#[test]
fn brokers_healthcheck_and_error_output() {
    let node = Standalone::start();
    assert_eq!(ok(&node, &["brokers", "healthcheck"]), "ok\n");
    // Bad arguments are refused before any request, with one readable line.
    fails(&node, &["topics", "stats", "a/b"], "error: invalid topic");
    fails(
        &node,
        &w("namespaces set-persistence public/default -e 1 -w 2 -a 1"),
        "error: invalid persistence",
    );
    // Nobody listening: a transport error naming the URL, exit status 1.
    let port = crate::harness::free_port();
    let r = admin_at(port, &["tenants", "list"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.starts_with(&format!(
            "error: cannot reach http://127.0.0.1:{port}/admin/v2/tenants"
        )),
        "{r:?}"
    );
    // A usage error is clap's (exit status 2), not a request.
    let r = admin(&node, &["topics", "create-partitioned-topic", "x"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    // Shell completion covers the admin commands.
    let out = Command::new(strata_bin())
        .args(["completions", "bash"])
        .output()
        .expect("run strata completions");
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("set-backlog-quota") && script.contains("create-partitioned-topic"),
        "completion script lacks admin commands"
    );
}

// ---------------------------------------------------------------- the rest of the /admin/v2 API

#[test]
fn clusters_list_and_get() {
    let node = Standalone::start();
    assert!(
        ok(&node, &["clusters", "list"])
            .lines()
            .any(|l| l == "standalone")
    );
    let c = json(&ok(&node, &["-o", "json", "clusters", "get", "standalone"]));
    assert!(c["brokerServiceUrl"].as_str().is_some(), "{c}");
    fails(
        &node,
        &["clusters", "get", "no-such-cluster"],
        "error: 404 Not Found: ",
    );
}

#[test]
fn brokers_list_and_leader() {
    let node = Standalone::start();
    let list = json(&ok(&node, &["-o", "json", "brokers", "list", "standalone"]));
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let leader = json(&ok(&node, &["-o", "json", "brokers", "leader"]));
    assert!(leader["serviceUrl"].as_str().is_some(), "{leader}");
}

#[test]
fn bookies_list_and_racks() {
    let node = Standalone::start();
    let list = ok(&node, &["bookies", "list"]);
    assert!(list.contains("BOOKIE_ID"), "{list}");
    let racks = json(&ok(&node, &["-o", "json", "bookies", "racks"]));
    assert!(racks.is_object(), "{racks}");
}

#[test]
fn tenants_update_delete_and_conflicts() {
    let node = Standalone::start();
    ok(&node, &w("tenants create acme -r alice -c standalone"));
    let info = json(&ok(&node, &["-o", "json", "tenants", "get", "acme"]));
    assert_eq!(info["adminRoles"], serde_json::json!(["alice"]), "{info}");
    fails(
        &node,
        &["tenants", "create", "acme"],
        "error: 409 Conflict: ",
    );
    ok(
        &node,
        &w("tenants update acme --admin-roles alice,bob --allowed-clusters standalone"),
    );
    let info = json(&ok(&node, &["-o", "json", "tenants", "get", "acme"]));
    assert_eq!(info["adminRoles"], serde_json::json!(["alice", "bob"]));
    ok(&node, &["namespaces", "create", "acme/ns"]);
    fails(
        &node,
        &["tenants", "delete", "acme"],
        "error: 409 Conflict: ",
    );
    ok(&node, &["namespaces", "delete", "acme/ns"]);
    ok(&node, &["tenants", "delete", "acme"]);
    fails(&node, &["tenants", "get", "acme"], "error: 404 Not Found: ");
}

#[test]
fn namespaces_policies_set_and_get() {
    let node = Standalone::start();
    ok(&node, &["tenants", "create", "acme"]);
    ok(&node, &["namespaces", "create", "acme/ns"]);
    let n = "acme/ns";
    let get = |what: &str| json(&ok(&node, &["-o", "json", "namespaces", what, n]));

    ok(
        &node,
        &w(&format!(
            "namespaces set-retention {n} --size 10M --time 3h"
        )),
    );
    let r = get("get-retention");
    assert_eq!(
        (
            r["retentionSizeInMB"].as_i64(),
            r["retentionTimeInMinutes"].as_i64()
        ),
        (Some(10), Some(180)),
        "{r}"
    );
    ok(&node, &["namespaces", "set-message-ttl", n, "--ttl", "1h"]);
    assert_eq!(get("get-message-ttl"), 3600);
    ok(
        &node,
        &w(&format!(
            "namespaces set-backlog-quota {n} --limit 1G --policy producer_exception"
        )),
    );
    let q = get("get-backlog-quotas");
    assert_eq!(
        q["destination_storage"]["policy"], "producer_exception",
        "{q}"
    );
    ok(
        &node,
        &w(&format!("namespaces set-persistence {n} -e 1 -w 1 -a 1")),
    );
    assert_eq!(get("get-persistence")["bookkeeperEnsemble"], 1);
    ok(&node, &["namespaces", "set-deduplication", n, "--enable"]);
    assert_eq!(get("get-deduplication"), true);
    ok(&node, &["namespaces", "set-deduplication", n, "--disable"]);
    assert_eq!(get("get-deduplication"), false);
    ok(
        &node,
        &["namespaces", "set-max-producers-per-topic", n, "-p", "3"],
    );
    assert_eq!(get("get-max-producers-per-topic"), 3);
    ok(
        &node,
        &["namespaces", "set-max-consumers-per-topic", n, "-c", "4"],
    );
    assert_eq!(get("get-max-consumers-per-topic"), 4);
    ok(
        &node,
        &w(&format!(
            "namespaces set-dispatch-rate {n} --msg-dispatch-rate 1000"
        )),
    );
    assert_eq!(
        get("get-dispatch-rate")["dispatchThrottlingRateInMsg"],
        1000
    );
    ok(
        &node,
        &w(&format!(
            "namespaces set-publish-rate {n} --msg-publish-rate 500"
        )),
    );
    assert_eq!(get("get-publish-rate")["publishThrottlingRateInMsg"], 500);
    ok(
        &node,
        &["namespaces", "set-offload-threshold", n, "--size", "1G"],
    );
    assert_eq!(get("get-offload-threshold"), 1i64 << 30);

    ok(&node, &["namespaces", "remove-policy", n, "retention"]);
    assert_eq!(get("get-retention"), serde_json::Value::Null);
    assert_eq!(ok(&node, &["namespaces", "get-retention", n]), "null\n");
    let p = get("policies");
    assert_eq!(p["message_ttl_in_seconds"], 3600, "{p}");
    assert_eq!(p["max_producers_per_topic"], 3, "{p}");

    ok(&node, &["namespaces", "delete", n]);
    fails(
        &node,
        &["namespaces", "policies", n],
        "error: 404 Not Found: ",
    );
}

#[test]
fn namespaces_grant_revoke_permissions() {
    let node = Standalone::start();
    ok(&node, &["tenants", "create", "acme"]);
    ok(&node, &["namespaces", "create", "acme/ns"]);
    ok(
        &node,
        &w("namespaces grant-permission acme/ns --role app --actions produce,consume"),
    );
    let p = json(&ok(
        &node,
        &["-o", "json", "namespaces", "permissions", "acme/ns"],
    ));
    let mut actions: Vec<String> = serde_json::from_value(p["app"].clone()).unwrap();
    actions.sort();
    assert_eq!(actions, ["consume", "produce"], "{p}");
    ok(&node, &w("namespaces revoke-permission acme/ns --role app"));
    let p = json(&ok(
        &node,
        &["-o", "json", "namespaces", "permissions", "acme/ns"],
    ));
    assert!(p.get("app").is_none(), "{p}");
}

#[test]
fn topics_list_delete_update_partitions() {
    let node = Standalone::start();
    let t = "persistent://public/default/grow";
    ok(&node, &["topics", "create-partitioned-topic", t, "-p", "2"]);
    ok(&node, &["topics", "update-partitioned-topic", t, "-p", "4"]);
    let meta = json(&ok(
        &node,
        &["-o", "json", "topics", "get-partitioned-topic-metadata", t],
    ));
    assert_eq!(meta["partitions"], 4);
    fails(
        &node,
        &["topics", "update-partitioned-topic", t, "-p", "3"],
        "error: ",
    );
    produce(&node, t, 4);
    let stats = json(&ok(
        &node,
        &w(&format!(
            "-o json topics partitioned-stats {t} --per-partition"
        )),
    ));
    assert!(stats["partitions"].is_object(), "{stats}");
    let plain = "persistent://public/default/to-delete";
    ok(&node, &["topics", "create", plain]);
    let list = ok(&node, &["topics", "list", "public/default"]);
    assert!(list.lines().any(|l| l == plain), "{list}");
    assert!(
        list.lines().any(|l| l == format!("{t}-partition-0")),
        "{list}"
    );
    ok(&node, &["topics", "delete", plain, "--force"]);
    let list = ok(&node, &["topics", "list", "public/default"]);
    assert!(!list.lines().any(|l| l == plain), "{list}");
    ok(&node, &["topics", "delete-partitioned-topic", t, "--force"]);
}

#[test]
fn topics_subscriptions_cursor_operations() {
    let node = Standalone::start();
    let t = "persistent://public/default/subs";
    ok(&node, &["topics", "create", t]);
    ok(
        &node,
        &w(&format!(
            "topics create-subscription {t} -s early --messageId earliest"
        )),
    );
    ok(&node, &["topics", "create-subscription", t, "-s", "late"]);
    produce(&node, t, 10);
    let subs = ok(&node, &["topics", "subscriptions", t]);
    assert!(
        subs.lines().any(|l| l == "early") && subs.lines().any(|l| l == "late"),
        "{subs}"
    );
    let backlog = |sub: &str| {
        json(&ok(&node, &["-o", "json", "topics", "stats", t]))["subscriptions"][sub]["msgBacklog"]
            .as_i64()
    };
    assert_eq!(backlog("early"), Some(10));
    ok(&node, &["topics", "skip", t, "-s", "early", "-n", "3"]);
    assert_eq!(backlog("early"), Some(7));
    let peek = ok(
        &node,
        &["topics", "peek-messages", t, "-s", "early", "-n", "2"],
    );
    assert_eq!(peek.matches("hello-admin").count(), 2, "{peek}");
    ok(&node, &["topics", "clear-backlog", t, "-s", "early"]);
    assert_eq!(backlog("early"), Some(0));
    ok(
        &node,
        &w(&format!(
            "topics reset-cursor {t} -s early --messageId earliest"
        )),
    );
    assert_eq!(backlog("early"), Some(10));
    ok(
        &node,
        &["topics", "reset-cursor", t, "-s", "early", "--time", "1h"],
    );
    assert_eq!(backlog("early"), Some(10));
    ok(
        &node,
        &["topics", "expire-messages", t, "-s", "early", "-t", "0"],
    );
    assert_eq!(backlog("early"), Some(0));
    let last = json(&ok(&node, &["-o", "json", "topics", "last-message-id", t]));
    let (l, e) = (
        last["ledgerId"].as_i64().unwrap(),
        last["entryId"].as_i64().unwrap(),
    );
    let msg = ok(
        &node,
        &w(&format!("topics get-message-by-id {t} -l {l} -e {e}")),
    );
    assert!(msg.contains("hello-admin"), "{msg}");
    ok(&node, &["topics", "unsubscribe", t, "-s", "late"]);
    let subs = ok(&node, &["topics", "subscriptions", t]);
    assert!(!subs.lines().any(|l| l == "late"), "{subs}");
    fails(
        &node,
        &["topics", "unsubscribe", t, "-s", "late"],
        "error: 404 Not Found: ",
    );
}

#[test]
fn topics_compact_and_compaction_status() {
    let node = Standalone::start();
    let t = "persistent://public/default/compact";
    ok(&node, &["topics", "create", t]);
    let table = ok(&node, &["topics", "compaction-status", t]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("NOT_RUN")),
        "{table}"
    );
    ok(&node, &["topics", "compact", t]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = json(&ok(
            &node,
            &["-o", "json", "topics", "compaction-status", t],
        ));
        if v["status"] != "RUNNING" {
            assert_eq!(v["status"], "SUCCESS", "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let table = ok(&node, &["topics", "compaction-status", t]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("SUCCESS")),
        "{table}"
    );
}

#[test]
fn peek_shows_the_messages_of_compressed_batches() {
    let node = Standalone::start();
    let t = "persistent://public/default/peek-batches";
    ok(&node, &["topics", "create", t]);
    ok(
        &node,
        &w(&format!(
            "topics create-subscription {t} -s s --messageId earliest"
        )),
    );
    // Three messages in one LZ4-compressed batch entry.
    produce_with(&node, t, 3, &["-z", "lz4"]);
    let out = ok(&node, &["topics", "peek-messages", t, "-s", "s", "-n", "1"]);
    assert_eq!(out.matches("hello-admin").count(), 3, "{out}");
    assert!(!out.contains("decode-error"), "{out}");
    let v = json(&ok(
        &node,
        &w(&format!("-o json topics peek-messages {t} -s s -n 1")),
    ));
    assert_eq!(v.as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v[2]["payload"], "hello-admin", "{v}");
}

/// Writes a token for `role` to a file and returns its path.
fn token_file(node: &SecuredStandalone, role: &str) -> String {
    let path = node.dir().join(format!("{role}.token"));
    std::fs::write(&path, format!("{}\n", node.token(role, None))).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn auth_token_options_against_a_secured_standalone() {
    let node = SecuredStandalone::start();
    let admin_token = token_file(&node, "admin");
    let nobody_token = token_file(&node, "nobody");

    // Without a token: 401, one line.
    let r = admin_at(node.http_port, &["tenants", "list"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.starts_with("error: 401 Unauthorized"), "{r:?}");

    // A superuser token from a file works; so does the same token inline.
    let r = admin_at(
        node.http_port,
        &["--auth-token-file", &admin_token, "tenants", "list"],
    );
    assert!(r.ok && r.stdout.lines().any(|l| l == "public"), "{r:?}");
    let inline = std::fs::read_to_string(&admin_token).unwrap();
    let r = admin_at(
        node.http_port,
        &[
            "--auth-token",
            inline.trim(),
            "-o",
            "json",
            "tenants",
            "list",
        ],
    );
    assert!(r.ok, "{r:?}");

    // A valid token of a role without rights: 401 (as Pulsar); the token never appears in the
    // output.
    let r = admin_at(
        node.http_port,
        &["--auth-token-file", &nobody_token, "tenants", "list"],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.starts_with("error: 401 Unauthorized"), "{r:?}");
    let nobody = std::fs::read_to_string(&nobody_token).unwrap();
    assert!(!r.stderr.contains(nobody.trim()), "{r:?}");

    // A forged token (signed with another key): 401.
    let r = admin_at(
        node.http_port,
        &w("--auth-token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl tenants list"),
    );
    assert!(r.stderr.starts_with("error: 401 Unauthorized"), "{r:?}");
}

#[test]
fn topic_permissions_subscription_dispatch_rate_and_age_quota() {
    let node = Standalone::start();
    ok(&node, &["tenants", "create", "acme"]);
    ok(&node, &["namespaces", "create", "acme/ns"]);
    ok(&node, &["topics", "create", "persistent://acme/ns/t"]);
    ok(
        &node,
        &w("topics grant-permission persistent://acme/ns/t --role reader --actions consume"),
    );
    let p = json(&ok(
        &node,
        &w("-o json topics permissions persistent://acme/ns/t"),
    ));
    assert_eq!(p["reader"], serde_json::json!(["consume"]), "{p}");
    ok(
        &node,
        &w("topics revoke-permission persistent://acme/ns/t --role reader"),
    );
    let e = fails(
        &node,
        &w("topics revoke-permission persistent://acme/ns/t --role reader"),
        "error:",
    );
    assert!(
        e.contains("412") || e.to_lowercase().contains("not set"),
        "{e}"
    );

    ok(
        &node,
        &w("namespaces set-subscription-dispatch-rate acme/ns --msg-dispatch-rate 50"),
    );
    let r = json(&ok(
        &node,
        &w("-o json namespaces get-subscription-dispatch-rate acme/ns"),
    ));
    assert_eq!(r["dispatchThrottlingRateInMsg"], 50, "{r}");
    ok(
        &node,
        &w("namespaces remove-policy acme/ns subscription-dispatch-rate"),
    );

    ok(
        &node,
        &w(
            "namespaces set-backlog-quota acme/ns --limit -1 --limit-time 10m --policy consumer_backlog_eviction --type message_age",
        ),
    );
    let q = json(&ok(
        &node,
        &["-o", "json", "namespaces", "get-backlog-quotas", "acme/ns"],
    ));
    assert_eq!(q["message_age"]["limitTime"], 600, "{q}");
}
