//! Choosing and opening a metadata store from configuration.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};
use crate::{EtcdOptions, EtcdStore, LocalStore, MetadataStore};

/// Which metadata store a node uses.
///
/// In a config file: `{ backend = "etcd", endpoints = ["http://10.0.0.1:2379"] }` or
/// `{ backend = "local", path = "data/meta.redb" }`. On a command line, see
/// [`StoreConfig::from_url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// An etcd cluster.
    Etcd {
        /// Client URLs of its members.
        endpoints: Vec<String>,
    },
    /// The embedded store (one process only: `strata standalone`).
    Local {
        /// The redb file.
        path: PathBuf,
    },
}

impl StoreConfig {
    /// Parses `etcd://host:port[,host:port...]` or `local:PATH` (a bare path means local).
    pub fn from_url(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("etcd://") {
            let endpoints: Vec<String> = rest
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|hp| format!("http://{hp}"))
                .collect();
            if endpoints.is_empty() {
                return Err(MetaError::InvalidArgument(format!(
                    "no etcd endpoint in {url:?}"
                )));
            }
            return Ok(Self::Etcd { endpoints });
        }
        let path = url.strip_prefix("local:").unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(MetaError::InvalidArgument(format!(
                "metadata store {url:?}: expected etcd://host:port,... or local:PATH"
            )));
        }
        Ok(Self::Local { path: path.into() })
    }

    /// Opens the store (connects to etcd, or opens the local file).
    pub async fn open(&self) -> Result<Arc<dyn MetadataStore>> {
        Ok(match self {
            Self::Etcd { endpoints } => {
                Arc::new(EtcdStore::connect(EtcdOptions::new(endpoints.clone())).await?)
            }
            Self::Local { path } => Arc::new(LocalStore::open(path).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreConfig::from_url("etcd://a:1,b:2").unwrap(),
            StoreConfig::Etcd {
                endpoints: vec!["http://a:1".into(), "http://b:2".into()]
            }
        );
        assert_eq!(
            StoreConfig::from_url("local:/x/m.redb").unwrap(),
            StoreConfig::Local {
                path: "/x/m.redb".into()
            }
        );
        assert!(StoreConfig::from_url("etcd://").is_err());
        assert!(StoreConfig::from_url("zk://x").is_err());
        let c: StoreConfig = serde_json::from_str(r#"{"backend":"local","path":"m"}"#).unwrap();
        assert_eq!(c, StoreConfig::Local { path: "m".into() });
        assert!(
            serde_json::from_str::<StoreConfig>(r#"{"backend":"local","path":"m","x":1}"#).is_err()
        );
    }
}
