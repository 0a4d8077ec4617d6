#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod unsent;
mod backend;
mod builder;
mod clear;
mod cluster;
mod config;
mod detour;
mod error;
mod generations;
mod keys;
mod pubsub;
mod raw;
mod scripts;
mod tracking;

pub use backend::RedisBackend;
pub use tracking::{
    DEFAULT_HEARTBEAT, DEFAULT_HEARTBEAT_TIMEOUT, RedisTracking, RedisTrackingBuilder,
    TrackingStats,
};

/// The fred crate this backend runs on, for [`RedisBackend::from_clients`] and
/// [`RedisBackend::from_pool`] over clients a program builds itself.
pub use fred;

/// Entry points for the fuzz targets in `fuzz/`. Not part of the API: no stability promise,
/// may change or go away in any release.
#[doc(hidden)]
pub mod __fuzz {
    /// A reply frame as the `RawValue` that `raw` answers with.
    ///
    /// # Errors
    /// Error frames, frames `raw` does not expect and replies nested too deeply.
    pub fn raw_reply(frame: fred::types::Resp3Frame) -> cache_core::Result<cache_core::RawValue> {
        crate::raw::raw_reply(frame, 0)
    }
}
pub use builder::RedisBuilder;
pub use config::{
    REDIS_CLUSTER_SCHEME, REDIS_CLUSTER_TLS_SCHEME, REDIS_SCHEME, REDIS_SENTINEL_SCHEME,
    REDIS_SENTINEL_TLS_SCHEME, REDIS_TLS_SCHEME, REDIS_UNIX_SCHEME, ReconnectConfig, RedisConfig,
    RedisMode, RespProtocol, SCHEMES,
};
pub use pubsub::{PubSubStats, RedisPubSub, RedisPubSubBuilder};
