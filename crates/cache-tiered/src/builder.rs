//! [`TierBuilder`]: the bounds of the local level and its invalidation channel.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cache_core::layer::Layer;
use cache_core::tier::{InvalidationSink, Invalidator};
use cache_core::{Backend, Error, Result};

use crate::local::Local;
use crate::stats::{Counters, TierStats};
use crate::tiered::Tiered;

/// The default bound on local entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// The default bound on local bytes (key plus value per entry): 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// The default longest life of a local copy.
pub const DEFAULT_LOCAL_TTL: Duration = Duration::from_secs(30);
/// The longest [`TierBuilder::local_ttl`] allowed: a copy is never trusted for longer.
pub const MAX_LOCAL_TTL: Duration = Duration::from_secs(3600);

/// Builds a [`TierLayer`]: `TierLayer::builder()`.
#[must_use = "a builder does nothing until built"]
pub struct TierBuilder {
    max_entries: u64,
    max_bytes: u64,
    local_ttl: Duration,
    channel: Option<Arc<dyn Invalidator>>,
}

impl fmt::Debug for TierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierBuilder")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("local_ttl", &self.local_ttl)
            .field("channel", &self.channel)
            .finish()
    }
}

impl Default for TierBuilder {
    fn default() -> Self {
        TierBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            local_ttl: DEFAULT_LOCAL_TTL,
            channel: None,
        }
    }
}

impl TierBuilder {
    /// The most entries the local level holds (default [`DEFAULT_MAX_ENTRIES`]); beyond,
    /// copies are evicted (S3-FIFO, as in the memory backend).
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// The most bytes the local level holds, key plus value per entry (default
    /// [`DEFAULT_MAX_BYTES`]). An entry larger than this is never copied locally.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }

    /// The longest a local copy lives (default [`DEFAULT_LOCAL_TTL`], at most
    /// [`MAX_LOCAL_TTL`]); a copy also never outlives the remote entry it copies. This is
    /// the bound on staleness when the invalidation channel fails in a way no heartbeat
    /// sees, and the only bound without a channel.
    pub fn local_ttl(mut self, ttl: Duration) -> Self {
        self.local_ttl = ttl;
        self
    }

    /// The channel that keeps the local levels of several instances coherent (a Redis
    /// pub/sub backplane, Redis client tracking). Without one, a change made by another
    /// instance is seen here once the local copy ends ([`local_ttl`](Self::local_ttl)).
    pub fn invalidation(mut self, channel: impl Invalidator) -> Self {
        self.channel = Some(Arc::new(channel));
        self
    }

    /// [`invalidation`](Self::invalidation) with a shared channel.
    pub fn invalidation_arc(mut self, channel: Arc<dyn Invalidator>) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Checks the settings and starts the channel's deliveries.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) for a bound of zero or a local
    /// lifetime of zero or above [`MAX_LOCAL_TTL`]; the channel's error when it cannot start
    /// (nothing is left running then).
    pub async fn build(self) -> Result<TierLayer> {
        if self.max_entries == 0 {
            return Err(Error::config(
                "tier: max_entries is 0; the local level must hold at least one entry",
            ));
        }
        if self.max_bytes == 0 {
            return Err(Error::config(
                "tier: max_bytes is 0; the local level must hold at least one byte",
            ));
        }
        if self.local_ttl.is_zero() || self.local_ttl > MAX_LOCAL_TTL {
            return Err(Error::config(format!(
                "tier: local_ttl is {:?}; it must be above zero and at most {:?}",
                self.local_ttl, MAX_LOCAL_TTL
            )));
        }
        let counters = Arc::new(Counters::default());
        let local = Arc::new(Local::new(
            Some(self.max_entries),
            Some(self.max_bytes),
            self.local_ttl,
            Arc::clone(&counters),
        ));
        if let Some(channel) = &self.channel {
            let sink: Arc<dyn InvalidationSink> = local.clone();
            channel.start(sink).await?;
        }
        Ok(TierLayer {
            local,
            channel: self.channel,
            local_ttl: self.local_ttl,
        })
    }
}

/// An in-process tier: a bounded local copy of what the stack below it holds, kept coherent
/// across instances by an invalidation channel. Add it with
/// [`CacheBuilder::layer`](cache_core::CacheBuilder::layer), last (outermost) among your
/// layers.
///
/// One layer makes one local level; give each cache its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::Cache;
/// use cache_tiered::TierLayer;
/// # let remote = cache_core::testkit::MapBackend::new();
///
/// let tier = TierLayer::builder()
///     .max_entries(50_000)
///     .local_ttl(Duration::from_secs(10))
///     .build()
///     .await?;
/// let cache = Cache::builder(remote).layer(tier).build();
/// cache.set("k", &1).await?;
/// assert_eq!(cache.get::<i32>("k").await?, Some(1)); // a local hit
/// # Ok(()) }
/// ```
pub struct TierLayer {
    local: Arc<Local>,
    channel: Option<Arc<dyn Invalidator>>,
    local_ttl: Duration,
}

impl fmt::Debug for TierLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierLayer")
            .field("local_ttl", &self.local_ttl)
            .field("channel", &self.channel)
            .field("stats", &self.stats())
            .finish()
    }
}

impl TierLayer {
    /// Settings of a new tier.
    pub fn builder() -> TierBuilder {
        TierBuilder::default()
    }

    /// The counters and the state of the local level so far.
    pub fn stats(&self) -> TierStats {
        let (entries, bytes) = self.local.size();
        self.local
            .counters
            .snapshot(entries, bytes, self.local.enabled())
    }

    /// A handle on the same counters that stays valid after the layer went into a cache.
    pub fn stats_handle(&self) -> TierStatsHandle {
        TierStatsHandle {
            local: Arc::clone(&self.local),
        }
    }

    /// The longest a local copy lives.
    pub fn local_ttl(&self) -> Duration {
        self.local_ttl
    }
}

impl Layer for TierLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(Tiered {
            local: Arc::clone(&self.local),
            remote: inner,
            channel: self.channel.clone(),
        })
    }
}

/// Reads a tier's counters after its [`TierLayer`] went into a cache
/// ([`TierLayer::stats_handle`]).
#[derive(Clone)]
pub struct TierStatsHandle {
    local: Arc<Local>,
}

impl fmt::Debug for TierStatsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TierStatsHandle").field(&self.get()).finish()
    }
}

impl TierStatsHandle {
    /// The counters and the state of the local level now.
    pub fn get(&self) -> TierStats {
        let (entries, bytes) = self.local.size();
        self.local
            .counters
            .snapshot(entries, bytes, self.local.enabled())
    }
}
