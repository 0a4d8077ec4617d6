//! The local level: a bounded [`LocalStore`] of copies, the bookkeeping that keeps a copy
//! read before an invalidation from landing after it, and the decoded values kept beside
//! entries.
//!
//! # Reads racing invalidations
//!
//! A copy is made from a remote read that may have started before a change the channel then
//! reports. Every read or write that may leave a copy takes a [`Ticket`] first; an
//! invalidation of a key marks the tickets of that key, and a broad one (a namespace, every
//! key, the channel lost) moves a global epoch. A copy is stored only if neither happened
//! since its ticket was taken — checked and stored under the lock of the key's shard, which
//! every invalidation of that key also takes (a broad one takes them all to move the epoch,
//! then empties the store), so no copy that predates an invalidation survives it.
//!
//! # Stored form
//!
//! A copy is stored as an 8-byte token (unique per copy) followed by the bytes. The token
//! ties a decoded value to the exact copy it was decoded from: a decoded value is handed out
//! only while its copy is the one stored.

use std::any::{Any, TypeId};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cache_core::tier::{Invalidated, InvalidationSink, Memo, MemoStore};
use cache_memory::LocalStore;
use hashbrown::HashMap;
use parking_lot::Mutex;

use crate::stats::Counters;

/// Shards of the ticket table (a power of two).
const TICKET_SHARDS: usize = 64;

/// Bytes of the token in front of each stored copy.
const TOKEN_LEN: usize = 8;

/// The most decoded values kept (one slot each; a collision replaces the older one).
const MAX_MEMO_SLOTS: usize = 1 << 16;

/// The open tickets of one shard, by key.
type TicketTable = HashMap<Box<str>, Pending>;

/// Outstanding reads and writes of one key.
#[derive(Debug, Default)]
struct Pending {
    /// Tickets taken and not yet finished.
    open: u32,
    /// The sequence number of the last invalidation of this key while tickets were open.
    invalidated_at: u64,
}

/// A read or write that may leave a copy: taken before it reaches the remote level, and
/// finished after ([`Local::finish`], [`Local::finish_write`]); one dropped unfinished (its
/// call was cancelled) just closes.
pub(crate) struct Ticket<'a> {
    local: &'a Local,
    key: &'a str,
    shard: usize,
    seq: u64,
    epoch: u64,
    open: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.open {
            let mut table = self.local.tickets[self.shard].lock();
            close(&mut table, self.key);
        }
    }
}

/// Closes one ticket of `key`; answers when the key was last invalidated.
fn close(table: &mut TicketTable, key: &str) -> u64 {
    match table.get_mut(key) {
        Some(p) => {
            let at = p.invalidated_at;
            p.open -= 1;
            if p.open == 0 {
                table.remove(key);
            }
            at
        }
        None => 0,
    }
}

/// A decoded value and the copy it was decoded from.
struct Decoded {
    key: Box<str>,
    token: u64,
    type_id: TypeId,
    value: Arc<dyn Any + Send + Sync>,
}

/// Decoded values, one slot per key hash.
pub(crate) struct MemoTable {
    slots: Box<[Mutex<Option<Decoded>>]>,
    hasher: foldhash::fast::RandomState,
}

impl MemoTable {
    fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, MAX_MEMO_SLOTS).next_power_of_two();
        MemoTable {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn slot(&self, key: &str) -> &Mutex<Option<Decoded>> {
        let hash = self.hasher.hash_one(key) as usize;
        &self.slots[hash & (self.slots.len() - 1)]
    }

    /// The decoded value of the copy `token` of `key`, as `type_id`, if kept.
    fn find(&self, key: &str, token: u64, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        let slot = self.slot(key).lock();
        match &*slot {
            Some(d) if d.token == token && d.type_id == type_id && *d.key == *key => {
                Some(Arc::clone(&d.value))
            }
            _ => None,
        }
    }
}

impl MemoStore for MemoTable {
    fn keep(&self, key: &str, token: u64, type_id: TypeId, value: Arc<dyn Any + Send + Sync>) {
        *self.slot(key).lock() = Some(Decoded {
            key: key.into(),
            token,
            type_id,
            value,
        });
    }
}

