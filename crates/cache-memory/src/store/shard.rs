//! One shard: a slab of slots, a hash index into it, the two S3-FIFO queues and
//! the ghost filter. Everything here runs under the shard's lock; the global
//! counters live in [`Ctx`].

use std::mem;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use hashbrown::HashTable;

use super::Ctx;
use super::key::Key;

/// "No slot" in links and free lists.
const NIL: u32 = u32::MAX;
/// Highest number of slots a shard may hold (indices are `u32`, `NIL` excluded).
const MAX_SLOTS: usize = (u32::MAX - 1) as usize;

/// Low two bits of `Slot::meta`: the access counter (0..=3).
pub(super) const FREQ_MASK: u64 = 0b11;
/// Bit 2 of `Slot::meta`: set when the slot is in the main queue, clear in the small one.
const MAIN_BIT: u64 = 0b100;
/// `Slot::meta >> EXP_SHIFT` is the expiry in microseconds since the clock's epoch, 0 = never.
const EXP_SHIFT: u32 = 3;
/// Largest expiry that fits in `meta` (about 73,000 years).
pub(super) const MAX_EXPIRES: u64 = u64::MAX >> EXP_SHIFT;

/// The small queue gets evicted from while it holds at least 1/SMALL_RATIO of the shard.
const SMALL_RATIO: u64 = 10;
/// Smallest ghost filter, in fingerprints.
const MIN_GHOST: usize = 16;

/// The expiry (microseconds since the epoch, 0 = never) packed in a meta word.
#[inline]
pub(super) fn expires_of(meta: u64) -> u64 {
    meta >> EXP_SHIFT
}

/// Whether a meta word says "expired" at `now` (microseconds since the epoch).
#[inline]
pub(super) fn is_expired(meta: u64, now: u64) -> bool {
    let expires = expires_of(meta);
    expires != 0 && now >= expires
}

/// One entry: exactly one 64-byte cache line, all of which a lookup reads.
/// The queue links live in a parallel array ([`Link`]), touched only by writers.
#[repr(C, align(64))]
pub(super) struct Slot {
    /// `expires_at << 3 | in_main << 2 | freq`. Readers bump `freq` with a
    /// relaxed load/store under the read lock (lost updates are harmless);
    /// everything else is only changed under the write lock.
    pub(super) meta: AtomicU64,
    pub(super) key: Key,
    pub(super) value: Bytes,
}

/// Queue links of a slot.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    /// Next in the queue, or next free slot when vacant.
    next: u32,
}

impl Slot {
    #[inline]
    fn weight(&self) -> u64 {
        weight_of(self.key.as_bytes().len(), self.value.len())
    }
}

/// The weight of an entry: key bytes plus value bytes.
#[inline]
pub(super) fn weight_of(key_len: usize, value_len: usize) -> u64 {
    (key_len as u64).saturating_add(value_len as u64)
}

/// An intrusive FIFO over slot indices.
#[derive(Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    len: u32,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

fn link_back(links: &mut [Link], q: &mut Queue, i: u32) {
    let old_tail = q.tail;
    links[i as usize] = Link {
        prev: old_tail,
        next: NIL,
    };
    if old_tail == NIL {
        q.head = i;
    } else {
        links[old_tail as usize].next = i;
    }
    q.tail = i;
    q.len += 1;
}

fn unlink(links: &mut [Link], q: &mut Queue, i: u32) {
    let Link { prev, next } = mem::replace(
        &mut links[i as usize],
        Link {
            prev: NIL,
            next: NIL,
        },
    );
    if prev == NIL {
        q.head = next;
    } else {
        links[prev as usize].next = next;
    }
    if next == NIL {
        q.tail = prev;
    } else {
        links[next as usize].prev = prev;
    }
    q.len -= 1;
}

/// The contents of one shard lock.
pub(super) struct Shard {
    /// hash → slot index.
    table: HashTable<u32>,
    slots: Vec<Slot>,
    /// Queue links, parallel to `slots`.
    links: Vec<Link>,
    /// Head of the free-slot list (threaded through `Link::next`).
    free_head: u32,
    /// S3-FIFO probation queue: new keys enter here.
    small: Queue,
    /// S3-FIFO main queue: keys seen again while in `small`, or recently evicted from it.
    main: Queue,
    /// Direct-mapped fingerprints of keys recently evicted from `small` without a hit.
    ghost: Vec<u32>,
    /// Next slot the incremental expiry sweep looks at.
    cursor: usize,
    /// Occupied slots.
    len: u32,
    /// Occupied slots that carry an expiry (the sweep is skipped when 0).
    expiring: u32,
}

