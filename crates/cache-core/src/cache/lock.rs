//! Locks over the cache: [`Lock`] (a lease with an owner token and a fencing token) and
//! [`OptimisticLock`] (compare-and-set on a value read before).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cache, Scoped};
use crate::context::Deadline;
use crate::layer::retry::splitmix64;
use crate::layer::timeout::timeout_error;
use crate::plugin::Command;
use crate::{Error, ErrorKind, Result, Serializer, Ttl, Utf8};

/// The default lease of a [`Lock`]: 10 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The suffix of a lock's key: the lock on `report` is stored at `report-lock` (aiocache's
/// `RedLock` key), in the cache's namespace.
const LOCK_SUFFIX: &str = "-lock";

/// The suffix of a lock's fencing counter.
const FENCE_SUFFIX: &str = "-lock-fence";

impl<S: Serializer> Cache<S> {
    /// A lock on `key` across every process that uses the same backend and namespace: see
    /// [`Lock`].
    pub fn lock(&self, key: impl Into<String>) -> Lock<S> {
        Lock {
            cache: self.clone(),
            key: key.into(),
            lease: DEFAULT_LEASE,
            wait: None,
        }
    }

    /// An optimistic lock on the value at `key`: see [`OptimisticLock`].
    pub fn optimistic_lock(&self, key: impl Into<String>) -> OptimisticLock<S> {
        OptimisticLock {
            cache: self.clone(),
            key: key.into(),
            ttl: Ttl::Default,
            seen: None,
        }
    }
}

/// A mutual-exclusion lock held in the backend, with a lease, an owner token and a fencing
/// token: the correct form of aiocache's `RedLock`.
///
/// - **Acquire** writes the lock key only if it is absent (`SET NX PX` on Redis, `add` on
///   Memcached, one critical section in memory), with the lease as its TTL and a random owner
///   token as its value. A caller that finds it taken waits with jittered back-off until it
///   owns the lock or its wait ends ([`wait`](Lock::wait), default the cache's timeout) with
///   [`ErrorKind::Timeout`]. Nobody proceeds without owning the lock.
/// - **Release** removes the key only if it still holds this owner's token, atomically (a
///   script on Redis, a CAS delete on Memcached): a holder whose lease expired never removes
///   the next holder's lock.
/// - **Extend** renews the lease, again only for the owner.
/// - **Fencing**: [`LockGuard::fencing_token`] gives a number that grows with every holder
///   that asks for one, so a resource that remembers the highest token it has seen can refuse
///   a write from a holder whose lease ran out while it was paused.
///
/// A lease is a bound, not a guarantee: a holder paused longer than its lease (a GC pause, a
/// stalled VM) loses the lock without knowing. Keep critical sections well inside the lease,
/// extend it for long work, and fence writes to resources that must never see two writers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
///
/// let lock = cache.lock("nightly-report").lease(Duration::from_secs(30));
/// let mut guard = lock.acquire().await?;
/// let fence = guard.fencing_token().await?; // pass it along with writes
/// assert!(lock.try_acquire().await?.is_none(), "held");
/// guard.release().await?;
/// assert!(lock.try_acquire().await?.is_some(), "free again");
/// # let _ = fence;
/// # Ok(()) }
/// ```
#[must_use = "a lock does nothing until acquired"]
pub struct Lock<S = crate::Json> {
    cache: Cache<S>,
    key: String,
    lease: Duration,
    wait: Option<Option<Duration>>,
}

