//! [`RedisConfig`]: every setting of the backend as one serde struct, and its URL syntax.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cache_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::RedisBuilder;

/// The scheme of a standalone server over TCP: `redis://`.
pub const REDIS_SCHEME: &str = "redis";
/// The scheme of a standalone server over TLS: `rediss://`.
pub const REDIS_TLS_SCHEME: &str = "rediss";
/// The scheme of a Redis Cluster: `redis-cluster://`.
pub const REDIS_CLUSTER_SCHEME: &str = "redis-cluster";
/// The scheme of a Redis Cluster over TLS: `rediss-cluster://`.
pub const REDIS_CLUSTER_TLS_SCHEME: &str = "rediss-cluster";
/// The scheme of a primary found through Redis Sentinel: `redis-sentinel://`.
pub const REDIS_SENTINEL_SCHEME: &str = "redis-sentinel";
/// The scheme of a primary found through Redis Sentinel, over TLS: `rediss-sentinel://`.
pub const REDIS_SENTINEL_TLS_SCHEME: &str = "rediss-sentinel";
/// The scheme of a server on a Unix domain socket: `redis+unix://`.
pub const REDIS_UNIX_SCHEME: &str = "redis+unix";

/// Every scheme [`RedisConfig::from_url`] accepts, including the `valkey` spellings of each
/// (`valkey://`, `valkeys://`, `valkey-cluster://`, …), for a caller that picks a backend by
/// scheme.
pub const SCHEMES: &[&str] = &[
    REDIS_SCHEME,
    REDIS_TLS_SCHEME,
    REDIS_CLUSTER_SCHEME,
    REDIS_CLUSTER_TLS_SCHEME,
    REDIS_SENTINEL_SCHEME,
    REDIS_SENTINEL_TLS_SCHEME,
    REDIS_UNIX_SCHEME,
    "valkey",
    "valkeys",
    "valkey-cluster",
    "valkeys-cluster",
    "valkey-sentinel",
    "valkeys-sentinel",
    "valkey+unix",
];

/// The default port of a Redis server.
pub(crate) const DEFAULT_PORT: u16 = 6379;
/// The default port of a Redis Sentinel.
pub(crate) const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// How the server is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RedisMode {
    /// One server (or a primary behind a proxy) at `endpoint:port`.
    #[default]
    Standalone,
    /// A Redis Cluster; `endpoint:port` and `nodes` are seed nodes, the rest is discovered.
    Cluster,
    /// A primary found through Redis Sentinel; `endpoint:port` and `nodes` are sentinels and
    /// `sentinel_service` names the primary.
    Sentinel,
    /// One server on the Unix domain socket `socket_path`.
    Unix,
}

/// The wire protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RespProtocol {
    /// RESP2: every Redis version, and proxies that do not speak `HELLO`. The default: fred
    /// encodes and decodes it with less work (about 4 % fewer instructions per command, and a
    /// sixth fewer for an `MGET` of 100 keys; `cargo x bench profile`).
    #[default]
    Resp2,
    /// RESP3 (Redis 6 and later, Valkey), negotiated with `HELLO 3`. Needed for client
    /// tracking ([`RedisBackend::tracking`](crate::RedisBackend::tracking)); replies of
    /// [`raw`](cache_core::Cache::raw) keep their types (double, boolean, map).
    Resp3,
}

/// How the backend reconnects after a connection breaks: exponential backoff with jitter,
/// forever by default. Delays between attempts are `min_delay`, `min_delay × factor`,
/// `min_delay × factor²`, … capped at `max_delay`, each plus a random jitter of up to `jitter`.
///
/// After the server comes back, the next attempt (so at most `max_delay + jitter` later)
/// reconnects; commands issued meanwhile wait for it, up to their timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// Delay before the first attempt. Default: 100 ms.
    #[serde(with = "cache_core::duration::serde")]
    pub min_delay: Duration,
    /// Longest delay between two attempts. Default: 1 s, so that a restarted server is
    /// reached again within about a second of its return.
    #[serde(with = "cache_core::duration::serde")]
    pub max_delay: Duration,
    /// Growth factor of the delay; 1 keeps it constant. Default: 2.
    pub factor: u32,
    /// Largest random delay added to each attempt, so that many clients do not reconnect in
    /// lockstep. Default: 100 ms.
    #[serde(with = "cache_core::duration::serde")]
    pub jitter: Duration,
    /// Attempts before giving up for good; 0 = never give up. Default: 0.
    pub max_attempts: u32,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            factor: 2,
            jitter: Duration::from_millis(100),
            max_attempts: 0,
        }
    }
}

