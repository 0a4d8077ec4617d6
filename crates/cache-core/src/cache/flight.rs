//! `get_or_set` and its single flight: one loader run per key for concurrent callers of one
//! cache and its clones.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::Scoped;
use crate::context::Deadline;
use crate::layer::timeout::within;
use crate::{Error, ErrorKind, Result, Serializer};

/// The loads in flight of one cache and its clones, by built key.
#[derive(Default)]
pub(super) struct Flights {
    table: Mutex<HashMap<String, Flight>>,
    next: AtomicU64,
    /// Flights ended so far (see `get_or_set`).
    finished: AtomicU64,
}

type FlightResult = Option<Result<Bytes>>;

struct Flight {
    id: u64,
    rx: watch::Receiver<FlightResult>,
}

/// One load: which table (by address) and which built key.
type LoadKey = (usize, String);

tokio::task_local! {
    /// The loads the current task is running a loader for, outermost first: a loader that
    /// asks for its own key again is refused instead of waiting for itself.
    static LOADING: Arc<[LoadKey]>;
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes a finished (or abandoned) flight from the table.
struct FlightGuard<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.flights.lock();
        if table.get(&self.key).is_some_and(|f| f.id == self.id) {
            table.remove(&self.key);
        }
        drop(table);
        self.flights.finished.fetch_add(1, Ordering::Release);
    }
}

impl<S: Serializer> Scoped<'_, S> {
    /// The value at `key`; on a miss, runs `loader`, stores its value and returns it.
    ///
    /// Concurrent callers of one key through this cache and its clones share one loader run
    /// (single flight): one caller loads, the others wait for its result. Caches built
    /// separately — even over the same backend — do not share loads (their serializers and
    /// key builders may differ); share one `Cache` (clones are cheap) where loads should be
    /// shared.
    ///
    /// - A loader error reaches every waiter as an [`ErrorKind::Loader`] error (with the
    ///   loader's error as its source) and nothing is cached.
    /// - If the loading caller is cancelled or its loader panics, a waiter takes over.
    /// - A waiter waits at most the call's deadline (the cache's timeout, or the per-call
    ///   one), then fails with [`ErrorKind::Timeout`]; the loader itself runs without one.
    /// - A loader that calls `get_or_set` for its own key on the same cache (directly, in
    ///   the same task) gets an [`ErrorKind::InvalidArgument`] error instead of waiting for
    ///   itself forever.
    /// - If the loaded value cannot be stored (the backend refuses it, say because it is
    ///   larger than the backend holds, or the write fails), it is still returned to the
    ///   caller and to every waiter; the failed write is seen by plugins and logged with
    ///   `tracing`, and the next call loads again.
    ///
    /// # Errors
    /// [`ErrorKind::Loader`] when the loader fails; [`ErrorKind::Serialization`] when its value
    /// cannot be encoded; [`ErrorKind::Timeout`] for a waiter past its deadline; the errors of
    /// [`get`](Self::get).
    pub async fn get_or_set<V, F, Fut, E>(&self, key: &str, loader: F) -> Result<V>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let flights = &self.inner.flights;
        let table_id = std::ptr::from_ref(flights) as usize;
        let mut loader = Some(loader);
        loop {
            let finished_before = flights.finished.load(Ordering::Acquire);
            if let Some(v) = self.get(key).await? {
                return Ok(v);
            }
            let (_, built) = self.prepare(key)?;
            let built = built.into_owned();
            let reentrant = LOADING
                .try_with(|loading| loading.iter().any(|(t, k)| *t == table_id && *k == built))
                .unwrap_or(false);
            if reentrant {
                return Err(Error::invalid_argument(
                    "get_or_set was called for a key from inside the loader of that same key; \
                     it would wait for itself",
                )
                .with_context("op", "get_or_set")
                .with_context("key", key));
            }
            let role = {
                let mut table = flights.lock();
                match table.get(&built) {
                    Some(flight) => Err(flight.rx.clone()),
                    None => {
                        let id = flights.next.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        table.insert(built.clone(), Flight { id, rx });
                        Ok((tx, id))
                    }
                }
            };
            match role {
                Err(rx) => match self.wait(rx, key).await? {
                    Some(Ok(bytes)) => return self.decode(&bytes, key),
                    Some(Err(e)) => return Err(e),
                    // The loading caller went away without an answer: try again.
                    None => continue,
                },
                Ok((tx, id)) => {
                    let _guard = FlightGuard {
                        flights,
                        key: built.clone(),
                        id,
                    };
                    // A flight that ended between our miss and our taking the flight may have
                    // stored the value: read again, but only then (a second read on every
                    // cold key would cost a round trip, and count a second miss).
                    if flights.finished.load(Ordering::Acquire) != finished_before
                        && let Some(v) = self.get(key).await?
                    {
                        return Ok(v);
                    }
                    let Some(loader) = loader.take() else {
                        return Err(Error::new(ErrorKind::Unexpected, "loader already used"));
                    };
                    let loading: Arc<[LoadKey]> = LOADING
                        .try_with(|outer| outer.iter().cloned().collect::<Vec<_>>())
                        .unwrap_or_default()
                        .into_iter()
                        .chain([(table_id, built)])
                        .collect();
                    let value = match LOADING.scope(loading, loader()).await {
                        Ok(v) => v,
                        Err(e) => {
                            let err = Error::new(ErrorKind::Loader, "the loader failed")
                                .with_context("key", key)
                                .with_shared_source(Arc::from(e.into()));
                            tx.send_replace(Some(Err(err.clone())));
                            return Err(err);
                        }
                    };
                    let bytes = match self.encode_unchecked(&value, key) {
                        Ok(b) => b,
                        Err(e) => {
                            tx.send_replace(Some(Err(e.clone())));
                            return Err(e);
                        }
                    };
                    // Waiters need not wait for the write.
                    tx.send_replace(Some(Ok(bytes.clone())));
                    if let Err(e) = self.store_encoded(key, bytes).await {
                        tracing::warn!(
                            key,
                            error = %e,
                            "get_or_set: the loaded value could not be stored"
                        );
                    }
                    return Ok(value);
                }
            }
        }
    }

    /// Waits for another caller's load, within this call's deadline. `None`: that caller
    /// went away without an answer.
    async fn wait(
        &self,
        mut rx: watch::Receiver<FlightResult>,
        key: &str,
    ) -> Result<Option<Result<Bytes>>> {
        let wait = async {
            match rx.wait_for(Option::is_some).await {
                Ok(answer) => answer.clone(),
                Err(_) => None,
            }
        };
        match self.deadline().map(Deadline::after) {
            None => Ok(wait.await),
            Some(deadline) => within(deadline, wait).await.map_err(|e| {
                e.with_context("op", "get_or_set")
                    .with_context("key", key)
                    .with_context("waiting_for", "another caller's loader")
            }),
        }
    }
}
