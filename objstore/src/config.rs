//! From a URL to an object store.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, RetryConfig};

use crate::error::{ObjStoreError, Result};
use crate::retry::RetryPolicy;
use crate::store::Store;

/// Where objects live and how to reach them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjStoreConfig {
    /// `s3://bucket[/prefix]`, `gs://bucket[/prefix]`, `az://container[/prefix]`,
    /// `file:///abs/path` or `memory://`.
    pub url: String,
    /// S3-compatible endpoint (`http://127.0.0.1:9000`); requests are then path-style.
    pub endpoint: Option<String>,
    /// S3 region (default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Virtual-hosted-style requests even with an endpoint (default: path-style with an
    /// endpoint, as S3-compatible servers expect).
    pub virtual_hosted_style: bool,
    /// Retry and attempt timeout.
    pub retry: RetryPolicy,
    /// Access key and secret instead of the environment's `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (tests).
    pub credentials: Option<(String, String)>,
    /// S3: sign requests without hashing the payload (`UNSIGNED-PAYLOAD`), for writers whose
    /// objects carry their own checksums (bookie segment objects): saves a SHA-256 pass over every
    /// uploaded byte. Over HTTPS, TLS still protects the body in transit.
    pub unsigned_payload: bool,
}

impl ObjStoreConfig {
    /// A config for `url` with defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Default::default()
        }
    }
}

/// Opens the store `cfg` names, wrapped in retry and metrics.
pub fn open(cfg: &ObjStoreConfig) -> Result<Store> {
    let (raw, prefix) = open_raw(cfg)?;
    Ok(Store::from_raw(raw, &prefix).with_retry(cfg.retry))
}

/// The backend `cfg` names and the key prefix inside it (the URL's path), without our layers.
pub fn open_raw(cfg: &ObjStoreConfig) -> Result<(Arc<dyn ObjectStore>, String)> {
    install_crypto_provider();
    let url = url::Url::parse(&cfg.url)
        .map_err(|e| ObjStoreError::Config(format!("bad object store URL {}: {e}", cfg.url)))?;
    let bucket = url.host_str().unwrap_or_default().to_string();
    let prefix = url.path().trim_matches('/').to_string();
    let need_bucket = || {
        if bucket.is_empty() {
            Err(ObjStoreError::Config(format!(
                "{}: the URL names no bucket",
                cfg.url
            )))
        } else {
            Ok(())
        }
    };
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => {
            need_bucket()?;
            Arc::new(s3(cfg, &bucket)?)
        }
        "file" => {
            let dir = url.to_file_path().map_err(|()| {
                ObjStoreError::Config(format!("{}: not an absolute path", cfg.url))
            })?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                ObjStoreError::Config(format!("create directory {}: {e}", dir.display()))
            })?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| ObjStoreError::Config(e.to_string()))?
                .with_automatic_cleanup(true);
            return Ok((Arc::new(fs), String::new()));
        }
        "memory" => Arc::new(object_store::memory::InMemory::new()),
        #[cfg(feature = "gcp")]
        "gs" => {
            need_bucket()?;
            Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .with_retry(backend_retry())
                    .with_client_options(client_options())
                    .build()
                    .map_err(|e| ObjStoreError::Config(e.to_string()))?,
            )
        }
        #[cfg(feature = "azure")]
        "az" | "azure" => {
            need_bucket()?;
            Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&bucket)
                    .with_retry(backend_retry())
                    .with_client_options(client_options())
                    .build()
                    .map_err(|e| ObjStoreError::Config(e.to_string()))?,
            )
        }
        other => {
            return Err(ObjStoreError::Config(format!(
                "unsupported object store scheme {other}:// (s3, file, memory{}{})",
                if cfg!(feature = "gcp") { ", gs" } else { "" },
                if cfg!(feature = "azure") { ", az" } else { "" },
            )));
        }
    };
    Ok((store, prefix))
}

fn s3(cfg: &ObjStoreConfig, bucket: &str) -> Result<object_store::aws::AmazonS3> {
    let region = cfg
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into());
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_retry(backend_retry())
        .with_client_options(client_options());
    if let Some((key, secret)) = &cfg.credentials {
        b = b.with_access_key_id(key).with_secret_access_key(secret);
    }
    if let Some(ep) = &cfg.endpoint {
        b = b
            .with_endpoint(ep)
            .with_allow_http(ep.starts_with("http://"))
            .with_virtual_hosted_style_request(cfg.virtual_hosted_style);
    }
    if cfg.unsigned_payload {
        b = b.with_unsigned_payload(true);
    }
    b.build().map_err(|e| ObjStoreError::Config(e.to_string()))
}

/// Our retry layer decides; the backend makes one attempt per call so each is counted.
fn backend_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        ..Default::default()
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout_disabled()
}

/// reqwest's rustls uses the process-wide crypto provider: ring, as the rest of Strata.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let (_, p) = open_raw(&ObjStoreConfig::new("s3://bkt/a/b")).unwrap();
        assert_eq!(p, "a/b");
        let (_, p) = open_raw(&ObjStoreConfig::new("memory://")).unwrap();
        assert_eq!(p, "");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/x", dir.path().display());
        open_raw(&ObjStoreConfig::new(url)).unwrap();
        assert!(dir.path().join("x").is_dir());
        for bad in ["ftp://x/y", "s3:///nobucket", "not a url"] {
            assert!(
                matches!(
                    open_raw(&ObjStoreConfig::new(bad)),
                    Err(ObjStoreError::Config(_))
                ),
                "{bad}"
            );
        }
    }
}
