//! [`Caches`]: named caches built from config, shared by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use cache_core::{Error, Result};
use tokio::sync::OnceCell;

use crate::config::{AnyCache, CacheConfig, CachesConfig};

/// A registry of named caches: the config of each name, and one shared instance per name,
/// built on first use.
///
/// [`get`](Self::get) returns the shared instance (every caller of `get("users")` sees the
/// same cache and the same connections); [`create`](Self::create) and
/// [`create_with`](Self::create_with) build a new, separate instance (for a memory backend:
/// a separate store), optionally with settings overridden. The registry is a value, not a
/// global: keep it in your application state, clone it freely (clones share the instances).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stratacache::Result<()> {
/// use stratacache::{CacheConfig, Caches};
///
/// let caches = Caches::new([
///     ("default", CacheConfig::new("memory://")),
///     ("users", CacheConfig::new("memory://?max_entries=10000").namespace("users")),
/// ]);
/// let users = caches.get("users").await?;
/// users.set("42", &"Ada").await?;
/// // The same instance, by name:
/// assert_eq!(caches.get("users").await?.get::<String>("42").await?.as_deref(), Some("Ada"));
/// // A new instance, with an override:
/// let admins = caches.create_with("users", |c| c.namespace = Some("admins".into())).await?;
/// assert_eq!(admins.default_namespace(), Some("admins"));
/// assert!(caches.get("nope").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Caches {
    inner: Arc<BTreeMap<String, Entry>>,
}

struct Entry {
    config: CacheConfig,
    shared: OnceCell<AnyCache>,
}

impl fmt::Debug for Caches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.inner.iter().map(|(name, entry)| {
                (
                    name,
                    format!(
                        "{:?} ({})",
                        entry.config,
                        if entry.shared.initialized() {
                            "built"
                        } else {
                            "not built"
                        }
                    ),
                )
            }))
            .finish()
    }
}

impl Caches {
    /// A registry of the given names and configs (a later entry with the same name
    /// replaces an earlier one).
    pub fn new<I, N>(configs: I) -> Self
    where
        I: IntoIterator<Item = (N, CacheConfig)>,
        N: Into<String>,
    {
        let map = configs
            .into_iter()
            .map(|(name, config)| {
                (
                    name.into(),
                    Entry {
                        config,
                        shared: OnceCell::new(),
                    },
                )
            })
            .collect();
        Caches {
            inner: Arc::new(map),
        }
    }

    /// A registry from a [`CachesConfig`] (a table of named cache configs, as read from a
    /// config file).
    pub fn from_config(config: CachesConfig) -> Self {
        Caches::new(config)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.keys().map(String::as_str)
    }

    /// The config of `name`.
    pub fn config(&self, name: &str) -> Option<&CacheConfig> {
        self.inner.get(name).map(|e| &e.config)
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.inner.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.names().collect();
            Error::config(format!(
                "no cache named {name:?}; configured: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The shared cache of `name`, built (connected) on the first call; concurrent first
    /// calls build it once. A failed build is not remembered: the next call tries again.
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) for an unknown name (listing the known
    /// ones); whatever [`CacheConfig::build`] returns.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled first call leaves the instance unbuilt.
    pub async fn get(&self, name: &str) -> Result<AnyCache> {
        let entry = self.entry(name)?;
        entry
            .shared
            .get_or_try_init(|| entry.config.build())
            .await
            .cloned()
            .map_err(|e| e.with_context("cache", name))
    }

    /// A new cache of `name`'s config, separate from the shared one.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn create(&self, name: &str) -> Result<AnyCache> {
        self.create_with(name, |_| {}).await
    }

    /// A new cache of `name`'s config with `overrides` applied to a copy of it (aiocache's
    /// `caches.create(alias, **kwargs)`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn create_with<F>(&self, name: &str, overrides: F) -> Result<AnyCache>
    where
        F: FnOnce(&mut CacheConfig),
    {
        let mut config = self.entry(name)?.config.clone();
        overrides(&mut config);
        config
            .build()
            .await
            .map_err(|e| e.with_context("cache", name))
    }

    /// Closes every shared cache built so far (caches from `create` are their owner's to
    /// close). Later `get` calls return the closed instances, whose commands fail with
    /// [`Closed`](cache_core::ErrorKind::Closed).
    ///
    /// # Errors
    /// The first error of a backend's close; every cache is closed regardless.
    pub async fn close_all(&self) -> Result<()> {
        let mut first = None;
        for entry in self.inner.values() {
            if let Some(cache) = entry.shared.get()
                && let Err(e) = cache.close().await
            {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
