//! The backends a cache URL can name: one entry per backend crate (or per feature of one),
//! each with its schemes and, when its feature is on, its constructor.
//!
//! Adding a backend: a crate whose config type implements [`UrlConfig`], an optional
//! dependency and feature in `Cargo.toml`, an entry in [`BACKENDS`], and its re-exports in
//! `lib.rs`. The entry spells the schemes out so that a URL naming a backend whose feature is
//! off gets an error naming the feature; a test checks them against the crate's own list.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(any(feature = "memory", feature = "redis", feature = "memcached"))]
use cache_core::url::UrlConfig;
use cache_core::{AiocacheFlavor, Backend, Error, Result};

use crate::key_format::KeyFormat;

/// What connecting gives: the backend and the aiocache key flavor that matches it.
type Connected = Result<(Arc<dyn Backend>, AiocacheFlavor)>;

/// Builds a backend from the backend part of a URL.
type Connect =
    for<'a> fn(&'a str, KeyFormat) -> Pin<Box<dyn Future<Output = Connected> + Send + 'a>>;

/// One backend a URL can name.
pub(crate) struct Entry {
    /// The feature of stratacache that compiles it in.
    pub(crate) feature: &'static str,
    /// Its schemes, lower case.
    pub(crate) schemes: &'static [&'static str],
    /// Its constructor; `None` when the feature is off.
    connect: Option<Connect>,
}

/// Every backend, in the order error messages list their schemes.
pub(crate) const BACKENDS: &[Entry] = &[
    Entry {
        feature: "memory",
        schemes: &["memory"],
        #[cfg(feature = "memory")]
        connect: Some(connect_with::<cache_memory::MemoryConfig>),
        #[cfg(not(feature = "memory"))]
        connect: None,
    },
    Entry {
        feature: "redis",
        schemes: &[
            "redis",
            "redis-cluster",
            "redis-sentinel",
            "redis+unix",
            "valkey",
            "valkey-cluster",
            "valkey-sentinel",
            "valkey+unix",
        ],
        #[cfg(feature = "redis")]
        connect: Some(connect_with::<cache_redis::RedisConfig>),
        #[cfg(not(feature = "redis"))]
        connect: None,
    },
    Entry {
        feature: "redis-tls",
        schemes: &[
            "rediss",
            "rediss-cluster",
            "rediss-sentinel",
            "valkeys",
            "valkeys-cluster",
            "valkeys-sentinel",
        ],
        #[cfg(feature = "redis-tls")]
        connect: Some(connect_with::<cache_redis::RedisConfig>),
        #[cfg(not(feature = "redis-tls"))]
        connect: None,
    },
    Entry {
        feature: "memcached",
        schemes: &["memcached"],
        #[cfg(feature = "memcached")]
        connect: Some(connect_with::<cache_memcached::MemcachedConfig>),
        #[cfg(not(feature = "memcached"))]
        connect: None,
    },
];

/// Reads the backend's part of a URL with `C`, refuses what `key_format` cannot work with,
/// and connects.
#[cfg(any(feature = "memory", feature = "redis", feature = "memcached"))]
fn connect_with<C: UrlConfig>(
    backend_url: &str,
    key_format: KeyFormat,
) -> Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
    Box::pin(async move {
        let config = C::from_url(backend_url)?;
        if key_format == KeyFormat::Aiocache {
            config.check_aiocache_keys()?;
        }
        Ok((config.connect().await?, C::AIOCACHE_FLAVOR))
    })
}

impl Entry {
    /// The entry of `scheme` (lower case), if any backend has it.
    pub(crate) fn find(scheme: &str) -> Option<&'static Entry> {
        BACKENDS.iter().find(|b| b.schemes.contains(&scheme))
    }

    /// Whether its feature is on.
    pub(crate) fn is_available(&self) -> bool {
        self.connect.is_some()
    }

    /// Builds the backend from the backend part of a URL. Refuses, before connecting, a
    /// backend setting that would store other keys than `key_format` builds.
    pub(crate) async fn connect(&self, backend_url: &str, key_format: KeyFormat) -> Connected {
        match self.connect {
            Some(connect) => connect(backend_url, key_format).await,
            // `url::parse` refuses schemes whose feature is off; this is never reached.
            None => Err(Error::config(format!(
                "the backend needs the `{}` feature of stratacache",
                self.feature
            ))),
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("feature", &self.feature)
            .field("schemes", &self.schemes)
            .field("available", &self.is_available())
            .finish()
    }
}

/// Every scheme of every backend.
pub(crate) fn all_schemes() -> impl Iterator<Item = &'static str> {
    BACKENDS.iter().flat_map(|b| b.schemes.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schemes spelled out here are each crate's own, split by feature.
    #[test]
    fn the_schemes_are_the_backend_crates_own() {
        fn of(features: &[&str]) -> Vec<&'static str> {
            let mut schemes: Vec<&str> = BACKENDS
                .iter()
                .filter(|b| features.contains(&b.feature))
                .flat_map(|b| b.schemes.iter().copied())
                .collect();
            schemes.sort_unstable();
            schemes
        }
        fn sorted(schemes: &[&'static str]) -> Vec<&'static str> {
            let mut schemes = schemes.to_vec();
            schemes.sort_unstable();
            schemes
        }
        #[cfg(feature = "memory")]
        assert_eq!(of(&["memory"]), sorted(cache_memory::SCHEMES));
        #[cfg(feature = "redis")]
        assert_eq!(of(&["redis", "redis-tls"]), sorted(cache_redis::SCHEMES));
        #[cfg(feature = "memcached")]
        assert_eq!(of(&["memcached"]), sorted(cache_memcached::SCHEMES));
        let _ = (of, sorted);
        let mut all: Vec<&str> = all_schemes().collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a scheme is listed twice");
    }

    #[test]
    fn tls_schemes_need_the_tls_feature() {
        for scheme in all_schemes() {
            let tls = scheme.starts_with("rediss") || scheme.starts_with("valkeys");
            assert_eq!(Entry::find(scheme).unwrap().feature == "redis-tls", tls);
        }
    }
}
