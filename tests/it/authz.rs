//! Authorization matrix on a real secured `strata standalone` (HS256 token key, superuser
//! `admin`): roles {superuser, tenant-A admin, A producer, A consumer, tenant-B consumer,
//! anonymous, expired token, forged token} × binary commands (the official Python client with
//! `AuthenticationToken`: PARTITIONED_METADATA/LOOKUP, PRODUCER+SEND, SUBSCRIBE+receive) and REST
//! endpoints. Allowed actions work, others are refused with the right code (401 without valid
//! credentials, with `WWW-Authenticate`; 401 without it for a role without the permission, as
//! Pulsar's `PulsarWebResource`), and no byte of tenant A's data reaches a role that
//! may not read it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::http::request;
use crate::harness::python::{python, python_command, run_for};
use crate::harness::secured::{
    SecuredStandalone as Secured, create_secret_key as secret_key, create_token as token,
};

const ROLES: [&str; 8] = [
    "superuser",
    "a-admin",
    "a-producer",
    "a-consumer",
    "b-consumer",
    "anonymous",
    "expired",
    "forged",
];

/// Tokens by matrix role (None: no credentials).
fn tokens(node: &Secured) -> Vec<(&'static str, Option<String>)> {
    let forged_key = node.dir().join("other.key");
    secret_key(&forged_key);
    let expired = token(&node.key(), "a-admin", Some("1s"));
    let out = vec![
        ("superuser", Some(token(&node.key(), "admin", None))),
        ("a-admin", Some(token(&node.key(), "a-admin", None))),
        ("a-producer", Some(token(&node.key(), "a-producer", None))),
        ("a-consumer", Some(token(&node.key(), "a-consumer", None))),
        ("b-consumer", Some(token(&node.key(), "b-consumer", None))),
        ("anonymous", None),
        ("expired", Some(expired)),
        // Signed with another key, claiming the superuser role.
        ("forged", Some(token(&forged_key, "admin", None))),
    ];
    // Let the 1 s token expire.
    std::thread::sleep(Duration::from_millis(2100));
    out
}

fn setup(node: &Secured, su: &str) {
    let hp = node.http_port;
    let call = |m: &str, p: &str, b: &str| {
        let (st, _, body) = request(hp, m, p, b, Some(su));
        assert!(st == 204 || st == 200, "{m} {p}: {st} {body}");
    };
    call(
        "PUT",
        "/admin/v2/tenants/ta",
        r#"{"adminRoles":["a-admin"],"allowedClusters":["standalone"]}"#,
    );
    call(
        "PUT",
        "/admin/v2/tenants/tb",
        r#"{"adminRoles":["b-admin"],"allowedClusters":["standalone"]}"#,
    );
    call("PUT", "/admin/v2/namespaces/ta/ns", "");
    call("PUT", "/admin/v2/namespaces/tb/ns", "");
    call(
        "POST",
        "/admin/v2/namespaces/ta/ns/permissions/a-producer",
        r#"["produce"]"#,
    );
    call(
        "POST",
        "/admin/v2/namespaces/ta/ns/permissions/a-consumer",
        r#"["consume"]"#,
    );
    call(
        "POST",
        "/admin/v2/namespaces/tb/ns/permissions/b-consumer",
        r#"["consume"]"#,
    );
    call("PUT", "/admin/v2/persistent/ta/ns/t", "");
    call(
        "PUT",
        "/admin/v2/persistent/ta/ns/t/subscription/s",
        r#"{"ledgerId":-1,"entryId":-1}"#,
    );
}

/// Which roles may do what, per permission class.
fn allowed(class: &str, role: &str) -> bool {
    let any_a = ["superuser", "a-admin", "a-producer", "a-consumer"];
    match class {
        "authenticated" => [
            "superuser",
            "a-admin",
            "a-producer",
            "a-consumer",
            "b-consumer",
        ]
        .contains(&role),
        "superuser" => role == "superuser",
        "tenant-admin" => ["superuser", "a-admin"].contains(&role),
        "produce" => ["superuser", "a-admin", "a-producer"].contains(&role),
        "consume" => ["superuser", "a-admin", "a-consumer"].contains(&role),
        "produce-or-consume" => any_a.contains(&role),
        other => panic!("unknown class {other}"),
    }
}

