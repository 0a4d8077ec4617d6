//! Caches described by data: a URL, a config file (TOML, JSON, YAML — anything serde reads)
//! or environment variables.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use cache_core::{
    AiocacheKeyBuilder, Cache, CacheBuilder, DEFAULT_TIMEOUT, DefaultKeyBuilder, Error,
    HitMissRatioPlugin, Result, TimingPlugin, TracingPlugin, duration, plugins::KeyMode,
};
use serde::{Deserialize, Serialize};

use crate::key_format::KeyFormat;
use crate::serializer::{AnySerializer, CompressionName, SerializerName};
use crate::tier::TierConfig;
use crate::url::{self, CacheParams};

/// A cache whose serializer was chosen at run time: what [`CacheConfig::build`],
/// [`from_url`](crate::from_url) and [`Caches`](crate::Caches) give.
pub type AnyCache = Cache<AnySerializer>;

/// How the tracing plugin shows keys (`omit` by default: keys often hold personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TracingKeys {
    /// No keys.
    #[default]
    Omit,
    /// Keys as given.
    Plain,
    /// A short stable hash of each key.
    Hashed,
}

/// A plugin named in a config file: `{ type = "tracing", keys = "hashed" }`.
///
/// The figures of `timing` and `hit_miss` plugins built from config are read with
/// [`Cache::find_plugin`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum PluginConfig {
    /// [`TimingPlugin`]: count, min, max, mean and total per command. (A struct variant
    /// without fields, so that a stray field in a config file is refused.)
    Timing {},
    /// [`HitMissRatioPlugin`]: hits and misses of reads.
    #[serde(alias = "hit_miss_ratio")]
    HitMiss {},
    /// [`TracingPlugin`]: a span and an event per command.
    Tracing {
        /// Level of successful commands: `trace`, `debug` (default), `info`, `warn`, `error`.
        #[serde(default)]
        level: Option<String>,
        /// Level of failed commands (default `warn`).
        #[serde(default)]
        error_level: Option<String>,
        /// How keys are shown (default: not at all).
        #[serde(default)]
        keys: TracingKeys,
    },
    /// `MetricsPlugin` (feature `metrics`): counters and latency histograms.
    Metrics {
        /// The metric name prefix (default `stratacache`, as `MetricsPlugin::new()`).
        #[serde(default)]
        prefix: Option<String>,
    },
}

impl PluginConfig {
    /// Parses the short form used in environment variables: `timing`, `hit_miss`,
    /// `tracing`, `metrics` (each with default settings).
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) naming the unknown plugin.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "timing" => Ok(PluginConfig::Timing {}),
            "hit_miss" | "hit_miss_ratio" => Ok(PluginConfig::HitMiss {}),
            "tracing" => Ok(PluginConfig::Tracing {
                level: None,
                error_level: None,
                keys: TracingKeys::Omit,
            }),
            "metrics" => Ok(PluginConfig::Metrics { prefix: None }),
            _ => Err(Error::config(format!(
                "unknown plugin {name:?}; expected timing, hit_miss, tracing or metrics"
            ))),
        }
    }

    fn add_to<S: cache_core::Serializer>(
        &self,
        builder: CacheBuilder<S>,
    ) -> Result<CacheBuilder<S>> {
        Ok(match self {
            PluginConfig::Timing {} => builder.plugin(TimingPlugin::new()),
            PluginConfig::HitMiss {} => builder.plugin(HitMissRatioPlugin::new()),
            PluginConfig::Tracing {
                level,
                error_level,
                keys,
            } => {
                let mut plugin = TracingPlugin::new().key_mode(match keys {
                    TracingKeys::Omit => KeyMode::Omit,
                    TracingKeys::Plain => KeyMode::Plain,
                    TracingKeys::Hashed => KeyMode::Hashed,
                });
                if let Some(level) = level {
                    plugin = plugin.level(parse_level("level", level)?);
                }
                if let Some(level) = error_level {
                    plugin = plugin.error_level(parse_level("error_level", level)?);
                }
                builder.plugin(plugin)
            }
            #[cfg(feature = "metrics")]
            PluginConfig::Metrics { prefix } => builder.plugin(match prefix {
                Some(p) => cache_core::MetricsPlugin::with_prefix(p.clone()),
                None => cache_core::MetricsPlugin::new(),
            }),
            #[cfg(not(feature = "metrics"))]
            PluginConfig::Metrics { .. } => {
                return Err(Error::config(
                    "plugin `metrics` needs the `metrics` feature of stratacache \
                     (features = [\"metrics\"] in Cargo.toml)",
                ));
            }
        })
    }
}

