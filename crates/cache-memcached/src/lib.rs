#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
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

/// Entry points for the fuzz targets in `fuzz/`. Not part of the API: no stability promise,
/// may change or go away in any release.
#[doc(hidden)]
pub mod __fuzz {
    /// The memcached key sent for a built key (see the `keys` module).
    pub fn encode_key(key: &str) -> String {
        crate::keys::encode(key).into_owned()
    }

    /// The memcached key of the generation record of `group` (which ends with `:`).
    pub fn generation_key(group: &str) -> String {
        crate::keys::generation_key(group)
    }

    /// A meta command's reply as the `RawValue` map `raw` answers with.
    pub fn meta_reply(value: async_memcached::MetaValue) -> cache_core::RawValue {
        crate::raw::meta_map(value)
    }
}
pub use builder::MemcachedBuilder;
pub use config::{DEFAULT_PORT, MEMCACHED_SCHEME, MemcachedConfig, SCHEMES, ServerConfig};
