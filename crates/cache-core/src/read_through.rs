//! Options and events of resilient read-through: [`ReadThrough`], [`Loaded`],
//! [`ReadThroughEvent`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Ttl;

/// How the [`get_or_set`](crate::Cache::get_or_set) family behaves when entries age, loaders
/// are slow or fail, the backend is down, or many processes miss the same key at once.
///
/// Set per cache with [`CacheBuilder::read_through`](crate::CacheBuilder::read_through) and
/// per call with [`Scoped::with_read_through`](crate::Scoped::with_read_through). Every option is off
/// by default: a cache without them behaves as a plain single-flight `get_or_set`, and stores
/// values byte for byte as the serializer wrote them.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`fail_safe`](Self::fail_safe) | off | serve the last known value for up to this long past its TTL when the loader or the backend fails |
/// | [`fail_safe_throttle`](Self::fail_safe_throttle) | 30 s | after a failed load, how long the stale value is served before the loader is tried again |
/// | [`keep_local`](Self::keep_local) | 10 000 with fail-safe | last known values kept in process, to serve while the backend is unreachable |
/// | [`soft_timeout`](Self::soft_timeout) | off | past it, a caller that has a stale value gets it; the load goes on in the background |
/// | [`hard_timeout`](Self::hard_timeout) | off | past it, the loader is abandoned: stale value if any, else [`Timeout`](crate::ErrorKind::Timeout) |
/// | [`eager_refresh`](Self::eager_refresh) | off | a hit past this share of the TTL starts one background refresh |
/// | [`negative_ttl`](Self::negative_ttl) | off | cache "not found" answers of optional loaders for this long |
/// | [`lease`](Self::lease) | off | one loader per key across processes: a lease in the backend, a fenced fill |
/// | [`envelope`](Self::envelope) | off | store read-through entries in the [value envelope](crate::envelope) |
///
/// Fail-safe, eager refresh, negative entries and leases need the envelope (a logical expiry
/// stored with the value), and turn it on: entries written by the `get_or_set` family (and
/// `get_or_set_many`, `#[cached]`) are then stored in it, and every read of the cache
/// understands it. Values written without it stay readable.
///
/// ```
/// use std::time::Duration;
/// use cache_core::ReadThrough;
///
/// let options = ReadThrough::new()
///     .fail_safe(Duration::from_secs(3600))
///     .soft_timeout(Duration::from_millis(100))
///     .hard_timeout(Duration::from_secs(2))
///     .eager_refresh(0.8);
/// assert!(options.needs_envelope());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReadThrough {
    pub(crate) fail_safe: Option<Duration>,
    pub(crate) fail_safe_throttle: Duration,
    pub(crate) keep_local: Option<usize>,
    pub(crate) soft_timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) eager_refresh: Option<f64>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) lease: Option<Duration>,
    pub(crate) envelope: bool,
}

/// The default [`ReadThrough::fail_safe_throttle`].
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(30);

/// The default [`ReadThrough::keep_local`] when fail-safe is on.
pub const DEFAULT_KEEP_LOCAL: usize = 10_000;

impl Default for ReadThrough {
    fn default() -> Self {
        ReadThrough {
            fail_safe: None,
            fail_safe_throttle: DEFAULT_FAIL_SAFE_THROTTLE,
            keep_local: None,
            soft_timeout: None,
            hard_timeout: None,
            eager_refresh: None,
            negative_ttl: None,
            lease: None,
            envelope: false,
        }
    }
}

impl ReadThrough {
    /// Every option off.
    pub fn new() -> Self {
        ReadThrough::default()
    }

    /// Fail-safe: entries stay stored `max_stale` past their TTL, and when the loader fails
    /// (or passes its hard timeout), or the backend cannot be read, the last known value is
    /// served instead of the error for up to `max_stale` past its TTL. Afterwards the error
    /// is returned. Zero turns it off.
    pub fn fail_safe(mut self, max_stale: Duration) -> Self {
        self.fail_safe = Some(max_stale).filter(|d| !d.is_zero());
        self
    }

