//! [`Store`]: the layered handle over an object store (faults → metrics → retry).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{ObjStoreError, Result};
use crate::faults::{Fault, Faults, Op};
use crate::retry::RetryPolicy;

/// One object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (ms since the epoch).
    pub last_modified_ms: u64,
}

/// The handle every caller uses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    raw: Arc<dyn ObjectStore>,
    prefix: String,
    retry: RetryPolicy,
    faults: Option<Arc<Faults>>,
}

impl Store {
    /// Wraps a backend (e.g. an `object_store::throttle::ThrottledStore` in tests); keys go
    /// under `prefix`.
    pub fn from_raw(raw: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            raw,
            prefix: prefix.trim_matches('/').to_string(),
            retry: RetryPolicy::default(),
            faults: None,
        }
    }

    /// With this retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// With injected faults (tests).
    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The backend, without our layers.
    pub fn raw(&self) -> &Arc<dyn ObjectStore> {
        &self.raw
    }

    /// The key prefix inside the backend.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Applies the faults drawn for one attempt: latency is slept; a failure is returned;
    /// `Ok(true)` means the body is to be cut short.
    async fn inject(&self, op: Op, key: &str) -> Result<bool> {
        let Some(f) = &self.faults else {
            return Ok(false);
        };
        let mut truncate = false;
        for fault in f.draw(op, key) {
            let what = match fault {
                Fault::Latency(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Fault::Truncate => {
                    truncate = true;
                    continue;
                }
                Fault::Status(s) => format!("HTTP {s}"),
                Fault::Unreachable => "connection refused".to_string(),
            };
            return Err(ObjStoreError::Injected {
                op: op.name(),
                key: key.to_string(),
                what,
            });
        }
        Ok(truncate)
    }

    /// Creates `key` with `data`; fails with `AlreadyExists` if it exists (create-only). A retry
    /// after an ambiguous failure that finds an object of the same size counts as success.
    pub async fn put_create(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key);
        let len = data.len() as u64;
        self.retry
            .run(Op::Put.name(), key, |n| {
                let (path, data) = (path.clone(), data.clone());
                async move {
                    let start = Instant::now();
                    let res = async {
                        if self.inject(Op::Put, key).await? {
                            return Err(ObjStoreError::Injected {
                                op: "put",
                                key: key.to_string(),
                                what: "request body cut short".into(),
                            });
                        }
                        let opts = PutOptions {
                            mode: PutMode::Create,
                            ..Default::default()
                        };
                        self.raw
                            .put_opts(&path, PutPayload::from_bytes(data), opts)
                            .await
                            .map_err(|e| ObjStoreError::from_backend(key, e))
                    }
                    .await;
                    crate::metrics::attempt("put", start.elapsed(), res.is_ok(), len);
                    match res {
                        Err(ObjStoreError::AlreadyExists(_)) if n > 0 => {
                            // Our earlier attempt may have landed without its answer.
                            let meta = self.head(key).await?;
                            if meta.size == len {
                                Ok(())
                            } else {
                                Err(ObjStoreError::AlreadyExists(key.to_string()))
                            }
                        }
                        r => r.map(|_| ()),
                    }
                }
            })
            .await
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key);
        self.retry
            .run(Op::Get.name(), key, |_| {
                let path = path.clone();
                async move {
                    let start = Instant::now();
                    let res = async {
                        let truncate = self.inject(Op::Get, key).await?;
                        let r = self
                            .raw
                            .get(&path)
                            .await
                            .map_err(|e| ObjStoreError::from_backend(key, e))?;
                        let expected = r.range.end - r.range.start;
                        let mut b = r
                            .bytes()
                            .await
                            .map_err(|e| ObjStoreError::from_backend(key, e))?;
                        if truncate {
                            b.truncate(b.len() / 2);
                        }
                        check_len(key, expected, b)
                    }
                    .await;
                    let n = res.as_ref().map(|b| b.len() as u64).unwrap_or(0);
                    crate::metrics::attempt("get", start.elapsed(), res.is_ok(), n);
                    res
                }
            })
            .await
    }

    /// Reads `range` of an object; exactly `range.end - range.start` bytes or an error.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key);
        let expected = range.end.saturating_sub(range.start);
        self.retry
            .run(Op::GetRange.name(), key, |_| {
                let (path, range) = (path.clone(), range.clone());
                async move {
                    let start = Instant::now();
                    let res = async {
                        let truncate = self.inject(Op::GetRange, key).await?;
                        let mut b = self
                            .raw
                            .get_range(&path, range)
                            .await
                            .map_err(|e| ObjStoreError::from_backend(key, e))?;
                        if truncate {
                            b.truncate(b.len() / 2);
                        }
                        check_len(key, expected, b)
                    }
                    .await;
                    let n = res.as_ref().map(|b| b.len() as u64).unwrap_or(0);
                    crate::metrics::attempt("get_range", start.elapsed(), res.is_ok(), n);
                    res
                }
            })
            .await
    }

    /// An object's size and modification time.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let path = self.path(key);
        self.retry
            .run(Op::Head.name(), key, |_| {
                let path = path.clone();
                async move {
                    let start = Instant::now();
                    let res = async {
                        self.inject(Op::Head, key).await?;
                        self.raw
                            .head(&path)
                            .await
                            .map_err(|e| ObjStoreError::from_backend(key, e))
                    }
                    .await;
                    crate::metrics::attempt("head", start.elapsed(), res.is_ok(), 0);
                    res.map(|m| self.info(m))
                }
            })
            .await
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        self.retry
            .run(Op::Delete.name(), key, |_| {
                let path = path.clone();
                async move {
                    let start = Instant::now();
                    let res = async {
                        self.inject(Op::Delete, key).await?;
                        match self.raw.delete(&path).await {
                            Err(object_store::Error::NotFound { .. }) => Ok(()),
                            r => r.map_err(|e| ObjStoreError::from_backend(key, e)),
                        }
                    }
                    .await;
                    crate::metrics::attempt("delete", start.elapsed(), res.is_ok(), 0);
                    res
                }
            })
            .await
    }

    /// Every object whose key starts with `prefix` (a whole `/`-separated segment path, or
    /// empty for all), keys relative to the store's prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let p = prefix.trim_matches('/');
        let path = match (self.prefix.is_empty(), p.is_empty()) {
            (true, true) => None,
            (true, false) => Some(Path::from(p)),
            (false, true) => Some(Path::from(self.prefix.as_str())),
            (false, false) => Some(Path::from(format!("{}/{p}", self.prefix))),
        };
        self.retry
            .run(Op::List.name(), prefix, |_| {
                let path = path.clone();
                async move {
                    let start = Instant::now();
                    let res = async {
                        self.inject(Op::List, prefix).await?;
                        self.raw
                            .list(path.as_ref())
                            .try_collect::<Vec<_>>()
                            .await
                            .map_err(|e| ObjStoreError::from_backend(prefix, e))
                    }
                    .await;
                    crate::metrics::attempt("list", start.elapsed(), res.is_ok(), 0);
                    res.map(|v| v.into_iter().map(|m| self.info(m)).collect())
                }
            })
            .await
    }

    fn info(&self, m: object_store::ObjectMeta) -> ObjectInfo {
        let full = m.location.as_ref();
        let key = if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(self.prefix.as_str())
                .map(|k| k.trim_start_matches('/'))
                .unwrap_or(full)
        };
        let modified: SystemTime = m.last_modified.into();
        ObjectInfo {
            key: key.to_string(),
            size: m.size,
            last_modified_ms: modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

fn check_len(key: &str, expected: u64, b: Bytes) -> Result<Bytes> {
    if b.len() as u64 == expected {
        Ok(b)
    } else {
        Err(ObjStoreError::Truncated {
            key: key.to_string(),
            expected,
            got: b.len() as u64,
        })
    }
}