impl ReconnectConfig {
    fn validate(&self) -> Result<()> {
        let ms = |d: Duration, name: &str| -> Result<u32> {
            u32::try_from(d.as_millis()).map_err(|_| {
                Error::config(format!(
                    "reconnect {name} of {d:?} is too long (at most ~49 days)"
                ))
            })
        };
        let min = ms(self.min_delay, "min_delay")?;
        let max = ms(self.max_delay, "max_delay")?;
        ms(self.jitter, "jitter")?;
        if min == 0 || max == 0 {
            return Err(Error::config(
                "reconnect min_delay and max_delay must be at least 1 ms",
            ));
        }
        if min > max {
            return Err(Error::config(format!(
                "reconnect min_delay ({:?}) is longer than max_delay ({:?})",
                self.min_delay, self.max_delay
            )));
        }
        if self.factor == 0 {
            return Err(Error::config(
                "reconnect factor must be at least 1 (1 keeps the delay constant)",
            ));
        }
        Ok(())
    }

    pub(crate) fn to_fred(self) -> fred::types::config::ReconnectPolicy {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let mut policy = fred::types::config::ReconnectPolicy::new_exponential(
            self.max_attempts,
            ms(self.min_delay),
            ms(self.max_delay),
            self.factor,
        );
        policy.set_jitter(ms(self.jitter));
        policy
    }
}

/// Every setting of a [`RedisBackend`](crate::RedisBackend), for config files, environment
/// layers and URLs. Turn it into a backend with [`into_builder`](Self::into_builder) and
/// [`RedisBuilder::build`].
///
/// All fields have defaults (`#[serde(default)]`); unknown fields are refused. Durations are
/// written as text with a unit (`"250ms"`, `"5s"`, `"2m"`) or as a number of milliseconds.
/// `Debug` hides the password.
///
/// ```
/// use cache_redis::{RedisConfig, RedisMode};
///
/// let config = RedisConfig::from_url("redis://:secret@cache.internal:6380/2?pool_size=2")?;
/// assert_eq!(config.mode, RedisMode::Standalone);
/// assert_eq!((config.endpoint.as_str(), config.port, config.db), ("cache.internal", 6380, 2));
/// assert_eq!(config.pool_size, 2);
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    /// How the server is deployed. Default: [`RedisMode::Standalone`].
    pub mode: RedisMode,
    /// Host name or IP address of the server (cluster: a seed node; sentinel: a sentinel).
    /// Default: `"127.0.0.1"`.
    pub endpoint: String,
    /// Port of `endpoint`. Default: 6379.
    pub port: u16,
    /// More cluster seed nodes or sentinels, as `host:port`. Default: none.
    pub nodes: Vec<String>,
    /// The primary's service name in sentinel mode (required there). Default: none.
    pub sentinel_service: Option<String>,
    /// The socket path in Unix mode (required there). Default: none.
    pub socket_path: Option<PathBuf>,
    /// Database number (`SELECT`), re-applied after every reconnect. A cluster has only
    /// database 0. Default: 0.
    pub db: u8,
    /// ACL user name; `None` authenticates as the default user. Not shown by `Debug` (a URL's
    /// user-info may hold a password in this place, as in `redis://s3cret@host`). Default:
    /// none. Serialized as `"***"`.
    #[serde(serialize_with = "cache_core::url::serialize_secret")]
    pub username: Option<String>,
    /// Password (`AUTH`). Never shown by `Debug`; serialized as `"***"`. Default: none.
    #[serde(serialize_with = "cache_core::url::serialize_secret")]
    pub password: Option<String>,
    /// Connect with TLS (needs the `tls` feature). Default: false.
    pub tls: bool,
    /// PEM file with the certificate authorities to trust for TLS; `None` trusts the
    /// system's roots. Default: none.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate chain for servers that require client authentication
    /// (`tls-auth-clients yes`); needs `tls_key_file`. Default: none.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Default: none.
    pub tls_key_file: Option<PathBuf>,
    /// **Dangerous.** Accepts any server certificate: expired, self-signed, issued by an
    /// unknown authority or for another host. The connection is still encrypted, but anyone
    /// on the network path can impersonate the server and read or change every value and
    /// the password. Only for test setups that cannot install their CA; pass the CA with
    /// `tls_ca_file` instead wherever possible. URL parameter `tls_accept_invalid_certs=true`
    /// (or `tls_insecure=true`). Default: false — certificates are verified.
    pub tls_accept_invalid_certs: bool,
    /// Wire protocol version. Default: [`RespProtocol::Resp2`]; client tracking needs
    /// [`RespProtocol::Resp3`].
    pub protocol: RespProtocol,
    /// Connections, each carrying many concurrent commands (auto-pipelined); commands go to
    /// them in turn. One is usually fastest; more help when one connection's I/O is the
    /// bottleneck (many cores, large values). Default: 1.
    pub pool_size: usize,
    /// Deadline of a connection attempt, TLS handshake and `AUTH`/`SELECT` included.
    /// Default: 5 s.
    #[serde(with = "cache_core::duration::serde")]
    pub connect_timeout: Duration,
    /// A second deadline on every command, at the client, whatever the caller's own timeout.
    /// Default: zero, none: the [`Cache`](cache_core::Cache)'s per-command deadline (5 s by
    /// default) already bounds every call, and a second timer per command costs about as
    /// much CPU as the cache's whole key-building and decoding path. Set it when the backend
    /// is used without a cache deadline. On Linux it also raises, above a 10 s floor, how
    /// long sent data may stay unacknowledged before the kernel drops the connection
    /// (`TCP_USER_TIMEOUT`) and the backend reconnects.
    #[serde(with = "cache_core::duration::serde")]
    pub command_timeout: Duration,
    /// Reconnection policy. Default: see [`ReconnectConfig`].
    pub reconnect: ReconnectConfig,
    /// Scoped `clear()` in constant time through namespace generations: every key of a
    /// namespace is stored with the namespace's generation folded in, and `clear()` increments
    /// the generation — one command, whatever the size of the server's keyspace. Every command
    /// reads the generation and runs on the folded key in one script, so no read in any process
    /// returns a value written before a clear that returned. Costs one script per command
    /// instead of a plain command; on a cluster every key of a namespace lives in one hash
    /// slot. See the backend's documentation. Default: false (`clear()` walks the keyspace
    /// with `SCAN`).
    pub namespace_generations: bool,
    /// With namespace generations, removes the keys of the cleared generation in the
    /// background after each `clear()` (a cursor-complete `SCAN` of the namespace, a page of
    /// at most 1,000 keys every 10 ms, outside any caller's deadline). Without it the old
    /// keys stay until their TTL ends or the server evicts them. Default: false.
    pub generation_sweep: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            mode: RedisMode::Standalone,
            endpoint: "127.0.0.1".to_owned(),
            port: DEFAULT_PORT,
            nodes: Vec::new(),
            sentinel_service: None,
            socket_path: None,
            db: 0,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_accept_invalid_certs: false,
            protocol: RespProtocol::Resp2,
            pool_size: 1,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::ZERO,
            reconnect: ReconnectConfig::default(),
            namespace_generations: false,
            generation_sweep: false,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("mode", &self.mode)
            .field("endpoint", &self.endpoint)
            .field("port", &self.port)
            .field("nodes", &self.nodes)
            .field("sentinel_service", &self.sentinel_service)
            .field("socket_path", &self.socket_path)
            .field("db", &self.db)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_accept_invalid_certs", &self.tls_accept_invalid_certs)
            .field("protocol", &self.protocol)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("reconnect", &self.reconnect)
            .field("namespace_generations", &self.namespace_generations)
            .field("generation_sweep", &self.generation_sweep)
            .finish()
    }
}

