//! `raw` and `close`.

use std::time::Duration;

use super::kind;
use crate::ErrorKind;
use crate::testkit::Harness;

/// `raw` works where the capability says so and is `Unsupported` elsewhere.
pub async fn raw_is_supported_or_refused(h: Harness) {
    let cache = h.cache();
    if !h.capability().raw {
        assert_eq!(
            kind(cache.raw("PING", crate::NO_ARGS).await),
            ErrorKind::Unsupported
        );
    }
}

/// `close` is idempotent and every later call fails with `Closed`, on every clone.
pub async fn close_is_idempotent_and_later_calls_are_closed(h: Harness) {
    // Each test builds its own backend, so closing it disturbs no other case.
    let cache = h.cache();
    let clone = cache.clone();
    cache.set("k", &1).await.unwrap();
    let closer = tokio::time::timeout(Duration::from_secs(10), cache.close());
    closer.await.expect("close must not hang").unwrap();
    cache.close().await.unwrap();
    assert!(clone.is_closed());
    assert_eq!(kind(clone.get::<i32>("k").await), ErrorKind::Closed);
    assert_eq!(kind(clone.set("k", &2).await), ErrorKind::Closed);
    assert_eq!(kind(clone.clear().await), ErrorKind::Closed);
}
