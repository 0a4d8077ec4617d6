//! The storage engine of the memory backend: a synchronous, concurrent, bounded
//! `key → bytes` store with a per-entry TTL.
//!
//! # Layout
//!
//! The store is split into a power-of-two number of shards, picked by bits of
//! the key's hash (foldhash, seeded per store). Each shard is a
//! [`parking_lot::RwLock`] (padded to its own cache lines) around:
//!
//! * a slab `Vec<Slot>` of 64-byte, cache-line aligned slots: an atomic meta
//!   word (expiry in microseconds since the clock's epoch, queue bit, 2-bit
//!   access counter), the key (up to 22 bytes inline, longer keys in one boxed
//!   slice; the key is stored once) and the value as [`Bytes`]; a lookup reads
//!   exactly one cache line of the slab;
//! * a parallel `Vec` of `u32` queue links (8 bytes per slot), used by writers
//!   only;
//! * a [`hashbrown::HashTable<u32>`] from hash to slot index (5 bytes per
//!   bucket);
//! * the two S3-FIFO queues (doubly linked lists through the link array) and a
//!   direct-mapped "ghost" filter of 32-bit fingerprints (2–4 bytes per entry).
//!
//! Reads (`get`, `contains`, `ttl`) take the read lock only; `get` allocates
//! nothing (the value is a reference-counted [`Bytes`] clone) and records the
//! access by bumping the 2-bit counter with a relaxed load/store, skipped when
//! it is already saturated, so hot keys cause no cache-line writes.
//!
//! # Bounds
//!
//! An entry weighs `key.len() + value.len()` bytes. Two global atomic counters
//! hold the number of entries and their total weight; room is *reserved* in
//! them (compare-and-swap against the bound) before an entry becomes visible
//! and released after it is gone, so [`len`](Store::len) and
//! [`weight`](Store::weight) never exceed `max_entries` / `max_bytes`, at any
//! instant. When a reservation fails, the writer evicts from its own shard
//! (under the lock it already holds) and, when that shard has nothing left,
//! from the others (`try_write` while holding its own lock, blocking only
//! after releasing it, so no two shard locks are ever waited for together).
//! Shards therefore share one budget: a single value may use up to all of
//! `max_bytes`. An entry that can never fit (weight over `max_bytes`, or a
//! zero bound) is refused with [`TooLarge`].
//!
//! # Eviction: S3-FIFO
//!
//! New keys enter a small FIFO queue (probation); when the small queue holds
//! 10% or more of the shard, its oldest entry leaves it: to the main queue if
//! it was read while on probation, otherwise out of the cache, leaving its
//! fingerprint in the ghost filter. A key that comes back while its fingerprint
//! is in the ghost filter goes straight to the main queue. The main queue is a
//! FIFO with reinsertion (a CLOCK): an entry with a non-zero counter is moved to
//! the tail with the counter lowered by one, otherwise evicted. One-hit
//! wonders and scans thus only ever churn the small queue. Reads cost one
//! relaxed load (plus a store on the first few accesses). On Zipf workloads
//! this policy has a markedly higher hit ratio than LRU, CLOCK or FIFO
//! (`examples/hit_ratio.rs`).
//!
//! # Expiry and reclamation
//!
//! A TTL is rounded up to whole milliseconds (at least 1 ms) and stored as an
//! absolute expiry in microseconds; an entry is expired once
//! `now >= expires_at` and from then on is invisible to every operation.
//! Expired entries are reclaimed without timers, tasks or threads:
//!
//! * lazily: `get` removes an expired entry it finds, and every write
//!   operation removes or replaces the expired entry of its own key;
//! * by an incremental sweep: every write operation examines the next
//!   [`SWEEP_STEP`] slots of its shard (a cursor going round the slab) and
//!   removes the expired ones; shards holding no entry with a TTL skip it;
//! * when making room: before evicting a live entry, the writer looks at up to
//!   [`EVICT_LOOKAHEAD`] more slots for an expired one, and any expired entry
//!   met at the head of a queue is removed first;
//! * in full by [`remove_expired`](Store::remove_expired), [`clear`](Store::clear)
//!   and [`clear_prefix`](Store::clear_prefix).
//!
//! Guarantee: a shard's slab only grows when no slot is free, and the sweep
//! visits every slot within `slots / SWEEP_STEP` writes to the shard, so an
//! expired entry is held for at most one such pass. If at most `L` entries of
//! a shard are unexpired at any time, the shard therefore holds at most about
//! `2 · L` entries, expired ones included, however long it is written to, and
//! about `L · SWEEP_STEP / (SWEEP_STEP − 1)` = `4/3 · L` when expirations keep
//! pace with insertions (the usual steady state). A store that is only
//! written with short TTLs does not grow without bound. Expired entries of a
//! shard that is no longer written stay until they are read, met by an
//! eviction, or removed by `remove_expired`.

