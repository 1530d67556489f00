//! Unit tests: argument parsing, names and URLs, JSON shapes, output and error rendering, and the
//! client against a tiny HTTP server on loopback that records each request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use clap::{CommandFactory, Parser};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::cli::*;
use super::output::OutputFormat;
use super::types::*;
use super::*;

#[derive(Parser, Debug)]
struct TestCli {
    #[command(flatten)]
    admin: AdminArgs,
}

fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
    let mut v = vec!["admin"];
    v.extend_from_slice(args);
    TestCli::try_parse_from(v).map(|c| c.admin)
}

#[test]
fn cli_definition_is_consistent() {
    TestCli::command().debug_assert();
}

#[test]
fn parses_global_options_and_groups() {
    let a = parse(&[
        "--admin-url",
        "http://127.0.0.1:9000",
        "--auth-token",
        "tok",
        "-o",
        "json",
        "tenants",
        "create",
        "acme",
        "--admin-roles",
        "alice,bob",
        "--allowed-clusters",
        "standalone",
    ])
    .unwrap();
    assert_eq!(a.admin_url, "http://127.0.0.1:9000");
    assert_eq!(a.output, OutputFormat::Json);
    match a.command {
        AdminCommand::Tenants(TenantsCmd::Create { tenant, info }) => {
            assert_eq!(tenant, "acme");
            assert_eq!(info.admin_roles, ["alice", "bob"]);
            assert_eq!(info.allowed_clusters, ["standalone"]);
        }
        other => panic!("{other:?}"),
    }
    // Global options also after the subcommand, as with pulsar-admin.
    let a = parse(&["topics", "list", "public/default", "--output", "json"]).unwrap();
    assert_eq!(a.output, OutputFormat::Json);
}

#[test]
fn parses_policy_setters() {
    let a = parse(&[
        "namespaces",
        "set-retention",
        "public/default",
        "--size",
        "-1",
        "--time",
        "3h",
    ])
    .unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Namespaces(NamespacesCmd::SetRetention { ref size, ref time, .. }) if size == "-1" && time == "3h"
    ));
    let a = parse(&[
        "namespaces",
        "set-backlog-quota",
        "t/n",
        "--limit",
        "10G",
        "--policy",
        "producer_exception",
    ])
    .unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Namespaces(NamespacesCmd::SetBacklogQuota {
            policy: QuotaPolicyArg::ProducerException,
            ..
        })
    ));
    assert!(
        parse(&[
            "namespaces",
            "set-backlog-quota",
            "t/n",
            "--limit",
            "1G",
            "--policy",
            "drop"
        ])
        .is_err()
    );
    let a = parse(&[
        "namespaces",
        "set-persistence",
        "t/n",
        "-e",
        "3",
        "-w",
        "2",
        "-a",
        "2",
    ])
    .unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Namespaces(NamespacesCmd::SetPersistence {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
            ..
        })
    ));
    let a = parse(&["namespaces", "remove-policy", "t/n", "message-ttl"]).unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Namespaces(NamespacesCmd::RemovePolicy {
            policy: PolicyName::MessageTtl,
            ..
        })
    ));
    assert_eq!(PolicyName::MessageTtl.rest_name(), "messageTTL");
    assert!(parse(&["namespaces", "remove-policy", "t/n", "bogus"]).is_err());
    assert!(parse(&["namespaces", "set-deduplication", "t/n", "--enable"]).is_ok());
    assert!(parse(&["namespaces", "set-deduplication", "t/n"]).is_err());
    assert!(
        parse(&[
            "namespaces",
            "set-deduplication",
            "t/n",
            "--enable",
            "--disable"
        ])
        .is_err()
    );
    let a = parse(&[
        "namespaces",
        "grant-permission",
        "t/n",
        "--role",
        "app",
        "--actions",
        "produce,consume",
    ])
    .unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Namespaces(NamespacesCmd::GrantPermission { ref actions, .. }) if actions == &["produce", "consume"]
    ));
    assert!(parse(&["namespaces", "grant-permission", "t/n", "--role", "app"]).is_err());
}