/// No wrong answer was collected; `context` is added to the failure message.
fn assert_all_right(failures: &[String], context: &str) {
    assert!(
        failures.is_empty(),
        "{} wrong answers:\n{}{context}",
        failures.len(),
        failures.join("\n")
    );
}

fn unauthenticated(role: &str) -> bool {
    ["anonymous", "expired", "forged"].contains(&role)
}

const SECRET: &str = "secret-of-tenant-a";
/// Tenant A's topic.
const TOPIC_A: &str = "persistent://ta/ns/t";

#[test]
fn rest_authorization_matrix() {
    let node = Secured::start();
    let toks = tokens(&node);
    let su = toks[0].1.clone().unwrap();
    setup(&node, &su);
    // Tenant A's data, written by the superuser through the binary protocol when Python is
    // available; otherwise the REST checks still run on the empty topic.
    if let Some(py) = python() {
        Binary {
            py: &py,
            node: &node,
        }
        .write_secret(&su);
    }
    let hp = node.http_port;
    let last = {
        let (st, _, b) = request(
            hp,
            "GET",
            "/admin/v2/persistent/ta/ns/t/lastMessageId",
            "",
            Some(&su),
        );
        assert_eq!(st, 200, "{b}");
        serde_json::from_str::<Value>(&b).unwrap()
    };
    let t = "/admin/v2/persistent/ta/ns/t";
    let by_id = format!(
        "{t}/ledger/{}/entry/{}",
        last["ledgerId"],
        last["entryId"].as_i64().unwrap().max(0)
    );
    let endpoints: Vec<(&str, String, &str, &str)> = vec![
        ("GET", "/admin/v2/clusters".into(), "", "authenticated"),
        (
            "GET",
            "/admin/v2/clusters/standalone".into(),
            "",
            "superuser",
        ),
        (
            "GET",
            "/admin/v2/brokers/standalone".into(),
            "",
            "superuser",
        ),
        ("GET", "/admin/v2/brokers/health".into(), "", "superuser"),
        ("GET", "/admin/v2/bookies/all".into(), "", "superuser"),
        ("GET", "/metrics".into(), "", "superuser"),
        ("GET", "/admin/v2/tenants".into(), "", "superuser"),
        ("GET", "/admin/v2/tenants/ta".into(), "", "tenant-admin"),
        ("GET", "/admin/v2/namespaces/ta".into(), "", "tenant-admin"),
        (
            "GET",
            "/admin/v2/namespaces/ta/ns".into(),
            "",
            "tenant-admin",
        ),
        (
            "GET",
            "/admin/v2/namespaces/ta/ns/permissions".into(),
            "",
            "tenant-admin",
        ),
        (
            "POST",
            "/admin/v2/namespaces/ta/ns/messageTTL".into(),
            "0",
            "tenant-admin",
        ),
        (
            "GET",
            "/admin/v2/namespaces/ta/ns/topics".into(),
            "",
            "produce-or-consume",
        ),
        (
            "GET",
            "/lookup/v2/topic/persistent/ta/ns/t".into(),
            "",
            "produce-or-consume",
        ),
        ("GET", format!("{t}/partitions"), "", "produce-or-consume"),
        ("GET", format!("{t}/stats"), "", "consume"),
        ("GET", format!("{t}/internalStats"), "", "consume"),
        ("GET", format!("{t}/subscriptions"), "", "consume"),
        ("GET", format!("{t}/lastMessageId"), "", "consume"),
        ("GET", by_id.clone(), "", "consume"),
        (
            "GET",
            format!("{t}/subscription/s/position/1"),
            "",
            "consume",
        ),
        ("GET", format!("{t}/compaction"), "", "tenant-admin"),
        ("PUT", format!("{t}/unload"), "", "tenant-admin"),
        (
            "GET",
            "/admin/v2/schemas/ta/ns/t/schema".into(),
            "",
            "produce-or-consume",
        ),
    ];
    let mut failures = Vec::new();
    for (role, tok) in &toks {
        for (m, p, b, class) in &endpoints {
            let (st, head, body) = request(hp, m, p, b, tok.as_deref());
            let want_ok = !unauthenticated(role) && allowed(class, role);
            // Only a missing/invalid credential's 401 asks for credentials.
            let challenge = head
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer");
            let good = if unauthenticated(role) {
                st == 401 && challenge
            } else if want_ok {
                // Schema: none registered (404) is an allowed answer; so is an empty peek.
                (200..300).contains(&st)
                    || (st == 404 && (p.contains("schema") || p.contains("position")))
            } else {
                st == 401 && !challenge
            };
            if !good {
                failures.push(format!("{role} {m} {p}: {st} {body}"));
            }
            if !want_ok && body.contains(SECRET) {
                failures.push(format!("{role} {m} {p}: leaked tenant A data: {body}"));
            }
        }
    }
    assert_all_right(&failures, "");
    // Tokens never reach the log.
    let log = node.log();
    for (_, tok) in &toks {
        if let Some(tok) = tok {
            assert!(!log.contains(tok.as_str()), "a token was logged");
        }
    }
}

