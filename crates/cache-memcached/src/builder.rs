//! [`MemcachedBuilder`]: the way to build a [`MemcachedBackend`].

use std::time::Duration;

use cache_core::Result;

use crate::MemcachedBackend;
use crate::config::{MemcachedConfig, ServerConfig};

/// Builds a [`MemcachedBackend`].
///
#[doc = include_str!("docs.md")]
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MemcachedBuilder {
    config: MemcachedConfig,
}

impl MemcachedBuilder {
    /// A builder with every default and no server yet.
    pub fn new() -> Self {
        MemcachedBuilder::default()
    }

    pub(crate) fn from_config(config: MemcachedConfig) -> Self {
        MemcachedBuilder { config }
    }

    /// Adds a server, `host:port` or `host` (port 11211), with weight 1.
    pub fn server(mut self, address: impl Into<String>) -> Self {
        self.config.servers.push(ServerConfig::new(address));
        self
    }

    /// Adds a server with a ketama weight: its share of the keys is `weight / sum of weights`.
    pub fn weighted_server(mut self, address: impl Into<String>, weight: u32) -> Self {
        self.config
            .servers
            .push(ServerConfig::weighted(address, weight));
        self
    }

    /// Adds several servers with weight 1.
    pub fn servers<I, A>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.config
            .servers
            .extend(addresses.into_iter().map(ServerConfig::new));
        self
    }

    /// Connections per server, at most (default 8).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.config.pool_size = size;
        self
    }

    /// How long a connect may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Deadline of each backend command, including the wait for a pooled connection
    /// (default none: the `Cache`'s timeout applies). `None` or zero disables it.
    pub fn command_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.command_timeout = timeout.into().filter(|d| !d.is_zero());
        self
    }

    /// After a failed connect, calls for that server fail at once for this long (default
    /// 1 s; zero tries to connect on every call).
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.config.retry_backoff = backoff;
        self
    }

    /// Enables scoped `clear()` through namespace generations (default off).
    pub fn namespace_generations(mut self, enabled: bool) -> Self {
        self.config.namespace_generations = enabled;
        self
    }

    /// How long this process trusts a namespace generation it read (default 1 s; zero reads
    /// it on every call).
    pub fn generation_refresh(mut self, refresh: Duration) -> Self {
        self.config.generation_refresh = refresh;
        self
    }

    /// The servers' item size limit in bytes (memcached `-I`, default 1 MiB).
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.config.max_item_size = bytes;
        self
    }

    /// Reads of keys on an unreachable server answer as misses instead of failing (default
    /// off).
    pub fn miss_on_server_down(mut self, enabled: bool) -> Self {
        self.config.miss_on_server_down = enabled;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &MemcachedConfig {
        &self.config
    }

    /// Validates the settings, creates the pools and opens one connection per server.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) for invalid settings (no server,
    /// a bad address, a zero pool size, …); [`ErrorKind::Connection`](cache_core::ErrorKind::Connection)
    /// when no server can be reached. Servers that are down while others answer are retried
    /// on use.
    ///
    /// # Cancel safety
    /// Dropping the future drops the half-built backend and its connections.
    pub async fn build(self) -> Result<MemcachedBackend> {
        MemcachedBackend::connect(self.config).await
    }
}
