//! Several authentication providers at once (tls, token, basic) with an anonymous role, against a
//! real `strata standalone` and the official Python client: each provider's allowed and refused
//! cases on the binary protocol, basic authentication and the anonymous role on HTTP, and no
//! password, token or hash in the broker's log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;

use crate::harness::free_port;
use crate::harness::http::request;
use crate::harness::python::{inline_command, run_for};
use crate::harness::secured::{create_secret_key, create_token};
use crate::harness::standalone::Standalone;

/// `alice` (bcrypt, password `password`) and `admin` (Apache MD5, password `123456`).
const HTPASSWD: &str = "alice:$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe\n\
                        admin:$apr1$FG4AO6aX$KGYPuMoLUou3i6vUkPUUf.\n";

fn upstream_conf(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pulsar-test-conf")
        .join(name)
}

/// An HTTP request with a raw `Authorization` value (or none); returns the status.
fn http_auth(port: u16, path: &str, authorization: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const CASES: &str = r#"
import sys, pulsar
from pulsar import AuthenticationBasic, AuthenticationTLS, AuthenticationToken
plain, tls, conf, token, bad_token, ca = sys.argv[1:7]

def case(name, url, topic, **kw):
    client = pulsar.Client(url, operation_timeout_seconds=5, **kw)
    try:
        c = client.subscribe(topic, 's')
        p = client.create_producer(topic)
        p.send(b'hi')
        assert c.receive(5000).data() == b'hi'
        print(name, 'ok', flush=True)
    except Exception as e:
        print(name, 'err', type(e).__name__, flush=True)
    finally:
        client.close()

acme = 'persistent://acme/ns/t'
case('basic_alice', plain, acme, authentication=AuthenticationBasic('alice', 'password'))
case('basic_wrong_password', plain, acme, authentication=AuthenticationBasic('alice', 'passw0rd'))
case('basic_unknown_user', plain, acme, authentication=AuthenticationBasic('mallory', 'password'))
case('basic_apr1_superuser', plain, acme, authentication=AuthenticationBasic('admin', '123456'))
case('token_alice', plain, acme, authentication=AuthenticationToken(token))
case('token_forged', plain, acme, authentication=AuthenticationToken(bad_token))
case('anonymous_open', plain, 'persistent://acme/open/t')
case('anonymous_closed', plain, acme)
case('unknown_method_is_anonymous', plain, acme,
     authentication=AuthenticationBasic('alice', 'password', 'unknown'))
case('tls_v3_cert', tls, acme, tls_trust_certs_file_path=ca,
     authentication=AuthenticationTLS(conf + '/client.pem', conf + '/client.key'))
case('tls_v1_cert', tls, acme, tls_trust_certs_file_path=ca,
     authentication=AuthenticationTLS(conf + '/client-cert.pem', conf + '/client-key.pem'))
case('tls_without_tls', plain, acme,
     authentication=AuthenticationTLS(conf + '/client.pem', conf + '/client.key'))
"#;

#[test]
fn tls_token_and_basic_providers_with_an_anonymous_role() {
    let Some(py) = crate::harness::python::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::pki(dir.path());
    // Trust both our CA (v3 client certificate `tls-admin`) and Pulsar's test CA (v1 `admin`).
    let trust = dir.path().join("trust.pem");
    let mut both = std::fs::read_to_string(&pki.ca).unwrap();
    both.push_str(&std::fs::read_to_string(upstream_conf("cacert.pem")).unwrap());
    std::fs::write(&trust, both).unwrap();
    for f in ["client-cert.pem", "client-key.pem"] {
        std::fs::copy(upstream_conf(f), dir.path().join(f)).unwrap();
    }
    let htpasswd = dir.path().join(".htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let key = dir.path().join("secret.key");
    create_secret_key(&key);
    let other_key = dir.path().join("other.key");
    create_secret_key(&other_key);
    let (tls_port, https_port) = (free_port(), free_port());
    let p = |p: &PathBuf| p.display().to_string();
    let node = Standalone::start_with(
        &[
            "--authentication-providers".to_owned(),
            "tls,token,basic".into(),
            "--anonymous-user-role".into(),
            "anonymous".into(),
            "--auth-token-secret-key-file".into(),
            p(&key),
            "--basic-auth-conf".into(),
            p(&htpasswd),
            "--superuser-roles".into(),
            "admin,superuser".into(),
            "--tls-cert-file".into(),
            p(&pki.server_cert),
            "--tls-key-file".into(),
            p(&pki.server_key),
            "--tls-trust-certs-file".into(),
            p(&trust),
            "--broker-port-tls".into(),
            tls_port.to_string(),
            "--http-port-tls".into(),
            https_port.to_string(),
        ],
        &[tls_port, https_port],
    );
    let su = create_token(&key, "superuser", None);
    let admin = |method: &str, path: &str, body: &str| {
        let (st, _, b) = request(node.http_port, method, path, body, Some(&su));
        assert!((200..300).contains(&st), "{method} {path}: {st} {b}");
    };
    admin("PUT", "/admin/v2/tenants/acme", r#"{"adminRoles": []}"#);
    admin(
        "PUT",
        "/admin/v2/namespaces/acme/ns",
        r#"{"auth_policies": {"namespace_auth": {"alice": ["produce", "consume"],
            "tls-admin": ["produce", "consume"]}}}"#,
    );
    admin(
        "PUT",
        "/admin/v2/namespaces/acme/open",
        r#"{"auth_policies": {"namespace_auth": {"anonymous": ["produce", "consume"]}}}"#,
    );

    let alice_token = create_token(&key, "alice", None);
    let forged = create_token(&other_key, "alice", None);
    let mut cmd = inline_command(&py, CASES);
    cmd.arg(node.url())
        .arg(format!("pulsar+ssl://localhost:{tls_port}"))
        .arg(dir.path())
        .arg(&alice_token)
        .arg(&forged)
        .arg(&pki.ca);
    // pki wrote its client certificate (CN tls-admin) as client.pem / client.key in `dir`
    assert_eq!(pki.client_cert, dir.path().join("client.pem"));
    let out = run_for(&mut cmd, Duration::from_secs(240));
    let text = out.text();
    let result = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no result for {name}:\n{text}\n{}", node.log_tail()))
            .to_owned()
    };
    for ok in [
        "basic_alice",
        "basic_apr1_superuser",
        "token_alice",
        "anonymous_open",
        "tls_v3_cert",
        "tls_v1_cert",
    ] {
        assert_eq!(result(ok), "ok", "{ok}:\n{text}\n{}", node.log_tail());
    }
    for (refused, err) in [
        ("basic_wrong_password", "ConnectError"),
        ("basic_unknown_user", "ConnectError"),
        ("token_forged", "ConnectError"),
        ("anonymous_closed", "AuthorizationError"),
        ("unknown_method_is_anonymous", "AuthorizationError"),
        ("tls_without_tls", "ConnectError"),
    ] {
        let r = result(refused);
        assert!(r.starts_with("err"), "{refused} was allowed:\n{text}");
        // The C++ client retries a connection the broker refused at CONNECT until its
        // operation timeout (Pulsar answers the same way); over HTTP lookups it is ConnectError.
        assert!(
            r.contains(err) || r.contains("AuthenticationError") || r.contains("Timeout"),
            "{refused}: {r}"
        );
    }

    // HTTP: Basic credentials, the anonymous role, and refusals.
    let basic = |u: &str, pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))
        )
    };
    let ns = "/admin/v2/namespaces/acme/ns/topics";
    assert_eq!(
        http_auth(node.http_port, ns, Some(&basic("alice", "password"))),
        200
    );
    assert_eq!(
        http_auth(node.http_port, ns, Some(&basic("alice", "nope"))),
        401
    );
    assert_eq!(http_auth(node.http_port, ns, Some("Digest abc")), 401);
    // anonymous: allowed where granted, refused elsewhere (never downgraded from bad credentials)
    assert_eq!(
        http_auth(
            node.http_port,
            "/admin/v2/namespaces/acme/open/topics",
            None
        ),
        200
    );
    // (a refusal is a 401 too, as Pulsar)
    assert_eq!(http_auth(node.http_port, ns, None), 401);
    assert_eq!(
        http_auth(node.http_port, "/metrics", Some(&basic("admin", "123456"))),
        200
    );

    // No secret in the log: passwords, tokens, hashes.
    let log = node.log();
    for secret in [
        "passw0rd",
        "FG4AO6aX",
        alice_token.as_str(),
        forged.as_str(),
        su.as_str(),
    ] {
        assert!(
            !log.contains(secret),
            "the log contains a secret ({secret})"
        );
    }
    assert!(log.contains("authentication failed"), "{}", node.log_tail());
}
