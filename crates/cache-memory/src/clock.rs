//! Time sources for expiry.
//!
//! The store never reads the wall clock: it asks a [`Clock`] for a monotonic
//! [`Duration`] since an arbitrary epoch. [`SystemClock`] is the production
//! clock; [`ManualClock`] lets tests move time by hand, so expiry can be tested
//! without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic time source.
///
/// [`now`](Clock::now) returns the time elapsed since an arbitrary, fixed epoch
/// (for example the moment the clock was created). It must never go backwards.
/// Only differences between readings matter to the store.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time elapsed since this clock's epoch.
    fn now(&self) -> Duration;
}

/// The production clock: a monotonic clock read through `quanta` (the CPU's invariant
/// time-stamp counter where the processor has one, else the operating system's monotonic
/// clock), several times cheaper than [`std::time::Instant::now`] on virtual machines, where
/// every entry with a TTL pays one reading per access.
///
/// Its epoch is the moment it was created.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: u64,
}

/// One calibrated source for the whole process (calibration takes a few milliseconds).
fn source() -> &'static quanta::Clock {
    static SOURCE: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    SOURCE.get_or_init(quanta::Clock::new)
}

impl SystemClock {
    /// Creates a clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            start: source().raw(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        let source = source();
        Duration::from_nanos(source.delta_as_nanos(self.start, source.raw()))
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share the same time: keep one clone in the test and hand another to
/// the store. The time starts at zero and has nanosecond resolution (it
/// saturates at about 584 years).
///
/// ```
/// use cache_memory::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(shared.now(), Duration::from_millis(1500));
/// clock.set(Duration::from_secs(10));
/// assert_eq!(shared.now(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// Creates a clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// Sets the time to `to`.
    ///
    /// Setting a time earlier than the current one moves the clock backwards,
    /// which a real clock never does; tests that do it get what they ask for.
    pub fn set(&self, to: Duration) {
        self.nanos.store(duration_to_nanos(to), Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_and_saturates() {
        let clock = ManualClock::new();
        let other = clock.clone();
        assert_eq!(other.now(), Duration::ZERO);
        clock.advance(Duration::from_millis(3));
        assert_eq!(other.now(), Duration::from_millis(3));
        other.set(Duration::from_secs(1));
        assert_eq!(clock.now(), Duration::from_secs(1));
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let dyn_clock: Arc<dyn Clock> = Arc::new(clock);
        assert!(dyn_clock.now() >= b);
    }
}
