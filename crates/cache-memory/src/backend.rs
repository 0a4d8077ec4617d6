//! The [`Backend`] implementation over the [`Store`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::generations::is_group;
use cache_core::{
    Backend, CallContext, Capability, ClearScope, Entry, Error, KeyTtl, OpSet, RawValue, Result,
};

use crate::clock::{Clock, SystemClock};
use crate::error;
use crate::generations::MemoryGenerations;
use crate::store::{self, Store, StoreConfig, TooLarge};

/// The longest TTL the memory backend accepts: 100 years.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The in-process backend: a sharded, bounded store with per-entry TTL and S3-FIFO eviction.
///
/// Build it with [`MemoryBackend::new`] and the bound setters, then hand it to
/// `Cache::builder`. Clones share one store.
#[doc = include_str!("docs.md")]
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    /// Namespace generations, when on.
    generations: Option<Arc<MemoryGenerations>>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl MemoryBackend {
    /// An empty, unbounded store on the system clock. Set a bound with
    /// [`max_entries`](Self::max_entries) and/or [`max_bytes`](Self::max_bytes) for anything
    /// that runs for long.
    pub fn new() -> Self {
        MemoryBackend::from_parts(StoreConfig::default(), Arc::new(SystemClock::new()), None)
    }

    /// An empty store with `config`'s bounds on `clock` (what [`MemoryBuilder`](crate::MemoryBuilder) builds).
    pub(crate) fn from_parts(
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        generations: Option<MemoryGenerations>,
    ) -> Self {
        MemoryBackend {
            store: Arc::new(Store::new(config, clock.clone())),
            clock,
            generations: generations.map(Arc::new),
        }
    }

    fn rebuild(self, config: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        MemoryBackend {
            store: Arc::new(Store::new(config, clock.clone())),
            clock,
            generations: self.generations,
        }
    }

    /// Runs `f` with the key `key` is stored under: itself, or with namespace generations
    /// its group's generation folded in.
    #[inline]
    fn at<R>(&self, key: &str, f: impl FnOnce(&str) -> R) -> R {
        match &self.generations {
            None => f(key),
            Some(g) => g.with_stored(key, f),
        }
    }

    /// Holds at most `n` entries; beyond that, entries are evicted (S3-FIFO). Replaces the
    /// store, so call it before storing anything.
    #[must_use]
    pub fn max_entries(self, n: u64) -> Self {
        let config = StoreConfig {
            max_entries: Some(n),
            ..self.store.config()
        };
        let clock = self.clock.clone();
        self.rebuild(config, clock)
    }

    /// Holds at most `n` bytes, counting each entry's key and value lengths; beyond that,
    /// entries are evicted. A single entry larger than `n` is refused with
    /// `InvalidArgument`. Replaces the store, so call it before storing anything.
    #[must_use]
    pub fn max_bytes(self, n: u64) -> Self {
        let config = StoreConfig {
            max_bytes: Some(n),
            ..self.store.config()
        };
        let clock = self.clock.clone();
        self.rebuild(config, clock)
    }

    /// Reads time from `clock` instead of the system clock (tests drive expiry with a
    /// [`ManualClock`](crate::ManualClock)). Replaces the store, so call it before storing
    /// anything.
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        let config = self.store.config();
        self.rebuild(config, Arc::new(clock))
    }

    /// Entries held now (expired ones not yet reclaimed included); never above the bound.
    pub fn len(&self) -> u64 {
        self.store.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Bytes held now (keys plus values); never above the bound.
    pub fn weight(&self) -> u64 {
        self.store.weight()
    }

    /// Live entries evicted to make room (the bounds were reached) since the backend was
    /// made; expired entries reclaimed are not counted. A rising rate means the bounds are
    /// too small for the working set.
    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }

    /// Reclaims every expired entry now; returns how many. Never needed for correctness.
    pub fn remove_expired(&self) -> u64 {
        self.store.remove_expired()
    }

    fn too_large(&self, key: &str, len: usize) -> Error {
        error::too_large(key.len() + len, self.store.config().max_bytes)
    }
}

