//! The deadline of each call.

use std::time::Duration;

use super::{Answer, Around, Next};
use crate::context::{CallContext, Deadline};
use crate::{Error, ErrorKind, Result};

/// Enforces the caller's [`Deadline`]: the call answers
/// [`ErrorKind::Timeout`] when the stack below has not answered by then.
///
/// `build()` installs one on every cache, under the plugin hooks; it is the only timer of a
/// call. It reads the deadline from the [`CallContext`], which the cache sets from its
/// timeout (per call or per cache); a call without one passes through untouched. The
/// deadline is registered only when the stack below does not answer at once, so a call served
/// from memory costs nothing. A call that waits does not arm a Tokio timer of its own: it takes
/// a slot in a table of deadlines kept per runtime, which one task watches, waking at the
/// earliest deadline in it, and gives the slot back when it answers.
///
/// When the deadline passes, the call below is dropped: a write may or may not have reached
/// the backend, and the backend stays usable for the next call.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TimeoutLayer;

impl TimeoutLayer {
    /// The layer.
    pub fn new() -> Self {
        TimeoutLayer
    }
}

/// The error of a call whose deadline passed.
pub(crate) fn timeout_error(budget: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the command did not complete within {budget:?}"),
    )
}

impl Around for TimeoutLayer {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        match ctx.deadline() {
            None => next.run().await,
            Some(deadline) => within(deadline, next.run()).await?,
        }
    }
}

/// Runs `fut` until `deadline`; a [`ErrorKind::Timeout`] error after it.
pub(crate) async fn within<F: Future>(deadline: Deadline, fut: F) -> Result<F::Output> {
    crate::timer::run_until(deadline.instant(), fut)
        .await
        .ok_or_else(|| timeout_error(deadline.budget()))
}
