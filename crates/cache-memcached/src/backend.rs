//! [`MemcachedBackend`]: the `Backend` implementation.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_memcached::{AsciiProtocol, Error as ClientError, MetaProtocol, MetaValue, Status};
use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, CallContext, Capability, ClearScope, ConnectionCounters, ConnectionStats, Deadline,
    Endpoint, Entry, Error, ErrorKind, KeyTtl, OpSet, RawValue, Result,
};
use futures_util::future::join_all;

use crate::config::MemcachedConfig;
use crate::error::McError;
use crate::generations::Generations;
use crate::keys;
use crate::pool::{Conn, Remembered, Server};
use crate::ring::Ring;
use cache_core::generations::{fold, group, initial_generation, is_group};

/// Bytes of an item that are not the value, kept free below `max_item_size`: memcached 1.6
/// needs 59 bytes plus the key (309 with a 250-byte key); the rest is margin.
pub(crate) const ITEM_OVERHEAD: usize = 384;
/// Memcached reads expiry times above 30 days as absolute Unix times.
const RELATIVE_TTL_LIMIT: u64 = 30 * 24 * 3600;
/// Attempts of a compare-and-swap loop before giving up with `Conflict`.
const CAS_ATTEMPTS: usize = 1000;

/// The memcached backend: a pool of connections per server, keys spread over the servers by
/// ketama consistent hashing.
///
/// Build it with [`MemcachedBuilder`](crate::MemcachedBuilder) or from a
/// [`MemcachedConfig`]; hand it to [`Cache::builder`](cache_core::Cache::builder). Cloning is
/// cheap and clones share the pools.
#[derive(Clone)]
pub struct MemcachedBackend {
    inner: Arc<Inner>,
}

struct Inner {
    servers: Vec<Server>,
    /// `None` with one server: every key goes to it without hashing.
    ring: Option<Ring>,
    command_timeout: Option<Duration>,
    generations: Option<Generations>,
    miss_on_server_down: bool,
    capability: Capability,
    /// The first server, for telemetry.
    endpoint: Option<Endpoint>,
    /// Connections made, failed and lost, over every server.
    connections: Arc<ConnectionCounters>,
    closed: AtomicBool,
}

