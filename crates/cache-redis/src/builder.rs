//! [`RedisBuilder`]: validates a [`RedisConfig`] and connects.

use std::path::PathBuf;
use std::time::Duration;

use cache_core::{Error, Result};
use fred::error::{Error as FredError, ErrorKind as FredKind};
use fred::prelude::{Client, ClientLike, ClientState, Config, ServerConfig, TcpConfig};
use fred::types::config::ClusterDiscoveryPolicy;
use fred::types::{Builder, ConnectHandle};
use socket2::TcpKeepalive;

use crate::backend::RedisBackend;
use crate::config::{ReconnectConfig, RedisConfig, RedisMode, RespProtocol, parse_node};
use crate::error;

/// Builds a [`RedisBackend`]: set what differs from the defaults, then [`build`](Self::build)
/// connects.
///
#[doc = include_str!("docs.md")]
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until .build()"]
pub struct RedisBuilder {
    config: RedisConfig,
    /// Whether the endpoint and the port were given (by a setter, or in a config): a cluster
    /// or sentinel builder whose endpoint was not given seeds with its nodes only, not with
    /// the default `127.0.0.1:6379`.
    endpoint_given: bool,
    port_given: bool,
}

impl RedisBuilder {
    /// A builder for a standalone server on `127.0.0.1:6379`, database 0.
    pub fn new() -> Self {
        RedisBuilder::default()
    }

    /// A builder holding `config`.
    pub fn from_config(config: RedisConfig) -> Self {
        RedisBuilder {
            config,
            endpoint_given: true,
            port_given: true,
        }
    }

    /// A builder from a URL; see [`RedisConfig::from_url`] for the syntax.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) naming what is wrong with the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        RedisConfig::from_url(url).map(Self::from_config)
    }

    /// The configuration built so far.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Host name or IP address of the server (cluster: a seed node; sentinel: a sentinel).
    pub fn endpoint(mut self, host: impl Into<String>) -> Self {
        self.config.endpoint = host.into();
        self.endpoint_given = true;
        self
    }

    /// Port of the endpoint. Default 6379, and 26379 for a sentinel (as in URLs).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self.port_given = true;
        self
    }

    /// Database number (standalone, sentinel and Unix socket only).
    pub fn db(mut self, db: u8) -> Self {
        self.config.db = db;
        self
    }

    /// ACL user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.username = Some(username.into());
        self
    }

    /// Password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// Connects to a Redis Cluster: `nodes` (`host:port`) are the seed nodes, with the endpoint
    /// when one was given — and only then: the default `127.0.0.1:6379` is not a seed.
    pub fn cluster<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.mode = RedisMode::Cluster;
        self.config.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Finds the primary named `service` through Redis Sentinel: `nodes` (`host:port`) are
    /// the sentinels, with the endpoint when one was given (its port defaulting to 26379).
    pub fn sentinel<I, S>(mut self, service: impl Into<String>, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.mode = RedisMode::Sentinel;
        self.config.sentinel_service = Some(service.into());
        self.config.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// Connects over the Unix domain socket at `path`.
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.mode = RedisMode::Unix;
        self.config.socket_path = Some(path.into());
        self
    }

    /// Turns TLS on or off (needs the `tls` feature).
    pub fn tls(mut self, on: bool) -> Self {
        self.config.tls = on;
        self
    }

    /// Trusts the certificate authorities in this PEM file instead of the system's roots, and
    /// turns TLS on.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls = true;
        self.config.tls_ca_file = Some(path.into());
        self
    }

    /// Authenticates with this PEM client certificate chain and private key, and turns TLS
    /// on.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls = true;
        self.config.tls_cert_file = Some(cert.into());
        self.config.tls_key_file = Some(key.into());
        self
    }

    /// **Dangerous.** With `true`, accepts any server certificate (expired, self-signed, from
    /// an unknown authority, for another host) and turns TLS on. Traffic stays encrypted but
    /// the server is not authenticated: anyone on the path can impersonate it and read the
    /// password and every value. Only for test setups; prefer
    /// [`tls_ca_file`](Self::tls_ca_file). Off by default. See
    /// [`RedisConfig::tls_accept_invalid_certs`].
    pub fn tls_accept_invalid_certs(mut self, accept: bool) -> Self {
        if accept {
            self.config.tls = true;
        }
        self.config.tls_accept_invalid_certs = accept;
        self
    }

    /// Wire protocol version.
    pub fn protocol(mut self, protocol: RespProtocol) -> Self {
        self.config.protocol = protocol;
        self
    }

    /// Number of connections (1 to 256).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.config.pool_size = size;
        self
    }

    /// Deadline of a connection attempt.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Client-side deadline of every command; zero turns it off (see
    /// [`RedisConfig::command_timeout`]).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// Scoped `clear()` in constant time through namespace generations (see
    /// [`RedisConfig::namespace_generations`]).
    pub fn namespace_generations(mut self, on: bool) -> Self {
        self.config.namespace_generations = on;
        self
    }

    /// With namespace generations, removes a cleared generation's keys in the background
    /// (see [`RedisConfig::generation_sweep`]).
    pub fn generation_sweep(mut self, on: bool) -> Self {
        self.config.generation_sweep = on;
        self
    }

    /// Reconnection policy.
    pub fn reconnect(mut self, policy: ReconnectConfig) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// Checks the configuration, connects every connection of the pool and loads nothing
    /// else; the backend is ready when this returns.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) for an invalid setting, unreadable
    /// TLS files or credentials the server refuses;
    /// [`ErrorKind::Connection`](cache_core::ErrorKind::Connection) when the server cannot be
    /// reached (or the TLS handshake fails) within the connect timeout.
    ///
    /// # Cancel safety
    /// Dropping the future drops the connections made so far; nothing keeps running.
    pub async fn build(self) -> Result<RedisBackend> {
        let (config, builder) = self.prepare()?;
        let mut clients = Vec::with_capacity(config.pool_size);
        for _ in 0..config.pool_size {
            clients.push(builder.build().map_err(error::convert)?);
        }
        let tasks = connect_all(&clients, &config).await?;
        let detour = (config.mode == RedisMode::Cluster).then_some(builder);
        Ok(RedisBackend::new(clients, tasks, &config, detour))
    }
}

