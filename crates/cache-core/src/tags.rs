//! [`Tags`]: invalidate every entry written with a tag at once, on any backend.
//!
//! A cache built with [`CacheBuilder::tags`](crate::CacheBuilder::tags) lets writes attach
//! tags to their entries ([`Cache::with_tags`](crate::Cache::with_tags)) and makes every
//! entry of a tag a miss with one call ([`Cache::invalidate_tag`](crate::Cache::invalidate_tag)),
//! in every process that shares the backend, at a constant cost: one small write per tag,
//! whatever the number of entries.
//!
//! The invalidation is lazy (FusionCache's design): each tag has a *marker*, one small key
//! holding the time of its last invalidation; each tagged entry carries its tags and its
//! write time in the [value envelope](crate::envelope) (version 2). A read of a tagged entry
//! compares them: the entry is a miss when any of its tags was invalidated at or after it was
//! written. Nothing grows with the number of entries of a tag, and nothing is scanned.
//!
//! See the guide page "Tags" for the guarantees in numbers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Error, Result};

/// How long a process trusts a tag's invalidation time it read, by default: 1 s.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// The most tags one entry carries.
pub const MAX_TAGS_PER_ENTRY: usize = 32;

/// The key of a tag's marker is this prefix and the tag, built in the namespace of the call
/// by the cache's key builder (`{namespace}:~tag:{tag}` with the default one). A cache with
/// tags refuses user keys that start with it.
pub const MARKER_PREFIX: &str = "~tag:";

/// How many tag times a process keeps by default (then it forgets them all and reads them
/// again as needed).
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

/// The options of tag invalidation; turn it on with
/// [`CacheBuilder::tags`](crate::CacheBuilder::tags).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_core::{Cache, Tags};
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let cache = Cache::builder(backend)
///     .namespace("shop")
///     .tags(Tags::new().refresh(Duration::from_millis(500)))
///     .build();
/// cache.with_tags(["user:42", "org:7"]).set("cart:42", &3).await?;
/// cache.with_tags(["user:42"]).set("profile:42", &"Ada").await?;
/// cache.set("untagged", &1).await?;
///
/// cache.invalidate_tag("user:42").await?;
/// assert_eq!(cache.get::<u32>("cart:42").await?, None);
/// assert_eq!(cache.get::<String>("profile:42").await?, None);
/// assert_eq!(cache.get::<u32>("untagged").await?, Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tags {
    pub(crate) refresh: Duration,
    pub(crate) marker_ttl: Option<Duration>,
    pub(crate) max_tracked: usize,
}

impl Default for Tags {
    fn default() -> Self {
        Tags::new()
    }
}

impl Tags {
    /// Tags with a [refresh](Self::refresh) of 1 s, markers that never expire, and up to
    /// 100,000 tag times kept per process.
    pub const fn new() -> Self {
        Tags {
            refresh: DEFAULT_REFRESH,
            marker_ttl: None,
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }

    /// How long a process trusts a tag's invalidation time it has read before it reads it
    /// again: an invalidation made by another process is seen by this one at most `refresh`
    /// (plus one round trip) after it was written. Zero reads the markers of a tagged entry
    /// on every read. An invalidation made through this cache (or a clone) is seen by it at
    /// once. Default: 1 s.
    pub const fn refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    /// How long a tag's marker is kept after its last invalidation (zero: for good, the
    /// default). A marker must outlive every entry that may carry its tag and was written
    /// before the invalidation: set it to at least the longest TTL of tagged entries, plus
    /// the fail-safe window when there is one. A marker that is gone lets the entries it
    /// invalidated be read again.
    pub const fn marker_ttl(mut self, ttl: Duration) -> Self {
        self.marker_ttl = if ttl.is_zero() { None } else { Some(ttl) };
        self
    }

    /// How many tag times one cache keeps in process (at least 1); past that it forgets them
    /// all and reads them again as needed. Default: 100,000.
    pub const fn max_tracked(mut self, tags: usize) -> Self {
        self.max_tracked = if tags == 0 { 1 } else { tags };
        self
    }
}

/// Checks the tags of a call: each 1 to [`MAX_TAG_LEN`] bytes without whitespace or control
/// characters.
pub(crate) fn validate(tags: &[String]) -> Result<()> {
    for tag in tags {
        if tag.is_empty() {
            return Err(Error::invalid_argument("a tag must not be empty"));
        }
        if tag.len() > MAX_TAG_LEN {
            return Err(Error::invalid_argument(format!(
                "a tag is at most {MAX_TAG_LEN} bytes, not {}",
                tag.len()
            ))
            .with_context("tag", tag.chars().take(32).collect::<String>()));
        }
        if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid_argument(
                "a tag must not hold whitespace or control characters",
            )
            .with_context("tag", tag.escape_debug().to_string()));
        }
    }
    Ok(())
}

/// The tags of a call, duplicates dropped.
pub(crate) fn collect<I, T>(tags: I) -> Vec<String>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.into();
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

/// The next write time this process may give an entry: later than every invalidation it
/// has written (ms since the epoch).
static FLOOR: AtomicU64 = AtomicU64::new(0);

/// Now, as a write time (ms since the epoch): the wall clock, but never at or before an
/// invalidation this process has written, so a write that follows an invalidation in the
/// same millisecond is not taken for one that preceded it.
pub(crate) fn stamp_now() -> u64 {
    crate::envelope::now_ms().max(FLOOR.load(Ordering::Acquire))
}

/// The time of an invalidation written now; every later write of this process is stamped
/// after it.
pub(crate) fn stamp_invalidation() -> u64 {
    let at = stamp_now();
    FLOOR.fetch_max(at + 1, Ordering::AcqRel);
    at
}