#[path = "store/key.rs"]
mod key;
#[path = "store/shard.rs"]
mod shard;
#[cfg(test)]
#[path = "store/tests.rs"]
mod tests;

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::clock::Clock;
use shard::{FREQ_MASK, MAX_EXPIRES, Shard, expires_of, is_expired, weight_of};

/// Slots examined by the incremental expiry sweep on every write.
pub(crate) const SWEEP_STEP: usize = 4;
/// Extra slots examined for an expired entry before a live one is evicted.
pub(crate) const EVICT_LOOKAHEAD: usize = 8;
/// Shards are halved until each gets at least this many entries of `max_entries`.
const MIN_ENTRIES_PER_SHARD: u64 = 64;
/// Shards are halved until each gets at least this many bytes of `max_bytes`.
const MIN_BYTES_PER_SHARD: u64 = 64 * 1024;
/// Upper limit on the shard count.
const MAX_SHARDS: usize = 256;

/// Bounds of a [`Store`]. `None` means unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreConfig {
    /// Most entries held at once (expired but not yet reclaimed ones included).
    pub max_entries: Option<u64>,
    /// Most bytes held at once, counting `key.len() + value.len()` per entry.
    pub max_bytes: Option<u64>,
}

/// What [`Store::ttl`] knows about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyTtl {
    /// No live entry.
    Missing,
    /// A live entry without expiry.
    NoExpiry,
    /// A live entry expiring in this much time, rounded up to whole milliseconds.
    Remaining(Duration),
}

/// Why [`Store::increment`] did not change the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncrementError {
    /// The stored value is not canonical ASCII decimal text (`-?[0-9]+`, no
    /// `+`, no spaces, no leading zeros, in `i64` range).
    NotInteger,
    /// The result does not fit in an `i64`.
    Overflow,
    /// The new entry (key plus the decimal text) can never fit the bounds.
    TooLarge,
}

/// The entry can never fit: its weight exceeds `max_bytes`, or a bound is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

/// The shard lock, on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The global entry and weight counters, on their own cache lines.
#[repr(align(128))]
struct Counters {
    len: AtomicU64,
    weight: AtomicU64,
    /// Live entries removed to make room, since the store was made.
    evictions: AtomicU64,
}

/// What every shard operation needs besides the shard: the hasher, the bounds
/// and the global counters.
struct Ctx {
    hasher: foldhash::fast::RandomState,
    max_entries: u64,
    max_bytes: u64,
    counters: Counters,
}

impl Ctx {
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Reserves room for `n` more entries weighing `w` more bytes, or nothing.
    fn try_reserve(&self, n: u64, w: u64) -> bool {
        if n > 0 && !reserve(&self.counters.len, n, self.max_entries) {
            return false;
        }
        if w > 0 && !reserve(&self.counters.weight, w, self.max_bytes) {
            if n > 0 {
                self.counters.len.fetch_sub(n, Relaxed);
            }
            return false;
        }
        true
    }

    #[inline]
    fn release(&self, n: u64, w: u64) {
        if n > 0 {
            self.counters.len.fetch_sub(n, Relaxed);
        }
        if w > 0 {
            self.counters.weight.fetch_sub(w, Relaxed);
        }
    }
}

