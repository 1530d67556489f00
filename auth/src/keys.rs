//! Key sources and key material, Pulsar-compatible.
//!
//! A key *source* is what the configuration holds (Pulsar's `tokenSecretKey` /
//! `tokenPublicKey`): `file:///path` or `file:path`, `data:;base64,<b64>` (any media type, with
//! or without `;base64`), a plain path to an existing file, or else an inline base64 value.
//!
//! Key *formats*: an HMAC secret is raw bytes (as `pulsar tokens create-secret-key` writes it).
//! Public keys may be PEM (`PUBLIC KEY` SPKI, `RSA PUBLIC KEY` PKCS#1), DER SPKI (what `pulsar
//! tokens create-key-pair` writes) or base64 text of DER. Private keys: PEM (`PRIVATE KEY`
//! PKCS#8, `RSA PRIVATE KEY` PKCS#1, `EC PRIVATE KEY` SEC1) or DER PKCS#8, or base64 of it. RSA keys (2048-8192 bits)
//! serve RS256/384/512; EC P-256 keys ES256, P-384 keys ES384.

use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::der::Decode as _;
use rsa::pkcs8::der::asn1::ObjectIdentifier;
use rsa::pkcs8::spki::SubjectPublicKeyInfoRef;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, PrivateKeyInfo};
use rsa::traits::PublicKeyParts;

use crate::error::KeyError;
use crate::redact::Secret;

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Reads the bytes a Pulsar key source designates (see the module docs). `file:` paths are
/// read from disk (call from a blocking context, e.g. at start-up).
pub fn read_key_source(source: &str) -> Result<Secret<Vec<u8>>, KeyError> {
    let source = source.trim();
    if let Some(rest) = source.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| KeyError::Unsupported("data: URL without a comma".into()))?;
        if header.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
            return decode_base64(data).map(Secret::new);
        }
        return Ok(Secret::new(data.as_bytes().to_vec()));
    }
    if let Some(rest) = source.strip_prefix("file:") {
        // file:///abs, file://localhost/abs, file:/abs, file:rel
        let path = if let Some(p) = rest.strip_prefix("//") {
            p.strip_prefix("localhost").unwrap_or(p)
        } else {
            rest
        };
        return read_file(path);
    }
    if !source.is_empty() && Path::new(source).is_file() {
        return read_file(source);
    }
    if looks_like_path(source) {
        return read_file(source); // a missing file: say so rather than decode the path as base64
    }
    decode_base64(source).map(Secret::new)
}

/// `./x`, `../x`, or an absolute path whose directory exists (inline base64 may start with
/// `/` too, but its "directory" practically never exists).
fn looks_like_path(s: &str) -> bool {
    if s.starts_with("./") || s.starts_with("../") {
        return true;
    }
    s.starts_with('/')
        && Path::new(s)
            .parent()
            .is_some_and(|p| p != Path::new("/") && p.is_dir())
}

fn read_file(path: &str) -> Result<Secret<Vec<u8>>, KeyError> {
    std::fs::read(path)
        .map(Secret::new)
        .map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })
}

fn decode_base64(s: &str) -> Result<Vec<u8>, KeyError> {
    let cleaned: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let e = &base64::engine::general_purpose::STANDARD;
    e.decode(&cleaned)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&cleaned))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&cleaned))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&cleaned))
        .map_err(|_| KeyError::Base64)
}

/// The kind of a verification key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// HMAC secret: HS256, HS384, HS512.
    Hmac,
    /// RSA public key: RS256, RS384, RS512, PS256, PS384, PS512.
    Rsa,
    /// EC P-256 public key: ES256.
    EcP256,
    /// EC P-384 public key: ES384.
    EcP384,
}

impl KeyKind {
    /// Algorithms a key of this kind verifies. Nothing else is accepted (no algorithm confusion).
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            Self::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            Self::EcP256 => &[Algorithm::ES256],
            Self::EcP384 => &[Algorithm::ES384],
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hmac => "HMAC secret",
            Self::Rsa => "RSA public",
            Self::EcP256 => "EC P-256 public",
            Self::EcP384 => "EC P-384 public",
        }
    }
}

