//! The user's handle: [`Cache`], its builder and per-call options.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::Instrument;

use crate::backend::{Backend, ClearScope, IntoBackend, OpSet};
use crate::plugin::{Command, CommandInfo, Outcome, Plugin};
use crate::{
    Capability, DefaultKeyBuilder, Error, ErrorKind, Json, KeyBuilder, KeyTtl, RawValue, Result,
    Serializer, Ttl,
};

/// The default per-command timeout: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cache: one handle over any [`Backend`], with a namespace, a default TTL, a per-command
/// timeout, a serializer `S` and plugins.
///
/// `Cache` is cheap to clone (an `Arc` inside) and `Send + Sync + 'static`: build it once and
/// hand clones to every task. Clones share the backend, the configuration, the single-flight
/// table of [`get_or_set`](Cache::get_or_set) and the closed state.
///
/// Every command has a plain form on `Cache` (`cache.get(key)`) and takes per-call options
/// through [`Scoped`] (`cache.with_ttl(d).namespace("x").set(key, &v)`).
///
/// # The pipeline
///
/// Each command: resolves the namespace (per-call override, else the cache's; an empty
/// namespace means none) → builds the key(s) with the [`KeyBuilder`] → encodes the value(s)
/// with the serializer → runs every plugin's `before` hook → calls the backend → runs every
/// plugin's `after` hook → decodes the answer. Steps from the hooks to the decoding run under
/// the command's deadline (default [`DEFAULT_TIMEOUT`]); key building and encoding come first,
/// are synchronous and never wait. Bad arguments are refused before any hook runs.
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
/// cache.with_ttl(Duration::from_millis(1500)).namespace("admins").set("42", &"Grace").await?;
/// # Ok(()) }
/// ```
pub struct Cache<S = Json> {
    inner: Arc<Inner>,
    serializer: S,
}

struct Inner {
    backend: Arc<dyn Backend>,
    backend_name: &'static str,
    capability: Capability,
    namespace: Option<String>,
    ttl: Ttl,
    timeout: Option<Duration>,
    key_builder: Arc<dyn KeyBuilder>,
    plugins: Vec<Arc<dyn Plugin>>,
    /// The plugins added by value, typed, for [`Cache::find_plugin`].
    typed_plugins: Vec<Arc<dyn Any + Send + Sync>>,
    closed: AtomicBool,
    flights: Mutex<HashMap<String, Flight>>,
    next_flight: AtomicU64,
    /// Flights ended so far (see `get_or_set`).
    finished_flights: AtomicU64,
}

type FlightResult = Option<Result<Bytes>>;

struct Flight {
    id: u64,
    rx: watch::Receiver<FlightResult>,
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
            .field("plugins", &self.inner.plugins.len())
            .finish()
    }
}

/// Builds a [`Cache`]; start with [`Cache::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct CacheBuilder<S = Json> {
    backend: Arc<dyn Backend>,
    namespace: Option<String>,
    ttl: Ttl,
    timeout: Option<Duration>,
    key_builder: Arc<dyn KeyBuilder>,
    plugins: Vec<Arc<dyn Plugin>>,
    typed_plugins: Vec<Arc<dyn Any + Send + Sync>>,
    serializer: S,
}

impl<S: fmt::Debug> fmt::Debug for CacheBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("backend", &self.backend)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("serializer", &self.serializer)
            .finish_non_exhaustive()
    }
}

impl Cache<Json> {
    /// Starts building a cache over `backend`, with [`Json`], no namespace, no default TTL
    /// and a 5 s timeout.
    pub fn builder(backend: impl IntoBackend) -> CacheBuilder<Json> {
        CacheBuilder {
            backend: backend.into_backend(),
            namespace: None,
            ttl: Ttl::Never,
            timeout: Some(DEFAULT_TIMEOUT),
            key_builder: Arc::new(DefaultKeyBuilder),
            plugins: Vec::new(),
            typed_plugins: Vec::new(),
            serializer: Json,
        }
    }

    /// A cache over `backend` with every default.
    pub fn new(backend: impl IntoBackend) -> Cache<Json> {
        Cache::builder(backend).build()
    }
}

