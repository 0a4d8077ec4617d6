//! The user's handle: [`Cache`], its builder, per-call options, commands and single flight.
//!
//! - `builder.rs`: [`CacheBuilder`], which assembles the stack of layers;
//! - `scoped.rs`: [`Scoped`], per-call options, and the steps every command shares;
//! - `commands.rs`: the commands;
//! - `flight.rs`: the single flight, `get_or_set_many` and the in-place loads of `#[cached]`;
//! - `resilient.rs`: the `get_or_set` family and its [`ReadThrough`](crate::ReadThrough) options;
//! - `lock.rs`: [`Lock`] and [`OptimisticLock`].

mod builder;
mod commands;
mod flight;
mod lock;
mod resilient;
mod scoped;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use self::builder::CacheBuilder;
use self::flight::Flights;
pub use self::lock::{DEFAULT_LEASE, Lock, LockGuard, OptimisticLock};
pub use self::scoped::Scoped;
use crate::backend::Backend;
use crate::read_through::{EventCounters, ReadThrough, ReadThroughStats};
use crate::{Capability, Json, KeyBuilder, Plugin, Serializer, Ttl};

/// The default per-command timeout: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cache: one handle over any [`Backend`], with a namespace, a default TTL, a per-command
/// timeout, a serializer `S`, plugins and layers.
///
/// `Cache` is cheap to clone (an `Arc` inside) and `Send + Sync + 'static`: build it once and
/// hand clones to every task. Clones share the stack of layers and the backend, the
/// configuration, the single-flight table of [`get_or_set`](Cache::get_or_set) and the closed
/// state.
///
/// Every command has a plain form on `Cache` (`cache.get(key)`) and takes per-call options
/// through [`Scoped`] (`cache.with_ttl(d).with_namespace("x").set(key, &v)`).
///
/// # The pipeline
///
/// The handle does the caller's part of each command: it resolves the namespace (per-call
/// override, else the cache's; an empty namespace means none), builds the key(s) with the
/// [`KeyBuilder`], encodes the value(s) with the serializer, and refuses bad arguments. It then
/// calls the stack of [layers](crate::layer) with a [`CallContext`](crate::CallContext) that
/// carries the command, the user's keys, the namespace and the deadline, and decodes the
/// answer. The stack that [`CacheBuilder::build`] assembles is, from the outside in:
///
/// 1. [`ErrorContextLayer`](crate::layer::ErrorContextLayer): op, backend, key and namespace
///    on every error;
/// 2. the plugin hooks (when there are plugins): every `before` hook in order, within the
///    deadline; then, once the stack below has answered or the deadline has passed, every
///    `after` hook in order, exactly once;
/// 3. [`TimeoutLayer`](crate::layer::TimeoutLayer): the deadline (default
///    [`DEFAULT_TIMEOUT`]), the one timer of the call;
/// 4. with [tags](CacheBuilder::tags) on, the [`TagLayer`](crate::layer::TagLayer);
/// 5. the layers added with [`CacheBuilder::layer`], the last added outermost;
/// 6. the backend.
///
/// Bad arguments are refused by the handle before any layer runs, so they reach no hook.
///
/// # Runtime
///
/// Commands must run inside a Tokio runtime; with a timeout set (the default) the runtime
/// needs its time driver (`#[tokio::main]` and `#[tokio::test]` enable it).
///
/// # Cancel safety
///
/// Dropping a command's future (or its timeout firing) abandons the command: a write may or
/// may not have reached the backend, and the backend stays usable for the next call.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::Cache;
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let cache = Cache::builder(backend)
///     .namespace("users")
///     .ttl(Duration::from_secs(300))
///     .build();
/// cache.set("42", &"Ada").await?;
/// assert_eq!(cache.get::<String>("42").await?, Some("Ada".to_string()));
/// cache.with_ttl(Duration::from_millis(1500)).with_namespace("admins").set("42", &"Grace").await?;
/// # Ok(()) }
/// ```
pub struct Cache<S = Json> {
    inner: Arc<Inner>,
    serializer: S,
}

