//! The commands, on [`Scoped`]: each builds its key(s) and value(s), calls the stack with the
//! call's context, and decodes the answer.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Scoped;
use super::resilient::{FreshRead, fresh_payload, fresh_read, negative, wrap};
use crate::backend::{ClearScope, OpSet};
use crate::context::{CallContext, Deadline, Progress};
use crate::layer::error_context::add_context;
use crate::plugin::Command;
use crate::tier::Memo;
use crate::{Error, ErrorKind, KeyTtl, RawValue, Result, Serializer, Ttl};

fn parse_counter(bytes: &[u8]) -> Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Error::serialization("stored value is not a decimal integer counter"))
}

impl<S: Serializer> Scoped<'_, S> {
    /// The stored bytes of `built` (the user's `key`), the read-through envelope taken off
    /// when the cache reads it: `None` on a miss or a logically expired entry.
    async fn read_one(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        built: &str,
    ) -> Result<Option<Bytes>> {
        let Some(bytes) = self.stack().get(ctx, built).await? else {
            return Ok(None);
        };
        if !self.inner.reads_envelope() {
            return Ok(Some(bytes));
        }
        fresh_payload(bytes).map_err(|e| e.with_context_once("key", key))
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

    /// Like [`get`](Self::get), answering a shared value: with an in-process tier in the
    /// stack (`cache-tiered`), a local hit hands out the value decoded at an earlier hit of the
    /// same entry (a lookup and a reference-count increment, no decode). Without a tier, or
    /// on the first hit of an entry, the stored bytes are decoded as by `get`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// cache.set("greeting", &"hello").await?;
    /// let value: Option<std::sync::Arc<String>> = cache.get_shared("greeting").await?;
    /// assert_eq!(value.as_deref().map(String::as_str), Some("hello"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of [`get`](Self::get).
    pub async fn get_shared<V>(&self, key: &str) -> Result<Option<std::sync::Arc<V>>>
    where
        V: DeserializeOwned + Send + Sync + 'static,
    {
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let memo = Memo::new(std::any::TypeId::of::<(S, V)>());
        let ctx = self.ctx(Command::Get, ns, &keys).with_memo(&memo);
        let Some(bytes) = self.read_one(&ctx, key, &built).await? else {
            return Ok(None);
        };
        if let Some(found) = memo.found()
            && let Ok(value) = std::sync::Arc::clone(found).downcast::<V>()
        {
            return Ok(Some(value));
        }
        let value = std::sync::Arc::new(
            self.serializer
                .decode::<V>(&bytes)
                .map_err(|e| e.with_context_once("key", key))?,
        );
        memo.keep(&built, value.clone());
        Ok(Some(value))
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
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Get, ns, &keys);
        let Some(bytes) = self.read_one(&ctx, key, &built).await? else {
            return Ok(None);
        };
        decode(&bytes)
            .map(Some)
            .map_err(|e| e.with_context_once("key", key))
    }

    /// Reads a counter written by [`increment`](Self::increment) as a number, whatever the
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
        let user: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let raw = self.multi_get_raw(&user).await?;
        raw.into_iter()
            .zip(&user)
            .map(|(v, k)| {
                let v = match v {
                    Some(b) if self.inner.reads_envelope() => {
                        fresh_payload(b).map_err(|e| e.with_context_once("key", *k))?
                    }
                    v => v,
                };
                v.map(|b| self.decode(&b, k)).transpose()
            })
            .collect()
    }

    /// The stored bytes of `user` keys (not empty), checked for length.
    async fn multi_get_raw(&self, user: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let ns = self.resolved_namespace();
        let built = self.build_keys(user, ns)?;
        let ctx = self.ctx(Command::MultiGet, ns, user);
        let raw = self.stack().multi_get(&ctx, &built).await?;
        if raw.len() != user.len() {
            return Err(add_context(
                Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "backend answered {} values for {} keys",
                        raw.len(),
                        user.len()
                    ),
                ),
                &ctx,
            ));
        }
        Ok(raw)
    }

    /// The read of `get_or_set_many`: per key, `None` for a miss, `Some(None)` for a fresh
    /// negative entry, `Some(Some(v))` for a value.
    pub(super) async fn multi_get_through<V: DeserializeOwned>(
        &self,
        user: &[&str],
    ) -> Result<Vec<Option<Option<V>>>> {
        self.check_open()?;
        if user.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self.multi_get_raw(user).await?;
        raw.into_iter()
            .zip(user)
            .map(|(v, k)| {
                let read = match v {
                    None => FreshRead::Miss,
                    Some(b) if self.inner.reads_envelope() => {
                        fresh_read(b).map_err(|e| e.with_context_once("key", *k))?
                    }
                    Some(b) => FreshRead::Value(b),
                };
                Ok(match read {
                    FreshRead::Miss => None,
                    FreshRead::Negative => Some(None),
                    FreshRead::Value(b) => Some(Some(self.decode(&b, k)?)),
                })
            })
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
        let (ns, built) = self.prepare(key)?;
        let bytes = encode(value).map_err(|e| e.with_context_once("key", key))?;
        self.check_value_len(bytes.len(), key)?;
        let op = self.write_op()?;
        let keys = [key];
        let ctx = self.ctx(Command::Set, ns, &keys);
        self.stack().set(&ctx, &built, Bytes::from(bytes), op).await
    }

    /// Stores already encoded `bytes` at `key` without checking their length against the
    /// capability: the stack and the backend refuse what they cannot hold (so the refusal
    /// reaches plugins). Used by `get_or_set` for the loaded value.
    pub(super) async fn store_encoded(&self, key: &str, bytes: Bytes) -> Result<()> {
        let (ns, built) = self.prepare(key)?;
        let (bytes, op) = self.read_through_entry(bytes)?;
        let keys = [key];
        let ctx = self.ctx(Command::Set, ns, &keys);
        self.stack().set(&ctx, &built, bytes, op).await
    }

    /// Stores already built and encoded entries in one `multi_set`, without length checks
    /// (see [`store_encoded`](Self::store_encoded)). Used by `get_or_set_many`.
    pub(super) async fn store_many(
        &self,
        entries: &[(String, Bytes)],
        user_keys: &[&str],
        as_of_ms: u64,
    ) -> Result<()> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let ctx = self
            .ctx(Command::MultiSet, ns, user_keys)
            .with_as_of(Some(as_of_ms));
        if !self.inner.envelope {
            return self
                .stack()
                .multi_set(&ctx, entries, self.write_op()?)
                .await;
        }
        let mut op = self.write_op()?;
        let wrapped = entries
            .iter()
            .map(|(k, v)| {
                let (bytes, entry_op) = self.read_through_entry(v.clone())?;
                op = entry_op;
                Ok((k.clone(), bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        self.stack().multi_set(&ctx, &wrapped, op).await
    }

    /// Stores negative entries for `keys` (built, with the user's keys) in one `multi_set`,
    /// when the cache has a negative TTL and the envelope. Used by `get_or_set_many`.
    pub(super) async fn store_negatives(
        &self,
        built: &[String],
        user_keys: &[&str],
        as_of_ms: u64,
    ) -> Result<()> {
        let Some(ttl) = self.options().negative_ttl else {
            return Ok(());
        };
        if built.is_empty() || !self.inner.envelope {
            return Ok(());
        }
        let (bytes, keep) = negative(Some(ttl), self.options().max_stale());
        let entries: Vec<(String, Bytes)> =
            built.iter().map(|k| (k.clone(), bytes.clone())).collect();
        let keep = self.inner.capability.keep_within(keep);
        let ctx = self
            .ctx(Command::MultiSet, self.resolved_namespace(), user_keys)
            .with_as_of(Some(as_of_ms));
        self.stack()
            .multi_set(&ctx, &entries, OpSet::new(keep))
            .await
    }

    /// A loaded value as the read-through stores it: in the envelope when the cache has it
    /// on (fresh for the call's TTL, kept for the fail-safe window past it), with its write
    /// options.
    fn read_through_entry(&self, bytes: Bytes) -> Result<(Bytes, OpSet)> {
        let op = self.write_op()?;
        if !self.inner.envelope {
            return Ok((bytes, op));
        }
        let (bytes, ttl) = wrap(&bytes, op.ttl, self.options().max_stale());
        Ok((bytes, OpSet::new(self.inner.capability.keep_within(ttl))))
    }

    /// Stores `value` only if `key` is absent, atomically on every backend.
    ///
    /// # Errors
    /// [`ErrorKind::AlreadyExists`] if the key is present (its value is left as it was); the
    /// errors of [`set`](Self::set).
    pub async fn add<V: Serialize + ?Sized>(&self, key: &str, value: &V) -> Result<()> {
        self.require(self.inner.capability.add, "add")?;
        let (ns, built) = self.prepare(key)?;
        let bytes = self.encode(value, key)?;
        let op = self.write_op()?;
        let keys = [key];
        let ctx = self.ctx(Command::Add, ns, &keys);
        if self.stack().add(&ctx, &built, bytes, op).await? {
            Ok(())
        } else {
            Err(add_context(
                Error::new(
                    ErrorKind::AlreadyExists,
                    "key already exists; use set to replace its value",
                ),
                &ctx,
            ))
        }
    }

    /// Stores every pair with the same TTL, atomically where the backend can
    /// ([`Capability::atomic_multi_set`](crate::Capability::atomic_multi_set)). Empty input is
    /// a no-op; of duplicate keys the last value wins.
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
        let ctx = self.ctx(Command::MultiSet, ns, &user);
        self.stack().multi_set(&ctx, &encoded, op).await
    }

    /// Removes `key`; returns how many entries were removed (0 or 1).
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn delete(&self, key: &str) -> Result<u64> {
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Delete, ns, &keys);
        Ok(u64::from(self.stack().delete(&ctx, &built).await?))
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
        let mut built = self.build_keys(&user, ns)?;
        built.sort_unstable();
        built.dedup();
        let ctx = self.ctx(Command::MultiDelete, ns, &user);
        self.stack().multi_delete(&ctx, &built).await
    }

    /// Whether `key` exists. Never writes.
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Exists, ns, &keys);
        self.stack().exists(&ctx, &built).await
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
        self.require(self.inner.capability.increment, "increment")?;
        self.refuse_tags("increment")?;
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Increment, ns, &keys);
        self.stack().increment(&ctx, &built, delta).await
    }

    /// Gives `key` a new TTL ([`Ttl::Never`] removes its expiry; [`Ttl::Default`] applies the
    /// cache's default). Returns whether the key exists — `true` for an existing key even
    /// when it had no expiry.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a zero TTL; backend errors.
    pub async fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool> {
        self.require(self.inner.capability.expire, "expire")?;
        let (ns, built) = self.prepare(key)?;
        let ttl = ttl.into().resolve(self.inner.ttl, &self.inner.capability)?;
        let keys = [key];
        let ctx = self.ctx(Command::Expire, ns, &keys);
        self.stack().expire(&ctx, &built, ttl).await
    }

    /// The remaining lifetime of `key`: missing, no expiry, or the time left.
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.require(self.inner.capability.ttl, "ttl")?;
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Ttl, ns, &keys);
        self.stack().ttl(&ctx, &built).await
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
        self.require(self.inner.capability.compare_and_set, "compare_and_set")?;
        self.refuse_tags("compare_and_set")?;
        let (ns, built) = self.prepare(key)?;
        let expected = expected.map(|v| self.encode(v, key)).transpose()?;
        let new = self.encode(new, key)?;
        let op = self.write_op()?;
        let keys = [key];
        let ctx = self.ctx(Command::CompareAndSet, ns, &keys);
        self.stack()
            .compare_and_set(&ctx, &built, expected, new, op)
            .await
    }

    /// Removes `key` only if the stored value still encodes to the same bytes as `expected`,
    /// atomically. Returns whether it removed it. Compare by value, so use a serializer whose
    /// output is deterministic for `V`.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] when the backend has no compare operations
    /// ([`Capability::compare_and_set`](crate::Capability::compare_and_set)); the errors of
    /// [`delete`](Self::delete).
    pub async fn compare_and_delete<V: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: &V,
    ) -> Result<bool> {
        self.require(self.inner.capability.compare_and_set, "compare_and_delete")?;
        let (ns, built) = self.prepare(key)?;
        let expected = self.encode(expected, key)?;
        let keys = [key];
        let ctx = self.ctx(Command::CompareAndDelete, ns, &keys);
        self.stack()
            .compare_and_delete(&ctx, &built, expected)
            .await
    }

    /// Removes exactly the keys of the namespace, and nothing else. Returns how many keys
    /// were removed where the backend can count them.
    ///
    /// Without a namespace, an exclusive store (the memory backend) is emptied; a shared
    /// server refuses, because that would remove other applications' keys — call
    /// [`wipe_all`](Self::wipe_all) to mean it.
    ///
    /// # Deadline
    /// A clear whose cost grows with the server's keyspace (Redis walks it with `SCAN`) runs
    /// without the cache's per-command timeout; a deadline set for the call with
    /// [`with_timeout`](Self::with_timeout) applies. A clear that stops before the end — its
    /// deadline passed, the connection broke — never does so silently: the error says the
    /// clear is incomplete and how many keys it had removed at least (context `removed`; a
    /// page cut off in flight may be removed but not counted), and calling `clear` again
    /// finishes it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] without a namespace on a shared server;
    /// [`ErrorKind::Unsupported`] when the backend or key builder cannot scope a clear; an
    /// interrupted clear keeps the kind of what stopped it (`Timeout`, `Connection`, …).
    pub async fn clear(&self) -> Result<Option<u64>> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        let prefix;
        let scope = match ns {
            None if self.inner.capability.exclusive_store => ClearScope::All,
            None => {
                return Err(Error::invalid_argument(format!(
                    "clear() without a namespace would remove every key of the shared {} \
                     server; set a namespace, or call wipe_all() to remove everything",
                    self.inner.backend_name
                )));
            }
            Some(ns) => {
                self.require(
                    self.inner.capability.clear_namespace,
                    "clearing one namespace",
                )?;
                prefix = self.inner.key_builder.namespace_prefix(ns).ok_or_else(|| {
                    Error::unsupported("the key builder cannot give a namespace prefix to clear")
                        .with_context("namespace", ns)
                })?;
                ClearScope::Namespace {
                    namespace: ns,
                    prefix: &prefix,
                }
            }
        };
        let progress = Progress::new();
        let ctx = CallContext::new(Command::Clear)
            .with_namespace(ns)
            .with_backend(self.inner.backend_name)
            .with_deadline(self.clear_deadline().map(Deadline::after))
            .with_progress(&progress);
        self.stack()
            .clear(&ctx, scope)
            .await
            .map_err(|e| incomplete_clear(e, ns, &progress))
    }

    /// Removes every key the backend holds, across namespaces and other applications sharing
    /// the server (Redis `FLUSHDB`, memcached `flush_all`).
    ///
    /// # Errors
    /// Backend errors and [`ErrorKind::Timeout`].
    pub async fn wipe_all(&self) -> Result<Option<u64>> {
        self.check_open()?;
        let ctx = self.ctx(Command::WipeAll, None, &[]);
        self.stack().clear(&ctx, ClearScope::All).await
    }

    /// Makes every entry written with `tag` in the namespace of these calls a miss, in every
    /// process that shares the backend: writes the tag's marker (the time now), one small
    /// key, whatever the number of entries. Invalidating a tag that no entry carries writes
    /// that marker and changes nothing else. See [`invalidate_tags`](Self::invalidate_tags).
    ///
    /// # Errors
    /// The errors of [`invalidate_tags`](Self::invalidate_tags).
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        self.invalidate_tags([tag]).await
    }

    /// Makes every entry written with any of `tags` in the namespace of these calls a miss:
    /// one marker per tag, all written in one `multi_set`.
    ///
    /// An entry is a miss once a tag of it was invalidated at or after it was written:
    /// through this cache and its clones at once; through caches of other processes within
    /// their [`Tags::refresh`](crate::Tags::refresh) bound. `get`, `multi_get`, `exists` and
    /// the `get_or_set` family (which loads again) see the miss; `ttl` and `expire` act on
    /// the stored entry until it expires or is overwritten. The clocks of the writer and
    /// the invalidator are compared: see the guide page "Tags" for the bound.
    ///
    /// Plugins see the call as [`Command::InvalidateTags`], with the tags as its keys.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] when the cache was built without
    /// [`CacheBuilder::tags`](crate::CacheBuilder::tags); [`ErrorKind::InvalidArgument`] for
    /// an invalid tag (empty, over [`MAX_TAG_LEN`](crate::tags::MAX_TAG_LEN) bytes,
    /// whitespace or control characters) or a marker key the key builder refuses; backend
    /// errors and [`ErrorKind::Timeout`].
    pub async fn invalidate_tags<I, T>(&self, tags: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.check_open()?;
        let tags = crate::tags::collect(tags);
        if !self.inner.tags {
            // refused even with no tags: the call means nothing on this cache
            return self.check_tags(&tags);
        }
        crate::tags::validate(&tags)?;
        if tags.is_empty() {
            return Ok(());
        }
        let ns = self.resolved_namespace();
        let user: Vec<&str> = tags.iter().map(String::as_str).collect();
        let ctx = self
            .ctx(Command::InvalidateTags, ns, &user)
            .with_tags(&tags);
        self.stack().multi_set(&ctx, &[], OpSet::new(None)).await
    }

    /// Runs a backend-native command, with no namespace and no serializer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::{Cache, NO_ARGS};
    /// # let cache = Cache::new(cache_core::testkit::MapBackend::new());
    /// let pong = cache.raw("PING", NO_ARGS).await?; // a command without arguments
    /// assert_eq!(pong.as_str(), Some("PONG"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`] if the backend has no raw commands; backend errors.
    pub async fn raw<I, A>(&self, command: &str, args: I) -> Result<RawValue>
    where
        I: IntoIterator<Item = A>,
        A: Into<RawValue>,
    {
        self.check_open()?;
        self.require(self.inner.capability.raw, "raw commands")?;
        self.refuse_tags("raw")?;
        let args: Vec<RawValue> = args.into_iter().map(Into::into).collect();
        let ctx = self.ctx(Command::Raw, None, &[]).with_raw_command(command);
        self.stack().raw(&ctx, command, &args).await
    }

    /// Closes the stack (the cache's closed flag is already set).
    pub(super) async fn close_stack(&self) -> Result<()> {
        let ctx = self.ctx(Command::Close, None, &[]);
        self.stack().close(&ctx).await
    }
}

/// The error of a `clear` that stopped after removing some keys: says so, and how many
/// (context `removed`), keeping the kind of what stopped it. A clear refused before it began
/// (nothing removed, not a timeout or connection failure) keeps its error as it is.
#[cold]
fn incomplete_clear(e: Error, namespace: Option<&str>, progress: &Progress) -> Error {
    let removed = progress.get();
    let interrupted = removed > 0 || matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Connection);
    if !interrupted {
        return e;
    }
    let what = match namespace {
        Some(ns) => format!("the clear of namespace {ns:?}"),
        None => "the clear".to_owned(),
    };
    Error::new(
        e.kind(),
        format!(
            "{what} is incomplete: at least {removed} keys were removed before it stopped; call clear() \
             again to finish"
        ),
    )
    .with_context("removed", removed.to_string())
    .with_temporary(e.is_temporary())
    .with_source(e)
}