fn parse_level(field: &str, text: &str) -> Result<tracing::Level> {
    text.parse().map_err(|_| {
        Error::config(format!(
            "tracing plugin `{field}` is {text:?}; expected trace, debug, info, warn or error"
        ))
    })
}

/// One cache described as data.
///
/// The `url` picks the backend and holds its settings (see [`from_url`](crate::from_url) for
/// every form); the other fields are the cache's. A setting may be written in the URL
/// (`?namespace=users`) or as a field, not both. Unknown fields are refused, so a typo is an
/// error rather than a silently ignored setting.
///
/// ```toml
/// url = "redis://cache.internal:6379/0?pool_size=4"
/// namespace = "users"
/// ttl = "5m"          # default TTL of writes; leave out for entries that never expire
/// timeout = "50ms"    # per command; "0" disables; default 5s
/// serializer = "json" # json, python-json, utf8, bytes, msgpack, cbor
/// compression = "zstd" # or "lz4": encodings of 1 KiB or more compressed; none by default
/// key_builder = "default" # or "aiocache"
/// plugins = [{ type = "tracing", keys = "hashed" }, { type = "hit_miss" }]
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stratacache::Result<()> {
/// use stratacache::CacheConfig;
///
/// let config: CacheConfig = serde_json::from_str(
///     r#"{ "url": "memory://?max_entries=10000", "namespace": "users", "ttl": "5m" }"#,
/// ).unwrap();
/// let cache = config.build().await?;
/// cache.set("42", &"Ada").await?;
/// assert_eq!(cache.get::<String>("42").await?.as_deref(), Some("Ada"));
/// # Ok(()) }
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The backend: `memory://…`, `redis://…` (every Redis form), `memcached://…`.
    pub url: String,
    /// The namespace of every key; none by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The default TTL of writes; none (entries never expire) by default.
    #[serde(default, with = "duration::serde::option")]
    pub ttl: Option<Duration>,
    /// The deadline of each command; 5 s by default, `0` disables it.
    #[serde(default, with = "duration::serde::option")]
    pub timeout: Option<Duration>,
    /// The serializer of values; `json` by default.
    #[serde(default)]
    pub serializer: Option<SerializerName>,
    /// Compression of the serializer's encodings of 1 KiB or more (`zstd`, `lz4`); none by
    /// default.
    #[serde(default)]
    pub compression: Option<CompressionName>,
    /// How keys are built; `default` by default.
    #[serde(default)]
    pub key_builder: Option<KeyFormat>,
    /// Plugins, in the order they run.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// A local level in front of the backend (feature `tiered`); none by default.
    #[serde(default)]
    pub tier: Option<TierConfig>,
}

/// Serializes the effective configuration, for a service to print or log: the URL with its
/// user-info and secret-like parameters replaced by `***` (as `Debug` shows it), the other
/// fields as they are, fields not set left out. What it writes reads back as a config, but
/// without the password.
///
/// ```
/// use stratacache::CacheConfig;
///
/// let config = CacheConfig::new("redis://app:s3cret@cache.internal:6379").namespace("users");
/// let shown = serde_json::to_string(&config).unwrap();
/// assert_eq!(shown, r#"{"url":"redis://***@cache.internal:6379","namespace":"users"}"#);
/// ```
impl Serialize for CacheConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            url: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            namespace: &'a Option<String>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "duration::serde::option"
            )]
            ttl: &'a Option<Duration>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "duration::serde::option"
            )]
            timeout: &'a Option<Duration>,
            #[serde(skip_serializing_if = "Option::is_none")]
            serializer: &'a Option<SerializerName>,
            #[serde(skip_serializing_if = "Option::is_none")]
            compression: &'a Option<CompressionName>,
            #[serde(skip_serializing_if = "Option::is_none")]
            key_builder: &'a Option<KeyFormat>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            plugins: &'a Vec<PluginConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tier: &'a Option<TierConfig>,
        }
        Shown {
            url: cache_core::url::redact(&self.url),
            namespace: &self.namespace,
            ttl: &self.ttl,
            timeout: &self.timeout,
            serializer: &self.serializer,
            compression: &self.compression,
            key_builder: &self.key_builder,
            plugins: &self.plugins,
            tier: &self.tier,
        }
        .serialize(s)
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("url", &cache_core::url::redact(&self.url))
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("serializer", &self.serializer)
            .field("compression", &self.compression)
            .field("key_builder", &self.key_builder)
            .field("plugins", &self.plugins)
            .field("tier", &self.tier)
            .finish()
    }
}

