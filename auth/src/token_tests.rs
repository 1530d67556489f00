use std::sync::OnceLock;

use base64::Engine as _;
use proptest::prelude::*;

use super::*;
use crate::keys::{self, KeyKind, KeyPairAlgorithm, KeyPairDer, generate_key_pair, to_pem};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-strata";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn hs() -> (TokenIssuer, TokenAuthenticator) {
    (
        TokenIssuer::new(SigningKey::hmac(SECRET, Algorithm::HS256).unwrap()),
        TokenAuthenticator::new(
            VerificationKey::hmac(SECRET).unwrap(),
            TokenConfig::default(),
        ),
    )
}

fn rsa_pair() -> &'static KeyPairDer {
    static K: OnceLock<KeyPairDer> = OnceLock::new();
    K.get_or_init(|| generate_key_pair(KeyPairAlgorithm::Rs256).unwrap())
}

fn ec_pair() -> KeyPairDer {
    generate_key_pair(KeyPairAlgorithm::Es256).unwrap()
}

fn pair(kp: &KeyPairDer) -> (TokenIssuer, TokenAuthenticator) {
    (
        TokenIssuer::new(SigningKey::private(kp.private_pkcs8.expose(), None).unwrap()),
        TokenAuthenticator::new(
            VerificationKey::public(&kp.public_spki).unwrap(),
            TokenConfig::default(),
        ),
    )
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A token with any header and claims, signed with HMAC-SHA256 over `secret`.
fn hs256_raw(header: &str, claims: &str, secret: &[u8]) -> Token {
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = ring::hmac::sign(&key, msg.as_bytes());
    Token::new(format!("{msg}.{}", b64(sig.as_ref())))
}

#[test]
fn hs256_round_trip_gives_role_and_expiry() {
    let (iss, auth) = hs();
    let t = iss
        .create("alice", Some(Duration::from_secs(3600)), now())
        .unwrap();
    let r = auth.authenticate_at(&t, now()).unwrap();
    assert_eq!(r.role, "alice");
    assert_eq!(r.expires_at, Some(now() + Duration::from_secs(3600)));
    assert_eq!(r.time_to_expiry(now()), Some(Duration::from_secs(3600)));
    // no exp: never expires
    let t = iss.create("bob", None, now()).unwrap();
    let r = auth.authenticate_at(&t, now()).unwrap();
    assert_eq!((r.role.as_str(), r.expires_at), ("bob", None));
    // the real clock works too
    assert_eq!(auth.authenticate(&t).unwrap().role, "bob");
}

#[test]
fn es256_round_trip_with_every_public_key_form() {
    let kp = ec_pair();
    let (iss, _) = pair(&kp);
    let t = iss.create("svc", None, now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let der_path = dir.path().join("pub.der");
    std::fs::write(&der_path, &kp.public_spki).unwrap();
    let pem_path = dir.path().join("pub.pem");
    std::fs::write(&pem_path, to_pem("PUBLIC KEY", &kp.public_spki)).unwrap();
    let b64_path = dir.path().join("pub.b64");
    let std_b64 = base64::engine::general_purpose::STANDARD.encode(&kp.public_spki);
    std::fs::write(&b64_path, format!("{std_b64}\n")).unwrap();
    let sources = [
        format!("file://{}", der_path.display()),
        format!("file:{}", pem_path.display()),
        format!("file://{}", b64_path.display()),
        pem_path.display().to_string(),
        format!("data:;base64,{std_b64}"),
        format!("data:application/octet-stream;base64,{std_b64}"),
        std_b64.clone(),
    ];
    for s in &sources {
        let auth = TokenAuthenticator::from_sources(None, Some(s), TokenConfig::default())
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(auth.key().kind(), KeyKind::EcP256);
        assert_eq!(auth.authenticate_at(&t, now()).unwrap().role, "svc", "{s}");
    }
}

#[test]
fn rs256_round_trip_pem_and_der() {
    let kp = rsa_pair();
    let (iss, auth) = pair(kp);
    assert_eq!(auth.key().kind(), KeyKind::Rsa);
    let t = iss
        .create("rsa-user", Some(Duration::from_secs(60)), now())
        .unwrap();
    assert_eq!(auth.authenticate_at(&t, now()).unwrap().role, "rsa-user");
    // private key as PEM (PKCS#8) and the public key as PEM also work
    let priv_pem = to_pem("PRIVATE KEY", kp.private_pkcs8.expose());
    let iss2 = TokenIssuer::new(SigningKey::private(priv_pem.as_bytes(), None).unwrap());
    let pub_pem = to_pem("PUBLIC KEY", &kp.public_spki);
    let auth2 = TokenAuthenticator::new(
        VerificationKey::public(pub_pem.as_bytes()).unwrap(),
        TokenConfig::default(),
    );
    let t2 = iss2.create("x", None, now()).unwrap();
    assert_eq!(auth2.authenticate_at(&t2, now()).unwrap().role, "x");
    assert_eq!(auth.authenticate_at(&t2, now()).unwrap().role, "x");
}

#[test]
fn alg_none_is_rejected() {
    let (_, auth) = hs();
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(br#"{"sub":"admin"}"#));
        assert_eq!(
            auth.authenticate_at(&Token::new(unsigned), now()),
            Err(AuthError::AlgNone)
        );
        // even with a (valid HMAC) signature attached
        let signed = hs256_raw(header, r#"{"sub":"admin"}"#, SECRET);
        assert_eq!(
            auth.authenticate_at(&signed, now()),
            Err(AuthError::AlgNone)
        );
    }
}

#[test]
fn algorithm_confusion_is_rejected() {
    // HS256 "signed" with the RSA public key bytes (every form an attacker could know).
    let kp = rsa_pair();
    let (_, rsa_auth) = pair(kp);
    let pem = to_pem("PUBLIC KEY", &kp.public_spki);
    for secret in [kp.public_spki.as_slice(), pem.as_bytes()] {
        let forged = hs256_raw(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"admin"}"#,
            secret,
        );
        assert!(matches!(
            rsa_auth.authenticate_at(&forged, now()),
            Err(AuthError::AlgorithmMismatch { .. })
        ));
    }
    // ES256 token against an RSA key, RS256 token against an HMAC key and an EC key.
    let ec = ec_pair();
    let (ec_iss, ec_auth) = pair(&ec);
    let ec_tok = ec_iss.create("a", None, now()).unwrap();
    assert!(matches!(
        rsa_auth.authenticate_at(&ec_tok, now()),
        Err(AuthError::AlgorithmMismatch { .. })
    ));
    let (rsa_iss, _) = pair(kp);
    let rsa_tok = rsa_iss.create("a", None, now()).unwrap();
    let (_, hs_auth) = hs();
    for auth in [&hs_auth, &ec_auth] {
        assert!(matches!(
            auth.authenticate_at(&rsa_tok, now()),
            Err(AuthError::AlgorithmMismatch { .. })
        ));
    }
    // unknown algorithm names
    let odd = hs256_raw(r#"{"alg":"HS999"}"#, r#"{"sub":"a"}"#, SECRET);
    assert!(matches!(
        hs_auth.authenticate_at(&odd, now()),
        Err(AuthError::AlgorithmMismatch { .. })
    ));
}

#[test]
fn bad_signatures_are_rejected() {
    let (iss, auth) = hs();
    let t = iss.create("alice", None, now()).unwrap();
    // signed with another secret
    let other = TokenIssuer::new(SigningKey::hmac(&[7u8; 32], Algorithm::HS256).unwrap());
    let t2 = other.create("alice", None, now()).unwrap();
    assert_eq!(
        auth.authenticate_at(&t2, now()),
        Err(AuthError::BadSignature)
    );
    // payload swapped (role escalation attempt)
    let parts: Vec<&str> = t.expose().split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(br#"{"sub":"admin"}"#), parts[2]);
    assert_eq!(
        auth.authenticate_at(&Token::new(forged), now()),
        Err(AuthError::BadSignature)
    );
    // signature stripped
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert!(auth.authenticate_at(&Token::new(stripped), now()).is_err());
    // EC key pair mismatch
    let (ec_iss, _) = pair(&ec_pair());
    let (_, ec_auth) = pair(&ec_pair());
    let t3 = ec_iss.create("alice", None, now()).unwrap();
    assert_eq!(
        ec_auth.authenticate_at(&t3, now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn expiry_and_not_before() {
    let (_, auth) = hs();
    let n = 1_800_000_000i64;
    let tok = |claims: String| hs256_raw(r#"{"alg":"HS256"}"#, &claims, SECRET);
    let exp_past = tok(format!(r#"{{"sub":"a","exp":{}}}"#, n - 1));
    assert_eq!(
        auth.authenticate_at(&exp_past, now()),
        Err(AuthError::Expired { exp: n - 1 })
    );
    let exp_now = tok(format!(r#"{{"sub":"a","exp":{n}}}"#));
    assert!(
        auth.authenticate_at(&exp_now, now())
            .unwrap_err()
            .is_expired()
    );
    let exp_future = tok(format!(r#"{{"sub":"a","exp":{}}}"#, n + 1));
    assert!(auth.authenticate_at(&exp_future, now()).is_ok());
    let exp_float = tok(format!(r#"{{"sub":"a","exp":{}.5}}"#, n + 10));
    assert!(auth.authenticate_at(&exp_float, now()).is_ok());
    let nbf_future = tok(format!(r#"{{"sub":"a","nbf":{}}}"#, n + 5));
    assert_eq!(
        auth.authenticate_at(&nbf_future, now()),
        Err(AuthError::NotYetValid { nbf: n + 5 })
    );
    let nbf_past = tok(format!(r#"{{"sub":"a","nbf":{}}}"#, n - 5));
    assert!(auth.authenticate_at(&nbf_past, now()).is_ok());
    // leeway
    let lenient = TokenAuthenticator::new(
        VerificationKey::hmac(SECRET).unwrap(),
        TokenConfig {
            leeway: Duration::from_secs(10),
            ..TokenConfig::default()
        },
    );
    assert!(lenient.authenticate_at(&exp_past, now()).is_ok());
    assert!(lenient.authenticate_at(&nbf_future, now()).is_ok());
    // non-numeric times are malformed, not ignored
    for c in [r#"{"sub":"a","exp":"never"}"#, r#"{"sub":"a","nbf":[1]}"#] {
        assert!(matches!(
            auth.authenticate_at(&tok(c.into()), now()),
            Err(AuthError::Malformed(_))
        ));
    }
}

#[test]
fn malformed_and_missing_role() {
    let (_, auth) = hs();
    for t in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "!!.!!.!!",
        "eyJhbGciOiJIUzI1NiJ9..sig",
    ] {
        assert!(auth.authenticate_at(&Token::new(t), now()).is_err(), "{t}");
    }
    let not_json = format!("{}.{}.x", b64(b"not json"), b64(b"{}"));
    assert!(matches!(
        auth.authenticate_at(&Token::new(not_json), now()),
        Err(AuthError::Malformed(_))
    ));
    let long = Token::new("a".repeat(MAX_TOKEN_LEN + 1));
    assert_eq!(
        auth.authenticate_at(&long, now()),
        Err(AuthError::Malformed("token too long"))
    );
    for c in [r#"{}"#, r#"{"sub":""}"#, r#"{"sub":42}"#, r#"{"role":"a"}"#] {
        let t = hs256_raw(r#"{"alg":"HS256"}"#, c, SECRET);
        assert_eq!(
            auth.authenticate_at(&t, now()),
            Err(AuthError::MissingRole("sub".into())),
            "{c}"
        );
    }
    let crit = hs256_raw(
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"{"sub":"a"}"#,
        SECRET,
    );
    assert!(matches!(
        auth.authenticate_at(&crit, now()),
        Err(AuthError::Malformed(_))
    ));
    let t = hs256_raw(r#"{"alg":"HS256"}"#, "[1,2]", SECRET);
    assert!(matches!(
        auth.authenticate_at(&t, now()),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn custom_role_claim_and_audience() {
    let auth = TokenAuthenticator::new(
        VerificationKey::hmac(SECRET).unwrap(),
        TokenConfig {
            role_claim: "role".into(),
            audience: Some("strata".into()),
            ..TokenConfig::default()
        },
    );
    let ok = hs256_raw(
        r#"{"alg":"HS256"}"#,
        r#"{"role":"r1","aud":"strata"}"#,
        SECRET,
    );
    assert_eq!(auth.authenticate_at(&ok, now()).unwrap().role, "r1");
    let ok2 = hs256_raw(
        r#"{"alg":"HS256"}"#,
        r#"{"role":"r1","aud":["x","strata"]}"#,
        SECRET,
    );
    assert!(auth.authenticate_at(&ok2, now()).is_ok());
    for c in [r#"{"role":"r1","aud":"other"}"#, r#"{"role":"r1"}"#] {
        let t = hs256_raw(r#"{"alg":"HS256"}"#, c, SECRET);
        assert_eq!(
            auth.authenticate_at(&t, now()),
            Err(AuthError::InvalidAudience)
        );
    }
}

#[test]
fn session_refresh_keeps_role_and_detects_expiry() {
    let (iss, auth) = hs();
    let t = iss
        .create("alice", Some(Duration::from_secs(10)), now())
        .unwrap();
    let mut s = AuthSession::new(auth.authenticate_at(&t, now()).unwrap());
    assert_eq!(
        s.check(now()),
        SessionState::Valid(Some(Duration::from_secs(10)))
    );
    let later = now() + Duration::from_secs(10);
    assert_eq!(s.check(later), SessionState::Expired);
    // an expired token does not refresh
    assert!(s.refresh(&auth, &t, later).unwrap_err().is_expired());
    // another role does not refresh
    let mallory = iss
        .create("mallory", Some(Duration::from_secs(60)), later)
        .unwrap();
    assert_eq!(
        s.refresh(&auth, &mallory, later),
        Err(AuthError::RoleChanged)
    );
    assert_eq!(s.role(), "alice");
    // a fresh token for the same role does
    let fresh = iss
        .create("alice", Some(Duration::from_secs(60)), later)
        .unwrap();
    s.refresh(&auth, &fresh, later).unwrap();
    assert_eq!(
        s.check(later),
        SessionState::Valid(Some(Duration::from_secs(60)))
    );
    let forever = iss.create("alice", None, later).unwrap();
    s.refresh(&auth, &forever, later).unwrap();
    assert_eq!(
        s.check(later + Duration::from_secs(1 << 40)),
        SessionState::Valid(None)
    );
}

#[test]
fn credential_extraction() {
    assert_eq!(
        bearer_token(Some(b"Bearer abc.def.ghi")).unwrap().expose(),
        "abc.def.ghi"
    );
    assert_eq!(bearer_token(Some(b"bearer  abc ")).unwrap().expose(), "abc");
    assert_eq!(bearer_token(None), Err(AuthError::MissingCredentials));
    assert_eq!(
        bearer_token(Some(b"Bearer ")),
        Err(AuthError::MissingCredentials)
    );
    assert!(matches!(
        bearer_token(Some(b"Basic dXNlcg==")),
        Err(AuthError::UnsupportedMethod(_))
    ));
    assert_eq!(
        connect_token(Some("token"), Some(b"a.b.c"))
            .unwrap()
            .expose(),
        "a.b.c"
    );
    assert_eq!(
        connect_token(None, Some(b"token:a.b.c\n"))
            .unwrap()
            .expose(),
        "a.b.c"
    );
    assert_eq!(
        connect_token(Some("token"), None),
        Err(AuthError::MissingCredentials)
    );
    assert_eq!(
        connect_token(Some("token"), Some(b"")),
        Err(AuthError::MissingCredentials)
    );
    assert!(matches!(
        connect_token(Some("tls"), Some(b"x")),
        Err(AuthError::UnsupportedMethod(_))
    ));
    // errors never carry the token
    let e = bearer_token(Some(b"Secretscheme-abcdefghijklmnopqrstuvwxyz0123456789")).unwrap_err();
    assert!(!e.to_string().contains("0123456789"));
}

#[test]
fn key_loading_errors() {
    assert!(matches!(
        VerificationKey::hmac(b"short"),
        Err(KeyError::WeakSecret(5))
    ));
    assert!(VerificationKey::public(b"garbage").is_err());
    assert!(
        VerificationKey::public(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
    assert!(TokenAuthenticator::from_sources(None, None, TokenConfig::default()).is_err());
    assert!(
        TokenAuthenticator::from_sources(Some("x"), Some("y"), TokenConfig::default()).is_err()
    );
    assert!(matches!(
        keys::read_key_source("file:///nonexistent/strata/key"),
        Err(KeyError::Read { .. })
    ));
    assert!(matches!(
        keys::read_key_source("not base64 !!"),
        Err(KeyError::Base64)
    ));
    // a missing file in an existing directory is reported as such, not decoded as base64
    let typo = std::env::temp_dir().join("strata-no-such-key");
    assert!(matches!(
        keys::read_key_source(typo.to_str().unwrap()),
        Err(KeyError::Read { .. })
    ));
    assert!(matches!(
        keys::read_key_source("./no/such/key"),
        Err(KeyError::Read { .. })
    ));
    // inline base64 that starts with '/' still decodes
    assert_eq!(
        keys::read_key_source("/w==").unwrap().expose(),
        &vec![0xffu8]
    );
    // secret sources: raw file bytes, data: URL, inline base64
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("secret.key");
    std::fs::write(&p, SECRET).unwrap();
    let enc = base64::engine::general_purpose::STANDARD.encode(SECRET);
    for s in [
        format!("file://{}", p.display()),
        format!("data:;base64,{enc}"),
        enc.clone(),
    ] {
        let a = TokenAuthenticator::from_sources(Some(&s), None, TokenConfig::default()).unwrap();
        let (iss, _) = hs();
        let t = iss.create("k", None, now()).unwrap();
        assert_eq!(a.authenticate_at(&t, now()).unwrap().role, "k");
    }
    // a private key is not a public key, and a public key is not a private key
    let ec = ec_pair();
    assert!(VerificationKey::public(ec.private_pkcs8.expose()).is_err());
    assert!(SigningKey::private(&ec.public_spki, None).is_err());
    assert!(SigningKey::private(ec.private_pkcs8.expose(), Some(Algorithm::RS256)).is_err());
    // Debug output of keys never shows key bytes
    let dbg = format!("{:?}", VerificationKey::hmac(SECRET).unwrap());
    assert!(!dbg.contains("0123"), "{dbg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,300}") {
        let (_, auth) = hs();
        let _ = auth.authenticate_at(&Token::new(s.clone()), now());
        let _ = bearer_token(Some(s.as_bytes()));
        let _ = connect_token(Some("token"), Some(s.as_bytes()));
    }

    #[test]
    fn arbitrary_jwt_shaped_input_never_panics(
        h in proptest::collection::vec(any::<u8>(), 0..80),
        p in proptest::collection::vec(any::<u8>(), 0..80),
        s in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let (_, auth) = hs();
        let t = Token::new(format!("{}.{}.{}", b64(&h), b64(&p), b64(&s)));
        prop_assert!(auth.authenticate_at(&t, now()).is_err());
    }

    #[test]
    fn any_subject_round_trips(sub in "\\PC{1,40}", secs in 1u64..10_000_000) {
        let (iss, auth) = hs();
        let t = iss.create(&sub, Some(Duration::from_secs(secs)), now()).unwrap();
        let r = auth.authenticate_at(&t, now()).unwrap();
        prop_assert_eq!(r.role, sub);
        prop_assert!(auth.authenticate_at(&t, now() + Duration::from_secs(secs)).is_err());
    }

    #[test]
    fn any_one_byte_change_is_rejected(idx in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.=-]") {
        let (iss, auth) = hs();
        let t = iss.create("alice", None, now()).unwrap();
        let mut bytes = t.expose().as_bytes().to_vec();
        let i = idx.index(bytes.len());
        let c = c.as_bytes()[0];
        prop_assume!(bytes[i] != c);
        bytes[i] = c;
        let t2 = Token::from_bytes(&bytes);
        prop_assert!(auth.authenticate_at(&t2, now()).is_err());
    }
}

#[test]
fn binary_der_keys_are_never_trimmed() {
    // DER may end in bytes that look like ASCII whitespace; 300 fresh keys hit that often.
    for _ in 0..300 {
        let kp = ec_pair();
        let (iss, auth) = pair(&kp);
        let t = iss.create("k", None, now()).unwrap();
        assert_eq!(auth.authenticate_at(&t, now()).unwrap().role, "k");
    }
}

proptest! {
    #[test]
    fn arbitrary_key_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = VerificationKey::public(&b);
        let _ = SigningKey::private(&b, None);
        let mut der = vec![0x30u8];
        der.extend_from_slice(&b);
        let _ = VerificationKey::public(&der);
        let _ = SigningKey::private(&der, None);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = keys::read_key_source(&format!("data:;base64,{s}"));
        }
    }
}

/// A test-only P-256 key in SEC1 form, as `openssl ecparam -genkey -name prime256v1 -noout`
/// writes it, and its public key as `openssl ec -pubout` writes it.
const OPENSSL_SEC1_KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEINOiz27WA7H5wNFiXbSDZT1i0ObxkW/GYtIkoTNX/+HPoAoGCCqGSM49\nAwEHoUQDQgAEKLeA1MSlTasHCAC2qtRgMbK5E09M5J3kLKjt1QeDSY3H/c9soEVF\nQvNVd4r4FD6dSXir3WhUguPjaFXVo4PNMQ==\n-----END EC PRIVATE KEY-----\n";
const OPENSSL_SEC1_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKLeA1MSlTasHCAC2qtRgMbK5E09M\n5J3kLKjt1QeDSY3H/c9soEVFQvNVd4r4FD6dSXir3WhUguPjaFXVo4PNMQ==\n-----END PUBLIC KEY-----\n";

#[test]
fn openssl_sec1_ec_keys_sign() {
    let iss = TokenIssuer::new(SigningKey::private(OPENSSL_SEC1_KEY.as_bytes(), None).unwrap());
    let auth = TokenAuthenticator::new(
        VerificationKey::public(OPENSSL_SEC1_PUB.as_bytes()).unwrap(),
        TokenConfig::default(),
    );
    let t = iss.create("sec1", None, now()).unwrap();
    assert_eq!(auth.authenticate_at(&t, now()).unwrap().role, "sec1");
}

#[test]
fn live_connection_checks_challenge_then_close() {
    let (iss, auth) = hs();
    let minute = Duration::from_secs(60);
    let t = iss
        .create("alice", Some(Duration::from_secs(90)), now())
        .unwrap();
    let mut s = AuthSession::new(auth.authenticate_at(&t, now()).unwrap());
    assert_eq!(s.on_check(now(), true, minute), SessionAction::Wait(minute));
    let t1 = now() + minute;
    assert_eq!(
        s.on_check(t1, true, minute),
        SessionAction::Wait(Duration::from_secs(30))
    );
    let t2 = now() + Duration::from_secs(90);
    assert_eq!(s.on_check(t2, true, minute), SessionAction::SendChallenge);
    // no answer by the next check: close
    assert_eq!(s.on_check(t2 + minute, true, minute), SessionAction::Close);
    // a client that cannot refresh is closed at once
    let mut s2 = AuthSession::new(auth.authenticate_at(&t, now()).unwrap());
    assert_eq!(s2.on_check(t2, false, minute), SessionAction::Close);
    // a refreshed session goes back to waiting, and can be challenged again later
    let mut s3 = AuthSession::new(auth.authenticate_at(&t, now()).unwrap());
    assert_eq!(s3.on_check(t2, true, minute), SessionAction::SendChallenge);
    let fresh = iss
        .create("alice", Some(Duration::from_secs(120)), t2)
        .unwrap();
    s3.refresh(&auth, &fresh, t2).unwrap();
    assert_eq!(s3.on_check(t2, true, minute), SessionAction::Wait(minute));
    let t3 = t2 + Duration::from_secs(120);
    assert_eq!(s3.on_check(t3, true, minute), SessionAction::SendChallenge);
    // never-expiring credentials wait one interval at a time
    let forever = iss.create("alice", None, now()).unwrap();
    let mut s4 = AuthSession::new(auth.authenticate_at(&forever, now()).unwrap());
    assert_eq!(s4.on_check(t3, false, minute), SessionAction::Wait(minute));
}
