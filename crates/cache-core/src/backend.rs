//! The implementor's contract: what a storage backend must do.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{CallContext, Capability, KeyTtl, RawValue, Result};

/// What a [`Backend::clear`] call removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearScope<'a> {
    /// Every key of one namespace.
    Namespace {
        /// The namespace as the user gave it.
        namespace: &'a str,
        /// The prefix every built key of the namespace starts with, and no other key does
        /// (from [`KeyBuilder::namespace_prefix`](crate::KeyBuilder::namespace_prefix)).
        prefix: &'a str,
    },
    /// Every key the backend holds, of every namespace and every other user of the server
    /// (Redis `FLUSHDB`, memcached `flush_all`). Only [`Cache::wipe_all`](crate::Cache::wipe_all)
    /// and, on an exclusive store, `clear` without a namespace ask for it.
    All,
}

/// Options of a write ([`Backend::set`], [`Backend::add`], [`Backend::multi_set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OpSet {
    /// Expiry of the written entries; `None` = never. Validated by the cache: never zero and
    /// within [`Capability::max_ttl`].
    pub ttl: Option<Duration>,
}

impl OpSet {
    /// Options for a write with this expiry.
    pub fn new(ttl: Option<Duration>) -> Self {
        OpSet { ttl }
    }
}

/// A stored value and its remaining lifetime, as [`Backend::get_with_ttl`] reads them.
///
/// An in-process tier keeps a value it read from the backend no longer than `ttl`, so a local
/// copy never outlives the entry it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The stored bytes.
    pub value: Bytes,
    /// The remaining lifetime (`None`: the entry does not expire), rounded up to the backend's
    /// precision (1 ms on memory and Redis, 1 s on Memcached).
    pub ttl: Option<Duration>,
}

impl Entry {
    /// An entry of these bytes that expires after `ttl` (`None`: never).
    pub fn new(value: Bytes, ttl: Option<Duration>) -> Self {
        Entry { value, ttl }
    }
}