fn reserve(counter: &AtomicU64, n: u64, max: u64) -> bool {
    if max == u64::MAX {
        counter.fetch_add(n, Relaxed);
        return true;
    }
    counter
        .fetch_update(Relaxed, Relaxed, |cur| {
            cur.checked_add(n).filter(|&next| next <= max)
        })
        .is_ok()
}

/// What a write operation decided after seeing the live value (if any).
enum Decision<R> {
    /// Change nothing and answer `R`.
    Keep(R),
    /// Store `value` with `expiry` and answer `R`.
    Write {
        value: NewValue,
        expiry: NewExpiry,
        ret: R,
    },
}

enum NewValue {
    /// The value handed to [`Store::upsert`].
    Supplied,
    /// A value computed by the decision.
    Owned(Bytes),
}

enum NewExpiry {
    /// Absolute expiry in microseconds, 0 = never.
    At(u64),
    /// Keep the current expiry (none for a new entry).
    Keep,
}

/// A sharded, bounded `key → bytes` store with per-entry TTL. See the
/// [module documentation](self) for its design.
pub(crate) struct Store {
    shards: Box<[Padded<RwLock<Shard>>]>,
    shard_mask: usize,
    ctx: Ctx,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    /// Round-robin start for evicting from other shards.
    remote: AtomicUsize,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .field("weight", &self.weight())
            .field("clock", &self.clock)
            .finish()
    }
}

impl Store {
    /// Creates an empty store.
    ///
    /// The shard count is 8 per available CPU (a power of two, at most 256),
    /// halved until every shard gets at least 64 entries of `max_entries` and
    /// 64 KiB of `max_bytes`; tiny bounds give a single shard. A bound of zero
    /// is allowed and refuses every entry.
    pub(crate) fn new(config: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = shard_count(config, cpus);
        Store::with_shards(config, clock, shards)
    }

    fn with_shards(config: StoreConfig, clock: Arc<dyn Clock>, shards: usize) -> Store {
        let shards = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        Store {
            shards: (0..shards)
                .map(|_| Padded(RwLock::new(Shard::new())))
                .collect(),
            shard_mask: shards - 1,
            ctx: Ctx {
                hasher: foldhash::fast::RandomState::default(),
                max_entries: config.max_entries.unwrap_or(u64::MAX),
                max_bytes: config.max_bytes.unwrap_or(u64::MAX),
                counters: Counters {
                    len: AtomicU64::new(0),
                    weight: AtomicU64::new(0),
                    evictions: AtomicU64::new(0),
                },
            },
            clock,
            config,
            remote: AtomicUsize::new(0),
        }
    }

    /// The bounds this store was created with.
    pub(crate) fn config(&self) -> StoreConfig {
        self.config
    }

