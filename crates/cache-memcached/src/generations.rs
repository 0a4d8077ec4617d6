//! Namespace generations: scoped `clear()` on a server that cannot list its keys.
//!
//! Each key group (a built key's text up to its first `:`, which is the namespace for the
//! default key builder) has a counter stored in memcached under `{group}#g`. Keys of the group
//! are stored as `{group}{generation}.{rest}`, so bumping the counter — one `ma` command — makes
//! every key of the old generation unreachable; memcached evicts them over time.
//!
//! Each process keeps the generations it read for `refresh` before reading them again, so a
//! call normally costs no extra round trip. A clear made by this process is seen by it at
//! once; other processes see it within `refresh`. A missing counter (never created, evicted,
//! or flushed) is created atomically with a random 62-bit value, so a lost counter never brings
//! back the keys of an earlier generation.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Groups kept at most; beyond that, entries older than `refresh` are dropped first.
const MAX_GROUPS: usize = 4096;

/// The generations this process knows.
#[derive(Debug)]
pub(crate) struct Generations {
    refresh: Duration,
    known: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Generations {
    pub(crate) fn new(refresh: Duration) -> Self {
        Generations {
            refresh,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Instant)>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation of `group` if it was read less than `refresh` ago.
    pub(crate) fn fresh(&self, group: &str) -> Option<u64> {
        if self.refresh.is_zero() {
            return None;
        }
        let known = self.lock();
        known
            .get(group)
            .filter(|(_, at)| at.elapsed() < self.refresh)
            .map(|(g, _)| *g)
    }

    /// The last generation read for `group`, however old.
    pub(crate) fn last(&self, group: &str) -> Option<u64> {
        self.lock().get(group).map(|(g, _)| *g)
    }

    /// Records the generation of `group` as read now.
    pub(crate) fn store(&self, group: &str, generation: u64) {
        let mut known = self.lock();
        if known.len() >= MAX_GROUPS && !known.contains_key(group) {
            let refresh = self.refresh;
            known.retain(|_, (_, at)| at.elapsed() < refresh);
            if known.len() >= MAX_GROUPS {
                known.clear();
            }
        }
        known.insert(group.to_owned(), (generation, Instant::now()));
    }

    /// Forgets every generation (after `flush_all`).
    pub(crate) fn forget_all(&self) {
        self.lock().clear();
    }
}

/// A random starting generation below 2^62, so increments never wrap.
pub(crate) fn initial_generation() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    (h.finish() >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_stale() {
        let g = Generations::new(Duration::from_millis(30));
        assert_eq!(g.fresh("a:"), None);
        g.store("a:", 7);
        assert_eq!(g.fresh("a:"), Some(7));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(g.fresh("a:"), None);
        assert_eq!(g.last("a:"), Some(7));
        g.forget_all();
        assert_eq!(g.last("a:"), None);
    }

    #[test]
    fn zero_refresh_never_trusts_the_copy() {
        let g = Generations::new(Duration::ZERO);
        g.store("a:", 1);
        assert_eq!(g.fresh("a:"), None);
    }

    #[test]
    fn bounded() {
        let g = Generations::new(Duration::from_secs(60));
        for i in 0..(MAX_GROUPS + 10) {
            g.store(&format!("g{i}:"), 1);
        }
        assert!(g.lock().len() <= MAX_GROUPS);
    }

    #[test]
    fn initial_generations_differ_and_leave_headroom() {
        let a = initial_generation();
        let b = initial_generation();
        assert_ne!(a, b);
        assert!(a < 1 << 62 && b < 1 << 62);
    }
}