/// What a cache and its clones share.
struct Inner {
    /// The backend under every layer, the pipeline's included.
    stack: Arc<dyn Backend>,
    /// The backend as given to the builder.
    backend: Arc<dyn Backend>,
    backend_name: &'static str,
    capability: Capability,
    namespace: Option<String>,
    ttl: Ttl,
    timeout: Option<Duration>,
    key_builder: Arc<dyn KeyBuilder>,
    plugin_count: usize,
    /// The plugins added by value, typed, for [`Cache::find_plugin`].
    typed_plugins: Vec<Arc<dyn Any + Send + Sync>>,
    closed: AtomicBool,
    flights: Flights,
    /// The read-through options of the cache.
    read_through: ReadThrough,
    /// Whether entries of the read-through are stored in the envelope, and reads unwrap it.
    envelope: bool,
    /// Whether the stack has tags ([`Capability::tags`]): reads unwrap the envelope.
    tags: bool,
    /// Counts of read-through events.
    events: EventCounters,
    /// The backend's server, for telemetry.
    endpoint: Option<crate::Endpoint>,
    /// Every plugin, for read-through events.
    event_plugins: Vec<Arc<dyn Plugin>>,
    /// Keys whose stale value is served without loading until the time given (ms), after a
    /// failed load (fail-safe throttle).
    throttled: Mutex<HashMap<String, u64>>,
}

/// Above this many throttled keys, the expired ones are dropped.
const THROTTLE_TABLE: usize = 10_000;

impl Inner {
    /// Whether reads unwrap the envelope: with read-through options that need it, and with
    /// tags (tagged entries are in it).
    fn reads_envelope(&self) -> bool {
        self.envelope || self.tags
    }

    fn throttle_table(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.throttled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a failed load of `built` throttles its loader at `now_ms`.
    fn is_throttled(&self, built: &str, now_ms: u64) -> bool {
        let table = self.throttle_table();
        !table.is_empty() && table.get(built).is_some_and(|until| now_ms < *until)
    }

    /// Serves the stale value of `built` without loading until `until_ms`.
    fn throttle_start(&self, built: &str, until_ms: u64) {
        let mut table = self.throttle_table();
        if table.len() >= THROTTLE_TABLE {
            let now = crate::envelope::now_ms();
            table.retain(|_, until| *until > now);
        }
        if table.len() < THROTTLE_TABLE {
            table.insert(built.to_owned(), until_ms);
        }
    }

    /// A load of `built` succeeded: its loader is no longer throttled.
    fn throttle_end(&self, built: &str) {
        let mut table = self.throttle_table();
        if !table.is_empty() {
            table.remove(built);
        }
    }
}

impl<S: Clone> Clone for Cache<S> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            serializer: self.serializer.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.inner.backend)
            .field("namespace", &self.inner.namespace)
            .field("ttl", &self.inner.ttl)
            .field("timeout", &self.inner.timeout)
            .field("serializer", &self.serializer)
            .field("plugins", &self.inner.plugin_count)
            .finish()
    }
}

impl Cache<Json> {
    /// Starts building a cache over `backend`, with [`Json`], no namespace, no default TTL
    /// and a 5 s timeout.
    pub fn builder(backend: impl crate::IntoBackend) -> CacheBuilder<Json> {
        CacheBuilder::new(backend.into_backend())
    }

    /// A cache over `backend` with every default.
    pub fn new(backend: impl crate::IntoBackend) -> Cache<Json> {
        Cache::builder(backend).build()
    }
}

