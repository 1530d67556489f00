//! Feeds arbitrary bytes to the token parsers: CONNECT/HTTP credential extraction, the
//! unverified decoder of `strata tokens show` and full validation against HMAC and EC keys.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_auth::keys::{KeyPairAlgorithm, generate_key_pair};
use strata_auth::token::{bearer_token, connect_token, decode_unverified};
use strata_auth::{Token, TokenAuthenticator, TokenConfig, VerificationKey};

fn authenticators() -> &'static [TokenAuthenticator] {
    static A: OnceLock<Vec<TokenAuthenticator>> = OnceLock::new();
    A.get_or_init(|| {
        let ec = generate_key_pair(KeyPairAlgorithm::Es256).expect("generate EC key");
        vec![
            TokenAuthenticator::new(
                VerificationKey::hmac(&[7u8; 32]).expect("hmac key"),
                TokenConfig::default(),
            ),
            TokenAuthenticator::new(
                VerificationKey::public(&ec.public_spki).expect("EC key"),
                TokenConfig::default(),
            ),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let t = Token::from_bytes(data);
    for a in authenticators() {
        let _ = a.authenticate(&t);
    }
    let _ = decode_unverified(&t);
    let _ = bearer_token(Some(data));
    let _ = connect_token(Some("token"), Some(data));
    let _ = VerificationKey::public(data);
    let _ = strata_auth::tls::certificate_common_name(data);
});
