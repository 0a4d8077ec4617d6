//! [`RecordingSink`]: an [`InvalidationSink`] that records what it is told, for the tests of
//! an [`Invalidator`](crate::tier::Invalidator).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::tier::{Invalidated, InvalidationSink};

/// What a [`RecordingSink`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkEvent {
    /// [`Invalidated::Keys`].
    Keys(Vec<String>),
    /// [`Invalidated::Prefix`].
    Prefix(String),
    /// [`Invalidated::All`].
    All,
    /// [`InvalidationSink::connected`].
    Connected,
    /// [`InvalidationSink::disconnected`].
    Disconnected,
}

/// A sink that records every event with the time it arrived.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<(Instant, SinkEvent)>>,
    /// When set, the next invalidation waits for the flag (at most the duration): a slow sink.
    hold_next: Mutex<Option<(Arc<AtomicBool>, Duration)>>,
}

impl RecordingSink {
    /// An empty record.
    pub fn new() -> Self {
        RecordingSink::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, SinkEvent)>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, event: SinkEvent) {
        self.lock().push((Instant::now(), event));
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<SinkEvent> {
        self.lock().iter().map(|(_, e)| e.clone()).collect()
    }

    /// The invalidations so far (not the connection events).
    pub fn invalidations(&self) -> Vec<SinkEvent> {
        self.events()
            .into_iter()
            .filter(|e| !matches!(e, SinkEvent::Connected | SinkEvent::Disconnected))
            .collect()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many invalidations named `key`.
    pub fn count_key(&self, key: &str) -> usize {
        self.lock()
            .iter()
            .filter(|(_, e)| matches!(e, SinkEvent::Keys(keys) if keys.iter().any(|k| k == key)))
            .count()
    }

    /// When `event` was first recorded at or after `since`.
    pub fn first_since(&self, event: &SinkEvent, since: Instant) -> Option<Instant> {
        self.lock()
            .iter()
            .find(|(at, e)| *at >= since && e == event)
            .map(|(at, _)| *at)
    }

    /// Waits until `holds` is true of the events, checking every 5 ms, at most `within`;
    /// answers whether it became true.
    pub async fn wait_until(&self, within: Duration, holds: impl Fn(&[SinkEvent]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if holds(&self.events()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes the next invalidation wait until `done` is raised (at most `at_most`) before it
    /// is recorded: a sink too slow for its deliveries.
    pub fn hold_next_invalidation(&self, done: Arc<AtomicBool>, at_most: Duration) {
        *self.hold_next.lock().unwrap_or_else(|p| p.into_inner()) = Some((done, at_most));
    }
}

impl InvalidationSink for RecordingSink {
    fn invalidate(&self, what: Invalidated<'_>) {
        let hold = self
            .hold_next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((done, at_most)) = hold {
            let started = Instant::now();
            while !done.load(Ordering::Acquire) && started.elapsed() < at_most {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.push(match what {
            Invalidated::Keys(keys) => SinkEvent::Keys(keys.to_vec()),
            Invalidated::Prefix(prefix) => SinkEvent::Prefix(prefix.to_owned()),
            Invalidated::All => SinkEvent::All,
        });
    }

    fn connected(&self) {
        self.push(SinkEvent::Connected);
    }

    fn disconnected(&self) {
        self.push(SinkEvent::Disconnected);
    }
}