impl<S: Serializer> CacheBuilder<S> {
    /// The namespace of every key (`""` means none). Per-call overrides replace it.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        let ns = namespace.into();
        self.namespace = if ns.is_empty() { None } else { Some(ns) };
        self
    }

    /// The default TTL of writes that do not give one. A zero duration makes those writes
    /// fail with [`ErrorKind::InvalidArgument`].
    pub fn ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = match ttl.into() {
            Ttl::Default => Ttl::Never,
            other => other,
        };
        self
    }

    /// The deadline of each command; `None` or zero disables it. Default: 5 s.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into().filter(|d| !d.is_zero());
        self
    }

    /// How keys are built from namespaces and user keys. Default: [`DefaultKeyBuilder`].
    pub fn key_builder(mut self, key_builder: impl KeyBuilder) -> Self {
        self.key_builder = Arc::new(key_builder);
        self
    }

    /// Adds a plugin; plugins run in the order they are added. Its figures can be read
    /// later through [`Cache::find_plugin`].
    pub fn plugin<P: Plugin>(mut self, plugin: P) -> Self {
        let plugin = Arc::new(plugin);
        self.plugins.push(plugin.clone());
        self.typed_plugins.push(plugin);
        self
    }

    /// Adds a plugin that is already shared (to read its figures later).
    pub fn shared_plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// The serializer of values. Default: [`Json`].
    pub fn serializer<S2: Serializer>(self, serializer: S2) -> CacheBuilder<S2> {
        CacheBuilder {
            backend: self.backend,
            namespace: self.namespace,
            ttl: self.ttl,
            timeout: self.timeout,
            key_builder: self.key_builder,
            plugins: self.plugins,
            typed_plugins: self.typed_plugins,
            serializer,
        }
    }

    /// Builds the cache. Reads the backend's [`Capability`] once.
    pub fn build(self) -> Cache<S> {
        let capability = self.backend.capability();
        let backend_name = self.backend.name();
        Cache {
            inner: Arc::new(Inner {
                backend: self.backend,
                backend_name,
                capability,
                namespace: self.namespace,
                ttl: self.ttl,
                timeout: self.timeout,
                key_builder: self.key_builder,
                plugins: self.plugins,
                typed_plugins: self.typed_plugins,
                closed: AtomicBool::new(false),
                flights: Mutex::new(HashMap::new()),
                next_flight: AtomicU64::new(0),
                finished_flights: AtomicU64::new(0),
            }),
            serializer: self.serializer,
        }
    }
}

/// Per-call options over a [`Cache`]: TTL, namespace, timeout and serializer for the commands
/// called through it. Made by [`Cache::with_ttl`], [`Cache::namespace`], [`Cache::with_timeout`],
/// [`Cache::with_serializer`] or [`Cache::scoped`]; each setter returns it again, so they chain.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::{Cache, RawBytes};
/// # let cache = Cache::new(cache_core::testkit::MapBackend::new());
///
/// cache.with_ttl(Duration::from_secs(60)).namespace("sessions").set("abc", &42).await?;
/// let n: Option<u32> = cache.namespace("sessions").get("abc").await?;
/// assert_eq!(n, Some(42));
/// let raw: Option<Vec<u8>> = cache.namespace("sessions").with_serializer(RawBytes).get("abc").await?;
/// assert_eq!(raw.as_deref(), Some(&b"42"[..]));
/// # Ok(()) }
/// ```
#[must_use = "options do nothing until a command is called"]
pub struct Scoped<'a, S = Json> {
    inner: &'a Inner,
    serializer: S,
    ttl: Ttl,
    namespace: Option<&'a str>,
    timeout: Option<Option<Duration>>,
}

impl<S: fmt::Debug> fmt::Debug for Scoped<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("serializer", &self.serializer)
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Refuses an operation the backend's capability switches off.
fn require(enabled: bool, inner: &Inner, what: &'static str) -> Result<()> {
    if enabled {
        Ok(())
    } else {
        Err(Error::unsupported(format!(
            "the {} backend does not support {what}",
            inner.backend_name
        ))
        .with_context("backend", inner.backend_name))
    }
}

fn parse_counter(bytes: &[u8]) -> Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Error::serialization("stored value is not a decimal integer counter"))
}

