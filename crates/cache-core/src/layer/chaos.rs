//! Fault injection for tests of the code that uses a cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::retry::splitmix64;
use super::{Answer, Around, Next};
use crate::context::CallContext;
use crate::plugin::Command;
use crate::{Error, ErrorKind, Result};

/// Injects faults into the calls below it, so a service's own tests can see what it does when
/// the cache is slow or failing: added latency, errors of a chosen kind at a rate, and calls
/// that hang until the caller's deadline.
///
/// Seeded and deterministic: the n-th call through a layer (and its clones, which share the
/// counter) meets the same fault for the same seed and settings. Faults are injected before
/// the call reaches the layer below, so a failed or hung call changed nothing. With every
/// rate at 0 and no latency the layer is transparent.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use cache_core::{Cache, ErrorKind};
/// use cache_core::layer::ChaosLayer;
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let chaos = ChaosLayer::new(42).error_rate(1.0).error_kind(ErrorKind::Connection);
/// let cache = Cache::builder(backend).layer(chaos.clone()).build();
/// let err = cache.get::<u32>("k").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Connection);
/// assert_eq!(chaos.injected_errors(), 1);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChaosLayer {
    seed: u64,
    error_rate: f64,
    error_kind: ErrorKind,
    hang_rate: f64,
    latency: Option<(Duration, Duration)>,
    commands: Option<Arc<[Command]>>,
    state: Arc<ChaosState>,
}

#[derive(Debug, Default)]
struct ChaosState {
    calls: AtomicU64,
    errors: AtomicU64,
    hangs: AtomicU64,
    delays: AtomicU64,
}

impl ChaosLayer {
    /// A layer with this seed that injects nothing until told to.
    pub fn new(seed: u64) -> Self {
        ChaosLayer {
            seed,
            error_rate: 0.0,
            error_kind: ErrorKind::Connection,
            hang_rate: 0.0,
            latency: None,
            commands: None,
            state: Arc::default(),
        }
    }

    /// The share of calls (0.0 to 1.0) that fail with [`error_kind`](Self::error_kind).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The kind of the injected errors (default [`ErrorKind::Connection`], a temporary one).
    pub fn error_kind(mut self, kind: ErrorKind) -> Self {
        self.error_kind = kind;
        self
    }

    /// The share of calls (0.0 to 1.0) that hang until the caller's deadline ends them with
    /// `Timeout` (a call without a deadline hangs until it is dropped).
    pub fn hang_rate(mut self, rate: f64) -> Self {
        self.hang_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Adds this latency to every call.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some((latency, latency));
        self
    }

    /// Adds a latency drawn uniformly between `min` and `max` to every call.
    pub fn latency_between(mut self, min: Duration, max: Duration) -> Self {
        self.latency = Some((min.min(max), max.max(min)));
        self
    }

    /// Injects faults into these commands only (default: every command).
    pub fn only(mut self, commands: &[Command]) -> Self {
        self.commands = Some(commands.into());
        self
    }

    /// Calls that met this layer so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    /// Errors injected so far.
    pub fn injected_errors(&self) -> u64 {
        self.state.errors.load(Ordering::Relaxed)
    }

    /// Hangs injected so far.
    pub fn injected_hangs(&self) -> u64 {
        self.state.hangs.load(Ordering::Relaxed)
    }

    /// Calls delayed so far.
    pub fn injected_delays(&self) -> u64 {
        self.state.delays.load(Ordering::Relaxed)
    }
}

/// A uniform draw in [0, 1) from 53 random bits.
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 / (1u64 << 53) as f64
}

impl Around for ChaosLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        if self
            .commands
            .as_ref()
            .is_some_and(|only| !only.contains(&ctx.command()))
        {
            return next.run().await;
        }
        let n = self.state.calls.fetch_add(1, Ordering::Relaxed);
        let r1 = splitmix64(self.seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407));
        let r2 = splitmix64(r1);
        let r3 = splitmix64(r2);
        if let Some((min, max)) = self.latency {
            let span = max.saturating_sub(min);
            let extra = span.mul_f64(unit(r3));
            self.state.delays.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(min + extra).await;
        }
        if unit(r1) < self.hang_rate {
            self.state.hangs.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        if unit(r2) < self.error_rate {
            self.state.errors.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                self.error_kind,
                format!("fault injected by ChaosLayer into call {n}"),
            ));
        }
        next.run().await
    }
}
