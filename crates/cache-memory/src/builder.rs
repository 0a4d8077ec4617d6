//! [`MemoryBuilder`]: builds a [`MemoryBackend`] from a [`MemoryConfig`] and a clock.

use std::sync::Arc;

use cache_core::Result;

use crate::backend::MemoryBackend;
use crate::clock::{Clock, SystemClock};
use crate::config::MemoryConfig;
use crate::generations::MemoryGenerations;
use crate::store::StoreConfig;

/// Builds a [`MemoryBackend`]: set the bounds (and, in tests, the clock), then
/// [`build`](Self::build). The same settings as the setters of [`MemoryBackend`], in the
/// shape every backend crate has (`from_config`, `from_url`, `build`).
///
/// ```
/// use cache_memory::{MemoryBuilder, ManualClock};
///
/// let backend = MemoryBuilder::new()
///     .max_entries(100_000)
///     .max_bytes(64 << 20)
///     .clock(ManualClock::new())
///     .build();
/// assert!(backend.is_empty());
///
/// let from_url = MemoryBuilder::from_url("memory://?max_entries=10")?.build();
/// assert!(from_url.is_empty());
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct MemoryBuilder {
    config: MemoryConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl MemoryBuilder {
    /// A builder for an unbounded store on the system clock.
    pub fn new() -> Self {
        MemoryBuilder::default()
    }

    /// A builder holding `config`.
    pub fn from_config(config: MemoryConfig) -> Self {
        MemoryBuilder {
            config,
            clock: None,
        }
    }

    /// A builder from a URL; see [`MemoryConfig::from_url`] for the syntax.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) naming what is wrong with the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        MemoryConfig::from_url(url).map(Self::from_config)
    }

    /// The configuration built so far.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Holds at most `n` entries; see [`MemoryBackend::max_entries`].
    pub fn max_entries(mut self, n: u64) -> Self {
        self.config.max_entries = Some(n);
        self
    }

    /// Holds at most `n` bytes; see [`MemoryBackend::max_bytes`].
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.config.max_bytes = Some(n);
        self
    }

    /// Scoped `clear()` in constant time through namespace generations (see
    /// [`MemoryConfig::namespace_generations`]).
    pub fn namespace_generations(mut self, on: bool) -> Self {
        self.config.namespace_generations = on;
        self
    }

    /// With namespace generations, removes a cleared generation's entries on a background
    /// thread (see [`MemoryConfig::generation_sweep`]).
    pub fn generation_sweep(mut self, on: bool) -> Self {
        self.config.generation_sweep = on;
        self
    }

    /// Reads time from `clock` instead of the system clock; see [`MemoryBackend::clock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The backend: an empty store with these bounds.
    pub fn build(self) -> MemoryBackend {
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::new()) as Arc<dyn Clock>);
        let store = StoreConfig {
            max_entries: self.config.max_entries,
            max_bytes: self.config.max_bytes,
        };
        let generations = self
            .config
            .namespace_generations
            .then(|| MemoryGenerations::new(self.config.generation_sweep));
        MemoryBackend::from_parts(store, clock, generations)
    }
}
