//! The `get_or_set` family: read-through with single flight, and the options of
//! [`ReadThrough`] — fail-safe, soft and hard loader timeouts, eager refresh, negative
//! entries and leases across processes.
//!
//! The loader of these methods runs on its own task, so that it can outlive the caller that
//! started it: past a soft timeout the caller leaves with the stale value while the load
//! finishes and fills the cache; a caller that is cancelled does not cancel the load the
//! others wait for; an eager refresh runs while the hit is answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::flight::{FlightResult, LOADING, Role, loader_error, reentrant_error};
use super::{Inner, Scoped};
use crate::backend::OpSet;
use crate::context::{CallContext, Deadline};
use crate::envelope::{self, Stored, Times};
use crate::layer::timeout::within;
use crate::plugin::Command;
use crate::read_through::{EventInfo, Loaded, Loader, ReadThrough, ReadThroughEvent};
use crate::{Error, ErrorKind, Result, Serializer, Ttl};

/// What a load gave, encoded: the payload (`None`: nothing found) and its TTL.
struct LoadedBytes {
    payload: Option<Bytes>,
    ttl: Ttl,
}

type LoadFuture = Pin<Box<dyn Future<Output = Result<LoadedBytes>> + Send>>;
type LoadJob = Box<dyn FnOnce() -> LoadFuture + Send>;

/// A value past its freshness that may still be served.
#[derive(Clone)]
struct Stale {
    /// The serialized value; `None` for a negative entry.
    payload: Option<Bytes>,
    times: Times,
    /// The whole stored entry (envelope included).
    raw: Bytes,
}

/// What a read found, for the read-through.
enum Found {
    /// A fresh value (`times` when it is in the envelope and may be refreshed eagerly).
    Hit(Bytes, Option<Times>),
    /// A fresh negative entry.
    NegativeHit,
    /// Nothing fresh.
    Miss(Miss),
}

#[derive(Default)]
struct Miss {
    /// A value to serve if the load fails or is slow.
    stale: Option<Stale>,
    /// The exact stored bytes (what a lease replaces, atomically).
    current: Option<Bytes>,
    /// Another caller somewhere holds the lease of the key.
    lease_held: bool,
}

/// How a wait for a load ended.
enum Answer {
    /// The load's outcome.
    Done(crate::Result<Option<Bytes>>),
    /// The soft timeout passed (the caller has a stale value).
    Soft,
    /// The loading task went away without an answer (its loader panicked).
    Gone,
}

/// Reads stored bytes for the read-through at `now_ms`.
fn classify(raw: Option<Bytes>, envelope_on: bool, now_ms: u64) -> Result<Found> {
    let Some(raw) = raw else {
        return Ok(Found::Miss(Miss::default()));
    };
    if !envelope_on {
        return Ok(Found::Hit(raw, None));
    }
    let stored = Stored::decode(raw.clone())?;
    classify_decoded(raw, stored, now_ms)
}

/// [`classify`] of stored bytes `raw` with the envelope on, already decoded as `stored`.
fn classify_decoded(raw: Bytes, stored: Stored, now_ms: u64) -> Result<Found> {
    // past its freshness: a stale value (or negative entry) while it may still be served
    let past = |times: Times, payload: Option<Bytes>| {
        Found::Miss(Miss {
            stale: times.is_servable(now_ms).then(|| Stale {
                payload,
                times,
                raw: raw.clone(),
            }),
            current: Some(raw.clone()),
            lease_held: false,
        })
    };
    Ok(match stored {
        Stored::Plain(bytes) => Found::Hit(bytes, None),
        Stored::Value { times, payload } if times.is_fresh(now_ms) => {
            Found::Hit(payload, Some(times))
        }
        Stored::Negative { times } if times.is_fresh(now_ms) => Found::NegativeHit,
        Stored::Value { times, payload } => past(times, Some(payload)),
        Stored::Negative { times } => past(times, None),
        Stored::Lease {
            until_ms, previous, ..
        } => {
            let previous = if previous.is_empty()
                || matches!(Stored::decode(previous.clone()), Ok(Stored::Lease { .. }))
            {
                None
            } else {
                Some(previous)
            };
            match classify(previous, true, now_ms)? {
                // Someone refreshes a fresh value: serve it, and do not refresh again.
                Found::Hit(payload, _) => Found::Hit(payload, None),
                Found::NegativeHit => Found::NegativeHit,
                Found::Miss(miss) => Found::Miss(Miss {
                    stale: miss.stale,
                    current: Some(raw),
                    lease_held: until_ms > now_ms,
                }),
            }
        }
    })
}

