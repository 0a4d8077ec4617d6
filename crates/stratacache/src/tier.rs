//! The `[tier]` table of a cache config and the `tier…` URL parameters: a local level in
//! front of the backend (feature `tiered`).

use std::fmt;
use std::time::Duration;

use cache_core::{Error, Result, duration};
use serde::{Deserialize, Serialize};

/// The URL parameters of the tier: `tier` (the channel, which turns the tier on) and the
/// settings, each `tier_` and the field name.
pub(crate) const TIER_PARAMS: [&str; 9] = [
    "tier",
    "tier_max_entries",
    "tier_max_bytes",
    "tier_local_ttl",
    "tier_channel",
    "tier_backplane",
    "tier_prefix",
    "tier_heartbeat",
    "tier_heartbeat_timeout",
];

/// How the local levels of several instances are kept coherent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InvalidationName {
    /// RESP3 client tracking on the Redis backend's own connections (Redis URLs only).
    Tracking,
    /// A Redis pub/sub backplane: the cache's own Redis, or `backplane`.
    Pubsub,
    /// No channel: a change made elsewhere is seen when the local copy ends.
    None,
}

impl std::str::FromStr for InvalidationName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "tracking" | "client_tracking" => Ok(InvalidationName::Tracking),
            "pubsub" | "pub_sub" => Ok(InvalidationName::Pubsub),
            "none" | "local" => Ok(InvalidationName::None),
            _ => Err(Error::config(format!(
                "tier: unknown invalidation {:?}; expected tracking, pubsub or none",
                cache_core::url::shorten(s)
            ))),
        }
    }
}

/// The local level of a cache described as data (feature `tiered`): the `[tier]` table of a
/// config file, or the `tier…` parameters of a URL.
///
/// ```toml
/// [tier]
/// invalidation = "pubsub"      # tracking, pubsub or none (required)
/// max_entries = 100000         # default 10000
/// max_bytes = 268435456        # default 64 MiB (a URL takes 256m)
/// local_ttl = "30s"            # default 30s, at most 1h
/// channel = "users"            # pubsub: default the namespace
/// backplane = "redis://bus:6379" # pubsub: default the cache's own URL when it is a Redis URL
/// prefixes = ["users:"]        # tracking: default the namespace's prefix (none: every key)
/// heartbeat = "500ms"
/// heartbeat_timeout = "2s"
/// ```
///
/// In a URL: `redis://cache:6379?namespace=users&tier=tracking&tier_local_ttl=10s`; the
/// backplane URL is percent-encoded (`tier_backplane=redis%3A%2F%2Fbus%3A6379`), one
/// `tier_prefix` per prefix.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TierConfig {
    /// How instances stay coherent (required).
    #[serde(default)]
    pub invalidation: Option<InvalidationName>,
    /// The most local entries.
    #[serde(default)]
    pub max_entries: Option<u64>,
    /// The most local bytes (key plus value per entry).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// The longest a local copy lives.
    #[serde(default, with = "duration::serde::option")]
    pub local_ttl: Option<Duration>,
    /// pub/sub: the channel of this logical cache (default: the namespace).
    #[serde(default)]
    pub channel: Option<String>,
    /// pub/sub: the Redis carrying the messages (default: the cache's URL, if Redis).
    #[serde(default)]
    pub backplane: Option<String>,
    /// tracking: the key prefixes tracked (default: the namespace's).
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// How often the channel checks that it delivers.
    #[serde(default, with = "duration::serde::option")]
    pub heartbeat: Option<Duration>,
    /// The silence after which the channel counts as lost.
    #[serde(default, with = "duration::serde::option")]
    pub heartbeat_timeout: Option<Duration>,
}

impl fmt::Debug for TierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierConfig")
            .field("invalidation", &self.invalidation)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("local_ttl", &self.local_ttl)
            .field("channel", &self.channel)
            .field(
                "backplane",
                &self.backplane.as_deref().map(cache_core::url::redact),
            )
            .field("prefixes", &self.prefixes)
            .field("heartbeat", &self.heartbeat)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .finish()
    }
}