/// The local level of a tier.
pub(crate) struct Local {
    store: LocalStore,
    /// The longest a copy is kept, whatever the remote entry's lifetime.
    max_ttl: Duration,
    /// Whether copies may be made and used: off while the invalidation channel is down.
    enabled: AtomicBool,
    /// Sequence of key invalidations.
    seq: AtomicU64,
    /// Moves at every broad invalidation.
    epoch: AtomicU64,
    /// Next copy token.
    next_token: AtomicU64,
    tickets: Box<[Mutex<TicketTable>]>,
    hasher: foldhash::fast::RandomState,
    memo: Arc<MemoTable>,
    pub(crate) counters: Arc<Counters>,
}

impl Local {
    pub(crate) fn new(
        max_entries: Option<u64>,
        max_bytes: Option<u64>,
        max_ttl: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        let memo_slots = max_entries.map_or(MAX_MEMO_SLOTS, |n| {
            usize::try_from(n).unwrap_or(MAX_MEMO_SLOTS)
        });
        Local {
            store: LocalStore::new(max_entries, max_bytes),
            max_ttl,
            enabled: AtomicBool::new(true),
            seq: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            next_token: AtomicU64::new(1),
            tickets: (0..TICKET_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            memo: Arc::new(MemoTable::new(memo_slots)),
            counters,
        }
    }

    /// Whether copies may be used now.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn shard_of(&self, key: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        key.hash(&mut h);
        (std::hash::Hasher::finish(&h) as usize) & (TICKET_SHARDS - 1)
    }

    /// The copy of `key`: its bytes, answering `memo` when the caller decodes to a shared
    /// value.
    #[inline]
    pub(crate) fn get(&self, key: &str, memo: Option<&Memo>) -> Option<Bytes> {
        let stored = self.store.get(key)?;
        let (token, bytes) = split(&stored)?;
        if let Some(memo) = memo {
            match self.memo.find(key, token, memo.type_id()) {
                Some(value) => memo.offer(value),
                None => memo.keep_in(self.memo.clone(), token),
            }
        }
        Some(bytes)
    }

    /// Takes a ticket for a read or write of `key` that may leave a copy.
    pub(crate) fn ticket<'a>(&'a self, key: &'a str) -> Ticket<'a> {
        let shard = self.shard_of(key);
        let mut table = self.tickets[shard].lock();
        match table.get_mut(key) {
            Some(p) => p.open += 1,
            None => {
                table.insert(
                    key.into(),
                    Pending {
                        open: 1,
                        invalidated_at: 0,
                    },
                );
            }
        }
        Ticket {
            local: self,
            key,
            shard,
            seq: self.seq.load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
            open: true,
        }
    }

    /// Finishes the ticket of a read: stores `copy` (bytes and the lifetime of the remote
    /// entry, `None`: no expiry) unless the key was invalidated since the ticket was taken,
    /// and drops the key's copy when there is nothing to store. Answers whether it stored.
    pub(crate) fn finish(
        &self,
        ticket: Ticket<'_>,
        copy: Option<(&Bytes, Option<Duration>)>,
    ) -> bool {
        self.settle(ticket, copy, false)
    }

    /// Finishes the ticket of a write that reached (or may have reached) the remote level:
    /// like [`finish`](Self::finish), and every other read of the key on its way is treated
    /// as invalidated (it may have read the value from before the write).
    pub(crate) fn finish_write(
        &self,
        ticket: Ticket<'_>,
        copy: Option<(&Bytes, Option<Duration>)>,
    ) -> bool {
        self.settle(ticket, copy, true)
    }

    fn settle(
        &self,
        mut ticket: Ticket<'_>,
        copy: Option<(&Bytes, Option<Duration>)>,
        write: bool,
    ) -> bool {
        ticket.open = false;
        let key = ticket.key;
        let mut table = self.tickets[ticket.shard].lock();
        let invalidated_at = close(&mut table, key);
        let current = invalidated_at <= ticket.seq
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
            && self.enabled();
        if write && let Some(p) = table.get_mut(key) {
            p.invalidated_at = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        }
        match copy {
            Some((bytes, ttl)) if current => {
                let ttl = ttl.map_or(self.max_ttl, |t| t.min(self.max_ttl));
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                if self
                    .store
                    .set(key, with_token(token, bytes), Some(ttl))
                    .is_ok()
                {
                    Counters::add(&self.counters.fills);
                    return true;
                }
                // too large for the local level: no copy, and none older left behind
                self.store.remove(key);
                false
            }
            // Invalidated on its way: the invalidation removed the copy of that time, and any
            // copy stored since came from a later call; leave it.
            Some(_) => {
                Counters::add(&self.counters.fills_discarded);
                false
            }
            None if current => {
                self.store.remove(key);
                false
            }
            None => false,
        }
    }

