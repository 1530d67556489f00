//! The admin client over TLS: the server's chain is verified against `--tls-ca-file` and the
//! host name of the URL is checked against the certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

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

/// A TLS server on loopback with a certificate for `localhost` only, answering `[]` to every
/// request. Returns its port.
async fn tls_server(issuer: &CertifiedIssuer<'static, KeyPair>) -> u16 {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "broker");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, issuer).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.pem().as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn client(url: String, ca_file: &std::path::Path) -> AdminClient {
    AdminClient::new(&AdminConfig {
        url,
        token: Some("t".into()),
        tls_ca_file: Some(ca_file.to_owned()),
        timeout: std::time::Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn https_verifies_chain_and_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = ca("strata test ca");
    let rogue = ca("rogue ca");
    let good_pem = dir.path().join("ca.pem");
    let rogue_pem = dir.path().join("rogue.pem");
    std::fs::write(&good_pem, good.pem()).unwrap();
    std::fs::write(&rogue_pem, rogue.pem()).unwrap();
    let port = tls_server(&good).await;

    let ok = client(format!("https://localhost:{port}"), &good_pem);
    assert_eq!(ok.tenants().await.unwrap(), Vec::<String>::new());

    // The certificate names `localhost`, not the IP: the host name check refuses it.
    let wrong_host = client(format!("https://127.0.0.1:{port}"), &good_pem);
    let err = wrong_host.tenants().await.unwrap_err();
    assert!(err.to_string().contains("tls handshake"), "{err}");

    // A chain from another CA is refused.
    let wrong_ca = client(format!("https://localhost:{port}"), &rogue_pem);
    let err = wrong_ca.tenants().await.unwrap_err();
    assert!(err.to_string().contains("tls handshake"), "{err}");

    // A CA file without certificates is a configuration error, before any connection.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = AdminClient::new(&AdminConfig {
        url: format!("https://localhost:{port}"),
        tls_ca_file: Some(empty),
        ..AdminConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, AdminError::Tls(_)), "{err}");
}