impl<S: Serializer> Cache<S> {
    /// Per-call options starting from the cache's own settings.
    pub fn scoped(&self) -> Scoped<'_, S> {
        Scoped::new(&self.inner, self.serializer.clone())
    }

    /// Per-call options with this TTL for writes.
    pub fn with_ttl(&self, ttl: impl Into<Ttl>) -> Scoped<'_, S> {
        self.scoped().with_ttl(ttl)
    }

    /// Per-call options answered by this level of an in-process tier (see
    /// [`Scoped::with_locality`]).
    pub fn with_locality(&self, locality: crate::tier::Locality) -> Scoped<'_, S> {
        self.scoped().with_locality(locality)
    }

    /// Per-call options in this namespace (`""`: no namespace).
    pub fn with_namespace<'a>(&'a self, namespace: &'a str) -> Scoped<'a, S> {
        self.scoped().with_namespace(namespace)
    }

    /// Per-call options in this namespace: the former name of
    /// [`with_namespace`](Self::with_namespace).
    #[deprecated(
        since = "0.1.0",
        note = "use `with_namespace`, named like the other per-call options"
    )]
    pub fn namespace<'a>(&'a self, namespace: &'a str) -> Scoped<'a, S> {
        self.scoped().with_namespace(namespace)
    }

    /// Per-call options with this deadline (`None` or zero: none).
    pub fn with_timeout(&self, timeout: impl Into<Option<Duration>>) -> Scoped<'_, S> {
        self.scoped().with_timeout(timeout)
    }

    /// Per-call options with no deadline (the same as `with_timeout(None::<Duration>)`).
    pub fn without_timeout(&self) -> Scoped<'_, S> {
        self.scoped().without_timeout()
    }

    /// Per-call options whose writes attach these tags to their entries (see
    /// [`Scoped::with_tags`]; the cache needs [`CacheBuilder::tags`]).
    pub fn with_tags<I, T>(&self, tags: I) -> Scoped<'_, S>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scoped().with_tags(tags)
    }

    /// Per-call options with another serializer.
    pub fn with_serializer<S2: Serializer>(&self, serializer: S2) -> Scoped<'_, S2> {
        self.scoped().with_serializer(serializer)
    }

    /// The cache's namespace, if any.
    pub fn default_namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The cache's default TTL.
    pub fn default_ttl(&self) -> Ttl {
        self.inner.ttl
    }

    /// The cache's per-command deadline, if any.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// The serializer.
    pub fn serializer(&self) -> &S {
        &self.serializer
    }

    /// What the stack supports (the backend's capability, as the layers above it report it).
    pub fn capability(&self) -> Capability {
        self.inner.capability
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name
    }

    /// The first plugin of type `P` added with [`CacheBuilder::plugin`], to read its
    /// figures; `None` when there is none (plugins added with
    /// [`CacheBuilder::shared_plugin`] are not found: their owner holds them already).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::{Cache, HitMissRatioPlugin, TimingPlugin};
    /// # let backend = cache_core::testkit::MapBackend::new();
    ///
    /// let cache = Cache::builder(backend).plugin(HitMissRatioPlugin::new()).build();
    /// cache.get::<u32>("absent").await?;
    /// let ratio = cache.find_plugin::<HitMissRatioPlugin>().unwrap();
    /// assert_eq!(ratio.misses(), 1);
    /// assert!(cache.find_plugin::<TimingPlugin>().is_none());
    /// # Ok(()) }
    /// ```
    pub fn find_plugin<P: Plugin>(&self) -> Option<&P> {
        self.inner
            .typed_plugins
            .iter()
            .find_map(|p| p.downcast_ref::<P>())
    }

    /// The backend as given to the builder, without any layer, for calls the cache does not
    /// offer.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The whole stack the commands call: the backend under every layer, the pipeline's
    /// included.
    pub fn stack(&self) -> &Arc<dyn Backend> {
        &self.inner.stack
    }

    /// How many times each [`ReadThroughEvent`](crate::ReadThroughEvent) happened on this
    /// cache and its clones.
    pub fn read_through_stats(&self) -> ReadThroughStats {
        self.inner.events.snapshot()
    }

    /// The cache's [`ReadThrough`] options.
    pub fn read_through_options(&self) -> &ReadThrough {
        &self.inner.read_through
    }

    /// Whether [`close`](Self::close) has been called on this cache or a clone of it.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closes the cache and its backend. Idempotent and bounded by the cache's timeout.
    /// Afterwards every command on this cache and its clones fails with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed).
    ///
    /// # Errors
    /// Backend errors while releasing connections (the cache is closed anyway).
    pub async fn close(&self) -> crate::Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.scoped().close_stack().await
    }
}

/// Generates `Cache` methods that run the command of the same name through
/// [`Cache::scoped`]. Generic parameters go in brackets, their bounds in a bracketed where
/// clause.
macro_rules! forward_to_scoped {
    ($(
        fn $name:ident [$($g:ident),*] ($($arg:ident : $ty:ty),*) -> $ret:ty
            where [$($bound:tt)*];
    )*) => {$(
        #[doc = concat!("See [`Scoped::", stringify!($name), "`].")]
        ///
        /// # Errors
        #[doc = concat!("See [`Scoped::", stringify!($name), "`].")]
        pub async fn $name<$($g),*>(&self, $($arg: $ty),*) -> $ret
        where
            $($bound)*
        {
            self.scoped().$name($($arg),*).await
        }
    )*};
}

