//! Request coalescing: concurrent single-key reads sent as one multi-key read.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::Layer;
use super::timeout::within;
use crate::backend::Backend;
use crate::context::{CallContext, Deadline};
use crate::plugin::Command;
use crate::{Error, ErrorKind, Result, forward_backend};

/// Largest batch by default: the keys of one `MGET` / multi-get.
const DEFAULT_MAX_BATCH: usize = 128;

/// Gathers the single-key `get`s that callers issue at the same moment into one
/// `multi_get` of the backend below (one `MGET` on Redis, slot-grouped on a cluster; one
/// pipelined multi-get on Memcached), and hands each caller its own answer.
///
/// A backend pays mostly per command, not per key: with many tasks reading at once, one
/// `MGET` of 64 keys costs the client, the connection and the server far less than 64 `GET`s.
/// This layer trades a little latency for that: a read waits until the tasks that are
/// ready to run have had their turn (by default one pass of the scheduler, no timer; or a
/// fixed [`window`](Self::window)), or until [`max_batch`](Self::max_batch) reads are waiting.
/// A caller alone pays one scheduler pass; a busy service sends far fewer commands.
///
/// Answers are unchanged: each caller gets what its own `get` would have returned, including
/// errors (a failed batch fails each of its reads with the same error). Reads of the same key
/// in one batch are sent once. Reads in different namespaces are never batched together.
/// Every other command passes straight through, so a `get` issued after a `set` returned
/// sees it, as without the layer.
///
/// Deadlines stay the caller's own: a caller whose timeout passes stops waiting, and the
/// batch, which runs on its own task so that no caller's cancellation strands the others,
/// is bounded by the latest deadline of its readers. Without a Tokio runtime (the batch
/// needs one to run on) a read goes down the stack alone.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::Cache;
/// use cache_core::layer::CoalesceLayer;
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let coalesce = CoalesceLayer::new();
/// let cache = Cache::builder(backend).layer(coalesce.clone()).build();
/// cache.set("a", &1).await?;
/// cache.set("b", &2).await?;
/// let (a, b) = tokio::join!(cache.get::<u32>("a"), cache.get::<u32>("b"));
/// assert_eq!((a?, b?), (Some(1), Some(2)));
/// assert_eq!(coalesce.reads(), 2);
/// assert!(coalesce.batches() <= 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CoalesceLayer {
    max_batch: usize,
    window: Duration,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    reads: AtomicU64,
    batches: AtomicU64,
}

impl fmt::Debug for CoalesceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalesceLayer")
            .field("max_batch", &self.max_batch)
            .field("window", &self.window)
            .field("reads", &self.reads())
            .field("batches", &self.batches())
            .finish()
    }
}

impl Default for CoalesceLayer {
    fn default() -> Self {
        CoalesceLayer::new()
    }
}

impl CoalesceLayer {
    /// Batches of at most 128 keys, sent after one pass of the scheduler.
    pub fn new() -> Self {
        CoalesceLayer {
            max_batch: DEFAULT_MAX_BATCH,
            window: Duration::ZERO,
            stats: Arc::default(),
        }
    }

    /// The most reads in one batch (at least 1); a batch that fills is sent at once.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How long the first read of a batch waits for others. Zero (the default) waits for
    /// one pass of the scheduler — the tasks already ready to run — and arms no timer; a
    /// longer window gathers more reads at the cost of that much latency on every read.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Reads that went through the layer (this layer and its clones).
    pub fn reads(&self) -> u64 {
        self.stats.reads.load(Ordering::Relaxed)
    }

    /// Batches sent below (this layer and its clones); `reads / batches` is the mean batch.
    pub fn batches(&self) -> u64 {
        self.stats.batches.load(Ordering::Relaxed)
    }
}

impl Layer for CoalesceLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(Coalesce {
            inner: Arc::clone(&inner),
            shared: Arc::new(Shared {
                inner,
                layer: self.clone(),
                pending: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        })
    }
}

