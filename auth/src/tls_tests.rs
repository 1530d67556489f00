use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    rogue_ca: PathBuf,
    rogue_client_cert: PathBuf,
    rogue_client_key: PathBuf,
}

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
    p.distinguished_name
        .push(DnType::OrganizationName, "strata tests");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![eku];
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, s: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        p
    };
    let good = ca("strata test ca");
    let rogue = ca("rogue ca");
    let (sc, sk) = leaf(
        &good,
        "broker",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (cc, ck) = leaf(&good, "alice", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let (rc, rk) = leaf(&rogue, "root", &[], ExtendedKeyUsagePurpose::ClientAuth);
    // the server presents its chain: leaf then CA
    let chain = format!("{sc}{}", good.pem());
    Pki {
        ca: w("ca.pem", &good.pem()),
        server_cert: w("server.pem", &chain),
        server_key: w("server.key", &sk),
        client_cert: w("client.pem", &cc),
        client_key: w("client.key", &ck),
        rogue_ca: w("rogue-ca.pem", &rogue.pem()),
        rogue_client_cert: w("rogue-client.pem", &rc),
        rogue_client_key: w("rogue-client.key", &rk),
        _dir: dir,
    }
}

/// One TLS connection over loopback TCP: the client sends "hello", the server echoes it.
/// Returns (server side: client role or error, client side: echoed text or error).
async fn exchange(
    server: &ServerTls,
    client: &ClientTls,
    name: &str,
) -> (Result<Option<String>, String>, Result<String, String>) {
    let acceptor = server.acceptor().unwrap();
    let connector = client.connector().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let role = client_role(&tls);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(role)
    });
    let sn = server_name(name).unwrap();
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(sn, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&buf).into_owned())
    };
    let c = tokio::time::timeout(Duration::from_secs(10), client_side)
        .await
        .unwrap_or_else(|_| Err("client timed out".into()));
    let s = match tokio::time::timeout(Duration::from_secs(10), server_task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("server timed out".into()),
    };
    (s, c)
}

#[tokio::test]
async fn tls_with_ca_and_hostname_check() {
    let p = pki();
    let server = ServerTls::new(&p.server_cert, &p.server_key);
    let client = ClientTls::new(&p.ca);
    for name in ["localhost", "127.0.0.1"] {
        let (s, c) = exchange(&server, &client, name).await;
        assert_eq!(s, Ok(None), "{name}");
        assert_eq!(c.as_deref(), Ok("hello"), "{name}");
    }
    // wrong host name
    let (_, c) = exchange(&server, &client, "broker.example.com").await;
    assert!(c.unwrap_err().contains("certificate"));
    // server signed by a CA the client does not trust
    let (_, c) = exchange(&server, &ClientTls::new(&p.rogue_ca), "localhost").await;
    assert!(c.unwrap_err().contains("certificate"));
}

#[tokio::test]
async fn mtls_required_gives_the_client_role() {
    let p = pki();
    let server = ServerTls::new(&p.server_cert, &p.server_key)
        .with_client_auth(ClientAuth::Required(p.ca.clone()));
    let good = ClientTls::new(&p.ca).with_identity(&p.client_cert, &p.client_key);
    let (s, c) = exchange(&server, &good, "localhost").await;
    assert_eq!(s, Ok(Some("alice".to_string())));
    assert_eq!(c.as_deref(), Ok("hello"));
    // no certificate: refused
    let (s, c) = exchange(&server, &ClientTls::new(&p.ca), "localhost").await;
    assert!(s.is_err() && c.is_err(), "{s:?} {c:?}");
    // a certificate from another CA claiming CN=root: refused
    let rogue = ClientTls::new(&p.ca).with_identity(&p.rogue_client_cert, &p.rogue_client_key);
    let (s, c) = exchange(&server, &rogue, "localhost").await;
    assert!(s.is_err() && c.is_err(), "{s:?} {c:?}");
}

#[tokio::test]
async fn mtls_optional_accepts_anonymous_but_verifies_presented_certs() {
    let p = pki();
    let server = ServerTls::new(&p.server_cert, &p.server_key)
        .with_client_auth(ClientAuth::Optional(p.ca.clone()))
        .with_alpn(vec![b"http/1.1".to_vec()]);
    let (s, c) = exchange(&server, &ClientTls::new(&p.ca), "localhost").await;
    assert_eq!(s, Ok(None));
    assert_eq!(c.as_deref(), Ok("hello"));
    let good = ClientTls::new(&p.ca).with_identity(&p.client_cert, &p.client_key);
    assert_eq!(
        exchange(&server, &good, "localhost").await.0,
        Ok(Some("alice".into()))
    );
    let rogue = ClientTls::new(&p.ca).with_identity(&p.rogue_client_cert, &p.rogue_client_key);
    assert!(exchange(&server, &rogue, "localhost").await.0.is_err());
}