impl<'a, S: Serializer> Scoped<'a, S> {
    /// The TTL of the writes made through these options (`Ttl::Default`: the cache's).
    pub fn with_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// The namespace of these calls; `""` removes the cache's namespace.
    pub fn namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// The deadline of these calls; `None` or zero disables it.
    pub fn with_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = Some(timeout.into().filter(|d| !d.is_zero()));
        self
    }

    /// The serializer of these calls.
    pub fn with_serializer<S2: Serializer>(self, serializer: S2) -> Scoped<'a, S2> {
        Scoped {
            inner: self.inner,
            serializer,
            ttl: self.ttl,
            namespace: self.namespace,
            timeout: self.timeout,
        }
    }

    fn resolved_namespace(&self) -> Option<&str> {
        match self.namespace {
            Some("") => None,
            Some(ns) => Some(ns),
            None => self.inner.namespace.as_deref(),
        }
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::new(ErrorKind::Closed, "the cache was closed")
                .with_context("backend", self.inner.backend_name))
        } else {
            Ok(())
        }
    }

    fn build_key<'k>(&self, key: &'k str, ns: Option<&str>) -> Result<Cow<'k, str>> {
        if key.is_empty() {
            return Err(Error::invalid_argument("key must not be empty"));
        }
        let built = self
            .inner
            .key_builder
            .build(key, ns)
            .map_err(|e| e.with_context_once("key", key))?;
        if let Some(max) = self.inner.capability.max_key_len
            && built.len() > max
        {
            return Err(Error::invalid_argument(format!(
                "built key is {} bytes; the {} backend holds at most {max}",
                built.len(),
                self.inner.backend_name
            ))
            .with_context("key", key));
        }
        Ok(built)
    }

    fn encode<V: Serialize + ?Sized>(&self, value: &V, key: &str) -> Result<Bytes> {
        let bytes = self
            .serializer
            .encode(value)
            .map_err(|e| e.with_context_once("key", key))?;
        self.check_value_len(bytes.len(), key)?;
        Ok(Bytes::from(bytes))
    }

    fn check_value_len(&self, len: usize, key: &str) -> Result<()> {
        match self.inner.capability.max_value_len {
            Some(max) if len > max => Err(Error::invalid_argument(format!(
                "encoded value is {len} bytes; the {} backend holds at most {max}",
                self.inner.backend_name
            ))
            .with_context("key", key)),
            _ => Ok(()),
        }
    }

    fn decode<V: DeserializeOwned>(&self, bytes: &[u8], key: &str) -> Result<V> {
        self.serializer
            .decode(bytes)
            .map_err(|e| e.with_context_once("key", key))
    }

    fn write_op(&self) -> Result<OpSet> {
        Ok(OpSet::new(
            self.ttl.resolve(self.inner.ttl, &self.inner.capability)?,
        ))
    }

    fn deadline(&self) -> Option<Duration> {
        self.timeout.unwrap_or(self.inner.timeout)
    }

    /// Runs one backend call with hooks, under the deadline, adding context to errors.
    async fn execute<R, Fut>(
        &self,
        command: Command,
        namespace: Option<&str>,
        keys: &[&str],
        call: Fut,
        tally: fn(&R) -> (u64, u64),
    ) -> Result<R>
    where
        Fut: Future<Output = Result<R>>,
    {
        let inner = self.inner;
        let result = if inner.plugins.is_empty() {
            match self.deadline() {
                None => call.await,
                Some(d) => match tokio::time::timeout(d, call).await {
                    Ok(r) => r,
                    Err(_) => Err(timeout_error(d)),
                },
            }
        } else {
            let info = CommandInfo {
                command,
                namespace,
                keys,
                backend: inner.backend_name,
            };
            let span = inner
                .plugins
                .iter()
                .find_map(|p| p.span(&info))
                .unwrap_or_else(tracing::Span::none);
            let after_started = AtomicBool::new(false);
            let start = Instant::now();
            let hooked = async {
                for p in &inner.plugins {
                    p.before(&info).await;
                }
                let r = call.await;
                let (hits, misses) = r.as_ref().map(tally).unwrap_or((0, 0));
                let outcome = Outcome {
                    took: start.elapsed(),
                    hits,
                    misses,
                    error: r.as_ref().err().map(Error::kind),
                };
                after_started.store(true, Ordering::Release);
                for p in &inner.plugins {
                    p.after(&info, &outcome).await;
                }
                r
            }
            .instrument(span.clone());
            match self.deadline() {
                None => hooked.await,
                Some(d) => match tokio::time::timeout(d, hooked).await {
                    Ok(r) => r,
                    Err(_) => {
                        if !after_started.load(Ordering::Acquire) {
                            let outcome = Outcome {
                                took: start.elapsed(),
                                hits: 0,
                                misses: 0,
                                error: Some(ErrorKind::Timeout),
                            };
                            async {
                                for p in &inner.plugins {
                                    p.after(&info, &outcome).await;
                                }
                            }
                            .instrument(span)
                            .await;
                        }
                        Err(timeout_error(d))
                    }
                },
            }
        };
        result.map_err(|e| {
            let mut e = e
                .with_context_once("op", command.as_str())
                .with_context_once("backend", inner.backend_name);
            if let [key] = keys {
                e = e.with_context_once("key", key);
            }
            if let Some(ns) = namespace {
                e = e.with_context_once("namespace", ns);
            }
            e
        })
    }

    /// The value stored at `key`, or `None` on a miss. A stored `null` comes back as a value:
    /// `get::<Option<T>>` gives `Some(None)`.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when the stored bytes do not decode as `V` (the error
    /// names the key); backend errors; [`ErrorKind::Timeout`].
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        self.get_decoded(key, |bytes| self.serializer.decode(bytes))
            .await
    }

    /// Like [`get`](Self::get), decoding the stored bytes with `decode` instead of the
    /// serializer (aiocache's `loads_fn`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// cache.set("k", &"hello").await?;
    /// let len = cache.get_decoded("k", |bytes| Ok(bytes.len())).await?;
    /// assert_eq!(len, Some(7)); // "hello" with its JSON quotes
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What `decode` returns (the key is added to the error); the errors of
    /// [`get`](Self::get).
    pub async fn get_decoded<V, F>(&self, key: &str, decode: F) -> Result<Option<V>>
    where
        F: FnOnce(&[u8]) -> Result<V>,
    {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let raw = self
            .execute(
                Command::Get,
                ns,
                &[key],
                self.inner.backend.get(&built),
                |r| if r.is_some() { (1, 0) } else { (0, 1) },
            )
            .await?;
        match raw {
            None => Ok(None),
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| e.with_context_once("key", key)),
        }
    }

    /// Reads a counter written by [`increment`](Cache::increment) as a number, whatever the
    /// serializer. `None` on a miss.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when the stored value is not decimal integer text.
    pub async fn get_counter(&self, key: &str) -> Result<Option<i64>> {
        self.get_decoded(key, parse_counter).await
    }

    /// The values of `keys`, in the same order and number; `None` for each miss. Empty input
    /// gives an empty answer without a backend call; duplicate keys are allowed.
    ///
    /// # Errors
    /// As [`get`](Self::get); one undecodable value fails the whole call.
    pub async fn multi_get<V, I, K>(&self, keys: I) -> Result<Vec<Option<V>>>
    where
        V: DeserializeOwned,
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.check_open()?;
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ns = self.resolved_namespace();
        let user: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let built = user
            .iter()
            .map(|k| self.build_key(k, ns).map(Cow::into_owned))
            .collect::<Result<Vec<String>>>()?;
        let raw = self
            .execute(
                Command::MultiGet,
                ns,
                &user,
                self.inner.backend.multi_get(&built),
                |r| {
                    let hits = r.iter().filter(|v| v.is_some()).count() as u64;
                    (hits, r.len() as u64 - hits)
                },
            )
            .await?;
        if raw.len() != user.len() {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "backend answered {} values for {} keys",
                    raw.len(),
                    user.len()
                ),
            )
            .with_context("op", "multi_get")
            .with_context("backend", self.inner.backend_name));
        }
        raw.into_iter()
            .zip(&user)
            .map(|(v, k)| v.map(|b| self.decode(&b, k)).transpose())
            .collect()
    }

    /// Stores `value` at `key`, replacing any value and TTL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a zero TTL, an empty or oversize key or an oversize
    /// value; [`ErrorKind::Serialization`] when the value cannot be encoded; backend errors.
    pub async fn set<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.set_encoded(key, value, |v| self.serializer.encode(v))
            .await
    }

    /// Like [`set`](Self::set), encoding the value with `encode` instead of the serializer
    /// (aiocache's `dumps_fn`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::RawBytes;
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// cache.set_encoded("k", "v4lu3", |s: &str| Ok(s.to_uppercase().into_bytes())).await?;
    /// let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("k").await?;
    /// assert_eq!(raw.as_deref(), Some(&b"V4LU3"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// What `encode` returns (the key is added to the error); the errors of
    /// [`set`](Self::set).
    pub async fn set_encoded<V, F>(&self, key: &str, value: &V, encode: F) -> Result<()>
    where
        V: ?Sized,
        F: FnOnce(&V) -> Result<Vec<u8>>,
    {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let bytes = encode(value).map_err(|e| e.with_context_once("key", key))?;
        self.check_value_len(bytes.len(), key)?;
        let op = self.write_op()?;
        self.execute(
            Command::Set,
            ns,
            &[key],
            self.inner.backend.set(&built, Bytes::from(bytes), op),
            |_| (0, 0),
        )
        .await
    }

    /// Stores `value` only if `key` is absent, atomically on every backend.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the key is present (its value is left as it was); the
    /// errors of [`set`](Self::set).
    pub async fn add<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.check_open()?;
        require(self.inner.capability.add, self.inner, "add")?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let bytes = self.encode(value, key)?;
        let op = self.write_op()?;
        let backend_name = self.inner.backend_name;
        let call = async {
            if self.inner.backend.add(&built, bytes, op).await? {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "key already exists; use set to replace its value",
                )
                .with_context("key", key)
                .with_context("backend", backend_name))
            }
        };
        self.execute(Command::Add, ns, &[key], call, |_| (0, 0))
            .await
    }

    /// Stores every pair with the same TTL, atomically where the backend can
    /// ([`Capability::atomic_multi_set`]). Empty input is a no-op; of duplicate keys the last
    /// value wins.
    ///
    /// # Errors
    /// As [`set`](Self::set); nothing is written when any pair is refused.
    pub async fn multi_set<I, K, V>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        self.check_open()?;
        let entries: Vec<(K, V)> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(());
        }
        let ns = self.resolved_namespace();
        let user: Vec<&str> = entries.iter().map(|(k, _)| k.as_ref()).collect();
        let encoded = entries
            .iter()
            .map(|(k, v)| {
                let k = k.as_ref();
                Ok((self.build_key(k, ns)?.into_owned(), self.encode(v, k)?))
            })
            .collect::<Result<Vec<(String, Bytes)>>>()?;
        let op = self.write_op()?;
        self.execute(
            Command::MultiSet,
            ns,
            &user,
            self.inner.backend.multi_set(encoded, op),
            |_| (0, 0),
        )
        .await
    }

    /// Removes `key`; returns how many entries were removed (0 or 1).
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn delete(&self, key: &str) -> Result<u64> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let existed = self
            .execute(
                Command::Delete,
                ns,
                &[key],
                self.inner.backend.delete(&built),
                |_| (0, 0),
            )
            .await?;
        Ok(u64::from(existed))
    }

    /// Removes every key; returns how many entries were removed (a repeated key counts once).
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn multi_delete<I, K>(&self, keys: I) -> Result<u64>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.check_open()?;
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let ns = self.resolved_namespace();
        let user: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let mut built = user
            .iter()
            .map(|k| self.build_key(k, ns).map(Cow::into_owned))
            .collect::<Result<Vec<String>>>()?;
        built.sort_unstable();
        built.dedup();
        self.execute(
            Command::MultiDelete,
            ns,
            &user,
            self.inner.backend.multi_delete(&built),
            |_| (0, 0),
        )
        .await
    }

    /// Whether `key` exists. Never writes.
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        self.execute(
            Command::Exists,
            ns,
            &[key],
            self.inner.backend.exists(&built),
            |_| (0, 0),
        )
        .await
    }

    /// Adds `delta` (may be negative) to the counter at `key` and returns the new value,
    /// atomically. A missing key is created holding `delta`, without expiry; an existing key
    /// keeps its TTL. Counters are stored as decimal text: read them back with
    /// [`get_counter`](Self::get_counter).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] when the stored value is not an integer or the result
    /// would overflow `i64` (the value is left untouched); backend errors.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.check_open()?;
        require(self.inner.capability.increment, self.inner, "increment")?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        self.execute(
            Command::Increment,
            ns,
            &[key],
            self.inner.backend.increment(&built, delta),
            |_| (0, 0),
        )
        .await
    }

    /// Gives `key` a new TTL ([`Ttl::Never`] removes its expiry; [`Ttl::Default`] applies the
    /// cache's default). Returns whether the key exists — `true` for an existing key even
    /// when it had no expiry.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a zero TTL; backend errors.
    pub async fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool> {
        self.check_open()?;
        require(self.inner.capability.expire, self.inner, "expire")?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let ttl = ttl.into().resolve(self.inner.ttl, &self.inner.capability)?;
        self.execute(
            Command::Expire,
            ns,
            &[key],
            self.inner.backend.expire(&built, ttl),
            |_| (0, 0),
        )
        .await
    }

    /// The remaining lifetime of `key`: missing, no expiry, or the time left.
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.check_open()?;
        require(self.inner.capability.ttl, self.inner, "ttl")?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        self.execute(
            Command::Ttl,
            ns,
            &[key],
            self.inner.backend.ttl(&built),
            |_| (0, 0),
        )
        .await
    }

    /// Writes `new` only if the stored value still encodes to the same bytes as `expected`
    /// (`None`: only if the key is absent), atomically. Returns whether it wrote. Compare by
    /// value, so use a serializer whose output is deterministic for `V`.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn compare_and_set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: Option<&V>,
        new: &V,
    ) -> Result<bool> {
        self.check_open()?;
        require(
            self.inner.capability.compare_and_set,
            self.inner,
            "compare_and_set",
        )?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let expected = expected.map(|v| self.encode(v, key)).transpose()?;
        let new = self.encode(new, key)?;
        let op = self.write_op()?;
        self.execute(
            Command::CompareAndSet,
            ns,
            &[key],
            self.inner
                .backend
                .compare_and_set(&built, expected, new, op),
            |_| (0, 0),
        )
        .await
    }

    /// Removes exactly the keys of the namespace, and nothing else. Returns how many keys
    /// were removed where the backend can count them.
    ///
    /// Without a namespace, an exclusive store (the memory backend) is emptied; a shared
    /// server refuses, because that would remove other applications' keys — call
    /// [`wipe_all`](Self::wipe_all) to mean it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] without a namespace on a shared server;
    /// [`ErrorKind::Unsupported`] when the backend or key builder cannot scope a clear.
    pub async fn clear(&self) -> Result<Option<u64>> {
        self.check_open()?;
        let Some(ns) = self.resolved_namespace() else {
            if self.inner.capability.exclusive_store {
                return self
                    .execute(
                        Command::Clear,
                        None,
                        &[],
                        self.inner.backend.clear(ClearScope::All),
                        |_| (0, 0),
                    )
                    .await;
            }
            return Err(Error::invalid_argument(format!(
                "clear() without a namespace would remove every key of the shared {} server; \
                 set a namespace, or call wipe_all() to remove everything",
                self.inner.backend_name
            )));
        };
        require(
            self.inner.capability.clear_namespace,
            self.inner,
            "clearing one namespace",
        )?;
        let prefix = self.inner.key_builder.namespace_prefix(ns).ok_or_else(|| {
            Error::unsupported("the key builder cannot give a namespace prefix to clear")
                .with_context("namespace", ns)
        })?;
        self.execute(
            Command::Clear,
            Some(ns),
            &[],
            self.inner.backend.clear(ClearScope::Namespace {
                namespace: ns,
                prefix: &prefix,
            }),
            |_| (0, 0),
        )
        .await
    }

    /// Removes every key the backend holds, across namespaces and other applications sharing
    /// the server (Redis `FLUSHDB`, memcached `flush_all`).
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn wipe_all(&self) -> Result<Option<u64>> {
        self.check_open()?;
        self.execute(
            Command::WipeAll,
            None,
            &[],
            self.inner.backend.clear(ClearScope::All),
            |_| (0, 0),
        )
        .await
    }

    /// Runs a backend-native command, with no namespace and no serializer.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] if the backend has no raw commands; backend errors.
    pub async fn raw<I, A>(&self, command: &str, args: I) -> Result<RawValue>
    where
        I: IntoIterator<Item = A>,
        A: Into<RawValue>,
    {
        self.check_open()?;
        require(self.inner.capability.raw, self.inner, "raw commands")?;
        let args: Vec<RawValue> = args.into_iter().map(Into::into).collect();
        self.execute(
            Command::Raw,
            None,
            &[],
            self.inner.backend.raw(command, args),
            |_| (0, 0),
        )
        .await
    }

    /// The value at `key`; on a miss, runs `loader`, stores its value and returns it.
    ///
    /// Concurrent callers of one key in this process share one loader run (single flight):
    /// one caller loads, the others wait for its result. A loader error reaches every waiter
    /// as an [`ErrorKind::Loader`] error (with the loader's error as its source) and nothing is
    /// cached. If the loading caller is cancelled or its loader panics, a waiter takes over.
    /// If storing the loaded value fails, the value is still returned and the failure is
    /// logged with `tracing` and seen by plugins. The loader itself runs without a deadline;
    /// the reads and the write each have the cache's timeout.
    ///
    /// # Errors
    /// [`ErrorKind::Loader`] when the loader fails; the errors of [`get`](Self::get).
    pub async fn get_or_set<V, F, Fut, E>(&self, key: &str, loader: F) -> Result<V>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut loader = Some(loader);
        loop {
            let finished_before = self.inner.finished_flights.load(Ordering::Acquire);
            if let Some(v) = self.get(key).await? {
                return Ok(v);
            }
            let ns = self.resolved_namespace();
            let built = self.build_key(key, ns)?.into_owned();
            let role = {
                let mut flights = self
                    .inner
                    .flights
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match flights.get(&built) {
                    Some(flight) => Err(flight.rx.clone()),
                    None => {
                        let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        flights.insert(built.clone(), Flight { id, rx });
                        Ok((tx, id))
                    }
                }
            };
            match role {
                Err(mut rx) => {
                    let answer = match rx.wait_for(Option::is_some).await {
                        Ok(answer) => answer.clone(),
                        // The loading caller went away without an answer: try again.
                        Err(_) => continue,
                    };
                    match answer {
                        Some(Ok(bytes)) => return self.decode(&bytes, key),
                        Some(Err(e)) => return Err(e),
                        None => continue,
                    }
                }
                Ok((tx, id)) => {
                    let _guard = FlightGuard {
                        inner: self.inner,
                        key: built,
                        id,
                    };
                    // A flight of this process that ended between our miss and our taking
                    // the flight may have stored the value: read again, but only then (a
                    // second read on every cold key would cost a round trip, and count a
                    // second miss).
                    if self.inner.finished_flights.load(Ordering::Acquire) != finished_before
                        && let Some(v) = self.get(key).await?
                    {
                        return Ok(v);
                    }
                    let Some(loader) = loader.take() else {
                        return Err(Error::new(ErrorKind::Unexpected, "loader already used"));
                    };
                    let value = match loader().await {
                        Ok(v) => v,
                        Err(e) => {
                            let err = Error::new(ErrorKind::Loader, "the loader failed")
                                .with_context("key", key)
                                .with_shared_source(Arc::from(e.into()));
                            tx.send_replace(Some(Err(err.clone())));
                            return Err(err);
                        }
                    };
                    let bytes = match self.encode(&value, key) {
                        Ok(b) => b,
                        Err(e) => {
                            tx.send_replace(Some(Err(e.clone())));
                            return Err(e);
                        }
                    };
                    if let Err(e) = self.store_loaded(key, bytes.clone()).await {
                        tracing::warn!(
                            key,
                            error = %e,
                            "get_or_set: the loaded value could not be stored"
                        );
                    }
                    tx.send_replace(Some(Ok(bytes)));
                    return Ok(value);
                }
            }
        }
    }

    async fn store_loaded(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let built = self.build_key(key, ns)?;
        let op = self.write_op()?;
        self.execute(
            Command::Set,
            ns,
            &[key],
            self.inner.backend.set(&built, bytes, op),
            |_| (0, 0),
        )
        .await
    }
}

