//! TLS in cluster mode: two brokers with TLS ports; the official Python client connects over
//! `pulsar+ssl://` to each broker in turn, and lookups that go to the other broker (the owner,
//! or the leader for an unowned bundle) answer with its `pulsar+ssl://` URL, so the client
//! reaches the owner over TLS with the chain and host name verified.

use std::process::Command;

use super::sandbox::{BrokerOptions, Sandbox};
use crate::harness::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_follow_redirects_to_the_owner_over_tls() {
    let Some(py) = crate::harness::python::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::tls::pki(dir.path());
    let mut sb = Sandbox::start(2).await;
    // tests/python/tls.py checks the cluster name `standalone` over https
    sb.cluster = "standalone".to_owned();
    sb.init_cluster();
    let mut tls_ports = vec![];
    for _ in 0..2 {
        let (tls, https) = (free_port(), free_port());
        tls_ports.push((tls, https));
        let opts = BrokerOptions {
            ensemble_size: 2,
            write_quorum: 2,
            ack_quorum: 2,
            extra_args: vec![
                "--tls-cert-file".into(),
                pki.server_cert.display().to_string(),
                "--tls-key-file".into(),
                pki.server_key.display().to_string(),
                "--broker-port-tls".into(),
                tls.to_string(),
                "--http-port-tls".into(),
                https.to_string(),
            ],
            ..BrokerOptions::default()
        };
        sb.start_brokers(1, opts).await;
    }
    let scripts = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    // Several rounds through each broker: fresh topics are assigned by the leader, so some
    // lookups are answered by redirects to the other broker.
    let mut redirects = 0;
    for round in 0..4 {
        let (tls, https) = tls_ports[round % 2];
        let out = tokio::task::spawn_blocking({
            let (py, scripts, ca) = (py.clone(), scripts.clone(), pki.ca.clone());
            move || {
                Command::new(py)
                    .arg(scripts.join("tls.py"))
                    .arg("plain")
                    .arg(format!("pulsar+ssl://127.0.0.1:{tls}"))
                    .arg(format!("https://127.0.0.1:{https}"))
                    .arg(ca)
                    .current_dir(&scripts)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env("STRATA_PY_LOG", "info")
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "tls.py via broker {} failed:\n{text}\n{}",
            round % 2,
            sb.logs(4000)
        );
        // the C++ client logs the redirect target it connects to
        let other = tls_ports[(round + 1) % 2].0;
        if text.contains(&format!("127.0.0.1:{other}")) {
            redirects += 1;
        }
    }
    eprintln!(
        "RESULT: TLS cluster: 4 rounds, {redirects} went through a redirect to the other broker's TLS port"
    );
}