impl RedisBuilder {
    /// The checked configuration and a fred builder of its connections (timeouts, TCP
    /// settings, reconnect policy), nothing connected yet.
    pub(crate) fn prepare(self) -> Result<(RedisConfig, Builder)> {
        let config = self.resolved()?;
        config.validate()?;
        let fred_config = fred_config(&config)?;
        let mut builder = Builder::from_config(fred_config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.connect_timeout;
                // reads are retried on a fresh connection if theirs broke while they were in
                // flight; every write opts out per call (sent at most once, see `once`)
                c.max_command_attempts = 3;
                c.tcp = tcp_config(config.command_timeout);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = config.command_timeout;
            })
            .set_policy(config.reconnect.to_fred());
        Ok((config, builder))
    }
}

/// Connects every client and answers their connection tasks, or the first connection's error
/// (with where it tried to connect). Each connection's task is held before it is awaited, so
/// that dropping this future (or failing on a later connection) aborts every task started so
/// far: nothing keeps running.
pub(crate) async fn connect_all(
    clients: &[Client],
    config: &RedisConfig,
) -> Result<Vec<ConnectHandle>> {
    let mut tasks = AbortOnDrop(Vec::with_capacity(clients.len()));
    for client in clients {
        let task = tasks.push(client.connect());
        let connected = tokio::select! {
            r = connected(client) => r,
            // with fail_fast the task ends with the first connection's error
            ended = task => Err(match ended {
                Ok(Err(e)) => e,
                Ok(Ok(())) => FredError::new(FredKind::Canceled, "the connection task ended"),
                Err(join) => FredError::new(FredKind::Unknown, join.to_string()),
            }),
        };
        connected.map_err(|e| connect_error(e, config))?;
    }
    Ok(std::mem::take(&mut tasks.0))
}

