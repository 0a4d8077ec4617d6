#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use cache_core::{
    AiocacheFlavor, AiocacheKeyBuilder, Backend, Cache, CacheBuilder, Capability, ClearScope,
    Command, CommandInfo, DEFAULT_TIMEOUT, DefaultKeyBuilder, Error, ErrorKind, IntoBackend, Json,
    KeyBuilder, KeyTtl, OpSet, Outcome, Plugin, PythonJson, RawBytes, RawValue, Result, Scoped,
    Serializer, Ttl, Utf8, async_trait,
};

#[cfg(feature = "metrics")]
pub use cache_core::plugins::MetricsPlugin;
pub use cache_core::plugins::{self, HitMissRatioPlugin, TimingPlugin, TracingPlugin};

/// The backends compiled in, one module each.
pub mod backends {
    #[cfg(feature = "memory")]
    pub use cache_memory as memory;
}

/// The serializers compiled in.
pub mod serializers {
    pub use cache_core::serializer::{Json, PythonJson, RawBytes, Utf8};
    #[cfg(feature = "cbor")]
    pub use cache_serde::Cbor;
    #[cfg(feature = "msgpack")]
    pub use cache_serde::MsgPack;
}

#[cfg(feature = "memory")]
pub use cache_memory::MemoryBackend;
#[cfg(feature = "cbor")]
pub use cache_serde::Cbor;
#[cfg(feature = "msgpack")]
pub use cache_serde::MsgPack;

/// The names most programs need: `use stratacache::prelude::*;`.
pub mod prelude {
    pub use cache_core::{Cache, Error, ErrorKind, Json, KeyTtl, Plugin, Result, Ttl};
    #[cfg(feature = "memory")]
    pub use cache_memory::MemoryBackend;
}
