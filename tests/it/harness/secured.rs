//! Token authentication for tests: HS256 secret keys and tokens made by the real `strata tokens`,
//! and a standalone that requires them (superuser role `admin`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::standalone::Standalone;
use super::strata_bin;

/// Runs `strata tokens ARGS...`, asserts success and returns the trimmed stdout.
fn tokens(args: &mut Command) -> String {
    let out = args.output().expect("run strata tokens");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes a new HS256 secret key to `path`.
pub fn create_secret_key(path: &Path) {
    tokens(
        Command::new(strata_bin())
            .args(["tokens", "create-secret-key", "--output"])
            .arg(path),
    );
}

/// A token for `role` signed with the secret key at `key`, expiring after `expiry` (e.g. "4s").
pub fn create_token(key: &Path, role: &str, expiry: Option<&str>) -> String {
    let mut c = Command::new(strata_bin());
    c.args(["tokens", "create", "--secret-key"])
        .arg(format!("file://{}", key.display()))
        .args(["--subject", role]);
    if let Some(e) = expiry {
        c.args(["--expiry-time", e]);
    }
    tokens(&mut c)
}

/// A standalone with token authentication on (HS256 secret key, superuser role `admin`).
pub struct SecuredStandalone {
    pub node: Standalone,
    keys: tempfile::TempDir,
}

impl SecuredStandalone {
    /// Makes a key and starts the standalone with it.
    pub fn start() -> SecuredStandalone {
        let keys = tempfile::tempdir().expect("temp dir for keys");
        let key = keys.path().join("secret.key");
        create_secret_key(&key);
        let mut args = vec!["--auth-token-secret-key-file".into(), key.into_os_string()];
        args.extend(["--superuser-roles".into(), "admin".into()]);
        let node = Standalone::start_with(&args, &[]);
        SecuredStandalone { node, keys }
    }

    /// The secret key file.
    pub fn key(&self) -> PathBuf {
        self.keys.path().join("secret.key")
    }

    /// A directory for more keys and token files.
    pub fn dir(&self) -> &Path {
        self.keys.path()
    }

    /// A token for `role`, expiring after `expiry` if given.
    pub fn token(&self, role: &str, expiry: Option<&str>) -> String {
        create_token(&self.key(), role, expiry)
    }
}

impl std::ops::Deref for SecuredStandalone {
    type Target = Standalone;

    fn deref(&self) -> &Standalone {
        &self.node
    }
}