/// The official client (`authz_binary.py`) run as one role.
struct Binary<'a> {
    py: &'a Path,
    node: &'a Secured,
}

impl Binary<'_> {
    /// Produces `payload` to `topic` and subscribes with `sub` using token `tok`; returns what
    /// each step answered.
    fn run(&self, tok: Option<&str>, topic: &str, sub: &str, payload: &str) -> Value {
        python_role(self.py, self.node, tok, topic, sub, payload)
    }

    /// The superuser writes tenant A's secret to its topic.
    fn write_secret(&self, su: &str) {
        let r = self.run(Some(su), TOPIC_A, "setup", SECRET);
        assert_eq!(r["producer"], "ok", "{r}");
    }
}

fn python_role(
    py: &Path,
    node: &Secured,
    tok: Option<&str>,
    topic: &str,
    sub: &str,
    payload: &str,
) -> Value {
    let out = run_for(
        python_command(py, "authz_binary.py")
            .arg(node.url())
            .arg(tok.unwrap_or("-"))
            .args([topic, sub, payload]),
        Duration::from_secs(90),
    );
    assert!(out.status.is_some(), "authz_binary.py timed out");
    let line = out.stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "authz_binary.py output is not JSON: {}\n{}",
            out.stdout, out.stderr
        )
    })
}

#[test]
fn binary_authorization_matrix() {
    let Some(py) = python() else { return };
    let node = Secured::start();
    let toks = tokens(&node);
    let su = toks[0].1.clone().unwrap();
    setup(&node, &su);
    let bin = Binary {
        py: &py,
        node: &node,
    };
    bin.write_secret(&su);
    let mut failures = Vec::new();
    for (role, tok) in &toks {
        let r = bin.run(
            tok.as_deref(),
            TOPIC_A,
            &format!("sub-{role}"),
            &format!("from-{role}"),
        );
        for (op, class) in [
            ("partitioned_metadata", "produce-or-consume"),
            ("producer", "produce"),
            ("subscribe", "consume"),
        ] {
            let want_ok = !unauthenticated(role) && allowed(class, role);
            let got_ok = r[op] == "ok";
            if want_ok != got_ok {
                failures.push(format!(
                    "{role} {op}: expected {}, got {}",
                    if want_ok { "ok" } else { "refused" },
                    r[op]
                ));
            }
            if !want_ok && got_ok {
                continue;
            }
            if !want_ok {
                let msg = r[op].as_str().unwrap_or("");
                let code_ok = if unauthenticated(role) {
                    msg.contains("Authentication")
                        || msg.contains("Connect")
                        || msg.contains("Timeout")
                } else {
                    msg.contains("Authorization")
                };
                if !code_ok {
                    failures.push(format!("{role} {op}: wrong refusal {msg}"));
                }
            }
        }
        let received = r["received"].to_string();
        if !allowed("consume", role) || unauthenticated(role) {
            if received.contains(SECRET) {
                failures.push(format!("{role}: read tenant A data: {received}"));
            }
        } else if !received.contains(SECRET) {
            failures.push(format!("{role}: could not read tenant A data: {r}"));
        }
    }
    // Tenant B's consumer can use its own namespace.
    let b = bin.run(toks[4].1.as_deref(), "persistent://tb/ns/t", "mine", "x");
    if b["subscribe"] != "ok" {
        failures.push(format!("b-consumer on its own namespace: {b}"));
    }
    let log_tail: Vec<String> = node
        .log()
        .lines()
        .rev()
        .take(40)
        .map(str::to_owned)
        .collect();
    assert_all_right(
        &failures,
        &format!("\n--- log tail ---\n{}", log_tail.join("\n")),
    );
    let _ = ROLES;
}

