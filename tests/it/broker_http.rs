//! The broker's HTTP port on a real `strata standalone`: REST lookup, partitioned-topic admin,
//! namespace topic list, schemas, termination and `/metrics` with Pulsar metric names.

use crate::harness::http::http;
use crate::harness::standalone::Standalone;

#[test]
fn lookup_admin_schema_and_metrics_endpoints() {
    let node = Standalone::start();
    let hp = node.http_port;

    let (st, body) = http(
        hp,
        "GET",
        "/lookup/v2/topic/persistent/public/default/h1",
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains(&format!(
            "\"brokerUrl\":\"pulsar://127.0.0.1:{}\"",
            node.broker_port
        )),
        "{body}"
    );

    let (st, body) = http(
        hp,
        "GET",
        "/admin/v2/persistent/public/default/h1/partitions",
        "",
    );
    assert_eq!(
        (st, body.contains("\"partitions\":0")),
        (200, true),
        "{body}"
    );
    let (st, body) = http(
        hp,
        "PUT",
        "/admin/v2/persistent/public/default/p4/partitions",
        "4",
    );
    assert_eq!(st, 204, "{body}");
    let (st, body) = http(
        hp,
        "PUT",
        "/admin/v2/persistent/public/default/p4/partitions",
        "4",
    );
    assert_eq!(st, 409, "creating twice must fail: {body}");
    let (_, body) = http(
        hp,
        "GET",
        "/admin/v2/persistent/public/default/p4/partitions",
        "",
    );
    assert!(body.contains("\"partitions\":4"), "{body}");
    let (_, body) = http(hp, "GET", "/admin/v2/namespaces/public/default/topics", "");
    for i in 0..4 {
        assert!(
            body.contains(&format!("persistent://public/default/p4-partition-{i}")),
            "{body}"
        );
    }
    let (st, _) = http(
        hp,
        "GET",
        "/lookup/v2/topic/persistent/public/default/bad%2Fname",
        "",
    );
    assert_ne!(st, 200);

    let (st, _) = http(hp, "GET", "/admin/v2/schemas/public/default/h1/schema", "");
    assert_eq!(st, 404);
    let schema = r#"{"type":"JSON","schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}","properties":{}}"#;
    let (st, body) = http(
        hp,
        "POST",
        "/admin/v2/schemas/public/default/h1/schema",
        schema,
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(hp, "GET", "/admin/v2/schemas/public/default/h1/schema", "");
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains("\"type\":\"JSON\"") && body.contains("\"version\":0"),
        "{body}"
    );

    let (st, _) = http(
        hp,
        "POST",
        "/admin/v2/persistent/public/default/nope/terminate",
        "",
    );
    assert_eq!(st, 404, "terminating a topic that does not exist");
    let (st, body) = http(hp, "PUT", "/admin/v2/persistent/public/default/term", "");
    assert_eq!(st, 204, "{body}");
    let (st, body) = http(
        hp,
        "POST",
        "/admin/v2/persistent/public/default/term/terminate",
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"ledgerId\""), "{body}");

    let (st, body) = http(
        hp,
        "GET",
        "/admin/v2/persistent/public/default/term/stats",
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"terminated\":true"), "{body}");
    let (st, body) = http(
        hp,
        "GET",
        "/admin/v2/persistent/public/default/term/internalStats",
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"lastConfirmedEntry\""), "{body}");

    let (st, body) = http(hp, "GET", "/metrics", "");
    assert_eq!(st, 200);
    for name in [
        "pulsar_in_messages_total",
        "pulsar_out_messages_total",
        "pulsar_producers_count",
        "pulsar_consumers_count",
        "pulsar_storage_size",
        "pulsar_msg_backlog",
        "bookkeeper_client_add_entry_failures_total",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
}