/// The backend a [`CoalesceLayer`] gives.
struct Coalesce {
    /// The stack below (also in `shared`, which the batch tasks hold).
    inner: Arc<dyn Backend>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Coalesce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalesce")
            .field("layer", &self.shared.layer)
            .field("inner", &self.inner)
            .finish()
    }
}

type Reply = oneshot::Sender<Result<Option<Bytes>>>;

struct Shared {
    inner: Arc<dyn Backend>,
    layer: CoalesceLayer,
    /// The batches being gathered, one per namespace (a cache has few: a short list).
    pending: Mutex<Vec<Batch>>,
    next_id: AtomicU64,
}

/// Reads waiting to be sent together.
struct Batch {
    id: u64,
    namespace: Option<Box<str>>,
    backend: &'static str,
    keys: Vec<String>,
    replies: Vec<Reply>,
    /// The latest deadline of the readers; `None` once one of them has none.
    deadline: Option<Deadline>,
}

impl Batch {
    fn push(&mut self, key: &str, reply: Reply, deadline: Option<Deadline>) {
        self.keys.push(key.to_owned());
        self.replies.push(reply);
        self.deadline = match (self.deadline, deadline) {
            (Some(a), Some(b)) => Some(if b.instant() > a.instant() { b } else { a }),
            _ => None,
        };
    }
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Vec<Batch>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the batch `id` out of the list, if it is still waiting there.
    fn take(&self, id: u64) -> Option<Batch> {
        let mut pending = self.pending();
        let at = pending.iter().position(|b| b.id == id)?;
        Some(pending.swap_remove(at))
    }

