//! Configuration as data: [`MemcachedConfig`] (serde) and `memcached://` URLs.

use std::fmt;
use std::time::Duration;

use cache_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::MemcachedBuilder;

/// The URL scheme of this backend: `memcached://host1:11211,host2:11212?pool_size=4`.
pub const MEMCACHED_SCHEME: &str = "memcached";

/// Every scheme [`MemcachedConfig::from_url`] accepts.
pub const SCHEMES: &[&str] = &[MEMCACHED_SCHEME];

/// The port used when an address gives none.
pub const DEFAULT_PORT: u16 = 11211;

pub(crate) const DEFAULT_POOL_SIZE: usize = 8;
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_GENERATION_REFRESH: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;
/// Largest pool per server this crate accepts.
pub(crate) const MAX_POOL_SIZE: usize = 1024;

/// One memcached server and its share of the keys.
///
/// In a config file a server is either a string (`"10.0.0.1:11211"`, weight 1) or a table
/// (`{ address = "10.0.0.1:11211", weight = 2 }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ServerRepr")]
#[non_exhaustive]
pub struct ServerConfig {
    /// `host:port` or `host` (port 11211). IPv4 addresses and host names; the client cannot
    /// connect to IPv6 addresses.
    pub address: String,
    /// Relative share of the keys (ketama weight), at least 1. Default 1.
    pub weight: u32,
}

impl ServerConfig {
    /// A server with weight 1.
    pub fn new(address: impl Into<String>) -> Self {
        ServerConfig {
            address: address.into(),
            weight: 1,
        }
    }