/// Shows the config as it reads back, the backplane's password replaced by `***`.
impl Serialize for TierConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            invalidation: &'a Option<InvalidationName>,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_entries: &'a Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            max_bytes: &'a Option<u64>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "duration::serde::option"
            )]
            local_ttl: &'a Option<Duration>,
            #[serde(skip_serializing_if = "Option::is_none")]
            channel: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            backplane: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            prefixes: &'a Option<Vec<String>>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "duration::serde::option"
            )]
            heartbeat: &'a Option<Duration>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                with = "duration::serde::option"
            )]
            heartbeat_timeout: &'a Option<Duration>,
        }
        Shown {
            invalidation: &self.invalidation,
            max_entries: &self.max_entries,
            max_bytes: &self.max_bytes,
            local_ttl: &self.local_ttl,
            channel: &self.channel,
            backplane: self.backplane.as_deref().map(cache_core::url::redact),
            prefixes: &self.prefixes,
            heartbeat: &self.heartbeat,
            heartbeat_timeout: &self.heartbeat_timeout,
        }
        .serialize(s)
    }
}

impl TierConfig {
    /// A tier kept coherent by `invalidation`, every other setting at its default.
    pub fn new(invalidation: InvalidationName) -> Self {
        TierConfig {
            invalidation: Some(invalidation),
            ..TierConfig::default()
        }
    }

    /// Reads one `tier…` URL parameter into the config.
    pub(crate) fn set_param(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |m: String| Error::config(format!("URL parameter `{key}`: {m}"));
        let count = |v: &str| {
            cache_core::url::parse_size(v)
                .ok_or_else(|| bad(format!("{:?} is not a count", cache_core::url::shorten(v))))
        };
        match key {
            "tier" => self.invalidation = Some(value.parse()?),
            "tier_max_entries" => self.max_entries = Some(count(value)?),
            "tier_max_bytes" => self.max_bytes = Some(count(value)?),
            "tier_local_ttl" => self.local_ttl = Some(duration::parse(value).map_err(bad)?),
            "tier_channel" => self.channel = Some(value.to_owned()),
            "tier_backplane" => self.backplane = Some(value.to_owned()),
            "tier_prefix" => self
                .prefixes
                .get_or_insert_with(Vec::new)
                .push(value.to_owned()),
            "tier_heartbeat" => self.heartbeat = Some(duration::parse(value).map_err(bad)?),
            "tier_heartbeat_timeout" => {
                self.heartbeat_timeout = Some(duration::parse(value).map_err(bad)?);
            }
            _ => unreachable!("only TIER_PARAMS reach here"),
        }
        Ok(())
    }

    /// The channel, checked: required.
    #[cfg_attr(not(feature = "tiered"), allow(dead_code))]
    pub(crate) fn invalidation(&self) -> Result<InvalidationName> {
        self.invalidation.ok_or_else(|| {
            Error::config(
                "tier: `invalidation` is required: tracking (Redis client tracking), pubsub \
                 (a Redis pub/sub backplane) or none (a change made elsewhere is seen when \
                 the local copy ends)",
            )
        })
    }
}

#[cfg(feature = "tiered")]
pub(crate) mod build {
    //! Building the tier of a config.

    use std::sync::Arc;

    use cache_core::tier::Invalidator;
    use cache_core::{AiocacheFlavor, Backend, Error, Result};
    use cache_tiered::TierLayer;

    use super::{InvalidationName, TierConfig};
    use crate::connectors::Entry;
    use crate::key_format::KeyFormat;

