//! `strata tokens`: the `pulsar tokens` helpers.
//!
//! ```text
//! strata tokens create-secret-key [--output FILE] [--base64] [-a HS256|HS384|HS512]
//! strata tokens create-key-pair --output-private-key F --output-public-key F [-a RS256|ES256] [--pem]
//! strata tokens create (--secret-key SRC | --private-key SRC) --subject ROLE [--expiry-time 1h] [-a ALG]
//! strata tokens validate (--secret-key SRC | --public-key SRC) [TOKEN | --token-file F | --stdin]
//! strata tokens show [TOKEN | --token-file F | --stdin]
//! ```
//!
//! `SRC` is a Pulsar key source: `file:///path`, `data:;base64,...`, a path or inline base64.
//! Key files are written like Pulsar's (secret: raw bytes; key pair: DER PKCS#8 / SPKI; `--pem`
//! for PEM), private material with mode 0600.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use base64::Engine as _;

use crate::keys::{self, KeyPairAlgorithm, SigningKey};
use crate::redact::Token;
use crate::token::{self, TokenAuthenticator, TokenConfig, TokenIssuer};

/// `strata tokens ...`.
#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The `strata tokens` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Create a random secret key for HS256 tokens (raw bytes, or base64 text with --base64).
    CreateSecretKey {
        /// Write the key to this file (mode 0600) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Base64-encode the key.
        #[arg(short, long)]
        base64: bool,
        /// HS256 (32 bytes), HS384 (48) or HS512 (64).
        #[arg(short = 'a', long = "signature-algorithm", default_value = "HS256")]
        algorithm: String,
    },
    /// Create a key pair for RS256 or ES256 tokens (DER files, as `pulsar tokens` writes).
    CreateKeyPair {
        /// Private key file (PKCS#8, mode 0600).
        #[arg(long)]
        output_private_key: PathBuf,
        /// Public key file (SubjectPublicKeyInfo).
        #[arg(long)]
        output_public_key: PathBuf,
        /// RS256 (RSA 2048) or ES256 (EC P-256).
        #[arg(
            short = 'a',
            long = "signature-algorithm",
            alias = "algorithm",
            default_value = "RS256"
        )]
        algorithm: KeyPairAlgorithm,
        /// Write PEM instead of DER.
        #[arg(long)]
        pem: bool,
    },
    /// Create a token for a role.
    Create {
        /// Secret key source for HS* tokens (`file:///path`, `data:;base64,...`).
        #[arg(
            long,
            conflicts_with = "private_key",
            required_unless_present = "private_key"
        )]
        secret_key: Option<String>,
        /// Private key source for RS*/ES* tokens.
        #[arg(long)]
        private_key: Option<String>,
        /// The role (`sub` claim).
        #[arg(short, long)]
        subject: String,
        /// Lifetime, e.g. `30m`, `1h`, `7d`, `1y`; none: never expires.
        #[arg(short, long)]
        expiry_time: Option<String>,
        /// Signature algorithm (default HS256 for a secret key, RS256/ES256 for a private key).
        #[arg(short = 'a', long = "signature-algorithm")]
        algorithm: Option<String>,
    },
    /// Validate a token and print its claims; fails (exit code 1) if it is not valid.
    Validate {
        /// Secret key source (HS* tokens).
        #[arg(
            long,
            conflicts_with = "public_key",
            required_unless_present = "public_key"
        )]
        secret_key: Option<String>,
        /// Public key source (RS*/PS*/ES* tokens).
        #[arg(long)]
        public_key: Option<String>,
        #[command(flatten)]
        input: TokenInput,
    },
    /// Print a token's header and claims without validating it.
    Show {
        #[command(flatten)]
        input: TokenInput,
    },
}

/// Where a token comes from.
#[derive(clap::Args, Debug)]
pub struct TokenInput {
    /// The token.
    #[arg(conflicts_with_all = ["token_file", "stdin"])]
    pub token: Option<String>,
    /// Read the token from a file.
    #[arg(short = 'f', long)]
    pub token_file: Option<PathBuf>,
    /// Read the token from standard input.
    #[arg(short = 'i', long)]
    pub stdin: bool,
}

