//! The standard plugins: [`TimingPlugin`], [`HitMissRatioPlugin`], [`TracingPlugin`] and,
//! with the `metrics` feature, `MetricsPlugin`.
//!
//! Each one is a [`Plugin`]: add it to a cache with
//! [`CacheBuilder::plugin`](crate::CacheBuilder::plugin). To read its figures while the cache
//! runs, keep an [`Arc`] of it and give the cache a clone: `Arc<P>` is a plugin whenever `P`
//! is, so both [`plugin`](crate::CacheBuilder::plugin) and
//! [`shared_plugin`](crate::CacheBuilder::shared_plugin) take it, and one plugin may serve
//! several caches.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cache_core::Result<()> {
//! use std::sync::Arc;
//! use cache_core::{Cache, Command, HitMissRatioPlugin, TimingPlugin, TracingPlugin};
//! # let backend = cache_core::testkit::MapBackend::new();
//!
//! let timing = Arc::new(TimingPlugin::new());
//! let ratio = Arc::new(HitMissRatioPlugin::new());
//! let cache = Cache::builder(backend)
//!     .plugin(timing.clone())
//!     .shared_plugin(ratio.clone())
//!     .plugin(TracingPlugin::new())
//!     .build();
//!
//! cache.set("a", &1).await?;
//! let _ = cache.get::<i32>("a").await?;
//! let _ = cache.get::<i32>("b").await?;
//!
//! assert_eq!(timing.get(Command::Get).map(|t| t.count), Some(2));
//! assert_eq!(ratio.ratio(), Some(0.5));
//! # Ok(()) }
//! ```
//!
//! # What the plugins see
//!
//! Plugins see every command that reaches the backend, through the [`CommandInfo`] and
//! [`Outcome`] the cache hands to [`Plugin::after`]:
//!
//! - **Deadline.** Hooks run inside the command's timeout: the time a plugin spends in its
//!   hooks counts against the deadline, and a slow `before` hook can make the command time out
//!   before the backend is reached. After a timeout the `after` hooks still run once, with an
//!   outcome of kind [`ErrorKind::Timeout`] and the time spent until
//!   the deadline, so every plugin here counts timeouts. The plugins in this module only do
//!   short, non-blocking work (atomic counters, a short mutex, one `tracing` event, one
//!   `metrics` update).
//! - **Order.** Plugins run in the order they were added, `before` hooks first, then the
//!   backend call, then the `after` hooks.
//! - **Elapsed time** ([`Outcome::took`]) runs from just before the first `before` hook to just
//!   before the first `after` hook: it includes the `before` hooks and the backend call, not the
//!   encoding of values (done earlier) nor their decoding (done later).
//! - **Hits and misses** ([`Outcome::hits`], [`Outcome::misses`]) are the cache's answer, per
//!   key: a `get` is one hit or one miss, a `multi_get` of `n` keys is `n` hits and misses
//!   together. A read that fails (an error, a timeout) is neither. What the caller does with a
//!   miss afterwards — substitute a default, load the value in
//!   [`get_or_set`](crate::Cache::get_or_set) — is invisible to plugins, so it stays a miss.
//!   The reads `get_or_set` makes are counted like any other `get` (the caller that loads a
//!   cold key reads it twice, before and after taking the load, so that is two misses).
//! - **Errors** ([`Outcome::error`]) are errors of the backend call and timeouts. An `add`
//!   whose key already exists, or a `compare_and_set` that does not match, is a command the
//!   backend completed: the outcome is a success, and the caller's
//!   [`AlreadyExists`](crate::ErrorKind::AlreadyExists) error is made from that answer
//!   afterwards.
//! - **Not seen:** commands refused before any hook runs (an invalid argument, an operation
//!   the backend does not support, a closed cache), and multi-key commands given no keys,
//!   which never reach the backend.

mod hit_miss;
#[cfg(feature = "metrics")]
mod metrics;
mod timing;
mod tracing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use self::hit_miss::{HitMissCounts, HitMissRatioPlugin};
#[cfg(feature = "metrics")]
pub use self::metrics::MetricsPlugin;
pub use self::timing::{CommandTiming, TimingPlugin};
pub(crate) use self::tracing::fnv1a64;
pub use self::tracing::{KeyMode, TracingPlugin};
use crate::{CommandInfo, ErrorKind, Outcome, Plugin};

type HookFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A shared plugin is a plugin: the cache can hold one `Arc` while the program keeps another
/// to read the figures. The hooks are forwarded without another allocation.
impl<T: Plugin + ?Sized> Plugin for Arc<T> {
    fn before<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        info: &'life1 CommandInfo<'life2>,
    ) -> HookFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        T::before(self, info)
    }

    fn after<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        info: &'life1 CommandInfo<'life2>,
        outcome: &'life3 Outcome,
    ) -> HookFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        T::after(self, info, outcome)
    }

    fn span(&self, info: &CommandInfo<'_>) -> Option<::tracing::Span> {
        T::span(self, info)
    }
}

/// The outcome as a short, stable label: `ok`, or the error kind in snake case (`timeout`,
/// `invalid_argument`, …). Used by the tracing and metrics plugins.
pub(crate) fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome.error {
        None => "ok",
        Some(kind) => error_label(kind),
    }
}

fn error_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Serialization => "serialization",
        ErrorKind::InvalidArgument => "invalid_argument",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Connection => "connection",
        ErrorKind::Backend => "backend",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Closed => "closed",
        ErrorKind::Config => "config",
        ErrorKind::Loader => "loader",
        ErrorKind::Unexpected => "unexpected",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::Command;

    #[derive(Default)]
    struct Counting {
        before: AtomicU64,
        after: AtomicU64,
    }

    #[async_trait::async_trait]
    impl Plugin for Counting {
        async fn before(&self, _info: &CommandInfo<'_>) {
            self.before.fetch_add(1, Ordering::Relaxed);
        }
        async fn after(&self, _info: &CommandInfo<'_>, _outcome: &Outcome) {
            self.after.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn arc_forwards_both_hooks() {
        let inner = Arc::new(Counting::default());
        let as_plugin: Arc<dyn Plugin> = Arc::new(inner.clone());
        let info = CommandInfo {
            command: Command::Get,
            namespace: None,
            keys: &["k"],
            backend: "test",
            server: None,
        };
        let outcome = Outcome {
            took: Duration::ZERO,
            hits: 1,
            misses: 0,
            error: None,
            removed: None,
        };
        as_plugin.before(&info).await;
        as_plugin.after(&info, &outcome).await;
        // and an `Arc<dyn Plugin>` is itself a plugin
        let twice: Arc<Arc<dyn Plugin>> = Arc::new(as_plugin);
        twice.after(&info, &outcome).await;
        assert_eq!(inner.before.load(Ordering::Relaxed), 1);
        assert_eq!(inner.after.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn outcome_labels_are_snake_case() {
        let mut outcome = Outcome {
            took: Duration::ZERO,
            hits: 0,
            misses: 0,
            error: None,
            removed: None,
        };
        assert_eq!(outcome_label(&outcome), "ok");
        outcome.error = Some(ErrorKind::Timeout);
        assert_eq!(outcome_label(&outcome), "timeout");
        outcome.error = Some(ErrorKind::InvalidArgument);
        assert_eq!(outcome_label(&outcome), "invalid_argument");
        outcome.error = Some(ErrorKind::AlreadyExists);
        assert_eq!(outcome_label(&outcome), "already_exists");
    }
}
