//! Namespace generations: scoped `clear()` on a server that cannot list its keys.
//!
//! Each key group (a built key's text up to its first `:`, which is the namespace for the
//! default key builder) has a counter stored in memcached under `{group}#g`. Keys of the group
//! are stored as `{group}{generation}.{rest}`, so bumping the counter — one `ma` command — makes
//! every key of the old generation unreachable; memcached evicts them over time.
//!
//! Each process keeps the generations it read for `refresh` (from the moment the read
//! started) before reading them again, so a call normally costs no extra round trip. A clear
//! made by this process is seen by it at once; other processes see it at most `refresh` after
//! it returned, and until then they may read the old values
//! and their writes go into the old generation, where nobody reads them. Past `refresh`
//! without a successful read the generation is unknown: the command fails rather than use an
//! older one.
//!
//! A read of a counter that was in flight while this process cleared the group may finish
//! after the clear and carry the pre-clear generation. Every clear therefore advances an
//! *epoch* (one of [`EPOCH_SLOTS`], chosen by the group's hash), and a read installs what it
//! read only if the epoch of its group is the one it saw when it started. The read's own
//! command still uses the generation it read: it ran concurrently with the clear.
//!
//! A missing counter (never created, evicted, or lost with a restarted server) is created
//! atomically with a random 62-bit value, so a lost counter never brings back the keys of an
//! earlier generation: the group empties at once. Losses of a counter this process had read
//! are counted ([`Generations::lost`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Groups kept at most; beyond that, entries older than `refresh` are dropped first.
const MAX_GROUPS: usize = 4096;
/// Epoch counters; groups share one by hash. A shared slot only costs an extra read.
const EPOCH_SLOTS: usize = 64;

/// What a read of a group's counter saw when it started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    slot: usize,
    epoch: u64,
    /// When the read started: what it reads is trusted for `refresh` from then, not from
    /// when its answer arrived, so a generation read just before another process's clear is
    /// given up at most `refresh` after that clear returned.
    at: Instant,
}

#[derive(Debug)]
struct State {
    known: HashMap<String, (u64, Instant)>,
    epochs: [u64; EPOCH_SLOTS],
}

/// The generations this process knows.
#[derive(Debug)]
pub(crate) struct Generations {
    refresh: Duration,
    state: Mutex<State>,
    hasher: std::hash::RandomState,
    lost: AtomicU64,
}