    /// What a tiered cache is built from.
    pub(crate) struct Parts<'a> {
        pub(crate) tier: &'a TierConfig,
        pub(crate) entry: &'static Entry,
        pub(crate) backend_url: &'a str,
        #[cfg_attr(not(feature = "redis"), allow(dead_code))]
        pub(crate) namespace: Option<&'a str>,
        pub(crate) key_format: KeyFormat,
    }

    /// The backend (connected) and the tier in front of it (its channel started).
    pub(crate) async fn connect(
        parts: Parts<'_>,
    ) -> Result<(Arc<dyn Backend>, AiocacheFlavor, TierLayer)> {
        let tier = parts.tier;
        let invalidation = tier.invalidation()?;
        let (backend, flavor, channel): (
            Arc<dyn Backend>,
            AiocacheFlavor,
            Option<Arc<dyn Invalidator>>,
        ) = match invalidation {
            InvalidationName::Tracking => tracking(&parts).await?,
            InvalidationName::Pubsub | InvalidationName::None => {
                let (backend, flavor) = parts
                    .entry
                    .connect(parts.backend_url, parts.key_format)
                    .await?;
                let channel = if invalidation == InvalidationName::Pubsub {
                    Some(pubsub(&parts).await?)
                } else {
                    None
                };
                (backend, flavor, channel)
            }
        };
        let mut builder = TierLayer::builder();
        if let Some(n) = tier.max_entries {
            builder = builder.max_entries(n);
        }
        if let Some(n) = tier.max_bytes {
            builder = builder.max_bytes(n);
        }
        if let Some(ttl) = tier.local_ttl {
            builder = builder.local_ttl(ttl);
        }
        if let Some(channel) = channel {
            builder = builder.invalidation_arc(channel);
        }
        Ok((backend, flavor, builder.build().await?))
    }

    #[cfg(feature = "redis")]
    async fn tracking(
        parts: &Parts<'_>,
    ) -> Result<(
        Arc<dyn Backend>,
        AiocacheFlavor,
        Option<Arc<dyn Invalidator>>,
    )> {
        use cache_core::KeyBuilder;
        use cache_core::url::UrlConfig;
        use cache_redis::RedisConfig;

        if parts.entry.feature != "redis" {
            return Err(Error::config(
                "tier: invalidation = tracking needs a Redis URL (client tracking is a Redis \
                 feature); use pubsub with a `backplane` for other backends",
            ));
        }
        let mut config = RedisConfig::from_url(parts.backend_url)?;
        if parts.key_format == KeyFormat::Aiocache {
            config.check_aiocache_keys()?;
        }
        // client tracking pushes its invalidations over RESP3: the URL's own `protocol`
        // stands (RESP2 is then refused with its reason), its absence means RESP3
        if !crate::tier::url_sets(parts.backend_url, "protocol") {
            config.protocol = cache_redis::RespProtocol::Resp3;
        }
        let backend = config.into_builder().build().await?;
        let prefixes: Vec<String> = match &parts.tier.prefixes {
            Some(p) => p.clone(),
            None => parts
                .namespace
                .and_then(|ns| match parts.key_format {
                    KeyFormat::Default => cache_core::DefaultKeyBuilder.namespace_prefix(ns),
                    KeyFormat::Aiocache => {
                        cache_core::AiocacheKeyBuilder::new(AiocacheFlavor::Redis)
                            .namespace_prefix(ns)
                    }
                })
                .into_iter()
                .collect(),
        };
        let mut builder = backend.tracking().prefixes(prefixes);
        if let Some(d) = parts.tier.heartbeat {
            builder = builder.heartbeat(d);
        }
        if let Some(d) = parts.tier.heartbeat_timeout {
            builder = builder.heartbeat_timeout(d);
        }
        let tracking = builder.build()?;
        Ok((
            Arc::new(backend),
            <RedisConfig as UrlConfig>::AIOCACHE_FLAVOR,
            Some(Arc::new(tracking)),
        ))
    }

    #[cfg(not(feature = "redis"))]
    async fn tracking(
        _: &Parts<'_>,
    ) -> Result<(
        Arc<dyn Backend>,
        AiocacheFlavor,
        Option<Arc<dyn Invalidator>>,
    )> {
        Err(Error::config(
            "tier: invalidation = tracking needs the `redis` feature of stratacache",
        ))
    }

    #[cfg(feature = "redis")]
    async fn pubsub(parts: &Parts<'_>) -> Result<Arc<dyn Invalidator>> {
        let tier = parts.tier;
        let url = match (&tier.backplane, parts.entry.feature) {
            (Some(url), _) => url.as_str(),
            (None, "redis") => parts.backend_url,
            (None, _) => {
                return Err(Error::config(
                    "tier: invalidation = pubsub needs `backplane`, the URL of a Redis to carry \
                     the messages, when the cache itself is not on Redis",
                ));
            }
        };
        let channel = tier.channel.as_deref().or(parts.namespace).ok_or_else(|| {
            Error::config(
                "tier: invalidation = pubsub needs `channel` (one per logical cache) when \
                     the cache has no namespace",
            )
        })?;
        let mut builder = cache_redis::RedisPubSub::builder(url).channel(channel);
        if let Some(d) = tier.heartbeat {
            builder = builder.heartbeat(d);
        }
        if let Some(d) = tier.heartbeat_timeout {
            builder = builder.heartbeat_timeout(d);
        }
        Ok(Arc::new(builder.build().await?))
    }

    #[cfg(not(feature = "redis"))]
    async fn pubsub(_: &Parts<'_>) -> Result<Arc<dyn Invalidator>> {
        Err(Error::config(
            "tier: invalidation = pubsub needs the `redis` feature of stratacache (the \
             backplane is a Redis)",
        ))
    }
}

/// Whether the query of `url` sets `param`.
#[cfg(all(feature = "tiered", feature = "redis"))]
fn url_sets(url: &str, param: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == param)
    })
}