impl RedisConfig {
    /// Parses a URL.
    ///
    /// ```text
    /// redis[s]://[[username]:password@]host[:port][/db][?params]
    /// redis[s]-cluster://[[username]:password@]host:port[?node=host:port&node=…][&params]
    /// redis[s]-sentinel://[[username]:password@]sentinel[:port][/db]?service_name=name[&node=host:port…][&params]
    /// redis+unix://[[username]:password@]/path/to/redis.sock[?db=n][&params]
    /// ```
    ///
    /// `valkey` may replace `redis` in every scheme. User name and password are
    /// percent-decoded. The user-info ends at the last `@` of the URL, so a password may hold
    /// any printable character as it is (`@`, `:`, `/`, `?`, `#` included); an `@` in the
    /// query must be percent-encoded (`%40`). The database may be followed by a `/`
    /// (`redis://host:6379/0/`, as aiocache writes it). The port defaults to 6379 (26379 for a sentinel). Query parameters,
    /// each optional: `db`, `node` (repeatable), `service_name` (also `sentinelServiceName`),
    /// `protocol` (`resp2` / `resp3`), `pool_size`, `connect_timeout`, `command_timeout`
    /// (`250ms`, `5s`, …), `reconnect_min_delay`, `reconnect_max_delay`,
    /// `reconnect_max_attempts`, `tls_ca_file`, `tls_cert_file`, `tls_key_file`,
    /// `namespace_generations` and `generation_sweep` (`true`/`false`), and — only
    /// for test setups, see [`tls_accept_invalid_certs`](Self::tls_accept_invalid_certs) —
    /// `tls_accept_invalid_certs=true` (also `tls_insecure=true`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) naming the problem: unknown scheme
    /// or parameter, bad port, database or duration, a missing sentinel service name or socket
    /// path, a database other than 0 on a cluster. The message never repeats the password.
    pub fn from_url(url: &str) -> Result<RedisConfig> {
        url::parse(url)
    }

    /// A builder holding this configuration.
    pub fn into_builder(self) -> RedisBuilder {
        RedisBuilder::from_config(self)
    }

