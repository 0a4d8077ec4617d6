//! Writes that never left the client: sent again once the connection is back.

use std::time::Duration;

/// How many times a write that never left the client is issued again (see
/// `unsent_again!`), and the first and longest pause before doing so.
pub(crate) const UNSENT_RETRIES: u32 = 8;
pub(crate) const UNSENT_PAUSE: Duration = Duration::from_millis(1);
pub(crate) const UNSENT_MAX_PAUSE: Duration = Duration::from_millis(100);

/// Awaits `$write` (an `async` block making one write), and again while it fails without
/// having left the client: fred had no connection to write it to (the connection had just
/// broken and its replacement was not under way yet). Such a write cannot have reached the
/// server, so issuing it again cannot reorder it; it queues for the new connection like any
/// command issued while one is being made. A write that was sent is never re-sent. Bounded by
/// the call's deadline (the timeout layer drops the call) and by [`UNSENT_RETRIES`].
macro_rules! unsent_again {
    ($write:expr) => {{
        let mut pause = $crate::unsent::UNSENT_PAUSE;
        let mut retries = 0;
        loop {
            match $write.await {
                Err(e)
                    if retries < $crate::unsent::UNSENT_RETRIES
                        && $crate::error::never_sent(&e) =>
                {
                    retries += 1;
                    // fred asks for the new connection just after answering: let it
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min($crate::unsent::UNSENT_MAX_PAUSE);
                }
                done => break done,
            }
        }
    }};
}
