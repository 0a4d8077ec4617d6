//! `increment` and reading counters back.

use std::time::Duration;

use super::kind;
use crate::testkit::Harness;
use crate::{ErrorKind, RawBytes, Utf8};

/// `increment` of a missing key creates it holding `delta`.
pub async fn increment_missing_key_starts_at_delta(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        assert_eq!(kind(cache.increment("c", 1).await), ErrorKind::Unsupported);
        return;
    }
    assert_eq!(cache.increment("c", 5).await.unwrap(), 5);
    assert_eq!(cache.get_counter("c").await.unwrap(), Some(5));
    assert_eq!(cache.increment("neg", -3).await.unwrap(), -3);
    assert_eq!(cache.increment("zero", 0).await.unwrap(), 0);
    assert!(cache.exists("zero").await.unwrap());
}

/// `increment` adds to an existing counter, and the stored value is decimal text.
pub async fn increment_adds_delta_to_existing_counter(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    cache.increment("c", 10).await.unwrap();
    assert_eq!(cache.increment("c", 5).await.unwrap(), 15);
    assert_eq!(cache.increment("c", -20).await.unwrap(), -5);
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("c").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"-5"[..]));
    // a counter written as text by someone else
    cache.with_serializer(Utf8).set("t", &41).await.unwrap();
    assert_eq!(cache.increment("t", 1).await.unwrap(), 42);
}

/// Negative results are exact, never floored at zero.
pub async fn increment_negative_results_are_exact(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    assert_eq!(cache.increment("c", 2).await.unwrap(), 2);
    assert_eq!(cache.increment("c", -3).await.unwrap(), -1);
    assert_eq!(cache.increment("c", -1_000_000).await.unwrap(), -1_000_001);
    assert_eq!(cache.get_counter("c").await.unwrap(), Some(-1_000_001));
    assert_eq!(cache.increment("c", 1_000_001).await.unwrap(), 0);
}

/// Results are exact over the whole `i64` range, beyond 2^53 too (where a double, as a
/// script language may hold numbers, is no longer exact).
pub async fn increment_results_are_exact_across_the_i64_range(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    let big = (1i64 << 53) + 1;
    assert_eq!(cache.increment("big", big).await.unwrap(), big);
    assert_eq!(cache.increment("big", 2).await.unwrap(), big + 2);
    assert_eq!(
        cache.increment("max", i64::MAX - 1).await.unwrap(),
        i64::MAX - 1
    );
    assert_eq!(cache.increment("max", 1).await.unwrap(), i64::MAX);
    assert_eq!(cache.get_counter("max").await.unwrap(), Some(i64::MAX));
    assert_eq!(cache.increment("min", -big).await.unwrap(), -big);
    assert_eq!(cache.increment("min", -2).await.unwrap(), -big - 2);
}

/// An increment past `i64` bounds is `InvalidArgument` and leaves the value as it was.
pub async fn increment_overflow_is_invalid_argument_and_value_untouched(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    cache.increment("max", i64::MAX).await.unwrap();
    assert_eq!(
        kind(cache.increment("max", 1).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(cache.get_counter("max").await.unwrap(), Some(i64::MAX));
    cache.increment("min", i64::MIN).await.unwrap();
    assert_eq!(
        kind(cache.increment("min", -1).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(cache.get_counter("min").await.unwrap(), Some(i64::MIN));
}

/// Incrementing a value that is not an integer is `InvalidArgument`; the value is untouched.
pub async fn increment_non_integer_is_invalid_argument_and_value_untouched(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    cache.set("s", &"hello").await.unwrap();
    assert_eq!(
        kind(cache.increment("s", 1).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        cache.get::<String>("s").await.unwrap().as_deref(),
        Some("hello")
    );
    cache.set("f", &1.5).await.unwrap();
    assert_eq!(
        kind(cache.increment("f", 1).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(cache.get::<f64>("f").await.unwrap(), Some(1.5));
}

/// `increment` keeps the key's TTL.
pub async fn increment_keeps_ttl(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    if !cap.increment {
        return;
    }
    cache.increment("c", 1).await.unwrap();
    if cap.expire && cap.ttl {
        assert!(cache.expire("c", Duration::from_secs(100)).await.unwrap());
        cache.increment("c", 1).await.unwrap();
        let left = cache.ttl("c").await.unwrap().remaining().expect("ttl kept");
        assert!(left > Duration::from_secs(90), "{left:?}");
    }
    let ttl = h.short_ttl();
    cache.with_ttl(ttl).set("t", &7).await.unwrap();
    assert_eq!(cache.increment("t", 1).await.unwrap(), 8);
    h.sleep_past(ttl).await;
    assert_eq!(
        cache.get_counter("t").await.unwrap(),
        None,
        "the TTL still applies"
    );
}

/// Concurrent increments of one key are atomic: none is lost.
pub async fn increment_is_atomic_under_contention(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    cache.increment("c", 2).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(cache.get_counter("c").await.unwrap(), Some(16 * 25 * 2));
}

/// A counter reads back as the right number through `get_counter`, `Json` and `Utf8`, and
/// `get_counter` refuses a value that is not a counter.
pub async fn counter_reads_back_right_or_errors_with_every_serializer(h: Harness) {
    let cache = h.cache();
    if !h.capability().increment {
        return;
    }
    for (key, n) in [("one", 6), ("two", 42), ("neg", -17)] {
        cache.increment(key, n).await.unwrap();
        assert_eq!(cache.get_counter(key).await.unwrap(), Some(n));
        assert_eq!(cache.get::<i64>(key).await.unwrap(), Some(n));
        assert_eq!(
            cache.with_serializer(Utf8).get::<i64>(key).await.unwrap(),
            Some(n)
        );
    }
    cache.set("text", &"six").await.unwrap();
    assert_eq!(
        kind(cache.get_counter("text").await),
        ErrorKind::Serialization
    );
    assert_eq!(cache.get_counter("none").await.unwrap(), None);
}
