//! Random extra TTL on writes, so keys written together do not expire together.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use super::retry::splitmix64;
use crate::backend::{Backend, OpSet};
use crate::context::CallContext;
use crate::{Result, forward_backend};

/// Adds a random extra of up to a fraction of the TTL to every write that has one (`set`,
/// `add`, `multi_set`, `compare_and_set`, `expire`), so entries written at the same moment —
/// after a deploy, a cold start, a `clear` — do not all expire at the same moment and send a
/// wave of loads to the database.
///
/// The extra is drawn per call: the keys of one `multi_set` share one TTL. It is capped by the
/// backend's maximum TTL. Writes without a TTL are left alone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::{Cache, KeyTtl};
/// use cache_core::layer::TtlJitterLayer;
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let cache = Cache::builder(backend)
///     .ttl(Duration::from_secs(100))
///     .layer(TtlJitterLayer::new(0.1)) // up to +10 %
///     .build();
/// cache.set("k", &1).await?;
/// let KeyTtl::Remaining(left) = cache.ttl("k").await? else { panic!() };
/// assert!(left <= Duration::from_secs(110));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TtlJitterLayer {
    fraction: f64,
    rng: Arc<AtomicU64>,
}

impl TtlJitterLayer {
    /// Up to `fraction` of the TTL extra (0.1: up to +10 %); clamped to 0.0–1.0.
    pub fn new(fraction: f64) -> Self {
        TtlJitterLayer {
            fraction: if fraction.is_nan() {
                0.0
            } else {
                fraction.clamp(0.0, 1.0)
            },
            rng: Arc::new(AtomicU64::new(RandomState::new().hash_one(0x7717_u64))),
        }
    }

    /// Seeds the draws, for repeatable tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(AtomicU64::new(seed));
        self
    }
}

impl Layer for TtlJitterLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(TtlJitter {
            inner,
            layer: self.clone(),
        })
    }
}

/// The backend a [`TtlJitterLayer`] gives.
#[derive(Debug)]
struct TtlJitter {
    inner: Arc<dyn Backend>,
    layer: TtlJitterLayer,
}

impl TtlJitter {
    fn stretch(&self, ttl: Option<Duration>) -> Option<Duration> {
        let ttl = ttl?;
        let r = splitmix64(
            self.layer
                .rng
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        );
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
        let stretched = ttl + ttl.mul_f64(self.layer.fraction * unit);
        Some(match self.inner.capability().max_ttl {
            Some(max) => stretched.min(max.max(ttl)),
            None => stretched,
        })
    }

    fn op(&self, op: OpSet) -> OpSet {
        OpSet::new(self.stretch(op.ttl))
    }
}

#[async_trait]
impl Backend for TtlJitter {
    forward_backend!(inner: name, capability, endpoint, get, multi_get, get_with_ttl,
        multi_get_with_ttl, delete, multi_delete, exists,
        increment, ttl, compare_and_delete, clear, raw, close);

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        self.inner.set(ctx, key, value, self.op(op)).await
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        self.inner.add(ctx, key, value, self.op(op)).await
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        self.inner.multi_set(ctx, entries, self.op(op)).await
    }

    async fn expire(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.inner.expire(ctx, key, self.stretch(ttl)).await
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        self.inner
            .compare_and_set(ctx, key, expected, new, self.op(op))
            .await
    }
}
