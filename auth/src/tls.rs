//! TLS for both broker ports (rustls with the ring provider, through tokio-rustls).
//!
//! - [`ServerTls`]: certificate chain + private key (PEM files), optional mTLS: client
//!   certificates verified against a CA (required, or optional with
//!   [`ClientAuth::Optional`]). [`ServerTls::acceptor`] gives a [`TlsAcceptor`] to wrap around
//!   each accepted `TcpStream` of the Pulsar port and the HTTP port (serve hyper/axum on the
//!   resulting stream).
//! - [`client_role`]: the common name (CN) of a *verified* client certificate, usable as the
//!   connection's role (Pulsar's `AuthenticationProviderTls`).
//! - [`ClientTls`]: a client configuration that verifies the server's chain against a CA and
//!   checks the host name (always: there is no switch to turn it off), optionally presenting
//!   a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS configuration errors (start-up errors).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No certificate in a PEM file.
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    /// No private key in a PEM file.
    #[error("no private key found in {0}")]
    NoPrivateKey(PathBuf),
    /// The PEM is malformed.
    #[error("malformed PEM in {path}: {reason}")]
    Pem {
        /// The path (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. an empty CA file).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// Not a valid DNS name or IP address.
    #[error("invalid server name {0}")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of a PEM file (leaf first for a chain).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from_pem(&read(path)?, path)
}

/// Certificates of PEM bytes.
pub fn certs_from_pem(pem: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: origin.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(origin.to_owned()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    key_from_pem(&read(path)?, path)
}

/// The first private key of PEM bytes.
pub fn key_from_pem(pem: &[u8], origin: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey(origin.to_owned()),
        e => TlsError::Pem {
            path: origin.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// A root store of every certificate in a PEM file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    roots_from_pem(&read(path)?, path)
}

/// A root store of PEM bytes.
pub fn roots_from_pem(pem: &[u8], origin: &Path) -> Result<RootCertStore, TlsError> {
    roots_from_certs(certs_from_pem(pem, origin)?)
}

fn roots_from_certs(certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c)?;
    }
    Ok(roots)
}

/// Whether and how clients authenticate with certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates (tokens authenticate).
    None,
    /// A client certificate signed by this CA is required (mTLS).
    Required(PathBuf),
    /// A client may present a certificate, which must then be signed by this CA.
    Optional(PathBuf),
}

/// The server side of TLS for one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM private key of the leaf.
    pub private_key: PathBuf,
    /// Client certificates.
    pub client_auth: ClientAuth,
    /// ALPN protocols to offer (e.g. `http/1.1` on the HTTP port); empty: none.
    pub alpn: Vec<Vec<u8>>,
}

impl ServerTls {
    /// Server TLS without client certificates.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            client_auth: ClientAuth::None,
            alpn: Vec::new(),
        }
    }

    /// With client certificates.
    pub fn with_client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// With ALPN protocols.
    pub fn with_alpn(mut self, alpn: Vec<Vec<u8>>) -> Self {
        self.alpn = alpn;
        self
    }

    /// The rustls configuration (reads the files: call at start-up).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certs = load_certs(&self.cert_chain)?;
        let key = load_private_key(&self.private_key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Required(ca) | ClientAuth::Optional(ca) => {
                let anchors = load_certs(ca)?;
                let roots = Arc::new(roots_from_certs(anchors.clone())?);
                let b = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let b = if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    b.allow_unauthenticated()
                } else {
                    b
                };
                let verifier = b.build().map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(Arc::new(
                    crate::tls_verifier::V1TolerantVerifier::new(verifier, anchors),
                ))
            }
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }

    /// A tokio acceptor: `acceptor.accept(tcp_stream).await` performs the handshake.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor::from(self.server_config()?))
    }
}

/// The client side of TLS (our clients, `strata admin`, broker-to-broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificates that sign the servers' certificates.
    pub trust_certs: PathBuf,
    /// Optional client certificate chain and key (for mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    /// Trust servers signed by this CA.
    pub fn new(trust_certs: impl Into<PathBuf>) -> Self {
        Self {
            trust_certs: trust_certs.into(),
            identity: None,
        }
    }

    /// Present this certificate chain and key.
    pub fn with_identity(
        mut self,
        cert_chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((cert_chain.into(), key.into()));
        self
    }

    /// The rustls configuration. Server certificates are verified against the CA and the
    /// host name given to [`TlsConnector::connect`] (see [`server_name`]).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let roots = load_roots(&self.trust_certs)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                builder.with_client_auth_cert(load_certs(chain)?, load_private_key(key)?)?
            }
        };
        Ok(Arc::new(config))
    }

    /// A tokio connector.
    pub fn connector(&self) -> Result<TlsConnector, TlsError> {
        Ok(TlsConnector::from(self.client_config()?))
    }
}

/// The name to verify the server certificate against: a DNS name or an IP address (the host
/// part of a `pulsar+ssl://host:port` or `https://host:port` URL).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(h.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

/// The role of a TLS client: the CN of its verified certificate (`None` without one).
pub fn client_role<S>(stream: &tokio_rustls::server::TlsStream<S>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    let leaf = conn.peer_certificates()?.first()?;
    certificate_common_name(leaf.as_ref())
}

/// The subject common name (OID 2.5.4.3) of a DER certificate. Only call it on certificates
/// that were verified (it parses with a recursive decoder; input over 16 KiB is refused).
pub fn certificate_common_name(der: &[u8]) -> Option<String> {
    use simple_asn1::ASN1Block as B;
    if der.len() > 16 * 1024 {
        return None;
    }
    let blocks = simple_asn1::from_der(der).ok()?;
    let B::Sequence(_, cert) = blocks.first()? else {
        return None;
    };
    let B::Sequence(_, tbs) = cert.first()? else {
        return None;
    };
    // [0] version is optional; then serial, signature, issuer, validity, subject.
    let skip = usize::from(matches!(tbs.first(), Some(B::Explicit(..))));
    let B::Sequence(_, rdns) = tbs.get(skip + 4)? else {
        return None;
    };
    let cn_oid = simple_asn1::oid!(2, 5, 4, 3);
    for rdn in rdns {
        let B::Set(_, attrs) = rdn else { continue };
        for attr in attrs {
            let B::Sequence(_, kv) = attr else { continue };
            if let (Some(B::ObjectIdentifier(_, oid)), Some(value)) = (kv.first(), kv.get(1))
                && *oid == cn_oid
            {
                return match value {
                    B::UTF8String(_, s)
                    | B::PrintableString(_, s)
                    | B::IA5String(_, s)
                    | B::TeletexString(_, s)
                    | B::UniversalString(_, s)
                    | B::BMPString(_, s) => Some(s.clone()),
                    _ => None,
                };
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
