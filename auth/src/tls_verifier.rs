//! The client-certificate verifier of the TLS ports: webpki for X.509 v3 certificates, and a
//! direct check for X.509 v1 leaf certificates, which webpki refuses outright
//! (`UnsupportedCertVersion`) but OpenSSL and Java — hence Pulsar — accept. Pulsar's own test
//! CA issues v1 client certificates (`client-cert.pem` of the official clients' suites): with
//! webpki alone their handshakes fail and the client retries until it times out.
//!
//! A v1 leaf is accepted when it is within its validity period and its signature verifies with
//! the public key of a configured CA certificate whose subject is the leaf's issuer (a v1 leaf
//! signed by an intermediate is refused). The handshake signature (CertificateVerify) made with
//! a v1 certificate's key is checked with ring directly; v3 certificates go through webpki and
//! rustls' own checks unchanged.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};
use x509_parser::time::ASN1Time;

/// webpki plus X.509 v1 leaves signed directly by a trust anchor.
#[derive(Debug)]
pub(crate) struct V1TolerantVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// DER of the configured CA certificates.
    anchors: Vec<CertificateDer<'static>>,
}

impl V1TolerantVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        anchors: Vec<CertificateDer<'static>>,
    ) -> Self {
        Self { inner, anchors }
    }
}

/// The parsed certificate if it is X.509 v1 (`None` for v3 or unparsable: webpki decides).
fn parse_v1(der: &[u8]) -> Option<X509Certificate<'_>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    (cert.version() == X509Version::V1).then_some(cert)
}

fn bad(e: CertificateError) -> Error {
    Error::InvalidCertificate(e)
}

impl V1TolerantVerifier {
    fn verify_v1(&self, leaf: &X509Certificate<'_>, now: UnixTime) -> Result<(), Error> {
        let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let at = ASN1Time::from_timestamp(secs).map_err(|_| bad(CertificateError::BadEncoding))?;
        if !leaf.validity().is_valid_at(at) {
            return Err(bad(if at < leaf.validity().not_before {
                CertificateError::NotValidYet
            } else {
                CertificateError::Expired
            }));
        }
        for anchor in &self.anchors {
            let Ok((_, ca)) = X509Certificate::from_der(anchor.as_ref()) else {
                continue;
            };
            if ca.subject().as_raw() != leaf.issuer().as_raw() {
                continue;
            }
            if leaf.verify_signature(Some(ca.public_key())).is_ok() {
                return Ok(());
            }
        }
        Err(bad(CertificateError::UnknownIssuer))
    }
}

/// ring's algorithm for a handshake signature scheme (TLS 1.3 forbids PKCS#1 v1.5).
fn ring_algorithm(
    scheme: SignatureScheme,
    tls13: bool,
) -> Option<&'static dyn ring::signature::VerificationAlgorithm> {
    use ring::signature as s;
    Some(match scheme {
        SignatureScheme::RSA_PKCS1_SHA256 if !tls13 => &s::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384 if !tls13 => &s::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512 if !tls13 => &s::RSA_PKCS1_2048_8192_SHA512,
        SignatureScheme::RSA_PSS_SHA256 => &s::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RSA_PSS_SHA384 => &s::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RSA_PSS_SHA512 => &s::RSA_PSS_2048_8192_SHA512,
        SignatureScheme::ECDSA_NISTP256_SHA256 => &s::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 => &s::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::ED25519 => &s::ED25519,
        _ => return None,
    })
}

fn verify_with_key(
    cert: &X509Certificate<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let alg = ring_algorithm(dss.scheme, tls13).ok_or(Error::PeerMisbehaved(
        rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
    ))?;
    let key = ring::signature::UnparsedPublicKey::new(
        alg,
        cert.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| bad(CertificateError::BadSignature))
}

impl ClientCertVerifier for V1TolerantVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match parse_v1(end_entity.as_ref()) {
            Some(leaf) => self
                .verify_v1(&leaf, now)
                .map(|()| ClientCertVerified::assertion()),
            None => self
                .inner
                .verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match parse_v1(cert.as_ref()) {
            Some(c) => verify_with_key(&c, message, dss, false),
            None => self.inner.verify_tls12_signature(message, cert, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match parse_v1(cert.as_ref()) {
            Some(c) => verify_with_key(&c, message, dss, true),
            None => self.inner.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