    /// Sends `batch` below and answers each of its readers.
    async fn send(&self, batch: Batch) {
        self.layer.stats.batches.fetch_add(1, Ordering::Relaxed);
        let Batch {
            namespace,
            backend,
            keys,
            replies,
            deadline,
            ..
        } = batch;
        // a key read twice is sent once: `slot[i]` is where reader i's key is in `unique`
        let (unique, slot) = dedupe(keys);
        let user_keys: Vec<&str> = unique.iter().map(String::as_str).collect();
        let ctx = CallContext::new(Command::MultiGet)
            .with_keys(&user_keys)
            .with_namespace(namespace.as_deref())
            .with_backend(backend)
            .with_deadline(deadline);
        let call = self.inner.multi_get(&ctx, &unique);
        let answer = match deadline {
            Some(deadline) => within(deadline, call).await.and_then(|r| r),
            None => call.await,
        };
        match answer {
            Ok(values) if values.len() == unique.len() => match slot {
                None => {
                    for (reply, value) in replies.into_iter().zip(values) {
                        // a reader that gave up is gone: nothing to do
                        let _ = reply.send(Ok(value));
                    }
                }
                Some(slot) => {
                    for (reply, at) in replies.into_iter().zip(slot) {
                        let _ = reply.send(Ok(values[at].clone()));
                    }
                }
            },
            Ok(values) => {
                let e = Error::new(
                    ErrorKind::Unexpected,
                    format!(
                        "the backend answered a multi_get of {} keys with {} values",
                        unique.len(),
                        values.len()
                    ),
                );
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// `keys` without repeats, and for each key of `keys` its index in them — `None` when no key
/// repeats (the common case: `keys` is sent as it is, no map built).
fn dedupe(mut keys: Vec<String>) -> (Vec<String>, Option<Vec<usize>>) {
    if !may_repeat(&keys) {
        return (keys, None);
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
    if !order.windows(2).any(|w| keys[w[0]] == keys[w[1]]) {
        return (keys, None);
    }
    let mut slot = vec![0; keys.len()];
    let mut unique: Vec<String> = Vec::with_capacity(keys.len());
    for &i in &order {
        // in sorted order a repeat follows the key it repeats: moved, not copied
        if unique.last() != Some(&keys[i]) {
            unique.push(std::mem::take(&mut keys[i]));
        }
        slot[i] = unique.len() - 1;
    }
    (unique, Some(slot))
}

/// Whether two of `keys` have the same hash: `false` proves that no key repeats, with a sort
/// of numbers instead of strings (the common case, checked for every batch).
fn may_repeat(keys: &[String]) -> bool {
    let mut hashes: Vec<u64> = keys
        .iter()
        .map(|k| crate::plugins::fnv1a64(k.as_bytes()))
        .collect();
    hashes.sort_unstable();
    hashes.windows(2).any(|w| w[0] == w[1])
}

/// The error of a read whose batch ended without answering (its task was stopped, as when
/// the runtime shuts down).
fn abandoned() -> Error {
    Error::new(
        ErrorKind::Unexpected,
        "the coalesced read was abandoned before the backend answered",
    )
}

#[async_trait]
impl Backend for Coalesce {
    forward_backend!(inner: name, capability, endpoint, multi_get, get_with_ttl,
        multi_get_with_ttl, set, add, multi_set, delete,
        multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear,
        raw, close);

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        let shared = &self.shared;
        shared.layer.stats.reads.fetch_add(1, Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            shared.layer.stats.batches.fetch_add(1, Ordering::Relaxed);
            return shared.inner.get(ctx, key).await;
        };
        let (tx, rx) = oneshot::channel();
        let (start, full) = {
            let mut pending = shared.pending();
            let at = match pending
                .iter()
                .position(|b| b.namespace.as_deref() == ctx.namespace())
            {
                Some(at) => at,
                None => {
                    pending.push(Batch {
                        id: shared.next_id.fetch_add(1, Ordering::Relaxed),
                        namespace: ctx.namespace().map(Box::from),
                        backend: ctx.backend(),
                        keys: Vec::new(),
                        replies: Vec::new(),
                        deadline: ctx.deadline(),
                    });
                    pending.len() - 1
                }
            };
            let batch = &mut pending[at];
            batch.push(key, tx, ctx.deadline());
            let start = (batch.keys.len() == 1).then_some(batch.id);
            let full =
                (batch.keys.len() >= shared.layer.max_batch).then(|| pending.swap_remove(at));
            (start, full)
        };
        match (full, start) {
            // full at once (max_batch 1, or it filled): send it now, on its own task
            (Some(batch), _) => {
                let shared = Arc::clone(shared);
                runtime.spawn(async move { shared.send(batch).await });
            }
            // the first read of a batch: its task waits for the others, then sends it
            (None, Some(id)) => {
                let shared = Arc::clone(shared);
                let window = shared.layer.window;
                runtime.spawn(async move {
                    if window.is_zero() {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(window).await;
                    }
                    if let Some(batch) = shared.take(id) {
                        shared.send(batch).await;
                    }
                });
            }
            (None, None) => {}
        }
        rx.await.unwrap_or_else(|_| Err(abandoned()))
    }
}

#[cfg(test)]
mod tests {
    use super::dedupe;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn distinct_keys_are_sent_as_they_are() {
        let (unique, slot) = dedupe(strings(&["b", "a", "c"]));
        assert_eq!(unique, strings(&["b", "a", "c"]));
        assert_eq!(slot, None);
    }

    #[test]
    fn repeated_keys_are_sent_once_and_each_reader_finds_its_own() {
        let keys = strings(&["b", "a", "b", "", "c", "a", "", "b"]);
        let (unique, slot) = dedupe(keys.clone());
        let slot = slot.expect("repeats");
        assert_eq!(unique.len(), 4);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(&unique[slot[i]], key, "reader {i}");
        }
    }

    #[test]
    fn one_repeat_among_many_keys_is_found() {
        let mut keys: Vec<String> = (0..1000).map(|i| format!("user:{i}")).collect();
        let (unique, slot) = dedupe(keys.clone());
        assert_eq!((unique.len(), slot), (1000, None));
        keys.push("user:517".into());
        let (unique, slot) = dedupe(keys.clone());
        let slot = slot.expect("a repeat");
        assert_eq!(unique.len(), 1000);
        assert_eq!(&unique[slot[1000]], "user:517");
        assert_eq!(slot[517], slot[1000]);
    }
}
