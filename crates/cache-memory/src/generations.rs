//! Namespace generations in process: `clear()` of a namespace in constant time.
//!
//! A built key `{group}{rest}` (its group: the text up to and including its first `:`) is
//! stored as `{group}{generation}.{rest}` (see `cache_core::generations`). The generations
//! live in this process, next to the store they describe, so every command sees a clear that
//! returned: there is no refresh bound. A group never cleared is at generation 0 and holds
//! no entry; each cleared group holds one entry for the life of the backend.
//!
//! `clear()` increments the group's generation under a lock and returns. The entries of the
//! old generation are unreachable at once; they are reclaimed by their TTL, by eviction (the
//! store's bounds), or — with the sweep on — by a background thread that removes them one
//! shard at a time, never holding a shard's lock for more than one pass over it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cache_core::generations::{fold, group};
use parking_lot::RwLock;

use crate::store::Store;

/// A cleared group's generation, and its keys' stored prefix (`{group}{generation}.`).
#[derive(Debug)]
struct Current {
    generation: u64,
    prefix: Box<str>,
}

/// The generations of the cleared groups, and the sweep's queue.
#[derive(Debug, Default)]
pub(crate) struct MemoryGenerations {
    current: RwLock<HashMap<Box<str>, Current, foldhash::fast::RandomState>>,
    sweep: Option<Sweep>,
}

thread_local! {
    /// Where a stored key is built, so that a command allocates nothing for it.
    static STORED: RefCell<String> = RefCell::new(String::with_capacity(128));
}

/// Prefixes of cleared generations waiting to be removed, and whether a thread removes them.
#[derive(Debug, Default)]
struct Sweep {
    pending: Arc<Mutex<Vec<String>>>,
    running: Arc<AtomicBool>,
}

impl MemoryGenerations {
    pub(crate) fn new(sweep: bool) -> Self {
        MemoryGenerations {
            current: RwLock::new(HashMap::default()),
            sweep: sweep.then(Sweep::default),
        }
    }

    /// Writes the key `key` is stored under into `out` (cleared first).
    fn build(&self, key: &str, group: &str, out: &mut String) {
        out.clear();
        match self.current.read().get(group) {
            Some(c) => out.push_str(&c.prefix),
            None => {
                out.push_str(group);
                out.push_str("0.");
            }
        }
        out.push_str(&key[group.len()..]);
    }

    /// Runs `f` with the key `key` is stored under.
    #[inline]
    pub(crate) fn with_stored<R>(&self, key: &str, f: impl FnOnce(&str) -> R) -> R {
        let Some(g) = group(key) else {
            return f(key);
        };
        STORED.with(|buf| match buf.try_borrow_mut() {
            Ok(mut out) => {
                self.build(key, g, &mut out);
                f(&out)
            }
            // `f` itself building a stored key: rare, so a key of its own
            Err(_) => {
                let mut out = String::with_capacity(key.len() + 24);
                self.build(key, g, &mut out);
                f(&out)
            }
        })
    }

    /// Moves `group` to its next generation; with the sweep on, queues the old generation's
    /// entries of `store` for removal.
    pub(crate) fn clear(&self, group: &str, store: &Arc<Store>) {
        let old = {
            let mut current = self.current.write();
            let c = current.entry(group.into()).or_insert(Current {
                generation: 0,
                prefix: Box::from(""),
            });
            let old = c.generation;
            c.generation += 1;
            c.prefix = fold(group, group.len(), c.generation, "", "").into_boxed_str();
            old
        };
        if let Some(sweep) = &self.sweep {
            sweep.queue(format!("{group}{old}."), store);
        }
    }
}

impl Sweep {
    fn queue(&self, prefix: String, store: &Arc<Store>) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(prefix);
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pending, running, store) = (self.pending.clone(), self.running.clone(), store.clone());
        let spawned = std::thread::Builder::new()
            .name("cache-memory-sweep".into())
            .spawn(move || {
                loop {
                    let next = pending.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    match next {
                        Some(prefix) => {
                            for shard in 0..store.shard_count() {
                                store.clear_prefix_in_shard(shard, &prefix);
                                std::thread::yield_now();
                            }
                        }
                        None => {
                            running.store(false, Ordering::Release);
                            // a prefix queued between the pop and the store has no thread
                            let empty =
                                pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                            if empty || running.swap(true, Ordering::AcqRel) {
                                return;
                            }
                        }
                    }
                }
            });
        if spawned.is_err() {
            // no thread: the entries stay until their TTL or eviction, as without the sweep
            self.running.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_their_groups_generation() {
        let g = MemoryGenerations::new(false);
        let stored = |k: &str| g.with_stored(k, str::to_owned);
        assert_eq!(stored("plain"), "plain");
        assert_eq!(stored("ns:k"), "ns:0.k");
        let store = Arc::new(Store::new(
            crate::store::StoreConfig::default(),
            Arc::new(crate::clock::SystemClock::new()),
        ));
        g.clear("ns:", &store);
        let stored = |k: &str| g.with_stored(k, str::to_owned);
        assert_eq!(stored("ns:k"), "ns:1.k");
        assert_eq!(stored("other:k"), "other:0.k");
        // nested: the inner key is built apart
        let nested = g.with_stored("ns:a", |a| g.with_stored("ns:b", |b| format!("{a} {b}")));
        assert_eq!(nested, "ns:1.a ns:1.b");
    }
}