#[test]
fn expired_token_on_a_live_connection_is_challenged_then_closed() {
    let Some(py) = python() else { return };
    let node = Secured::start();
    let su = token(&node.key(), "admin", None);
    setup(&node, &su);
    // a-producer's token expires 4 s after it is made.
    let short = token(&node.key(), "a-producer", Some("4s"));
    let out = run_for(
        python_command(&py, "authz_expiry.py")
            .arg(node.url())
            .args([short.as_str(), "persistent://ta/ns/expiring", "4"]),
        Duration::from_secs(60),
    );
    assert!(out.status.is_some(), "authz_expiry.py timed out");
    let stdout = &out.stdout;
    assert!(out.success(), "{stdout}\n{}", out.stderr);
    assert!(stdout.contains("sent before expiry"), "{stdout}");
    let log = node.log();
    assert!(
        log.contains("credentials expired; sending AUTH_CHALLENGE")
            || log.contains("credentials expired; closing connection"),
        "{log}"
    );
    assert!(!log.contains(short.as_str()), "the token was logged");
}

/// Raw frames: CONNECT with `token`, then one request; returns the answer's command type and
/// server error code (None: success), or "closed" when the broker refused the CONNECT.
fn raw_request(
    node: &Secured,
    tok: Option<&str>,
    req: strata_proto::pulsar::BaseCommand,
) -> (String, Option<i32>) {
    use strata_proto::commands;
    use strata_proto::frame::Frame;
    use strata_proto::pulsar::base_command::Type;
    let mut r = crate::broker_badinput::Raw::open(node.broker_port);
    let auth = tok.map(|t| ("token".to_owned(), bytes::Bytes::from(t.to_owned())));
    r.send(&Frame::simple(commands::connect("authz-test", 20, auth)));
    let Some(f) = r.recv() else {
        return ("closed".into(), None);
    };
    if f.command.r#type != Type::Connected as i32 {
        return (
            "connect-error".into(),
            f.command.error.as_ref().map(|e| e.error),
        );
    }
    r.send(&Frame::simple(req));
    loop {
        let Some(f) = r.recv() else {
            return ("closed".into(), None);
        };
        let c = &f.command;
        let t = Type::try_from(c.r#type)
            .map(|t| t.as_str_name().to_owned())
            .unwrap_or_default();
        let err = match c.r#type {
            x if x == Type::Ping as i32 => continue,
            x if x == Type::Error as i32 => c.error.as_ref().map(|e| e.error),
            x if x == Type::LookupResponse as i32 => {
                c.lookup_topic_response.as_ref().and_then(|l| l.error)
            }
            x if x == Type::PartitionedMetadataResponse as i32 => {
                c.partition_metadata_response.as_ref().and_then(|l| l.error)
            }
            x if x == Type::GetSchemaResponse as i32 => {
                c.get_schema_response.as_ref().and_then(|l| l.error_code)
            }
            _ => None,
        };
        return (t, err);
    }
}

