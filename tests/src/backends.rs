//! The two network backends under test, built against a given address (a private server or a
//! [`FaultProxy`](crate::FaultProxy) in front of a server).

use std::sync::Arc;
use std::time::Duration;

use cache_core::Backend;
use cache_memcached::{MemcachedConfig, ServerConfig};
use cache_redis::RedisConfig;
use cache_test_fixtures::{Server, ServerKind};

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `cache-redis` against `redis-server`.
    Redis,
    /// `cache-memcached` against `memcached`.
    Memcached,
}

impl Kind {
    /// Both backends.
    pub const ALL: [Kind; 2] = [Kind::Redis, Kind::Memcached];

    /// `redis` or `memcached`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::Memcached => "memcached",
        }
    }

    /// The kind named `name` (`redis` or `memcached`, as [`name`](Self::name) gives).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The environment variable with the URL of the shared test server.
    pub fn url_variable(self) -> &'static str {
        match self {
            Kind::Redis => "CACHE_TEST_REDIS_URL",
            Kind::Memcached => "CACHE_TEST_MEMCACHED_URL",
        }
    }

    /// The URL of the shared test server (`cargo x services up`), or `None` after one loud
    /// `SKIPPED` line; see [`cache_core::testkit::server_url`].
    ///
    /// # Panics
    /// When the variable is unset and `CI` is set.
    pub fn shared_url(self) -> Option<String> {
        cache_core::testkit::server_url(self.url_variable())
    }

    /// The server program this backend talks to.
    pub fn server_kind(self) -> ServerKind {
        match self {
            Kind::Redis => ServerKind::Redis,
            Kind::Memcached => ServerKind::Memcached,
        }
    }

    /// A URL of this kind for a server at `address` (`host:port`).
    pub fn url_for(self, address: &str) -> String {
        format!("{}://{address}", self.name())
    }

    /// The `host:port` of the (first) server of `url`.
    ///
    /// # Panics
    /// When `url` is not a URL of this kind.
    pub fn address_of(self, url: &str) -> String {
        match self {
            Kind::Redis => {
                let config = RedisConfig::from_url(url).expect("a redis:// URL");
                format!("{}:{}", config.endpoint, config.port)
            }
            Kind::Memcached => {
                let config = MemcachedConfig::from_url(url).expect("a memcached:// URL");
                config.servers[0].address.clone()
            }
        }
    }
}

/// A private server of `kind`'s program on a free loopback port (never the shared server), for
/// a scenario that kills and restarts it; `None` when the test is skipped.
///
/// # Panics
/// When the program is missing and `CI` is set: under CI the scenario fails instead of
/// skipping (see [`Server::start`]).
pub fn private_server(kind: Kind) -> Option<Server> {
    Server::start(kind.server_kind(), &[])
}

/// Connection settings of a backend under test.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Connections: redis `pool_size`, memcached `pool_size` (per server).
    pub pool_size: usize,
    /// Redis only: the longest delay between reconnection attempts (`None`: the default).
    pub reconnect_max_delay: Option<Duration>,
}

impl Setup {
    /// `pool_size` connections, everything else as configured by default.
    pub fn pool(pool_size: usize) -> Setup {
        Setup {
            pool_size,
            reconnect_max_delay: None,
        }
    }
}

/// A backend of `kind` configured from `url` (credentials, database, options), but connecting
/// to `address` with the connections of `setup`.
///
/// # Panics
/// When `url` does not parse or nothing answers at `address`.
pub async fn connect(kind: Kind, url: &str, address: &str, setup: &Setup) -> Arc<dyn Backend> {
    let (host, port) = address.rsplit_once(':').expect("address is host:port");
    match kind {
        Kind::Redis => {
            let mut config = RedisConfig::from_url(url).expect("a redis:// URL");
            config.endpoint = host.to_owned();
            config.port = port.parse().expect("a port number");
            config.pool_size = setup.pool_size;
            if let Some(max_delay) = setup.reconnect_max_delay {
                config.reconnect.max_delay = max_delay;
            }
            let backend = config
                .into_builder()
                .build()
                .await
                .unwrap_or_else(|e| panic!("redis at {address}: {e}"));
            Arc::new(backend)
        }
        Kind::Memcached => {
            let mut config = MemcachedConfig::from_url(url).expect("a memcached:// URL");
            config.servers = vec![ServerConfig::new(address)];
            config.pool_size = setup.pool_size;
            let backend = config
                .into_builder()
                .build()
                .await
                .unwrap_or_else(|e| panic!("memcached at {address}: {e}"));
            Arc::new(backend)
        }
    }
}