    /// A server with the given weight.
    pub fn weighted(address: impl Into<String>, weight: u32) -> Self {
        ServerConfig {
            address: address.into(),
            weight,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ServerRepr {
    Address(String),
    Full {
        address: String,
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

impl From<ServerRepr> for ServerConfig {
    fn from(r: ServerRepr) -> Self {
        match r {
            ServerRepr::Address(address) => ServerConfig::new(address),
            ServerRepr::Full { address, weight } => ServerConfig { address, weight },
        }
    }
}

/// Everything a [`MemcachedBackend`](crate::MemcachedBackend) is built from; every field has
/// a default, so a config file names only what it changes.
///
/// ```
/// use cache_memcached::MemcachedConfig;
///
/// let cfg = MemcachedConfig::from_url(
///     "memcached://10.0.0.1:11211,10.0.0.2?pool_size=4&weights=2,1&command_timeout=250ms",
/// )?;
/// assert_eq!(cfg.servers.len(), 2);
/// assert_eq!(cfg.servers[1].address, "10.0.0.2:11211");
/// assert_eq!(cfg.servers[0].weight, 2);
/// assert_eq!(cfg.pool_size, 4);
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemcachedConfig {
    /// The servers; keys are spread over them by ketama consistent hashing. Default: none
    /// (building fails until one is given).
    pub servers: Vec<ServerConfig>,
    /// Connections per server, at most. Default 8.
    pub pool_size: usize,
    /// How long a connect may take. Default 1 s.
    #[serde(with = "cache_core::duration::serde")]
    pub connect_timeout: Duration,
    /// Deadline of each backend command, covering the wait for a pooled connection. Default
    /// none: the [`Cache`](cache_core::Cache)'s own per-command timeout (5 s unless changed)
    /// bounds every call.
    #[serde(with = "opt_duration")]
    pub command_timeout: Option<Duration>,
    /// After a failed connect, calls for that server's keys fail at once for this long before
    /// the next connect attempt. Zero retries on every call. Default 1 s.
    #[serde(with = "cache_core::duration::serde")]
    pub retry_backoff: Duration,
    /// Scoped `clear()` through namespace generations. Default false: `clear()` of a namespace
    /// is `Unsupported`.
    pub namespace_generations: bool,
    /// How long a process trusts its copy of a namespace's generation before reading it again.
    /// Zero reads it on every call (one more round trip per call). Default 1 s.
    ///
    /// Within this time after a clear made by *another* process, this process may still read
    /// the cleared values, and its writes go into the cleared generation, where nobody reads
    /// them: they are lost. Past it without a successful read of the counter (its server
    /// down), commands of the namespace fail (reads are misses with `miss_on_server_down`)
    /// rather than use an older generation.
    #[serde(with = "cache_core::duration::serde")]
    pub generation_refresh: Duration,
    /// The servers' item size limit (memcached `-I`), in bytes. Larger values are refused
    /// before they are sent. Default 1 MiB, memcached's default.
    pub max_item_size: usize,
    /// Reads (`get`, `multi_get`, `exists`, `ttl`) of keys on a server that cannot be reached
    /// answer as misses instead of failing, and so do reads whose namespace generation cannot
    /// be read because the counter's server cannot be reached. Writes still fail. Default
    /// false.
    pub miss_on_server_down: bool,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig {
            servers: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: None,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            namespace_generations: false,
            generation_refresh: DEFAULT_GENERATION_REFRESH,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            miss_on_server_down: false,
        }
    }
}

fn config_error(url: &str, msg: impl fmt::Display) -> Error {
    Error::config(format!("invalid memcached URL: {msg}")).with_context("url", redact(url))
}

/// `url` without its user-info (memcached URLs carry no credentials, but one may be added
/// by mistake; it ends at the URL's last `@`, see [`cache_core::url`]).
fn redact(url: &str) -> String {
    cache_core::url::redact(url)
}

impl MemcachedConfig {
    /// Parses `memcached://host1:11211,host2:11212?pool_size=4&...`.
    ///
    /// Hosts are comma-separated `host[:port]` (port 11211 by default). Query parameters:
    /// `pool_size`, `weights` (one per server, comma-separated), `connect_timeout`,
    /// `command_timeout` (`none` or `0` disables it), `retry_backoff`,
    /// `namespace_generations` (`true`/`false`), `generation_refresh`, `max_item_size` (bytes,
    /// or with `k`/`m` suffix), `miss_on_server_down`. Durations take a unit: `250ms`, `2s`,
    /// `1m`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config), naming the problem: another
    /// scheme, no host, a bad port, an IPv6 address, credentials, a path, an unknown or
    /// repeated parameter, a bad value.
    pub fn from_url(url: &str) -> Result<Self> {
        let err = |m: String| config_error(url, m);
        let parts = cache_core::url::split(url)
            .ok_or_else(|| err(format!("expected {MEMCACHED_SCHEME}://host:port")))?;
        let scheme = parts.scheme;
        if !scheme.eq_ignore_ascii_case(MEMCACHED_SCHEME) {
            return Err(err(format!(
                "scheme is {scheme:?}, expected {MEMCACHED_SCHEME:?}"
            )));
        }
        if parts.userinfo.is_some() {
            return Err(err(
                "memcached's text protocol has no authentication; remove the credentials \
                 (an `@` elsewhere in the URL must be percent-encoded as %40)"
                    .into(),
            ));
        }
        if parts.has_fragment() {
            return Err(err("a fragment (#...) has no meaning here".into()));
        }
        let authority_path = parts.base();
        let (authority, path) = match authority_path.find('/') {
            Some(i) => authority_path.split_at(i),
            None => (authority_path, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(err(format!(
                "memcached has no databases or paths; remove {path:?}"
            )));
        }
        if authority.is_empty() {
            return Err(err("no server given".into()));
        }
        let mut cfg = MemcachedConfig::default();
        for address in authority.split(',') {
            let normalized = normalize_address(address).map_err(&err)?;
            cfg.servers.push(ServerConfig::new(normalized));
        }
        for param in cache_core::url::Query::new(parts.query()) {
            let (name, value) = (param.name, param.value);
            if param.repeated {
                return Err(err(format!("parameter {name:?} is given twice")));
            }
            let bad = |e: String| err(format!("parameter {name}={value:?}: {e}"));
            match name {
                "pool_size" => cfg.pool_size = parse_count(value).map_err(bad)?,
                "weights" => {
                    let weights: Vec<&str> = value.split(',').collect();
                    if weights.len() != cfg.servers.len() {
                        return Err(bad(format!(
                            "{} weights for {} servers",
                            weights.len(),
                            cfg.servers.len()
                        )));
                    }
                    for (server, w) in cfg.servers.iter_mut().zip(weights) {
                        server.weight =
                            w.parse::<u32>().ok().filter(|w| *w >= 1).ok_or_else(|| {
                                bad(format!("weight {w:?} is not an integer >= 1"))
                            })?;
                    }
                }
                "connect_timeout" => {
                    cfg.connect_timeout = cache_core::duration::parse(value).map_err(bad)?
                }
                "command_timeout" => {
                    cfg.command_timeout =
                        cache_core::url::parse_optional_duration(value).map_err(bad)?
                }
                "retry_backoff" => {
                    cfg.retry_backoff = cache_core::duration::parse(value).map_err(bad)?
                }
                "namespace_generations" => {
                    cfg.namespace_generations = parse_bool(value).map_err(bad)?
                }
                "generation_refresh" => {
                    cfg.generation_refresh = cache_core::duration::parse(value).map_err(bad)?
                }
                "max_item_size" => cfg.max_item_size = parse_size(value).map_err(bad)?,
                "miss_on_server_down" => {
                    cfg.miss_on_server_down = parse_bool(value).map_err(bad)?
                }
                other => {
                    return Err(err(format!(
                        "unknown parameter {other:?}; known: pool_size, weights, \
                         connect_timeout, command_timeout, retry_backoff, namespace_generations, \
                         generation_refresh, max_item_size, miss_on_server_down"
                    )));
                }
            }
        }
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    /// A builder with these settings.
    pub fn into_builder(self) -> MemcachedBuilder {
        MemcachedBuilder::from_config(self)
    }

    /// Checks every setting; the message names the first bad one.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.servers.is_empty() {
            return Err("no memcached server configured".into());
        }
        let mut addresses = Vec::with_capacity(self.servers.len());
        for s in &self.servers {
            let a = normalize_address(&s.address)?;
            if s.weight == 0 {
                return Err(format!("server {a} has weight 0; weights start at 1"));
            }
            if addresses.contains(&a) {
                return Err(format!("server {a} is listed twice"));
            }
            addresses.push(a);
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(format!(
                "pool_size is {}; it must be between 1 and {MAX_POOL_SIZE}",
                self.pool_size
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err("connect_timeout must be greater than zero".into());
        }
        if self.max_item_size < 1024 {
            return Err(format!(
                "max_item_size is {} bytes; memcached's smallest is 1024",
                self.max_item_size
            ));
        }
        Ok(())
    }
}

#[cache_core::async_trait]
impl cache_core::url::UrlConfig for MemcachedConfig {
    const SCHEMES: &'static [&'static str] = SCHEMES;
    const AIOCACHE_FLAVOR: cache_core::AiocacheFlavor = cache_core::AiocacheFlavor::Memcached;

    fn from_url(url: &str) -> Result<Self> {
        MemcachedConfig::from_url(url)
    }

    /// Namespace generations put a number into every stored key, which aiocache's keys lack.
    fn check_aiocache_keys(&self) -> Result<()> {
        if self.namespace_generations {
            return Err(Error::config(
                "key_builder=aiocache cannot be combined with namespace_generations: \
                 generations put a number into every stored key, so aiocache would never \
                 find the keys; turn one of them off",
            ));
        }
        Ok(())
    }

    async fn connect(self) -> Result<std::sync::Arc<dyn cache_core::Backend>> {
        Ok(std::sync::Arc::new(self.into_builder().build().await?))
    }
}

/// `host[:port]` → `host:port`, refusing what the client cannot connect to.
pub(crate) fn normalize_address(address: &str) -> std::result::Result<String, String> {
    let a = address.trim();
    if a.is_empty() {
        return Err("an empty server address".into());
    }
    if a.starts_with('[') || a.matches(':').count() > 1 {
        return Err(format!(
            "server {a:?}: IPv6 addresses are not supported by the memcached client; use an \
             IPv4 address or a host name"
        ));
    }
    if a.contains("://") {
        return Err(format!("server {a:?}: give host:port, without a scheme"));
    }
    let (host, port) = match a.split_once(':') {
        Some((h, p)) => {
            let port = p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                format!("server {a:?}: port {p:?} is not a number from 1 to 65535")
            })?;
            (h, port)
        }
        None => (a, DEFAULT_PORT),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(format!(
            "server {a:?}: {host:?} is not a host name or IPv4 address"
        ));
    }
    Ok(format!("{host}:{port}"))
}

fn parse_count(v: &str) -> std::result::Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| "not a whole number".to_owned())
}

fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    cache_core::url::parse_bool(v).ok_or_else(|| "expected true or false".into())
}

