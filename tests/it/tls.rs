//! TLS on both ports of a real `strata standalone`, with the official Python client:
//! - server TLS: `pulsar+ssl://` produce/consume and `https://` admin with the CA and hostname
//!   verification; a client trusting another CA is refused on both ports;
//! - mTLS with authentication on: a client certificate whose CN is a superuser role produces,
//!   consumes and calls the admin API; a client with neither certificate nor token is refused.
//!
//! Certificates are made by the test (rcgen): a CA, a server certificate for 127.0.0.1 and
//! localhost, a client certificate with CN `tls-admin`, and an unrelated CA.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::harness::python::{python, python_command, run_for};
use crate::harness::secured::create_secret_key;
use crate::harness::standalone::Standalone;
use crate::harness::{free_port, strata_bin};

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![eku];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub(crate) struct Pki {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub(crate) fn pki(dir: &Path) -> Pki {
    let w = |name: &str, s: &str| {
        let p = dir.join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let root = ca("strata test CA");
    let other = ca("someone else's CA");
    let (sc, sk) = leaf(
        &root,
        "localhost",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cc, ck) = leaf(&root, "tls-admin", &[], ExtendedKeyUsagePurpose::ClientAuth);
    Pki {
        ca: w("ca.pem", &root.pem()),
        other_ca: w("other-ca.pem", &other.pem()),
        server_cert: w("server.pem", &sc),
        server_key: w("server.key", &sk),
        client_cert: w("client.pem", &cc),
        client_key: w("client.key", &ck),
    }
}

/// A standalone with TLS on both ports (and, with `mtls`, client certificates required and
/// token authentication on, superuser role `tls-admin`).
struct Node {
    node: Standalone,
    tls_port: u16,
    https_port: u16,
    /// The certificates, in a directory that lives as long as the node.
    pki: Pki,
    _dir: tempfile::TempDir,
}

/// Skips (`None`) without Python; otherwise makes a PKI in a fresh directory and starts a
/// standalone with it.
fn start(mtls: bool) -> Option<(PathBuf, Node)> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls_port, https_port) = (free_port(), free_port());
    let mut args: Vec<OsString> = vec![
        "--broker-port-tls".into(),
        tls_port.to_string().into(),
        "--http-port-tls".into(),
        https_port.to_string().into(),
        "--tls-cert-file".into(),
        pki.server_cert.clone().into(),
        "--tls-key-file".into(),
        pki.server_key.clone().into(),
    ];
    if mtls {
        let key = dir.path().join("secret.key");
        create_secret_key(&key);
        args.extend([
            "--tls-trust-certs-file".into(),
            pki.ca.clone().into(),
            "--auth-token-secret-key-file".into(),
            key.into(),
            "--superuser-roles".into(),
            "tls-admin".into(),
        ]);
    }
    let node = Standalone::start_with(&args, &[tls_port, https_port]);
    let node = Node {
        node,
        tls_port,
        https_port,
        pki,
        _dir: dir,
    };
    Some((py, node))
}

impl Node {
    /// Runs the `strata` binary with `args`; returns (success, stdout + stderr).
    fn strata(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(strata_bin())
            .args(args)
            .env("STRATA_LOG", "warn")
            .env_remove("STRATA_AUTH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `strata produce TOPIC -u pulsar+ssl://... -m hi FLAGS...`; returns (success, output).
    fn produce(&self, topic: &str, flags: &[&str]) -> (bool, String) {
        let url = self.tls_url();
        let mut args = vec!["produce", topic, "-u", &url, "-m", "hi"];
        args.extend_from_slice(flags);
        self.strata(&args)
    }

    fn tls_url(&self) -> String {
        format!("pulsar+ssl://127.0.0.1:{}", self.tls_port)
    }

    fn script(&self, py: &Path, mode: &str, ca: &Path, identity: Option<(&Path, &Path)>) {
        let mut cmd = python_command(py, "tls.py");
        cmd.arg(mode)
            .arg(self.tls_url())
            .arg(format!("https://127.0.0.1:{}", self.https_port))
            .arg(ca);
        if let Some((c, k)) = identity {
            cmd.arg(c).arg(k);
        }
        let out = run_for(&mut cmd, Duration::from_secs(90));
        let text = out.text();
        println!("tls.py {mode}:\n{text}");
        let tail: String = {
            let l = self.node.log();
            l[l.len().saturating_sub(4000)..].to_owned()
        };
        assert!(
            out.success(),
            "tls.py {mode} failed:\n{text}\n--- broker log tail ---\n{tail}"
        );
    }
}

#[test]
fn tls_ports_serve_the_official_client_and_refuse_untrusted_servers() {
    let Some((py, node)) = start(false) else {
        return;
    };
    let pki = &node.pki;
    node.script(&py, "plain", &pki.ca, None);
    node.script(&py, "untrusted", &pki.other_ca, None);

    // Our own clients: `strata produce` over pulsar+ssl:// and `strata admin` over https://
    // verify the chain against the CA given.
    let ca = pki.ca.to_str().unwrap();
    let (ok, out) = node.produce("tls-cli", &["--tls-ca-file", ca, "-n", "3"]);
    assert!(ok, "strata produce over TLS: {out}");
    let other = pki.other_ca.to_str().unwrap();
    let (ok, out) = node.produce("tls-cli", &["--tls-ca-file", other]);
    assert!(
        !ok && out.to_lowercase().contains("tls"),
        "untrusted server accepted: {out}"
    );
    let (ok, out) = node.produce("tls-cli", &[]);
    assert!(!ok && out.contains("--tls-ca-file"), "no CA given: {out}");
    let https = format!("https://127.0.0.1:{}", node.https_port);
    let (ok, out) = node.strata(&[
        "admin",
        "--admin-url",
        &https,
        "--tls-ca-file",
        ca,
        "topics",
        "stats",
        "persistent://public/default/tls-cli",
    ]);
    assert!(
        ok && out.contains("msgInCounter"),
        "strata admin over https: {out}"
    );
}

#[test]
fn mtls_client_certificate_is_the_role() {
    let Some((py, node)) = start(true) else {
        return;
    };
    let identity = (
        node.pki.client_cert.as_path(),
        node.pki.client_key.as_path(),
    );
    node.script(&py, "mtls", &node.pki.ca, Some(identity));
    node.script(&py, "no-cert", &node.pki.ca, None);

    // `strata produce` with the client certificate authenticates as its CN (a superuser here);
    // without it, it is refused.
    let ca = node.pki.ca.to_str().unwrap();
    let (cert, key) = (
        node.pki.client_cert.to_str().unwrap(),
        node.pki.client_key.to_str().unwrap(),
    );
    let with_cert = [
        "--tls-ca-file",
        ca,
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
    ];
    let (ok, out) = node.produce("mtls-cli", &with_cert);
    assert!(ok, "strata produce with a client certificate: {out}");
    let (ok, out) = node.produce("mtls-cli", &["--tls-ca-file", ca]);
    assert!(!ok, "anonymous producer accepted: {out}");
}
