#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod cache;
mod capability;
pub mod duration;
mod error;
mod key;
mod plugin;
pub mod plugins;
mod raw;
pub mod serializer;
mod ttl;
pub mod url;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backend::{Backend, ClearScope, IntoBackend, OpSet};
pub use cache::{Cache, CacheBuilder, DEFAULT_TIMEOUT, Scoped};
pub use capability::Capability;
pub use error::{Error, ErrorKind, Result};
pub use key::{AiocacheFlavor, AiocacheKeyBuilder, DefaultKeyBuilder, KeyBuilder};
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