#[test]
fn parses_topic_commands() {
    let a = parse(&["topics", "create-partitioned-topic", "t/n/x", "-p", "4"]).unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Topics(TopicsCmd::CreatePartitionedTopic { partitions: 4, .. })
    ));
    let a = parse(&[
        "topics",
        "create-subscription",
        "x",
        "--subscription",
        "s",
        "--messageId",
        "earliest",
    ])
    .unwrap();
    assert!(matches!(
        a.command,
        AdminCommand::Topics(TopicsCmd::CreateSubscription { ref message_id, .. }) if message_id == "earliest"
    ));
    assert!(parse(&["topics", "reset-cursor", "x", "-s", "s", "--time", "10m"]).is_ok());
    assert!(
        parse(&[
            "topics",
            "reset-cursor",
            "x",
            "-s",
            "s",
            "--messageId",
            "1:2"
        ])
        .is_ok()
    );
    assert!(parse(&["topics", "reset-cursor", "x", "-s", "s"]).is_err());
    assert!(
        parse(&[
            "topics",
            "reset-cursor",
            "x",
            "-s",
            "s",
            "-t",
            "1m",
            "-m",
            "1:2"
        ])
        .is_err()
    );
    assert!(parse(&["topics", "delete", "x", "--force"]).is_ok());
    assert!(parse(&["topics", "get-message-by-id", "x", "-l", "5", "-e", "7"]).is_ok());
    assert!(parse(&["topics", "peek-messages", "x", "-s", "s", "-n", "3"]).is_ok());
    assert!(parse(&["topics", "expire-messages", "x", "-s", "s", "-t", "1h"]).is_ok());
    assert!(parse(&["topics", "nonsense"]).is_err());
}

#[test]
fn base_urls() {
    let u = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        (u.tls, u.host.as_str(), u.port, u.prefix.as_str()),
        (false, "127.0.0.1", 8080, "")
    );
    let u = BaseUrl::parse("https://broker.example/pulsar/").unwrap();
    assert_eq!(
        (u.tls, u.host.as_str(), u.port, u.prefix.as_str()),
        (true, "broker.example", 443, "/pulsar")
    );
    assert_eq!(
        u.url("/admin/v2/tenants"),
        "https://broker.example:443/pulsar/admin/v2/tenants"
    );
    let u = BaseUrl::parse("http://[::1]:81").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 81));
    assert_eq!(u.url("/x"), "http://[::1]:81/x");
    for bad in [
        "127.0.0.1:8080",
        "pulsar://h:6650",
        "http://",
        "http://h:port",
        "http://u@h",
    ] {
        assert!(
            matches!(BaseUrl::parse(bad), Err(AdminError::InvalidUrl(_))),
            "{bad}"
        );
    }
}

