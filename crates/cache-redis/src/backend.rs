//! [`RedisBackend`]: the [`Backend`] contract mapped onto Redis commands.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, CallContext, Capability, ClearScope, Error, KeyTtl, OpSet, RawValue, Result,
};
use fred::clients::WithOptions;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Client, Expiration, Key, Options, Server, SetOptions, Value};
use fred::types::{ClusterHash, ConnectHandle, CustomCommand, FromValue, MultipleKeys, Resp3Frame};
use fred::util::redis_keyslot;
use tokio::task::JoinSet;

use crate::config::{RedisConfig, RedisMode};
use crate::error::{self, is_noscript};

/// The longest TTL accepted: 100 years. Longer TTLs are refused with `InvalidArgument`; an
/// entry that should not expire uses `Ttl::Never`.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Redis's limit on a string value (`proto-max-bulk-len` default).
const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// How many times a write that never left the client is issued again (see
/// [`unsent_again!`]), and the first and longest pause before doing so.
const UNSENT_RETRIES: u32 = 8;
const UNSENT_PAUSE: Duration = Duration::from_millis(1);
const UNSENT_MAX_PAUSE: Duration = Duration::from_millis(100);

/// Awaits `$write` (an `async` block making one write), and again while it fails without
/// having left the client: fred had no connection to write it to (the connection had just
/// broken and its replacement was not under way yet). Such a write cannot have reached the
/// server, so issuing it again cannot reorder it; it queues for the new connection like any
/// command issued while one is being made. A write that was sent is never re-sent. Bounded by
/// the call's deadline (the timeout layer drops the call) and by [`UNSENT_RETRIES`].
macro_rules! unsent_again {
    ($write:expr) => {{
        let mut pause = UNSENT_PAUSE;
        let mut retries = 0;
        loop {
            match $write.await {
                Err(e) if retries < UNSENT_RETRIES && error::never_sent(&e) => {
                    retries += 1;
                    // fred asks for the new connection just after answering: let it
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(UNSENT_MAX_PAUSE);
                }
                done => break done,
            }
        }
    }};
}

/// Keys asked of `SCAN` per page during `clear`; each page's matches are unlinked at once.
const SCAN_COUNT: u32 = 1000;

/// Nesting depth of a raw reply converted to [`RawValue`] (a guard against hostile replies).
const MAX_RAW_DEPTH: usize = 64;

/// A Lua script sent as `EVALSHA`, falling back to `EVAL` when the server does not know it
/// (after a restart or `SCRIPT FLUSH`). Sent as custom commands, which every fred client type
/// (options, pipelines) supports.
#[derive(Debug)]
struct Script {
    lua: &'static str,
    /// SHA-1 of `lua` in hex, as `SCRIPT LOAD` answers it (checked by a unit test).
    sha1: &'static str,
}

/// `EVALSHA` / `EVAL`, routed on a cluster to the slot of the script's keys (fred hashes a
/// custom command by its first argument, here the script, unless given the slot).
fn script_command(by_hash: bool, keys: &[Key]) -> CustomCommand {
    let name = if by_hash { "EVALSHA" } else { "EVAL" };
    let hash = match keys.first() {
        Some(key) => ClusterHash::Custom(redis_keyslot(key.as_bytes())),
        None => ClusterHash::Random,
    };
    CustomCommand::new_static(name, hash, false)
}

/// The arguments of `EVAL`/`EVALSHA`: script, key count, keys, arguments.
fn script_args(script: Value, keys: Vec<Key>, args: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(2 + keys.len() + args.len());
    out.push(script);
    out.push(Value::Integer(keys.len() as i64));
    out.extend(keys.into_iter().map(|k| Value::Bytes(k.into_bytes())));
    out.extend(args);
    out
}

/// `compare_and_set` with an expected value, as a [`Script`].
const CAS: Script = Script {
    lua: CAS_LUA,
    sha1: "cd85d25289d4cecfb3703518ecd9cc28cc072c94",
};

/// `compare_and_delete`, as a [`Script`].
const CAD: Script = Script {
    lua: CAD_LUA,
    sha1: "b6a796aa8d73bb4ce6e26afe648196d086a8d1f1",
};