/// A key that verifies token signatures. `Debug` shows only its kind.
#[derive(Clone)]
pub struct VerificationKey {
    kind: KeyKind,
    key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// An HMAC secret (raw bytes, at least 32).
    pub fn hmac(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret(secret.len()));
        }
        Ok(Self {
            kind: KeyKind::Hmac,
            key: DecodingKey::from_secret(secret),
        })
    }

    /// A public key in PEM, DER (SPKI or PKCS#1 RSA) or base64-of-DER form.
    pub fn public(bytes: &[u8]) -> Result<Self, KeyError> {
        let der = public_der(bytes)?;
        if let Ok(spki) = SubjectPublicKeyInfoRef::from_der(&der) {
            let key_bits = spki.subject_public_key.raw_bytes();
            if spki.algorithm.oid == OID_RSA {
                return Self::rsa_pkcs1(key_bits);
            }
            if spki.algorithm.oid == OID_EC {
                let curve = spki
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| KeyError::Unsupported("EC key without a named curve".into()))?;
                let kind = match curve {
                    c if c == OID_P256 => KeyKind::EcP256,
                    c if c == OID_P384 => KeyKind::EcP384,
                    c => return Err(KeyError::Unsupported(format!("EC curve {c}"))),
                };
                let expected = if kind == KeyKind::EcP256 { 65 } else { 97 };
                if key_bits.len() != expected || key_bits.first() != Some(&4) {
                    return Err(KeyError::Unsupported(
                        "EC public key is not an uncompressed point".into(),
                    ));
                }
                return Ok(Self {
                    kind,
                    key: DecodingKey::from_ec_der(key_bits),
                });
            }
            return Err(KeyError::Unsupported(format!(
                "public key algorithm {}",
                spki.algorithm.oid
            )));
        }
        Self::rsa_pkcs1(&der)
    }

    fn rsa_pkcs1(pkcs1: &[u8]) -> Result<Self, KeyError> {
        let key = rsa::RsaPublicKey::from_pkcs1_der(pkcs1)
            .map_err(|e| KeyError::Unsupported(format!("RSA public key: {e}")))?;
        let bits = key.size() * 8;
        if !(2048..=8192).contains(&bits) {
            return Err(KeyError::Unsupported(format!(
                "RSA key of {bits} bits (need 2048-8192)"
            )));
        }
        Ok(Self {
            kind: KeyKind::Rsa,
            key: DecodingKey::from_rsa_der(pkcs1),
        })
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// PEM → DER, raw DER kept, base64 text → DER.
fn public_der(bytes: &[u8]) -> Result<Vec<u8>, KeyError> {
    // Binary DER is used as it is (trimming could cut key bytes that look like whitespace).
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let trimmed = trim_ascii(bytes);
    if trimmed.starts_with(b"-----BEGIN") {
        let p = pem::parse(trimmed).map_err(|e| KeyError::Unsupported(format!("PEM: {e}")))?;
        return match p.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Ok(p.into_contents()),
            t => Err(KeyError::Unsupported(format!(
                "PEM block {t}, need a public key"
            ))),
        };
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| KeyError::Base64)?;
    decode_base64(text)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// A key that signs tokens (`strata tokens create`). `Debug` shows only the algorithm.
pub struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC secret signing with `alg` (HS256 by default in the CLI).
    pub fn hmac(secret: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::WeakSecret(secret.len()));
        }
        if !KeyKind::Hmac.algorithms().contains(&alg) {
            return Err(KeyError::Unsupported(format!(
                "{alg:?} with an HMAC secret"
            )));
        }
        Ok(Self {
            alg,
            key: EncodingKey::from_secret(secret),
        })
    }

    /// A private key (PEM, DER or base64 of DER; RSA or EC P-256/P-384). `alg` defaults to
    /// RS256 for RSA and ES256/ES384 for EC keys; a given `alg` must fit the key.
    pub fn private(bytes: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let trimmed = if bytes.first() == Some(&0x30) {
            bytes
        } else {
            trim_ascii(bytes)
        };
        let der: Secret<Vec<u8>> = if trimmed.starts_with(b"-----BEGIN") {
            let p = pem::parse(trimmed).map_err(|e| KeyError::Unsupported(format!("PEM: {e}")))?;
            match p.tag() {
                "RSA PRIVATE KEY" => {
                    let k = rsa::RsaPrivateKey::from_pkcs1_der(p.contents())
                        .map_err(|e| KeyError::Unsupported(format!("RSA private key: {e}")))?;
                    return Self::rsa(&k, alg);
                }
                "PRIVATE KEY" => Secret::new(p.into_contents()),
                "EC PRIVATE KEY" => Secret::new(sec1_to_pkcs8(p.contents())?),
                t => {
                    return Err(KeyError::Unsupported(format!(
                        "PEM block {t}, need PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY"
                    )));
                }
            }
        } else if trimmed.first() == Some(&0x30) {
            Secret::new(trimmed.to_vec())
        } else {
            let text = std::str::from_utf8(trimmed).map_err(|_| KeyError::Base64)?;
            Secret::new(decode_base64(text)?)
        };
        let info = PrivateKeyInfo::from_der(der.expose())
            .map_err(|e| KeyError::Unsupported(format!("PKCS#8 private key: {e}")))?;
        if info.algorithm.oid == OID_RSA {
            let k = rsa::RsaPrivateKey::from_pkcs8_der(der.expose())
                .map_err(|e| KeyError::Unsupported(format!("RSA private key: {e}")))?;
            return Self::rsa(&k, alg);
        }
        if info.algorithm.oid == OID_EC {
            let kind = match info.algorithm.parameters_oid() {
                Ok(c) if c == OID_P256 => KeyKind::EcP256,
                Ok(c) if c == OID_P384 => KeyKind::EcP384,
                _ => {
                    return Err(KeyError::Unsupported(
                        "EC curve (need P-256 or P-384)".into(),
                    ));
                }
            };
            let alg = alg.unwrap_or(kind.algorithms()[0]);
            if !kind.algorithms().contains(&alg) {
                return Err(KeyError::Unsupported(format!(
                    "{alg:?} with an {} key",
                    kind.name()
                )));
            }
            // ring parses (and checks) the key when signing; check it now for a clear error.
            let ring_alg = if kind == KeyKind::EcP256 {
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            ring::signature::EcdsaKeyPair::from_pkcs8(
                ring_alg,
                der.expose(),
                &ring::rand::SystemRandom::new(),
            )
            .map_err(|e| KeyError::Unsupported(format!("EC private key: {e}")))?;
            return Ok(Self {
                alg,
                key: EncodingKey::from_ec_der(der.expose()),
            });
        }
        Err(KeyError::Unsupported(format!(
            "private key algorithm {}",
            info.algorithm.oid
        )))
    }

    fn rsa(k: &rsa::RsaPrivateKey, alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let alg = alg.unwrap_or(Algorithm::RS256);
        if !KeyKind::Rsa.algorithms().contains(&alg) {
            return Err(KeyError::Unsupported(format!("{alg:?} with an RSA key")));
        }
        let der = k
            .to_pkcs1_der()
            .map_err(|e| KeyError::Crypto(format!("encode RSA key: {e}")))?;
        Ok(Self {
            alg,
            key: EncodingKey::from_rsa_der(der.as_bytes()),
        })
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }
}

