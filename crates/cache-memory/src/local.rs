//! The memory backend's store, for in-process tiers: synchronous calls, no namespace, no
//! serializer, no layers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::{Clock, SystemClock};
use crate::store::{Store, StoreConfig, TooLarge};

/// A bounded, concurrent `key → bytes` store with a TTL per entry: the engine of
/// [`MemoryBackend`](crate::MemoryBackend) (S3-FIFO eviction, bounds on entries and bytes
/// that are never exceeded), with synchronous calls.
///
/// Made for in-process tiers that keep copies of a remote backend's entries; a cache program
/// uses [`MemoryBackend`](crate::MemoryBackend).
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use cache_memory::LocalStore;
///
/// let store = LocalStore::new(Some(10_000), Some(64 << 20));
/// store.set("k", Bytes::from_static(b"v"), Some(Duration::from_secs(5))).unwrap();
/// let (value, ttl) = store.get_with_ttl("k").unwrap();
/// assert_eq!(value, "v");
/// assert!(ttl.unwrap() <= Duration::from_secs(5));
/// ```
pub struct LocalStore {
    store: Store,
}

/// [`LocalStore::set`] refused an entry that can never fit: its key and value weigh more than
/// the byte bound, or a bound is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTooLarge;

impl fmt::Display for EntryTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the entry can never fit in the store")
    }
}

impl std::error::Error for EntryTooLarge {}

impl LocalStore {
    /// A store holding at most `max_entries` entries and `max_bytes` bytes (key plus value
    /// per entry); `None` leaves a bound off.
    pub fn new(max_entries: Option<u64>, max_bytes: Option<u64>) -> Self {
        LocalStore::with_clock(max_entries, max_bytes, Arc::new(SystemClock::new()))
    }

    /// Like [`new`](Self::new), with the clock that decides expiry.
    pub fn with_clock(
        max_entries: Option<u64>,
        max_bytes: Option<u64>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let config = StoreConfig {
            max_entries,
            max_bytes,
        };
        LocalStore {
            store: Store::new(config, clock),
        }
    }

    /// The value of a live entry.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.store.get(key)
    }

    /// The value of a live entry and its remaining lifetime (`None`: no expiry).
    pub fn get_with_ttl(&self, key: &str) -> Option<(Bytes, Option<Duration>)> {
        self.store.get_with_ttl(key)
    }

    /// Stores `value` under `key` for `ttl` (`None`: no expiry), replacing any entry;
    /// evicts others to stay within the bounds.
    ///
    /// # Errors
    /// [`EntryTooLarge`] when the entry can never fit; the store is unchanged then.
    pub fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), EntryTooLarge> {
        self.store
            .set(key, value, ttl)
            .map_err(|TooLarge| EntryTooLarge)
    }

    /// Removes `key`; whether it held a live entry.
    pub fn remove(&self, key: &str) -> bool {
        self.store.delete(key)
    }

    /// Removes every entry whose key starts with `prefix`; how many.
    pub fn remove_prefix(&self, prefix: &str) -> u64 {
        self.store.clear_prefix(prefix)
    }

    /// Removes every entry; how many.
    pub fn clear(&self) -> u64 {
        self.store.clear()
    }

    /// Entries held (expired ones not yet reclaimed included).
    pub fn len(&self) -> u64 {
        self.store.len()
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// Bytes held (key plus value per entry).
    pub fn weight(&self) -> u64 {
        self.store.weight()
    }

    /// Entries evicted to stay within the bounds so far.
    pub fn evictions(&self) -> u64 {
        self.store.evictions()
    }
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.store.config();
        f.debug_struct("LocalStore")
            .field("max_entries", &config.max_entries)
            .field("max_bytes", &config.max_bytes)
            .field("len", &self.store.len())
            .field("weight", &self.store.weight())
            .finish()
    }
}
