//! Reads that answer a miss when the backend cannot be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::backend::{Backend, Entry};
use crate::context::CallContext;
use crate::{Error, Result, forward_backend};

/// Turns a failed read into a miss: `get` answers `None`, `multi_get` answers `None` for every
/// key, `exists` answers `false`, when the stack below fails with a temporary error
/// ([`Error::is_temporary`]: the server is unreachable, the connection was lost, a backend
/// timeout). With it, `get_or_set` runs its loader while the cache is down and the service
/// keeps answering from its database. Writes, and errors that are not temporary (a value that
/// does not decode, a refused argument), still fail.
///
/// Each read answered this way is counted ([`misses_served`](Self::misses_served)) and
/// logged at `warn` level. The cache's own deadline sits above this layer, so a server that
/// hangs ends in `Timeout` rather than a miss; give the backend a command timeout shorter than
/// the cache's to fail open on a slow server too.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::Cache;
/// use cache_core::layer::{ChaosLayer, FailOpenLayer};
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let fail_open = FailOpenLayer::new();
/// let cache = Cache::builder(backend)
///     .layer(ChaosLayer::new(1).error_rate(1.0)) // the server is down
///     .layer(fail_open.clone())
///     .build();
/// let v: u32 = cache.get_or_set("k", || async { Ok::<_, std::io::Error>(7) }).await?;
/// assert_eq!(v, 7);
/// assert_eq!(fail_open.misses_served(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct FailOpenLayer {
    served: Arc<AtomicU64>,
}

impl FailOpenLayer {
    /// The layer.
    pub fn new() -> Self {
        FailOpenLayer::default()
    }

    /// Reads answered as misses because the backend failed, so far (this layer and its
    /// clones).
    pub fn misses_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Layer for FailOpenLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(FailOpen {
            inner,
            layer: self.clone(),
        })
    }
}

/// The backend a [`FailOpenLayer`] gives.
#[derive(Debug)]
struct FailOpen {
    inner: Arc<dyn Backend>,
    layer: FailOpenLayer,
}

impl FailOpen {
    /// `miss` instead of a temporary error.
    fn open<T>(
        &self,
        ctx: &CallContext<'_>,
        answer: Result<T>,
        miss: impl FnOnce() -> T,
    ) -> Result<T> {
        match answer {
            Err(e) if e.is_temporary() => {
                self.layer.served.fetch_add(1, Ordering::Relaxed);
                log_miss(ctx, &e);
                Ok(miss())
            }
            other => other,
        }
    }
}

#[cold]
fn log_miss(ctx: &CallContext<'_>, e: &Error) {
    tracing::warn!(
        op = ctx.command().as_str(),
        backend = ctx.backend(),
        error = %format_args!("{e:#}"),
        "the backend failed; answering a miss"
    );
}

#[async_trait]
impl Backend for FailOpen {
    forward_backend!(inner: name, capability, endpoint, set, add, multi_set, delete, multi_delete,
        increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        let answer = self.inner.get(ctx, key).await;
        self.open(ctx, answer, || None)
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let answer = self.inner.multi_get(ctx, keys).await;
        self.open(ctx, answer, || vec![None; keys.len()])
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        let answer = self.inner.get_with_ttl(ctx, key).await;
        self.open(ctx, answer, || None)
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        let answer = self.inner.multi_get_with_ttl(ctx, keys).await;
        self.open(ctx, answer, || vec![None; keys.len()])
    }

    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let answer = self.inner.exists(ctx, key).await;
        self.open(ctx, answer, || false)
    }
}