    /// After a failed load served a stale value, the stale value is served as if fresh for
    /// `throttle` (in this process, and through the backend for the others) before the
    /// loader is tried again, so a failing database is not hammered. Default 30 s.
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.fail_safe_throttle = throttle;
        self
    }

    /// How many last known values the cache keeps in process, to serve (within their
    /// fail-safe window) while the backend cannot be read. Default 10 000 with fail-safe on;
    /// 0 keeps none. Only entries in the envelope are kept.
    pub fn keep_local(mut self, entries: usize) -> Self {
        self.keep_local = Some(entries);
        self
    }

    /// Past `soft`, a caller that has a stale value to serve gets it, while the load
    /// finishes in the background and updates the cache. Callers with nothing to serve wait
    /// on (up to the hard timeout). Zero turns it off.
    pub fn soft_timeout(mut self, soft: Duration) -> Self {
        self.soft_timeout = Some(soft).filter(|d| !d.is_zero());
        self
    }

    /// Past `hard`, the loader is abandoned (its future dropped): callers get the stale value
    /// when fail-safe has one, else an [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)
    /// error. Zero turns it off.
    pub fn hard_timeout(mut self, hard: Duration) -> Self {
        self.hard_timeout = Some(hard).filter(|d| !d.is_zero());
        self
    }

    /// A hit on an entry that has lived at least `fraction` of its TTL (0 < fraction < 1)
    /// answers at once and starts one background refresh, so hot keys never go cold. Values
    /// outside (0, 1) turn it off.
    pub fn eager_refresh(mut self, fraction: f64) -> Self {
        self.eager_refresh = Some(fraction).filter(|f| *f > 0.0 && *f < 1.0);
        self
    }

    /// Caches a `None` from the loader of
    /// [`get_or_set_optional`](crate::Cache::get_or_set_optional) or
    /// [`get_or_load`](crate::Cache::get_or_load) for `ttl`, so a key the database does not
    /// have is not looked up on every call. Zero turns it off (nothing is cached for `None`).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl).filter(|d| !d.is_zero());
        self
    }

    /// Stampede protection across processes: the first caller of a missing key anywhere
    /// writes a lease (an owner token valid for `lease`) into the key with an atomic
    /// compare-and-set, and loads; the others wait and read its value. The loaded value is
    /// written only if the lease is still its own (one compare-and-set), so a loader slower
    /// than its lease never overwrites a newer value. A lease whose holder died expires after
    /// `lease` and is taken over. Give it more than the loader's usual time. Zero turns it off.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease).filter(|d| !d.is_zero());
        self
    }

    /// Stores read-through entries in the [value envelope](crate::envelope) even when no
    /// option needs it (for example so that another cache with fail-safe reads them).
    pub fn envelope(mut self, on: bool) -> Self {
        self.envelope = on;
        self
    }

    /// Whether these options store entries in the envelope.
    pub fn needs_envelope(&self) -> bool {
        self.envelope
            || self.fail_safe.is_some()
            || self.eager_refresh.is_some()
            || self.negative_ttl.is_some()
            || self.lease.is_some()
    }

    /// How many last known values are kept in process.
    pub(crate) fn local_entries(&self) -> usize {
        match (self.fail_safe, self.keep_local) {
            (None, _) => 0,
            (Some(_), Some(n)) => n,
            (Some(_), None) => DEFAULT_KEEP_LOCAL,
        }
    }

    /// The fail-safe window (zero when off).
    pub(crate) fn max_stale(&self) -> Duration {
        self.fail_safe.unwrap_or(Duration::ZERO)
    }
}

/// What a loader of [`get_or_load`](crate::Cache::get_or_load) found: a value or nothing,
/// with the TTL to store it under.
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Loaded, Ttl};
///
/// let found = Loaded::value("Ada").with_ttl(Duration::from_secs(60));
/// assert_eq!(found.ttl(), Ttl::After(Duration::from_secs(60)));
/// let missing: Loaded<&str> = Loaded::none();
/// assert!(missing.into_value().is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    value: Option<V>,
    ttl: Ttl,
}

impl<V> Loaded<V> {
    /// A value, stored under the call's TTL.
    pub fn value(value: V) -> Self {
        Loaded {
            value: Some(value),
            ttl: Ttl::Default,
        }
    }

    /// Nothing found: a miss, cached as a negative entry when
    /// [`ReadThrough::negative_ttl`] is set.
    pub fn none() -> Self {
        Loaded {
            value: None,
            ttl: Ttl::Default,
        }
    }

    /// The TTL of this entry, instead of the call's (for a `none`, instead of the negative
    /// TTL).
    pub fn with_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// The TTL chosen (`Ttl::Default`: the call's).
    pub fn ttl(&self) -> Ttl {
        self.ttl
    }

    /// The value, if found.
    pub fn into_value(self) -> Option<V> {
        self.value
    }

    pub(crate) fn into_parts(self) -> (Option<V>, Ttl) {
        (self.value, self.ttl)
    }
}

impl<V> From<Option<V>> for Loaded<V> {
    fn from(value: Option<V>) -> Self {
        Loaded {
            value,
            ttl: Ttl::Default,
        }
    }
}