    /// Checks the settings that can be checked without connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        match self.mode {
            RedisMode::Unix => {
                if self
                    .socket_path
                    .as_ref()
                    .is_none_or(|p| p.as_os_str().is_empty())
                {
                    return Err(Error::config("unix mode needs a socket_path"));
                }
                if self.tls {
                    return Err(Error::config("TLS is not available over a Unix socket"));
                }
            }
            _ => {
                if self.endpoint.is_empty() {
                    return Err(Error::config("the redis endpoint (host) is empty"));
                }
                if self.port == 0 {
                    return Err(Error::config("the redis port must not be 0"));
                }
                for node in &self.nodes {
                    parse_node(node)?;
                }
            }
        }
        if self.mode == RedisMode::Sentinel
            && self.sentinel_service.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::config(
                "sentinel mode needs the primary's service name (sentinel_service, or \
                 service_name=… in the URL)",
            ));
        }
        if self.mode == RedisMode::Cluster && self.db != 0 {
            return Err(Error::config(format!(
                "a redis cluster has only database 0, not {}",
                self.db
            )));
        }
        if self.pool_size == 0 || self.pool_size > 256 {
            return Err(Error::config(format!(
                "pool_size must be between 1 and 256, not {}",
                self.pool_size
            )));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config("connect_timeout must be greater than zero"));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(Error::config(
                "tls_cert_file and tls_key_file must be given together",
            ));
        }
        if !self.tls
            && (self.tls_ca_file.is_some()
                || self.tls_cert_file.is_some()
                || self.tls_key_file.is_some())
        {
            return Err(Error::config(
                "TLS files are set but TLS is off; use a rediss:// URL or set tls = true",
            ));
        }
        if !self.tls && self.tls_accept_invalid_certs {
            return Err(Error::config(
                "tls_accept_invalid_certs is set but TLS is off; use a rediss:// URL or set \
                 tls = true",
            ));
        }
        if self.tls && !cfg!(feature = "tls") {
            return Err(Error::config(
                "TLS needs the `tls` feature of cache-redis (or `redis-tls` of stratacache)",
            ));
        }
        self.reconnect.validate()
    }

    /// Where the backend connects, for `Debug` and messages: scheme, host(s) and database,
    /// never credentials.
    pub(crate) fn describe(&self) -> String {
        let s = if self.tls { "s" } else { "" };
        match self.mode {
            RedisMode::Standalone => {
                format!(
                    "redis{s}://{}/{}",
                    host_port(&self.endpoint, self.port),
                    self.db
                )
            }
            RedisMode::Cluster => {
                let mut out = format!(
                    "redis{s}-cluster://{}",
                    host_port(&self.endpoint, self.port)
                );
                for n in &self.nodes {
                    out.push(',');
                    out.push_str(n);
                }
                out
            }
            RedisMode::Sentinel => format!(
                "redis{s}-sentinel://{}/{}?service_name={}",
                host_port(&self.endpoint, self.port),
                self.db,
                self.sentinel_service.as_deref().unwrap_or("")
            ),
            RedisMode::Unix => format!(
                "redis+unix://{}?db={}",
                self.socket_path.as_deref().unwrap_or("".as_ref()).display(),
                self.db
            ),
        }
    }
}

