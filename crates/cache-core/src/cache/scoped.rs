//! [`Scoped`]: per-call options, and the steps every command shares.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Inner;
use crate::backend::{Backend, OpSet};
use crate::context::{CallContext, Deadline};
use crate::plugin::Command;
use crate::tier::Locality;
use crate::{Error, ErrorKind, Json, ReadThrough, Result, Serializer, Ttl};

/// Per-call options over a [`Cache`](crate::Cache): TTL, namespace, timeout and serializer
/// for the commands called through it. Made by [`Cache::with_ttl`](crate::Cache::with_ttl),
/// [`Cache::with_namespace`](crate::Cache::with_namespace),
/// [`Cache::with_timeout`](crate::Cache::with_timeout),
/// [`Cache::with_serializer`](crate::Cache::with_serializer) or
/// [`Cache::scoped`](crate::Cache::scoped); each setter returns it again, so they chain.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::{Cache, RawBytes};
/// # let cache = Cache::new(cache_core::testkit::MapBackend::new());
///
/// cache.with_ttl(Duration::from_secs(60)).with_namespace("sessions").set("abc", &42).await?;
/// let n: Option<u32> = cache.with_namespace("sessions").get("abc").await?;
/// assert_eq!(n, Some(42));
/// let raw: Option<Vec<u8>> = cache.with_namespace("sessions").with_serializer(RawBytes).get("abc").await?;
/// assert_eq!(raw.as_deref(), Some(&b"42"[..]));
/// # Ok(()) }
/// ```
#[must_use = "options do nothing until a command is called"]
pub struct Scoped<'a, S = Json> {
    pub(super) inner: &'a Arc<Inner>,
    pub(crate) serializer: S,
    pub(super) ttl: Ttl,
    namespace: Option<&'a str>,
    timeout: Option<Option<Duration>>,
    pub(super) read_through: Option<ReadThrough>,
    /// The tags of the entries these calls write.
    pub(super) tags: Vec<String>,
    /// Where these calls may be answered when the stack has an in-process tier.
    locality: Locality,
}

impl<S: fmt::Debug> fmt::Debug for Scoped<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("serializer", &self.serializer)
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("read_through", &self.read_through)
            .field("tags", &self.tags)
            .field("locality", &self.locality)
            .finish()
    }
}

impl<'a, S: Serializer> Scoped<'a, S> {
    pub(super) fn new(inner: &'a Arc<Inner>, serializer: S) -> Self {
        Scoped {
            inner,
            serializer,
            ttl: Ttl::Default,
            namespace: None,
            timeout: None,
            read_through: None,
            tags: Vec::new(),
            locality: Locality::Default,
        }
    }