impl RedisBuilder {
    /// The configuration `build` connects with: a cluster or sentinel builder whose endpoint
    /// was not given takes its first node as the endpoint (so the default `127.0.0.1:6379`
    /// is never an extra seed), and a sentinel's port not given is 26379.
    fn resolved(self) -> Result<RedisConfig> {
        let mut config = self.config;
        if !matches!(config.mode, RedisMode::Cluster | RedisMode::Sentinel) {
            return Ok(config);
        }
        if !self.endpoint_given && !config.nodes.is_empty() {
            let (host, port) = parse_node(&config.nodes.remove(0))?;
            config.endpoint = host;
            config.port = port;
        } else if config.mode == RedisMode::Sentinel && !self.port_given {
            config.port = crate::config::DEFAULT_SENTINEL_PORT;
        }
        Ok(config)
    }
}

/// `TCP_NODELAY`, keepalive probes on idle connections, and (Linux) `TCP_USER_TIMEOUT`, so
/// that a peer that vanished without closing the connection is noticed by the kernel and the
/// connection replaced, at no cost per command. (fred's own "unresponsive connection" check
/// would arm a timer on every pass of its I/O loop.)
#[cfg_attr(
    not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")),
    allow(unused_variables)
)]
fn tcp_config(command_timeout: Duration) -> TcpConfig {
    let keepalive = TcpKeepalive::new().with_time(Duration::from_secs(30));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let keepalive = keepalive
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    TcpConfig {
        nodelay: Some(true),
        keepalive: Some(keepalive),
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        user_timeout: Some(command_timeout.max(Duration::from_secs(10))),
        ..TcpConfig::default()
    }
}

/// How often [`connected`] looks at the client's state.
const CONNECTED_POLL: Duration = Duration::from_millis(10);

/// Waits until `client` is connected. fred's `wait_for_connect` alone can wait forever: it
/// reads the state, then subscribes to the connect notification, and a connection made
/// between the two is never announced to it. The state is read again every
/// [`CONNECTED_POLL`] to catch that one. (A failed first connection ends the connection task,
/// which the caller also waits for.)
async fn connected(client: &Client) -> Result<(), FredError> {
    let waiting = client.wait_for_connect();
    tokio::pin!(waiting);
    loop {
        tokio::select! {
            r = &mut waiting => return r,
            () = tokio::time::sleep(CONNECTED_POLL) => {
                if client.state() == ClientState::Connected {
                    return Ok(());
                }
            }
        }
    }
}

/// Connection tasks aborted when dropped, unless taken out.
struct AbortOnDrop(Vec<ConnectHandle>);