/// What a plain read gives of stored bytes with the envelope on: the fresh payload, or
/// `None` for a stale value, a negative entry or a lease over no fresh value.
pub(super) fn fresh_payload(raw: Bytes) -> Result<Option<Bytes>> {
    Ok(match fresh_read(raw)? {
        FreshRead::Value(payload) => Some(payload),
        FreshRead::Negative | FreshRead::Miss => None,
    })
}

/// What stored bytes are to a read, with the envelope on.
pub(super) enum FreshRead {
    /// A fresh value: its payload.
    Value(Bytes),
    /// A fresh negative entry.
    Negative,
    /// Nothing fresh.
    Miss,
}

/// Reads stored bytes with the envelope on.
pub(super) fn fresh_read(raw: Bytes) -> Result<FreshRead> {
    // plain bytes, and a value fresh for ever (a tagged `set`), need no clock
    let stored = match Stored::decode(raw.clone())? {
        Stored::Plain(bytes) => return Ok(FreshRead::Value(bytes)),
        Stored::Value { times, payload } if times.fresh_until_ms == 0 => {
            return Ok(FreshRead::Value(payload));
        }
        stored => stored,
    };
    Ok(match classify_decoded(raw, stored, envelope::now_ms())? {
        Found::Hit(payload, _) => FreshRead::Value(payload),
        Found::NegativeHit => FreshRead::Negative,
        Found::Miss(_) => FreshRead::Miss,
    })
}

/// A negative entry fresh for `ttl` (`None`: for good), then stale for `max_stale`, with the
/// TTL the backend must keep it.
pub(super) fn negative(ttl: Option<Duration>, max_stale: Duration) -> (Bytes, Option<Duration>) {
    let now = envelope::now_ms();
    let times = Times::new(now, ttl, max_stale);
    (envelope::encode_negative(times), times.physical_ttl(now))
}

/// `payload` in the envelope, fresh for `ttl` and then stale for `max_stale`, with the TTL
/// the backend must keep it.
pub(super) fn wrap(
    payload: &[u8],
    ttl: Option<Duration>,
    max_stale: Duration,
) -> (Bytes, Option<Duration>) {
    let now = envelope::now_ms();
    let times = Times::new(now, ttl, max_stale);
    (
        envelope::encode_value(times, payload),
        times.physical_ttl(now),
    )
}

/// The bytes a lease replaced, unwrapped from `current` (a value, or an expired lease).
fn lease_previous(current: Option<&Bytes>) -> Bytes {
    match current.map(|c| Stored::decode(c.clone())) {
        Some(Ok(Stored::Lease { previous, .. })) => previous,
        Some(Ok(Stored::Value { .. } | Stored::Negative { .. } | Stored::Plain(_))) => {
            current.cloned().unwrap_or_default()
        }
        _ => Bytes::new(),
    }
}

fn lease_token() -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let a = state.hash_one((n, envelope::now_ms(), std::process::id()));
    let b = RandomState::new().hash_one((a, n));
    let mut token = [0u8; 16];
    token[..8].copy_from_slice(&a.to_be_bytes());
    token[8..].copy_from_slice(&b.to_be_bytes());
    token
}

/// Tells the cache's counters and plugins about `event`.
pub(super) fn emit(inner: &Inner, event: ReadThroughEvent, key: &str, namespace: Option<&str>) {
    inner.events.add(event);
    if inner.event_plugins.is_empty() {
        return;
    }
    let info = EventInfo {
        event,
        key,
        namespace,
        backend: inner.backend_name,
    };
    for plugin in &inner.event_plugins {
        plugin.on_event(&info);
    }
}

/// Removes a finished flight from the table when the loading task ends.
struct TaskGuard {
    inner: Arc<Inner>,
    key: String,
    id: u64,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.inner.flights.end(&self.key, self.id);
    }
}

/// Everything the loading task needs, owned.
struct Fill {
    inner: Arc<Inner>,
    key: String,
    namespace: Option<String>,
    built: String,
    ttl: Ttl,
    timeout: Option<Duration>,
    options: ReadThrough,
    /// The tags of the entry the load writes.
    tags: Vec<String>,
    /// When the load started (ms; 0: not writing a loaded entry): the write time of the
    /// entry it writes, and the writes carry the tags only while it is set.
    as_of: AtomicU64,
}