    /// Where these calls may be answered when the stack has an in-process tier: skip the
    /// local level ([`Locality::SkipLocal`]: read the remote level, refreshing the local
    /// copy) or use only it ([`Locality::LocalOnly`]). Without a tier, every call goes to the
    /// backend whatever this says.
    pub fn with_locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// The TTL of the writes made through these options (`Ttl::Default`: the cache's).
    pub fn with_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// The namespace of these calls; `""` removes the cache's namespace.
    pub fn with_namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// The namespace of these calls: the former name of
    /// [`with_namespace`](Self::with_namespace).
    #[deprecated(
        since = "0.1.0",
        note = "use `with_namespace`, named like the other per-call options"
    )]
    pub fn namespace(self, namespace: &'a str) -> Self {
        self.with_namespace(namespace)
    }

    /// The deadline of these calls; `None` or zero disables it.
    pub fn with_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = Some(timeout.into().filter(|d| !d.is_zero()));
        self
    }

    /// No deadline for these calls.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = Some(None);
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
            read_through: self.read_through,
            tags: self.tags,
            locality: self.locality,
        }
    }

    /// The [`ReadThrough`] options of the `get_or_set` family for these calls, instead of
    /// the cache's. Options that need the [value envelope](crate::envelope) are refused at
    /// the call when the cache was built without it.
    pub fn with_read_through(mut self, options: ReadThrough) -> Self {
        self.read_through = Some(options);
        self
    }

    /// The tags of the entries written through these options: `set`, `set_encoded`, `add`,
    /// `multi_set` and the `get_or_set` family (read-through entries and negative entries
    /// alike) store them with each entry, and
    /// [`invalidate_tag`](Self::invalidate_tag) of any of them makes the entry a miss.
    /// Replaces tags given before; duplicates are dropped.
    ///
    /// The cache must have been built with [`CacheBuilder::tags`](crate::CacheBuilder::tags);
    /// otherwise every command through these options fails with
    /// [`ErrorKind::Unsupported`]. A tag is 1 to [`MAX_TAG_LEN`](crate::tags::MAX_TAG_LEN)
    /// bytes without whitespace or control characters, and an entry carries at most
    /// [`MAX_TAGS_PER_ENTRY`](crate::tags::MAX_TAGS_PER_ENTRY): other tags fail the command
    /// with [`ErrorKind::InvalidArgument`]. `increment`, `compare_and_set` and `raw` cannot
    /// carry tags and refuse them with [`ErrorKind::InvalidArgument`]; the commands that read
    /// or remove entries ignore them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::{Cache, ErrorKind, Tags};
    /// # let backend = cache_core::testkit::MapBackend::new();
    ///
    /// let backend: std::sync::Arc<dyn cache_core::Backend> = std::sync::Arc::new(backend);
    /// let cache = Cache::builder(backend.clone()).tags(Tags::new()).build();
    /// cache.with_tags(["user:42"]).set("orders:42", &[1, 2, 3]).await?;
    /// cache.invalidate_tag("user:42").await?;
    /// assert_eq!(cache.get::<Vec<u32>>("orders:42").await?, None);
    ///
    /// let without = Cache::new(backend);
    /// let refused = without.with_tags(["user:42"]).set("k", &1).await.unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::Unsupported);
    /// # Ok(()) }
    /// ```
    pub fn with_tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags = crate::tags::collect(tags);
        self
    }

    // ---- the steps every command shares ----------------------------------------------

    /// The stack of layers the commands call.
    pub(super) fn stack(&self) -> &'a dyn Backend {
        &*self.inner.stack
    }

    pub(super) fn resolved_namespace(&self) -> Option<&'a str> {
        match self.namespace {
            Some("") => None,
            Some(ns) => Some(ns),
            None => self.inner.namespace.as_deref(),
        }
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(Error::new(ErrorKind::Closed, "the cache was closed")
                .with_context("backend", self.inner.backend_name))
        } else if !self.tags.is_empty() {
            self.check_tags(&self.tags)
        } else {
            Ok(())
        }
    }

    /// Refuses tags on a cache without them, and tags that are not valid.
    pub(super) fn check_tags(&self, tags: &[String]) -> Result<()> {
        if !self.inner.tags {
            return Err(Error::unsupported(
                "this cache was built without tags: turn them on with CacheBuilder::tags",
            )
            .with_context("backend", self.inner.backend_name));
        }
        crate::tags::validate(tags)?;
        if tags.len() > crate::tags::MAX_TAGS_PER_ENTRY {
            return Err(Error::invalid_argument(format!(
                "an entry carries at most {} tags, not {}",
                crate::tags::MAX_TAGS_PER_ENTRY,
                tags.len()
            )));
        }
        Ok(())
    }

    /// Refuses tags on a command that cannot carry them.
    pub(super) fn refuse_tags(&self, command: &'static str) -> Result<()> {
        if self.tags.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "{command} cannot carry tags: only entries written by set, add, multi_set and \
                 the get_or_set family do"
            )))
        }
    }

    /// Refuses an operation the capability switches off.
    pub(super) fn require(&self, enabled: bool, what: &'static str) -> Result<()> {
        if enabled {
            Ok(())
        } else {
            Err(Error::unsupported(format!(
                "the {} backend does not support {what}",
                self.inner.backend_name
            ))
            .with_context("backend", self.inner.backend_name))
        }
    }

    /// The first step of every one-key command: the cache is open, the namespace resolved,
    /// the key built and checked.
    pub(super) fn prepare<'k>(&self, key: &'k str) -> Result<(Option<&'a str>, Cow<'k, str>)> {
        self.check_open()?;
        let ns = self.resolved_namespace();
        Ok((ns, self.build_key(key, ns)?))
    }

    /// The built keys of a multi-key command.
    pub(super) fn build_keys(&self, keys: &[&str], ns: Option<&str>) -> Result<Vec<String>> {
        keys.iter()
            .map(|k| self.build_key(k, ns).map(Cow::into_owned))
            .collect()
    }

    pub(super) fn build_key<'k>(&self, key: &'k str, ns: Option<&str>) -> Result<Cow<'k, str>> {
        if key.is_empty() {
            return Err(Error::invalid_argument("key must not be empty"));
        }
        if self.inner.tags && key.starts_with(crate::tags::MARKER_PREFIX) {
            return Err(Error::invalid_argument(format!(
                "keys that start with {:?} are the markers of tags",
                crate::tags::MARKER_PREFIX
            ))
            .with_context("key", key));
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

    /// The call's context: command, user keys, namespace and deadline.
    pub(super) fn ctx<'c>(
        &'c self,
        command: Command,
        namespace: Option<&'c str>,
        keys: &'c [&'c str],
    ) -> CallContext<'c>
    where
        'a: 'c,
    {
        CallContext::new(command)
            .with_keys(keys)
            .with_namespace(namespace)
            .with_backend(self.inner.backend_name)
            .with_server(self.inner.endpoint.as_ref())
            .with_deadline(self.deadline().map(Deadline::after))
            .with_tags(&self.tags)
            .with_locality(self.locality)
    }

    /// Encodes `value` with the serializer and checks its length.
    pub(super) fn encode<V: Serialize + ?Sized>(&self, value: &V, key: &str) -> Result<Bytes> {
        let bytes = self.encode_unchecked(value, key)?;
        self.check_value_len(bytes.len(), key)?;
        Ok(bytes)
    }

    /// Encodes `value` with the serializer, whatever its length.
    pub(super) fn encode_unchecked<V: Serialize + ?Sized>(
        &self,
        value: &V,
        key: &str,
    ) -> Result<Bytes> {
        self.serializer
            .encode(value)
            .map(Bytes::from)
            .map_err(|e| e.with_context_once("key", key))
    }

    pub(super) fn check_value_len(&self, len: usize, key: &str) -> Result<()> {
        match self.inner.capability.max_value_len {
            Some(max) if len > max => Err(Error::invalid_argument(format!(
                "encoded value is {len} bytes; the {} backend holds at most {max}",
                self.inner.backend_name
            ))
            .with_context("key", key)),
            _ => Ok(()),
        }
    }

    pub(super) fn decode<V: DeserializeOwned>(&self, bytes: &[u8], key: &str) -> Result<V> {
        self.serializer
            .decode(bytes)
            .map_err(|e| e.with_context_once("key", key))
    }

    pub(super) fn write_op(&self) -> Result<OpSet> {
        Ok(OpSet::new(
            self.ttl.resolve(self.inner.ttl, &self.inner.capability)?,
        ))
    }

    /// The deadline budget a `clear` through these options gets: only one set for these
    /// calls ([`with_timeout`](Self::with_timeout)), never the cache's per-command timeout.
    pub(super) fn clear_deadline(&self) -> Option<Duration> {
        self.timeout.flatten()
    }

    /// The deadline budget of these calls.
    pub(super) fn deadline(&self) -> Option<Duration> {
        self.timeout.unwrap_or(self.inner.timeout)
    }
}