    /// Drops the copies of `keys` and marks their open tickets.
    pub(crate) fn drop_keys<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            let mut table = self.tickets[self.shard_of(key)].lock();
            let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(p) = table.get_mut(key) {
                p.invalidated_at = seq;
            }
            self.store.remove(key);
        }
    }

    /// Moves the epoch (so no read on its way leaves a copy), then runs `empty`.
    fn broad(&self, empty: impl FnOnce(&LocalStore)) {
        {
            let _guards: Vec<_> = self.tickets.iter().map(|t| t.lock()).collect();
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        empty(&self.store);
    }

    /// Drops every copy of a key starting with `prefix`.
    pub(crate) fn drop_prefix(&self, prefix: &str) {
        self.broad(|s| {
            s.remove_prefix(prefix);
        });
    }

    /// Drops every copy.
    pub(crate) fn drop_all(&self) {
        self.broad(|s| {
            s.clear();
        });
    }

    /// Stores a copy written by this instance only ([`Locality::LocalOnly`]).
    ///
    /// [`Locality::LocalOnly`]: cache_core::tier::Locality::LocalOnly
    pub(crate) fn put_local(&self, key: &str, bytes: &Bytes, ttl: Option<Duration>) -> bool {
        let ticket = self.ticket(key);
        self.finish_write(ticket, Some((bytes, ttl)))
    }

    /// The copy of `key` and its remaining local lifetime.
    pub(crate) fn get_with_ttl(&self, key: &str) -> Option<(Bytes, Option<Duration>)> {
        let (stored, ttl) = self.store.get_with_ttl(key)?;
        Some((split(&stored)?.1, ttl))
    }

    /// Drops the copy of `key`; whether there was one.
    pub(crate) fn remove(&self, key: &str) -> bool {
        let existed = self.store.get(key).is_some();
        self.drop_keys([key]);
        existed
    }

    /// Entries and bytes held.
    pub(crate) fn size(&self) -> (u64, u64) {
        (self.store.len(), self.store.weight())
    }
}

impl InvalidationSink for Local {
    fn invalidate(&self, what: Invalidated<'_>) {
        match what {
            Invalidated::Keys(keys) => {
                Counters::add_n(&self.counters.invalidated_keys, keys.len() as u64);
                self.drop_keys(keys.iter().map(String::as_str));
            }
            Invalidated::Prefix(prefix) => {
                Counters::add(&self.counters.invalidated_prefixes);
                self.drop_prefix(prefix);
            }
            Invalidated::All => {
                Counters::add(&self.counters.flushes);
                self.drop_all();
            }
        }
    }

    fn connected(&self) {
        self.drop_all();
        self.enabled.store(true, Ordering::Release);
    }

    fn disconnected(&self) {
        if self.enabled.swap(false, Ordering::AcqRel) {
            Counters::add(&self.counters.disconnects);
        }
        self.drop_all();
    }
}

/// `bytes` behind its token.
fn with_token(token: u64, bytes: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(TOKEN_LEN + bytes.len());
    out.put_u64_le(token);
    out.put_slice(bytes);
    out.freeze()
}