impl<S: Clone> Clone for Lock<S> {
    fn clone(&self) -> Self {
        Lock {
            cache: self.cache.clone(),
            key: self.key.clone(),
            lease: self.lease,
            wait: self.wait,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Lock<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// A random owner token: 128 bits from the process's hash keys, a counter and the clock, in
/// hex.
fn owner_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let a = state.hash_one((n, t, std::process::id()));
    let b = splitmix64(a ^ state.hash_one(t.rotate_left(17)));
    format!("{a:016x}{b:016x}")
}

impl<S: Serializer> Lock<S> {
    /// How long the lock is held before it frees itself if not released or extended
    /// (default [`DEFAULT_LEASE`]). Memcached rounds it up to whole seconds.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long [`acquire`](Self::acquire) waits for a taken lock (default: the cache's
    /// timeout; `None` waits without bound).
    pub fn wait(mut self, wait: impl Into<Option<Duration>>) -> Self {
        self.wait = Some(wait.into().filter(|d| !d.is_zero()));
        self
    }

    /// The key the lock is stored at (the user key; the cache's namespace applies).
    pub fn lock_key(&self) -> String {
        format!("{}{LOCK_SUFFIX}", self.key)
    }

    fn text(&self) -> Scoped<'_, Utf8> {
        self.cache.with_serializer(Utf8)
    }

    /// Takes the lock if it is free, without waiting: `None` when another owner holds it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] for a zero lease; [`ErrorKind::Unsupported`] when the
    /// backend has no atomic add or compare operations; backend errors.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard<S>>> {
        if self.lease.is_zero() {
            return Err(
                Error::invalid_argument("a lock's lease must be greater than zero")
                    .with_context("key", &self.key),
            );
        }
        self.cache.scoped().require(
            self.cache.capability().compare_and_set,
            "locks (they release with compare_and_delete)",
        )?;
        let token = owner_token();
        let key = self.lock_key();
        match self.text().with_ttl(self.lease).add(&key, &token).await {
            Ok(()) => Ok(Some(LockGuard {
                cache: self.cache.clone(),
                key: self.key.clone(),
                lock_key: key,
                token,
                lease: self.lease,
                fence: None,
                released: false,
            })),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes the lock, waiting with jittered exponential back-off (5 ms doubling up to
    /// 100 ms or a quarter of the lease) while another owner holds it.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] when the wait ends first; the errors of
    /// [`try_acquire`](Self::try_acquire).
    pub async fn acquire(&self) -> Result<LockGuard<S>> {
        let budget = self.wait.unwrap_or_else(|| self.cache.default_timeout());
        let deadline = budget.map(Deadline::after);
        let cap = Duration::from_millis(100)
            .min(self.lease / 4)
            .max(Duration::from_millis(1));
        let mut backoff = Duration::from_millis(5).min(cap);
        let mut draw = owner_token_seed();
        loop {
            if let Some(guard) = self.try_acquire().await? {
                return Ok(guard);
            }
            draw = splitmix64(draw);
            let pause = backoff.mul_f64(0.5 + (draw >> 11) as f64 / (1u64 << 53) as f64 / 2.0);
            if let Some(d) = deadline
                && d.remaining() <= pause
            {
                return Err(timeout_error(d.budget())
                    .with_context("op", "lock")
                    .with_context("key", &self.key));
            }
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(cap);
        }
    }
}

fn owner_token_seed() -> u64 {
    RandomState::new().hash_one(std::time::Instant::now())
}

/// A held [`Lock`]. Release it with [`release`](LockGuard::release); dropping it unreleased
/// sends the release from a task spawned on the current Tokio runtime (none: the lease
/// frees the lock when it ends). A release that cannot be sent (the server is down) leaves
/// the lock to its lease.
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard<S: Serializer = crate::Json> {
    cache: Cache<S>,
    key: String,
    lock_key: String,
    token: String,
    lease: Duration,
    fence: Option<u64>,
    released: bool,
}

impl<S: Serializer> fmt::Debug for LockGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .field("fence", &self.fence)
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl<S: Serializer> LockGuard<S> {
    /// This holder's owner token, stored as the lock key's value.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The key the lock is stored at.
    pub fn lock_key(&self) -> &str {
        &self.lock_key
    }

    fn text(&self) -> Scoped<'_, Utf8> {
        self.cache.with_serializer(Utf8)
    }

    /// A fencing token for this holder: greater than the token of every holder that asked for
    /// one before this holder took the lock. Pass it with each write to a resource that must
    /// not accept writes from two holders; the resource refuses a token lower than the highest
    /// it has seen. Fetched once (one increment and one ownership check), then cached.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the lock was lost (its lease ended and another owner may
    /// hold it): the token must not be used; backend errors.
    pub async fn fencing_token(&mut self) -> Result<u64> {
        if let Some(fence) = self.fence {
            return Ok(fence);
        }
        let n = self
            .cache
            .increment(&format!("{}{FENCE_SUFFIX}", self.key), 1)
            .await?;
        // Valid only if this holder still owned the lock after the increment: every later
        // holder increments after taking the lock, so it gets a greater number.
        self.extend(self.lease).await?;
        let fence = u64::try_from(n).map_err(|_| {
            Error::new(ErrorKind::Unexpected, "the fencing counter went negative")
                .with_context("key", &self.key)
        })?;
        self.fence = Some(fence);
        Ok(fence)
    }

    /// Renews the lease to `lease` from now, only if this holder still owns the lock.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the lock was lost; backend errors.
    pub async fn extend(&self, lease: Duration) -> Result<()> {
        let renewed = self
            .text()
            .with_ttl(lease)
            .compare_and_set(&self.lock_key, Some(&self.token), &self.token)
            .await?;
        if renewed {
            Ok(())
        } else {
            Err(lost(&self.key))
        }
    }

    /// Whether this holder still owns the lock (its lease has not ended and nobody else took
    /// it).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn is_held(&self) -> Result<bool> {
        let current: Option<String> = self.text().get(&self.lock_key).await?;
        Ok(current.as_deref() == Some(self.token.as_str()))
    }

    /// Releases the lock if this holder still owns it. Returns whether it did: `false` when
    /// the lease had ended (another owner may hold the lock now, and it is left alone).
    ///
    /// # Errors
    /// Backend errors (the lock then frees itself when its lease ends).
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        self.text()
            .compare_and_delete(&self.lock_key, &self.token)
            .await
    }
}

