//! [`KeyFormat`]: which key builder a cache described as data uses.

use std::str::FromStr;

use cache_core::{Error, Result};
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use cache_core::{AiocacheKeyBuilder, DefaultKeyBuilder};

/// How keys are built from namespaces and user keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyFormat {
    /// [`DefaultKeyBuilder`]: `{namespace}:{key}`, the namespace escaped (`default`).
    #[default]
    Default,
    /// [`AiocacheKeyBuilder`]: the keys aiocache 0.12 builds for the same backend, to share
    /// a store with Python services (`aiocache`).
    Aiocache,
}

impl FromStr for KeyFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(KeyFormat::Default),
            "aiocache" => Ok(KeyFormat::Aiocache),
            _ => Err(Error::config(format!(
                "unknown key builder {s:?}; expected default or aiocache"
            ))),
        }
    }
}