/// Algorithms of generated key pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyPairAlgorithm {
    /// RSA 2048 bits, signs RS256.
    #[value(name = "RS256")]
    Rs256,
    /// EC P-256, signs ES256.
    #[value(name = "ES256")]
    Es256,
}

/// A generated key pair as DER: private PKCS#8, public SPKI (the formats `pulsar tokens
/// create-key-pair` writes).
pub struct KeyPairDer {
    /// PKCS#8 private key.
    pub private_pkcs8: Secret<Vec<u8>>,
    /// SubjectPublicKeyInfo public key.
    pub public_spki: Vec<u8>,
}

impl std::fmt::Debug for KeyPairDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairDer")
            .field("public_spki_len", &self.public_spki.len())
            .finish_non_exhaustive()
    }
}

/// Generates a new random HMAC secret of `len` bytes (32 for HS256).
pub fn generate_secret(len: usize) -> Result<Secret<Vec<u8>>, KeyError> {
    let mut v = vec![0u8; len];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut v)
        .map_err(|_| KeyError::Crypto("random generator failed".into()))?;
    Ok(Secret::new(v))
}

/// Generates a key pair. ES256 is instant (ring); RS256 generates a 2048-bit RSA key (pure
/// Rust, a fraction of a second to a few seconds).
pub fn generate_key_pair(alg: KeyPairAlgorithm) -> Result<KeyPairDer, KeyError> {
    match alg {
        KeyPairAlgorithm::Es256 => {
            let rng = ring::rand::SystemRandom::new();
            let a = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(a, &rng)
                .map_err(|_| KeyError::Crypto("generate EC key".into()))?;
            let pair = ring::signature::EcdsaKeyPair::from_pkcs8(a, pkcs8.as_ref(), &rng)
                .map_err(|_| KeyError::Crypto("parse generated EC key".into()))?;
            let point = ring::signature::KeyPair::public_key(&pair).as_ref();
            Ok(KeyPairDer {
                private_pkcs8: Secret::new(pkcs8.as_ref().to_vec()),
                public_spki: p256_spki(point),
            })
        }
        KeyPairAlgorithm::Rs256 => {
            let mut rng = rsa::rand_core::OsRng;
            let k = rsa::RsaPrivateKey::new(&mut rng, 2048)
                .map_err(|e| KeyError::Crypto(format!("generate RSA key: {e}")))?;
            let private = k
                .to_pkcs8_der()
                .map_err(|e| KeyError::Crypto(format!("encode RSA key: {e}")))?;
            let public = k
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| KeyError::Crypto(format!("encode RSA public key: {e}")))?;
            Ok(KeyPairDer {
                private_pkcs8: Secret::new(private.as_bytes().to_vec()),
                public_spki: public.as_bytes().to_vec(),
            })
        }
    }
}

