//! [`HitMissRatioPlugin`]: how often reads find their key.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::{CommandInfo, Outcome, Plugin};

/// Hits and misses read together by [`HitMissRatioPlugin::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HitMissCounts {
    /// Keys found.
    pub hits: u64,
    /// Keys not found.
    pub misses: u64,
}

impl HitMissCounts {
    /// Keys read: `hits + misses` (saturating).
    pub fn total(&self) -> u64 {
        self.hits.saturating_add(self.misses)
    }

    /// `hits / total`, or `None` when nothing was read (never a division by zero, never NaN).
    pub fn ratio(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// Counts keys found and not found by reads (aiocache's `HitMissRatioPlugin`).
///
/// Counted per key, from the cache's answer ([`Outcome::hits`] and [`Outcome::misses`]): a
/// `get` is one hit or one miss, a `multi_get` of `n` keys adds `n` in all (a key asked twice
/// counts twice), and `get_or_set` counts through the reads it makes. A read that fails or
/// times out counts neither. The plugin sees the cache's answer, not what the caller did with
/// it, so a miss the caller then replaced with a default value is still a miss. A
/// `multi_get` of no keys never reaches the backend and counts nothing, and
/// [`ratio`](Self::ratio) is `None`, not a division by zero, until something was read.
///
/// Two lock-free counters. Keep an [`Arc`](std::sync::Arc) of the plugin to read them while
/// the cache holds another; `Arc<HitMissRatioPlugin>` is a plugin too. The plugin is not
/// `Clone`: a clone would either share the counters or split them, and an explicit `Arc` says
/// which.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::sync::Arc;
/// use cache_core::{Cache, HitMissRatioPlugin};
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let reads = Arc::new(HitMissRatioPlugin::new());
/// let cache = Cache::builder(backend).plugin(reads.clone()).build();
/// assert_eq!(reads.ratio(), None);
///
/// cache.set("a", &1).await?;
/// let _ = cache.get::<i32>("a").await?; // hit
/// let _ = cache.multi_get::<i32, _, _>(["a", "b", "c"]).await?; // 1 hit, 2 misses
/// let n = cache.get::<i32>("z").await?.unwrap_or(0); // a miss, whatever the default
///
/// assert_eq!((reads.hits(), reads.misses(), reads.total()), (2, 3, 5));
/// assert_eq!(reads.ratio(), Some(0.4));
/// # let _ = n;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct HitMissRatioPlugin {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitMissRatioPlugin {
    /// A plugin with nothing counted yet.
    pub fn new() -> Self {
        HitMissRatioPlugin::default()
    }

    /// Keys found by reads.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Keys not found by reads.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Hits and misses read once each, to compute several figures from the same reading.
    pub fn counts(&self) -> HitMissCounts {
        HitMissCounts {
            hits: self.hits(),
            misses: self.misses(),
        }
    }

    /// Keys read: hits plus misses.
    pub fn total(&self) -> u64 {
        self.counts().total()
    }

    /// The share of keys found, between 0 and 1; `None` when nothing was read.
    pub fn ratio(&self) -> Option<f64> {
        self.counts().ratio()
    }

    /// Sets both counters back to zero (one after the other: a read finishing meanwhile may
    /// be half counted).
    pub fn reset(&self) {
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
    }
}

#[async_trait]
impl Plugin for HitMissRatioPlugin {
    async fn after(&self, _info: &CommandInfo<'_>, outcome: &Outcome) {
        if outcome.hits > 0 {
            self.hits.fetch_add(outcome.hits, Ordering::Relaxed);
        }
        if outcome.misses > 0 {
            self.misses.fetch_add(outcome.misses, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Command, ErrorKind};

    fn read(hits: u64, misses: u64, error: Option<ErrorKind>) -> Outcome {
        Outcome {
            took: Duration::ZERO,
            hits,
            misses,
            error,
            removed: None,
        }
    }

    #[tokio::test]
    async fn counts_hits_misses_total_and_ratio() {
        let plugin = HitMissRatioPlugin::new();
        let info = |command| CommandInfo {
            command,
            namespace: Some("ns"),
            keys: &[],
            backend: "test",
            server: None,
        };
        assert_eq!(plugin.counts(), HitMissCounts::default());
        assert_eq!(plugin.total(), 0);
        assert_eq!(plugin.ratio(), None, "nothing read: no ratio, no NaN");

        plugin.after(&info(Command::Set), &read(0, 0, None)).await;
        assert_eq!(plugin.ratio(), None, "writes are not reads");

        plugin.after(&info(Command::Get), &read(1, 0, None)).await;
        plugin.after(&info(Command::Get), &read(0, 1, None)).await;
        plugin
            .after(&info(Command::MultiGet), &read(1, 3, None))
            .await;
        plugin
            .after(&info(Command::Get), &read(0, 0, Some(ErrorKind::Timeout)))
            .await;

        assert_eq!(plugin.hits(), 2);
        assert_eq!(plugin.misses(), 4);
        assert_eq!(plugin.total(), 6);
        assert_eq!(plugin.ratio(), Some(2.0 / 6.0));
        assert_eq!(plugin.counts(), HitMissCounts { hits: 2, misses: 4 });

        plugin.reset();
        assert_eq!((plugin.hits(), plugin.misses()), (0, 0));
        assert_eq!(plugin.ratio(), None);
    }

    #[test]
    fn counts_saturate_and_ratio_stays_in_range() {
        let counts = HitMissCounts {
            hits: u64::MAX,
            misses: 1,
        };
        assert_eq!(counts.total(), u64::MAX);
        let ratio = counts.ratio().unwrap();
        assert!((0.0..=1.0).contains(&ratio));
        let all_misses = HitMissCounts { hits: 0, misses: 3 };
        assert_eq!(all_misses.ratio(), Some(0.0));
    }
}