/// The environment variables [`CacheConfig::from_env`] reads, after the prefix and `_`.
const ENV_FIELDS: [&str; 8] = [
    "URL",
    "NAMESPACE",
    "TTL",
    "TIMEOUT",
    "SERIALIZER",
    "COMPRESSION",
    "KEY_BUILDER",
    "PLUGINS",
];

impl CacheConfig {
    /// A config with only a URL (every other setting may be in its query).
    pub fn new(url: impl Into<String>) -> Self {
        CacheConfig {
            url: url.into(),
            ..CacheConfig::default()
        }
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the default TTL of writes.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the per-command deadline (zero disables it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the serializer.
    pub fn serializer(mut self, serializer: SerializerName) -> Self {
        self.serializer = Some(serializer);
        self
    }

    /// Sets the compression of large encodings.
    pub fn compression(mut self, compression: CompressionName) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Adds a plugin.
    pub fn plugin(mut self, plugin: PluginConfig) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Puts a local level in front of the backend (feature `tiered`).
    pub fn tier(mut self, tier: TierConfig) -> Self {
        self.tier = Some(tier);
        self
    }

    /// Reads `{PREFIX}_URL` (required), `{PREFIX}_NAMESPACE`, `{PREFIX}_TTL`,
    /// `{PREFIX}_TIMEOUT`, `{PREFIX}_SERIALIZER`, `{PREFIX}_COMPRESSION`, `{PREFIX}_KEY_BUILDER` and
    /// `{PREFIX}_PLUGINS` (comma-separated names: `tracing,hit_miss`) from the process
    /// environment. See [`from_vars`](Self::from_vars).
    ///
    /// # Errors
    /// As [`from_vars`](Self::from_vars).
    pub fn from_env(prefix: &str) -> Result<Self> {
        Self::from_vars(
            prefix,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Reads the variables of [`from_env`](Self::from_env) from `vars` (name, value).
    ///
    /// ```
    /// use stratacache::CacheConfig;
    ///
    /// let config = CacheConfig::from_vars("APP_CACHE", [
    ///     ("APP_CACHE_URL", "memory://"),
    ///     ("APP_CACHE_TTL", "30s"),
    ///     ("APP_CACHE_PLUGINS", "tracing, hit_miss"),
    ///     ("HOME", "/root"),
    /// ])?;
    /// assert_eq!(config.ttl, Some(std::time::Duration::from_secs(30)));
    /// assert_eq!(config.plugins.len(), 2);
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) naming the variable: `{PREFIX}_URL`
    /// missing, a value that does not parse, or an unknown `{PREFIX}_…` variable (a typo
    /// such as `APP_CACHE_TIMEOUTS` is refused rather than ignored).
    pub fn from_vars<I, K, V>(prefix: &str, vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let head = format!("{prefix}_");
        let mut config = CacheConfig::default();
        let mut url = None;
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            let Some(field) = name.strip_prefix(&head) else {
                continue;
            };
            let bad = |m: String| Error::config(format!("environment variable {name}: {m}"));
            match field {
                "URL" => url = Some(value.to_owned()),
                "NAMESPACE" => config.namespace = Some(value.to_owned()),
                "TTL" => config.ttl = Some(duration::parse(value).map_err(bad)?),
                "TIMEOUT" => config.timeout = Some(duration::parse(value).map_err(bad)?),
                "SERIALIZER" => {
                    config.serializer =
                        Some(value.parse().map_err(|e: Error| bad(e.message().into()))?)
                }
                "COMPRESSION" => {
                    config.compression =
                        Some(value.parse().map_err(|e: Error| bad(e.message().into()))?)
                }
                "KEY_BUILDER" => {
                    config.key_builder =
                        Some(value.parse().map_err(|e: Error| bad(e.message().into()))?)
                }
                "PLUGINS" => {
                    config.plugins = value
                        .split(',')
                        .filter(|p| !p.trim().is_empty())
                        .map(PluginConfig::from_name)
                        .collect::<Result<_>>()
                        .map_err(|e| bad(e.message().into()))?;
                }
                _ => {
                    return Err(Error::config(format!(
                        "unknown environment variable {name}; expected {}",
                        ENV_FIELDS
                            .iter()
                            .map(|f| format!("{head}{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        config.url = url.ok_or_else(|| {
            Error::config(format!(
                "environment variable {head}URL is not set; set it to memory://, \
                 redis://host:6379 or memcached://host:11211"
            ))
        })?;
        Ok(config)
    }

    /// Connects to the backend and builds the cache.
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) for a bad URL or setting (naming it), a
    /// backend or serializer whose feature is off (naming the feature), a setting given
    /// both in the URL and as a field; the backend's connection errors.
    ///
    /// # Cancel safety
    /// Dropping the future before it ends leaves nothing behind.
    pub async fn build(&self) -> Result<AnyCache> {
        let parsed = url::parse(&self.url)?;
        let params = self.merge(parsed.params)?;
        let serializer = AnySerializer::with_compression(
            params.serializer.unwrap_or_default(),
            params.compression,
        )?;
        let key_format = params.key_builder.unwrap_or_default();
        let (backend, flavor, tier) = match &params.tier {
            None => {
                let (backend, flavor) = parsed
                    .backend
                    .connect(&parsed.backend_url, key_format)
                    .await?;
                (backend, flavor, None)
            }
            #[cfg(feature = "tiered")]
            Some(tier) => {
                let (backend, flavor, layer) =
                    crate::tier::build::connect(crate::tier::build::Parts {
                        tier,
                        entry: parsed.backend,
                        backend_url: &parsed.backend_url,
                        namespace: params.namespace.as_deref(),
                        key_format,
                    })
                    .await?;
                (backend, flavor, Some(layer))
            }
            #[cfg(not(feature = "tiered"))]
            Some(_) => {
                return Err(Error::config(
                    "a tier needs the `tiered` feature of stratacache \
                     (features = [\"tiered\"] in Cargo.toml)",
                ));
            }
        };
        let mut builder = Cache::builder(backend).serializer(serializer);
        #[cfg(feature = "tiered")]
        if let Some(tier) = tier {
            builder = builder.layer(tier);
        }
        #[cfg(not(feature = "tiered"))]
        let _: Option<()> = tier;
        if let Some(ns) = params.namespace {
            builder = builder.namespace(ns);
        }
        if let Some(ttl) = params.ttl {
            builder = builder.ttl(ttl);
        }
        builder = builder.timeout(params.timeout.unwrap_or(Some(DEFAULT_TIMEOUT)));
        builder = match key_format {
            KeyFormat::Default => builder.key_builder(DefaultKeyBuilder),
            KeyFormat::Aiocache => builder.key_builder(AiocacheKeyBuilder::new(flavor)),
        };
        for plugin in &self.plugins {
            builder = plugin.add_to(builder)?;
        }
        Ok(builder.build())
    }

    /// The URL's cache-level parameters and the fields, checked for conflicts.
    fn merge(&self, from_url: CacheParams) -> Result<CacheParams> {
        fn one<T>(name: &str, url: Option<T>, field: Option<T>) -> Result<Option<T>> {
            match (url, field) {
                (Some(_), Some(_)) => Err(Error::config(format!(
                    "`{name}` is set both in the URL and as a field; keep one"
                ))),
                (u, f) => Ok(u.or(f)),
            }
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(
                "`ttl`: a default TTL of 0 would make every write fail; leave `ttl` out for \
                 entries that never expire",
            ));
        }
        Ok(CacheParams {
            namespace: one("namespace", from_url.namespace, self.namespace.clone())?,
            ttl: one("ttl", from_url.ttl, self.ttl)?,
            timeout: one(
                "timeout",
                from_url.timeout,
                self.timeout.map(|t| Some(t).filter(|d| !d.is_zero())),
            )?,
            serializer: one("serializer", from_url.serializer, self.serializer)?,
            compression: one("compression", from_url.compression, self.compression)?,
            key_builder: one("key_builder", from_url.key_builder, self.key_builder)?,
            tier: one("tier", from_url.tier, self.tier.clone())?,
        })
    }
}

/// Several named caches described as data: a TOML table of tables, a JSON object, …
///
/// ```toml
/// [default]
/// url = "memory://"
///
/// [sessions]
/// url = "redis://127.0.0.1:6379"
/// namespace = "sessions"
/// ttl = "30m"
/// ```
pub type CachesConfig = BTreeMap<String, CacheConfig>;

/// Builds a cache from a URL: the scheme picks the backend, the query holds its settings
/// and the cache's.
///
/// | scheme | backend | feature |
/// |---|---|---|
/// | `memory://?max_entries=100000&max_bytes=256m` | in-process memory | `memory` (default) |
/// | `redis://[user:password@]host[:port][/db]` | Redis / Valkey | `redis` |
/// | `rediss://…` | Redis over TLS | `redis-tls` |
/// | `redis-cluster://host:port?node=host2:port…` | Redis Cluster | `redis` |
/// | `redis-sentinel://host:port?service_name=mymaster` | Redis behind Sentinel | `redis` |
/// | `redis+unix:///path/to/redis.sock` | Redis on a Unix socket | `redis` |
/// | `valkey://…`, `valkeys://…`, `valkey-cluster://…` | the same, Valkey spellings | as above |
/// | `memcached://host1:11211,host2:11211?pool_size=8` | Memcached, one ring of servers | `memcached` |
///
/// Every scheme also takes the cache-level parameters `namespace`, `ttl` (`5m`),
/// `timeout` (`50ms`; `none` or `0` disables it; default 5 s), `serializer` (`json`,
/// `python-json`, `utf8`, `bytes`, `msgpack`, `cbor`) and `key_builder` (`default`,
/// `aiocache`). The backend parameters are listed on `RedisConfig::from_url` and
/// `MemcachedConfig::from_url` of the backend crates.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stratacache::Result<()> {
/// let cache = stratacache::from_url("memory://?namespace=users&ttl=5m&timeout=50ms").await?;
/// cache.set("42", &"Ada").await?;
/// assert_eq!(cache.default_namespace(), Some("users"));
///
/// let err = stratacache::from_url("memory://?tll=5m").await.unwrap_err();
/// assert!(err.to_string().contains("unknown memory:// parameter `tll`"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Config`](cache_core::ErrorKind::Config) naming the unknown scheme, the bad or unknown
/// parameter, or the feature to enable; the backend's connection errors. Messages never
/// repeat a password.
pub async fn from_url(url: &str) -> Result<AnyCache> {
    CacheConfig::new(url).build().await
}

/// `Cache::from_url(…)`: [`from_url`] as an associated function of [`Cache`] (in the
/// prelude).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stratacache::Result<()> {
/// use stratacache::prelude::*;
///
/// let cache = Cache::from_url("memory://?namespace=users").await?;
/// cache.set("42", &1).await?;
/// # Ok(()) }
/// ```
pub trait FromUrl: Sized {
    /// Builds a cache from `url`; see [`from_url`].
    ///
    /// # Errors
    /// As [`from_url`].
    fn from_url(url: &str) -> impl Future<Output = Result<Self>> + Send;
}

impl FromUrl for AnyCache {
    fn from_url(url: &str) -> impl Future<Output = Result<Self>> + Send {
        from_url(url)
    }
}