fn lost(key: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        "the lock was lost: its lease ended and another owner may hold it",
    )
    .with_context("key", key)
}

impl<S: Serializer> Drop for LockGuard<S> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cache = self.cache.clone();
        let lock_key = std::mem::take(&mut self.lock_key);
        let token = std::mem::take(&mut self.token);
        runtime.spawn(async move {
            if let Err(e) = cache
                .with_serializer(Utf8)
                .compare_and_delete(&lock_key, &token)
                .await
            {
                tracing::warn!(
                    key = lock_key,
                    error = %format_args!("{e:#}"),
                    "a dropped lock guard could not release its lock; its lease will"
                );
            }
        });
    }
}

/// Optimistic locking: read a value, compute a new one, and write it only if nothing changed
/// the value in between — else [`ErrorKind::Conflict`]. aiocache's `OptimisticLock`, on every
/// backend.
///
/// The check compares the stored bytes with the ones read (a script on Redis, a CAS on
/// Memcached, one critical section in memory), so a value changed and changed back in
/// between (A → B → A) is not seen as a change: keep a version in the value when that
/// matters. A key that was absent when read must still be absent to be written (aiocache
/// wrote it unconditionally).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::ErrorKind;
/// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
/// cache.set("stock", &10).await?;
///
/// let mut lock = cache.optimistic_lock("stock");
/// let stock: u32 = lock.get().await?.unwrap_or(0);
/// cache.set("stock", &7).await?; // someone else writes in between
/// let err = lock.cas(&(stock - 1)).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Conflict);
///
/// let mut lock = cache.optimistic_lock("stock");
/// let stock: u32 = lock.get().await?.unwrap_or(0);
/// lock.cas(&(stock - 1)).await?;
/// assert_eq!(cache.get::<u32>("stock").await?, Some(6));
/// # Ok(()) }
/// ```
#[must_use = "an optimistic lock does nothing until read and written"]
pub struct OptimisticLock<S = crate::Json> {
    cache: Cache<S>,
    key: String,
    ttl: Ttl,
    seen: Option<Option<Bytes>>,
}

impl<S: fmt::Debug> fmt::Debug for OptimisticLock<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OptimisticLock")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .field("read", &self.seen.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Serializer> OptimisticLock<S> {
    /// The TTL of the write ([`Ttl::Default`]: the cache's).
    pub fn with_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// Reads the value (and remembers its bytes for [`cas`](Self::cas)); `None` when absent.
    ///
    /// # Errors
    /// The errors of [`Cache::get`].
    pub async fn get<V: DeserializeOwned>(&mut self) -> Result<Option<V>> {
        let scoped = self.cache.scoped();
        let raw = scoped.get_raw(&self.key).await?;
        let value = raw
            .as_deref()
            .map(|b| scoped.decode(b, &self.key))
            .transpose()?;
        self.seen = Some(raw);
        Ok(value)
    }

    /// Writes `value` only if the stored value is still the one [`get`](Self::get) read
    /// (still absent, if it was absent).
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the value changed or [`get`](Self::get) was not called;
    /// the errors of [`Cache::compare_and_set`].
    pub async fn cas<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<()> {
        let Some(seen) = self.seen.take() else {
            return Err(
                Error::new(ErrorKind::Conflict, "cas without a read: call get() first")
                    .with_context("key", &self.key),
            );
        };
        let written = self
            .cache
            .with_ttl(self.ttl)
            .compare_and_set_raw(&self.key, seen, value)
            .await?;
        if written {
            Ok(())
        } else {
            Err(
                Error::new(ErrorKind::Conflict, "the value changed since it was read")
                    .with_context("key", &self.key),
            )
        }
    }
}

impl<S: Serializer> Scoped<'_, S> {
    /// The stored bytes at `key`.
    async fn get_raw(&self, key: &str) -> Result<Option<Bytes>> {
        let (ns, built) = self.prepare(key)?;
        let keys = [key];
        let ctx = self.ctx(Command::Get, ns, &keys);
        self.stack().get(&ctx, &built).await
    }

    /// `compare_and_set` with the expected value as stored bytes.
    async fn compare_and_set_raw<V: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: Option<Bytes>,
        new: &V,
    ) -> Result<bool> {
        self.require(self.inner.capability.compare_and_set, "compare_and_set")?;
        let (ns, built) = self.prepare(key)?;
        let new = self.encode(new, key)?;
        let op = self.write_op()?;
        let keys = [key];
        let ctx = self.ctx(Command::CompareAndSet, ns, &keys);
        self.stack()
            .compare_and_set(&ctx, &built, expected, new, op)
            .await
    }
}