impl Shard {
    pub(super) fn new() -> Shard {
        Shard {
            table: HashTable::new(),
            slots: Vec::new(),
            links: Vec::new(),
            free_head: NIL,
            small: Queue::EMPTY,
            main: Queue::EMPTY,
            ghost: Vec::new(),
            cursor: 0,
            len: 0,
            expiring: 0,
        }
    }

    /// Occupied slots (live or expired but not yet reclaimed).
    #[inline]
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// Whether a new key can get a slot without evicting first.
    #[inline]
    pub(super) fn has_free_slot(&self) -> bool {
        self.free_head != NIL || self.slots.len() < MAX_SLOTS
    }

    #[inline]
    pub(super) fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                slots.get(i as usize).is_some_and(|s| s.key.matches(key))
            })
            .copied()
    }

    #[inline]
    pub(super) fn slot(&self, i: u32) -> &Slot {
        &self.slots[i as usize]
    }

    /// Inserts a key known to be absent, into the main queue if `in_main` (the
    /// key was found in the ghost filter, see [`ghost_take`](Self::ghost_take)).
    /// The caller has reserved its weight in the global counters and checked
    /// [`has_free_slot`](Self::has_free_slot).
    pub(super) fn insert(
        &mut self,
        ctx: &Ctx,
        hash: u64,
        key: &[u8],
        value: Bytes,
        expires: u64,
        in_main: bool,
    ) {
        let meta = (expires << EXP_SHIFT) | if in_main { MAIN_BIT } else { 0 };
        let idx = if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.links[i as usize].next;
            let s = &mut self.slots[i as usize];
            s.key = Key::new(key);
            s.value = value;
            *s.meta.get_mut() = meta;
            i
        } else {
            let i = self.slots.len() as u32;
            self.slots.push(Slot {
                meta: AtomicU64::new(meta),
                key: Key::new(key),
                value,
            });
            self.links.push(Link {
                prev: NIL,
                next: NIL,
            });
            i
        };
        let slots = &self.slots;
        self.table
            .insert_unique(hash, idx, |&i| ctx.hash(slots[i as usize].key.as_bytes()));
        let q = if in_main {
            &mut self.main
        } else {
            &mut self.small
        };
        link_back(&mut self.links, q, idx);
        self.len += 1;
        if expires != 0 {
            self.expiring += 1;
        }
    }

    /// Replaces the value of slot `i`, sets its expiry (`None` keeps it) and
    /// counts the write as an access. Returns the old value. Global weight
    /// accounting is the caller's job.
    pub(super) fn overwrite(&mut self, i: u32, value: Bytes, expires: Option<u64>) -> Bytes {
        let s = &mut self.slots[i as usize];
        let meta = s.meta.get_mut();
        let old_expires = expires_of(*meta);
        let new_expires = expires.unwrap_or(old_expires);
        let freq = ((*meta & FREQ_MASK) + 1).min(FREQ_MASK);
        *meta = (new_expires << EXP_SHIFT) | (*meta & MAIN_BIT) | freq;
        match (old_expires != 0, new_expires != 0) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
        mem::replace(&mut s.value, value)
    }

    /// Sets the expiry of slot `i` (0 = never), keeping everything else.
    pub(super) fn set_expiry(&mut self, i: u32, expires: u64) {
        let meta = self.slots[i as usize].meta.get_mut();
        let had = expires_of(*meta) != 0;
        *meta = (expires << EXP_SHIFT) | (*meta & (MAIN_BIT | FREQ_MASK));
        match (had, expires != 0) {
            (false, true) => self.expiring += 1,
            (true, false) => self.expiring -= 1,
            _ => {}
        }
    }

    /// Removes slot `i` and releases its weight. `hash` is recomputed when not given.
    /// Returns the value so the caller may drop it after unlocking.
    pub(super) fn remove(&mut self, ctx: &Ctx, i: u32, hash: Option<u64>) -> Bytes {
        let (meta, hash, weight) = {
            let s = &mut self.slots[i as usize];
            let meta = *s.meta.get_mut();
            let hash = hash.unwrap_or_else(|| ctx.hash(s.key.as_bytes()));
            (meta, hash, s.weight())
        };
        let q = if meta & MAIN_BIT != 0 {
            &mut self.main
        } else {
            &mut self.small
        };
        unlink(&mut self.links, q, i);
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        let s = &mut self.slots[i as usize];
        s.key = Key::Vacant;
        *s.meta.get_mut() = 0;
        let value = mem::take(&mut s.value);
        self.links[i as usize].next = self.free_head;
        self.free_head = i;
        self.len -= 1;
        if expires_of(meta) != 0 {
            self.expiring -= 1;
        }
        ctx.release(1, weight);
        value
    }

    /// Looks at up to `steps` slots from the sweep cursor and removes the
    /// expired ones (never `keep`). With `first_only` it stops at the first
    /// removal. Returns whether anything was removed.
    pub(super) fn sweep(
        &mut self,
        ctx: &Ctx,
        now: u64,
        steps: usize,
        keep: Option<u32>,
        first_only: bool,
    ) -> bool {
        let n = self.slots.len();
        if self.expiring == 0 || n == 0 {
            return false;
        }
        let mut removed = false;
        for _ in 0..steps.min(n) {
            if self.cursor >= n {
                self.cursor = 0;
            }
            let i = self.cursor as u32;
            self.cursor += 1;
            let s = &self.slots[i as usize];
            if !s.key.is_vacant() && Some(i) != keep && is_expired(s.meta.load(Relaxed), now) {
                drop(self.remove(ctx, i, None));
                removed = true;
                if first_only || self.expiring == 0 {
                    break;
                }
            }
        }
        removed
    }

    /// Removes every expired entry. Returns how many were removed.
    pub(super) fn remove_all_expired(&mut self, ctx: &Ctx, now: u64) -> u64 {
        if self.expiring == 0 {
            return 0;
        }
        let mut removed = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !s.key.is_vacant() && is_expired(s.meta.load(Relaxed), now) {
                drop(self.remove(ctx, i as u32, None));
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry whose key starts with `prefix`. Returns how many of
    /// them were live.
    pub(super) fn remove_prefix(&mut self, ctx: &Ctx, prefix: &[u8], now: u64) -> u64 {
        let mut live = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if !s.key.is_vacant() && s.key.as_bytes().starts_with(prefix) {
                if !is_expired(s.meta.load(Relaxed), now) {
                    live += 1;
                }
                drop(self.remove(ctx, i as u32, None));
            }
        }
        live
    }

    /// Empties the shard and releases its weight. Returns the number of live
    /// entries removed and the old contents, to be dropped after unlocking.
    pub(super) fn take_all(&mut self, ctx: &Ctx, now: u64) -> (u64, Shard) {
        let mut live = 0;
        let mut weight = 0u64;
        for s in &self.slots {
            if !s.key.is_vacant() {
                weight = weight.saturating_add(s.weight());
                if !is_expired(s.meta.load(Relaxed), now) {
                    live += 1;
                }
            }
        }
        let len = u64::from(self.len);
        let old = mem::replace(self, Shard::new());
        ctx.release(len, weight);
        (live, old)
    }

    /// Evicts one entry to make room, never `keep`. Expired entries are taken
    /// first: a short look-ahead of the sweep, then any expired entry met at the
    /// head of a queue. Otherwise S3-FIFO picks the victim. Returns false when
    /// the shard has nothing it may evict.
    pub(super) fn evict_one(
        &mut self,
        ctx: &Ctx,
        now: u64,
        keep: Option<u32>,
        lookahead: usize,
    ) -> bool {
        if self.sweep(ctx, now, lookahead, keep, true) {
            return true;
        }
        if self.len <= u32::from(keep.is_some()) {
            return false;
        }
        // Terminates: every turn evicts, moves an entry from `small` to `main`
        // (at most `small.len` times), or lowers a counter / rotates `keep`
        // inside `main` (bounded, since another evictable entry exists).
        loop {
            let from_small = self.small.len > 0
                && (u64::from(self.small.len) * SMALL_RATIO >= u64::from(self.len)
                    || self.main.len == 0);
            if from_small {
                let i = self.small.head;
                let meta = *self.slots[i as usize].meta.get_mut();
                if Some(i) != keep && is_expired(meta, now) {
                    drop(self.remove(ctx, i, None));
                    return true;
                }
                if meta & FREQ_MASK > 0 || Some(i) == keep {
                    // Seen again while on probation: promote, counter reset.
                    unlink(&mut self.links, &mut self.small, i);
                    *self.slots[i as usize].meta.get_mut() = (meta & !FREQ_MASK) | MAIN_BIT;
                    link_back(&mut self.links, &mut self.main, i);
                    continue;
                }
                let hash = ctx.hash(self.slots[i as usize].key.as_bytes());
                self.ghost_insert(hash);
                drop(self.remove(ctx, i, Some(hash)));
                ctx.counters.evictions.fetch_add(1, Relaxed);
                return true;
            }
            let i = self.main.head;
            if i == NIL {
                return false;
            }
            let meta = *self.slots[i as usize].meta.get_mut();
            if Some(i) != keep && is_expired(meta, now) {
                drop(self.remove(ctx, i, None));
                return true;
            }
            if meta & FREQ_MASK > 0 || Some(i) == keep {
                // Reinsert at the tail with one access less.
                unlink(&mut self.links, &mut self.main, i);
                if meta & FREQ_MASK > 0 {
                    *self.slots[i as usize].meta.get_mut() = meta - 1;
                }
                link_back(&mut self.links, &mut self.main, i);
                continue;
            }
            drop(self.remove(ctx, i, None));
            ctx.counters.evictions.fetch_add(1, Relaxed);
            return true;
        }
    }

    fn ghost_insert(&mut self, hash: u64) {
        let target = (self.len as usize).next_power_of_two().max(2 * MIN_GHOST) / 2;
        if self.ghost.len() < target {
            self.ghost = vec![0; target];
        }
        let mask = self.ghost.len() - 1;
        self.ghost[(hash as usize) & mask] = fingerprint(hash);
    }

    /// Whether the key of `hash` was recently evicted from probation; forgets it.
    pub(super) fn ghost_take(&mut self, hash: u64) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let mask = self.ghost.len() - 1;
        let cell = &mut self.ghost[(hash as usize) & mask];
        if *cell == fingerprint(hash) {
            *cell = 0;
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    pub(super) fn check_invariants(&self, ctx: &Ctx) -> (u64, u64) {
        let occupied: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&i| !self.slots[i as usize].key.is_vacant())
            .collect();
        assert_eq!(occupied.len(), self.len as usize);
        assert_eq!(self.table.len(), self.len as usize);
        assert_eq!(self.small.len + self.main.len, self.len);
        let expiring = occupied
            .iter()
            .filter(|&&i| expires_of(self.slots[i as usize].meta.load(Relaxed)) != 0)
            .count();
        assert_eq!(expiring, self.expiring as usize);
        for &i in &occupied {
            let s = &self.slots[i as usize];
            let hash = ctx.hash(s.key.as_bytes());
            assert_eq!(self.find(hash, s.key.as_bytes()), Some(i));
        }
        for (q, main) in [(&self.small, false), (&self.main, true)] {
            let mut n = 0;
            let mut prev = NIL;
            let mut i = q.head;
            while i != NIL {
                let s = &self.slots[i as usize];
                assert!(!s.key.is_vacant());
                assert_eq!(self.links[i as usize].prev, prev);
                assert_eq!(s.meta.load(Relaxed) & MAIN_BIT != 0, main);
                prev = i;
                i = self.links[i as usize].next;
                n += 1;
            }
            assert_eq!(q.tail, prev);
            assert_eq!(n, q.len);
        }
        let mut free = 0;
        let mut i = self.free_head;
        while i != NIL {
            assert!(self.slots[i as usize].key.is_vacant());
            i = self.links[i as usize].next;
            free += 1;
        }
        assert_eq!(free + self.len as usize, self.slots.len());
        assert_eq!(self.links.len(), self.slots.len());
        let weight = occupied
            .iter()
            .map(|&i| self.slots[i as usize].weight())
            .sum();
        (u64::from(self.len), weight)
    }
}

#[inline]
fn fingerprint(hash: u64) -> u32 {
    ((hash >> 32) as u32) | 1
}