impl TokenInput {
    fn read(&self) -> anyhow::Result<Token> {
        let t = if let Some(t) = &self.token {
            Token::new(t.clone())
        } else if let Some(f) = &self.token_file {
            Token::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("read token file {}", f.display()))?,
            )
        } else if self.stdin {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("read token from stdin")?;
            Token::new(s)
        } else {
            bail!("give a token, --token-file or --stdin");
        };
        if t.is_empty() {
            bail!("the token is empty");
        }
        Ok(t)
    }
}

/// Runs a `strata tokens` command, printing to standard output.
pub fn run(args: TokensArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(args, &mut out)
}

/// Runs a `strata tokens` command, printing to `out`.
pub fn run_to(args: TokensArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    match args.command {
        TokensCommand::CreateSecretKey {
            output,
            base64,
            algorithm,
        } => {
            let len = match algorithm.to_ascii_uppercase().as_str() {
                "HS256" => 32,
                "HS384" => 48,
                "HS512" => 64,
                a => bail!("unsupported secret key algorithm {a} (HS256, HS384, HS512)"),
            };
            let key = keys::generate_secret(len)?;
            let bytes = if base64 {
                let mut s = base64::engine::general_purpose::STANDARD.encode(key.expose());
                s.push('\n');
                s.into_bytes()
            } else {
                key.expose().clone()
            };
            match output {
                Some(p) => write_private(&p, &bytes)?,
                None => out.write_all(&bytes).context("write the key")?,
            }
        }
        TokensCommand::CreateKeyPair {
            output_private_key,
            output_public_key,
            algorithm,
            pem,
        } => {
            let kp = keys::generate_key_pair(algorithm)?;
            let (private, public) = if pem {
                (
                    keys::to_pem("PRIVATE KEY", kp.private_pkcs8.expose()).into_bytes(),
                    keys::to_pem("PUBLIC KEY", &kp.public_spki).into_bytes(),
                )
            } else {
                (kp.private_pkcs8.expose().clone(), kp.public_spki.clone())
            };
            write_private(&output_private_key, &private)?;
            std::fs::write(&output_public_key, public)
                .with_context(|| format!("write {}", output_public_key.display()))?;
        }
        TokensCommand::Create {
            secret_key,
            private_key,
            subject,
            expiry_time,
            algorithm,
        } => {
            let alg = algorithm
                .as_deref()
                .map(|a| {
                    token::parse_algorithm(a).with_context(|| format!("unknown algorithm {a}"))
                })
                .transpose()?;
            let key = match (secret_key, private_key) {
                (Some(s), None) => {
                    let bytes = keys::read_key_source(&s).context("read the secret key")?;
                    SigningKey::hmac(
                        bytes.expose(),
                        alg.unwrap_or(jsonwebtoken::Algorithm::HS256),
                    )?
                }
                (None, Some(p)) => {
                    let bytes = keys::read_key_source(&p).context("read the private key")?;
                    SigningKey::private(bytes.expose(), alg)?
                }
                _ => bail!("give exactly one of --secret-key and --private-key"),
            };
            let expiry = expiry_time
                .as_deref()
                .map(|e| {
                    humantime::parse_duration(e).with_context(|| format!("bad expiry time {e}"))
                })
                .transpose()?;
            let token = TokenIssuer::new(key).create(&subject, expiry, SystemTime::now())?;
            writeln!(out, "{}", token.expose()).context("write the token")?;
        }
        TokensCommand::Validate {
            secret_key,
            public_key,
            input,
        } => {
            let auth = TokenAuthenticator::from_sources(
                secret_key.as_deref(),
                public_key.as_deref(),
                TokenConfig::default(),
            )
            .context("load the key")?;
            let token = input.read()?;
            auth.authenticate(&token).context("token is not valid")?;
            let (_, claims) = token::decode_unverified(&token)?;
            writeln!(out, "{}", serde_json::Value::Object(claims))?;
        }
        TokensCommand::Show { input } => {
            let token = input.read()?;
            let (header, claims) = token::decode_unverified(&token)?;
            writeln!(out, "{}", serde_json::Value::Object(header))?;
            writeln!(out, "{}", serde_json::Value::Object(claims))?;
        }
    }
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        Tokens(TokensArgs),
    }

    fn run_args(args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["strata", "tokens"];
        full.extend_from_slice(args);
        let Top::Tokens(t) = Cli::try_parse_from(full)?.cmd;
        let mut out = Vec::new();
        run_to(t, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn secret_key_create_validate_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("secret.key");
        let k = key.to_str().unwrap();
        run_args(&["create-secret-key", "--output", k]).unwrap();
        assert_eq!(std::fs::read(&key).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let src = format!("file://{k}");
        let tok = run_args(&[
            "create",
            "--secret-key",
            &src,
            "--subject",
            "alice",
            "--expiry-time",
            "1h",
        ])
        .unwrap();
        let tok = tok.trim();
        let claims = run_args(&["validate", "--secret-key", &src, tok]).unwrap();
        assert!(claims.contains(r#""sub":"alice""#), "{claims}");
        assert!(claims.contains(r#""exp":"#), "{claims}");
        // token from a file
        let tf = d.path().join("t");
        std::fs::write(&tf, format!("{tok}\n")).unwrap();
        run_args(&[
            "validate",
            "--secret-key",
            &src,
            "--token-file",
            tf.to_str().unwrap(),
        ])
        .unwrap();
        // another key refuses it
        let other = d.path().join("other.key");
        run_args(&["create-secret-key", "-o", other.to_str().unwrap()]).unwrap();
        let err = run_args(&[
            "validate",
            "--secret-key",
            &format!("file:{}", other.display()),
            tok,
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("signature"), "{err:#}");
        // show prints header and claims
        let shown = run_args(&["show", tok]).unwrap();
        assert!(
            shown.contains(r#""alg":"HS256""#) && shown.contains("alice"),
            "{shown}"
        );
    }

    #[test]
    fn base64_secret_works_as_data_url() {
        let b64 = run_args(&["create-secret-key", "--base64"]).unwrap();
        let src = format!("data:;base64,{}", b64.trim());
        let tok = run_args(&["create", "--secret-key", &src, "-s", "bob"]).unwrap();
        let claims = run_args(&["validate", "--secret-key", &src, tok.trim()]).unwrap();
        assert_eq!(claims.trim(), r#"{"sub":"bob"}"#);
        assert!(run_args(&["create-secret-key", "-a", "HS999"]).is_err());
    }

    #[test]
    fn key_pairs_round_trip() {
        let d = tempfile::tempdir().unwrap();
        for (alg, pem) in [("ES256", false), ("ES256", true), ("RS256", false)] {
            let pk = d.path().join(format!("{alg}{pem}.priv"));
            let pubk = d.path().join(format!("{alg}{pem}.pub"));
            let mut args = vec![
                "create-key-pair",
                "--output-private-key",
                pk.to_str().unwrap(),
                "--output-public-key",
                pubk.to_str().unwrap(),
                "-a",
                alg,
            ];
            if pem {
                args.push("--pem");
            }
            run_args(&args).unwrap();
            let tok = run_args(&[
                "create",
                "--private-key",
                &format!("file://{}", pk.display()),
                "--subject",
                "svc",
                "-e",
                "7d",
            ])
            .unwrap();
            let shown = run_args(&["show", tok.trim()]).unwrap();
            assert!(shown.contains(&format!(r#""alg":"{alg}""#)), "{shown}");
            let claims = run_args(&[
                "validate",
                "--public-key",
                &format!("file://{}", pubk.display()),
                tok.trim(),
            ])
            .unwrap();
            assert!(claims.contains(r#""sub":"svc""#), "{claims}");
        }
    }

    #[test]
    fn bad_arguments_fail() {
        assert!(run_args(&["create", "-s", "x"]).is_err());
        assert!(run_args(&["create", "--secret-key", "data:;base64,AAAA", "-s", "x"]).is_err());
        let b64 = run_args(&["create-secret-key", "--base64"]).unwrap();
        let src = format!("data:;base64,{}", b64.trim());
        assert!(run_args(&["create", "--secret-key", &src, "-s", "x", "-e", "soon"]).is_err());
        assert!(run_args(&["create", "--secret-key", &src, "-s", "x", "-a", "RS256"]).is_err());
        assert!(run_args(&["validate", "--secret-key", &src]).is_err());
        assert!(run_args(&["validate", "--secret-key", &src, "not-a-token"]).is_err());
    }
}