/// Boxes the future that `make` returns, built in place on the heap.
///
/// The methods of [`Backend`] return boxed futures. `Box::pin(future)`, what
/// `#[async_trait]` writes, builds the future on the stack and then copies all of it into the
/// box; a command whose future nests a client's own futures is kilobytes, and that copy is then
/// the largest cost the call adds. A backend writes its hot commands by hand with this instead,
/// so the future is built where it stays ([`in_place!`](crate::in_place) writes the signature):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use cache_core::box_in_place;
/// use cache_core::layer::BoxFuture;
/// let call: BoxFuture<'_, u32> = box_in_place(|| async { 7 });
/// assert_eq!(call.await, 7);
/// # }
/// ```
#[inline(always)]
pub fn box_in_place<F: std::future::Future>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// Writes a hot method of a [`Backend`] implementation with its future built in place
/// ([`box_in_place`]): the signature `#[async_trait]` would write, around the body given.
///
/// One arm per hot command: `get`, `multi_get`, `set`, `multi_set`, `increment`. Inside an
/// `#[async_trait] impl Backend for …` block:
///
/// ```
/// use bytes::Bytes;
/// use cache_core::testkit::MapBackend;
/// use cache_core::{Backend, CallContext, Command, Result, async_trait, forward_backend};
///
/// #[derive(Debug)]
/// struct Logged {
///     inner: MapBackend,
/// }
///
/// #[async_trait]
/// impl Backend for Logged {
///     forward_backend!(inner: name, capability, endpoint, multi_get, get_with_ttl,
///         multi_get_with_ttl, set, add, multi_set, delete, multi_delete, exists, increment,
///         expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);
///
///     cache_core::in_place! {
///         fn get(&self, ctx, key) -> Result<Option<Bytes>> {
///             let value = self.inner.get(ctx, key).await?;
///             println!("get {key}: {}", if value.is_some() { "hit" } else { "miss" });
///             Ok(value)
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<()> {
/// let backend = Logged { inner: MapBackend::new() };
/// assert_eq!(backend.get(&CallContext::new(Command::Get), "k").await?, None);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! in_place {
    (fn get(&$s:ident, $ctx:ident, $key:ident) -> $out:ty $body:block) => {
        fn get<'s, 'c, 'x, 'k, 'f>(
            &'s $s,
            $ctx: &'c $crate::CallContext<'x>,
            $key: &'k str,
        ) -> $crate::layer::BoxFuture<'f, $out>
        where
            's: 'f, 'c: 'f, 'x: 'f, 'k: 'f, Self: 'f,
        {
            $crate::box_in_place(move || async move $body)
        }
    };
    (fn multi_get(&$s:ident, $ctx:ident, $keys:ident) -> $out:ty $body:block) => {
        fn multi_get<'s, 'c, 'x, 'k, 'f>(
            &'s $s,
            $ctx: &'c $crate::CallContext<'x>,
            $keys: &'k [String],
        ) -> $crate::layer::BoxFuture<'f, $out>
        where
            's: 'f, 'c: 'f, 'x: 'f, 'k: 'f, Self: 'f,
        {
            $crate::box_in_place(move || async move $body)
        }
    };
    (fn set(&$s:ident, $ctx:ident, $key:ident, $value:ident, $op:ident) -> $out:ty $body:block) => {
        fn set<'s, 'c, 'x, 'k, 'f>(
            &'s $s,
            $ctx: &'c $crate::CallContext<'x>,
            $key: &'k str,
            $value: $crate::__Bytes,
            $op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'f, $out>
        where
            's: 'f, 'c: 'f, 'x: 'f, 'k: 'f, Self: 'f,
        {
            $crate::box_in_place(move || async move $body)
        }
    };
    (fn multi_set(&$s:ident, $ctx:ident, $entries:ident, $op:ident) -> $out:ty $body:block) => {
        fn multi_set<'s, 'c, 'x, 'e, 'f>(
            &'s $s,
            $ctx: &'c $crate::CallContext<'x>,
            $entries: &'e [(String, $crate::__Bytes)],
            $op: $crate::OpSet,
        ) -> $crate::layer::BoxFuture<'f, $out>
        where
            's: 'f, 'c: 'f, 'x: 'f, 'e: 'f, Self: 'f,
        {
            $crate::box_in_place(move || async move $body)
        }
    };
    (fn increment(&$s:ident, $ctx:ident, $key:ident, $delta:ident) -> $out:ty $body:block) => {
        fn increment<'s, 'c, 'x, 'k, 'f>(
            &'s $s,
            $ctx: &'c $crate::CallContext<'x>,
            $key: &'k str,
            $delta: i64,
        ) -> $crate::layer::BoxFuture<'f, $out>
        where
            's: 'f, 'c: 'f, 'x: 'f, 'k: 'f, Self: 'f,
        {
            $crate::box_in_place(move || async move $body)
        }
    };
}