    /// Number of shards.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        // Bits 40.. are used neither by hashbrown's bucket index (low bits) nor
        // by its control tag (top 7 bits).
        ((hash >> 40) as usize) & self.shard_mask
    }

    /// Microseconds since the clock's epoch.
    #[inline]
    fn now(&self) -> u64 {
        u64::try_from(self.clock.now().as_micros()).unwrap_or(u64::MAX)
    }

    /// The absolute expiry for `ttl` from `now` (0 = never).
    fn expires_at(now: u64, ttl: Option<Duration>) -> u64 {
        match ttl {
            None => 0,
            Some(ttl) => {
                let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
                let us = u64::try_from(ms.saturating_mul(1000)).unwrap_or(u64::MAX);
                now.saturating_add(us).clamp(1, MAX_EXPIRES)
            }
        }
    }

    /// Whether an entry of this weight can ever be stored.
    #[inline]
    fn fits(&self, weight: u64) -> bool {
        weight <= self.ctx.max_bytes && self.ctx.max_entries > 0
    }

    /// The value of a live entry.
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let hash = self.ctx.hash(key.as_bytes());
        let shard = &self.shards[self.shard_of(hash)];
        {
            let guard = shard.read();
            let slot = guard.slot(guard.find(hash, key.as_bytes())?);
            let meta = slot.meta.load(Relaxed);
            if expires_of(meta) == 0 || self.now() < expires_of(meta) {
                if meta & FREQ_MASK != FREQ_MASK {
                    slot.meta.store(meta + 1, Relaxed);
                }
                return Some(slot.value.clone());
            }
        }
        // Expired: reclaim it now (lazy expiry).
        let now = self.now();
        let old = {
            let mut guard = shard.write();
            match guard.find(hash, key.as_bytes()) {
                Some(i) if is_expired(guard.slot(i).meta.load(Relaxed), now) => {
                    Some(guard.remove(&self.ctx, i, Some(hash)))
                }
                _ => None,
            }
        };
        drop(old);
        None
    }

    /// The value of a live entry and its remaining time to live (`None`: no
    /// expiry), rounded up to whole milliseconds; counts as a read like
    /// [`get`](Self::get).
    pub(crate) fn get_with_ttl(&self, key: &str) -> Option<(Bytes, Option<Duration>)> {
        let hash = self.ctx.hash(key.as_bytes());
        let shard = &self.shards[self.shard_of(hash)];
        {
            let guard = shard.read();
            let slot = guard.slot(guard.find(hash, key.as_bytes())?);
            let meta = slot.meta.load(Relaxed);
            let expires = expires_of(meta);
            let now = if expires == 0 { 0 } else { self.now() };
            if expires == 0 || now < expires {
                if meta & FREQ_MASK != FREQ_MASK {
                    slot.meta.store(meta + 1, Relaxed);
                }
                let ttl =
                    (expires != 0).then(|| Duration::from_millis((expires - now).div_ceil(1000)));
                return Some((slot.value.clone(), ttl));
            }
        }
        // Expired: reclaim it like `get` does.
        self.get(key);
        None
    }

    /// Whether a live entry exists. Changes nothing, not even access counters.
    pub(crate) fn contains(&self, key: &str) -> bool {
        let hash = self.ctx.hash(key.as_bytes());
        let guard = self.shards[self.shard_of(hash)].read();
        match guard.find(hash, key.as_bytes()) {
            Some(i) => {
                let expires = expires_of(guard.slot(i).meta.load(Relaxed));
                expires == 0 || self.now() < expires
            }
            None => false,
        }
    }

    /// The remaining time to live of a key, rounded up to whole milliseconds.
    pub(crate) fn ttl(&self, key: &str) -> KeyTtl {
        let hash = self.ctx.hash(key.as_bytes());
        let guard = self.shards[self.shard_of(hash)].read();
        let Some(i) = guard.find(hash, key.as_bytes()) else {
            return KeyTtl::Missing;
        };
        let expires = expires_of(guard.slot(i).meta.load(Relaxed));
        if expires == 0 {
            return KeyTtl::NoExpiry;
        }
        let now = self.now();
        if now >= expires {
            return KeyTtl::Missing;
        }
        KeyTtl::Remaining(Duration::from_millis((expires - now).div_ceil(1000)))
    }

    /// Stores `value` under `key`, replacing the value and the TTL of a
    /// previous entry (`None`: no expiry).
    ///
    /// Fails only when the entry can never fit ([`TooLarge`]).
    pub(crate) fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), TooLarge> {
        if !self.fits(weight_of(key.len(), value.len())) {
            return Err(TooLarge);
        }
        self.upsert(key, value, |now, _| Decision::Write {
            value: NewValue::Supplied,
            expiry: NewExpiry::At(Store::expires_at(now, ttl)),
            ret: (),
        })
    }

    /// Stores `value` only if `key` has no live entry (an expired one counts
    /// as absent), atomically. Returns whether it was stored.
    pub(crate) fn add(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, TooLarge> {
        if !self.fits(weight_of(key.len(), value.len())) {
            return Err(TooLarge);
        }
        self.upsert(key, value, |now, current| match current {
            Some(_) => Decision::Keep(false),
            None => Decision::Write {
                value: NewValue::Supplied,
                expiry: NewExpiry::At(Store::expires_at(now, ttl)),
                ret: true,
            },
        })
    }

    /// Replaces the value with `new` (and the TTL with `ttl`) only if the live
    /// value equals `expected`; `expected == None` means the key must be
    /// absent. Atomic. Returns whether `new` was stored.
    pub(crate) fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, TooLarge> {
        if !self.fits(weight_of(key.len(), new.len())) {
            return Err(TooLarge);
        }
        self.upsert(key, new, |now, current| {
            if current.map(|v| &v[..]) == expected {
                Decision::Write {
                    value: NewValue::Supplied,
                    expiry: NewExpiry::At(Store::expires_at(now, ttl)),
                    ret: true,
                }
            } else {
                Decision::Keep(false)
            }
        })
    }

    /// Adds `delta` to the integer stored as decimal text, atomically, and
    /// returns the new value. A missing key is created holding `delta`, with no
    /// TTL; an existing key keeps its TTL.
    pub(crate) fn increment(&self, key: &str, delta: i64) -> Result<i64, IncrementError> {
        let result = self.upsert(key, Bytes::new(), |_, current| {
            let next = match current {
                None => delta,
                Some(text) => match parse_canonical_i64(text) {
                    None => return Decision::Keep(Err(IncrementError::NotInteger)),
                    Some(n) => match n.checked_add(delta) {
                        None => return Decision::Keep(Err(IncrementError::Overflow)),
                        Some(next) => next,
                    },
                },
            };
            Decision::Write {
                value: NewValue::Owned(Bytes::copy_from_slice(format_i64(next, &mut [0; 20]))),
                expiry: NewExpiry::Keep,
                ret: Ok(next),
            }
        });
        result.unwrap_or(Err(IncrementError::TooLarge))
    }

    /// Sets (`Some`) or removes (`None`) the expiry of a live entry. Returns
    /// whether the key exists.
    pub(crate) fn expire(&self, key: &str, ttl: Option<Duration>) -> bool {
        let hash = self.ctx.hash(key.as_bytes());
        let mut guard = self.shards[self.shard_of(hash)].write();
        let now = self.now();
        guard.sweep(&self.ctx, now, SWEEP_STEP, None, false);
        match guard.find(hash, key.as_bytes()) {
            None => false,
            Some(i) if is_expired(guard.slot(i).meta.load(Relaxed), now) => {
                drop(guard.remove(&self.ctx, i, Some(hash)));
                false
            }
            Some(i) => {
                guard.set_expiry(i, Store::expires_at(now, ttl));
                true
            }
        }
    }

    /// Removes a key. Returns whether a live entry was removed.
    pub(crate) fn delete(&self, key: &str) -> bool {
        let hash = self.ctx.hash(key.as_bytes());
        let (live, old) = {
            let mut guard = self.shards[self.shard_of(hash)].write();
            let now = self.now();
            guard.sweep(&self.ctx, now, SWEEP_STEP, None, false);
            match guard.find(hash, key.as_bytes()) {
                None => (false, None),
                Some(i) => {
                    let live = !is_expired(guard.slot(i).meta.load(Relaxed), now);
                    (live, Some(guard.remove(&self.ctx, i, Some(hash))))
                }
            }
        };
        drop(old);
        live
    }

    /// Removes `key` only if its live value equals `expected`, atomically. Returns whether it
    /// removed it.
    pub(crate) fn compare_and_delete(&self, key: &str, expected: &[u8]) -> bool {
        let hash = self.ctx.hash(key.as_bytes());
        let old = {
            let mut guard = self.shards[self.shard_of(hash)].write();
            let now = self.now();
            guard.sweep(&self.ctx, now, SWEEP_STEP, None, false);
            match guard.find(hash, key.as_bytes()) {
                Some(i)
                    if !is_expired(guard.slot(i).meta.load(Relaxed), now)
                        && guard.slot(i).value[..] == *expected =>
                {
                    Some(guard.remove(&self.ctx, i, Some(hash)))
                }
                _ => None,
            }
        };
        old.is_some()
    }

    /// Removes every entry whose key starts with `prefix`. Returns how many
    /// live entries were removed (expired ones are removed too, uncounted).
    pub(crate) fn clear_prefix(&self, prefix: &str) -> u64 {
        if prefix.is_empty() {
            return self.clear();
        }
        self.shards
            .iter()
            .map(|shard| {
                let mut guard = shard.write();
                let now = self.now();
                guard.remove_prefix(&self.ctx, prefix.as_bytes(), now)
            })
            .sum()
    }

    /// Removes the entries of shard `shard` whose key starts with `prefix` (one pass over
    /// one shard, under its lock). Returns how many live entries were removed.
    pub(crate) fn clear_prefix_in_shard(&self, shard: usize, prefix: &str) -> u64 {
        let Some(shard) = self.shards.get(shard) else {
            return 0;
        };
        let mut guard = shard.write();
        let now = self.now();
        guard.remove_prefix(&self.ctx, prefix.as_bytes(), now)
    }

    /// Removes every entry. Returns how many live entries were removed.
    pub(crate) fn clear(&self) -> u64 {
        let mut live = 0;
        for shard in self.shards.iter() {
            let (n, old) = {
                let mut guard = shard.write();
                let now = self.now();
                guard.take_all(&self.ctx, now)
            };
            live += n;
            drop(old);
        }
        live
    }

    /// Entries currently held: live ones plus expired ones not yet reclaimed
    /// (plus, transiently, room reserved by a write in progress). Never above
    /// `max_entries`.
    pub(crate) fn len(&self) -> u64 {
        self.ctx.counters.len.load(Relaxed)
    }

    /// Whether [`len`](Store::len) is zero.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes counted against `max_bytes`: `key.len() + value.len()` summed over
    /// the entries [`len`](Store::len) counts. Never above `max_bytes`.
    pub(crate) fn weight(&self) -> u64 {
        self.ctx.counters.weight.load(Relaxed)
    }

    /// Live entries evicted to make room since the store was made.
    pub(crate) fn evictions(&self) -> u64 {
        self.ctx.counters.evictions.load(Relaxed)
    }

    /// Removes every expired entry now (a full sweep of every shard). Returns
    /// how many were removed.
    pub(crate) fn remove_expired(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                let mut guard = shard.write();
                let now = self.now();
                guard.remove_all_expired(&self.ctx, now)
            })
            .sum()
    }

    /// The write path shared by `set`, `add`, `compare_and_set` and
    /// `increment`: under the shard's write lock, sweep a few slots, drop an
    /// expired entry of `key`, let `decide` look at the live value, then store
    /// what it asks for after reserving room. `decide` may run more than once
    /// (when room had to be made in other shards with the lock released);
    /// only its last answer takes effect.
    fn upsert<R>(
        &self,
        key: &str,
        mut supplied: Bytes,
        mut decide: impl FnMut(u64, Option<&Bytes>) -> Decision<R>,
    ) -> Result<R, TooLarge> {
        let hash = self.ctx.hash(key.as_bytes());
        let si = self.shard_of(hash);
        let shard = &self.shards[si];
        // Whether the key was recently evicted (found in the ghost filter): read before room
        // is made for it, as that eviction may reuse the key's ghost cell.
        let mut returning = false;
        loop {
            let mut guard = shard.write();
            let now = self.now();
            let g = &mut *guard;
            g.sweep(&self.ctx, now, SWEEP_STEP, None, false);
            let mut found = g.find(hash, key.as_bytes());
            if let Some(i) = found
                && is_expired(g.slot(i).meta.load(Relaxed), now)
            {
                drop(g.remove(&self.ctx, i, Some(hash)));
                found = None;
            }
            let (value, expiry, ret) = match decide(now, found.map(|i| &g.slot(i).value)) {
                Decision::Keep(ret) => return Ok(ret),
                Decision::Write { value, expiry, ret } => (value, expiry, ret),
            };
            let new_len = match &value {
                NewValue::Supplied => supplied.len(),
                NewValue::Owned(v) => v.len(),
            };
            let new_weight = weight_of(key.len(), new_len);
            if !self.fits(new_weight) {
                return Err(TooLarge);
            }
            let expires = match expiry {
                NewExpiry::At(at) => Some(at),
                NewExpiry::Keep => None,
            };
            match found {
                Some(i) => {
                    let old_weight = weight_of(key.len(), g.slot(i).value.len());
                    let grow = new_weight.saturating_sub(old_weight);
                    if grow > 0 && !self.make_room(g, si, 0, grow, Some(i), now) {
                        drop(guard);
                        self.evict_elsewhere(si, now);
                        continue;
                    }
                    let value = match value {
                        NewValue::Supplied => std::mem::take(&mut supplied),
                        NewValue::Owned(v) => v,
                    };
                    let old = g.overwrite(i, value, expires);
                    self.ctx.release(0, old_weight.saturating_sub(new_weight));
                    drop(guard);
                    drop(old);
                    return Ok(ret);
                }
                None => {
                    returning |= g.ghost_take(hash);
                    while !g.has_free_slot() {
                        if !g.evict_one(&self.ctx, now, None, EVICT_LOOKAHEAD) {
                            return Err(TooLarge);
                        }
                    }
                    if !self.make_room(g, si, 1, new_weight, None, now) {
                        drop(guard);
                        self.evict_elsewhere(si, now);
                        continue;
                    }
                    let value = match value {
                        NewValue::Supplied => std::mem::take(&mut supplied),
                        NewValue::Owned(v) => v,
                    };
                    let expires = expires.unwrap_or(0);
                    g.insert(&self.ctx, hash, key.as_bytes(), value, expires, returning);
                    return Ok(ret);
                }
            }
        }
    }

    /// Reserves room for `n` entries weighing `w` bytes, evicting from shard
    /// `si` (held as `g`, never slot `keep`) and then, without blocking, from
    /// other shards. Returns false when that was not enough; the caller then
    /// releases its lock and calls [`evict_elsewhere`](Store::evict_elsewhere).
    fn make_room(
        &self,
        g: &mut Shard,
        si: usize,
        n: u64,
        w: u64,
        keep: Option<u32>,
        now: u64,
    ) -> bool {
        loop {
            if self.ctx.try_reserve(n, w) {
                return true;
            }
            if g.evict_one(&self.ctx, now, keep, EVICT_LOOKAHEAD) {
                continue;
            }
            if !self.evict_remote(si, now, false) {
                return false;
            }
        }
    }

    /// Evicts one entry from a shard other than `si`. With `blocking` false it
    /// only uses `try_write` (safe while holding shard `si`'s lock).
    fn evict_remote(&self, si: usize, now: u64, blocking: bool) -> bool {
        let n = self.shards.len();
        if n == 1 {
            return false;
        }
        let start = self.remote.fetch_add(1, Relaxed);
        for off in 0..n {
            let t = (start.wrapping_add(off)) & self.shard_mask;
            if t == si {
                continue;
            }
            let guard = if blocking {
                Some(self.shards[t].write())
            } else {
                self.shards[t].try_write()
            };
            if let Some(mut guard) = guard
                && guard.len() > 0
                && guard.evict_one(&self.ctx, now, None, EVICT_LOOKAHEAD)
            {
                return true;
            }
        }
        false
    }

    /// Called with no lock held when a writer could not make room: evict from
    /// another shard, waiting for its lock, or let the writers holding the
    /// budget finish.
    fn evict_elsewhere(&self, si: usize, now: u64) {
        if !self.evict_remote(si, now, true) {
            std::thread::yield_now();
        }
    }
}

/// The shard count for `config` on a machine with `cpus` CPUs.
fn shard_count(config: StoreConfig, cpus: usize) -> usize {
    let mut n = cpus
        .saturating_mul(8)
        .clamp(1, MAX_SHARDS)
        .next_power_of_two();
    if let Some(max) = config.max_entries {
        while n > 1 && max / (n as u64) < MIN_ENTRIES_PER_SHARD {
            n /= 2;
        }
    }
    if let Some(max) = config.max_bytes {
        while n > 1 && max / (n as u64) < MIN_BYTES_PER_SHARD {
            n /= 2;
        }
    }
    n
}

/// Parses canonical decimal text: `-?[0-9]+`, no `+`, no spaces, no leading
/// zeros ("0" itself is fine, "-0" is not), within `i64`.
fn parse_canonical_i64(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = match digits {
        [] => false,
        [b'0'] => digits.len() == text.len(),
        [b'0', ..] => false,
        _ => digits.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Writes `n` as decimal text into `buf` and returns the written part.
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}