fn key_ttl(t: store::KeyTtl) -> KeyTtl {
    match t {
        store::KeyTtl::Missing => KeyTtl::Missing,
        store::KeyTtl::NoExpiry => KeyTtl::NoExpiry,
        store::KeyTtl::Remaining(d) => KeyTtl::Remaining(d),
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn endpoint(&self) -> Option<cache_core::Endpoint> {
        None
    }

    fn capability(&self) -> Capability {
        let config = self.store.config();
        Capability {
            atomic_multi_set: false,
            exclusive_store: true,
            max_ttl: Some(MAX_TTL),
            max_value_len: config
                .max_bytes
                .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            ..Capability::all()
        }
    }

    async fn get(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        Ok(self.at(key, |k| self.store.get(k)))
    }

    async fn multi_get(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        Ok(keys
            .iter()
            .map(|k| self.at(k, |k| self.store.get(k)))
            .collect())
    }

    async fn get_with_ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        Ok(self
            .at(key, |k| self.store.get_with_ttl(k))
            .map(|(value, ttl)| Entry::new(value, ttl)))
    }

    async fn multi_get_with_ttl(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        Ok(keys
            .iter()
            .map(|k| {
                self.at(k, |k| self.store.get_with_ttl(k))
                    .map(|(value, ttl)| Entry::new(value, ttl))
            })
            .collect())
    }

    async fn set(&self, _ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        let len = value.len();
        self.at(key, |k| self.store.set(k, value, op.ttl))
            .map_err(|TooLarge| self.too_large(key, len))
    }

    async fn add(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        value: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let len = value.len();
        self.at(key, |k| self.store.add(k, value, op.ttl))
            .map_err(|TooLarge| self.too_large(key, len))
    }

    async fn multi_set(
        &self,
        _ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        // Refuse before writing anything, so a bad entry never leaves a partial write.
        if let Some(max) = self.store.config().max_bytes
            && let Some((k, v)) = entries
                .iter()
                .find(|(k, v)| (k.len() + v.len()) as u64 > max)
        {
            return Err(self.too_large(k, v.len()));
        }
        for (k, v) in entries {
            let len = v.len();
            self.at(k, |k| self.store.set(k, v.clone(), op.ttl))
                .map_err(|TooLarge| self.too_large(k, len))?;
        }
        Ok(())
    }

    async fn delete(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        Ok(self.at(key, |k| self.store.delete(k)))
    }

    async fn multi_delete(&self, _ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        Ok(keys
            .iter()
            .filter(|k| self.at(k, |k| self.store.delete(k)))
            .count() as u64)
    }

    async fn exists(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        Ok(self.at(key, |k| self.store.contains(k)))
    }

    async fn increment(&self, _ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        self.at(key, |k| self.store.increment(k, delta))
            .map_err(|e| error::increment(e, || self.too_large(key, 20)))
    }

    async fn expire(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        Ok(self.at(key, |k| self.store.expire(k, ttl)))
    }

    async fn ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        Ok(key_ttl(self.at(key, |k| self.store.ttl(k))))
    }

    async fn compare_and_set(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let len = new.len();
        self.at(key, |k| {
            self.store
                .compare_and_set(k, expected.as_deref(), new, op.ttl)
        })
        .map_err(|TooLarge| self.too_large(key, len))
    }

    async fn compare_and_delete(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        Ok(self.at(key, |k| self.store.compare_and_delete(k, &expected)))
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        let removed = match scope {
            ClearScope::All => self.store.clear(),
            ClearScope::Namespace { namespace, prefix } => match &self.generations {
                None => self.store.clear_prefix(prefix),
                Some(generations) => {
                    if !is_group(prefix) {
                        return Err(Error::unsupported(format!(
                            "namespace generations scope keys by their text up to the first \
                             ':'; the key builder's prefix {prefix:?} has another shape"
                        ))
                        .with_context("namespace", namespace));
                    }
                    generations.clear(prefix, &self.store);
                    return Ok(None);
                }
            },
        };
        ctx.report_progress(removed);
        Ok(Some(removed))
    }

    async fn raw(
        &self,
        _ctx: &CallContext<'_>,
        command: &str,
        _args: &[RawValue],
    ) -> Result<RawValue> {
        let int = |n: u64| RawValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
        match command.to_ascii_uppercase().as_str() {
            "PING" => Ok(RawValue::Text("PONG".into())),
            "LEN" | "DBSIZE" => Ok(int(self.store.len())),
            "WEIGHT" => Ok(int(self.store.weight())),
            "REMOVE_EXPIRED" => Ok(int(self.store.remove_expired())),
            _ => Err(error::unknown_command(command)),
        }
    }

    async fn close(&self, _ctx: &CallContext<'_>) -> Result<()> {
        self.store.clear();
        Ok(())
    }
}