#[test]
fn names_and_paths() {
    let t = TopicRef::parse("persistent://acme/ns1/orders").unwrap();
    assert_eq!(t.path(), "/admin/v2/persistent/acme/ns1/orders");
    assert_eq!(t.to_string(), "persistent://acme/ns1/orders");
    let t = TopicRef::parse("orders").unwrap();
    assert_eq!(t.path(), "/admin/v2/persistent/public/default/orders");
    let t = TopicRef::parse("a/b/c/d e").unwrap();
    assert_eq!(t.path(), "/admin/v2/persistent/a/b/c%2Fd%20e");
    let t = TopicRef::parse("non-persistent://a/b/c").unwrap();
    assert_eq!(t.path(), "/admin/v2/non-persistent/a/b/c");
    for bad in ["a/b", "http://a/b/c", "persistent://x", "a//c", ""] {
        assert!(TopicRef::parse(bad).is_err(), "{bad:?}");
    }
    let n = NamespaceRef::parse("acme/ns1").unwrap();
    assert_eq!(n.path(), "/admin/v2/namespaces/acme/ns1");
    for bad in ["acme", "acme/", "/ns", "a/b/c"] {
        assert!(NamespaceRef::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(enc("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(enc("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    assert_eq!(enc("é"), "%C3%A9");
}

#[test]
fn message_ids() {
    assert_eq!(
        MessageIdJson::parse("earliest").unwrap(),
        MessageIdJson::EARLIEST
    );
    assert_eq!(
        MessageIdJson::parse("latest").unwrap(),
        MessageIdJson::LATEST
    );
    let id = MessageIdJson::parse("12:34").unwrap();
    assert_eq!(
        (id.ledger_id, id.entry_id, id.partition_index),
        (12, 34, -1)
    );
    assert_eq!(id.to_string(), "12:34");
    assert_eq!(
        serde_json::to_value(id).unwrap(),
        json!({"ledgerId": 12, "entryId": 34, "partitionIndex": -1})
    );
    let id = MessageIdJson::parse("1:2:3:4").unwrap();
    assert_eq!(id.to_string(), "1:2:3:4");
    let back: MessageIdJson =
        serde_json::from_value(json!({"ledgerId": 5, "entryId": 6, "partitionIndex": 0})).unwrap();
    assert_eq!(back.to_string(), "5:6:0");
    for bad in ["", "1", "a:b", "1:2:3:4:5", "1:2:99999999999"] {
        assert!(MessageIdJson::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn json_shapes_match_pulsar() {
    assert_eq!(
        serde_json::to_value(TenantInfo {
            admin_roles: vec!["a".into()],
            allowed_clusters: vec!["standalone".into()]
        })
        .unwrap(),
        json!({"adminRoles": ["a"], "allowedClusters": ["standalone"]})
    );
    assert_eq!(
        serde_json::to_value(retention_from_args("10M", "3h").unwrap()).unwrap(),
        json!({"retentionTimeInMinutes": 180, "retentionSizeInMB": 10})
    );
    assert_eq!(
        serde_json::to_value(BacklogQuota {
            limit_size: 1 << 30,
            limit_time: -1,
            policy: BacklogQuotaPolicy::ConsumerBacklogEviction
        })
        .unwrap(),
        json!({"limitSize": 1073741824, "limitTime": -1, "policy": "consumer_backlog_eviction"})
    );
    assert_eq!(
        serde_json::to_value(persistence_from_args(3, 2, 2, 0.0).unwrap()).unwrap(),
        json!({"bookkeeperEnsemble": 3, "bookkeeperWriteQuorum": 2, "bookkeeperAckQuorum": 2, "managedLedgerMaxMarkDeleteRate": 0.0})
    );
    assert_eq!(
        serde_json::to_value(DispatchRate::default()).unwrap(),
        json!({"dispatchThrottlingRateInMsg": -1, "dispatchThrottlingRateInByte": -1, "relativeToPublishRate": false, "ratePeriodInSecond": 1})
    );
    assert_eq!(
        serde_json::to_value(PublishRate::default()).unwrap(),
        json!({"publishThrottlingRateInMsg": -1, "publishThrottlingRateInByte": -1})
    );
    // A Pulsar broker's `Policies` (abridged) decodes, unknown fields are kept.
    let p: Policies = serde_json::from_value(json!({
        "auth_policies": {"namespace_auth": {"app": ["produce"]}, "destination_auth": {}, "subscription_auth_roles": {}},
        "replication_clusters": ["standalone"],
        "bundles": {"boundaries": ["0x00000000", "0xffffffff"], "numBundles": 1},
        "backlog_quota_map": {"destination_storage": {"limit": 10, "limitSize": 10, "limitTime": -1, "policy": "producer_request_hold"}},
        "message_ttl_in_seconds": 60,
        "retention_policies": {"retentionTimeInMinutes": 5, "retentionSizeInMB": 1},
        "deduplicationEnabled": true,
        "max_producers_per_topic": 2,
        "offload_threshold": -1,
        "deleted": false
    }))
    .unwrap();
    assert_eq!(p.message_ttl_in_seconds, Some(60));
    assert_eq!(p.deduplication_enabled, Some(true));
    assert_eq!(
        p.backlog_quota_map["destination_storage"].policy,
        BacklogQuotaPolicy::ProducerRequestHold
    );
    assert!(p.other.contains_key("bundles") && p.other.contains_key("deleted"));
    let back = serde_json::to_value(&p).unwrap();
    assert_eq!(back["max_producers_per_topic"], 2);
    assert_eq!(back["bundles"]["numBundles"], 1);
}

#[test]
fn sizes_times_actions() {
    assert_eq!(parse_size("-1"), Ok(-1));
    assert_eq!(parse_size("100"), Ok(100));
    assert_eq!(parse_size("10k"), Ok(10 << 10));
    assert_eq!(parse_size("10M"), Ok(10 << 20));
    assert_eq!(parse_size("2G"), Ok(2 << 30));
    assert_eq!(parse_size("1T"), Ok(1 << 40));
    assert!(parse_size("-2").is_err());
    assert!(parse_size("ten").is_err());
    assert!(parse_size("99999999999T").is_err());
    assert_eq!(parse_duration_secs("-1"), Ok(-1));
    assert_eq!(parse_duration_secs("30"), Ok(30));
    assert_eq!(parse_duration_secs("10m"), Ok(600));
    assert_eq!(parse_duration_secs("2d"), Ok(172_800));
    assert_eq!(parse_duration_secs("1w"), Ok(604_800));
    assert!(parse_duration_secs("1y").is_err());
    let r = retention_from_args("-1", "-1").unwrap();
    assert_eq!(
        (r.retention_size_in_mb, r.retention_time_in_minutes),
        (-1, -1)
    );
    let r = retention_from_args("1", "1s").unwrap();
    assert_eq!(
        (r.retention_size_in_mb, r.retention_time_in_minutes),
        (1, 1)
    );
    let r = retention_from_args("0", "0").unwrap();
    assert_eq!(
        (r.retention_size_in_mb, r.retention_time_in_minutes),
        (0, 0)
    );
    assert!(persistence_from_args(2, 3, 1, 0.0).is_err());
    assert!(persistence_from_args(3, 2, 0, 0.0).is_err());
    assert_eq!(
        check_actions(&["Produce".into(), " consume".into(), "produce".into()]).unwrap(),
        ["produce", "consume"]
    );
    assert!(check_actions(&["admin".into()]).is_err());
    assert!(check_actions(&[]).is_err());
}

#[test]
fn errors_render_pulsar_reasons() {
    let e = AdminError::from_response(404, br#"{"reason":"Tenant does not exist"}"#);
    assert_eq!(e.to_string(), "404 Not Found: Tenant does not exist");
    assert_eq!(e.status(), Some(404));
    assert!(!e.is_retryable());
    let e = AdminError::from_response(409, br#"{"reason":"Tenant already exists"}"#);
    assert_eq!(e.to_string(), "409 Conflict: Tenant already exists");
    let e = AdminError::from_response(412, b"");
    assert_eq!(
        e.to_string(),
        "412 Precondition Failed: Precondition Failed"
    );
    let e = AdminError::from_response(503, b"upstream\nbroken");
    assert_eq!(e.to_string(), "503 Service Unavailable: upstream broken");
    assert!(e.is_retryable());
    let long = "x".repeat(2000);
    let e = AdminError::from_response(500, long.as_bytes());
    assert!(e.to_string().len() < 600);
    let e = AdminError::from_response(401, br#"{"message":"HTTP 401 Unauthorized"}"#);
    assert_eq!(e.to_string(), "401 Unauthorized: HTTP 401 Unauthorized");
}

/// One recorded request: method, path, headers (lowercase names), body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A loopback HTTP server answering every request with `(status, headers, body)`, recording
/// what it received. Serves until the test's runtime ends.
async fn fake_server(
    status: u16,
    extra_headers: &'static str,
    body: &'static str,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, content_len) = loop {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + content_len {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let mut lines = head.lines();
            let mut first = lines.next().unwrap().split(' ');
            let method = first.next().unwrap().to_owned();
            let path = first.next().unwrap().to_owned();
            let headers = lines
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            let req_body = String::from_utf8_lossy(&buf[head_end..]).to_string();
            log.lock().push(Seen {
                method,
                path,
                headers,
                body: req_body,
            });
            let reason = status_text(status);
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (url, seen)
}

async fn run_cli(url: &str, args: &[&str]) -> AdminResult<String> {
    let mut v = vec!["--admin-url", url];
    v.extend_from_slice(args);
    execute(&parse(&v).unwrap()).await
}

#[tokio::test]
async fn requests_carry_method_path_token_and_json_body() {
    let (url, seen) = fake_server(204, "", "").await;
    let out = run_cli(
        &url,
        &[
            "--auth-token",
            "secret-token",
            "tenants",
            "create",
            "acme",
            "-r",
            "alice",
            "-c",
            "standalone",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "");
    run_cli(
        &url,
        &[
            "namespaces",
            "set-backlog-quota",
            "acme/ns",
            "-l",
            "1G",
            "-p",
            "producer_request_hold",
        ],
    )
    .await
    .unwrap();
    run_cli(
        &url,
        &[
            "topics",
            "create-partitioned-topic",
            "acme/ns/t 1",
            "-p",
            "3",
        ],
    )
    .await
    .unwrap();
    run_cli(
        &url,
        &[
            "topics",
            "reset-cursor",
            "acme/ns/t",
            "-s",
            "sub/1",
            "-m",
            "3:4",
        ],
    )
    .await
    .unwrap();
    run_cli(&url, &["topics", "delete", "acme/ns/t", "--force"])
        .await
        .unwrap();
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("PUT", "/admin/v2/tenants/acme")
    );
    assert!(
        seen[0]
            .headers
            .contains(&("authorization".into(), "Bearer secret-token".into()))
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap(),
        json!({"adminRoles": ["alice"], "allowedClusters": ["standalone"]})
    );
    assert!(!seen[1].headers.iter().any(|(k, _)| k == "authorization"));
    assert_eq!(
        seen[1].path,
        "/admin/v2/namespaces/acme/ns/backlogQuota?backlogQuotaType=destination_storage"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[1].body).unwrap(),
        json!({"limitSize": 1073741824i64, "limitTime": -1, "policy": "producer_request_hold"})
    );
    assert_eq!(
        (
            seen[2].method.as_str(),
            seen[2].path.as_str(),
            seen[2].body.as_str()
        ),
        ("PUT", "/admin/v2/persistent/acme/ns/t%201/partitions", "3")
    );
    assert_eq!(
        (seen[3].method.as_str(), seen[3].path.as_str()),
        (
            "POST",
            "/admin/v2/persistent/acme/ns/t/subscription/sub%2F1/resetcursor"
        )
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[3].body).unwrap(),
        json!({"ledgerId": 3, "entryId": 4, "partitionIndex": -1})
    );
    assert_eq!(
        (seen[4].method.as_str(), seen[4].path.as_str()),
        ("DELETE", "/admin/v2/persistent/acme/ns/t?force=true")
    );
}

#[tokio::test]
async fn token_file_is_read_and_trimmed() {
    let (url, seen) = fake_server(200, "", "[]").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "file-token\n").unwrap();
    let token_file = path.to_str().unwrap();
    let sent_file_token = |i: usize| {
        seen.lock()[i]
            .headers
            .contains(&("authorization".into(), "Bearer file-token".into()))
    };
    run_cli(&url, &["--auth-token-file", token_file, "tenants", "list"])
        .await
        .unwrap();
    assert!(sent_file_token(0));
    // The file wins over an inline token (e.g. one left in STRATA_AUTH_TOKEN).
    let args = ["--auth-token", "inline", "--auth-token-file", token_file];
    run_cli(&url, &[&args[..], &["tenants", "list"]].concat())
        .await
        .unwrap();
    assert!(sent_file_token(1));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = run_cli(
        &url,
        &[
            "--auth-token-file",
            empty.to_str().unwrap(),
            "tenants",
            "list",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "the auth token is empty");
    let err = run_cli(
        &url,
        &["--auth-token-file", "/nonexistent/t", "tenants", "list"],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot read token file"), "{err}");
}

#[tokio::test]
async fn answers_render_as_table_or_json() {
    let (url, _) = fake_server(200, "", r#"["public","acme"]"#).await;
    assert_eq!(
        run_cli(&url, &["tenants", "list"]).await.unwrap(),
        "public\nacme\n"
    );
    assert_eq!(
        run_cli(&url, &["-o", "json", "tenants", "list"])
            .await
            .unwrap(),
        "[\n  \"public\",\n  \"acme\"\n]\n"
    );
    let (url, _) = fake_server(
        200,
        "",
        r#"{"adminRoles":["a"],"allowedClusters":["standalone"]}"#,
    )
    .await;
    assert_eq!(
        run_cli(&url, &["tenants", "get", "acme"]).await.unwrap(),
        "adminRoles       a\nallowedClusters  standalone\n"
    );
    let (url, _) = fake_server(200, "", r#"{"ledgerId":7,"entryId":9,"partitionIndex":-1}"#).await;
    assert_eq!(
        run_cli(&url, &["topics", "terminate", "x"]).await.unwrap(),
        "Topic successfully terminated. Last message id: 7:9\n"
    );
    let (url, _) = fake_server(200, "", "ok").await;
    assert_eq!(
        run_cli(&url, &["brokers", "healthcheck"]).await.unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn peeked_messages_show_id_properties_and_payload() {
    let (url, seen) = fake_server(
        200,
        "X-Pulsar-Message-ID: 3:0\r\nX-Pulsar-PROPERTY-k: v\r\n",
        "hello",
    )
    .await;
    let out = run_cli(
        &url,
        &["topics", "peek-messages", "t", "-s", "s", "-n", "2"],
    )
    .await
    .unwrap();
    assert!(
        out.starts_with("Message ID: 3:0\nproperty-k: v\nhello\n---"),
        "{out}"
    );
    let seen = seen.lock();
    assert_eq!(
        seen[1].path,
        "/admin/v2/persistent/public/default/t/subscription/s/position/2"
    );
}

#[tokio::test]
async fn errors_become_one_line_messages() {
    let (url, _) = fake_server(
        404,
        "Content-Type: application/json\r\n",
        r#"{"reason":"Tenant does not exist"}"#,
    )
    .await;
    let err = run_cli(&url, &["tenants", "get", "nope"])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "404 Not Found: Tenant does not exist");
    // Nobody listening: a transport error naming the URL.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = run_cli(&format!("http://127.0.0.1:{port}"), &["tenants", "list"])
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach http://127.0.0.1:{port}/admin/v2/tenants"
        )),
        "{err}"
    );
    let err = run_cli("https://127.0.0.1:1", &["tenants", "list"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--tls-ca-file"), "{err}");
    let err = run_cli(&url, &["topics", "stats", "a/b"])
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid topic"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    });
    let c = AdminClient::new(&AdminConfig {
        url,
        timeout: std::time::Duration::from_millis(200),
        ..AdminConfig::default()
    })
    .unwrap();
    let err = c.tenants().await.unwrap_err();
    assert!(matches!(err, AdminError::Timeout(..)), "{err}");
    hold.abort();
}

#[test]
fn peeked_batches_are_split_and_decompressed() {
    use strata_proto::pulsar::{KeyValue, SingleMessageMetadata};
    let mut batch = bytes::BytesMut::new();
    for (i, body) in ["one", "two"].iter().enumerate() {
        let md = SingleMessageMetadata {
            payload_size: body.len() as i32,
            properties: vec![KeyValue {
                key: "i".into(),
                value: i.to_string(),
            }],
            ..Default::default()
        };
        strata_proto::batch::write_batch_message(&mut batch, &md, body.as_bytes());
    }
    let batch = batch.freeze();
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("message-id".to_owned(), "7:3".to_owned());
    headers.insert("num-batch-message".to_owned(), "2".to_owned());
    let plain = RawMessage {
        headers: headers.clone(),
        payload: batch.clone(),
    };
    let msgs = plain.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].id.as_str(), &msgs[0].payload[..]),
        ("7:3:0", &b"one"[..])
    );
    assert_eq!(
        msgs[1].headers.get("property-i").map(String::as_str),
        Some("1")
    );

    let compressed =
        crate::compression::compress(strata_proto::pulsar::CompressionType::Lz4, &batch).unwrap();
    headers.insert("compression".to_owned(), "LZ4".to_owned());
    headers.insert("uncompressed-size".to_owned(), batch.len().to_string());
    let lz4 = RawMessage {
        headers: headers.clone(),
        payload: compressed,
    };
    assert_eq!(lz4.messages()[1].payload, &b"two"[..]);

    // Garbage is shown raw with the reason, never a panic.
    headers.insert("compression".to_owned(), "NONE".to_owned());
    let bad = RawMessage {
        headers,
        payload: bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]),
    };
    let msgs = bad.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].headers.contains_key("decode-error"));
    let out = render_messages_for_test(&[plain]);
    assert!(out.contains("Message ID: 7:3:1\n"), "{out}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_peek_responses_never_panic(
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        n in 0usize..5,
        comp in 0usize..6,
        size in 0usize..1024,
    ) {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("message-id".to_owned(), "1:2".to_owned());
        headers.insert("num-batch-message".to_owned(), n.to_string());
        let kinds = ["NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY", "BOGUS"];
        headers.insert("compression".to_owned(), kinds[comp].to_owned());
        headers.insert("uncompressed-size".to_owned(), size.to_string());
        let m = RawMessage { headers, payload: bytes::Bytes::from(payload) };
        let _ = m.messages();
    }
}

#[test]
fn stats_shapes_keep_what_the_server_sent() {
    let sent = json!({
        "msgRateIn": 1.5,
        "storageSize": 1234,
        "publishers": [{"producerName": "p"}],
        "subscriptions": {"s": {"msgBacklog": 3, "type": "Shared", "isDurable": true, "unackedMessages": 0}},
        "deduplicationStatus": "Disabled"
    });
    let stats: TopicStats = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(stats.storage_size, Some(1234));
    let subs = stats.subscriptions.as_ref().unwrap();
    assert_eq!(subs["s"].msg_backlog, Some(3));
    assert_eq!(subs["s"].sub_type.as_deref(), Some("Shared"));
    assert_eq!(serde_json::to_value(&stats).unwrap(), sent);

    let sent = json!({
        "entriesAddedCounter": 5,
        "lastConfirmedEntry": "3:4",
        "ledgers": [{"ledgerId": 3, "entries": 5, "size": 100, "offloaded": false, "closed": true}],
        "cursors": {"s": {"markDeletePosition": "3:1"}},
        "terminated": false
    });
    let internal: PersistentTopicInternalStats = serde_json::from_value(sent.clone()).unwrap();
    assert_eq!(internal.ledgers.as_ref().unwrap()[0].ledger_id, 3);
    assert_eq!(serde_json::to_value(&internal).unwrap(), sent);
}

#[tokio::test]
async fn dispatch_rate_flags_become_the_policy_body() {
    let (url, seen) = fake_server(204, "", "").await;
    let set = ["namespaces", "set-dispatch-rate", "acme/ns"];
    let flags = ["--msg-dispatch-rate", "5", "--relative-to-publish-rate"];
    run_cli(&url, &[&set[..], &flags[..]].concat())
        .await
        .unwrap();
    let set = ["namespaces", "set-subscription-dispatch-rate", "acme/ns"];
    let flags = ["--byte-dispatch-rate", "7", "--dispatch-rate-period", "2"];
    run_cli(&url, &[&set[..], &flags[..]].concat())
        .await
        .unwrap();
    let seen = seen.lock();
    assert_eq!(seen[0].path, "/admin/v2/namespaces/acme/ns/dispatchRate");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap(),
        json!({"dispatchThrottlingRateInMsg": 5, "dispatchThrottlingRateInByte": -1, "relativeToPublishRate": true, "ratePeriodInSecond": 1})
    );
    assert_eq!(
        seen[1].path,
        "/admin/v2/namespaces/acme/ns/subscriptionDispatchRate"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[1].body).unwrap(),
        json!({"dispatchThrottlingRateInMsg": -1, "dispatchThrottlingRateInByte": 7, "relativeToPublishRate": false, "ratePeriodInSecond": 2})
    );
}