#[test]
fn configuration_errors() {
    let p = pki();
    let missing = p.ca.with_file_name("missing.pem");
    assert!(matches!(
        ServerTls::new(&missing, &p.server_key).server_config(),
        Err(TlsError::Read { .. })
    ));
    // a key file given as the certificate and vice versa
    assert!(matches!(
        ServerTls::new(&p.server_key, &p.server_key).server_config(),
        Err(TlsError::NoCertificate(_))
    ));
    assert!(matches!(
        ServerTls::new(&p.server_cert, &p.server_cert).server_config(),
        Err(TlsError::NoPrivateKey(_))
    ));
    // key of another certificate
    assert!(
        ServerTls::new(&p.server_cert, &p.client_key)
            .server_config()
            .is_err()
    );
    // CA file with no certificate
    let r = ServerTls::new(&p.server_cert, &p.server_key)
        .with_client_auth(ClientAuth::Required(p.server_key.clone()))
        .server_config();
    assert!(matches!(r, Err(TlsError::NoCertificate(_))));
    assert!(ClientTls::new(&p.server_key).client_config().is_err());
    assert!(server_name("not a host!").is_err());
    assert!(server_name("[::1]").is_ok());
    // errors do not print key material
    let e = ServerTls::new(&p.server_cert, &p.server_cert)
        .server_config()
        .unwrap_err();
    assert!(!e.to_string().contains("BEGIN"), "{e}");
}

#[test]
fn common_name_extraction() {
    let p = pki();
    let der = |path: &PathBuf| load_certs(path).unwrap().remove(0);
    assert_eq!(
        certificate_common_name(der(&p.client_cert).as_ref()).as_deref(),
        Some("alice")
    );
    assert_eq!(
        certificate_common_name(der(&p.server_cert).as_ref()).as_deref(),
        Some("broker")
    );
    assert_eq!(
        certificate_common_name(der(&p.ca).as_ref()).as_deref(),
        Some("strata test ca")
    );
    assert_eq!(certificate_common_name(b""), None);
    assert_eq!(certificate_common_name(&[0x30, 0x00]), None);
}

proptest! {
    #[test]
    fn common_name_never_panics(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = certificate_common_name(&b);
        let _ = certs_from_pem(&b, std::path::Path::new("<mem>"));
        let _ = key_from_pem(&b, std::path::Path::new("<mem>"));
    }
}

/// Pulsar's test CA and its X.509 v1 client certificate (CN `admin`), as the official clients'
/// suites ship them (see tests/data/pulsar-test-conf/README.md).
fn pulsar_test_conf(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/pulsar-test-conf")
        .join(name)
}

#[test]
fn x509_v1_client_certificates_are_verified_against_the_ca() {
    use rustls::pki_types::UnixTime;
    use rustls::server::danger::ClientCertVerifier;

    let p = pki();
    let leaf = load_certs(&pulsar_test_conf("client-cert.pem"))
        .unwrap()
        .remove(0);
    let verifier = |ca_files: &[PathBuf]| {
        let mut anchors = Vec::new();
        for f in ca_files {
            anchors.extend(load_certs(f).unwrap());
        }
        let roots = Arc::new(roots_from_certs(anchors.clone()).unwrap());
        let inner = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap();
        crate::tls_verifier::V1TolerantVerifier::new(inner.clone(), anchors)
    };
    let now = UnixTime::now();
    // webpki alone refuses a v1 certificate
    let both = verifier(&[p.ca.clone(), pulsar_test_conf("cacert.pem")]);
    // its CA signed it: accepted, and its CN is the role
    assert!(both.verify_client_cert(&leaf, &[], now).is_ok());
    assert_eq!(
        certificate_common_name(leaf.as_ref()).as_deref(),
        Some("admin")
    );
    // a CA that did not sign it: refused
    let ours = verifier(std::slice::from_ref(&p.ca));
    assert!(ours.verify_client_cert(&leaf, &[], now).is_err());
    // past its validity (2041): refused
    let later = UnixTime::since_unix_epoch(Duration::from_secs(2_500_000_000));
    assert!(both.verify_client_cert(&leaf, &[], later).is_err());
    // v3 certificates go through webpki unchanged
    let v3 = load_certs(&p.client_cert).unwrap().remove(0);
    assert!(both.verify_client_cert(&v3, &[], now).is_ok());
    let rogue = load_certs(&p.rogue_client_cert).unwrap().remove(0);
    assert!(both.verify_client_cert(&rogue, &[], now).is_err());
}
