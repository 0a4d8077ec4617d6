//! Retries of idempotent commands on temporary errors.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Answer, Around, Next};
use crate::Result;
use crate::context::CallContext;
use crate::plugin::Command;

/// Raw commands a retry may repeat: reads that change nothing, on Redis and Memcached.
const READ_ONLY_RAW: &[&str] = &[
    "GET",
    "MGET",
    "EXISTS",
    "TTL",
    "PTTL",
    "STRLEN",
    "TYPE",
    "PING",
    "ECHO",
    "DBSIZE",
    "INFO",
    "GETRANGE",
    "HGET",
    "HGETALL",
    "HMGET",
    "HEXISTS",
    "HLEN",
    "LLEN",
    "LRANGE",
    "SCARD",
    "SISMEMBER",
    "SMEMBERS",
    "ZCARD",
    "ZSCORE",
    "ZRANGE",
    "MG",
    "GETS",
    "GAT",
    "VERSION",
    "STATS",
    "LEN",
    "WEIGHT",
];

/// Retries a call that failed with a temporary error ([`Error::is_temporary`]: a lost
/// connection, a backend timeout), with exponential back-off and full jitter, within the
/// caller's deadline.
///
/// Only commands that can run twice without changing the result are retried: reads, `set`,
/// `multi_set`, `delete`, `multi_delete`, `expire`, `clear`, and raw commands known to be
/// read-only (`GET`, `PTTL`, `mg`, …). `add`, `increment`, `compare_and_set`, `close` and
/// any raw command it cannot classify run once: repeating them after an answer was lost
/// could apply them twice. A retried `delete` may count 0 where the lost first attempt
/// removed the key.
///
/// A retry never waits past the deadline: when the back-off would end after it, the last
/// error is returned at once. Errors of a retried call carry an `attempts` context entry.
///
/// Put it outside (add it after) a layer whose faults it should absorb.
///
/// [`Error::is_temporary`]: crate::Error::is_temporary
#[derive(Debug, Clone)]
pub struct RetryLayer {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    rng: Arc<AtomicU64>,
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl RetryLayer {
    /// Three attempts, back-off from 10 ms doubling up to 200 ms.
    pub fn new() -> Self {
        RetryLayer {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
            rng: Arc::new(AtomicU64::new(RandomState::new().hash_one(0x5eed_u64))),
        }
    }

    /// At most `attempts` calls in all (at least 1; 1 turns retries off).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The back-off before the second attempt; it doubles for each next one.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest back-off.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Seeds the jitter, for repeatable tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(AtomicU64::new(seed));
        self
    }

    /// The back-off before attempt `attempt + 1`: a random duration up to the exponential
    /// bound ("full jitter").
    fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        let bound = self
            .initial_backoff
            .saturating_mul(1 << shift)
            .min(self.max_backoff);
        let r = splitmix64(self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(if nanos == 0 { 0 } else { r % (nanos + 1) })
    }
}

/// Whether the call may run twice.
pub(crate) fn is_retryable(ctx: &CallContext<'_>) -> bool {
    match ctx.command() {
        Command::Raw => ctx
            .raw_command()
            .is_some_and(|c| READ_ONLY_RAW.iter().any(|r| r.eq_ignore_ascii_case(c))),
        c => c.is_idempotent(),
    }
}

/// One step of SplitMix64: a well-mixed 64-bit value from a counter.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Around for RetryLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        if self.max_attempts <= 1 || !is_retryable(ctx) {
            return next.run().await;
        }
        let mut attempt = 1;
        loop {
            let error = match next.run().await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let last = attempt >= self.max_attempts || !error.is_temporary();
            let delay = self.backoff(attempt);
            let past_deadline = ctx.deadline().is_some_and(|d| d.remaining() <= delay);
            if last || past_deadline {
                return Err(if attempt > 1 {
                    error.with_context("attempts", attempt)
                } else {
                    error
                });
            }
            tracing::debug!(
                op = ctx.command().as_str(),
                attempt,
                ?delay,
                error = %format_args!("{error:#}"),
                "retrying after a temporary error"
            );
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            attempt += 1;
        }
    }
}
