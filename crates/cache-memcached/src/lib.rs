#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod builder;
mod config;
mod error;
mod generations;
mod keys;
mod pool;
mod raw;
mod ring;

pub use backend::{MemcachedBackend, ServerStatus};
pub use builder::MemcachedBuilder;
pub use config::{DEFAULT_PORT, MEMCACHED_SCHEME, MemcachedConfig, ServerConfig};