/// Removes a finished (or abandoned) flight from the table.
struct FlightGuard<'a> {
    inner: &'a Inner,
    key: String,
    id: u64,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
        self.inner.finished_flights.fetch_add(1, Ordering::Release);
    }
}

fn timeout_error(d: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the command did not complete within {d:?}"),
    )
}

impl<S: Serializer> Cache<S> {
    /// Per-call options starting from the cache's own settings.
    pub fn scoped(&self) -> Scoped<'_, S> {
        Scoped {
            inner: &self.inner,
            serializer: self.serializer.clone(),
            ttl: Ttl::Default,
            namespace: None,
            timeout: None,
        }
    }

    /// Per-call options with this TTL for writes.
    pub fn with_ttl(&self, ttl: impl Into<Ttl>) -> Scoped<'_, S> {
        self.scoped().with_ttl(ttl)
    }

    /// Per-call options in this namespace (`""`: no namespace).
    pub fn namespace<'a>(&'a self, namespace: &'a str) -> Scoped<'a, S> {
        self.scoped().namespace(namespace)
    }

    /// Per-call options with this deadline (`None` or zero: none).
    pub fn with_timeout(&self, timeout: impl Into<Option<Duration>>) -> Scoped<'_, S> {
        self.scoped().with_timeout(timeout)
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

    /// What the backend supports.
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

    /// The backend, for calls the cache does not offer.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// Whether [`close`](Self::close) has been called on this cache or a clone of it.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// See [`Scoped::get`].
    ///
    /// # Errors
    /// See [`Scoped::get`].
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>> {
        self.scoped().get(key).await
    }

    /// See [`Scoped::get_decoded`].
    ///
    /// # Errors
    /// See [`Scoped::get_decoded`].
    pub async fn get_decoded<V, F>(&self, key: &str, decode: F) -> Result<Option<V>>
    where
        F: FnOnce(&[u8]) -> Result<V>,
    {
        self.scoped().get_decoded(key, decode).await
    }

    /// See [`Scoped::set_encoded`].
    ///
    /// # Errors
    /// See [`Scoped::set_encoded`].
    pub async fn set_encoded<V, F>(&self, key: &str, value: &V, encode: F) -> Result<()>
    where
        V: ?Sized,
        F: FnOnce(&V) -> Result<Vec<u8>>,
    {
        self.scoped().set_encoded(key, value, encode).await
    }

    /// See [`Scoped::get_counter`].
    ///
    /// # Errors
    /// See [`Scoped::get_counter`].
    pub async fn get_counter(&self, key: &str) -> Result<Option<i64>> {
        self.scoped().get_counter(key).await
    }

    /// See [`Scoped::multi_get`].
    ///
    /// # Errors
    /// See [`Scoped::multi_get`].
    pub async fn multi_get<V, I, K>(&self, keys: I) -> Result<Vec<Option<V>>>
    where
        V: DeserializeOwned,
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.scoped().multi_get(keys).await
    }

    /// See [`Scoped::set`].
    ///
    /// # Errors
    /// See [`Scoped::set`].
    pub async fn set<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.scoped().set(key, value).await
    }

    /// See [`Scoped::add`].
    ///
    /// # Errors
    /// See [`Scoped::add`].
    pub async fn add<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.scoped().add(key, value).await
    }

    /// See [`Scoped::multi_set`].
    ///
    /// # Errors
    /// See [`Scoped::multi_set`].
    pub async fn multi_set<I, K, V>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Serialize,
    {
        self.scoped().multi_set(entries).await
    }

    /// See [`Scoped::delete`].
    ///
    /// # Errors
    /// See [`Scoped::delete`].
    pub async fn delete(&self, key: &str) -> Result<u64> {
        self.scoped().delete(key).await
    }

    /// See [`Scoped::multi_delete`].
    ///
    /// # Errors
    /// See [`Scoped::multi_delete`].
    pub async fn multi_delete<I, K>(&self, keys: I) -> Result<u64>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.scoped().multi_delete(keys).await
    }

    /// See [`Scoped::exists`].
    ///
    /// # Errors
    /// See [`Scoped::exists`].
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.scoped().exists(key).await
    }

    /// See [`Scoped::increment`].
    ///
    /// # Errors
    /// See [`Scoped::increment`].
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.scoped().increment(key, delta).await
    }

    /// See [`Scoped::expire`].
    ///
    /// # Errors
    /// See [`Scoped::expire`].
    pub async fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool> {
        self.scoped().expire(key, ttl).await
    }

    /// See [`Scoped::ttl`].
    ///
    /// # Errors
    /// See [`Scoped::ttl`].
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.scoped().ttl(key).await
    }

    /// See [`Scoped::compare_and_set`].
    ///
    /// # Errors
    /// See [`Scoped::compare_and_set`].
    pub async fn compare_and_set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: Option<&V>,
        new: &V,
    ) -> Result<bool> {
        self.scoped().compare_and_set(key, expected, new).await
    }

    /// See [`Scoped::clear`].
    ///
    /// # Errors
    /// See [`Scoped::clear`].
    pub async fn clear(&self) -> Result<Option<u64>> {
        self.scoped().clear().await
    }

    /// See [`Scoped::wipe_all`].
    ///
    /// # Errors
    /// See [`Scoped::wipe_all`].
    pub async fn wipe_all(&self) -> Result<Option<u64>> {
        self.scoped().wipe_all().await
    }

    /// See [`Scoped::raw`].
    ///
    /// # Errors
    /// See [`Scoped::raw`].
    pub async fn raw<I, A>(&self, command: &str, args: I) -> Result<RawValue>
    where
        I: IntoIterator<Item = A>,
        A: Into<RawValue>,
    {
        self.scoped().raw(command, args).await
    }

    /// See [`Scoped::get_or_set`].
    ///
    /// # Errors
    /// See [`Scoped::get_or_set`].
    pub async fn get_or_set<V, F, Fut, E>(&self, key: &str, loader: F) -> Result<V>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.scoped().get_or_set(key, loader).await
    }

    /// Closes the cache and its backend. Idempotent and bounded by the cache's timeout.
    /// Afterwards every command on this cache and its clones fails with
    /// [`ErrorKind::Closed`].
    ///
    /// # Errors
    /// Backend errors while releasing connections (the cache is closed anyway).
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let scoped = self.scoped();
        scoped
            .execute(
                Command::Close,
                None,
                &[],
                self.inner.backend.close(),
                |_| (0, 0),
            )
            .await
    }
}