/// A storage backend: what the [`Cache`](crate::Cache) calls after it has built keys and
/// encoded values.
///
/// Keys arrive fully built (namespace applied) and values as bytes. A backend must implement
/// every operation; one it cannot do returns
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) and says so in its
/// [`Capability`], which the cache checks first. The contract of each operation is the one of
/// the `Cache` method of the same name, and the conformance suite (`testkit` feature) checks it.
///
/// Methods take `&self`: backends are shared behind an `Arc` and called concurrently. A call
/// may be cancelled at any `.await` (a timeout drops its future); a backend must leave no
/// broken state behind when that happens — the next call must work.
///
/// Every method receives the call's [`CallContext`]: the command, the user's keys and
/// namespace, and the caller's [`Deadline`](crate::Deadline). The stack above enforces the
/// deadline with one timer; a backend reads it to bound waits of its own (and to skip timers
/// of its own when the deadline already bounds the call). The same trait is implemented by
/// [layers](crate::layer), which wrap a backend and forward to it.
///
/// The trait has no default methods on purpose: a wrapper that forgot a method would
/// otherwise pass it by silently.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// A short lowercase name (`"memory"`, `"redis"`), used in errors, plugins and metrics.
    fn name(&self) -> &'static str;

    /// What this backend supports. Read once when a cache is built.
    fn capability(&self) -> Capability;

    /// The server this backend talks to, for telemetry; the first configured one when there
    /// are several (a cluster's seed, the first of a Memcached pool); `None` for an
    /// in-process store. Read once when a cache is built.
    fn endpoint(&self) -> Option<Endpoint>;

    /// The stored bytes of `key`, or `None` on a miss or an expired entry.
    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>>;

    /// The stored bytes of each key, in order; same length as `keys`, duplicates allowed.
    async fn multi_get(&self, ctx: &CallContext<'_>, keys: &[String])
    -> Result<Vec<Option<Bytes>>>;

    /// The stored bytes of `key` with their remaining lifetime, read in one step (one round
    /// trip on a networked backend: a value and a TTL that belong together), or `None` on a
    /// miss. What an in-process tier reads to fill its local copy.
    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>>;

    /// [`get_with_ttl`](Self::get_with_ttl) of each key, in order, in as few round trips as
    /// [`multi_get`](Self::multi_get); same length as `keys`, duplicates allowed.
    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>>;

    /// Stores `value`, replacing any value and TTL.
    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()>;

    /// Stores `value` only if `key` is absent, atomically. Returns `false` if it was present.
    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool>;

    /// Stores every entry with the same TTL; atomically where
    /// [`Capability::atomic_multi_set`] says so. A later duplicate key wins.
    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()>;

    /// Removes `key`. Returns whether it existed.
    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool>;

    /// Removes every key. Returns how many existed.
    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64>;

    /// Whether `key` exists. Must not write anything.
    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool>;

    /// Adds `delta` to the decimal integer stored at `key`, creating it with `delta` if
    /// missing, keeping its TTL; returns the new value. Non-integer values and overflow are
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) and leave the value
    /// untouched.
    async fn increment(&self, ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64>;

    /// Sets (`Some`) or removes (`None`) the expiry of `key`. Returns whether the key exists.
    async fn expire(&self, ctx: &CallContext<'_>, key: &str, ttl: Option<Duration>)
    -> Result<bool>;

    /// The remaining lifetime of `key`.
    async fn ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl>;

    /// Replaces the value of `key` with `new` only if its current value equals `expected`
    /// (`None`: only if the key is absent), atomically. Returns whether it wrote.
    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool>;

    /// Removes `key` only if its current value equals `expected`, atomically. Returns whether
    /// it removed it. Locks release through it: only the owner's token deletes the lock.
    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool>;

    /// Removes the keys of `scope`. Returns how many were removed, where the backend can
    /// count them.
    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>>;

    /// Runs a backend-native command, without namespace or serializer.
    async fn raw(
        &self,
        ctx: &CallContext<'_>,
        command: &str,
        args: &[RawValue],
    ) -> Result<RawValue>;

    /// Releases connections and resources. Idempotent; must not hang.
    async fn close(&self, ctx: &CallContext<'_>) -> Result<()>;
}

/// Where a backend's server is: OpenTelemetry's `server.address` and `server.port`, given to
/// plugins with every command ([`CommandInfo::server`](crate::CommandInfo::server)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host name, IP address or Unix socket path.
    pub address: String,
    /// The port (`None` for a Unix socket).
    pub port: Option<u16>,
}

impl Endpoint {
    /// A server at `address:port`.
    pub fn new(address: impl Into<String>, port: Option<u16>) -> Self {
        Endpoint {
            address: address.into(),
            port,
        }
    }
}

/// Conversion into the shared form a [`Cache`](crate::Cache) holds.
pub trait IntoBackend {
    /// Wraps the backend in an `Arc`.
    fn into_backend(self) -> Arc<dyn Backend>;
}

impl<B: Backend> IntoBackend for B {
    fn into_backend(self) -> Arc<dyn Backend> {
        Arc::new(self)
    }
}

impl IntoBackend for Arc<dyn Backend> {
    fn into_backend(self) -> Arc<dyn Backend> {
        self
    }
}

/// How a networked backend's connections have fared since it was made: connections made
/// (the first ones and every reconnect), attempts that failed, and connections lost (closed
/// by the server, reset, or dropped after an error). Read it with the backend's
/// `connection_stats()`; a rising `lost` or `failed` shows a flapping server or network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections made.
    pub connected: u64,
    /// Connection attempts that failed.
    pub failed: u64,
    /// Connections lost after they were made.
    pub lost: u64,
}

/// The counters behind [`ConnectionStats`], for backend implementations.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    connected: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    lost: std::sync::atomic::AtomicU64,
}

impl ConnectionCounters {
    /// Counts a connection made.
    pub fn connected(&self) {
        self.connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a failed connection attempt.
    pub fn failed(&self) {
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a connection lost.
    pub fn lost(&self) {
        self.lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn stats(&self) -> ConnectionStats {
        let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        ConnectionStats {
            connected: read(&self.connected),
            failed: read(&self.failed),
            lost: read(&self.lost),
        }
    }
}