impl Generations {
    pub(crate) fn new(refresh: Duration) -> Self {
        Generations {
            refresh,
            state: Mutex::new(State {
                known: HashMap::new(),
                epochs: [0; EPOCH_SLOTS],
            }),
            hasher: std::hash::RandomState::new(),
            lost: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, group: &str) -> usize {
        (self.hasher.hash_one(group) % EPOCH_SLOTS as u64) as usize
    }

    /// The generation of `group` if it was read less than `refresh` ago.
    pub(crate) fn fresh(&self, group: &str) -> Option<u64> {
        if self.refresh.is_zero() {
            return None;
        }
        let state = self.lock();
        state
            .known
            .get(group)
            .filter(|(_, at)| at.elapsed() < self.refresh)
            .map(|(g, _)| *g)
    }

    /// Whether this process has read a generation of `group` (of any age).
    pub(crate) fn knows(&self, group: &str) -> bool {
        self.lock().known.contains_key(group)
    }

    /// Taken before reading or bumping the counter of `group`.
    pub(crate) fn ticket(&self, group: &str) -> Ticket {
        let slot = self.slot(group);
        let at = Instant::now();
        Ticket {
            slot,
            epoch: self.lock().epochs[slot],
            at,
        }
    }

    /// Records the generation of `group` read under `ticket`, unless this process cleared
    /// the group (or flushed everything) since the ticket was taken. Answers whether it was
    /// recorded.
    pub(crate) fn store(&self, group: &str, ticket: Ticket, generation: u64) -> bool {
        let mut state = self.lock();
        if state.epochs[ticket.slot] != ticket.epoch {
            return false;
        }
        Self::insert(&mut state, self.refresh, group, generation, ticket.at);
        true
    }

    /// Records the end of a clear of `group` taken under `ticket`: the generation it made,
    /// or `None` when the clear failed (its outcome is unknown). Reads in flight can no longer
    /// install what they read, and neither can an earlier clear of the group that is still
    /// in flight.
    pub(crate) fn cleared(&self, group: &str, ticket: Ticket, generation: Option<u64>) {
        let mut state = self.lock();
        match generation {
            Some(g) if state.epochs[ticket.slot] == ticket.epoch => {
                Self::insert(&mut state, self.refresh, group, g, ticket.at)
            }
            _ => {
                state.known.remove(group);
            }
        }
        state.epochs[ticket.slot] = state.epochs[ticket.slot].wrapping_add(1);
    }

    fn insert(state: &mut State, refresh: Duration, group: &str, generation: u64, at: Instant) {
        let known = &mut state.known;
        if known.len() >= MAX_GROUPS && !known.contains_key(group) {
            known.retain(|_, (_, at)| at.elapsed() < refresh);
            if known.len() >= MAX_GROUPS {
                known.clear();
            }
        }
        known.insert(group.to_owned(), (generation, at));
    }

    /// Forgets every generation (after `flush_all`); reads in flight install nothing.
    pub(crate) fn forget_all(&self) {
        let mut state = self.lock();
        state.known.clear();
        for e in &mut state.epochs {
            *e = e.wrapping_add(1);
        }
    }

    /// Counts a counter this process had read that was found missing and made anew.
    pub(crate) fn record_loss(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters this process had read that were later found missing and made anew.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(g: &Generations, group: &str, generation: u64) -> bool {
        let t = g.ticket(group);
        g.store(group, t, generation)
    }

    #[test]
    fn fresh_then_stale() {
        let g = Generations::new(Duration::from_millis(30));
        assert_eq!(g.fresh("a:"), None);
        assert!(!g.knows("a:"));
        assert!(read(&g, "a:", 7));
        assert_eq!(g.fresh("a:"), Some(7));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            g.fresh("a:"),
            None,
            "past refresh the generation is unknown"
        );
        assert!(g.knows("a:"));
        g.forget_all();
        assert!(!g.knows("a:"));
    }

    /// The bound on what other processes see after a clear is `refresh` from the clear's
    /// return: a generation read that started before the clear and answered late must not be
    /// trusted for `refresh` from its answer.
    #[test]
    fn a_read_is_trusted_for_refresh_from_when_it_started() {
        let g = Generations::new(Duration::from_millis(50));
        let slow = g.ticket("a:");
        std::thread::sleep(Duration::from_millis(60));
        assert!(g.store("a:", slow, 3));
        assert_eq!(
            g.fresh("a:"),
            None,
            "a read slower than refresh is stale on arrival"
        );
        assert!(g.knows("a:"));
    }

    #[test]
    fn zero_refresh_never_trusts_the_copy() {
        let g = Generations::new(Duration::ZERO);
        assert!(read(&g, "a:", 1));
        assert_eq!(g.fresh("a:"), None);
    }

    #[test]
    fn a_read_that_started_before_a_clear_installs_nothing() {
        let g = Generations::new(Duration::from_secs(60));
        let before = g.ticket("a:");
        let clear = g.ticket("a:");
        g.cleared("a:", clear, Some(8));
        assert!(!g.store("a:", before, 7), "the late read is refused");
        assert_eq!(g.fresh("a:"), Some(8));
        // a read that starts after the clear installs
        assert!(read(&g, "a:", 8));
        // a clear that fails leaves the group unknown
        let failed = g.ticket("a:");
        g.cleared("a:", failed, None);
        assert_eq!(g.fresh("a:"), None);
        // of two clears in flight, the one that finishes last but started first installs
        // nothing: the group is read again
        let first = g.ticket("a:");
        let second = g.ticket("a:");
        g.cleared("a:", second, Some(11));
        g.cleared("a:", first, Some(10));
        assert_eq!(g.fresh("a:"), None);
        // flush_all: reads in flight install nothing either
        let before = g.ticket("b:");
        g.forget_all();
        assert!(!g.store("b:", before, 1));
    }

    #[test]
    fn bounded() {
        let g = Generations::new(Duration::from_secs(60));
        for i in 0..(MAX_GROUPS + 10) {
            read(&g, &format!("g{i}:"), 1);
        }
        assert!(g.lock().known.len() <= MAX_GROUPS);
    }
}
