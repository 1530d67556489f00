//! Versioned JSON: every stored value is a JSON object with a `"v"` field (its format version)
//! next to the model's own fields.
//!
//! Readers accept any `v` up to their own [`Model::VERSION`] (older ones go through
//! [`Model::upgrade`]) and ignore fields they do not know, so a newer writer can add optional
//! fields without bumping `v`; an incompatible change bumps `v`, and an older reader then fails
//! with a clear [`MetaError::Decode`] instead of misreading the value.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{MetaError, Result};

/// Name of the version field.
pub const VERSION_FIELD: &str = "v";

/// A value stored as versioned JSON.
pub trait Model: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The format version this build writes.
    const VERSION: u32 = 1;

    /// Rewrites a JSON object written with format `from` (< [`Model::VERSION`]) into the current
    /// format. The default accepts it as is.
    fn upgrade(from: u32, value: Value) -> std::result::Result<Value, String> {
        let _ = from;
        Ok(value)
    }
}

/// Serializes `value` with its version field.
pub fn encode<T: Model>(value: &T) -> Result<Bytes> {
    let mut json =
        serde_json::to_value(value).map_err(|e| MetaError::InvalidArgument(e.to_string()))?;
    let Value::Object(map) = &mut json else {
        return Err(MetaError::InvalidArgument(
            "a model must serialize to a JSON object".into(),
        ));
    };
    map.insert(VERSION_FIELD.to_owned(), Value::from(T::VERSION));
    serde_json::to_vec(&json)
        .map(Bytes::from)
        .map_err(|e| MetaError::InvalidArgument(e.to_string()))
}

/// Decodes the value stored at `key` (the key is only used in errors).
pub fn decode<T: Model>(key: &str, bytes: &[u8]) -> Result<T> {
    let err = |reason: String| MetaError::Decode {
        key: key.to_owned(),
        reason,
    };
    let mut json: Value = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let Value::Object(map) = &mut json else {
        return Err(err("not a JSON object".into()));
    };
    let v = map
        .remove(VERSION_FIELD)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| err("missing version field \"v\"".into()))?;
    let v = u32::try_from(v).map_err(|_| err(format!("bad version {v}")))?;
    if v > T::VERSION {
        return Err(err(format!(
            "written with format {v}, this build reads up to {}",
            T::VERSION
        )));
    }
    if v < T::VERSION {
        json = T::upgrade(v, json).map_err(err)?;
    }
    serde_json::from_value(json).map_err(|e| err(e.to_string()))
}
