//! Instances of a cache with a local level (`cache-tiered`) in front of a shared server, for
//! the cross-process and fault scenarios of the tier: which remote level, which channel.

use std::sync::Arc;
use std::time::Duration;

use cache_core::layer::Layer;
use cache_core::tier::Invalidator;
use cache_core::{Backend, Cache};
use cache_redis::{RedisConfig, RedisPubSub};
use cache_tiered::{TierLayer, TierStatsHandle};

use crate::backends::{self, Kind};

/// A tier configuration under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TierSetup {
    /// In front of Redis, kept coherent by RESP3 client tracking on the backend's connections.
    RedisTracking,
    /// In front of Redis, kept coherent by a pub/sub backplane on the same server.
    RedisPubSub,
    /// In front of Memcached, kept coherent by a pub/sub backplane on a Redis beside it.
    MemcachedPubSub,
}

impl TierSetup {
    /// Every setup.
    pub const ALL: [TierSetup; 3] = [
        TierSetup::RedisTracking,
        TierSetup::RedisPubSub,
        TierSetup::MemcachedPubSub,
    ];

    /// `redis-tracking`, `redis-pubsub` or `memcached-pubsub`.
    pub fn name(self) -> &'static str {
        match self {
            TierSetup::RedisTracking => "redis-tracking",
            TierSetup::RedisPubSub => "redis-pubsub",
            TierSetup::MemcachedPubSub => "memcached-pubsub",
        }
    }

    /// The setup named `name`.
    pub fn from_name(name: &str) -> Option<TierSetup> {
        TierSetup::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The remote level.
    pub fn remote(self) -> Kind {
        match self {
            TierSetup::MemcachedPubSub => Kind::Memcached,
            _ => Kind::Redis,
        }
    }

    /// Whether the shared servers it needs are configured (printing a loud `SKIPPED` line
    /// when not; panicking under `CI`).
    pub fn available(self) -> bool {
        Kind::Redis.shared_url().is_some() && self.remote().shared_url().is_some()
    }
}

/// Settings of an instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest a local copy lives.
    pub local_ttl: Duration,
    /// How often the channel checks it still delivers.
    pub heartbeat: Duration,
    /// Silence after which the channel counts as lost.
    pub heartbeat_timeout: Duration,
    /// Where the remote server is (`None`: the shared server's address); a fault proxy.
    pub remote_address: Option<String>,
    /// Where the channel's Redis is (`None`: the shared Redis); a fault proxy.
    pub channel_address: Option<String>,
    /// The deadline of each command of the instance's cache.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            local_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_millis(500),
            remote_address: None,
            channel_address: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// One instance: its cache and its tier's counters.
#[derive(Debug)]
pub struct Instance {
    /// The cache, namespace set, the tier outermost.
    pub cache: Cache,
    /// The tier's counters.
    pub stats: TierStatsHandle,
}

/// The URL of the shared server of `kind`, pointed at `address` when given.
fn url_at(kind: Kind, address: Option<&str>) -> String {
    let url = kind.shared_url().expect("the shared server is configured");
    match address {
        Some(a) => kind.url_for(a),
        None => url,
    }
}

/// A pub/sub backplane on channel `channel` of the Redis at `address` (the shared one by
/// default).
///
/// # Panics
/// When it cannot start.
pub async fn pubsub(channel: &str, options: &Options) -> RedisPubSub {
    let url = url_at(Kind::Redis, options.channel_address.as_deref());
    RedisPubSub::builder(&url)
        .channel(channel)
        .heartbeat(options.heartbeat)
        .heartbeat_timeout(options.heartbeat_timeout)
        .build()
        .await
        .unwrap_or_else(|e| panic!("pub/sub backplane: {e}"))
}

/// The stack of an instance of `setup`: the tier over its remote level, and the tier's
/// counters. Client tracking covers keys under `prefix` (`None`: every key); the pub/sub
/// channel is named `channel`.
///
/// # Panics
/// When a server does not answer.
pub async fn stack(
    setup: TierSetup,
    prefix: Option<&str>,
    channel: &str,
    options: &Options,
) -> (Arc<dyn Backend>, TierStatsHandle) {
    let kind = setup.remote();
    let url = url_at(kind, options.remote_address.as_deref());
    let (remote, channel): (Arc<dyn Backend>, Arc<dyn Invalidator>) = match setup {
        TierSetup::RedisTracking => {
            let backend = RedisConfig::from_url(&url)
                .expect("a redis:// URL")
                .into_builder()
                .protocol(cache_redis::RespProtocol::Resp3)
                .build()
                .await
                .unwrap_or_else(|e| panic!("redis: {e}"));
            let mut tracking = backend
                .tracking()
                .heartbeat(options.heartbeat)
                .heartbeat_timeout(options.heartbeat_timeout);
            if let Some(prefix) = prefix {
                tracking = tracking.prefix(prefix);
            }
            let tracking = tracking
                .build()
                .unwrap_or_else(|e| panic!("client tracking: {e}"));
            (Arc::new(backend), Arc::new(tracking))
        }
        TierSetup::RedisPubSub | TierSetup::MemcachedPubSub => {
            let address = kind.address_of(&url);
            let remote = backends::connect(kind, &url, &address, &backends::Setup::pool(2)).await;
            (remote, Arc::new(pubsub(channel, options).await))
        }
    };
    let tier = TierLayer::builder()
        .local_ttl(options.local_ttl)
        .invalidation_arc(channel)
        .build()
        .await
        .unwrap_or_else(|e| panic!("tier: {e}"));
    let stats = tier.stats_handle();
    (tier.layer(remote), stats)
}

/// An instance of `setup` in `namespace` (tracking covers the namespace; the pub/sub channel
/// is named after it).
///
/// # Panics
/// When a server does not answer.
pub async fn instance(setup: TierSetup, namespace: &str, options: Options) -> Instance {
    let prefix = format!("{namespace}:");
    let (stack, stats) = stack(setup, Some(&prefix), namespace, &options).await;
    let cache = Cache::builder(stack)
        .namespace(namespace)
        .timeout(options.timeout)
        .build();
    Instance { cache, stats }
}