impl AbortOnDrop {
    fn push(&mut self, task: ConnectHandle) -> &mut ConnectHandle {
        self.0.push(task);
        let last = self.0.len() - 1;
        &mut self.0[last]
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// An error of the first connection, with where it tried to connect.
fn connect_error(e: FredError, config: &RedisConfig) -> Error {
    error::convert_connect(e).with_context("server", config.describe())
}

/// fred's configuration for `config` (already validated).
fn fred_config(config: &RedisConfig) -> Result<Config> {
    let nodes = || -> Result<Vec<(String, u16)>> {
        let mut hosts = vec![(config.endpoint.clone(), config.port)];
        for n in &config.nodes {
            hosts.push(parse_node(n)?);
        }
        Ok(hosts)
    };
    let server = match config.mode {
        RedisMode::Standalone => {
            ServerConfig::new_centralized(config.endpoint.clone(), config.port)
        }
        // Rediscovery after a failure asks the primaries of the last known routing table too,
        // not only the seeds: a client seeded with one node that later dies still follows
        // the failover (fred's default asks the seeds only).
        RedisMode::Cluster => ServerConfig::Clustered {
            hosts: nodes()?
                .into_iter()
                .map(|(host, port)| fred::types::config::Server::new(host, port))
                .collect(),
            policy: ClusterDiscoveryPolicy::UseCache,
        },
        RedisMode::Sentinel => ServerConfig::new_sentinel(
            nodes()?,
            config.sentinel_service.clone().unwrap_or_default(),
        ),
        RedisMode::Unix => {
            ServerConfig::new_unix_socket(config.socket_path.clone().unwrap_or_default())
        }
    };
    Ok(Config {
        server,
        username: config.username.clone(),
        password: config.password.clone(),
        database: (config.mode != RedisMode::Cluster && config.db != 0).then_some(config.db),
        version: match config.protocol {
            RespProtocol::Resp2 => fred::types::RespVersion::RESP2,
            RespProtocol::Resp3 => fred::types::RespVersion::RESP3,
        },
        fail_fast: true,
        #[cfg(feature = "tls")]
        tls: if config.tls {
            Some(tls::config(config)?)
        } else {
            None
        },
        ..Config::default()
    })
}

#[cfg(feature = "tls")]
mod tls {
    use std::path::Path;
    use std::sync::Arc;

    use cache_core::{Error, Result};
    use fred::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use fred::rustls::crypto::CryptoProvider;
    use fred::rustls::pki_types::pem::PemObject;
    use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use fred::rustls::{
        ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
        crypto,
    };
    use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};

    use crate::RedisConfig;

    /// A rustls client configuration (ring provider) with the configured roots and client
    /// certificate; with `tls_accept_invalid_certs`, one that accepts any server certificate.
    pub(super) fn config(config: &RedisConfig) -> Result<TlsConfig> {
        let provider = Arc::new(crypto::ring::default_provider());
        let versions = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS setup failed: {e}")))?;
        let builder = if config.tls_accept_invalid_certs {
            tracing::warn!(
                server = %config.describe(),
                "redis TLS certificate verification is OFF (tls_accept_invalid_certs): the \
                 server is not authenticated"
            );
            versions
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            versions.with_root_certificates(roots(config)?)
        };
        let client = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::config(format!(
                        "tls_key_file {}: no usable private key: {e}",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::config(format!("tls client certificate refused: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(TlsConfig {
            connector: TlsConnector::from(client),
            hostnames: TlsHostMapping::None,
        })
    }

    /// The certificate authorities to trust: `tls_ca_file`, else the system's.
    fn roots(config: &RedisConfig) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &config.tls_ca_file {
            Some(path) => {
                for cert in read_certs(path)? {
                    roots.add(cert).map_err(|e| {
                        Error::config(format!(
                            "tls_ca_file {}: unusable certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            None => {
                let found = fred::rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // a system store may hold certificates rustls cannot use; skip them
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(Error::config(
                        "no system certificate authorities found for TLS; set tls_ca_file",
                    ));
                }
            }
        }
        Ok(roots)
    }

    /// The verifier behind `tls_accept_invalid_certs`: takes any certificate chain, but still
    /// checks that the server holds the key of the certificate it sent (handshake signatures),
    /// so the session keys are negotiated with whoever answered.
    #[derive(Debug)]
    struct AcceptAnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, TlsError> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::config(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        Ok(certs)
    }
}

impl RedisBackend {
    /// A backend over fred clients the program already has (their connections, reconnect
    /// policy, TLS and pool size stay the program's own): each client is one connection of
    /// the backend's pool. Clients are cheap handles: pass clones.
    ///
    /// The clients should be connected, or connecting (`client.init().await` or
    /// `client.connect()`); this backend does not connect them, and commands wait for
    /// fred's connection like any fred command. [`close`](cache_core::Backend::close) sends
    /// `QUIT` on them, which ends their connections for every other user of the clients too:
    /// close the cache only when the program is done with them.
    ///
    /// Every write is sent at most once (fred's `max_attempts` of 1 per command, whatever the
    /// client's own), as with a backend from [`RedisBuilder`].
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cache_redis::fred::prelude::*;
    /// use cache_redis::RedisBackend;
    ///
    /// let client = Builder::from_config(Config::from_url("redis://127.0.0.1:6379")?).build()?;
    /// client.init().await?;
    /// let backend = RedisBackend::from_clients([client.clone()])?;
    /// let cache = cache_core::Cache::new(backend);
    /// cache.set("k", &1).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](cache_core::ErrorKind::InvalidArgument) for no client,
    /// or clients of different deployments (one clustered, one not).
    pub fn from_clients(clients: impl IntoIterator<Item = Client>) -> Result<RedisBackend> {
        let clients: Vec<Client> = clients.into_iter().collect();
        let Some(first) = clients.first() else {
            return Err(Error::invalid_argument(
                "RedisBackend::from_clients needs at least one client",
            ));
        };
        let fred = first.client_config();
        if clients
            .iter()
            .any(|c| c.is_clustered() != first.is_clustered())
        {
            return Err(Error::invalid_argument(
                "RedisBackend::from_clients: the clients mix a cluster and a single server",
            ));
        }
        let config = config_of(&fred, clients.len());
        Ok(RedisBackend::new(clients, Vec::new(), &config, None))
    }

    /// A backend over the clients of a fred [`Pool`](fred::clients::Pool) (see
    /// [`from_clients`](Self::from_clients)).
    ///
    /// # Errors
    /// As [`from_clients`](Self::from_clients).
    pub fn from_pool(pool: &fred::clients::Pool) -> Result<RedisBackend> {
        RedisBackend::from_clients(pool.clients().iter().cloned())
    }
}

/// What this crate's config says of clients made elsewhere: enough to describe where they
/// connect (never their credentials) and to know a cluster.
fn config_of(fred: &Config, pool_size: usize) -> RedisConfig {
    let mut config = RedisConfig {
        pool_size,
        db: fred.database.unwrap_or(0),
        ..RedisConfig::default()
    };
    #[cfg(feature = "tls")]
    {
        config.tls = fred.tls.is_some();
    }
    let mut hosts = |servers: &[fred::types::config::Server]| {
        if let Some((first, rest)) = servers.split_first() {
            config.endpoint = first.host.to_string();
            config.port = first.port;
            config.nodes = rest
                .iter()
                .map(|s| format!("{}:{}", s.host, s.port))
                .collect();
        }
    };
    match &fred.server {
        ServerConfig::Centralized { server } => {
            hosts(std::slice::from_ref(server));
            config.mode = RedisMode::Standalone;
        }
        ServerConfig::Clustered { hosts: servers, .. } => {
            hosts(servers);
            config.mode = RedisMode::Cluster;
        }
        ServerConfig::Sentinel {
            hosts: servers,
            service_name,
            ..
        } => {
            hosts(servers);
            config.mode = RedisMode::Sentinel;
            config.sentinel_service = Some(service_name.clone());
        }
        ServerConfig::Unix { path } => {
            config.mode = RedisMode::Unix;
            config.socket_path = Some(path.clone());
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(config: &RedisConfig) -> Vec<String> {
        std::iter::once(format!("{}:{}", config.endpoint, config.port))
            .chain(config.nodes.iter().cloned())
            .collect()
    }

    #[test]
    fn a_cluster_or_sentinel_builder_seeds_with_exactly_the_nodes_given() {
        let cluster = RedisBuilder::new()
            .cluster(["10.0.0.2:7000", "10.0.0.3:7001"])
            .resolved()
            .unwrap();
        assert_eq!(seeds(&cluster), ["10.0.0.2:7000", "10.0.0.3:7001"]);
        let sentinel = RedisBuilder::new()
            .sentinel("main", ["s1:26379", "s2:26380"])
            .resolved()
            .unwrap();
        assert_eq!(seeds(&sentinel), ["s1:26379", "s2:26380"]);
        // the order of the calls does not matter, and a given endpoint is a seed
        let cluster = RedisBuilder::new()
            .cluster(["b:7001"])
            .endpoint("a")
            .port(7000)
            .resolved()
            .unwrap();
        assert_eq!(seeds(&cluster), ["a:7000", "b:7001"]);
    }

    #[test]
    fn a_cluster_is_rediscovered_through_the_primaries_it_last_knew() {
        let config = RedisBuilder::new()
            .cluster(["10.0.0.2:7000"])
            .resolved()
            .unwrap();
        match fred_config(&config).unwrap().server {
            ServerConfig::Clustered { hosts, policy } => {
                assert_eq!(policy, ClusterDiscoveryPolicy::UseCache);
                assert_eq!(hosts.len(), 1);
            }
            other => panic!("not a cluster config: {other:?}"),
        }
    }

    #[test]
    fn a_sentinel_endpoint_defaults_to_port_26379_as_in_urls() {
        let builder = RedisBuilder::new()
            .endpoint("s1")
            .sentinel("main", ["s2:26380"]);
        assert_eq!(
            seeds(&builder.resolved().unwrap()),
            ["s1:26379", "s2:26380"]
        );
        let from_url = RedisConfig::from_url("redis-sentinel://s1/0?service_name=main").unwrap();
        assert_eq!(from_url.port, 26379);
        let standalone = RedisBuilder::new().endpoint("r1").resolved().unwrap();
        assert_eq!(seeds(&standalone), ["r1:6379"]);
    }
}
