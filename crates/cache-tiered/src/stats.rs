//! What a tier has done: hits and misses of the local level, copies made and discarded,
//! invalidations received, and the state of the invalidation channel.

use std::sync::atomic::{AtomicU64, Ordering};

/// The counters behind [`TierStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) local_hits: AtomicU64,
    pub(crate) local_misses: AtomicU64,
    pub(crate) fills: AtomicU64,
    pub(crate) fills_discarded: AtomicU64,
    pub(crate) invalidated_keys: AtomicU64,
    pub(crate) invalidated_prefixes: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) publish_failures: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn add_n(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, entries: u64, bytes: u64, connected: bool) -> TierStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TierStats {
            local_hits: read(&self.local_hits),
            local_misses: read(&self.local_misses),
            fills: read(&self.fills),
            fills_discarded: read(&self.fills_discarded),
            invalidated_keys: read(&self.invalidated_keys),
            invalidated_prefixes: read(&self.invalidated_prefixes),
            flushes: read(&self.flushes),
            disconnects: read(&self.disconnects),
            published: read(&self.published),
            publish_failures: read(&self.publish_failures),
            entries,
            bytes,
            connected,
        }
    }
}

/// A snapshot of a tier's counters ([`TierLayer::stats`](crate::TierLayer::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TierStats {
    /// Keys answered by the local level.
    pub local_hits: u64,
    /// Keys the local level did not hold (asked of the remote level).
    pub local_misses: u64,
    /// Copies stored in the local level.
    pub fills: u64,
    /// Copies not stored because their key was invalidated while they were read.
    pub fills_discarded: u64,
    /// Keys invalidated by the channel.
    pub invalidated_keys: u64,
    /// Namespaces invalidated by the channel.
    pub invalidated_prefixes: u64,
    /// Times the whole local level was dropped by the channel (a flush of the server, lost
    /// messages).
    pub flushes: u64,
    /// Times the channel was lost (the local level was emptied and bypassed until it came
    /// back).
    pub disconnects: u64,
    /// Invalidations sent to other instances.
    pub published: u64,
    /// Invalidations that could not be sent (other instances keep their copies until their
    /// local lifetime ends).
    pub publish_failures: u64,
    /// Entries in the local level now.
    pub entries: u64,
    /// Bytes in the local level now (key plus value per entry).
    pub bytes: u64,
    /// Whether the invalidation channel delivers now (always `true` without a channel).
    pub connected: bool,
}