fn parse_size(v: &str) -> std::result::Result<usize, String> {
    cache_core::url::parse_size(v)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| "expected bytes, like 1048576 or 1m".into())
}

/// Optional durations: as [`cache_core::duration`], plus `null`, `"none"`, `"off"` or zero for none.
mod opt_duration {
    use std::time::Duration;

    use serde::Serializer;
    use serde::de::{self, Deserializer, Visitor};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&cache_core::duration::format(*d)),
            None => s.serialize_none(),
        }
    }

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration like \"250ms\", milliseconds, \"none\" or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(OptVisitor)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "none" | "off" => Ok(None),
                v => cache_core::duration::parse(v)
                    .map_err(E::custom)
                    .map(|d| Some(d).filter(|d| !d.is_zero())),
            }
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_millis(v)).filter(|d| !d.is_zero()))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|ms| Some(Duration::from_millis(ms)).filter(|d| !d.is_zero()))
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::ErrorKind;

    #[test]
    fn full_url() {
        let cfg = MemcachedConfig::from_url(
            "memcached://a:1,b,c.example:3/?pool_size=4&weights=1,2,3&connect_timeout=250ms\
             &command_timeout=1.5s&retry_backoff=0&namespace_generations=true\
             &generation_refresh=2s&max_item_size=2m&miss_on_server_down=yes",
        )
        .unwrap();
        let addrs: Vec<_> = cfg.servers.iter().map(|s| s.address.as_str()).collect();
        assert_eq!(addrs, ["a:1", "b:11211", "c.example:3"]);
        let weights: Vec<_> = cfg.servers.iter().map(|s| s.weight).collect();
        assert_eq!(weights, [1, 2, 3]);
        assert_eq!(cfg.pool_size, 4);
        assert_eq!(cfg.connect_timeout, Duration::from_millis(250));
        assert_eq!(cfg.command_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(cfg.retry_backoff, Duration::ZERO);
        assert!(cfg.namespace_generations);
        assert_eq!(cfg.generation_refresh, Duration::from_secs(2));
        assert_eq!(cfg.max_item_size, 2 << 20);
        assert!(cfg.miss_on_server_down);
    }

    #[test]
    fn defaults() {
        let cfg = MemcachedConfig::from_url("memcached://127.0.0.1").unwrap();
        assert_eq!(cfg.servers, vec![ServerConfig::new("127.0.0.1:11211")]);
        assert_eq!(
            cfg,
            MemcachedConfig {
                servers: cfg.servers.clone(),
                ..MemcachedConfig::default()
            }
        );
        let off = MemcachedConfig::from_url("memcached://h?command_timeout=none").unwrap();
        assert_eq!(off.command_timeout, None);
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (url, needle) in [
            ("redis://h:1", "scheme"),
            ("memcached://", "no server"),
            ("memcached://h:0", "port"),
            ("memcached://h:99999", "port"),
            ("memcached://h:x", "port"),
            ("memcached://[::1]:11211", "IPv6"),
            ("memcached://user:pw@h", "authentication"),
            ("memcached://h/0", "path"),
            ("memcached://h?pool_size=0", "pool_size"),
            ("memcached://h?pool_size=x", "pool_size"),
            ("memcached://h?bogus=1", "unknown parameter"),
            ("memcached://h?pool_size=1&pool_size=2", "twice"),
            ("memcached://a,b?weights=1", "weights"),
            ("memcached://a,b?weights=1,0", "weight"),
            ("memcached://h?connect_timeout=5", "unit"),
            ("memcached://h?connect_timeout=0", "connect_timeout"),
            ("memcached://h?command_timeout=5parsecs", "unit"),
            ("memcached://h?namespace_generations=maybe", "true or false"),
            ("memcached://a,a", "twice"),
            ("memcached://a b", "host name"),
            ("memcached://h?max_item_size=12", "max_item_size"),
            ("memcached:h", "memcached://"),
        ] {
            let e = MemcachedConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
        for url in [
            "memcached://u:secret@h",
            "memcached://u:p@ss@secret@h",
            "memcached://u:secret@h:1?pool_size=x",
            "memcached://h1,u:secret@h2",
        ] {
            let e = MemcachedConfig::from_url(url).unwrap_err();
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        assert_eq!(
            redact("memcached://u:p@ss@h:1?a=b"),
            "memcached://***@h:1?a=b"
        );
        assert_eq!(redact("memcached://u:p/s?s#@h:1"), "memcached://***@h:1");
    }

    #[test]
    fn durations() {
        assert_eq!(
            cache_core::duration::parse("50ms").unwrap(),
            Duration::from_millis(50)
        );
        assert_eq!(
            cache_core::duration::parse("2s").unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(
            cache_core::duration::parse("1m").unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            cache_core::duration::parse("0.25s").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(cache_core::duration::parse("0").unwrap(), Duration::ZERO);
        assert!(cache_core::duration::parse("ms").is_err());
        assert!(cache_core::duration::parse("-1s").is_err());
        for d in [
            Duration::from_millis(1500),
            Duration::from_secs(3),
            Duration::from_micros(7),
            Duration::from_nanos(9),
        ] {
            assert_eq!(
                cache_core::duration::parse(&cache_core::duration::format(d)).unwrap(),
                d
            );
        }
    }

    #[test]
    fn serde_round_trip_and_short_forms() {
        let json = r#"{
            "servers": ["10.0.0.1:11211", {"address": "10.0.0.2", "weight": 3}],
            "pool_size": 2,
            "connect_timeout": "300ms",
            "command_timeout": 750,
            "namespace_generations": true
        }"#;
        let cfg: MemcachedConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.servers[0], ServerConfig::new("10.0.0.1:11211"));
        assert_eq!(cfg.servers[1], ServerConfig::weighted("10.0.0.2", 3));
        assert_eq!(cfg.connect_timeout, Duration::from_millis(300));
        assert_eq!(cfg.command_timeout, Some(Duration::from_millis(750)));
        assert_eq!(cfg.retry_backoff, DEFAULT_RETRY_BACKOFF);
        let back: MemcachedConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let none: MemcachedConfig = serde_json::from_str(r#"{"command_timeout": null}"#).unwrap();
        assert_eq!(none.command_timeout, None);
        assert!(serde_json::from_str::<MemcachedConfig>(r#"{"pool": 1}"#).is_err());
    }
}