/// `expire(key, None)`, as a [`Script`].
const PERSIST: Script = Script {
    lua: PERSIST_LUA,
    sha1: "f0f51002038002ef83d61771704fe9b1c0ec5751",
};

/// `multi_set` with a TTL, as a [`Script`].
const SET_MANY_PX: Script = Script {
    lua: SET_MANY_PX_LUA,
    sha1: "f4820aa0625d3c22a2de11a2162222155ee2d9a3",
};

/// `compare_and_set` with an expected value. KEYS[1] = key; ARGV = expected, new value, TTL
/// in milliseconds or empty for none. Returns 1 when it wrote, 0 when the value differed or
/// the key was missing.
const CAS_LUA: &str = r"local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1";

/// `compare_and_delete`: KEYS[1] = key, ARGV[1] = expected value. Returns 1 when it
/// removed the key, 0 when the value differed or the key was missing.
const CAD_LUA: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// `expire(key, None)`: removes the expiry and answers whether the key exists (`PERSIST`
/// alone answers 0 both for a missing key and for a key without expiry).
const PERSIST_LUA: &str = r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1";

/// `multi_set` with a TTL, atomically: ARGV[1] = TTL in milliseconds, ARGV[i + 1] = value of
/// KEYS[i]. Equivalent to `MSET` followed by `PEXPIRE` of every key, in one step.
const SET_MANY_PX_LUA: &str = r"local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ttl)
end
return #KEYS";

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
    clustered: bool,
    /// Options of every command that writes (`set`, `multi_set`, `add`, `increment`,
    /// `expire`, CAS, deletes, raw): one attempt, never re-sent after a connection broke with
    /// the command in flight. A re-sent `set` could land after a later `delete` or `set` of
    /// the key that went over another, healthy connection of the pool, and bring back a
    /// value that was invalidated.
    once: Options,
    closed: AtomicBool,
    tasks: Mutex<Vec<ConnectHandle>>,
    /// How long `close` waits for `QUIT`.
    close_timeout: Duration,
    server: String,
    mode: RedisMode,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("server", &self.server)
            .field("mode", &self.mode)
            .field("pool_size", &self.clients.len())
            .field("closed", &self.closed.load(Ordering::Relaxed))
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
    pub(crate) fn new(
        clients: Vec<Client>,
        tasks: Vec<ConnectHandle>,
        config: &RedisConfig,
    ) -> Self {
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
            mode: config.mode,
        }
    }

    /// Where this backend is connected (scheme, hosts, database; no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The deployment mode.
    pub fn mode(&self) -> RedisMode {
        self.mode
    }

    /// The next connection, or `Closed`.
    #[inline]
    fn client(&self) -> Result<&Client> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(error::closed());
        }
        Ok(if self.clients.len() == 1 {
            &self.clients[0]
        } else {
            &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len()]
        })
    }

    /// The connection that carries every write of `key`, or `Closed`. Writes of one key
    /// always go over one connection of the pool, so they reach the server in the order they
    /// were made, also across a reconnect: a write that waits for its broken connection to be
    /// replaced cannot land after a later `delete` or `set` of the key sent over another one.
    #[inline]
    fn client_for(&self, key: &str) -> Result<&Client> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(error::closed());
        }
        Ok(if self.clients.len() == 1 {
            &self.clients[0]
        } else {
            &self.clients[usize::from(redis_keyslot(key.as_bytes())) % self.clients.len()]
        })
    }

    /// Converts a fred error, or reports `Closed` if the backend was closed meanwhile.
    #[cold]
    fn fail(&self, err: FredError) -> Error {
        if self.closed.load(Ordering::Relaxed) {
            error::closed()
        } else {
            error::convert(err)
        }
    }

    /// Converts an error of `INCRBY`: an overflow or a value that is not an integer is the
    /// caller's `InvalidArgument`.
    fn increment_error(&self, e: FredError) -> Error {
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
        let (by_hash, by_text) = (script_command(true, &keys), script_command(false, &keys));
        let sha1 = Value::Bytes(Bytes::from_static(script.sha1.as_bytes()));
        let mut argv = script_args(sha1, keys, args);
        match client.custom::<R, Value>(by_hash, argv.clone()).await {
            Err(e) if is_noscript(&e) => {
                argv[0] = Value::Bytes(Bytes::from_static(script.lua.as_bytes()));
                client
                    .custom::<R, Value>(by_text, argv)
                    .await
                    .map_err(|e| self.fail(e))
            }
            other => other.map_err(|e| self.fail(e)),
        }
    }

    /// Primaries of the cluster (from fred's cached routing table).
    fn primaries(&self, client: &Client) -> Result<Vec<Server>> {
        let nodes = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if nodes.is_empty() {
            Err(Error::new(
                cache_core::ErrorKind::Connection,
                "the redis cluster's primaries are not known yet",
            )
            .with_context("backend", "redis"))
        } else {
            Ok(nodes)
        }
    }

    /// `multi_get` on a cluster: one `MGET` per hash slot, all in one pipeline (concurrent
    /// round trips to the nodes), answers put back in the caller's order.
    async fn cluster_multi_get(
        &self,
        client: &Client,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let groups = group_by_slot(keys.iter().map(String::as_bytes));
        if groups.len() == 1 {
            return self.mget(client, keys.iter().map(String::as_str)).await;
        }
        let pipeline = client.pipeline();
        for group in &groups {
            let keys: MultipleKeys = group.iter().map(|&i| keys[i].as_str()).collect();
            let () = pipeline.mget(keys).await.map_err(|e| self.fail(e))?;
        }
        let answers = pipeline.try_all::<Vec<Option<Bytes>>>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        let mut out = vec![None; keys.len()];
        for (group, answer) in groups.iter().zip(answers) {
            let values = answer.map_err(|e| self.fail(e))?;
            if values.len() != group.len() {
                return Err(error::unexpected(format!(
                    "MGET of {} keys answered {} values",
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

    async fn mget<'k>(
        &self,
        client: &Client,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<Vec<Option<Bytes>>> {
        let keys: MultipleKeys = keys.collect();
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

    /// `UNLINK` of `keys`: one command, or one per hash slot in one pipeline on a cluster.
    async fn unlink(&self, client: &Client, keys: Vec<Key>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let once = client.with_options(&self.once);
        let groups = if self.clustered {
            group_by_slot(keys.iter().map(Key::as_bytes))
        } else {
            Vec::new()
        };
        if groups.len() <= 1 {
            let n: i64 =
                unsent_again!(async { once.unlink(keys.clone()).await.map_err(|e| self.fail(e)) })?;
            return Ok(n.max(0) as u64);
        }
        let pipeline = once.pipeline();
        for group in &groups {
            let slot_keys: Vec<Key> = group.iter().map(|&i| keys[i].clone()).collect();
            let () = pipeline.unlink(slot_keys).await.map_err(|e| self.fail(e))?;
        }
        let answers = pipeline.try_all::<i64>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        let mut total = 0u64;
        for answer in answers {
            total += answer.map_err(|e| self.fail(e))?.max(0) as u64;
        }
        Ok(total)
    }

    /// Writes `entries` (one hash slot, or any keys on a standalone server) atomically.
    async fn set_many(
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
                let pairs: Vec<(Key, Value)> = entries
                    .iter()
                    .map(|(k, v)| (Key::from(k.as_str()), Value::Bytes(v.clone())))
                    .collect();
                client.mset(pairs).await.map_err(|e| self.fail(e))
            }
            (n, Some(ttl)) => {
                let mut keys = Vec::with_capacity(n);
                let mut args = Vec::with_capacity(n + 1);
                args.push(Value::Integer(millis(ttl)));
                for (k, v) in entries {
                    keys.push(Key::from(k.as_str()));
                    args.push(Value::Bytes(v.clone()));
                }
                let _: Value = self.eval(client, &SET_MANY_PX, keys, args).await?;
                Ok(())
            }
        }
    }

    /// `multi_set` on a cluster: atomic per hash slot, the slots written concurrently in one
    /// pipeline.
    async fn cluster_multi_set(
        &self,
        client: &WithOptions<Client>,
        entries: &[(String, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let groups = group_by_slot(entries.iter().map(|(k, _)| k.as_bytes()));
        if groups.len() == 1 {
            return self.set_many(client, entries, ttl).await;
        }
        let mut slots: Vec<Option<(String, Bytes)>> = entries.iter().cloned().map(Some).collect();
        let pipeline = client.pipeline();
        for group in &groups {
            let mut take = group.iter().filter_map(|&i| slots[i].take());
            if group.len() == 1 {
                if let Some((key, value)) = take.next() {
                    let () = pipeline
                        .set(key, value, ttl.map(px), None, false)
                        .await
                        .map_err(|e| self.fail(e))?;
                }
                continue;
            }
            match ttl {
                None => {
                    let pairs: Vec<(Key, Value)> =
                        take.map(|(k, v)| (Key::from(k), Value::Bytes(v))).collect();
                    pipeline.mset(pairs).await.map_err(|e| self.fail(e))?;
                }
                Some(ttl) => {
                    let mut keys = Vec::with_capacity(group.len());
                    let mut args = Vec::with_capacity(group.len() + 1);
                    args.push(Value::Integer(millis(ttl)));
                    for (k, v) in take {
                        keys.push(Key::from(k));
                        args.push(Value::Bytes(v));
                    }
                    // EVAL, not EVALSHA: a pipeline cannot fall back per command
                    let lua = Value::Bytes(Bytes::from_static(SET_MANY_PX_LUA.as_bytes()));
                    let command = script_command(false, &keys);
                    let () = pipeline
                        .custom(command, script_args(lua, keys, args))
                        .await
                        .map_err(|e| self.fail(e))?;
                }
            }
        }
        let answers = pipeline.try_all::<Value>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        for answer in answers {
            answer.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// `clear` of one namespace: every key matching `prefix*` (glob characters of the
    /// prefix escaped), found by a cursor-complete `SCAN` on every primary and removed with
    /// `UNLINK` page by page.
    async fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        let client = self.client()?;
        let pattern = format!("{}*", glob_escape(prefix));
        if !self.clustered {
            return self.scan_unlink(client, &pattern).await;
        }
        let mut nodes = JoinSet::new();
        for node in self.primaries(client)? {
            let client = client.clone();
            let pattern = pattern.clone();
            let once = self.once.clone();
            nodes.spawn(async move { scan_unlink_node(client, node, pattern, once).await });
        }
        let mut total = 0;
        while let Some(done) = nodes.join_next().await {
            let removed = done
                .map_err(|e| error::unexpected(format!("a clear task failed: {e}")))?
                .map_err(|e| self.fail(e))?;
            total += removed;
        }
        Ok(total)
    }

    /// The `SCAN` + `UNLINK` loop on a standalone server.
    async fn scan_unlink(&self, client: &Client, pattern: &str) -> Result<u64> {
        let mut cursor = String::from("0");
        let mut removed = 0;
        loop {
            let (next, keys): (String, Vec<Key>) = client
                .scan_page(cursor, pattern, Some(SCAN_COUNT), None)
                .await
                .map_err(|e| self.fail(e))?;
            removed += self.unlink(client, keys).await?;
            if next == "0" {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn flush_all(&self) -> Result<()> {
        let client = self.client()?;
        let flushdb = || CustomCommand::new_static("FLUSHDB", ClusterHash::Random, false);
        if !self.clustered {
            return client
                .custom::<(), _>(flushdb(), vec!["ASYNC"])
                .await
                .map_err(|e| self.fail(e));
        }
        for node in self.primaries(client)? {
            client
                .with_cluster_node(node)
                .custom::<(), _>(flushdb(), vec!["ASYNC"])
                .await
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

/// The `SCAN` + `UNLINK` loop on one cluster primary (a task of its own).
async fn scan_unlink_node(
    client: Client,
    node: Server,
    pattern: String,
    once: Options,
) -> Result<u64, FredError> {
    let on_node = client.with_cluster_node(node);
    let mut cursor = String::from("0");
    let mut removed = 0u64;
    loop {
        let (next, keys): (String, Vec<Key>) = on_node
            .scan_page(cursor, pattern.as_str(), Some(SCAN_COUNT), None)
            .await?;
        if !keys.is_empty() {
            // keys of one node still span many slots: one UNLINK per slot
            let groups = group_by_slot(keys.iter().map(Key::as_bytes));
            let pipeline = client.with_options(&once).pipeline();
            for group in &groups {
                let slot_keys: Vec<Key> = group.iter().map(|&i| keys[i].clone()).collect();
                let () = pipeline.unlink(slot_keys).await?;
            }
            for answer in pipeline.try_all::<i64>().await {
                removed += answer?.max(0) as u64;
            }
        }
        if next == "0" {
            return Ok(removed);
        }
        cursor = next;
    }
}

fn first_error<T>(
    answers: Vec<Result<T, FredError>>,
    convert: impl Fn(FredError) -> Error,
) -> Option<Error> {
    answers.into_iter().find_map(|a| a.err()).map(convert)
}

/// Indices of `keys` grouped by cluster hash slot, groups in order of first appearance and
/// indices in the caller's order within a group.
fn group_by_slot<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<usize>> {
    let mut by_slot: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, key) in keys.enumerate() {
        let slot = redis_keyslot(key);
        let g = *by_slot.entry(slot).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// Escapes the `SCAN MATCH` glob characters `* ? [ ] \` so that `prefix` matches literally.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A TTL in whole milliseconds, rounded up (never expires early), at least 1.
fn millis(ttl: Duration) -> i64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[inline]
fn px(ttl: Duration) -> Expiration {
    Expiration::PX(millis(ttl))
}

/// Commands `raw` refuses: they change the state of the shared connection (database,
/// protocol, subscriptions, transactions) or block it for every other caller.
const REFUSED_RAW: &[&str] = &[
    "AUTH",
    "HELLO",
    "SELECT",
    "QUIT",
    "RESET",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
];

fn check_raw(name: &str, args: &[RawValue]) -> Result<()> {
    let mut words = name.split_ascii_whitespace();
    let first = words
        .next()
        .ok_or_else(|| Error::invalid_argument("the raw command name is empty"))?
        .to_ascii_uppercase();
    let refused = || {
        Err(Error::invalid_argument(format!(
            "{first} changes or blocks the connection every cache call shares and cannot run \
             through raw(); use a dedicated redis client for it"
        )))
    };
    if REFUSED_RAW.contains(&first.as_str()) {
        return refused();
    }
    if first == "CLIENT"
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("REPLY") || w.eq_ignore_ascii_case("TRACKING"))
    {
        return refused();
    }
    if matches!(first.as_str(), "XREAD" | "XREADGROUP")
        && args
            .iter()
            .any(|a| a.as_str().is_some_and(|s| s.eq_ignore_ascii_case("BLOCK")))
    {
        return refused();
    }
    Ok(())
}

fn raw_arg(arg: RawValue) -> Result<Value> {
    Ok(match arg {
        RawValue::Bytes(b) => Value::Bytes(b),
        RawValue::Text(s) => Value::Bytes(Bytes::from(s)),
        RawValue::Int(i) => Value::Integer(i),
        RawValue::Float(f) => Value::Double(f),
        RawValue::Nil | RawValue::Bool(_) | RawValue::Array(_) | RawValue::Map(_) => {
            return Err(Error::invalid_argument(
                "raw redis arguments are bytes, text, integers or floats; nil, booleans, \
                 arrays and maps have no redis form",
            ));
        }
    })
}

/// A reply frame as a [`RawValue`]: bulk strings are `Bytes`, simple strings `Text`.
pub(crate) fn raw_reply(frame: Resp3Frame, depth: usize) -> Result<RawValue> {
    if depth > MAX_RAW_DEPTH {
        return Err(error::unexpected("the redis reply is nested too deeply"));
    }
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    Ok(match frame {
        Resp3Frame::BlobString { data, .. } => RawValue::Bytes(data),
        Resp3Frame::SimpleString { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::VerbatimString { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::BigNumber { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::Number { data, .. } => RawValue::Int(data),
        Resp3Frame::Double { data, .. } => RawValue::Float(data),
        Resp3Frame::Boolean { data, .. } => RawValue::Bool(data),
        Resp3Frame::Null => RawValue::Nil,
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => RawValue::Array(
            data.into_iter()
                .map(|f| raw_reply(f, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::Set { data, .. } => RawValue::Array(
            data.into_iter()
                .map(|f| raw_reply(f, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::Map { data, .. } => RawValue::Map(
            data.into_iter()
                .map(|(k, v)| Ok((raw_reply(k, depth + 1)?, raw_reply(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::SimpleError { data, .. } => {
            return Err(error::convert(FredError::new(
                fred::error::ErrorKind::Unknown,
                data.to_string(),
            )));
        }
        Resp3Frame::BlobError { data, .. } => {
            return Err(error::convert(FredError::new(
                fred::error::ErrorKind::Unknown,
                text(data),
            )));
        }
        Resp3Frame::Hello { .. } | Resp3Frame::ChunkedString(_) => {
            return Err(error::unexpected("unexpected frame in a redis reply"));
        }
    })
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
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

    async fn get(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        self.client()?
            .get::<Option<Bytes>, _>(key)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn multi_get(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client()?;
        if self.clustered {
            self.cluster_multi_get(client, keys).await
        } else {
            self.mget(client, keys.iter().map(String::as_str)).await
        }
    }

    async fn set(&self, _ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        let client = self.client_for(key)?.with_options(&self.once);
        unsent_again!(async {
            client
                .set::<(), _, _>(key, value.clone(), op.ttl.map(px), None, false)
                .await
                .map_err(|e| self.fail(e))
        })
    }

    async fn add(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        value: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let client = self.client_for(key)?.with_options(&self.once);
        let reply: Value = unsent_again!(async {
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
        })?;
        Ok(!reply.is_null())
    }

    async fn multi_set(
        &self,
        _ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let client = self.client_for(&entries[0].0)?.with_options(&self.once);
        if self.clustered {
            self.cluster_multi_set(&client, entries, op.ttl).await
        } else {
            unsent_again!(async { self.set_many(&client, entries, op.ttl).await })
        }
    }

    async fn delete(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let client = self.client_for(key)?.with_options(&self.once);
        let n: i64 = unsent_again!(async { client.unlink(key).await.map_err(|e| self.fail(e)) })?;
        Ok(n > 0)
    }

    async fn multi_delete(&self, _ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let client = self.client_for(&keys[0])?;
        self.unlink(client, keys.iter().map(|k| Key::from(k.as_str())).collect())
            .await
    }

    async fn exists(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let n: i64 = self.client()?.exists(key).await.map_err(|e| self.fail(e))?;
        Ok(n > 0)
    }

    async fn increment(&self, _ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        let client = self.client_for(key)?.with_options(&self.once);
        unsent_again!(async {
            let result: Result<i64, FredError> = client.incr_by(key, delta).await;
            result.map_err(|e| self.increment_error(e))
        })
    }

    async fn expire(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let client = self.client_for(key)?.with_options(&self.once);
        let n: i64 = unsent_again!(async {
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
        })?;
        Ok(n == 1)
    }

    async fn ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self.client()?.pttl(key).await.map_err(|e| self.fail(e))?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::NoExpiry,
            // PTTL is 0 in the millisecond a key expires, while it is still there: a live key
            // reports at least 1 ms, as on the memory backend (memcached: 1 s)
            ms if ms >= 0 => KeyTtl::Remaining(Duration::from_millis(ms.max(1) as u64)),
            other => return Err(error::unexpected(format!("PTTL answered {other}"))),
        })
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
        let client = self.client_for(key)?.with_options(&self.once);
        let ttl = match op.ttl {
            Some(ttl) => Value::Integer(millis(ttl)),
            None => Value::Bytes(Bytes::new()),
        };
        let n: i64 = unsent_again!(async {
            let args = vec![
                Value::Bytes(expected.clone()),
                Value::Bytes(new.clone()),
                ttl.clone(),
            ];
            self.eval(&client, &CAS, vec![Key::from(key)], args).await
        })?;
        Ok(n == 1)
    }

    async fn compare_and_delete(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let client = self.client_for(key)?.with_options(&self.once);
        let n: i64 = unsent_again!(async {
            let args = vec![Value::Bytes(expected.clone())];
            self.eval(&client, &CAD, vec![Key::from(key)], args).await
        })?;
        Ok(n == 1)
    }

    async fn clear(&self, _ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        match scope {
            ClearScope::Namespace { prefix, .. } => self.clear_prefix(prefix).await.map(Some),
            ClearScope::All => self.flush_all().await.map(|()| None),
        }
    }

    async fn raw(
        &self,
        _ctx: &CallContext<'_>,
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
        let client = self.client()?.with_options(&self.once);
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

    /// SHA-1 (FIPS 180-4), only to check the script hashes without a dependency.
    fn sha1_hex(data: &[u8]) -> String {
        let mut h: [u32; 5] = [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                    20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                    _ => (b ^ c ^ d, 0xCA62_C1D6),
                };
                let t = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
                *x = x.wrapping_add(y);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    #[test]
    fn script_hashes_match_their_text() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        for script in [CAS, CAD, PERSIST, SET_MANY_PX] {
            assert_eq!(
                script.sha1,
                sha1_hex(script.lua.as_bytes()),
                "{}",
                script.lua
            );
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("ns:"), "ns:");
        assert_eq!(glob_escape("a*?[b]\\:"), "a\\*\\?\\[b\\]\\\\:");
    }

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(millis(Duration::from_nanos(1)), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
        assert_eq!(millis(MAX_TTL), 3_153_600_000_000);
    }

    #[test]
    fn slot_groups_keep_caller_order() {
        let keys = ["{a}1", "b", "{a}2", "c", "b"];
        let groups = group_by_slot(keys.iter().map(|k| k.as_bytes()));
        assert_eq!(groups[0], vec![0, 2]);
        assert_eq!(groups[1], vec![1, 4]);
        let flat: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(flat, keys.len());
    }

    #[test]
    fn raw_refuses_connection_state_and_blocking_commands() {
        for cmd in [
            "select",
            "SUBSCRIBE",
            "blpop",
            "multi",
            "client reply",
            " quit ",
        ] {
            let e = check_raw(cmd, &[]).unwrap_err();
            assert_eq!(e.kind(), cache_core::ErrorKind::InvalidArgument, "{cmd}");
        }
        assert!(check_raw("XREAD", &["block".into(), "0".into()]).is_err());
        assert!(check_raw("XREAD", &["COUNT".into(), "1".into()]).is_ok());
        assert!(check_raw("client list", &[]).is_ok());
        assert!(check_raw("GET", &["k".into()]).is_ok());
        assert!(check_raw("  ", &[]).is_err());
    }

    #[test]
    fn raw_replies_keep_their_types() {
        let frame = Resp3Frame::Array {
            data: vec![
                Resp3Frame::BlobString {
                    data: Bytes::from_static(b"\xff"),
                    attributes: None,
                },
                Resp3Frame::SimpleString {
                    data: Bytes::from_static(b"OK"),
                    attributes: None,
                },
                Resp3Frame::Number {
                    data: 7,
                    attributes: None,
                },
                Resp3Frame::Null,
            ],
            attributes: None,
        };
        assert_eq!(
            raw_reply(frame, 0).unwrap(),
            RawValue::Array(vec![
                RawValue::Bytes(Bytes::from_static(b"\xff")),
                RawValue::Text("OK".into()),
                RawValue::Int(7),
                RawValue::Nil,
            ])
        );
        let mut deep = Resp3Frame::Null;
        for _ in 0..100 {
            deep = Resp3Frame::Array {
                data: vec![deep],
                attributes: None,
            };
        }
        assert!(raw_reply(deep, 0).is_err());
    }
}