impl fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("MemcachedBackend")
            .field("servers", &i.servers)
            .field("command_timeout", &i.command_timeout)
            .field("namespace_generations", &i.generations.is_some())
            .field("miss_on_server_down", &i.miss_on_server_down)
            .field("closed", &i.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Connections of one server, as reported by [`MemcachedBackend::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// The server's `host:port`.
    pub address: String,
    /// Connections open now (idle or in use), at most the pool size.
    pub connections: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Memcached's exptime for `secs` seconds from now on the server's clock (at least 1).
fn server_exptime(secs: u64) -> i64 {
    let secs = secs.max(1);
    if secs <= RELATIVE_TTL_LIMIT {
        secs as i64
    } else {
        (unix_now() + secs) as i64
    }
}

/// Memcached's exptime for a TTL: whole seconds rounded up, plus one second because memcached's
/// clock ticks once a second (an item given `n` seconds may expire after `n - 1` and a bit);
/// above 30 days as an absolute Unix time. `None` → 0, no expiry.
pub(crate) fn exptime(ttl: Option<Duration>) -> i64 {
    match ttl {
        None => 0,
        Some(d) => server_exptime(d.as_secs() + u64::from(d.subsec_nanos() > 0) + 1),
    }
}

/// The TTL memcached reports (`t` flag) as the lifetime the caller asked for: the extra second
/// of [`exptime`] is taken off again.
fn key_ttl(remaining: Option<i64>) -> KeyTtl {
    match remaining {
        None | Some(-1) => KeyTtl::NoExpiry,
        Some(t) => KeyTtl::Remaining(lifetime(t)),
    }
}

/// The lifetime left to a live item whose `t` flag reads `t` seconds: the extra second of
/// [`exptime`] taken off, at least 1 s (memcached's precision; a live key never reports 0).
fn lifetime(t: i64) -> Duration {
    Duration::from_secs((t.max(2) - 1) as u64)
}

/// Flags of a meta get that reads a value with its remaining lifetime.
const VALUE_AND_TTL: &[&str] = &["v", "t"];

/// A meta get answer to [`VALUE_AND_TTL`] as an entry. Its `t` flag must be there and be -1
/// (no expiry) or a non-negative number of seconds; anything else is an answer this crate does
/// not read.
fn entry(v: MetaValue) -> Result<Entry, McError> {
    let ttl = match v.ttl_remaining {
        Some(-1) => None,
        Some(t) if t >= 0 => Some(lifetime(t)),
        Some(t) => {
            return Err(McError::Unexpected(format!(
                "a meta get answered a remaining lifetime of {t} s (t flag); expected -1 or a \
                 non-negative number of seconds"
            )));
        }
        None => {
            return Err(McError::Unexpected(
                "a meta get asked for the remaining lifetime (t flag) answered without it".into(),
            ));
        }
    };
    Ok(Entry::new(Bytes::from(v.data.unwrap_or_default()), ttl))
}

/// Counter text as memcached keeps it: decimal, possibly padded with spaces by a native
/// `decr`. Anything else is not a counter.
fn parse_counter(data: Option<&[u8]>) -> Option<i64> {
    let text = std::str::from_utf8(data?).ok()?.trim_end_matches(' ');
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if canonical { text.parse().ok() } else { None }
}

fn not_a_counter() -> McError {
    McError::Invalid("the stored value is not a decimal integer counter".into())
}

/// Puts the answers of one server, `(key, answer)` for the hits, back in the order of `keys`,
/// misses as `None`. Memcached answers a `get k1 k2 …` and a pipeline of quiet meta gets in
/// request order and skips misses, so one forward pass matches them; a hash map is the
/// fallback should a server ever answer out of order.
fn align<K: AsRef<[u8]>, T: Clone>(
    keys: &[K],
    answers: impl IntoIterator<Item = (Vec<u8>, T)>,
) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
    let mut answers = answers.into_iter().peekable();
    for k in keys {
        match answers.peek() {
            Some((key, _)) if key.as_slice() == k.as_ref() => {
                out.push(answers.next().map(|(_, v)| v));
            }
            _ => out.push(None),
        }
    }
    let rest: Vec<(Vec<u8>, T)> = answers.collect();
    if rest.is_empty() {
        return out;
    }
    // out of order: fall back to matching by key
    let by_key: std::collections::HashMap<Vec<u8>, T> = rest.into_iter().collect();
    for (slot, k) in out.iter_mut().zip(keys) {
        if slot.is_none() {
            *slot = by_key.get(k.as_ref()).cloned();
        }
    }
    out
}

impl MemcachedBackend {
    /// Connects per `config` (validated first). Used by the builder.
    pub(crate) async fn connect(config: MemcachedConfig) -> Result<Self> {
        config.validate().map_err(Error::config)?;
        let mut servers = Vec::with_capacity(config.servers.len());
        let mut named = Vec::with_capacity(config.servers.len());
        let connections = Arc::new(ConnectionCounters::default());
        for s in &config.servers {
            let address = crate::config::normalize_address(&s.address).map_err(Error::config)?;
            named.push((address.clone(), s.weight));
            servers.push(Server::new(
                address,
                config.pool_size,
                config.connect_timeout,
                config.retry_backoff,
                connections.clone(),
            ));
        }
        let ring = (servers.len() > 1).then(|| {
            let refs: Vec<(&str, u32)> = named.iter().map(|(a, w)| (a.as_str(), *w)).collect();
            Ring::new(&refs)
        });
        let max_ttl = Duration::from_secs(
            (i32::MAX as u64)
                .saturating_sub(unix_now() + 2 * 86_400)
                .max(RELATIVE_TTL_LIMIT),
        );
        let capability = Capability {
            add: true,
            increment: true,
            expire: true,
            ttl: true,
            ttl_millis: false,
            max_ttl: Some(max_ttl),
            native_multi: true,
            atomic_multi_set: false,
            compare_and_set: true,
            clear_namespace: config.namespace_generations,
            exclusive_store: false,
            raw: true,
            max_key_len: None,
            max_value_len: Some(config.max_item_size - ITEM_OVERHEAD),
            tags: false,
        };
        let backend = MemcachedBackend {
            inner: Arc::new(Inner {
                servers,
                ring,
                command_timeout: config.command_timeout,
                generations: config
                    .namespace_generations
                    .then(|| Generations::new(config.generation_refresh)),
                miss_on_server_down: config.miss_on_server_down,
                capability,
                endpoint: named
                    .first()
                    .map(|(address, _)| match address.rsplit_once(':') {
                        Some((host, port)) => Endpoint::new(host, port.parse().ok()),
                        None => Endpoint::new(address.as_str(), None),
                    }),
                connections,
                closed: AtomicBool::new(false),
            }),
        };
        backend.warm_up(config.connect_timeout).await?;
        Ok(backend)
    }

    /// Connections made, failed and lost since the backend was made, over every server (a
    /// call cancelled midway closes its connection: it counts as lost).
    pub fn connection_stats(&self) -> ConnectionStats {
        self.inner.connections.stats()
    }

    /// Opens one connection per server and asks for its version. Fails only if no server
    /// answers; unreachable servers are logged and retried on use.
    async fn warm_up(&self, connect_timeout: Duration) -> Result<()> {
        let inner = &*self.inner;
        // connect + one round trip; the command timeout is for commands, not for this check
        let limit = connect_timeout.saturating_mul(2);
        let checks = inner.servers.iter().map(|server| async move {
            let check = async {
                let mut c = server.conn().await?;
                c.version().await?;
                Ok(())
            };
            let r = tokio::time::timeout(limit, check)
                .await
                .unwrap_or(Err(McError::Timeout(limit)));
            (server, r)
        });
        let mut failures = Vec::new();
        for (server, r) in join_all(checks).await {
            if let Err(e) = r {
                tracing::warn!(server = server.address(), error = %e, "memcached server unreachable at start");
                failures.push(e.into_error(server.address()));
            }
        }
        if failures.len() == inner.servers.len() {
            let first = failures.swap_remove(0);
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "none of the {} memcached servers answered",
                    inner.servers.len()
                ),
            )
            .with_shared_source(Arc::new(first)));
        }
        Ok(())
    }

    /// A builder; the same as [`MemcachedBuilder::new`](crate::MemcachedBuilder::new).
    pub fn builder() -> crate::MemcachedBuilder {
        crate::MemcachedBuilder::new()
    }

    /// The addresses of the servers, in configuration order.
    pub fn servers(&self) -> Vec<&str> {
        self.inner.servers.iter().map(Server::address).collect()
    }

    /// The server that holds the built key `key` (the namespace applied, as the
    /// [`Cache`](cache_core::Cache) passes it).
    pub fn server_for_key(&self, key: &str) -> &str {
        self.inner.server_for(key).address()
    }

    /// How many times this backend found the generation counter of a namespace it had read
    /// missing and made it anew (with namespace generations on; otherwise 0). A counter is
    /// lost when memcached evicts it, when `flush_all` runs elsewhere or when its server
    /// restarts; each time, every key of that namespace becomes unreachable at once, as after
    /// a `clear()`. Each loss is also logged as a `tracing` warning.
    pub fn generations_lost(&self) -> u64 {
        self.inner.generations.as_ref().map_or(0, Generations::lost)
    }

    /// The connections of each server's pool.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.inner
            .servers
            .iter()
            .map(|s| {
                let (connections, idle) = s.connections();
                ServerStatus {
                    address: s.address().to_owned(),
                    connections,
                    idle,
                }
            })
            .collect()
    }
}

impl Inner {
    #[inline]
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(McError::Closed.into_error("-"))
        } else {
            Ok(())
        }
    }

    #[inline]
    fn server_index(&self, key: &str) -> usize {
        match &self.ring {
            None => 0,
            Some(ring) => ring.server_for(key.as_bytes()),
        }
    }

    #[inline]
    fn server_for(&self, key: &str) -> &Server {
        &self.servers[self.server_index(key)]
    }

    /// Runs `fut` under the command timeout, if one is set and the caller's `deadline` does
    /// not already end the call sooner: the cache's deadline is enforced above the backend,
    /// so a call never runs two timers.
    #[inline]
    async fn timed<T>(
        &self,
        deadline: Option<Deadline>,
        fut: impl Future<Output = Result<T, McError>>,
    ) -> Result<T, McError> {
        match own_timeout(self.command_timeout, deadline) {
            None => fut.await,
            Some(d) => tokio::time::timeout(d, fut)
                .await
                .unwrap_or_else(|_| Err(McError::Timeout(d))),
        }
    }

    /// Converts a failure on `server`, dropping its idle connections when the failure says
    /// they are probably dead.
    #[cold]
    fn fail(&self, server: &Server, e: McError) -> Error {
        if e.breaks_connections() {
            server.discard_idle();
        }
        e.into_error(server.address())
    }

    /// Converts a generation that could not be read.
    #[cold]
    fn unread(&self, u: Unread<'_>) -> Error {
        self.fail(u.server, u.error)
    }

    /// Turns an unreachable server into a miss on reads when `miss_on_server_down` is set.
    #[cold]
    fn read_failed<T>(&self, server: &Server, e: McError, miss: T) -> Result<T> {
        if self.miss_on_server_down && e.is_unreachable() {
            tracing::warn!(server = server.address(), error = %e, "memcached server unreachable; answering a miss");
            if e.breaks_connections() {
                server.discard_idle();
            }
            Ok(miss)
        } else {
            Err(self.fail(server, e))
        }
    }

    /// The memcached key of the built key `key`: encoded, and with namespace generations its
    /// generation folded in. Without generations, or with the generation known, no I/O
    /// happens; a generation read is boxed so that it does not grow every command's future.
    /// A generation that cannot be read fails with the server that holds its counter.
    #[inline]
    async fn wire_key<'k>(
        &self,
        key: &'k str,
        deadline: Option<Deadline>,
    ) -> Result<Cow<'k, str>, Unread<'_>> {
        let Some(generations) = &self.generations else {
            return Ok(keys::encode(key));
        };
        let Some(group) = group(key) else {
            return Ok(keys::encode(key));
        };
        let generation = match generations.fresh(group) {
            Some(g) => g,
            None => Box::pin(self.read_generation(generations, group, false, deadline)).await?,
        };
        let folded = fold(key, group.len(), generation, "", "");
        Ok(Cow::Owned(match keys::encode(&folded) {
            Cow::Borrowed(_) => folded,
            Cow::Owned(hashed) => hashed,
        }))
    }

    async fn wire_keys<'k, K: AsRef<str>>(
        &self,
        keys: &'k [K],
        deadline: Option<Deadline>,
    ) -> Result<Vec<Wire<'k>>, Unread<'_>> {
        if self.generations.is_none() {
            return Ok(keys
                .iter()
                .map(|k| Wire(keys::encode(k.as_ref())))
                .collect());
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(Wire(self.wire_key(k.as_ref(), deadline).await?));
        }
        Ok(out)
    }

    /// Reads (or with `bump`, increments) the generation of `group`, creating it with a
    /// random value when missing. A failed read is an error: past `generation_refresh` an
    /// older generation is never used.
    async fn read_generation(
        &self,
        generations: &Generations,
        group: &str,
        bump: bool,
        deadline: Option<Deadline>,
    ) -> Result<u64, Unread<'_>> {
        let key = keys::generation_key(group);
        let server = self.server_for(&key);
        let ticket = generations.ticket(group);
        let initial = initial_generation();
        let r = self
            .timed(deadline, async {
                let mut c = server.conn().await?;
                if !bump
                    && let Some(v) = c
                        .meta_get(key.as_bytes(), false, None, Some(&["v"]))
                        .await?
                {
                    return parse_generation(v.data.as_deref());
                }
                let initial = format!("J{initial}");
                let flags = ["N0", initial.as_str(), "v"];
                let v = c
                    .meta_increment(
                        key.as_bytes(),
                        false,
                        None,
                        Some(u64::from(bump)),
                        Some(&flags),
                    )
                    .await?;
                parse_generation(v.and_then(|v| v.data).as_deref())
            })
            .await;
        // the counter was missing and this call made it: a loss if this process had read it
        if matches!(r, Ok(g) if g == initial) && generations.knows(group) {
            generations.record_loss();
            tracing::warn!(
                group,
                "a namespace generation counter was lost (evicted, flushed or its server \
                 restarted); the namespace is empty from now on"
            );
        }
        if bump {
            generations.cleared(group, ticket, r.as_ref().ok().copied());
        } else if let Ok(g) = r {
            generations.store(group, ticket, g);
        }
        r.map_err(|error| Unread { server, error })
    }

    /// `get k1 k2 …` on one server, answers in the order of `keys`.
    async fn get_many<K: AsRef<[u8]>>(
        &self,
        server: &Server,
        keys: &[K],
    ) -> Result<Vec<Option<Bytes>>, McError> {
        let mut c = server.conn().await?;
        match c.get_multi(keys).await {
            Ok(values) => Ok(align(
                keys,
                values
                    .into_iter()
                    .map(|v| (v.key, Bytes::from(v.data.unwrap_or_default()))),
            )),
            Err(ClientError::Protocol(Status::NotFound)) => Ok(vec![None; keys.len()]),
            Err(e) => Err(e.into()),
        }
    }

    /// Pipelined quiet meta gets `mg <key> v t k q`, one per key, then `mn`, on one server:
    /// one round trip for every key, entries in the order of `keys`.
    async fn get_entries<K: AsRef<[u8]>>(
        &self,
        server: &Server,
        keys: &[K],
    ) -> Result<Vec<Option<Entry>>, McError> {
        let mut c = server.conn().await?;
        let values = c.meta_get_multi(keys, Some(VALUE_AND_TTL)).await?;
        let hits = values
            .into_iter()
            .map(|mut v| {
                let key = v.key.take().ok_or_else(|| {
                    McError::Unexpected("a pipelined meta get answered without its key".into())
                })?;
                Ok((key, entry(v)?))
            })
            .collect::<Result<Vec<_>, McError>>()?;
        Ok(align(keys, hits))
    }

    /// Groups `keys` by server: `(server index, positions in keys)`, servers in order.
    fn split<K: AsRef<str>>(&self, keys: &[K]) -> Vec<(usize, Vec<usize>)> {
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.servers.len()];
        for (i, k) in keys.iter().enumerate() {
            groups[self.server_index(k.as_ref())].push(i);
        }
        groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
            .collect()
    }

    /// The result of per-server calls: the first error (after every call finished), if any.
    fn first_error<T>(&self, results: Vec<(usize, Result<T, McError>)>) -> Result<Vec<(usize, T)>> {
        let mut ok = Vec::with_capacity(results.len());
        let mut first: Option<Error> = None;
        for (s, r) in results {
            match r {
                Ok(v) => ok.push((s, v)),
                Err(e) => {
                    let e = self.fail(&self.servers[s], e);
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(ok),
        }
    }

    /// A multi-key read: one batch per server, servers at once, answers in the order of
    /// `keys` (values or entries, by `T`).
    async fn multi_read<T: ReadMany>(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<T>>> {
        let inner = self;
        inner.check_open()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wires = match inner.wire_keys(keys, ctx.deadline()).await {
            Ok(w) => w,
            Err(u) => return inner.read_failed(u.server, u.error, misses(keys.len())),
        };
        if inner.servers.len() == 1 {
            let server = &inner.servers[0];
            return match inner
                .timed(ctx.deadline(), T::read_many(inner, server, &wires))
                .await
            {
                Ok(v) => Ok(v),
                Err(e) => inner.read_failed(server, e, misses(keys.len())),
            };
        }
        let calls: Vec<_> = inner
            .split(keys)
            .into_iter()
            .map(|(s, positions)| inner.read_group(ctx.deadline(), s, positions, &wires))
            .collect();
        inner.gather(keys.len(), join_all(calls).await)
    }

    /// One server's share of a multi-key read: `T::read_many` of the keys at `positions`.
    async fn read_group<T: ReadMany>(
        &self,
        deadline: Option<Deadline>,
        s: usize,
        positions: Vec<usize>,
        wires: &[Wire<'_>],
    ) -> ServerAnswers<T> {
        let batch: Vec<&str> = positions.iter().map(|&i| &*wires[i]).collect();
        let r = self
            .timed(deadline, T::read_many(self, &self.servers[s], &batch))
            .await;
        (s, positions, r)
    }

    /// The answers of per-server reads put back in the order of the `len` keys asked. A server
    /// that failed fails the call with the first such error, after every read finished (or,
    /// per `miss_on_server_down`, its keys are misses).
    fn gather<T>(&self, len: usize, answers: Vec<ServerAnswers<T>>) -> Result<Vec<Option<T>>> {
        let mut out: Vec<Option<T>> = std::iter::repeat_with(|| None).take(len).collect();
        let mut first: Option<Error> = None;
        for (s, positions, r) in answers {
            match r {
                Ok(values) => {
                    for (i, v) in positions.into_iter().zip(values) {
                        out[i] = v;
                    }
                }
                Err(e) => {
                    if let Err(e) = self.read_failed(&self.servers[s], e, ()) {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn set_group(
        &self,
        deadline: Option<Deadline>,
        s: usize,
        positions: Vec<usize>,
        wires: &[Wire<'_>],
        entries: &[(String, Bytes)],
        flags: Option<&[&str]>,
    ) -> (usize, Result<(), McError>) {
        let items: Vec<(&str, &[u8])> = positions
            .iter()
            .map(|&i| (&*wires[i], &entries[i].1[..]))
            .collect();
        let r = self
            .timed(deadline, set_items(&self.servers[s], &items, flags))
            .await;
        (s, r)
    }

    async fn delete_group(
        &self,
        deadline: Option<Deadline>,
        s: usize,
        positions: Vec<usize>,
        wires: &[Wire<'_>],
    ) -> (usize, Result<u64, McError>) {
        let r = self
            .timed(deadline, async {
                let mut c = self.servers[s].conn().await?;
                let mut deleted = 0u64;
                for &i in &positions {
                    match c.delete(wires[i].as_bytes()).await {
                        Ok(()) => deleted += 1,
                        Err(ClientError::Protocol(Status::NotFound)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(deleted)
            })
            .await;
        (s, r)
    }

    async fn flush_server(
        &self,
        deadline: Option<Deadline>,
        s: usize,
    ) -> (usize, Result<(), McError>) {
        let r = self
            .timed(deadline, async {
                let mut c = self.servers[s].conn().await?;
                Ok(c.flush_all().await?)
            })
            .await;
        (s, r)
    }

    /// `increment` on one connection, holding the memory of the counter (`memory`, locked
    /// for the whole increment). A counter this pool remembers takes one round trip
    /// ([`Inner::increment_remembered`]); otherwise, and whenever that shortcut does not
    /// apply, a compare-and-swap: read the value, its CAS unique and TTL, compute the exact
    /// result, write it guarded by the unique. Every write of a non-negative result asks for
    /// the new unique and remembers it.
    async fn increment_on(
        &self,
        c: &mut Conn<'_>,
        key: &str,
        delta: i64,
        memory: &mut Option<Remembered>,
    ) -> Result<i64, McError> {
        if let Some(next) = self.increment_remembered(c, key, delta, memory).await? {
            return Ok(next);
        }
        for _ in 0..CAS_ATTEMPTS {
            let current = c
                .meta_get(key.as_bytes(), false, None, Some(&["v", "c", "t"]))
                .await?;
            let Some(current) = current else {
                // missing: create it holding delta, without expiry
                let text = delta.to_string();
                let epoch = c.epoch_now();
                let written = stored(
                    c.meta_set(
                        key.as_bytes(),
                        text.as_str(),
                        false,
                        None,
                        Some(&["ME", "c"]),
                    )
                    .await,
                );
                match written {
                    Ok(answer) => {
                        *memory = remembered(answer.as_ref(), delta, epoch);
                        return Ok(delta);
                    }
                    Err(ClientError::Protocol(Status::NotStored)) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let value = parse_counter(current.data.as_deref()).ok_or_else(not_a_counter)?;
            let next = value.checked_add(delta).ok_or_else(|| {
                McError::Invalid(format!(
                    "incrementing {value} by {delta} would overflow a 64-bit signed integer"
                ))
            })?;
            let cas = current
                .cas
                .ok_or_else(|| McError::Unexpected("no CAS token in a meta get answer".into()))?;
            let compare = format!("C{cas}");
            let epoch = c.epoch_now();
            let written = if value >= 0 && delta >= 0 {
                // memcached's own unsigned arithmetic is exact here (no floor, no wrap) and
                // keeps the TTL; its answer is remembered only if it says `next`
                c.meta_increment(
                    key.as_bytes(),
                    false,
                    None,
                    Some(delta as u64),
                    Some(&[compare.as_str(), "v", "c"]),
                )
                .await
                .map(|a| a.filter(|a| parse_counter(a.data.as_deref()) == Some(next)))
            } else {
                // negative values are plain text to memcached: write the exact result, with
                // the remaining TTL the server reported
                let text = next.to_string();
                let ttl = match current.ttl_remaining {
                    Some(t) if t >= 0 => Some(format!("T{}", server_exptime(t as u64))),
                    _ => None,
                };
                let mut flags = vec![compare.as_str(), "c"];
                if let Some(t) = &ttl {
                    flags.push(t.as_str());
                }
                stored(
                    c.meta_set(key.as_bytes(), text.as_str(), false, None, Some(&flags))
                        .await,
                )
            };
            match written {
                Ok(answer) => {
                    *memory = remembered(answer.as_ref(), next, epoch);
                    return Ok(next);
                }
                Err(ClientError::Protocol(Status::Exists | Status::NotFound)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(McError::Conflict(format!(
            "increment lost {CAS_ATTEMPTS} compare-and-swap races in a row"
        )))
    }

    /// The one-round-trip increment: when `delta >= 0`, the pool remembers the CAS unique `u`
    /// and value `v` of `key` from memcached's answer to a write of it, this connection may
    /// use them ([`Conn::may_use`]: it was opened before that write was sent, so it reaches
    /// the same life of the server process), and `v + delta` is at most `i64::MAX`: one
    /// `ma <key> C<u> D<delta> v c`.
    ///
    /// Exactness: memcached applies the `ma` only if the item's unique is still `u`, that is,
    /// only to the very item written as the canonical decimal text of `v ≥ 0` (by memcached's
    /// arithmetic or by this crate) — a unique names one version of one item for the life of
    /// the server process. Its arithmetic on `v` is then the exact `v + delta`: no wrap (the
    /// sum is at most `i64::MAX`). An overflowing result is never sent here, so no other
    /// client ever sees an out-of-range value. `ma` keeps the TTL, and an increment never
    /// shortens the text, so memcached adds no padding. Decrements take the compare-and-swap
    /// path, which writes their exact text (see *Increment* in the crate docs). Any other
    /// answer about the item (changed: `EX`, gone: `NF`) leaves it forgotten and returns
    /// `None`: the caller falls back to the compare-and-swap path, which parses whatever text
    /// is there and refuses what it must.
    async fn increment_remembered(
        &self,
        c: &mut Conn<'_>,
        key: &str,
        delta: i64,
        memory: &mut Option<Remembered>,
    ) -> Result<Option<i64>, McError> {
        let Some(known) = *memory else {
            return Ok(None);
        };
        if delta < 0 || !c.may_use(&known) {
            return Ok(None);
        }
        let Some(next) = known.value.checked_add(delta) else {
            // the compare-and-swap path reads the value and refuses (or adds) exactly
            return Ok(None);
        };
        // forgotten until memcached's answer is read to the end
        *memory = None;
        let compare = format!("C{}", known.cas);
        let flags = [compare.as_str(), "v", "c"];
        let epoch = c.epoch_now();
        let answer = c
            .meta_increment(
                key.as_bytes(),
                false,
                None,
                Some(delta as u64),
                Some(&flags),
            )
            .await;
        match answer {
            Ok(Some(answer)) => {
                if parse_counter(answer.data.as_deref()) != Some(next) {
                    return Err(McError::Unexpected(format!(
                        "memcached answered {:?} to adding {delta} to {} under its CAS unique",
                        String::from_utf8_lossy(answer.data.as_deref().unwrap_or_default()),
                        known.value
                    )));
                }
                *memory = remembered(Some(&answer), next, epoch);
                Ok(Some(next))
            }
            Ok(None) => Err(McError::Unexpected(
                "a meta arithmetic asked for the value (v flag) answered without it".into(),
            )),
            Err(ClientError::Protocol(Status::Exists | Status::NotFound)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn compare_and_set_on(
        &self,
        c: &mut Conn<'_>,
        key: &str,
        expected: &[u8],
        new: &[u8],
        exptime: i64,
    ) -> Result<bool, McError> {
        let ttl = format!("T{exptime}");
        for _ in 0..CAS_ATTEMPTS {
            let Some(cas) = cas_if_equal(c, key, expected).await? else {
                return Ok(false);
            };
            let compare = format!("C{cas}");
            match c
                .meta_set(
                    key.as_bytes(),
                    new,
                    false,
                    None,
                    Some(&[compare.as_str(), ttl.as_str()]),
                )
                .await
            {
                Ok(_) => return Ok(true),
                // changed or removed since the read: look again
                Err(ClientError::Protocol(Status::Exists | Status::NotFound)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(McError::Conflict(format!(
            "compare_and_set lost {CAS_ATTEMPTS} compare-and-swap races in a row"
        )))
    }
}

impl Inner {
    /// `compare_and_delete` on one connection: read the value and its CAS unique, then a
    /// meta delete that applies only to that unique; a race lost to another write means the
    /// value changed, so the answer is `false`.
    async fn compare_and_delete_on(
        &self,
        c: &mut Conn<'_>,
        key: &str,
        expected: &[u8],
    ) -> Result<bool, McError> {
        let Some(cas) = cas_if_equal(c, key, expected).await? else {
            return Ok(false);
        };
        let compare = format!("C{cas}");
        match c
            .meta_delete(key.as_bytes(), false, None, Some(&[compare.as_str()]))
            .await
        {
            Ok(_) => Ok(true),
            // changed or removed since the read: not the expected value any more
            Err(ClientError::Protocol(Status::Exists | Status::NotFound)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a multi-key read answers per key: the value (`multi_get`) or the value with its
/// lifetime (`multi_get_with_ttl`), and how one server is asked for a batch of keys.
trait ReadMany: Sized + Send {
    /// The answers of `server` for `keys`, in their order.
    fn read_many<'a, K: AsRef<[u8]> + Sync>(
        inner: &'a Inner,
        server: &'a Server,
        keys: &'a [K],
    ) -> impl std::future::Future<Output = Result<Vec<Option<Self>>, McError>> + Send + 'a;
}

impl ReadMany for Bytes {
    fn read_many<'a, K: AsRef<[u8]> + Sync>(
        inner: &'a Inner,
        server: &'a Server,
        keys: &'a [K],
    ) -> impl std::future::Future<Output = Result<Vec<Option<Self>>, McError>> + Send + 'a {
        inner.get_many(server, keys)
    }
}

impl ReadMany for Entry {
    fn read_many<'a, K: AsRef<[u8]> + Sync>(
        inner: &'a Inner,
        server: &'a Server,
        keys: &'a [K],
    ) -> impl std::future::Future<Output = Result<Vec<Option<Self>>, McError>> + Send + 'a {
        inner.get_entries(server, keys)
    }
}

/// Quiet meta sets of `items` (`ms <key> <len> [flags] k q` each, then `mn`) on one
/// connection of `server`: one round trip.
async fn set_items<K: AsRef<[u8]>>(
    server: &Server,
    items: &[(K, &[u8])],
    flags: Option<&[&str]>,
) -> Result<(), McError> {
    let mut c = server.conn().await?;
    let refused = c.meta_set_multi(items, flags).await?;
    if refused.is_empty() {
        Ok(())
    } else {
        Err(McError::Unexpected(format!(
            "{} of {} items not stored",
            refused.len(),
            items.len()
        )))
    }
}

/// `n` misses.
fn misses<T>(n: usize) -> Vec<Option<T>> {
    std::iter::repeat_with(|| None).take(n).collect()
}

/// One server's part of a multi-key read: its index, the positions of its keys among the keys
/// asked, and its answers to them in that order.
type ServerAnswers<T> = (usize, Vec<usize>, Result<Vec<Option<T>>, McError>);

/// A key as memcached stores it ([`Inner::wire_key`]), handed to the client as it is: one per
/// key of a multi-key call, borrowed from the built key unless it had to be encoded.
struct Wire<'k>(Cow<'k, str>);

impl AsRef<[u8]> for Wire<'_> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::ops::Deref for Wire<'_> {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A namespace generation that could not be read, and the server that holds its counter.
struct Unread<'s> {
    server: &'s Server,
    error: McError,
}

/// What to remember of a write that left `value` in an item, sent at `epoch`: its CAS unique,
/// when memcached answered one (never 0: a server without CAS would ignore the guard) and
/// `value` is non-negative (memcached's arithmetic cannot add to a negative number).
fn remembered(answer: Option<&MetaValue>, value: i64, epoch: u64) -> Option<Remembered> {
    let cas = answer?.cas.filter(|&u| u != 0)?;
    (value >= 0).then_some(Remembered { cas, value, epoch })
}

/// A meta set answer asked for flags (`c`) comes back as a value even when nothing was
/// stored; its status is made an error again, as without flags.
fn stored(r: Result<Option<MetaValue>, ClientError>) -> Result<Option<MetaValue>, ClientError> {
    match r {
        Ok(Some(v)) => match v.status {
            None | Some(Status::Stored) => Ok(Some(v)),
            Some(s) => Err(ClientError::Protocol(s)),
        },
        r => r,
    }
}

/// The CAS unique of `key` when its value equals `expected`; `None` when the key is missing or
/// holds another value.
async fn cas_if_equal(
    c: &mut Conn<'_>,
    key: &str,
    expected: &[u8],
) -> Result<Option<u64>, McError> {
    let Some(current) = c
        .meta_get(key.as_bytes(), false, None, Some(&["v", "c"]))
        .await?
    else {
        return Ok(None);
    };
    if current.data.as_deref().unwrap_or_default() != expected {
        return Ok(None);
    }
    current
        .cas
        .map(Some)
        .ok_or_else(|| McError::Unexpected("no CAS token in a meta get answer".into()))
}

/// The timer a call needs of its own: the command timeout, unless the caller's deadline
/// ends the call first (the stack above enforces that one).
fn own_timeout(command_timeout: Option<Duration>, deadline: Option<Deadline>) -> Option<Duration> {
    let own = command_timeout?;
    match deadline {
        Some(d) if d.remaining() <= own => None,
        _ => Some(own),
    }
}

fn parse_generation(data: Option<&[u8]>) -> Result<u64, McError> {
    data.and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|s| s.trim_end_matches(' ').parse::<u64>().ok())
        .ok_or_else(|| McError::Unexpected("a namespace generation record is not a number".into()))
}

// The hot commands are written with `cache_core::in_place!`, so that their futures are built
// in their box: `#[async_trait]` would build each on the stack and copy it.
#[async_trait]
impl Backend for MemcachedBackend {
    fn name(&self) -> &'static str {
        "memcached"
    }

    fn capability(&self) -> Capability {
        self.inner.capability
    }

    fn endpoint(&self) -> Option<Endpoint> {
        self.inner.endpoint.clone()
    }

    cache_core::in_place! {
        fn get(&self, ctx, key) -> Result<Option<Bytes>> {
            let inner = &*self.inner;
            inner.check_open()?;
            let server = inner.server_for(key);
            let wire = match inner.wire_key(key, ctx.deadline()).await {
                Ok(w) => w,
                Err(u) => return inner.read_failed(u.server, u.error, None),
            };
            let r = inner
                .timed(ctx.deadline(), async {
                    let mut c = server.conn().await?;
                    Ok(c.get(wire.as_bytes()).await?)
                })
                .await;
            match r {
                Ok(v) => Ok(v.map(|v| Bytes::from(v.data.unwrap_or_default()))),
                Err(e) => inner.read_failed(server, e, None),
            }
        }
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = match inner.wire_key(key, ctx.deadline()).await {
            Ok(w) => w,
            Err(u) => return inner.read_failed(u.server, u.error, None),
        };
        // `mg <key> v t`: the value and its remaining lifetime in one answer
        let r = inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                c.meta_get(wire.as_bytes(), false, None, Some(VALUE_AND_TTL))
                    .await?
                    .map(entry)
                    .transpose()
            })
            .await;
        match r {
            Ok(e) => Ok(e),
            Err(e) => inner.read_failed(server, e, None),
        }
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        self.inner.multi_read(ctx, keys).await
    }

    cache_core::in_place! {
        fn multi_get(&self, ctx, keys) -> Result<Vec<Option<Bytes>>> {
            self.inner.multi_read(ctx, keys).await
        }
    }

    cache_core::in_place! {
        fn set(&self, ctx, key, value, op) -> Result<()> {
            let inner = &*self.inner;
            inner.check_open()?;
            let server = inner.server_for(key);
            let wire = inner
                .wire_key(key, ctx.deadline())
                .await
                .map_err(|u| inner.unread(u))?;
            inner
                .timed(ctx.deadline(), async {
                    let mut c = server.conn().await?;
                    Ok(
                        c.set(wire.as_bytes(), &value[..], Some(exptime(op.ttl)), None)
                            .await?,
                    )
                })
                .await
                .map_err(|e| inner.fail(server, e))
        }
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = inner
            .wire_key(key, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                match c
                    .add(wire.as_bytes(), &value[..], Some(exptime(op.ttl)), None)
                    .await
                {
                    Ok(()) => Ok(true),
                    Err(ClientError::Protocol(Status::NotStored)) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })
            .await
            .map_err(|e| inner.fail(server, e))
    }

    cache_core::in_place! {
        fn multi_set(&self, ctx, entries, op) -> Result<()> {
            let inner = &*self.inner;
            inner.check_open()?;
            if entries.is_empty() {
                return Ok(());
            }
            // no `T` flag without a TTL: `ms` then stores with exptime 0 (no expiry), as `T0`
            // would, and sends two writes less per item
            let ttl = op.ttl.map(|_| format!("T{}", exptime(op.ttl)));
            let flag = [ttl.as_deref().unwrap_or_default()];
            let flags = ttl.is_some().then_some(&flag[..]);
            if inner.servers.len() == 1 && inner.generations.is_none() {
                // one server, keys known without I/O: one pipeline, no grouping
                let items: Vec<(Wire<'_>, &[u8])> = entries
                    .iter()
                    .map(|(k, v)| (Wire(keys::encode(k)), &v[..]))
                    .collect();
                let server = &inner.servers[0];
                return inner
                    .timed(ctx.deadline(), set_items(server, &items, flags))
                    .await
                    .map_err(|e| inner.fail(server, e));
            }
            let built: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            let wires = inner
                .wire_keys(&built, ctx.deadline())
                .await
                .map_err(|u| inner.unread(u))?;
            let groups = inner.split(&built);
            let calls: Vec<_> = groups
                .into_iter()
                .map(|(s, positions)| {
                    inner.set_group(ctx.deadline(), s, positions, &wires, entries, flags)
                })
                .collect();
            inner.first_error(join_all(calls).await).map(|_| ())
        }
    }

    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = inner
            .wire_key(key, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                match c.delete(wire.as_bytes()).await {
                    Ok(()) => Ok(true),
                    Err(ClientError::Protocol(Status::NotFound)) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })
            .await
            .map_err(|e| inner.fail(server, e))
    }

    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        let inner = &*self.inner;
        inner.check_open()?;
        if keys.is_empty() {
            return Ok(0);
        }
        let wires = inner
            .wire_keys(keys, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        let groups = inner.split(keys);
        let calls: Vec<_> = groups
            .into_iter()
            .map(|(s, positions)| inner.delete_group(ctx.deadline(), s, positions, &wires))
            .collect();
        let counts = inner.first_error(join_all(calls).await)?;
        Ok(counts.into_iter().map(|(_, n)| n).sum())
    }

    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = match inner.wire_key(key, ctx.deadline()).await {
            Ok(w) => w,
            Err(u) => return inner.read_failed(u.server, u.error, false),
        };
        // `mg <key> s`: reads the item's size only; no value transfer, no write, CAS unchanged
        let r = inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                Ok(c.meta_get(wire.as_bytes(), false, None, Some(&["s"]))
                    .await?
                    .is_some())
            })
            .await;
        match r {
            Ok(b) => Ok(b),
            Err(e) => inner.read_failed(server, e, false),
        }
    }

    cache_core::in_place! {
        fn increment(&self, ctx, key, delta) -> Result<i64> {
            let inner = &*self.inner;
            inner.check_open()?;
            let server = inner.server_for(key);
            let wire = inner
                .wire_key(key, ctx.deadline())
                .await
                .map_err(|u| inner.unread(u))?;
            inner
                .timed(ctx.deadline(), async {
                    // the counter's memory first, then a connection: an increment waiting for
                    // another one of the same key holds no connection
                    let slot = server.counter_slot(&wire);
                    let mut memory = slot.lock().await;
                    let mut c = server.conn().await?;
                    inner.increment_on(&mut c, &wire, delta, &mut memory).await
                })
                .await
                .map_err(|e| inner.fail(server, e))
        }
    }

    async fn expire(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = inner
            .wire_key(key, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        let touch = format!("T{}", exptime(ttl));
        inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                Ok(
                    c.meta_get(wire.as_bytes(), false, None, Some(&[touch.as_str(), "t"]))
                        .await?
                        .is_some(),
                )
            })
            .await
            .map_err(|e| inner.fail(server, e))
    }

    async fn ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = match inner.wire_key(key, ctx.deadline()).await {
            Ok(w) => w,
            Err(u) => return inner.read_failed(u.server, u.error, KeyTtl::Missing),
        };
        let r = inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                Ok(c.meta_get(wire.as_bytes(), false, None, Some(&["t"]))
                    .await?)
            })
            .await;
        match r {
            Ok(None) => Ok(KeyTtl::Missing),
            Ok(Some(v)) => Ok(key_ttl(v.ttl_remaining)),
            Err(e) => inner.read_failed(server, e, KeyTtl::Missing),
        }
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = inner
            .wire_key(key, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        let exptime = exptime(op.ttl);
        inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                match &expected {
                    None => match c.add(wire.as_bytes(), &new[..], Some(exptime), None).await {
                        Ok(()) => Ok(true),
                        Err(ClientError::Protocol(Status::NotStored)) => Ok(false),
                        Err(e) => Err(e.into()),
                    },
                    Some(expected) => {
                        inner
                            .compare_and_set_on(&mut c, &wire, expected, &new, exptime)
                            .await
                    }
                }
            })
            .await
            .map_err(|e| inner.fail(server, e))
    }

    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let inner = &*self.inner;
        inner.check_open()?;
        let server = inner.server_for(key);
        let wire = inner
            .wire_key(key, ctx.deadline())
            .await
            .map_err(|u| inner.unread(u))?;
        inner
            .timed(ctx.deadline(), async {
                let mut c = server.conn().await?;
                inner.compare_and_delete_on(&mut c, &wire, &expected).await
            })
            .await
            .map_err(|e| inner.fail(server, e))
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        let inner = &*self.inner;
        inner.check_open()?;
        match scope {
            ClearScope::All => {
                let calls: Vec<_> = (0..inner.servers.len())
                    .map(|s| inner.flush_server(ctx.deadline(), s))
                    .collect();
                let r = inner.first_error(join_all(calls).await);
                if let Some(g) = &inner.generations {
                    g.forget_all();
                }
                r.map(|_| None)
            }
            ClearScope::Namespace { namespace, prefix } => {
                let Some(generations) = &inner.generations else {
                    return Err(Error::unsupported(
                        "memcached cannot list or delete keys by prefix; enable \
                         namespace_generations to clear one namespace",
                    )
                    .with_context("namespace", namespace));
                };
                if !is_group(prefix) {
                    return Err(Error::unsupported(format!(
                        "namespace generations scope keys by their text up to the first ':'; \
                         the key builder's prefix {prefix:?} has another shape"
                    ))
                    .with_context("namespace", namespace));
                }
                inner
                    .read_generation(generations, prefix, true, ctx.deadline())
                    .await
                    .map_err(|u| inner.unread(u))?;
                Ok(None)
            }
        }
    }

    async fn raw(
        &self,
        ctx: &CallContext<'_>,
        command: &str,
        args: &[RawValue],
    ) -> Result<RawValue> {
        let inner = &*self.inner;
        inner.check_open()?;
        crate::raw::run(self, ctx.deadline(), command, args).await
    }

    async fn close(&self, _ctx: &CallContext<'_>) -> Result<()> {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            for s in &self.inner.servers {
                s.close();
            }
        }
        Ok(())
    }
}