/// A decision of the read-through machinery, told to plugins
/// ([`Plugin::on_event`](crate::Plugin::on_event)) and counted
/// ([`Cache::read_through_stats`](crate::Cache::read_through_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadThroughEvent {
    /// A caller got a stale value (past its TTL, within the fail-safe window).
    StaleServed,
    /// A load failed or passed its hard timeout, and a stale value answered instead.
    FailSafeActivated,
    /// A hit past the eager-refresh share of its TTL started a background refresh.
    RefreshStarted,
    /// A caller stopped waiting at the soft timeout; the load went on in the background.
    SoftTimeout,
    /// A loader was abandoned at the hard timeout.
    HardTimeout,
    /// A caller found no fresh value and started a load.
    LoadStarted,
    /// A caller waited for a load another caller of this process had started.
    WaiterCoalesced,
    /// This process took the lease of a key, to load it.
    LeaseAcquired,
    /// Another process held the lease of a key: this one waited for its value.
    LeaseWaited,
    /// A loaded value was not written because the lease was no longer ours (a newer value
    /// or a newer lease was there).
    LeaseLost,
    /// The backend could not be read; the call went on as for a miss (fail-safe).
    ReadFailed,
}

impl ReadThroughEvent {
    /// Every event, in declaration order.
    pub const ALL: [ReadThroughEvent; 11] = [
        ReadThroughEvent::StaleServed,
        ReadThroughEvent::FailSafeActivated,
        ReadThroughEvent::RefreshStarted,
        ReadThroughEvent::SoftTimeout,
        ReadThroughEvent::HardTimeout,
        ReadThroughEvent::LoadStarted,
        ReadThroughEvent::WaiterCoalesced,
        ReadThroughEvent::LeaseAcquired,
        ReadThroughEvent::LeaseWaited,
        ReadThroughEvent::LeaseLost,
        ReadThroughEvent::ReadFailed,
    ];

    /// The event's name in snake case, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReadThroughEvent::StaleServed => "stale_served",
            ReadThroughEvent::FailSafeActivated => "fail_safe_activated",
            ReadThroughEvent::RefreshStarted => "refresh_started",
            ReadThroughEvent::SoftTimeout => "soft_timeout",
            ReadThroughEvent::HardTimeout => "hard_timeout",
            ReadThroughEvent::LoadStarted => "load_started",
            ReadThroughEvent::WaiterCoalesced => "waiter_coalesced",
            ReadThroughEvent::LeaseAcquired => "lease_acquired",
            ReadThroughEvent::LeaseWaited => "lease_waited",
            ReadThroughEvent::LeaseLost => "lease_lost",
            ReadThroughEvent::ReadFailed => "read_failed",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ReadThroughEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin learns about a [`ReadThroughEvent`].
#[derive(Debug, Clone, Copy)]
pub struct EventInfo<'a> {
    /// The event.
    pub event: ReadThroughEvent,
    /// The key as the caller gave it.
    pub key: &'a str,
    /// The resolved namespace (`None`: no namespace).
    pub namespace: Option<&'a str>,
    /// The backend's name.
    pub backend: &'static str,
}

/// How many times each [`ReadThroughEvent`] happened on a cache and its clones.
#[derive(Debug, Default)]
pub(crate) struct EventCounters([AtomicU64; ReadThroughEvent::ALL.len()]);

impl EventCounters {
    pub(crate) fn add(&self, event: ReadThroughEvent) {
        self.0[event.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ReadThroughStats {
        ReadThroughStats(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// A snapshot of the read-through event counts of a cache
/// ([`Cache::read_through_stats`](crate::Cache::read_through_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadThroughStats([u64; ReadThroughEvent::ALL.len()]);

impl ReadThroughStats {
    /// How many times `event` happened.
    pub fn get(&self, event: ReadThroughEvent) -> u64 {
        self.0[event.index()]
    }

    /// Every event with its count.
    pub fn iter(&self) -> impl Iterator<Item = (ReadThroughEvent, u64)> + '_ {
        ReadThroughEvent::ALL.iter().map(|e| (*e, self.get(*e)))
    }
}

/// A loader of the [`get_or_set`](crate::Cache::get_or_set) family: a closure that owns what
/// it uses and returns a `Send` future of `Result<T, E>` — `|| async move { … }` or
/// `async move || { … }`.
///
/// It is implemented for every such closure; it exists so that calls name at most the value
/// type (`get_or_set::<User>(…)`), never the closure's or the future's. The loader runs on a
/// task of its own, hence `Send + 'static`.
pub trait Loader<T>: Send + 'static {
    /// The loader's error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;
    /// The future that loads.
    type Future: Future<Output = Result<T, Self::Error>> + Send + 'static;

    /// Starts the load.
    fn load(self) -> Self::Future;
}

impl<T, E, F, Fut> Loader<T> for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = E;
    type Future = Fut;

    fn load(self) -> Fut {
        self()
    }
}
