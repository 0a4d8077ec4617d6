#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod builder;
mod config;
mod error;

pub use backend::RedisBackend;
pub use builder::RedisBuilder;
pub use config::{
    REDIS_CLUSTER_SCHEME, REDIS_CLUSTER_TLS_SCHEME, REDIS_SCHEME, REDIS_SENTINEL_SCHEME,
    REDIS_SENTINEL_TLS_SCHEME, REDIS_TLS_SCHEME, REDIS_UNIX_SCHEME, ReconnectConfig, RedisConfig,
    RedisMode, RespProtocol, SCHEMES,
};
