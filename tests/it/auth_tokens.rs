//! `strata tokens ...` as a real process (needs the `Tokens` subcommand wired in src/main.rs).

use std::process::{Command, Output};

use crate::harness::strata_bin;

fn strata(args: &[&str]) -> Output {
    Command::new(strata_bin())
        .arg("tokens")
        .args(args)
        .output()
        .expect("run strata tokens")
}

fn ok(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "strata tokens {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn secret_key_token_validates_and_forgery_fails() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret.key");
    ok(&["create-secret-key", "--output", key.to_str().unwrap()]);
    let src = format!("file://{}", key.display());
    let token = ok(&[
        "create",
        "--secret-key",
        &src,
        "--subject",
        "alice",
        "--expiry-time",
        "1h",
    ]);
    let claims = ok(&["validate", "--secret-key", &src, &token]);
    assert!(claims.contains(r#""sub":"alice""#), "{claims}");

    // a token signed with another key is refused with a non-zero exit and a readable message
    let other = dir.path().join("other.key");
    ok(&["create-secret-key", "--output", other.to_str().unwrap()]);
    let out = strata(&[
        "validate",
        "--secret-key",
        &format!("file://{}", other.display()),
        &token,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signature"), "{err}");
    // the token never appears in the error output
    assert!(!err.contains(&token[token.len() - 20..]), "{err}");
}

#[test]
fn key_pair_tokens_validate() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ES256", "RS256"] {
        let private = dir.path().join(format!("{alg}.private"));
        let public = dir.path().join(format!("{alg}.public"));
        ok(&[
            "create-key-pair",
            "--output-private-key",
            private.to_str().unwrap(),
            "--output-public-key",
            public.to_str().unwrap(),
            "-a",
            alg,
        ]);
        let token = ok(&[
            "create",
            "--private-key",
            &format!("file://{}", private.display()),
            "--subject",
            "svc",
        ]);
        let claims = ok(&[
            "validate",
            "--public-key",
            &format!("file://{}", public.display()),
            &token,
        ]);
        assert!(claims.contains(r#""sub":"svc""#), "{claims}");
    }
}
