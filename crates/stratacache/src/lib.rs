#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
/// The user guide: the pages of `docs/guide/`, their examples compiled as doctests.
pub mod guide;
mod registry;
mod serializer;
mod url;

pub use config::{
    AnyCache, CacheConfig, CachesConfig, FromUrl, KeyFormat, PluginConfig, TracingKeys, from_url,
};
pub use registry::Caches;
pub use serializer::{AnySerializer, SerializerName};

pub use cache_core::{
    AiocacheFlavor, AiocacheKeyBuilder, Backend, Cache, CacheBuilder, CallContext, Capability,
    ClearScope, Command, CommandInfo, DEFAULT_LEASE, DEFAULT_TIMEOUT, Deadline, DefaultKeyBuilder,
    Error, ErrorKind, IntoBackend, Json, KeyBuilder, KeyTtl, Layer, Lock, LockGuard, OpSet,
    OptimisticLock, Outcome, Plugin, PythonJson, RawBytes, RawValue, Result, Scoped, Serializer,
    Ttl, Utf8, async_trait, duration, forward_backend, layer,
};

#[cfg(feature = "metrics")]
pub use cache_core::plugins::MetricsPlugin;
pub use cache_core::plugins::{self, HitMissRatioPlugin, TimingPlugin, TracingPlugin};

/// The backends compiled in, one crate each.
pub mod backends {
    #[cfg(feature = "memcached")]
    pub use cache_memcached as memcached;
    #[cfg(feature = "memory")]
    pub use cache_memory as memory;
    #[cfg(feature = "redis")]
    pub use cache_redis as redis;
}

/// The serializers compiled in.
pub mod serializers {
    pub use cache_core::serializer::{Json, PythonJson, RawBytes, Utf8};
    #[cfg(feature = "cbor")]
    pub use cache_serde::Cbor;
    #[cfg(feature = "msgpack")]
    pub use cache_serde::MsgPack;
    #[cfg(any(feature = "zstd", feature = "lz4"))]
    pub use cache_serde::{Codec, Compressed};
}

#[cfg(feature = "memcached")]
pub use cache_memcached::{MemcachedBackend, MemcachedBuilder, MemcachedConfig};
#[cfg(feature = "memory")]
pub use cache_memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use cache_redis::{RedisBackend, RedisBuilder, RedisConfig};
#[cfg(feature = "cbor")]
pub use cache_serde::Cbor;
#[cfg(feature = "msgpack")]
pub use cache_serde::MsgPack;
#[cfg(any(feature = "zstd", feature = "lz4"))]
pub use cache_serde::{Codec, Compressed};

/// The names most programs need: `use stratacache::prelude::*;`.
pub mod prelude {
    pub use crate::{AnyCache, CacheConfig, Caches, FromUrl};
    pub use cache_core::{Cache, Error, ErrorKind, Json, KeyTtl, Plugin, Result, Ttl};
    #[cfg(feature = "memcached")]
    pub use cache_memcached::MemcachedBackend;
    #[cfg(feature = "memory")]
    pub use cache_memory::MemoryBackend;
    #[cfg(feature = "redis")]
    pub use cache_redis::RedisBackend;
}