#[test]
fn raw_binary_commands_matrix() {
    use strata_proto::commands;
    use strata_proto::pulsar::base_command::Type;
    use strata_proto::pulsar::{BaseCommand, CommandGetSchema, CommandGetTopicsOfNamespace};
    let node = Secured::start();
    let toks = tokens(&node);
    let su = toks[0].1.clone().unwrap();
    setup(&node, &su);
    const AUTHORIZATION_ERROR: i32 = 4;
    const AUTHENTICATION_ERROR: i32 = 3;
    let topic = "persistent://ta/ns/t";
    let requests: Vec<(&str, &str, BaseCommand)> = vec![
        (
            "LOOKUP",
            "produce-or-consume",
            commands::lookup(1, topic, false),
        ),
        (
            "PARTITIONED_METADATA",
            "produce-or-consume",
            commands::partitioned_metadata(1, topic),
        ),
        (
            "GET_TOPICS_OF_NAMESPACE",
            "produce-or-consume",
            BaseCommand {
                get_topics_of_namespace: Some(Box::new(CommandGetTopicsOfNamespace {
                    request_id: 1,
                    namespace: "ta/ns".into(),
                    ..Default::default()
                })),
                ..commands::base(Type::GetTopicsOfNamespace)
            },
        ),
        (
            "GET_SCHEMA",
            "produce-or-consume",
            BaseCommand {
                get_schema: Some(Box::new(CommandGetSchema {
                    request_id: 1,
                    topic: topic.into(),
                    ..Default::default()
                })),
                ..commands::base(Type::GetSchema)
            },
        ),
    ];
    let mut failures = Vec::new();
    for (role, tok) in &toks {
        for (name, class, req) in &requests {
            let (answer, err) = raw_request(&node, tok.as_deref(), req.clone());
            let ok = if unauthenticated(role) {
                answer == "connect-error" && err == Some(AUTHENTICATION_ERROR)
            } else if allowed(class, role) {
                // GET_SCHEMA on a topic without a schema answers TopicNotFound: allowed.
                err != Some(AUTHORIZATION_ERROR) && answer != "closed"
            } else {
                err == Some(AUTHORIZATION_ERROR)
            };
            if !ok {
                failures.push(format!("{role} {name}: {answer} {err:?}"));
            }
        }
    }
    assert_all_right(&failures, "");
}

/// Topic-level grants (`/admin/v2/persistent/{t}/{ns}/{topic}/permissions/{role}`): the role may
/// produce to that topic only, until the grant is revoked; a tenant admin may grant, another
/// tenant's admin may not.
#[test]
fn topic_level_permissions_grant_one_topic_only() {
    let Some(py) = python() else { return };
    let node = Secured::start();
    let su = token(&node.key(), "admin", None);
    let a_admin = token(&node.key(), "a-admin", None);
    let b_admin = token(&node.key(), "b-admin", None);
    let t_role = token(&node.key(), "t1-producer", None);
    setup(&node, &su);
    let hp = node.http_port;
    let perms = "/admin/v2/persistent/ta/ns/t1/permissions";
    let grant = format!("{perms}/t1-producer");
    // (status, body) of `method` on the grant with `body`, as the holder of `tok`.
    let on_grant = |method: &str, body: &str, tok: &str| {
        let (st, _, body) = request(hp, method, &grant, body, Some(tok));
        (st, body)
    };
    // another tenant's admin may not grant on tenant A
    let (st, body) = on_grant("POST", r#"["produce"]"#, &b_admin);
    assert_eq!(st, 401, "{body}");
    // bad action names are a clear 400/412, nothing stored
    let (st, body) = on_grant("POST", r#"["fly"]"#, &a_admin);
    assert!(st == 400 || st == 412, "{st} {body}");
    let (st, body) = on_grant("POST", r#"["produce"]"#, &a_admin);
    assert_eq!(st, 204, "{body}");
    let (st, _, body) = request(hp, "GET", perms, "", Some(&a_admin));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["t1-producer"], serde_json::json!(["produce"]), "{v}");
    assert_eq!(v["a-producer"], serde_json::json!(["produce"]), "{v}");

    let bin = Binary {
        py: &py,
        node: &node,
    };
    let r = bin.run(Some(&t_role), "persistent://ta/ns/t1", "s", "x");
    assert_eq!(r["producer"], "ok", "granted topic: {r}");
    assert_ne!(
        r["subscribe"], "ok",
        "produce grant must not allow consuming: {r}"
    );
    let r = bin.run(Some(&t_role), "persistent://ta/ns/t2", "s", "x");
    assert_ne!(r["producer"], "ok", "other topic: {r}");

    let (st, body) = on_grant("DELETE", "", &a_admin);
    assert_eq!(st, 204, "{body}");
    let (st, _) = on_grant("DELETE", "", &a_admin);
    assert_eq!(st, 412, "revoking twice");
    // policies are re-read within policy_refresh_interval (1 s)
    std::thread::sleep(Duration::from_millis(1500));
    let r = bin.run(Some(&t_role), "persistent://ta/ns/t1", "s2", "x");
    assert_ne!(r["producer"], "ok", "revoked: {r}");
}