impl<S: Serializer> Cache<S> {
    forward_to_scoped! {
        fn get[V](key: &str) -> crate::Result<Option<V>> where [V: serde::de::DeserializeOwned];
        fn get_decoded[V, F](key: &str, decode: F) -> crate::Result<Option<V>>
            where [F: FnOnce(&[u8]) -> crate::Result<V>];
        fn get_shared[V](key: &str) -> crate::Result<Option<std::sync::Arc<V>>>
            where [V: serde::de::DeserializeOwned + Send + Sync + 'static];
        fn get_counter[](key: &str) -> crate::Result<Option<i64>> where [];
        fn multi_get[V, I, K](keys: I) -> crate::Result<Vec<Option<V>>>
            where [V: serde::de::DeserializeOwned, I: IntoIterator<Item = K>, K: AsRef<str>];
        fn set[V](key: &str, value: &V) -> crate::Result<()> where [V: serde::Serialize + ?Sized];
        fn set_encoded[V, F](key: &str, value: &V, encode: F) -> crate::Result<()>
            where [V: ?Sized, F: FnOnce(&V) -> crate::Result<Vec<u8>>];
        fn add[V](key: &str, value: &V) -> crate::Result<()> where [V: serde::Serialize + ?Sized];
        fn multi_set[I, K, V](entries: I) -> crate::Result<()>
            where [I: IntoIterator<Item = (K, V)>, K: AsRef<str>, V: serde::Serialize];
        fn delete[](key: &str) -> crate::Result<u64> where [];
        fn multi_delete[I, K](keys: I) -> crate::Result<u64>
            where [I: IntoIterator<Item = K>, K: AsRef<str>];
        fn exists[](key: &str) -> crate::Result<bool> where [];
        fn increment[](key: &str, delta: i64) -> crate::Result<i64> where [];
        fn expire[T](key: &str, ttl: T) -> crate::Result<bool> where [T: Into<Ttl>];
        fn ttl[](key: &str) -> crate::Result<crate::KeyTtl> where [];
        fn compare_and_set[V](key: &str, expected: Option<&V>, new: &V) -> crate::Result<bool>
            where [V: serde::Serialize + ?Sized];
        fn compare_and_delete[V](key: &str, expected: &V) -> crate::Result<bool>
            where [V: serde::Serialize + ?Sized];
        fn clear[]() -> crate::Result<Option<u64>> where [];
        fn invalidate_tag[](tag: &str) -> crate::Result<()> where [];
        fn invalidate_tags[I, T](tags: I) -> crate::Result<()>
            where [I: IntoIterator<Item = T>, T: Into<String>];
        fn wipe_all[]() -> crate::Result<Option<u64>> where [];
        fn raw[I, A](command: &str, args: I) -> crate::Result<crate::RawValue>
            where [I: IntoIterator<Item = A>, A: Into<crate::RawValue>];
        fn get_or_set_many[V, I, K, F, Fut, R, E](keys: I, loader: F) -> crate::Result<Vec<Option<V>>>
            where [
                V: serde::Serialize + serde::de::DeserializeOwned,
                I: IntoIterator<Item = K>,
                K: AsRef<str>,
                F: FnMut(Vec<String>) -> Fut,
                Fut: std::future::Future<Output = std::result::Result<R, E>>,
                R: IntoIterator<Item = (String, V)>,
                E: Into<Box<dyn std::error::Error + Send + Sync>>,
            ];
    }

    /// See [`Scoped::get_or_set`].
    ///
    /// # Errors
    /// See [`Scoped::get_or_set`].
    pub async fn get_or_set<V>(&self, key: &str, loader: impl crate::Loader<V>) -> crate::Result<V>
    where
        V: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.scoped().get_or_set(key, loader).await
    }

    /// See [`Scoped::get_or_insert_with`].
    ///
    /// # Errors
    /// See [`Scoped::get_or_insert_with`].
    pub async fn get_or_insert_with<V, Fut>(
        &self,
        key: &str,
        loader: impl FnOnce() -> Fut + Send + 'static,
    ) -> crate::Result<V>
    where
        V: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        Fut: std::future::Future<Output = V> + Send + 'static,
    {
        self.scoped().get_or_insert_with(key, loader).await
    }

    /// See [`Scoped::get_or_set_optional`].
    ///
    /// # Errors
    /// See [`Scoped::get_or_set_optional`].
    pub async fn get_or_set_optional<V>(
        &self,
        key: &str,
        loader: impl crate::Loader<Option<V>>,
    ) -> crate::Result<Option<V>>
    where
        V: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.scoped().get_or_set_optional(key, loader).await
    }

    /// See [`Scoped::get_or_load`].
    ///
    /// # Errors
    /// See [`Scoped::get_or_load`].
    pub async fn get_or_load<V>(
        &self,
        key: &str,
        loader: impl crate::Loader<crate::Loaded<V>>,
    ) -> crate::Result<Option<V>>
    where
        V: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.scoped().get_or_load(key, loader).await
    }

    /// Per-call options with these [`ReadThrough`] options instead of the cache's.
    pub fn with_read_through(&self, options: ReadThrough) -> Scoped<'_, S> {
        self.scoped().with_read_through(options)
    }
}
