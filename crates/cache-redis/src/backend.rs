//! [`RedisBackend`]: the [`Backend`] contract mapped onto Redis commands.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, CallContext, Capability, ClearScope, Entry, Error, KeyTtl, OpSet, RawValue, Result,
};
use fred::clients::WithOptions;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface, KeysInterface};
use fred::prelude::{Client, Expiration, Key, Options, SetOptions, Value};
use fred::types::{Builder, ClusterHash, ConnectHandle, CustomCommand, FromValue, MultipleKeys};
use fred::util::redis_keyslot;
use futures_util::future::try_join_all;

use crate::cluster;
use crate::config::{RedisConfig, RedisMode};
use crate::detour::{self, Detour};
use crate::error;
use crate::generations::RedisGenerations;
use crate::keys::shared_keys;
use crate::raw::{check_raw, raw_arg, raw_reply};
use crate::scripts::{self, CAD, CAS, ENTRIES, PERSIST, SET_MANY_PX, Script};

/// How long before the caller's deadline fred gives up an unsent write (see
/// [`RedisBackend::write_options`]).
const UNSENT_MARGIN: Duration = Duration::from_millis(2);

/// The longest TTL accepted: 100 years. Longer TTLs are refused with `InvalidArgument`; an
/// entry that should not expire uses `Ttl::Never`.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Redis's limit on a string value (`proto-max-bulk-len` default).
const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// The Redis/Valkey backend: standalone, cluster, sentinel or Unix socket, on `fred`.
///
/// Build it with [`RedisBuilder`](crate::RedisBuilder) (or
/// [`RedisConfig::into_builder`](crate::RedisConfig::into_builder)) and hand it to
/// [`Cache::builder`](cache_core::Cache::builder). See the builder for the capabilities, the
/// configuration and the command each operation runs.
///
/// # Connections
///
/// One auto-pipelining connection by default: concurrent commands share it without waiting
/// for each other's replies. With `pool_size` > 1 reads go to the connections in turn, and
/// every write of a key goes over one connection chosen by the key's hash slot (a
/// `multi_set` or `multi_delete`: by its first key), so that the writes of a key reach the
/// server in the order they were made. Broken connections are replaced by themselves (see
/// [`ReconnectConfig`](crate::ReconnectConfig)); commands issued meanwhile wait for the new
/// connection up to their timeout.
///
/// # Cluster failover
///
/// While a cluster connection rebuilds its routing after a node failed (fred takes no new
/// command meanwhile, for as long as the failover lasts), commands of one key go straight to
/// the key's primary over a connection of their own (a `multi_get`: to its slots'
/// primaries), and fail at once with a temporary `Connection` error when that primary is the
/// one that is down; `multi_set`, `multi_delete`, `clear()` and `raw` wait for the cluster
/// connection. See RFC 0011 (`docs/rfcs/`). Not for
/// backends made with [`from_clients`](Self::from_clients) or [`from_pool`](Self::from_pool).
///
/// # Writes are sent at most once
///
/// A read whose connection breaks while it is in flight is sent again on the new
/// connection. A write never is: it fails with a `Connection` error, whether or not the
/// server applied it. Re-sending a `set` could make it land after a later `delete` or `set`
/// of the key, from this process or another, and bring back an invalidated value.
/// A write that had not left the client when its connection broke waits for the new
/// connection (within its timeout) and is sent there.
///
/// # Closing
///
/// [`close`](Backend::close) sends `QUIT` (waiting at most `command_timeout`, or
/// `connect_timeout` if that is zero, for replies still due), stops the connection tasks and is idempotent; every later call answers
/// [`ErrorKind::Closed`](cache_core::ErrorKind::Closed) at once. Dropping the backend also
/// stops its connection tasks.
///
/// # Cancel safety
///
/// Every method is cancel safe in the sense of the [`Backend`] contract: dropping a call's
/// future (a timeout does) abandons the call, the command may still run on the server, and
/// the connection stays usable — replies are matched to commands by fred, so a late reply
/// never reaches another call.
pub struct RedisBackend {
    clients: Box<[Client]>,
    next: AtomicUsize,
    pub(crate) clustered: bool,
    /// Options of every command that writes (`set`, `multi_set`, `add`, `increment`,
    /// `expire`, CAS, deletes, raw): one attempt, never re-sent after a connection broke with
    /// the command in flight. A re-sent `set` could land after a later `delete` or `set` of
    /// the key that went over another, healthy connection of the pool, and bring back a
    /// value that was invalidated.
    pub(crate) once: Options,
    closed: AtomicBool,
    tasks: Mutex<Vec<ConnectHandle>>,
    /// How long `close` waits for `QUIT`.
    close_timeout: Duration,
    server: String,
    /// The configured server (the seed of a cluster, the first sentinel), for telemetry.
    endpoint: cache_core::Endpoint,
    /// Connections made and connection errors, as fred reports them.
    connections: Arc<cache_core::ConnectionCounters>,
    mode: RedisMode,
    /// Namespace generations, when on.
    pub(crate) generations: Option<RedisGenerations>,
    /// Cluster: where commands of one key go while a cluster client rebuilds its routing.
    detour: Option<Arc<Detour>>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.server)
            .field("mode", &self.mode)
            .field("pool_size", &self.clients.len())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .field("namespace_generations", &self.generations.is_some())
            .finish()
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // Without this the connection tasks would keep the sockets (and reconnect attempts)
        // alive after the last handle is gone.
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl RedisBackend {
    /// A backend over `clients`; `detour` (cluster only) is how to connect to one node of the
    /// cluster, for the commands of one key while a client rebuilds its routing.
    pub(crate) fn new(
        clients: Vec<Client>,
        tasks: Vec<ConnectHandle>,
        config: &RedisConfig,
        detour: Option<Builder>,
    ) -> Self {
        let connections = Arc::new(cache_core::ConnectionCounters::default());
        let mut tasks = tasks;
        let detour = detour
            .filter(|_| config.mode == RedisMode::Cluster)
            .map(|template| Arc::new(Detour::new(template, clients.len())));
        if tokio::runtime::Handle::try_current().is_ok() {
            for (index, client) in clients.iter().enumerate() {
                let counters = connections.clone();
                tasks.push(client.on_reconnect(move |server| {
                    counters.connected();
                    tracing::info!(server = %server, "redis: connected");
                    std::future::ready(Ok(()))
                }));
                let counters = connections.clone();
                let detour = detour.as_ref().map(Arc::downgrade);
                let cluster = client.clone();
                tasks.push(client.on_error(move |(error, server)| {
                    counters.failed();
                    if let Some(detour) = &detour {
                        detour::on_error(detour, index, &cluster);
                    }
                    tracing::warn!(
                        server = %server.map(|s| s.to_string()).unwrap_or_default(),
                        error = %error,
                        "redis: connection error"
                    );
                    std::future::ready(Ok(()))
                }));
            }
        }
        RedisBackend {
            clients: clients.into_boxed_slice(),
            next: AtomicUsize::new(0),
            clustered: config.mode == RedisMode::Cluster,
            once: Options {
                max_attempts: Some(1),
                ..Options::default()
            },
            closed: AtomicBool::new(false),
            tasks: Mutex::new(tasks),
            close_timeout: if config.command_timeout.is_zero() {
                config.connect_timeout
            } else {
                config.command_timeout
            },
            server: config.describe(),
            connections,
            endpoint: match (&config.mode, &config.socket_path) {
                (RedisMode::Unix, Some(path)) => {
                    cache_core::Endpoint::new(path.display().to_string(), None)
                }
                _ => cache_core::Endpoint::new(config.endpoint.as_str(), Some(config.port)),
            },
            mode: config.mode,
            generations: config
                .namespace_generations
                .then(|| RedisGenerations::new(config.generation_sweep)),
            detour,
        }
    }

    /// Connections made and connection errors since the backend was made, as fred reports
    /// them: `connected` counts every reconnection (the first connections, made before the
    /// backend exists, are not counted);
    /// `failed` counts every connection error (a failed attempt or a dropped connection: fred
    /// does not tell them apart); `lost` stays 0.
    pub fn connection_stats(&self) -> cache_core::ConnectionStats {
        self.connections.stats()
    }

    /// Where this backend is connected (scheme, hosts, database; no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The deployment mode.
    pub fn mode(&self) -> RedisMode {
        self.mode
    }

    /// The options of a write: sent at most once (see `once`), and given up by fred shortly
    /// before the caller's deadline if it is still unsent (while the connection is down, say).
    /// fred's own timer must fire first: it then marks the command timed out and never sends
    /// it later, so the `Timeout` the caller gets means "not applied" — unless the command was
    /// already on the wire. (When the cache's timer fires first, it drops the call, and fred
    /// would still send the command.)
    pub(crate) fn write_options(&self, ctx: &CallContext<'_>) -> Options {
        match ctx.deadline() {
            None => self.once.clone(),
            Some(deadline) => Options {
                timeout: Some(
                    deadline
                        .remaining()
                        .saturating_sub(UNSENT_MARGIN)
                        .max(Duration::from_millis(1)),
                ),
                ..self.once.clone()
            },
        }
    }

    /// Every connection of the pool (client tracking turns tracking on for each).
    pub(crate) fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The next connection, or `Closed`.
    #[inline]
    pub(crate) fn client(&self) -> Result<&Client> {
        self.next_index().map(|i| &self.clients[i])
    }

    /// The connection that carries every write of `key`, or `Closed`. Writes of one key
    /// always go over one connection of the pool, so they reach the server in the order they
    /// were made, also across a reconnect: a write that waits for its broken connection to be
    /// replaced cannot land after a later `delete` or `set` of the key sent over another one.
    #[inline]
    pub(crate) fn client_for(&self, key: &str) -> Result<&Client> {
        self.index_for(key).map(|i| &self.clients[i])
    }

    #[inline]
    fn next_index(&self) -> Result<usize> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(error::closed());
        }
        Ok(if self.clients.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()
        })
    }

    #[inline]
    fn index_for(&self, key: &str) -> Result<usize> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(error::closed());
        }
        Ok(if self.clients.len() == 1 {
            0
        } else {
            usize::from(redis_keyslot(key.as_bytes())) % self.clients.len()
        })
    }

    /// Runs `op`, a read of `key`, on the next connection of the pool. On a cluster whose
    /// connection is rebuilding its routing, on a connection straight to the key's primary
    /// that fails at once if that primary is down (see [`Detour::read`]).
    #[inline]
    pub(crate) async fn read_key<T, F, Fut>(&self, key: &str, op: F) -> Result<T>
    where
        F: Fn(WithOptions<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FredError>>,
    {
        let index = self.next_index()?;
        let client = &self.clients[index];
        let result = match &self.detour {
            None => op(client.with_options(&Options::default())).await,
            // boxed: the race of two reads is three times the size of one, and every call's
            // future is moved into a box by the `Backend` trait
            Some(detour) => Box::pin(detour.read(index, client, key, op)).await,
        };
        result.map_err(|e| self.fail(e))
    }

    /// The connection for a write of `key` ([`client_for`](Self::client_for)) with the
    /// [`write_options`](Self::write_options) of `ctx`; on a cluster whose connection is
    /// rebuilding its routing, a detour as for [`read_key`](Self::read_key), unless a write of
    /// the key timed out on that connection (see [`settle`](Self::settle)).
    #[inline]
    pub(crate) fn key_writer(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
    ) -> Result<WithOptions<Client>> {
        let index = self.index_for(key)?;
        self.routed(index, key, &self.write_options(ctx))
    }

    #[inline]
    fn routed(&self, index: usize, key: &str, options: &Options) -> Result<WithOptions<Client>> {
        let client = &self.clients[index];
        if let Some(detour) = &self.detour
            && detour.rebuilding(index)
            && !detour.pinned(index, key)
        {
            let node = detour.client_for(client, key).map_err(|e| self.fail(e))?;
            return Ok(node.with_options(&detour::fail_fast(options)));
        }
        Ok(client.with_options(options))
    }

    /// The result of a write of `key` from [`key_writer`](Self::key_writer). A write that
    /// timed out on a cluster connection may still be in that connection's buffers, to be sent
    /// when its routing is rebuilt: the key's later writes keep to that connection (they
    /// take no detour), so they cannot land before it.
    #[inline]
    fn settle<T>(&self, key: &str, result: Result<T>) -> Result<T> {
        if let (Some(detour), Err(e)) = (&self.detour, &result)
            && e.kind() == cache_core::ErrorKind::Timeout
            && let Ok(index) = self.index_for(key)
            && detour.rebuilding(index)
        {
            detour.pin(index, key);
        }
        result
    }

    /// Converts a fred error, or reports `Closed` if the backend was closed meanwhile.
    #[cold]
    pub(crate) fn fail(&self, err: FredError) -> Error {
        if self.closed.load(Ordering::Relaxed) {
            error::closed()
        } else {
            error::convert(err)
        }
    }

    /// Runs `script` by hash, and by text if the server does not have it cached.
    async fn eval<R, C>(
        &self,
        client: &C,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R>
    where
        R: FromValue,
        C: ClientLike,
    {
        self.eval_or(client, script, keys, args, |e| self.fail(e))
            .await
    }

    /// [`eval`](Self::eval) with the conversion of a server error.
    pub(crate) async fn eval_or<R, C>(
        &self,
        client: &C,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
        on_error: impl Fn(FredError) -> Error,
    ) -> Result<R>
    where
        R: FromValue,
        C: ClientLike,
    {
        scripts::run(client, script, keys, args)
            .await
            .map_err(on_error)
    }

    /// Converts an error of `INCRBY`: an overflow or a value that is not an integer is the
    /// caller's `InvalidArgument`.
    pub(crate) fn increment_error(&self, e: FredError) -> Error {
        let details = e.details();
        let code = error::server_code(details);
        if details.contains("overflow") {
            error::invalid_argument(
                "the increment would overflow a 64-bit signed integer; the value was left \
                 unchanged",
                e,
            )
        } else if details.contains("not an integer") || code == Some("WRONGTYPE") {
            error::invalid_argument(
                "the value at the key is not a decimal integer in the 64-bit signed range; \
                 it was left unchanged",
                e,
            )
        } else {
            self.fail(e)
        }
    }

    pub(crate) async fn mget<'k>(
        &self,
        client: &Client,
        keys: impl Iterator<Item = &'k str> + Clone,
    ) -> Result<Vec<Option<Bytes>>> {
        let keys: MultipleKeys = shared_keys(keys).into();
        let n = keys.len();
        let values: Vec<Option<Bytes>> = client.mget(keys).await.map_err(|e| self.fail(e))?;
        if values.len() != n {
            return Err(error::unexpected(format!(
                "MGET of {n} keys answered {} values",
                values.len()
            )));
        }
        Ok(values)
    }

    /// `multi_get` without generations: one `MGET`, or one per hash slot on a cluster.
    pub(crate) async fn plain_multi_get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let index = self.next_index()?;
        let client = &self.clients[index];
        if !self.clustered {
            return self.mget(client, keys.iter().map(String::as_str)).await;
        }
        // boxed: a cluster's reads per slot (and their detour) would make every call's
        // future several times larger, and the `Backend` trait moves each into a box
        Box::pin(async move {
            match &self.detour {
                None => self.cluster_multi_get(client, keys).await,
                // while the routing is rebuilt: straight to the slots' primaries
                Some(detour) => {
                    detour
                        .race(index, self.cluster_multi_get(client, keys), || async {
                            detour
                                .multi_get(client, keys)
                                .await
                                .map_err(|e| self.fail(e))
                        })
                        .await
                }
            }
        })
        .await
    }

    /// `multi_get_with_ttl` without generations: one script run, or one per hash slot on a
    /// cluster, the slots' runs sent concurrently.
    pub(crate) async fn plain_multi_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let index = self.next_index()?;
        let client = &self.clients[index];
        if !self.clustered {
            return self
                .slot_entries(client, keys.iter().map(String::as_str))
                .await;
        }
        let groups = cluster::group_by_slot(keys.iter().map(String::as_bytes));
        let on_cluster = self.per_group(keys.len(), &groups, |group| {
            self.slot_entries(client, group.iter().map(|&i| keys[i].as_str()))
        });
        match &self.detour {
            None => on_cluster.await,
            // while the routing is rebuilt: straight to the slots' primaries, failing at once
            // when one of them is the node that is down
            Some(detour) => {
                detour
                    .race(index, on_cluster, || {
                        self.per_group(keys.len(), &groups, |group| async move {
                            let first = group.first().map_or("", |&i| keys[i].as_str());
                            let node =
                                detour.client_for(client, first).map_err(|e| self.fail(e))?;
                            let node = node.with_options(&detour::fail_fast(&Options::default()));
                            self.slot_entries(&node, group.iter().map(|&i| keys[i].as_str()))
                                .await
                        })
                    })
                    .await
            }
        }
    }

    /// The entries of `keys` (one hash slot on a cluster) in one script run on `client`.
    pub(crate) async fn slot_entries<'k, C: ClientLike>(
        &self,
        client: &C,
        keys: impl Iterator<Item = &'k str> + Clone,
    ) -> Result<Vec<Option<Entry>>> {
        let keys: Vec<Key> = shared_keys(keys);
        let n = keys.len();
        let reply: Value = scripts::run(client, &ENTRIES, keys, Vec::new())
            .await
            .map_err(|e| self.fail(e))?;
        entries(reply, n)
    }

    /// Runs `read` for each group of key indexes concurrently and puts the answers back in
    /// the order of the `n` keys; fails with the first error.
    pub(crate) async fn per_group<'g, F, Fut>(
        &self,
        n: usize,
        groups: &'g [Vec<usize>],
        read: F,
    ) -> Result<Vec<Option<Entry>>>
    where
        F: Fn(&'g [usize]) -> Fut,
        Fut: Future<Output = Result<Vec<Option<Entry>>>>,
    {
        let answers = try_join_all(groups.iter().map(|g| read(g))).await?;
        let mut out = vec![None; n];
        for (group, values) in groups.iter().zip(answers) {
            if values.len() != group.len() {
                return Err(error::unexpected(format!(
                    "a read of {} keys answered {} entries",
                    group.len(),
                    values.len()
                )));
            }
            for (&i, v) in group.iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// `multi_set` without generations.
    pub(crate) async fn plain_multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        let client = self
            .client_for(&entries[0].0)?
            .with_options(&self.write_options(ctx));
        if self.clustered {
            let result = self.cluster_multi_set(&client, entries, op.ttl).await;
            if let (Some(detour), Err(e)) = (&self.detour, &result)
                && e.kind() == cache_core::ErrorKind::Timeout
            {
                // as in `settle`: the keys' later writes take no detour
                for (key, _) in entries {
                    if let Ok(index) = self.index_for(key)
                        && detour.rebuilding(index)
                    {
                        detour.pin(index, key);
                    }
                }
            }
            result
        } else {
            unsent_again!(async { self.set_many(&client, entries, op.ttl).await })
        }
    }

    /// `get` of a backend with generations on: in the key's generation if it has a group.
    #[inline(never)]
    async fn maybe_gen_get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.generation_group(key)? {
            Some(group) => self.gen_get(group, key).await,
            None => self
                .client()?
                .get::<Option<Bytes>, _>(key)
                .await
                .map_err(|e| self.fail(e)),
        }
    }

    /// Writes `entries` (one hash slot, or any keys on a standalone server) atomically.
    pub(crate) async fn set_many(
        &self,
        client: &WithOptions<Client>,
        entries: &[(String, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        match (entries.len(), ttl) {
            (0, _) => Ok(()),
            (1, ttl) => {
                let Some((key, value)) = entries.first() else {
                    return Ok(());
                };
                client
                    .set::<(), _, _>(key.as_str(), value.clone(), ttl.map(px), None, false)
                    .await
                    .map_err(|e| self.fail(e))
            }
            (_, None) => {
                let keys = shared_keys(entries.iter().map(|(k, _)| k.as_str()));
                let pairs: Vec<(Key, Value)> = keys
                    .into_iter()
                    .zip(entries)
                    .map(|(k, (_, v))| (k, Value::Bytes(v.clone())))
                    .collect();
                client.mset(pairs).await.map_err(|e| self.fail(e))
            }
            (n, Some(ttl)) => {
                let keys = shared_keys(entries.iter().map(|(k, _)| k.as_str()));
                let mut args = Vec::with_capacity(n + 1);
                args.push(Value::Integer(millis(ttl)));
                args.extend(entries.iter().map(|(_, v)| Value::Bytes(v.clone())));
                let _: Value = self.eval(client, &SET_MANY_PX, keys, args).await?;
                Ok(())
            }
        }
    }
}

/// What `PTTL` answered, as a [`KeyTtl`].
pub(crate) fn key_ttl(ms: i64) -> Result<KeyTtl> {
    Ok(match ms {
        -2 => KeyTtl::Missing,
        -1 => KeyTtl::NoExpiry,
        // PTTL is 0 in the millisecond a key expires, while it is still there: a live key
        // reports at least 1 ms, as on the memory backend (memcached: 1 s)
        ms if ms >= 0 => KeyTtl::Remaining(Duration::from_millis(ms.max(1) as u64)),
        other => return Err(error::unexpected(format!("PTTL answered {other}"))),
    })
}

/// The reply of the [`ENTRIES`] script (or of the generation script's `entries`) for `n`
/// keys: per key its value and its `PTTL`.
pub(crate) fn entries(reply: Value, n: usize) -> Result<Vec<Option<Entry>>> {
    let Value::Array(items) = reply else {
        return Err(error::unexpected(format!(
            "a read of {n} keys with their TTL answered a {:?} reply",
            reply.kind()
        )));
    };
    if items.len() != 2 * n {
        return Err(error::unexpected(format!(
            "a read of {n} keys with their TTL answered {} values",
            items.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    let mut items = items.into_iter();
    while let (Some(value), Some(ttl)) = (items.next(), items.next()) {
        out.push(entry(value, ttl)?);
    }
    Ok(out)
}

/// One key's value and `PTTL` as an [`Entry`] (`None`: missing).
fn entry(value: Value, ttl: Value) -> Result<Option<Entry>> {
    let value = match value {
        Value::Null => return Ok(None),
        Value::Bytes(b) => b,
        Value::String(s) => s.inner().clone(),
        other => {
            return Err(error::unexpected(format!(
                "a value read with its TTL came as a {:?} reply",
                other.kind()
            )));
        }
    };
    let ms = match ttl {
        Value::Integer(ms) => ms,
        other => {
            return Err(error::unexpected(format!(
                "PTTL read with a value came as a {:?} reply",
                other.kind()
            )));
        }
    };
    let ttl = match key_ttl(ms)? {
        KeyTtl::NoExpiry => None,
        KeyTtl::Remaining(d) => Some(d),
        // the value and its TTL are read in one script: a key cannot vanish in between
        KeyTtl::Missing => {
            return Err(error::unexpected(
                "PTTL answered -2 for a key it had just read",
            ));
        }
    };
    Ok(Some(Entry::new(value, ttl)))
}

/// A TTL in whole milliseconds, rounded up (never expires early), at least 1.
pub(crate) fn millis(ttl: Duration) -> i64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[inline]
pub(crate) fn px(ttl: Duration) -> Expiration {
    Expiration::PX(millis(ttl))
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn endpoint(&self) -> Option<cache_core::Endpoint> {
        Some(self.endpoint.clone())
    }

    fn capability(&self) -> Capability {
        Capability {
            max_ttl: Some(MAX_TTL),
            // on a cluster, multi_set is atomic per hash slot only
            atomic_multi_set: !self.clustered,
            exclusive_store: false,
            max_key_len: None,
            max_value_len: Some(MAX_VALUE_LEN),
            ..Capability::all()
        }
    }

    // The hot commands are written with `cache_core::in_place!`, so that their futures
    // (fred's are kilobytes) are built in their box: `#[async_trait]` would build each on the
    // stack and copy it.
    cache_core::in_place! {
        fn get(&self, _ctx, key) -> Result<Option<Bytes>> {
            if self.generations.is_some() {
                return self.maybe_gen_get(key).await;
            }
            self.read_key(key, |c| async move { c.get::<Option<Bytes>, _>(key).await })
                .await
        }
    }

    async fn get_with_ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        if let Some(group) = self.generation_group(key)? {
            let mut entries = self.gen_entries(group, std::slice::from_ref(&key)).await?;
            return Ok(entries.pop().flatten());
        }
        let reply: Value = self
            .read_key(key, |c| async move {
                scripts::run(&c, &ENTRIES, vec![Key::from(key)], Vec::new()).await
            })
            .await?;
        Ok(entries(reply, 1)?.pop().flatten())
    }

    async fn multi_get_with_ttl(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.generations.is_some() {
            return self.gen_multi_entries(keys).await;
        }
        self.plain_multi_entries(keys).await
    }

    cache_core::in_place! {
        fn multi_get(&self, _ctx, keys) -> Result<Vec<Option<Bytes>>> {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            if self.generations.is_some() {
                return self.gen_multi_get(keys).await;
            }
            self.plain_multi_get(keys).await
        }
    }

    cache_core::in_place! {
        fn set(&self, ctx, key, value, op) -> Result<()> {
            if let Some(group) = self.generation_group(key)? {
                return self
                    .gen_set(ctx, group, key, value, op, false)
                    .await
                    .map(|_| ());
            }
            let client = self.key_writer(ctx, key)?;
            self.settle(
                key,
                unsent_again!(async {
                    client
                        .set::<(), _, _>(key, value.clone(), op.ttl.map(px), None, false)
                        .await
                        .map_err(|e| self.fail(e))
                }),
            )
        }
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_set(ctx, group, key, value, op, true).await;
        }
        let client = self.key_writer(ctx, key)?;
        let reply: Value = self.settle(
            key,
            unsent_again!(async {
                client
                    .set(
                        key,
                        value.clone(),
                        op.ttl.map(px),
                        Some(SetOptions::NX),
                        false,
                    )
                    .await
                    .map_err(|e| self.fail(e))
            }),
        )?;
        Ok(!reply.is_null())
    }

    cache_core::in_place! {
        fn multi_set(&self, ctx, entries, op) -> Result<()> {
            if entries.is_empty() {
                return Ok(());
            }
            if self.generations.is_some() {
                return self.gen_multi_set(ctx, entries, op).await;
            }
            self.plain_multi_set(ctx, entries, op).await
        }
    }

    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        if self.generations.is_some() {
            return Ok(self.gen_delete(ctx, &[key]).await? > 0);
        }
        let client = self.key_writer(ctx, key)?;
        let n: i64 = self.settle(
            key,
            unsent_again!(async { client.unlink(key).await.map_err(|e| self.fail(e)) }),
        )?;
        Ok(n > 0)
    }

    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.generations.is_some() {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            return self.gen_delete(ctx, &keys).await;
        }
        let client = self.client_for(&keys[0])?;
        self.unlink(client, shared_keys(keys.iter().map(String::as_str)))
            .await
    }

    async fn exists(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_exists(group, key).await;
        }
        let n: i64 = self
            .read_key(key, |c| async move { c.exists(key).await })
            .await?;
        Ok(n > 0)
    }

    async fn increment(&self, ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_increment(ctx, group, key, delta).await;
        }
        let client = self.key_writer(ctx, key)?;
        self.settle(
            key,
            unsent_again!(async {
                let result: Result<i64, FredError> = client.incr_by(key, delta).await;
                result.map_err(|e| self.increment_error(e))
            }),
        )
    }

    async fn expire(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_expire(ctx, group, key, ttl).await;
        }
        let client = self.key_writer(ctx, key)?;
        let n: i64 = self.settle(
            key,
            unsent_again!(async {
                match ttl {
                    Some(ttl) => client
                        .pexpire(key, millis(ttl), None)
                        .await
                        .map_err(|e| self.fail(e)),
                    None => {
                        self.eval(&client, &PERSIST, vec![Key::from(key)], Vec::new())
                            .await
                    }
                }
            }),
        )?;
        Ok(n == 1)
    }

    async fn ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_ttl(group, key).await;
        }
        let ms: i64 = self
            .read_key(key, |c| async move { c.pttl(key).await })
            .await?;
        key_ttl(ms)
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let Some(expected) = expected else {
            return self.add(ctx, key, new, op).await;
        };
        if let Some(group) = self.generation_group(key)? {
            return self
                .gen_compare_and_set(ctx, group, key, expected, new, op)
                .await;
        }
        let client = self.key_writer(ctx, key)?;
        let ttl = match op.ttl {
            Some(ttl) => Value::Integer(millis(ttl)),
            None => Value::Bytes(Bytes::new()),
        };
        let n: i64 = self.settle(
            key,
            unsent_again!(async {
                let args = vec![
                    Value::Bytes(expected.clone()),
                    Value::Bytes(new.clone()),
                    ttl.clone(),
                ];
                self.eval(&client, &CAS, vec![Key::from(key)], args).await
            }),
        )?;
        Ok(n == 1)
    }

    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        if let Some(group) = self.generation_group(key)? {
            return self.gen_compare_and_delete(ctx, group, key, expected).await;
        }
        let client = self.key_writer(ctx, key)?;
        let n: i64 = self.settle(
            key,
            unsent_again!(async {
                let args = vec![Value::Bytes(expected.clone())];
                self.eval(&client, &CAD, vec![Key::from(key)], args).await
            }),
        )?;
        Ok(n == 1)
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        match scope {
            ClearScope::Namespace { .. } if self.generations.is_some() => {
                self.gen_clear(ctx, &scope).await
            }
            ClearScope::Namespace { prefix, .. } => {
                let progress = ctx.progress().cloned().unwrap_or_default();
                self.clear_prefix(prefix, progress).await.map(Some)
            }
            ClearScope::All => self.flush_all().await.map(|()| None),
        }
    }

    async fn raw(
        &self,
        ctx: &CallContext<'_>,
        command: &str,
        args: &[RawValue],
    ) -> Result<RawValue> {
        check_raw(command, args)?;
        let name = command
            .split_ascii_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let args = args
            .iter()
            .cloned()
            .map(raw_arg)
            .collect::<Result<Vec<_>>>()?;
        let client = self.client()?.with_options(&self.write_options(ctx));
        let frame = unsent_again!(async {
            let command = CustomCommand::new(name.clone(), ClusterHash::FirstKey, false);
            client
                .custom_raw(command, args.clone())
                .await
                .map_err(|e| self.fail(e))
        })?;
        raw_reply(frame, 0)
    }

    async fn close(&self, _ctx: &CallContext<'_>) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(detour) = &self.detour {
            detour.close();
        }
        // QUIT waits for the replies still due; bounded, as the server may be gone
        let deadline = tokio::time::Instant::now() + self.close_timeout;
        for client in self.clients.iter() {
            match tokio::time::timeout_at(deadline, client.quit()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "redis QUIT failed while closing"),
                Err(_) => tracing::debug!("redis QUIT timed out while closing"),
            }
        }
        let tasks: Vec<ConnectHandle> = {
            let mut guard = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            guard.drain(..).collect()
        };
        for task in tasks {
            task.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(millis(Duration::from_nanos(1)), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(MAX_TTL), 3_153_600_000_000);
    }
}
