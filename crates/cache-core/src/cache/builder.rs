//! [`CacheBuilder`]: settings, plugins and layers, assembled into a [`Cache`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::flight::Flights;
use super::{Cache, DEFAULT_TIMEOUT, Inner};
use crate::backend::Backend;
use crate::layer::{
    ErrorContextLayer, FailSafeLayer, Layer, PipelineLayer, PluginLayer, TagLayer, TimeoutLayer,
};
use crate::{DefaultKeyBuilder, Json, KeyBuilder, Plugin, ReadThrough, Serializer, Tags, Ttl};

/// Builds a [`Cache`]; start with [`Cache::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct CacheBuilder<S = Json> {
    backend: Arc<dyn Backend>,
    stack: Arc<dyn Backend>,
    namespace: Option<String>,
    ttl: Ttl,
    timeout: Option<Duration>,
    key_builder: Arc<dyn KeyBuilder>,
    plugins: Vec<Arc<dyn Plugin>>,
    typed_plugins: Vec<Arc<dyn Any + Send + Sync>>,
    read_through: ReadThrough,
    tags: Option<Tags>,
    serializer: S,
}

impl<S: fmt::Debug> fmt::Debug for CacheBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("stack", &self.stack)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .field("serializer", &self.serializer)
            .finish_non_exhaustive()
    }
}

impl CacheBuilder<Json> {
    pub(super) fn new(backend: Arc<dyn Backend>) -> Self {
        CacheBuilder {
            stack: backend.clone(),
            backend,
            namespace: None,
            ttl: Ttl::Never,
            timeout: Some(DEFAULT_TIMEOUT),
            key_builder: Arc::new(DefaultKeyBuilder),
            plugins: Vec::new(),
            typed_plugins: Vec::new(),
            read_through: ReadThrough::new(),
            tags: None,
            serializer: Json,
        }
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
    /// fail with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
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

    /// No per-command deadline (the same as `timeout(None::<Duration>)`).
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
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

    /// Wraps the stack built so far in `layer`: the last layer added is the outermost of
    /// yours, and all of yours run inside the pipeline's deadline and plugin hooks (see
    /// [`layer`](crate::layer) for the order and for writing one).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::Cache;
    /// use cache_core::layer::RetryLayer;
    /// # let backend = cache_core::testkit::MapBackend::new();
    ///
    /// let cache = Cache::builder(backend).layer(RetryLayer::new()).build();
    /// cache.set("k", &1).await?;
    /// # Ok(()) }
    /// ```
    pub fn layer(mut self, layer: impl Layer) -> Self {
        self.stack = layer.layer(self.stack);
        self
    }

    /// How the `get_or_set` family behaves when entries age, loaders are slow or fail, the
    /// backend is down, or processes miss the same key at once: fail-safe, soft and hard
    /// loader timeouts, eager refresh, negative entries, leases (see [`ReadThrough`]).
    ///
    /// Options that need the [value envelope](crate::envelope) turn it on for the cache:
    /// read-through entries are stored in it and every read unwraps it. With fail-safe,
    /// [`build`](Self::build) also installs a [`FailSafeLayer`] (last known values kept in
    /// process) between the plugin hooks and the deadline.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use std::time::Duration;
    /// use cache_core::{Cache, ReadThrough};
    /// # let backend = cache_core::testkit::MapBackend::new();
    ///
    /// let cache = Cache::builder(backend)
    ///     .ttl(Duration::from_secs(60))
    ///     .read_through(ReadThrough::new().fail_safe(Duration::from_secs(3600)))
    ///     .build();
    /// let v: u32 = cache.get_or_set("k", || async { Ok::<_, std::io::Error>(7) }).await?;
    /// assert_eq!(v, 7);
    /// # Ok(()) }
    /// ```
    pub fn read_through(mut self, options: ReadThrough) -> Self {
        self.read_through = options;
        self
    }

    /// Turns on tag invalidation: writes through
    /// [`Cache::with_tags`](crate::Cache::with_tags) attach tags to their entries, and
    /// [`Cache::invalidate_tag`](crate::Cache::invalidate_tag) makes every entry of a tag a
    /// miss in every process (see [`Tags`] and the guide page "Tags").
    ///
    /// [`build`](Self::build) installs a [`TagLayer`] below the deadline and above the
    /// layers added with [`layer`](Self::layer), and the cache's
    /// [`Capability::tags`](crate::Capability::tags) is on. Off by default: without it, no
    /// stored byte changes, and a call with tags is refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use cache_core::{Cache, Tags};
    /// # let backend = cache_core::testkit::MapBackend::new();
    ///
    /// let cache = Cache::builder(backend).tags(Tags::new()).build();
    /// assert!(cache.capability().tags);
    /// # Ok(()) }
    /// ```
    pub fn tags(mut self, options: Tags) -> Self {
        self.tags = Some(options);
        self
    }

    /// The serializer of values. Default: [`Json`].
    pub fn serializer<S2: Serializer>(self, serializer: S2) -> CacheBuilder<S2> {
        CacheBuilder {
            backend: self.backend,
            stack: self.stack,
            namespace: self.namespace,
            ttl: self.ttl,
            timeout: self.timeout,
            key_builder: self.key_builder,
            plugins: self.plugins,
            typed_plugins: self.typed_plugins,
            read_through: self.read_through,
            tags: self.tags,
            serializer,
        }
    }

    /// Builds the cache: wraps the stack in the pipeline's layers (the [`TagLayer`] with
    /// tags on, timeout, plugin hooks, error context) and reads its
    /// [`Capability`](crate::Capability) once.
    pub fn build(self) -> Cache<S> {
        let plugin_count = self.plugins.len();
        let kept = self.read_through.local_entries();
        let inner = match self.tags {
            Some(options) => TagLayer::new(options, self.key_builder.clone()).layer(self.stack),
            None => self.stack,
        };
        let stack = if self.plugins.is_empty() && kept == 0 {
            // nothing between the two: one hop does both
            PipelineLayer.layer(inner)
        } else {
            let mut stack = TimeoutLayer::new().layer(inner);
            if kept > 0 {
                stack = FailSafeLayer::new(kept).layer(stack);
            }
            if !self.plugins.is_empty() {
                stack = PluginLayer::new(self.plugins.clone()).layer(stack);
            }
            ErrorContextLayer::new().layer(stack)
        };
        let endpoint = stack.endpoint();
        let capability = stack.capability();
        Cache {
            inner: Arc::new(Inner {
                capability,
                backend_name: stack.name(),
                stack,
                backend: self.backend,
                namespace: self.namespace,
                ttl: self.ttl,
                timeout: self.timeout,
                key_builder: self.key_builder,
                plugin_count,
                typed_plugins: self.typed_plugins,
                closed: AtomicBool::new(false),
                flights: Flights::default(),
                envelope: self.read_through.needs_envelope(),
                tags: capability.tags,
                read_through: self.read_through,
                events: Default::default(),
                endpoint,
                event_plugins: self.plugins,
                throttled: Default::default(),
            }),
            serializer: self.serializer,
        }
    }
}
