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

/// What a load gave: the encoded value, `None` when a batch loader did not return the key,
/// or the load's error.
type Loaded = Result<Option<Bytes>>;

/// `None` until the load ends.
pub(super) type FlightResult = Option<Loaded>;

/// A caller's part in the load of one key.
pub(super) enum Role {
    /// Another caller loads: wait for its answer.
    Wait(watch::Receiver<FlightResult>),
    /// This caller loads, and answers the others through the sender.
    Load(watch::Sender<FlightResult>, u64),
}

struct Flight {
    id: u64,
    rx: watch::Receiver<FlightResult>,
}

/// One load: which table (by address) and which built key.
type LoadKey = (usize, String);

tokio::task_local! {
    /// The loads the current task is running a loader for, outermost first: a loader that
    /// asks for its own key again is refused instead of waiting for itself.
    pub(super) static LOADING: Arc<[LoadKey]>;
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the load of `built` in flight, or starts one.
    pub(super) fn join(&self, built: &str) -> Role {
        let mut table = self.lock();
        match table.get(built) {
            Some(flight) => Role::Wait(flight.rx.clone()),
            None => {
                let id = self.next.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = watch::channel(None);
                table.insert(built.to_owned(), Flight { id, rx });
                Role::Load(tx, id)
            }
        }
    }

    /// Ends the flight `id` of `built` (a finished or abandoned load).
    pub(super) fn end(&self, built: &str, id: u64) {
        let mut table = self.lock();
        if table.get(built).is_some_and(|f| f.id == id) {
            table.remove(built);
        }
        drop(table);
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// This table's identity, for the re-entrancy check.
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether the current task is inside a loader of `built` on this table.
    pub(super) fn is_loading_here(&self, built: &str) -> bool {
        let id = self.id();
        LOADING
            .try_with(|loading| loading.iter().any(|(t, k)| *t == id && k == built))
            .unwrap_or(false)
    }

    /// The keys being loaded by the current task, with `built` added.
    pub(super) fn loading_with(&self, built: impl IntoIterator<Item = String>) -> Arc<[LoadKey]> {
        let id = self.id();
        LOADING
            .try_with(|outer| outer.to_vec())
            .unwrap_or_default()
            .into_iter()
            .chain(built.into_iter().map(|k| (id, k)))
            .collect()
    }
}

pub(super) fn reentrant_error(key: &str) -> Error {
    Error::invalid_argument(
        "a loader asked for a key it is loading itself (get_or_set or get_or_set_many of \
         the same key on the same cache, from inside its loader); it would wait for itself",
    )
    .with_context("op", "get_or_set")
    .with_context("key", key)
}

pub(super) fn loader_error(e: Box<dyn StdError + Send + Sync>, key: Option<&str>) -> Error {
    let err = Error::new(ErrorKind::Loader, "the loader failed").with_shared_source(Arc::from(e));
    match key {
        Some(key) => err.with_context("key", key),
        None => err,
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
        self.flights.end(&self.key, self.id);
    }
}

impl<S: Serializer> Scoped<'_, S> {
    /// A mark to take before a `get` that [`get_or_set_after`](Self::get_or_set_after) may
    /// follow.
    pub(crate) fn flight_mark(&self) -> u64 {
        self.inner.flights.finished.load(Ordering::Acquire)
    }

    /// The single flight of `#[cached]`: [`get_or_set`](Self::get_or_set) with a loader run in
    /// place (it may borrow); with `missed`, the caller has just read `key` and
    /// missed, after taking `missed` from [`flight_mark`](Self::flight_mark), so the first read
    /// is skipped (it would count a second miss).
    pub(crate) async fn get_or_set_after<V, F, Fut, E>(
        &self,
        key: &str,
        loader: F,
        mut missed: Option<u64>,
    ) -> Result<V>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<V, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let flights = &self.inner.flights;
        let mut loader = Some(loader);
        loop {
            let finished_before = match missed.take() {
                Some(mark) => mark,
                None => {
                    let mark = flights.finished.load(Ordering::Acquire);
                    if let Some(v) = self.get(key).await? {
                        return Ok(v);
                    }
                    mark
                }
            };
            let (_, built) = self.prepare(key)?;
            let built = built.into_owned();
            if flights.is_loading_here(&built) {
                return Err(reentrant_error(key));
            }
            match flights.join(&built) {
                Role::Wait(rx) => {
                    let deadline = self.deadline().map(Deadline::after);
                    match self.wait(rx, key, deadline).await? {
                        Some(Ok(Some(bytes))) => return self.decode(&bytes, key),
                        Some(Err(e)) => return Err(e),
                        // The loading caller went away, or its batch loader did not find the
                        // key: load it here.
                        Some(Ok(None)) | None => continue,
                    }
                }
                Role::Load(tx, id) => {
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
                    let loading = flights.loading_with([built]);
                    let value = match LOADING.scope(loading, loader()).await {
                        Ok(v) => v,
                        Err(e) => {
                            let err = loader_error(e.into(), Some(key));
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
                    tx.send_replace(Some(Ok(Some(bytes.clone()))));
                    if let Err(e) = self.store_encoded(key, bytes).await {
                        tracing::warn!(
                            key,
                            error = %format_args!("{e:#}"),
                            "get_or_set: the loaded value could not be stored"
                        );
                    }
                    return Ok(value);
                }
            }
        }
    }

    /// The values of `keys`, loading the missing ones in one batch: one `multi_get`, then
    /// `loader` with the distinct keys that missed and that no other caller is loading, then
    /// one `multi_set` of what it returned. Answers come in the order of `keys`, with `None`
    /// for a key the loader did not return (nothing is cached for it).
    ///
    /// Loads are shared with [`get_or_set`](Self::get_or_set) and with other batches of this
    /// cache and its clones, key by key: a key another caller is loading is awaited, not
    /// loaded twice, and the keys this batch loads are awaited by the others. Duplicate keys
    /// are loaded once.
    ///
    /// - A loader error reaches this caller and every caller waiting for one of its keys, as
    ///   an [`ErrorKind::Loader`] error; nothing is cached.
    /// - Waiting for other callers' loads is bounded by the call's deadline.
    /// - The loader is `FnMut`: when a caller this batch waited for went away without an
    ///   answer, the batch loads those keys itself with a second call.
    /// - Loaded values that cannot be stored are still returned (and logged).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> cache_core::Result<()> {
    /// use std::collections::HashMap;
    /// # let cache = cache_core::Cache::new(cache_core::testkit::MapBackend::new());
    /// cache.set("1", &"one").await?;
    /// let names = cache
    ///     .get_or_set_many(["1", "2", "3", "2"], |missing: Vec<String>| async move {
    ///         assert_eq!(missing, ["2", "3"]); // distinct misses only
    ///         let found: HashMap<String, String> =
    ///             [("2".to_string(), "two".to_string())].into();
    ///         Ok::<_, std::io::Error>(found) // "3" not found: a miss
    ///     })
    ///     .await?;
    /// let names: Vec<Option<&str>> = names.iter().map(|n| n.as_deref()).collect();
    /// assert_eq!(names, [Some("one"), Some("two"), None, Some("two")]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Loader`] when the loader fails; [`ErrorKind::Timeout`] while waiting past
    /// the deadline; the errors of [`multi_get`](Self::multi_get).
    pub async fn get_or_set_many<V, I, K, F, Fut, R, E>(
        &self,
        keys: I,
        mut loader: F,
    ) -> Result<Vec<Option<V>>>
    where
        V: Serialize + DeserializeOwned,
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
        F: FnMut(Vec<String>) -> Fut,
        Fut: Future<Output = std::result::Result<R, E>>,
        R: IntoIterator<Item = (String, V)>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.check_open()?;
        let keys: Vec<K> = keys.into_iter().collect();
        let user: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let read: Vec<Option<Option<V>>> = self.multi_get_through(&user).await?;
        // A fresh negative entry answers `None` without loading.
        let negative: Vec<bool> = read.iter().map(|r| matches!(r, Some(None))).collect();
        let mut out: Vec<Option<V>> = read.into_iter().map(Option::flatten).collect();
        let ns = self.resolved_namespace();
        // The distinct keys that missed, each with the positions it answers.
        let mut missing: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, k) in user.iter().enumerate() {
            if out[i].is_some() || negative[i] {
                continue;
            }
            match index.get(k) {
                Some(&m) => missing[m].1.push(i),
                None => {
                    index.insert(k, missing.len());
                    missing.push((self.build_key(k, ns)?.into_owned(), vec![i]));
                }
            }
        }
        let flights = &self.inner.flights;
        if let Some((_, positions)) = missing.iter().find(|(b, _)| flights.is_loading_here(b)) {
            return Err(reentrant_error(user[positions[0]]));
        }
        let deadline = self.deadline().map(Deadline::after);
        while !missing.is_empty() {
            let mut load = Vec::new();
            let mut wait = Vec::new();
            for entry in std::mem::take(&mut missing) {
                match flights.join(&entry.0) {
                    Role::Load(tx, id) => load.push((entry, tx, id)),
                    Role::Wait(rx) => wait.push((entry, rx)),
                }
            }
            let _guards: Vec<FlightGuard<'_>> = load
                .iter()
                .map(|((built, _), _, id)| FlightGuard {
                    flights,
                    key: built.clone(),
                    id: *id,
                })
                .collect();
            if !load.is_empty() {
                let names: Vec<String> = load
                    .iter()
                    .map(|((_, positions), _, _)| user[positions[0]].to_owned())
                    .collect();
                let loading = flights.loading_with(load.iter().map(|((b, _), _, _)| b.clone()));
                let started = crate::tags::stamp_now();
                let found = match LOADING.scope(loading, loader(names)).await {
                    Ok(found) => found,
                    Err(e) => {
                        let err = loader_error(e.into(), None);
                        for (_, tx, _) in &load {
                            tx.send_replace(Some(Err(err.clone())));
                        }
                        return Err(err);
                    }
                };
                let mut found: HashMap<String, V> = found.into_iter().collect();
                let mut entries = Vec::with_capacity(found.len());
                let mut stored = Vec::with_capacity(found.len());
                let mut not_found = Vec::new();
                let mut not_found_keys = Vec::new();
                for ((built, positions), tx, _) in &load {
                    let key = user[positions[0]];
                    let Some(value) = found.remove(key) else {
                        tx.send_replace(Some(Ok(None)));
                        not_found.push(built.clone());
                        not_found_keys.push(key);
                        continue;
                    };
                    let bytes = match self.encode_unchecked(&value, key) {
                        Ok(b) => b,
                        Err(e) => {
                            tx.send_replace(Some(Err(e.clone())));
                            return Err(e);
                        }
                    };
                    tx.send_replace(Some(Ok(Some(bytes.clone()))));
                    for &i in &positions[1..] {
                        out[i] = Some(self.decode(&bytes, key)?);
                    }
                    out[positions[0]] = Some(value);
                    entries.push((built.clone(), bytes));
                    stored.push(key);
                }
                if !entries.is_empty()
                    && let Err(e) = self.store_many(&entries, &stored, started).await
                {
                    tracing::warn!(
                        keys = entries.len(),
                        error = %format_args!("{e:#}"),
                        "get_or_set_many: the loaded values could not be stored"
                    );
                }
                if let Err(e) = self
                    .store_negatives(&not_found, &not_found_keys, started)
                    .await
                {
                    tracing::warn!(
                        keys = not_found.len(),
                        error = %format_args!("{e:#}"),
                        "get_or_set_many: the negative entries could not be stored"
                    );
                }
            }
            for ((built, positions), rx) in wait {
                let key = user[positions[0]];
                match self.wait(rx, key, deadline).await? {
                    Some(Ok(Some(bytes))) => {
                        for &i in &positions {
                            out[i] = Some(self.decode(&bytes, key)?);
                        }
                    }
                    Some(Ok(None)) => {}
                    Some(Err(e)) => return Err(e),
                    // That caller went away: load the key in the next round.
                    None => missing.push((built, positions)),
                }
            }
        }
        Ok(out)
    }

    /// Waits for another caller's load, within this call's deadline. `None`: that caller
    /// went away without an answer.
    async fn wait(
        &self,
        mut rx: watch::Receiver<FlightResult>,
        key: &str,
        deadline: Option<Deadline>,
    ) -> Result<FlightResult> {
        let wait = async {
            match rx.wait_for(Option::is_some).await {
                Ok(answer) => answer.clone(),
                Err(_) => None,
            }
        };
        match deadline {
            None => Ok(wait.await),
            Some(deadline) => within(deadline, wait).await.map_err(|e| {
                e.with_context("op", "get_or_set")
                    .with_context("key", key)
                    .with_context("waiting_for", "another caller's loader")
            }),
        }
    }
}