#[cache_core::async_trait]
impl cache_core::url::UrlConfig for RedisConfig {
    const SCHEMES: &'static [&'static str] = SCHEMES;
    const AIOCACHE_FLAVOR: cache_core::AiocacheFlavor = cache_core::AiocacheFlavor::Redis;

    fn from_url(url: &str) -> Result<Self> {
        RedisConfig::from_url(url)
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

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host:port` (or `[v6]:port`).
pub(crate) fn parse_node(node: &str) -> Result<(String, u16)> {
    let bad = || {
        Error::config(format!(
            "redis node {node:?} is not host:port (IPv6 as [addr]:port)"
        ))
    };
    let (host, port) = if let Some(rest) = node.strip_prefix('[') {
        let (host, rest) = rest.split_once(']').ok_or_else(bad)?;
        (host, rest.strip_prefix(':').ok_or_else(bad)?)
    } else {
        node.rsplit_once(':').ok_or_else(bad)?
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// The URL parser behind [`RedisConfig::from_url`].
mod url {
    use std::path::PathBuf;

    use cache_core::{Error, Result};

    use super::{DEFAULT_PORT, DEFAULT_SENTINEL_PORT, RedisConfig, RedisMode, RespProtocol};

    pub(super) fn parse(url: &str) -> Result<RedisConfig> {
        // the user-info ends at the last `@`: a password may hold `/`, `?`, `#`, `@`; split it
        // off before reading anything else, so no later message quotes any part of it
        let parts = cache_core::url::split(url).ok_or_else(|| {
            Error::config("a redis URL starts with a scheme such as redis:// or rediss://")
        })?;
        let scheme = parts.scheme;
        let lower = scheme.to_ascii_lowercase();
        let (mode, tls) = match lower.replacen("valkey", "redis", 1).as_str() {
            "redis" => (RedisMode::Standalone, false),
            "rediss" => (RedisMode::Standalone, true),
            "redis-cluster" => (RedisMode::Cluster, false),
            "rediss-cluster" => (RedisMode::Cluster, true),
            "redis-sentinel" => (RedisMode::Sentinel, false),
            "rediss-sentinel" => (RedisMode::Sentinel, true),
            "redis+unix" => (RedisMode::Unix, false),
            _ => {
                return Err(Error::config(format!(
                    "unknown scheme {scheme:?}; expected one of {}",
                    super::SCHEMES.join(", ")
                )));
            }
        };
        if parts.has_fragment() {
            return Err(Error::config("a redis URL has no #fragment"));
        }
        let before_query = parts.base();
        let mut config = RedisConfig {
            mode,
            tls,
            ..RedisConfig::default()
        };

        if let Some(userinfo) = parts.userinfo {
            let (user, password) = cache_core::url::credentials(userinfo);
            if user.contains(['/', '?', '#']) {
                return Err(Error::config(
                    "the redis URL's user name holds '/', '?' or '#', or its path or query \
                     holds an '@': percent-encode an '@' outside the user-info as %40",
                ));
            }
            let user = decode(user, "user name")?;
            config.username = (!user.is_empty()).then_some(user);
            if let Some(p) = password {
                let p = decode(p, "password")?;
                config.password = (!p.is_empty()).then_some(p);
            }
        }
        // the host ends where the path starts; for redis+unix:// the path is the socket path
        let host_end = before_query.find('/').unwrap_or(before_query.len());
        let (host_part, path) = before_query.split_at(host_end);

        if mode == RedisMode::Unix {
            if !host_part.is_empty() {
                return Err(Error::config(
                    "a redis+unix URL has no host: write redis+unix:///path/to/redis.sock",
                ));
            }
            let path = decode(path, "socket path")?;
            if path.is_empty() || path == "/" {
                return Err(Error::config(
                    "a redis+unix URL needs the socket path: redis+unix:///path/to/redis.sock",
                ));
            }
            config.socket_path = Some(PathBuf::from(path));
        } else {
            let default_port = if mode == RedisMode::Sentinel {
                DEFAULT_SENTINEL_PORT
            } else {
                DEFAULT_PORT
            };
            let (host, port) = split_host(host_part, default_port)?;
            config.endpoint = host;
            config.port = port;
            // `/db`, also as `/db/` (aiocache's form); nothing more
            let db = path.strip_prefix('/').unwrap_or(path);
            let db = db.strip_suffix('/').unwrap_or(db);
            if db.contains('/') || (db.is_empty() && path.len() > 1) {
                return Err(Error::config(
                    "the redis URL's path holds more than a database number; write /db \
                     (or /db/), such as /0",
                ));
            }
            match db {
                "" => {}
                db if mode == RedisMode::Cluster => {
                    return Err(Error::config(format!(
                        "a redis cluster has only database 0; remove /{db} from the URL"
                    )));
                }
                db => config.db = parse_db(db)?,
            }
        }

        for param in cache_core::url::Query::new(parts.query()) {
            let value = decode(param.value, param.name)?;
            apply_param(&mut config, param.name, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_param(config: &mut RedisConfig, name: &str, value: &str) -> Result<()> {
        let duration = |v: &str| {
            cache_core::duration::parse(v).map_err(|m| {
                Error::config(format!("URL parameter {name}={v:?} is not a duration: {m}"))
            })
        };
        let number = |v: &str| {
            v.parse::<u32>().map_err(|_| {
                Error::config(format!("URL parameter {name}={v:?} is not a whole number"))
            })
        };
        let flag = |v: &str| {
            cache_core::url::parse_bool(v).ok_or_else(|| {
                Error::config(format!("URL parameter {name}={v:?} is not true or false"))
            })
        };
        let path = |v: &str| -> Result<Option<PathBuf>> {
            if v.is_empty() {
                Err(Error::config(format!(
                    "URL parameter {name} needs a file path"
                )))
            } else {
                Ok(Some(PathBuf::from(v)))
            }
        };
        match name {
            "db" | "database" => config.db = parse_db(value)?,
            "node" => {
                if !matches!(config.mode, RedisMode::Cluster | RedisMode::Sentinel) {
                    return Err(Error::config(
                        "URL parameter node is only for redis-cluster:// and redis-sentinel:// URLs",
                    ));
                }
                super::parse_node(value)?;
                config.nodes.push(value.to_owned());
            }
            "service_name" | "sentinelServiceName" => {
                if config.mode != RedisMode::Sentinel {
                    return Err(Error::config(
                        "URL parameter service_name is only for redis-sentinel:// URLs",
                    ));
                }
                config.sentinel_service = Some(value.to_owned());
            }
            "protocol" => {
                config.protocol = match value.to_ascii_lowercase().as_str() {
                    "resp2" | "2" => RespProtocol::Resp2,
                    "resp3" | "3" => RespProtocol::Resp3,
                    _ => {
                        return Err(Error::config(format!(
                            "URL parameter protocol={value:?} is not resp2 or resp3"
                        )));
                    }
                }
            }
            "pool_size" => config.pool_size = number(value)? as usize,
            "connect_timeout" => config.connect_timeout = duration(value)?,
            "command_timeout" => config.command_timeout = duration(value)?,
            "reconnect_min_delay" => config.reconnect.min_delay = duration(value)?,
            "reconnect_max_delay" => config.reconnect.max_delay = duration(value)?,
            "reconnect_max_attempts" => config.reconnect.max_attempts = number(value)?,
            "tls_ca_file" => config.tls_ca_file = path(value)?,
            "tls_cert_file" => config.tls_cert_file = path(value)?,
            "tls_key_file" => config.tls_key_file = path(value)?,
            "tls_accept_invalid_certs" | "tls_insecure" => {
                config.tls_accept_invalid_certs = flag(value)?;
            }
            "namespace_generations" => config.namespace_generations = flag(value)?,
            "generation_sweep" => config.generation_sweep = flag(value)?,
            _ => {
                return Err(Error::config(format!(
                    "unknown redis URL parameter {name:?}; known: db, node, service_name, \
                     protocol, pool_size, connect_timeout, command_timeout, \
                     reconnect_min_delay, reconnect_max_delay, reconnect_max_attempts, \
                     tls_ca_file, tls_cert_file, tls_key_file, tls_accept_invalid_certs, \
                     namespace_generations, generation_sweep"
                )));
            }
        }
        Ok(())
    }

    fn split_host(host_port: &str, default_port: u16) -> Result<(String, u16)> {
        let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| Error::config("unclosed '[' in the redis URL's IPv6 host"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| {
                        Error::config("expected ':port' after the IPv6 host in the redis URL")
                    })?),
                ),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(Error::config("the redis URL has no host"));
        }
        let host = decode(host, "host")?;
        let port = match port {
            None | Some("") => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(Error::config(format!(
                        "invalid port {p:?} in the redis URL (1-65535)"
                    )));
                }
            },
        };
        Ok((host, port))
    }

    fn parse_db(db: &str) -> Result<u8> {
        db.parse::<u8>().map_err(|_| {
            Error::config(format!(
                "invalid database {db:?} in the redis URL; expected a number from 0 to 255"
            ))
        })
    }

    /// Percent-decodes `text` as UTF-8. Never echoes the text of a password in errors.
    fn decode(text: &str, what: &str) -> Result<String> {
        cache_core::url::decode(text)
            .map(|decoded| decoded.into_owned())
            .map_err(|_| {
                Error::config(format!(
                    "invalid percent-encoding in the redis URL's {what}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use cache_core::ErrorKind;

    use super::*;

    #[test]
    fn serializing_a_config_never_shows_its_credentials() {
        let config =
            RedisConfig::from_url("redis://ada:s3cret-pass@cache.internal:6380/2").unwrap();
        let shown = serde_json::to_string(&config).unwrap();
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(!shown.contains("ada"), "{shown}");
        assert!(shown.contains("\"password\":\"***\""), "{shown}");
        assert!(shown.contains("cache.internal"), "{shown}");
        let none = serde_json::to_string(&RedisConfig::default()).unwrap();
        assert!(none.contains("\"password\":null"), "{none}");
    }

    fn err(url: &str) -> String {
        let e = RedisConfig::from_url(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        e.to_string()
    }

    #[test]
    fn standalone_urls() {
        let c = RedisConfig::from_url("redis://127.0.0.1:16379").unwrap();
        assert_eq!(c.mode, RedisMode::Standalone);
        assert_eq!((c.endpoint.as_str(), c.port, c.db), ("127.0.0.1", 16379, 0));
        assert!(!c.tls);
        let c = RedisConfig::from_url("redis://localhost").unwrap();
        assert_eq!((c.endpoint.as_str(), c.port), ("localhost", 6379));
        let c = RedisConfig::from_url("redis://user:p%40ss%3Aw@h:1/3").unwrap();
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("p@ss:w"));
        assert_eq!(c.db, 3);
        let c = RedisConfig::from_url("redis://:only-password@h/").unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.password.as_deref(), Some("only-password"));
        let c = RedisConfig::from_url("redis://[::1]:7000/1").unwrap();
        assert_eq!((c.endpoint.as_str(), c.port, c.db), ("::1", 7000, 1));
        let c = RedisConfig::from_url(
            "VALKEY://h?protocol=resp2&pool_size=4&command_timeout=1.5s&connect_timeout=250ms",
        )
        .unwrap();
        assert_eq!(c.protocol, RespProtocol::Resp2);
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.command_timeout, Duration::from_millis(1500));
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_urls() {
        let c = RedisConfig::from_url("rediss://h:6380?tls_ca_file=/tmp/ca.pem").unwrap();
        assert!(c.tls);
        assert_eq!(c.tls_ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        let c = RedisConfig::from_url("rediss-cluster://h:7000?node=h2:7001").unwrap();
        assert!(c.tls);
        assert_eq!(c.mode, RedisMode::Cluster);
        assert!(
            !c.tls_accept_invalid_certs,
            "certificates are verified by default"
        );
        let c = RedisConfig::from_url("rediss://h?tls_accept_invalid_certs=true").unwrap();
        assert!(c.tls_accept_invalid_certs);
        let c = RedisConfig::from_url("rediss://h?tls_insecure=1").unwrap();
        assert!(c.tls_accept_invalid_certs);
        let c = RedisConfig::from_url("rediss://h?tls_insecure=false").unwrap();
        assert!(!c.tls_accept_invalid_certs);
        assert!(err("rediss://h?tls_insecure=maybe").contains("true or false"));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_url_without_feature_names_it() {
        assert!(err("rediss://h").contains("`tls` feature"));
    }

    #[test]
    fn cluster_sentinel_unix_urls() {
        let c = RedisConfig::from_url(
            "redis-cluster://127.0.0.1:17001?node=127.0.0.1:17002&node=127.0.0.1:17003",
        )
        .unwrap();
        assert_eq!(c.mode, RedisMode::Cluster);
        assert_eq!(c.nodes, vec!["127.0.0.1:17002", "127.0.0.1:17003"]);
        let c = RedisConfig::from_url("redis-sentinel://s1/2?service_name=mymaster&node=s2:26380")
            .unwrap();
        assert_eq!(c.mode, RedisMode::Sentinel);
        assert_eq!((c.port, c.db), (26379, 2));
        assert_eq!(c.sentinel_service.as_deref(), Some("mymaster"));
        let c = RedisConfig::from_url("redis-sentinel://s1?sentinelServiceName=m").unwrap();
        assert_eq!(c.sentinel_service.as_deref(), Some("m"));
        let c = RedisConfig::from_url("redis+unix:///var/run/redis.sock?db=4").unwrap();
        assert_eq!(c.mode, RedisMode::Unix);
        assert_eq!(c.socket_path, Some(PathBuf::from("/var/run/redis.sock")));
        assert_eq!(c.db, 4);
        let c = RedisConfig::from_url("redis+unix://:pw@/tmp/r.sock").unwrap();
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.socket_path, Some(PathBuf::from("/tmp/r.sock")));
    }

    #[test]
    fn bad_urls_name_the_problem() {
        assert!(err("http://h").contains("unknown scheme"));
        assert!(err("127.0.0.1:6379").contains("scheme"));
        assert!(err("redis://h:99999").contains("invalid port"));
        assert!(err("redis://h:abc").contains("invalid port"));
        assert!(err("redis://h/300").contains("invalid database"));
        assert!(err("redis://h/x").contains("invalid database"));
        assert!(err("redis://h?nope=1").contains("unknown redis URL parameter \"nope\""));
        assert!(err("redis://h?command_timeout=soon").contains("not a duration"));
        assert!(err("redis://h?connect_timeout=0s").contains("greater than zero"));
        let no_deadline = RedisConfig::from_url("redis://h?command_timeout=0").unwrap();
        assert_eq!(no_deadline.command_timeout, Duration::ZERO);
        assert!(err("redis://h?pool_size=0").contains("pool_size"));
        assert!(err("redis://h?node=a:1").contains("only for"));
        assert!(err("redis-cluster://h:1/2").contains("only database 0"));
        assert!(err("redis-cluster://h:1?node=nope").contains("not host:port"));
        assert!(err("redis-sentinel://h").contains("service name"));
        assert!(err("redis+unix://").contains("socket path"));
        assert!(err("redis+unix://host/x.sock").contains("no host"));
        assert!(err("redis://").contains("no host"));
        assert!(err("redis://h?tls_ca_file=/x").contains("TLS is off"));
        assert!(err("redis://h?tls_accept_invalid_certs=true").contains("TLS is off"));
        let e = err("redis://user:top%ZZsecret@h");
        assert!(
            e.contains("percent-encoding") && !e.contains("secret"),
            "{e}"
        );
        let e = err("redis://user:topsecret@h:bad");
        assert!(!e.contains("topsecret"), "{e}");
    }

    /// Random printable passwords (every character from space to `~`), written as they are
    /// in every URL form: each parses to exactly that password, and neither `Debug`,
    /// `describe` nor an error ever holds it.
    #[test]
    fn passwords_of_any_printable_characters_parse_and_never_show() {
        let mut passwords = cache_core::testkit::Passwords::new(0x2545_f491_4f6c_dd1d);
        let forms = [
            ("redis", "h:6379/0?pool_size=2"),
            ("valkey", "h/1"),
            ("redis-cluster", "h:7000?node=h2:7001"),
            ("redis-sentinel", "s1:26379/2?service_name=main"),
            ("redis+unix", "/tmp/redis.sock?db=1"),
        ];
        for round in 0..3000 {
            let len = 8 + (passwords.next_u64() % 24) as usize;
            let with_percent = round % 4 == 0;
            let password: String = (0..len)
                .map(|_| {
                    loop {
                        let c = passwords.char();
                        if with_percent || c != '%' {
                            break c;
                        }
                    }
                })
                .collect();
            for (scheme, rest) in forms {
                let url = format!("{scheme}://ada:{password}@{rest}");
                match RedisConfig::from_url(&url) {
                    Ok(c) => {
                        if !password.contains('%') {
                            assert_eq!(c.password.as_deref(), Some(password.as_str()), "{url}");
                            assert_eq!(c.username.as_deref(), Some("ada"), "{url}");
                        }
                        let shown = format!("{c:?} {}", c.describe());
                        assert!(!shown.contains(&password), "{password:?} in {shown}");
                        assert!(!shown.contains("ada"), "the user name shows: {shown}");
                    }
                    Err(e) => {
                        assert!(password.contains('%'), "{url:?} is refused: {e}");
                        let shown = format!("{e} {e:?}");
                        assert!(!shown.contains(&password), "{password:?} in {shown}");
                    }
                }
            }
        }
    }

    /// A user-info without `:` is a user name, and may well be a password written in its
    /// place: `Debug` shows neither.
    #[test]
    fn a_user_name_never_shows_either() {
        let c = RedisConfig::from_url("redis://s3cr%2Ft@h:6379").unwrap();
        assert_eq!(c.username.as_deref(), Some("s3cr/t"));
        let shown = format!("{c:?} {:#?} {}", c, c.describe());
        assert!(!shown.contains("s3cr"), "{shown}");
    }

    #[test]
    fn a_password_with_a_slash_is_not_read_as_the_port() {
        let c = RedisConfig::from_url("redis://user:hunter/2@h:6379/0").unwrap();
        assert_eq!(c.password.as_deref(), Some("hunter/2"));
        assert_eq!((c.endpoint.as_str(), c.port, c.db), ("h", 6379, 0));
        let e = err("redis://user:hunter/2@h:bad/0");
        assert!(!e.contains("hunter") && e.contains("invalid port"), "{e}");
    }

    #[test]
    fn namespace_generations_are_url_flags() {
        let c = RedisConfig::from_url("redis://h?namespace_generations=true&generation_sweep=1")
            .unwrap();
        assert!(c.namespace_generations && c.generation_sweep);
        let c = RedisConfig::from_url("redis://h").unwrap();
        assert!(!c.namespace_generations && !c.generation_sweep);
        let e = RedisConfig::from_url("redis://h?namespace_generations=maybe").unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        use cache_core::url::UrlConfig as _;
        let e = c_with_generations().check_aiocache_keys().unwrap_err();
        assert!(e.to_string().contains("namespace_generations"), "{e}");
    }

    fn c_with_generations() -> RedisConfig {
        RedisConfig {
            namespace_generations: true,
            ..RedisConfig::default()
        }
    }

    /// aiocache writes its URLs as `redis://host:port/db/` (trailing slash); other extra
    /// path segments are refused with a message that says what is wrong.
    #[test]
    fn aiocache_trailing_slash_after_the_database_is_accepted() {
        let c = RedisConfig::from_url("redis://host:1000/0/").unwrap();
        assert_eq!((c.endpoint.as_str(), c.port, c.db), ("host", 1000, 0));
        let c = RedisConfig::from_url("redis://:pw@host:1000/3/?pool_size=2").unwrap();
        assert_eq!((c.db, c.pool_size), (3, 2));
        let c = RedisConfig::from_url("redis-sentinel://s/2/?service_name=m").unwrap();
        assert_eq!(c.db, 2);
        for url in [
            "redis://h/0/x",
            "redis://h/0//",
            "redis://h//0",
            "redis://h/0/1/",
        ] {
            let e = err(url);
            assert!(e.contains("path"), "{url}: {e}");
            assert!(e.contains("/db"), "{url}: {e}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = RedisConfig::from_url("redis://u:hunter2@h").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
        assert!(!c.describe().contains("hunter2"));
    }

    #[test]
    fn serde_round_trip_with_text_durations() {
        let c = RedisConfig::from_url("redis://h:7/1?command_timeout=1500ms").unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["command_timeout"], "1500ms");
        assert_eq!(json["reconnect"]["max_delay"], "1s");
        let back: RedisConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let partial: RedisConfig =
            serde_json::from_str(r#"{"endpoint":"cache","connect_timeout":250,"mode":"cluster"}"#)
                .unwrap();
        assert_eq!(partial.endpoint, "cache");
        assert_eq!(partial.connect_timeout, Duration::from_millis(250));
        assert_eq!(partial.mode, RedisMode::Cluster);
        assert_eq!(partial.port, 6379);
        assert!(serde_json::from_str::<RedisConfig>(r#"{"hots":"x"}"#).is_err());
    }

    #[test]
    fn durations_read_like_every_other_crate() {
        let config =
            RedisConfig::from_url("redis://h?command_timeout=1.5s&connect_timeout=250ms").unwrap();
        assert_eq!(config.command_timeout, Duration::from_millis(1500));
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
        let e = RedisConfig::from_url("redis://h?command_timeout=40").unwrap_err();
        assert!(e.to_string().contains("no unit"), "{e}");
        let json: RedisConfig = serde_json::from_str(r#"{"command_timeout": 40}"#).unwrap();
        assert_eq!(
            json.command_timeout,
            Duration::from_millis(40),
            "integers are milliseconds"
        );
    }
}
