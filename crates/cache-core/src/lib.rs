#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod cache;
mod capability;
mod context;
pub mod duration;
mod error;
mod key;
pub mod layer;
mod plugin;
pub mod plugins;
mod raw;
pub mod serializer;
mod ttl;
pub mod url;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{Backend, ClearScope, IntoBackend, OpSet};
pub use cache::{
    Cache, CacheBuilder, DEFAULT_LEASE, DEFAULT_TIMEOUT, Lock, LockGuard, OptimisticLock, Scoped,
};
pub use capability::Capability;
pub use context::{CallContext, Deadline};
pub use error::{Error, ErrorKind, Result};
pub use key::{AiocacheFlavor, AiocacheKeyBuilder, DefaultKeyBuilder, KeyBuilder};
pub use layer::Layer;
pub use plugin::{Command, CommandInfo, Outcome, Plugin};
#[cfg(feature = "metrics")]
pub use plugins::MetricsPlugin;
pub use plugins::{HitMissRatioPlugin, TimingPlugin, TracingPlugin};
pub use raw::RawValue;
pub use serializer::{Json, PythonJson, RawBytes, Serializer, Utf8};
pub use ttl::{KeyTtl, Ttl};

/// Re-exported for backend implementations and the conformance macro.
#[doc(hidden)]
pub use async_trait::async_trait;

/// Re-exported for [`forward_backend!`].
#[doc(hidden)]
pub use bytes::Bytes as __Bytes;