/// Wraps a SEC1 `ECPrivateKey` (`openssl ecparam -genkey` output) in PKCS#8, taking the curve
/// from its parameters.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, KeyError> {
    use simple_asn1::ASN1Block as B;
    let bad = || KeyError::Unsupported("EC private key (SEC1) without a P-256/P-384 curve".into());
    let blocks = simple_asn1::from_der(sec1).map_err(|_| bad())?;
    let Some(B::Sequence(_, items)) = blocks.first() else {
        return Err(bad());
    };
    let curve = items
        .iter()
        .find_map(|b| match b {
            B::Explicit(_, _, tag, inner) if *tag == 0u32.into() => match inner.as_ref() {
                B::ObjectIdentifier(_, oid) => Some(oid.clone()),
                _ => None,
            },
            _ => None,
        })
        .ok_or_else(bad)?;
    let curve_der: &[u8] = if curve == simple_asn1::oid!(1, 2, 840, 10045, 3, 1, 7) {
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
    } else if curve == simple_asn1::oid!(1, 3, 132, 0, 34) {
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]
    } else {
        return Err(bad());
    };
    const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let alg = tlv(0x30, &[&EC_PUBLIC_KEY[..], curve_der].concat());
    let body = [&[0x02, 0x01, 0x00][..], &alg, &tlv(0x04, sec1)].concat();
    Ok(tlv(0x30, &body))
}

/// One DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend_from_slice(&bytes);
    }
    v.extend_from_slice(content);
    v
}

/// SPKI DER of an uncompressed P-256 point (65 bytes).
fn p256_spki(point: &[u8]) -> Vec<u8> {
    // SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 }, BIT STRING (0 unused) point }
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut v = PREFIX.to_vec();
    v.extend_from_slice(point);
    v
}

/// PEM text of DER bytes with the given tag (`PUBLIC KEY`, `PRIVATE KEY`).
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}