impl Fill {
    fn ctx<'c>(&'c self, command: Command, keys: &'c [&'c str]) -> CallContext<'c> {
        let ctx = CallContext::new(command)
            .with_keys(keys)
            .with_namespace(self.namespace.as_deref())
            .with_backend(self.inner.backend_name)
            .with_server(self.inner.endpoint.as_ref())
            .with_deadline(self.timeout.map(Deadline::after));
        match self.as_of.load(AtomicOrdering::Relaxed) {
            0 => ctx,
            as_of => ctx.with_tags(&self.tags).with_as_of(Some(as_of)),
        }
    }

    fn emit(&self, event: ReadThroughEvent) {
        emit(&self.inner, event, &self.key, self.namespace.as_deref());
    }

    async fn read(&self) -> Result<Option<Bytes>> {
        let keys = [self.key.as_str()];
        let ctx = self.ctx(Command::Get, &keys);
        self.inner.stack.get(&ctx, &self.built).await
    }

    async fn cas(
        &self,
        expected: Option<Bytes>,
        new: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let keys = [self.key.as_str()];
        let ctx = self.ctx(Command::CompareAndSet, &keys);
        self.inner
            .stack
            .compare_and_set(
                &ctx,
                &self.built,
                expected,
                new,
                OpSet::new(self.inner.capability.keep_within(ttl)),
            )
            .await
    }

    /// Takes the lease of the key, or waits for the holder's value. `Ok(Some(answer))`: the
    /// key got a value meanwhile (nothing to load); `Ok(None)`: load (holding the lease in
    /// `lease` when it was taken).
    async fn acquire(
        &self,
        lease_for: Duration,
        mut current: Option<Bytes>,
        mut held: bool,
        stale: Option<&Stale>,
        lease: &mut Option<Bytes>,
    ) -> Option<crate::Result<Option<Bytes>>> {
        let mut backoff = Duration::from_millis(2);
        let mut waited = false;
        // A holder that never fills: after a lease's length and a margin, load anyway.
        let give_up = tokio::time::Instant::now() + lease_for * 3 + Duration::from_secs(1);
        loop {
            if tokio::time::Instant::now() >= give_up {
                return None;
            }
            if held {
                if !waited {
                    waited = true;
                    self.emit(ReadThroughEvent::LeaseWaited);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(50));
            } else {
                let now = envelope::now_ms();
                let token = lease_token();
                let until = now.saturating_add(lease_for.as_millis() as u64);
                let bytes =
                    envelope::encode_lease(now, until, token, &lease_previous(current.as_ref()));
                let keep = stale
                    .and_then(|s| s.times.physical_ttl(now))
                    .map_or(lease_for, |t| t.max(lease_for));
                let keep = match stale {
                    Some(s) if s.times.stale_until_ms == 0 => None,
                    _ => Some(keep),
                };
                match self.cas(current.clone(), bytes.clone(), keep).await {
                    Ok(true) => {
                        self.emit(ReadThroughEvent::LeaseAcquired);
                        *lease = Some(bytes);
                        return None;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(
                            key = self.key,
                            error = %format_args!("{e:#}"),
                            "get_or_set: the lease could not be taken; loading without it"
                        );
                        return None;
                    }
                }
            }
            let raw = match self.read().await {
                Ok(raw) => raw,
                Err(_) => return None,
            };
            match classify(raw, true, envelope::now_ms()) {
                Ok(Found::Hit(payload, _)) => return Some(Ok(Some(payload))),
                Ok(Found::NegativeHit) => return Some(Ok(None)),
                Ok(Found::Miss(miss)) => {
                    current = miss.current;
                    held = miss.lease_held;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// The task: take the lease (when asked), run the loader, publish, write.
    async fn run(
        self,
        job: LoadJob,
        tx: watch::Sender<FlightResult>,
        current: Option<Bytes>,
        held: bool,
        stale: Option<Stale>,
        _guard: TaskGuard,
    ) {
        let mut lease = None;
        if let Some(lease_for) = self.options.lease
            && self.inner.capability.compare_and_set
            && let Some(answer) = self
                .acquire(lease_for, current.clone(), held, stale.as_ref(), &mut lease)
                .await
        {
            tx.send_replace(Some(answer));
            return;
        }
        let loading = self.inner.flights.loading_with([self.built.clone()]);
        let hard = self.options.hard_timeout;
        let started = crate::tags::stamp_now();
        let loaded = LOADING
            .scope(loading, async {
                match hard {
                    None => job().await,
                    Some(hard) => match tokio::time::timeout(hard, job()).await {
                        Ok(loaded) => loaded,
                        Err(_) => {
                            self.emit(ReadThroughEvent::HardTimeout);
                            Err(Error::new(
                                ErrorKind::Timeout,
                                format!("the loader did not answer within its hard timeout of {hard:?}"),
                            )
                            .with_context("key", &self.key))
                        }
                    },
                }
            })
            .await;
        match loaded {
            Ok(loaded) => {
                self.as_of.store(started, AtomicOrdering::Relaxed);
                self.store(loaded, &tx, lease).await;
            }
            Err(e) => {
                // The throttle is in place before any caller hears of the failure.
                let fresh_until = stale.as_ref().map(|s| self.throttle(s));
                tx.send_replace(Some(Err(e)));
                self.after_failure(stale, fresh_until, current, lease).await;
            }
        }
    }

    /// Publishes a loaded value and writes it (fenced by the lease when there is one).
    async fn store(
        &self,
        loaded: LoadedBytes,
        tx: &watch::Sender<FlightResult>,
        lease: Option<Bytes>,
    ) {
        let envelope_on = self.inner.envelope;
        let max_stale = self.options.max_stale();
        let entry = match &loaded.payload {
            Some(payload) => match loaded
                .ttl
                .resolve(self.ttl_default(), &self.inner.capability)
            {
                Ok(ttl) if envelope_on => Ok(Some(wrap(payload, ttl, max_stale))),
                Ok(ttl) => Ok(Some((payload.clone(), ttl))),
                Err(e) => Err(e),
            },
            None => {
                // how long "not found" is cached: not at all, for a while, or for good
                let negative_for = match loaded.ttl {
                    Ttl::Default => self.options.negative_ttl.map(Some),
                    Ttl::Never => Some(None),
                    Ttl::After(d) => Some(Some(d)),
                };
                Ok(negative_for
                    .filter(|_| envelope_on)
                    .map(|ttl| negative(ttl, max_stale)))
            }
        };
        // Waiters need not wait for the write.
        tx.send_replace(Some(Ok(loaded.payload.clone())));
        self.inner.throttle_end(&self.built);
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(key = self.key, error = %format_args!("{e:#}"),
                    "get_or_set: the loaded value's TTL was refused; not stored");
                self.release(lease).await;
                return;
            }
        };
        let written = match (entry, lease) {
            (Some((bytes, ttl)), Some(lease)) => {
                match self.cas(Some(lease), bytes.clone(), ttl).await {
                    // The lease expired and the key is empty (nobody wrote or took it since):
                    // the value may still go in, only where there is nothing.
                    Ok(false) => match self.cas(None, bytes, ttl).await {
                        Ok(false) => {
                            self.emit(ReadThroughEvent::LeaseLost);
                            Ok(())
                        }
                        other => other.map(drop),
                    },
                    other => other.map(drop),
                }
            }
            (Some((bytes, ttl)), None) => {
                let keys = [self.key.as_str()];
                let ctx = self.ctx(Command::Set, &keys);
                self.inner
                    .stack
                    .set(
                        &ctx,
                        &self.built,
                        bytes,
                        OpSet::new(self.inner.capability.keep_within(ttl)),
                    )
                    .await
            }
            (None, lease) => {
                self.release(lease).await;
                Ok(())
            }
        };
        if let Err(e) = written {
            tracing::warn!(
                key = self.key,
                error = %format_args!("{e:#}"),
                "get_or_set: the loaded value could not be stored"
            );
        }
    }

    fn ttl_default(&self) -> Ttl {
        match self.ttl {
            Ttl::Default => self.inner.ttl,
            other => other,
        }
    }

    /// Gives the lease back: the key holds again what the lease replaced.
    async fn release(&self, lease: Option<Bytes>) {
        let Some(lease) = lease else { return };
        // what the lease replaced goes back as it was, with its own tags if any
        self.as_of.store(0, AtomicOrdering::Relaxed);
        // what this lease replaced, as the lease itself says
        let previous = lease_previous(Some(&lease));
        let keys = [self.key.as_str()];
        let answer = if previous.is_empty() {
            let ctx = self.ctx(Command::CompareAndDelete, &keys);
            self.inner
                .stack
                .compare_and_delete(&ctx, &self.built, lease)
                .await
        } else {
            let ttl = match Stored::decode(previous.clone()) {
                Ok(Stored::Value { times, .. } | Stored::Negative { times }) => {
                    times.physical_ttl(envelope::now_ms())
                }
                _ => self.options.lease,
            };
            self.cas(Some(lease), previous, ttl).await
        };
        if let Err(e) = answer {
            tracing::warn!(key = self.key, error = %format_args!("{e:#}"),
                "get_or_set: the lease could not be given back; it expires by itself");
        }
    }

    /// After a failed load: with a stale value, serve it as fresh for the throttle (here and,
    /// through the backend, for the others); else give the lease back.
    /// Throttles the failing loader in this process: `stale` is served without loading
    /// until the returned time (ms).
    fn throttle(&self, stale: &Stale) -> u64 {
        let now = envelope::now_ms();
        let throttle = self.options.fail_safe_throttle;
        let mut fresh_until = now.saturating_add(throttle.as_millis() as u64);
        if stale.times.stale_until_ms != 0 {
            fresh_until = fresh_until.min(stale.times.stale_until_ms);
        }
        self.inner.throttle_start(&self.built, fresh_until);
        fresh_until
    }

    async fn after_failure(
        &self,
        stale: Option<Stale>,
        fresh_until: Option<u64>,
        current: Option<Bytes>,
        lease: Option<Bytes>,
    ) {
        let (Some(stale), Some(fresh_until)) = (stale, fresh_until) else {
            self.release(lease).await;
            return;
        };
        let now = envelope::now_ms();
        if self.options.fail_safe_throttle.is_zero() {
            self.release(lease).await;
            return;
        }
        let times = Times {
            created_ms: stale.times.created_ms,
            fresh_until_ms: fresh_until,
            stale_until_ms: stale.times.stale_until_ms,
        };
        // the stale entry with new times, its tags (if any) kept
        let bytes = match (envelope::with_times(&stale.raw, times), &stale.payload) {
            (Some(bytes), _) => bytes,
            (None, Some(payload)) => envelope::encode_value(times, payload),
            (None, None) => envelope::encode_negative(times),
        };
        let expected = lease.or(current).or(Some(stale.raw));
        if let Err(e) = self.cas(expected, bytes, times.physical_ttl(now)).await {
            tracing::debug!(key = self.key, error = %format_args!("{e:#}"),
                "get_or_set: the throttled stale value could not be written back");
        }
    }
}

impl<S: Serializer> Scoped<'_, S> {
    /// The value at `key`; on a miss, runs `loader`, stores its value and returns it.
    ///
    /// Concurrent callers of one key through this cache and its clones share one loader run
    /// (single flight): one caller starts it, the others wait for its result. Caches built
    /// separately — even over the same backend — do not share loads; share one `Cache`
    /// (clones are cheap). With [`ReadThrough::lease`], callers in other processes share it
    /// too.
    ///
    /// The loader runs on a task of its own (`tokio::spawn`), so it must own what it uses
    /// (`move`, clones of `Arc`s): a caller that is cancelled does not cancel the load the
    /// others wait for, and with a [soft timeout](ReadThrough::soft_timeout) the load
    /// finishes after the caller has left.
    ///
    /// - A loader error reaches every waiter as an [`ErrorKind::Loader`] error (with the
    ///   loader's error as its source) and nothing is cached — unless
    ///   [fail-safe](ReadThrough::fail_safe) has a stale value to serve instead.
    /// - A loader that panics: its callers get an [`ErrorKind::Loader`] error; waiters of
    ///   the same key load again.
    /// - A waiter waits at most the call's deadline (the cache's timeout, or the per-call
    ///   one), then fails with [`ErrorKind::Timeout`] (or gets the stale value with
    ///   fail-safe); the caller that started the load waits as long as the loader runs, up
    ///   to the [hard timeout](ReadThrough::hard_timeout).
    /// - A loader that calls `get_or_set` for its own key on the same cache gets an
    ///   [`ErrorKind::InvalidArgument`] error instead of waiting for itself forever.
    /// - If the loaded value cannot be stored, it is still returned to every caller; the
    ///   failed write is seen by plugins and logged, and the next call loads again.
    ///
    /// The [`ReadThrough`] options of the cache (or of these per-call options) apply.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// let name = cache
    ///     .get_or_set("user:42", || async { Ok::<_, std::io::Error>("Ada".to_string()) })
    ///     .await?;
    /// assert_eq!(name, "Ada");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Loader`] when the loader fails; [`ErrorKind::Serialization`] when its value
    /// cannot be encoded or the stored one decoded; [`ErrorKind::Timeout`] for a waiter past
    /// its deadline or a loader past its hard timeout; the errors of [`get`](Self::get).
    pub async fn get_or_set<V>(&self, key: &str, loader: impl Loader<V>) -> Result<V>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        let found = self.through(key, loader, Loaded::value, false).await?;
        found.ok_or_else(|| Error::new(ErrorKind::Unexpected, "a value was loaded and lost"))
    }

    /// [`get_or_set`](Self::get_or_set) with a loader that cannot fail (moka's `get_with`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// let n: u64 = cache.get_or_insert_with("answer", || async { 42 }).await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of [`get_or_set`](Self::get_or_set) but the loader's.
    pub async fn get_or_insert_with<V, Fut>(
        &self,
        key: &str,
        loader: impl FnOnce() -> Fut + Send + 'static,
    ) -> Result<V>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.get_or_set(key, move || async move {
            Ok::<V, std::convert::Infallible>(loader().await)
        })
        .await
    }

    /// [`get_or_set`](Self::get_or_set) with a loader that may find nothing (moka's
    /// `optionally_get_with`): `None` is returned and nothing is cached — or, with
    /// [`ReadThrough::negative_ttl`], a negative entry is, and the next calls get `None`
    /// without loading until it expires.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// let user: Option<String> = cache
    ///     .get_or_set_optional("user:404", || async { Ok::<_, std::io::Error>(None) })
    ///     .await?;
    /// assert_eq!(user, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of [`get_or_set`](Self::get_or_set).
    pub async fn get_or_set_optional<V>(
        &self,
        key: &str,
        loader: impl Loader<Option<V>>,
    ) -> Result<Option<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        self.through(key, loader, Loaded::from, true).await
    }

    /// The most general form: the loader returns a [`Loaded`] — a value or nothing — with
    /// the TTL to store it under, so the loader can choose each entry's lifetime (a token's
    /// own expiry, a short TTL for a partial answer).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use std::time::Duration;
    /// use cache_core::{KeyTtl, Loaded};
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// let token: Option<String> = cache
    ///     .get_or_load("token", || async {
    ///         // the issuer says how long the token lives
    ///         let (token, lifetime) = ("t0k3n".to_string(), Duration::from_secs(300));
    ///         Ok::<_, std::io::Error>(Loaded::value(token).with_ttl(lifetime))
    ///     })
    ///     .await?;
    /// assert_eq!(token.as_deref(), Some("t0k3n"));
    /// assert!(matches!(cache.ttl("token").await?, KeyTtl::Remaining(_)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The errors of [`get_or_set`](Self::get_or_set).
    pub async fn get_or_load<V>(
        &self,
        key: &str,
        loader: impl Loader<Loaded<V>>,
    ) -> Result<Option<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
    {
        self.through(key, loader, |l| l, true).await
    }

    /// The options in force for these calls.
    pub(super) fn options(&self) -> &ReadThrough {
        self.read_through
            .as_ref()
            .unwrap_or(&self.inner.read_through)
    }

    /// The engine of the family. `optional`: a negative entry or a `None` answers `None`
    /// (else they are loaded over).
    async fn through<V, T>(
        &self,
        key: &str,
        loader: impl Loader<T>,
        into_loaded: fn(T) -> Loaded<V>,
        optional: bool,
    ) -> Result<Option<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
        T: Send + 'static,
    {
        let options = self.options();
        if options.needs_envelope() && !self.inner.envelope {
            return Err(Error::invalid_argument(
                "these read-through options need the value envelope, and the cache was built \
                 without it: give the cache read-through options that need it \
                 (CacheBuilder::read_through) or ReadThrough::envelope(true)",
            )
            .with_context("key", key));
        }
        let (ns, built) = self.prepare(key)?;
        // The first read, and a plain hit answered here: the future of a hit stays as small
        // as a `get`'s; everything else goes on in a boxed future of its own.
        let keys = [key];
        let first = self
            .stack()
            .get(&self.ctx(Command::Get, ns, &keys), &built)
            .await;
        if let Ok(Some(raw)) = &first {
            if !self.inner.reads_envelope() {
                return self.decode(raw, key).map(Some);
            }
            if options.eager_refresh.is_none()
                && let Ok(Found::Hit(payload, _)) =
                    classify(Some(raw.clone()), true, envelope::now_ms())
            {
                return self.decode(&payload, key).map(Some);
            }
        }
        Box::pin(self.through_rest(key, ns, &built, loader, into_loaded, optional, first)).await
    }

    /// The rest of [`through`](Self::through) after its first read (`first`): the eager
    /// refresh of a hit, a miss, stale values, the flight.
    #[allow(clippy::too_many_arguments)]
    async fn through_rest<V, T>(
        &self,
        key: &str,
        ns: Option<&str>,
        built: &str,
        loader: impl Loader<T>,
        into_loaded: fn(T) -> Loaded<V>,
        optional: bool,
        first: Result<Option<Bytes>>,
    ) -> Result<Option<V>>
    where
        V: Serialize + DeserializeOwned + Send + 'static,
        T: Send + 'static,
    {
        let options = self.options();
        let flights = &self.inner.flights;
        let mut loader = Some(loader);
        let take_job = |loader: &mut Option<_>| {
            loader
                .take()
                .map(|l| job(l, into_loaded, self.serializer.clone(), key))
        };
        let keys = [key];
        let mut first = Some(first);
        for _round in 0..4 {
            // Only entries in the envelope carry times.
            let now = if self.inner.reads_envelope() {
                envelope::now_ms()
            } else {
                0
            };
            let read = match first.take() {
                Some(read) => read,
                None => {
                    let ctx = self.ctx(Command::Get, ns, &keys);
                    self.stack().get(&ctx, built).await
                }
            };
            // the exact stored bytes, which an eager refresh's lease replaces
            let stored = read.as_ref().ok().and_then(Clone::clone);
            let found = match read {
                Ok(raw) => classify(raw, self.inner.reads_envelope(), now)
                    .map_err(|e| e.with_context_once("key", key))?,
                Err(e) if options.fail_safe.is_some() && e.kind() != ErrorKind::Closed => {
                    emit(self.inner, ReadThroughEvent::ReadFailed, key, ns);
                    tracing::warn!(key, error = %format_args!("{e:#}"),
                        "get_or_set: the backend could not be read; loading as for a miss");
                    Found::Miss(Miss::default())
                }
                Err(e) => return Err(e),
            };
            let miss = match found {
                Found::Hit(payload, times) => {
                    if let (Some(share), Some(times)) = (options.eager_refresh, times)
                        && times.age_fraction(now) >= share
                        && let Some(job) = take_job(&mut loader)
                    {
                        let raw = stored.unwrap_or_else(|| envelope::encode_value(times, &payload));
                        self.refresh(key, ns, built, job, raw);
                    }
                    return self.decode(&payload, key).map(Some);
                }
                Found::NegativeHit if optional => return Ok(None),
                Found::NegativeHit => Miss::default(),
                Found::Miss(miss) => miss,
            };
            if flights.is_loading_here(built) {
                return Err(reentrant_error(key));
            }
            if let Some(stale) = &miss.stale
                && self.inner.is_throttled(built, now)
            {
                emit(self.inner, ReadThroughEvent::StaleServed, key, ns);
                return self.serve_stale(stale, key, optional);
            }
            let (rx, deadline, initiator) = match flights.join(built) {
                Role::Wait(rx) => {
                    emit(self.inner, ReadThroughEvent::WaiterCoalesced, key, ns);
                    (rx, self.deadline().map(Deadline::after), false)
                }
                Role::Load(tx, id) => {
                    emit(self.inner, ReadThroughEvent::LoadStarted, key, ns);
                    let guard = TaskGuard {
                        inner: self.inner.clone(),
                        key: built.to_owned(),
                        id,
                    };
                    let Some(job) = take_job(&mut loader) else {
                        return Err(Error::new(ErrorKind::Unexpected, "loader already used"));
                    };
                    let rx = tx.subscribe();
                    let fill = self.fill(key, ns, built);
                    let stale = miss.stale.clone();
                    let run = fill.run(job, tx, miss.current, miss.lease_held, stale, guard);
                    match tokio::runtime::Handle::try_current() {
                        Ok(runtime) => drop(runtime.spawn(run)),
                        // No runtime to run it on: load here (nothing can outlive the call).
                        Err(_) => run.await,
                    }
                    (rx, None, true)
                }
            };
            let answer = self
                .wait_load(rx.clone(), miss.stale.is_some(), deadline, initiator)
                .await;
            match answer {
                Answer::Done(Ok(Some(payload))) => return self.decode(&payload, key).map(Some),
                Answer::Done(Ok(None)) if optional => return Ok(None),
                // A caller of `get_or_set_optional` found nothing: load here, once that
                // flight has ended (it may still be writing its negative entry).
                Answer::Done(Ok(None)) => {
                    let mut rx = rx;
                    let ended = async { while rx.changed().await.is_ok() {} };
                    match deadline.or(self.deadline().map(Deadline::after)) {
                        Some(deadline) => within(deadline, ended).await?,
                        None => ended.await,
                    }
                }
                Answer::Soft => {
                    emit(self.inner, ReadThroughEvent::SoftTimeout, key, ns);
                    emit(self.inner, ReadThroughEvent::StaleServed, key, ns);
                    let stale = miss
                        .stale
                        .as_ref()
                        .expect("a soft timeout needs a stale value");
                    return self.serve_stale(stale, key, optional);
                }
                Answer::Done(Err(e)) => match &miss.stale {
                    Some(stale) if options.fail_safe.is_some() => {
                        emit(self.inner, ReadThroughEvent::FailSafeActivated, key, ns);
                        emit(self.inner, ReadThroughEvent::StaleServed, key, ns);
                        tracing::warn!(key, error = %format_args!("{e:#}"),
                            "get_or_set: the load failed; serving the stale value (fail-safe)");
                        return self.serve_stale(stale, key, optional);
                    }
                    _ => return Err(e),
                },
                Answer::Gone => {
                    if loader.is_none() {
                        return Err(Error::new(ErrorKind::Loader, "the loader panicked")
                            .with_context("key", key));
                    }
                }
            }
        }
        Err(Error::new(
            ErrorKind::Unexpected,
            "get_or_set: the key kept changing under the load; gave up after 4 rounds",
        )
        .with_context("key", key))
    }

    /// The owned part of these options, for the loading task.
    fn fill(&self, key: &str, ns: Option<&str>, built: &str) -> Fill {
        Fill {
            inner: self.inner.clone(),
            key: key.to_owned(),
            namespace: ns.map(str::to_owned),
            built: built.to_owned(),
            ttl: self.ttl,
            timeout: self.deadline(),
            options: self.options().clone(),
            tags: self.tags.clone(),
            as_of: AtomicU64::new(0),
        }
    }

    /// Starts one background refresh of `built` unless a load of it is in flight.
    fn refresh(&self, key: &str, ns: Option<&str>, built: &str, job: LoadJob, current: Bytes) {
        if let Role::Load(tx, id) = self.inner.flights.join(built) {
            emit(self.inner, ReadThroughEvent::RefreshStarted, key, ns);
            let guard = TaskGuard {
                inner: self.inner.clone(),
                key: built.to_owned(),
                id,
            };
            let fill = self.fill(key, ns, built);
            // Without a runtime there is nowhere to refresh in the background: skip it.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(fill.run(job, tx, Some(current), false, None, guard)));
            }
        }
    }

    fn serve_stale<V: DeserializeOwned>(
        &self,
        stale: &Stale,
        key: &str,
        optional: bool,
    ) -> Result<Option<V>> {
        match &stale.payload {
            Some(payload) => self.decode(payload, key).map(Some),
            None if optional => Ok(None),
            None => Err(Error::new(
                ErrorKind::Loader,
                "the load failed and the last known answer is that the key has no value",
            )
            .with_context("key", key)),
        }
    }

    /// Waits for a load: up to the soft timeout when there is a stale value, up to
    /// `deadline` when given (a waiter); without one (the caller that started the load),
    /// until the loading task has also written its result.
    async fn wait_load(
        &self,
        mut rx: watch::Receiver<FlightResult>,
        has_stale: bool,
        deadline: Option<Deadline>,
        initiator: bool,
    ) -> Answer {
        let wait = async {
            let answer = match rx.wait_for(Option::is_some).await {
                Ok(answer) => match answer.clone() {
                    Some(done) => Answer::Done(done),
                    None => Answer::Gone,
                },
                Err(_) => Answer::Gone,
            };
            // The caller that started the load returns once the task has written what it
            // loaded, so that its next read sees it. A failure answers at once: the stale
            // value's write-back must not hold the caller past its deadline.
            if initiator && matches!(answer, Answer::Done(Ok(_))) {
                while rx.changed().await.is_ok() {}
            }
            answer
        };
        let soft = if has_stale {
            self.options().soft_timeout
        } else {
            None
        };
        let bounded = async {
            match deadline {
                None => wait.await,
                Some(deadline) => match within(deadline, wait).await {
                    Ok(answer) => answer,
                    Err(e) => Answer::Done(Err(e
                        .with_context("op", "get_or_set")
                        .with_context("waiting_for", "another caller's loader"))),
                },
            }
        };
        match soft {
            None => bounded.await,
            Some(soft) => tokio::time::timeout(soft, bounded)
                .await
                .unwrap_or(Answer::Soft),
        }
    }
}

/// The loader's run on its task: the loader, then the encoding of what it found.
fn job<V, T, S>(
    loader: impl Loader<T>,
    into_loaded: fn(T) -> Loaded<V>,
    serializer: S,
    key: &str,
) -> LoadJob
where
    V: Serialize + Send + 'static,
    T: Send + 'static,
    S: Serializer,
{
    let key = key.to_owned();
    Box::new(move || -> LoadFuture {
        Box::pin(async move {
            let (value, ttl) = match loader.load().await {
                Ok(t) => into_loaded(t).into_parts(),
                Err(e) => return Err(loader_error(e.into(), Some(&key))),
            };
            let payload = match value {
                Some(v) => Some(Bytes::from(
                    serializer
                        .encode(&v)
                        .map_err(|e| e.with_context_once("key", &key))?,
                )),
                None => None,
            };
            Ok(LoadedBytes { payload, ttl })
        })
    })
}