/// What [`crate::raw`] needs from the backend.
impl MemcachedBackend {
    pub(crate) fn raw_server(&self, key: &[u8]) -> &Server {
        match &self.inner.ring {
            None => &self.inner.servers[0],
            Some(ring) => &self.inner.servers[ring.server_for(key)],
        }
    }

    pub(crate) fn raw_servers(&self) -> &[Server] {
        &self.inner.servers
    }

    pub(crate) async fn raw_timed<T>(
        &self,
        deadline: Option<Deadline>,
        server: &Server,
        fut: impl Future<Output = Result<T, McError>>,
    ) -> Result<T> {
        self.inner
            .timed(deadline, fut)
            .await
            .map_err(|e| self.inner.fail(server, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_runs_one_timer_the_sooner_of_the_deadline_and_the_command_timeout() {
        let short = Duration::from_millis(250);
        let soon = Some(Deadline::after(Duration::from_millis(100)));
        let late = Some(Deadline::after(Duration::from_secs(5)));
        assert_eq!(own_timeout(None, soon), None, "no command timeout");
        assert_eq!(own_timeout(None, None), None);
        assert_eq!(
            own_timeout(Some(short), None),
            Some(short),
            "no deadline above"
        );
        assert_eq!(
            own_timeout(Some(short), soon),
            None,
            "the deadline above ends the call first"
        );
        assert_eq!(
            own_timeout(Some(short), late),
            Some(short),
            "the command timeout is sooner"
        );
    }

    #[test]
    fn ttl_conversion_rounds_up_and_adds_the_clock_second() {
        assert_eq!(exptime(None), 0);
        assert_eq!(exptime(Some(Duration::from_millis(1))), 2);
        assert_eq!(exptime(Some(Duration::from_secs(1))), 2);
        assert_eq!(exptime(Some(Duration::from_millis(1200))), 3);
        assert_eq!(exptime(Some(Duration::from_secs(30))), 31);
        let month = Duration::from_secs(RELATIVE_TTL_LIMIT - 1);
        assert_eq!(exptime(Some(month)), RELATIVE_TTL_LIMIT as i64);
        let long = exptime(Some(Duration::from_secs(RELATIVE_TTL_LIMIT)));
        let now = unix_now() as i64;
        assert!(
            (now + RELATIVE_TTL_LIMIT as i64..=now + RELATIVE_TTL_LIMIT as i64 + 3).contains(&long)
        );
    }

    #[test]
    fn reported_ttl_takes_the_clock_second_off() {
        assert_eq!(key_ttl(Some(-1)), KeyTtl::NoExpiry);
        assert_eq!(key_ttl(None), KeyTtl::NoExpiry);
        assert_eq!(
            key_ttl(Some(31)),
            KeyTtl::Remaining(Duration::from_secs(30))
        );
        assert_eq!(key_ttl(Some(1)), KeyTtl::Remaining(Duration::from_secs(1)));
        assert_eq!(key_ttl(Some(0)), KeyTtl::Remaining(Duration::from_secs(1)));
    }

    #[test]
    fn counters_parse_strictly() {
        let p = |s: &str| parse_counter(Some(s.as_bytes()));
        assert_eq!(p("42"), Some(42));
        assert_eq!(p("-5"), Some(-5));
        assert_eq!(p("9 "), Some(9), "padding left by a native decr");
        assert_eq!(p("0"), Some(0));
        for bad in [
            "",
            "-",
            "-0",
            "007",
            "+1",
            "1.5",
            "\"5\"",
            " 5",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(parse_counter(None), None);
    }

    #[test]
    fn align_matches_in_order_and_out_of_order() {
        let v = |k: &str, d: &'static str| (k.as_bytes().to_vec(), Bytes::from(d));
        let keys = ["a", "b", "a", "c"];
        let got = align(&keys, vec![v("a", "1"), v("a", "1"), v("c", "3")]);
        assert_eq!(
            got,
            vec![Some("1".into()), None, Some("1".into()), Some("3".into())]
        );
        let got = align(&keys, vec![v("c", "3"), v("a", "1")]);
        assert_eq!(
            got,
            vec![Some("1".into()), None, Some("1".into()), Some("3".into())]
        );
    }

    #[test]
    fn an_entry_takes_its_lifetime_from_the_t_flag() {
        let answer = |data: Option<&str>, t: Option<i64>| MetaValue {
            data: data.map(|d| d.as_bytes().to_vec()),
            ttl_remaining: t,
            ..MetaValue::default()
        };
        let e = entry(answer(Some("v"), Some(31))).unwrap();
        assert_eq!(e, Entry::new("v".into(), Some(Duration::from_secs(30))));
        let e = entry(answer(Some("v"), Some(-1))).unwrap();
        assert_eq!(e, Entry::new("v".into(), None), "-1: no expiry");
        for t in [0, 1, 2] {
            let e = entry(answer(Some("v"), Some(t))).unwrap();
            assert_eq!(
                e.ttl,
                Some(Duration::from_secs(1)),
                "a live key: at least 1 s"
            );
        }
        let e = entry(answer(None, Some(5))).unwrap();
        assert_eq!(e.value, Bytes::new(), "an empty value has no data block");
        for bad in [answer(Some("v"), None), answer(Some("v"), Some(-2))] {
            let e = entry(bad).unwrap_err();
            assert!(matches!(e, McError::Unexpected(_)), "{e:?}");
            assert!(e.to_string().contains("t flag"), "{e}");
        }
    }
}
