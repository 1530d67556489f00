//! `--offload-*` flags and the `[offload]` config table of `strata standalone` and
//! `strata broker`: tiered storage is on when a URL is given.

use std::sync::Arc;

use anyhow::Context;
use strata_broker::offload::{OffloadConfig, Offloader};

/// Tiered storage flags (each overrides the `[offload]` table of the config file).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OffloadArgs {
    /// Object store for offloaded ledgers: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` or `file:///abs/path` (none: offload off). S3 credentials come
    /// from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    #[arg(long, env = "STRATA_OFFLOAD_URL")]
    pub offload_url: Option<String>,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (path-style requests).
    #[arg(long, env = "STRATA_OFFLOAD_ENDPOINT")]
    pub offload_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "STRATA_OFFLOAD_REGION")]
    pub offload_region: Option<String>,
}

impl OffloadArgs {
    /// Applies the flags on top of the file's `[offload]` table.
    pub fn apply(&self, cfg: &mut OffloadConfig) {
        if self.offload_url.is_some() {
            cfg.url = self.offload_url.clone();
        }
        if self.offload_endpoint.is_some() {
            cfg.endpoint = self.offload_endpoint.clone();
        }
        if self.offload_region.is_some() {
            cfg.region = self.offload_region.clone();
        }
    }
}

/// The offloader `cfg` configures (none without a URL).
pub fn open(cfg: &OffloadConfig) -> anyhow::Result<Option<Arc<Offloader>>> {
    Offloader::open(cfg).with_context(|| {
        format!(
            "open offload store {}",
            cfg.url.as_deref().unwrap_or_default()
        )
    })
}
