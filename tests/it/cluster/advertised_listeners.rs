//! Advertised listeners in a 2-broker cluster: each broker advertises an `internal` listener
//! (`pulsar://127.0.0.1:port`, its own URL) and an `external` one (`pulsar://localhost:port`).
//! A LOOKUP naming `external` is answered with the external URL of the owner (Connect) or of
//! the broker to ask next (Redirect); one naming no listener with the internal URL; an unknown
//! listener with `ServiceNotReady`, as Pulsar answers (HTTP lookups with `listenerName` alike,
//! 503 for an unknown one). Then the official Python client with
//! `listener_name='external'` produces and consumes through both brokers.

use strata_proto::commands;
use strata_proto::frame::Frame;
use strata_proto::pulsar::base_command::Type;
use strata_proto::pulsar::command_lookup_topic_response::LookupType;
use strata_proto::pulsar::{CommandLookupTopicResponse, ServerError};

use super::sandbox::{BrokerOptions, Sandbox};
use crate::broker_badinput::Raw;
use crate::harness::http::request;

fn lookup(
    port: u16,
    topic: &str,
    listener: Option<&str>,
    auth: bool,
) -> CommandLookupTopicResponse {
    let mut r = Raw::connected(port);
    let mut cmd = commands::lookup(1, topic, auth);
    if let Some(l) = cmd.lookup_topic.as_mut() {
        l.advertised_listener_name = listener.map(str::to_owned);
    }
    r.send(&Frame::simple(cmd));
    loop {
        let f = r.recv().expect("lookup answer");
        if f.command.r#type == Type::LookupResponse as i32 {
            return *f.command.lookup_topic_response.expect("lookup body");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_answer_the_requested_listener_of_the_owner() {
    let mut sb = Sandbox::start(2).await;
    sb.init_cluster();
    let opts = BrokerOptions {
        ensemble_size: 2,
        write_quorum: 2,
        ack_quorum: 2,
        extra_args: vec![
            "--advertised-listeners".into(),
            "internal:pulsar://127.0.0.1:{broker_port},external:pulsar://localhost:{broker_port}"
                .into(),
            "--internal-listener-name".into(),
            "internal".into(),
        ],
        ..BrokerOptions::default()
    };
    sb.start_brokers(2, opts).await;
    let ports: Vec<u16> = sb.brokers.iter().map(|b| b.broker_port).collect();
    let http_port = sb.brokers[0].http_port;
    let (local, remote) = tokio::task::spawn_blocking({
        let ports = ports.clone();
        move || {
            let (mut local, mut remote) = (0, 0);
            for i in 0..24 {
                let topic = format!("persistent://public/default/listeners-{i}");
                let a = lookup(ports[0], &topic, Some("external"), false);
                let url = a.broker_service_url.clone().unwrap_or_default();
                match a.response() {
                    LookupType::Connect => {
                        assert_eq!(url, format!("pulsar://localhost:{}", ports[0]), "{a:?}");
                        local += 1;
                    }
                    LookupType::Redirect => {
                        let to = if url.ends_with(&format!(":{}", ports[0])) {
                            ports[0]
                        } else {
                            ports[1]
                        };
                        assert_eq!(url, format!("pulsar://localhost:{to}"), "{a:?}");
                        // follow the redirect as a client does
                        let b = lookup(to, &topic, Some("external"), true);
                        assert_eq!(b.response(), LookupType::Connect, "{b:?}");
                        assert!(
                            b.broker_service_url
                                .as_deref()
                                .unwrap_or_default()
                                .starts_with("pulsar://localhost:"),
                            "{b:?}"
                        );
                        if b.broker_service_url.as_deref()
                            == Some(&format!("pulsar://localhost:{}", ports[1]))
                        {
                            remote += 1;
                        } else {
                            local += 1;
                        }
                    }
                    other => panic!("lookup answered {other:?}: {a:?}"),
                }
                // no listener named: the internal listener, the broker's own URL
                let plain = lookup(ports[0], &topic, None, false);
                let u = plain.broker_service_url.unwrap_or_default();
                assert!(u.starts_with("pulsar://127.0.0.1:"), "{u}");
                // a listener no broker has
                let bad = lookup(ports[0], &topic, Some("nope"), false);
                assert_eq!(bad.response(), LookupType::Failed, "{bad:?}");
                assert_eq!(bad.error(), ServerError::ServiceNotReady, "{bad:?}");
                assert!(bad.message.unwrap_or_default().contains("nope"));
                // the same over HTTP (`listenerName`, as Pulsar's Java client sends it)
                let path = format!("/lookup/v2/topic/persistent/public/default/listeners-{i}");
                let (st, _, body) = request(
                    http_port,
                    "GET",
                    &format!("{path}?listenerName=external"),
                    "",
                    None,
                );
                assert_eq!(st, 200, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let broker_url = v["brokerUrl"].as_str().unwrap_or_default();
                assert!(broker_url.starts_with("pulsar://localhost:"), "{body}");
                let (st, _, body) = request(
                    http_port,
                    "GET",
                    &format!("{path}?listenerName=nope"),
                    "",
                    None,
                );
                assert_eq!(st, 503, "{body}");
            }
            (local, remote)
        }
    })
    .await
    .unwrap();
    assert!(
        local > 0 && remote > 0,
        "local {local}, remote {remote}: both brokers own topics"
    );

    // The official client follows the external listener through both brokers.
    let Some(py) = crate::harness::python::python() else {
        return;
    };
    let code = r#"
import sys, pulsar
client = pulsar.Client(sys.argv[1], listener_name='external', operation_timeout_seconds=20)
for i in range(6):
    t = 'persistent://public/default/listeners-py-%d' % i
    c = client.subscribe(t, 's')
    p = client.create_producer(t)
    p.send(b'm%d' % i)
    m = c.receive(10000)
    assert m.data() == b'm%d' % i, m.data()
    c.acknowledge(m)
client.close()
print('ok')
"#;
    let url = format!("pulsar://127.0.0.1:{}", ports[0]);
    let out = tokio::task::spawn_blocking(move || {
        crate::harness::python::inline_command(&py, code)
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        sb.logs(4000)
    );
}