/// The token and bytes of a stored copy.
#[inline]
fn split(stored: &Bytes) -> Option<(u64, Bytes)> {
    let token = u64::from_le_bytes(stored.get(..TOKEN_LEN)?.try_into().ok()?);
    Some((token, stored.slice(TOKEN_LEN..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local::new(
            Some(1000),
            None,
            Duration::from_secs(60),
            Arc::new(Counters::default()),
        )
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn a_copy_read_before_an_invalidation_is_not_kept() {
        let l = local();
        let t = l.ticket("k");
        l.drop_keys(["k"]);
        assert!(!l.finish(t, Some((&b("old"), None))));
        assert_eq!(l.get("k", None), None);
    }

    #[test]
    fn a_copy_read_after_an_invalidation_is_kept() {
        let l = local();
        l.drop_keys(["k"]);
        let t = l.ticket("k");
        assert!(l.finish(t, Some((&b("new"), None))));
        assert_eq!(l.get("k", None), Some(b("new")));
    }

    #[test]
    fn an_invalidation_of_another_key_does_not_stop_a_copy() {
        let l = local();
        let t = l.ticket("k");
        l.drop_keys(["other"]);
        assert!(l.finish(t, Some((&b("v"), None))));
    }

    #[test]
    fn overlapping_reads_of_one_key_are_each_checked() {
        let l = local();
        let first = l.ticket("k");
        l.drop_keys(["k"]);
        let second = l.ticket("k");
        assert!(l.finish(second, Some((&b("new"), None))));
        assert!(!l.finish(first, Some((&b("old"), None))));
        assert_eq!(
            l.get("k", None),
            Some(b("new")),
            "the late old copy dropped nothing new"
        );
    }

    #[test]
    fn a_write_stops_reads_that_may_have_seen_the_value_before_it() {
        let l = local();
        let read = l.ticket("k");
        let write = l.ticket("k");
        assert!(l.finish_write(write, Some((&b("new"), None))));
        assert!(!l.finish(read, Some((&b("old"), None))));
        assert_eq!(l.get("k", None), Some(b("new")));
    }

    #[test]
    fn a_ticket_dropped_unfinished_leaves_nothing_behind() {
        let l = local();
        drop(l.ticket("k"));
        let shard = l.shard_of("k");
        assert!(l.tickets[shard].lock().is_empty());
        let t = l.ticket("k");
        assert!(l.finish(t, Some((&b("v"), None))));
        assert!(l.tickets[shard].lock().is_empty());
    }

    #[test]
    fn broad_invalidations_and_a_lost_channel_stop_copies_on_their_way() {
        let l = local();
        let t = l.ticket("ns:k");
        l.drop_prefix("ns:");
        assert!(!l.finish(t, Some((&b("v"), None))));
        let t = l.ticket("k");
        l.drop_all();
        assert!(!l.finish(t, Some((&b("v"), None))));
        let t = l.ticket("k");
        l.disconnected();
        assert!(!l.finish(t, Some((&b("v"), None))));
        assert!(!l.enabled());
        let t = l.ticket("k");
        assert!(
            !l.finish(t, Some((&b("v"), None))),
            "no copies while disconnected"
        );
        l.connected();
        let t = l.ticket("k");
        assert!(l.finish(t, Some((&b("v"), None))));
    }

    #[test]
    fn copies_live_no_longer_than_the_cap_or_the_remote_entry() {
        let l = Local::new(
            None,
            None,
            Duration::from_secs(5),
            Arc::new(Counters::default()),
        );
        let t = l.ticket("a");
        l.finish(t, Some((&b("v"), None)));
        let t = l.ticket("b");
        l.finish(t, Some((&b("v"), Some(Duration::from_secs(60)))));
        let t = l.ticket("c");
        l.finish(t, Some((&b("v"), Some(Duration::from_secs(2)))));
        let ttl = |k| l.store.get_with_ttl(k).unwrap().1.unwrap();
        assert!(ttl("a") <= Duration::from_secs(5));
        assert!(ttl("b") <= Duration::from_secs(5));
        assert!(ttl("c") <= Duration::from_secs(2));
    }

    #[test]
    fn a_decoded_value_is_handed_out_only_for_the_copy_it_came_from() {
        let l = local();
        let t = l.ticket("k");
        l.finish(t, Some((&b("1"), None)));
        let ty = TypeId::of::<u32>();

        let memo = Memo::new(ty);
        assert_eq!(l.get("k", Some(&memo)), Some(b("1")));
        assert!(memo.found().is_none());
        memo.keep("k", Arc::new(1_u32));

        let memo = Memo::new(ty);
        l.get("k", Some(&memo));
        let found = memo.found().expect("kept for this copy");
        assert_eq!(found.downcast_ref::<u32>(), Some(&1));

        let other_type = Memo::new(TypeId::of::<String>());
        l.get("k", Some(&other_type));
        assert!(other_type.found().is_none(), "kept per type");

        let t = l.ticket("k");
        l.finish(t, Some((&b("2"), None)));
        let memo = Memo::new(ty);
        assert_eq!(l.get("k", Some(&memo)), Some(b("2")));
        assert!(memo.found().is_none(), "a new copy is decoded again");
    }

    #[test]
    fn an_entry_too_large_for_the_local_level_leaves_no_copy() {
        let l = Local::new(
            Some(10),
            Some(16),
            Duration::from_secs(5),
            Arc::new(Counters::default()),
        );
        let t = l.ticket("k");
        l.finish(t, Some((&b("small"), None)));
        let t = l.ticket("k");
        assert!(!l.finish(t, Some((&b("far too large for sixteen bytes"), None))));
        assert_eq!(l.get("k", None), None, "the older copy is gone too");
    }
}
