//! The conformance cases: one function per rule of the behaviour contract.
//!
//! Each case panics (fails) when the backend breaks its rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Harness;
use crate::{
    Cache, Command, CommandInfo, ErrorKind, KeyBuilder, KeyTtl, Outcome, Plugin, RawBytes, Result,
    Ttl, Utf8,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user-{id}"),
        tags: vec!["a".into(), "b".into()],
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// Whether `s` is decimal integer text as counters store it: `-?[0-9]+` without leading zeros
/// (except `0`) and without `-0`.
#[doc(hidden)]
pub fn is_canonical_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}

/// `get` of a key never written answers `None`.
pub async fn get_missing_returns_none(h: Harness) {
    let cache = h.cache();
    assert_eq!(cache.get::<User>("missing").await.unwrap(), None);
}

/// A value written with `set` reads back equal.
pub async fn set_then_get_returns_value(h: Harness) {
    let cache = h.cache();
    cache.set("u1", &user(1)).await.unwrap();
    assert_eq!(cache.get::<User>("u1").await.unwrap(), Some(user(1)));
    cache.set("n", &0u8).await.unwrap();
    cache.set("f", &false).await.unwrap();
    cache.set("e", "").await.unwrap();
    assert_eq!(cache.get::<u8>("n").await.unwrap(), Some(0));
    assert_eq!(cache.get::<bool>("f").await.unwrap(), Some(false));
    assert_eq!(cache.get::<String>("e").await.unwrap(), Some(String::new()));
}

/// A stored `null` is a value, not a miss: `get::<Option<T>>` gives `Some(None)`.
pub async fn get_stored_null_is_a_value_not_a_miss(h: Harness) {
    let cache = h.cache();
    cache.set("nothing", &None::<u32>).await.unwrap();
    assert_eq!(
        cache.get::<Option<u32>>("nothing").await.unwrap(),
        Some(None)
    );
    assert!(cache.exists("nothing").await.unwrap());
    assert_eq!(cache.delete("nothing").await.unwrap(), 1);
}

/// `set` replaces both the value and the TTL of an existing key.
pub async fn set_overwrites_value_and_ttl(h: Harness) {
    let cache = h.cache();
    cache
        .with_ttl(Duration::from_secs(100))
        .set("k", &1)
        .await
        .unwrap();
    cache.set("k", &2).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));
    if h.capability().ttl {
        assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::NoExpiry);
        cache
            .with_ttl(Duration::from_secs(50))
            .set("k", &3)
            .await
            .unwrap();
        let left = cache.ttl("k").await.unwrap().remaining().expect("has ttl");
        assert!(left <= Duration::from_secs(50) && left > Duration::from_secs(40));
    }
}

/// `add` stores a value when the key is absent.
pub async fn add_stores_when_absent(h: Harness) {
    let cache = h.cache();
    if !h.capability().add {
        assert_eq!(kind(cache.add("k", &1).await), ErrorKind::Unsupported);
        return;
    }
    cache.add("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
}

/// `add` of a present key fails with `AlreadyExists` and leaves the value as it was.
pub async fn add_existing_key_is_already_exists_and_keeps_value(h: Harness) {
    let cache = h.cache();
    if !h.capability().add {
        return;
    }
    cache.set("k", &"first").await.unwrap();
    let err = cache.add("k", &"second").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(err.context_value("key"), Some("k"));
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("first")
    );
}

/// Of many concurrent `add`s of one key, exactly one succeeds.
pub async fn add_is_atomic_under_contention(h: Harness) {
    let cache = h.cache();
    if !h.capability().add {
        return;
    }
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.add("lock", &i).await })
        })
        .collect();
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(()) => won.push(i),
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists),
        }
    }
    assert_eq!(won.len(), 1, "exactly one add must win");
    assert_eq!(
        cache.get::<usize>("lock").await.unwrap(),
        Some(won[0]),
        "the stored value is the winner's"
    );
}

/// `multi_get` answers in the caller's order, one entry per key, `None` for misses.
pub async fn multi_get_keeps_order_length_and_misses(h: Harness) {
    let cache = h.cache();
    cache.set("a", &1).await.unwrap();
    cache.set("c", &3).await.unwrap();
    let got: Vec<Option<i32>> = cache.multi_get(["c", "b", "a", "d"]).await.unwrap();
    assert_eq!(got, vec![Some(3), None, Some(1), None]);
    let none: Vec<Option<i32>> = cache.multi_get(["x", "y"]).await.unwrap();
    assert_eq!(none, vec![None, None]);
}

/// `multi_get` of no keys answers an empty list.
pub async fn multi_get_empty_input_is_empty(h: Harness) {
    let cache = h.cache();
    let got: Vec<Option<i32>> = cache.multi_get(Vec::<String>::new()).await.unwrap();
    assert!(got.is_empty());
}

/// `multi_get` accepts repeated keys and answers each occurrence.
pub async fn multi_get_allows_duplicate_keys(h: Harness) {
    let cache = h.cache();
    cache.set("a", &1).await.unwrap();
    let got: Vec<Option<i32>> = cache.multi_get(["a", "b", "a", "b"]).await.unwrap();
    assert_eq!(got, vec![Some(1), None, Some(1), None]);
}

/// `multi_set` stores every pair.
pub async fn multi_set_stores_every_pair(h: Harness) {
    let cache = h.cache();
    let pairs: Vec<(String, User)> = (0..20).map(|i| (format!("u{i}"), user(i))).collect();
    cache
        .multi_set(pairs.iter().map(|(k, v)| (k, v)))
        .await
        .unwrap();
    for (k, v) in &pairs {
        assert_eq!(cache.get::<User>(k).await.unwrap().as_ref(), Some(v));
    }
    cache.multi_set([("dup", 1), ("dup", 2)]).await.unwrap();
    assert_eq!(
        cache.get::<i32>("dup").await.unwrap(),
        Some(2),
        "last duplicate wins"
    );
}

/// `multi_set` of no pairs succeeds and writes nothing.
pub async fn multi_set_empty_input_is_ok(h: Harness) {
    let cache = h.cache();
    cache.multi_set(Vec::<(String, i32)>::new()).await.unwrap();
}

/// `multi_set` applies its TTL to every key.
pub async fn multi_set_applies_ttl_to_every_key(h: Harness) {
    let cache = h.cache();
    let ttl = h.short_ttl();
    cache
        .with_ttl(ttl)
        .multi_set([("a", 1), ("b", 2), ("c", 3)])
        .await
        .unwrap();
    if h.capability().ttl {
        for k in ["a", "b", "c"] {
            let left = cache.ttl(k).await.unwrap().remaining().expect("ttl set");
            assert!(left <= ttl, "{k}: {left:?} > {ttl:?}");
        }
    }
    h.sleep_past(ttl).await;
    let got: Vec<Option<i32>> = cache.multi_get(["a", "b", "c"]).await.unwrap();
    assert_eq!(got, vec![None, None, None]);
}

/// `multi_set` with one bad pair (empty key) fails with `InvalidArgument` and writes nothing.
pub async fn multi_set_refuses_bad_input_without_writing(h: Harness) {
    let cache = h.cache();
    let err = cache.multi_set([("ok", 1), ("", 2)]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(cache.get::<i32>("ok").await.unwrap(), None);
    let err = cache
        .with_ttl(Duration::ZERO)
        .multi_set([("ok", 1)])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(cache.get::<i32>("ok").await.unwrap(), None);
}

/// `delete` answers 1 for a present key and 0 for a missing one.
pub async fn delete_returns_count(h: Harness) {
    let cache = h.cache();
    cache.set("k", &1).await.unwrap();
    assert_eq!(cache.delete("k").await.unwrap(), 1);
    assert_eq!(cache.delete("k").await.unwrap(), 0);
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
}

/// `multi_delete` answers how many of the keys existed (a repeated key counts once).
pub async fn multi_delete_returns_count(h: Harness) {
    let cache = h.cache();
    cache
        .multi_set([("a", 1), ("b", 2), ("c", 3)])
        .await
        .unwrap();
    assert_eq!(cache.multi_delete(["a", "b", "x", "a"]).await.unwrap(), 2);
    assert_eq!(cache.multi_delete(Vec::<&str>::new()).await.unwrap(), 0);
    let got: Vec<Option<i32>> = cache.multi_get(["a", "b", "c"]).await.unwrap();
    assert_eq!(got, vec![None, None, Some(3)]);
}

/// `exists` is true for a present key and false for a missing or deleted one.
pub async fn exists_reports_presence(h: Harness) {
    let cache = h.cache();
    assert!(!cache.exists("k").await.unwrap());
    cache.set("k", &1).await.unwrap();
    assert!(cache.exists("k").await.unwrap());
    cache.delete("k").await.unwrap();
    assert!(!cache.exists("k").await.unwrap());
}

/// `exists` writes nothing: value, TTL and a value-based compare-and-set are unaffected.
pub async fn exists_does_not_write(h: Harness) {
    let cache = h.cache();
    cache
        .with_ttl(Duration::from_secs(100))
        .set("k", &"v")
        .await
        .unwrap();
    let before = if h.capability().ttl {
        cache.ttl("k").await.unwrap().remaining()
    } else {
        None
    };
    for _ in 0..3 {
        assert!(cache.exists("k").await.unwrap());
    }
    assert!(!cache.exists("absent").await.unwrap());
    assert!(
        !cache.exists("absent").await.unwrap(),
        "exists must not create"
    );
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
    if let Some(before) = before {
        let after = cache.ttl("k").await.unwrap().remaining().expect("ttl kept");
        assert!(after <= before);
    }
    if h.capability().compare_and_set {
        assert!(cache.compare_and_set("k", Some("v"), "w").await.unwrap());
    }
}

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

/// `expire` on an existing key sets its TTL and answers `true`.
pub async fn expire_sets_ttl_on_existing_key(h: Harness) {
    let cache = h.cache();
    if !h.capability().expire {
        assert_eq!(
            kind(cache.expire("k", Duration::from_secs(1)).await),
            ErrorKind::Unsupported
        );
        return;
    }
    cache.set("k", &1).await.unwrap();
    let ttl = h.short_ttl();
    assert!(cache.expire("k", ttl).await.unwrap());
    assert!(cache.exists("k").await.unwrap());
    h.sleep_past(ttl).await;
    assert!(!cache.exists("k").await.unwrap());
}

/// `expire` on a missing key answers `false` and creates nothing.
pub async fn expire_missing_key_returns_false(h: Harness) {
    let cache = h.cache();
    if !h.capability().expire {
        return;
    }
    assert!(!cache.expire("k", Duration::from_secs(10)).await.unwrap());
    assert!(!cache.expire("k", Ttl::Never).await.unwrap());
    assert!(!cache.exists("k").await.unwrap());
}

/// `expire(Ttl::Never)` removes the expiry and answers `true` for an existing key, with or
/// without a TTL before.
pub async fn expire_never_removes_expiry_and_answers_true(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    if !cap.expire {
        return;
    }
    let ttl = h.short_ttl();
    cache.with_ttl(ttl).set("k", &1).await.unwrap();
    assert!(cache.expire("k", Ttl::Never).await.unwrap());
    assert!(
        cache.expire("k", Ttl::Never).await.unwrap(),
        "true also for a key without expiry"
    );
    if cap.ttl {
        assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::NoExpiry);
    }
    h.sleep_past(ttl).await;
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
}

/// `ttl` tells a missing key, a key without expiry and a key with time left apart.
pub async fn ttl_distinguishes_missing_no_expiry_and_remaining(h: Harness) {
    let cache = h.cache();
    if !h.capability().ttl {
        assert_eq!(kind(cache.ttl("k").await), ErrorKind::Unsupported);
        return;
    }
    assert_eq!(cache.ttl("missing").await.unwrap(), KeyTtl::Missing);
    cache.set("forever", &1).await.unwrap();
    assert_eq!(cache.ttl("forever").await.unwrap(), KeyTtl::NoExpiry);
    cache
        .with_ttl(Duration::from_secs(30))
        .set("soon", &1)
        .await
        .unwrap();
    match cache.ttl("soon").await.unwrap() {
        KeyTtl::Remaining(d) => {
            assert!(
                d <= Duration::from_secs(30) && d > Duration::from_secs(25),
                "{d:?}"
            )
        }
        other => panic!("expected Remaining, got {other:?}"),
    }
}

/// An expired entry is never returned by any read.
pub async fn expired_entry_is_never_returned(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    let ttl = h.short_ttl();
    cache.with_ttl(ttl).set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    h.sleep_past(ttl).await;
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
    let many: Vec<Option<i32>> = cache.multi_get(["k"]).await.unwrap();
    assert_eq!(many, vec![None]);
    assert!(!cache.exists("k").await.unwrap());
    if cap.ttl {
        assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Missing);
    }
    if cap.expire {
        assert!(!cache.expire("k", Ttl::Never).await.unwrap());
    }
    if cap.add {
        cache.add("k", &2).await.unwrap();
        assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));
    }
}

/// TTLs keep the backend's precision: milliseconds where the capability says so, else whole
/// seconds rounded up (never early).
pub async fn ttl_keeps_backend_precision(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    if cap.ttl_millis {
        cache
            .with_ttl(Duration::from_millis(1_500))
            .set("k", &1)
            .await
            .unwrap();
        if cap.ttl {
            let left = cache.ttl("k").await.unwrap().remaining().expect("ttl");
            assert!(
                left > Duration::from_millis(1_000) && left <= Duration::from_millis(1_500),
                "millisecond ttl reads back as {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(cache.exists("k").await.unwrap(), "must not expire early");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!cache.exists("k").await.unwrap(), "must expire after 1.5 s");
    } else {
        cache
            .with_ttl(Duration::from_millis(1_200))
            .set("k", &1)
            .await
            .unwrap();
        if cap.ttl {
            let left = cache.ttl("k").await.unwrap().remaining().expect("ttl");
            assert!(
                left >= Duration::from_millis(1_200),
                "rounded up, got {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(cache.exists("k").await.unwrap(), "must not expire early");
    }
}

/// A zero TTL is `InvalidArgument` on every write and on `expire`, and writes nothing.
pub async fn zero_ttl_is_invalid_argument_and_writes_nothing(h: Harness) {
    let cache = h.cache();
    let zero = cache.with_ttl(Duration::ZERO);
    assert_eq!(kind(zero.set("k", &1).await), ErrorKind::InvalidArgument);
    if h.capability().add {
        assert_eq!(kind(zero.add("k", &1).await), ErrorKind::InvalidArgument);
    }
    assert_eq!(
        kind(zero.multi_set([("k", 1)]).await),
        ErrorKind::InvalidArgument
    );
    assert!(!cache.exists("k").await.unwrap());
    cache.set("k", &1).await.unwrap();
    if h.capability().expire {
        assert_eq!(
            kind(cache.expire("k", Duration::ZERO).await),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    let bad_default = h.builder().ttl(Duration::ZERO).build();
    assert_eq!(
        kind(bad_default.set("d", &1).await),
        ErrorKind::InvalidArgument
    );
}

/// The cache's default TTL applies to writes that give none; a per-call TTL or `Ttl::Never`
/// overrides it.
pub async fn default_ttl_applies_and_per_call_ttl_overrides(h: Harness) {
    if !h.capability().ttl {
        return;
    }
    let cache = h.builder().ttl(Duration::from_secs(60)).build();
    cache.set("d", &1).await.unwrap();
    let left = cache
        .ttl("d")
        .await
        .unwrap()
        .remaining()
        .expect("default ttl");
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    cache.with_ttl(Ttl::Never).set("n", &1).await.unwrap();
    assert_eq!(cache.ttl("n").await.unwrap(), KeyTtl::NoExpiry);
    cache
        .with_ttl(Duration::from_secs(300))
        .set("o", &1)
        .await
        .unwrap();
    let left = cache.ttl("o").await.unwrap().remaining().expect("override");
    assert!(left > Duration::from_secs(250));
}

/// `clear` removes every key of the cache's namespace and no key of any other namespace.
pub async fn clear_removes_only_its_namespace(h: Harness) {
    let mine = h.cache();
    let other = h.builder().namespace(format!("{}x", h.namespace())).build();
    let sub = h
        .builder()
        .namespace(format!("{}:sub", h.namespace()))
        .build();
    if !h.capability().clear_namespace {
        assert_eq!(kind(mine.clear().await), ErrorKind::Unsupported);
        return;
    }
    let keys: Vec<String> = (0..250).map(|i| format!("k{i}")).collect();
    mine.multi_set(keys.iter().map(|k| (k, 1))).await.unwrap();
    other.multi_set(keys.iter().map(|k| (k, 2))).await.unwrap();
    sub.set("k0", &3).await.unwrap();
    let removed = mine.clear().await.unwrap();
    if let Some(n) = removed {
        assert_eq!(n, 250);
    }
    let left: Vec<Option<i32>> = mine.multi_get(&keys).await.unwrap();
    assert!(left.iter().all(Option::is_none));
    let kept: Vec<Option<i32>> = other.multi_get(&keys).await.unwrap();
    assert!(kept.iter().all(|v| *v == Some(2)));
    assert_eq!(sub.get::<i32>("k0").await.unwrap(), Some(3));
    sub.clear().await.unwrap();
    other.clear().await.unwrap();
}

/// `clear` of a namespace holding glob characters (`* ? [ ] \`) removes only that namespace.
pub async fn clear_escapes_glob_characters_in_namespace(h: Harness) {
    if !h.capability().clear_namespace {
        return;
    }
    let base = h.namespace().to_owned();
    let tricky = h.builder().namespace(format!("{base}*?[a]\\")).build();
    let lookalikes: Vec<Cache> = ["", "*", "?[a]\\", "X?[a]\\", "*?a\\", "*?[a]\\\\"]
        .iter()
        .map(|s| h.builder().namespace(format!("{base}{s}")).build())
        .collect();
    let plain = h.builder().namespace(format!("{base}XYa\\")).build();
    tricky.set("k", &1).await.unwrap();
    plain.set("k", &2).await.unwrap();
    for c in &lookalikes {
        c.set("k", &3).await.unwrap();
    }
    tricky.clear().await.unwrap();
    assert_eq!(tricky.get::<i32>("k").await.unwrap(), None);
    assert_eq!(plain.get::<i32>("k").await.unwrap(), Some(2));
    for c in &lookalikes {
        assert_eq!(
            c.get::<i32>("k").await.unwrap(),
            Some(3),
            "namespace {:?} must survive",
            c.default_namespace()
        );
        c.clear().await.unwrap();
    }
    plain.clear().await.unwrap();
}

/// `clear` without a namespace empties an exclusive store, and is refused on a shared server
/// with an error that names `wipe_all`.
pub async fn clear_without_namespace_follows_store_ownership(h: Harness) {
    let cache = h.builder().namespace("").build();
    if h.capability().exclusive_store {
        let namespaced = h.cache();
        namespaced.set("k", &1).await.unwrap();
        cache.clear().await.unwrap();
        assert_eq!(namespaced.get::<i32>("k").await.unwrap(), None);
    } else {
        let err = cache.clear().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("wipe_all"), "{err}");
    }
}

/// A per-call namespace overrides the cache's.
pub async fn namespace_override_per_call(h: Harness) {
    let cache = h.cache();
    let other_ns = format!("{}-other", h.namespace());
    cache.namespace(&other_ns).set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
    assert_eq!(
        cache.namespace(&other_ns).get::<i32>("k").await.unwrap(),
        Some(1)
    );
    let other = h.builder().namespace(other_ns.clone()).build();
    assert_eq!(other.get::<i32>("k").await.unwrap(), Some(1));
    other.delete("k").await.unwrap();
}

/// An explicit empty per-call namespace removes the cache's namespace.
pub async fn empty_namespace_override_removes_namespace(h: Harness) {
    let cache = h.cache();
    let bare_key = format!("{}-bare", h.namespace());
    cache.namespace("").set(&bare_key, &1).await.unwrap();
    let bare = h.builder().namespace("").build();
    assert_eq!(bare.get::<i32>(&bare_key).await.unwrap(), Some(1));
    assert_eq!(cache.get::<i32>(&bare_key).await.unwrap(), None);
    bare.delete(&bare_key).await.unwrap();
}

/// Different (namespace, key) pairs never share a backend key, even when joined text would
/// be equal.
pub async fn namespaces_never_collide(h: Harness) {
    let ns = h.namespace().to_owned();
    let a = h.builder().namespace(format!("{ns}:b")).build();
    let b = h.builder().namespace(ns.clone()).build();
    a.set("c", &"from a").await.unwrap();
    b.set("b:c", &"from b").await.unwrap();
    assert_eq!(
        a.get::<String>("c").await.unwrap().as_deref(),
        Some("from a")
    );
    assert_eq!(
        b.get::<String>("b:c").await.unwrap().as_deref(),
        Some("from b")
    );
    a.clear().await.ok();
}

#[derive(Debug, Default)]
struct RecordingKeyBuilder {
    calls: Mutex<Vec<(String, Option<String>)>>,
}

impl KeyBuilder for Arc<RecordingKeyBuilder> {
    fn build<'a>(
        &self,
        key: &'a str,
        namespace: Option<&str>,
    ) -> Result<std::borrow::Cow<'a, str>> {
        self.calls
            .lock()
            .unwrap()
            .push((key.to_owned(), namespace.map(str::to_owned)));
        Ok(format!("custom|{}|{key}", namespace.unwrap_or("-")).into())
    }

    fn namespace_prefix(&self, namespace: &str) -> Option<String> {
        Some(format!("custom|{namespace}|"))
    }
}

/// A custom key builder receives the user key and the resolved namespace, and its keys are
/// the ones stored.
pub async fn custom_key_builder_receives_key_and_resolved_namespace(h: Harness) {
    let kb = Arc::new(RecordingKeyBuilder::default());
    let cache = h.builder().key_builder(kb.clone()).build();
    cache.set("k", &1).await.unwrap();
    cache.namespace("override").set("k", &2).await.unwrap();
    let calls = kb.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            ("k".to_owned(), Some(h.namespace().to_owned())),
            ("k".to_owned(), Some("override".to_owned())),
        ]
    );
    let plain = h.builder().namespace("").build();
    let stored = format!("custom|{}|k", h.namespace());
    assert_eq!(plain.get::<i32>(&stored).await.unwrap(), Some(1));
    plain.delete(&stored).await.unwrap();
    plain.delete("custom|override|k").await.unwrap();
}

/// An empty key is refused with `InvalidArgument` by every keyed command.
pub async fn empty_key_is_invalid_argument(h: Harness) {
    let cache = h.cache();
    assert_eq!(kind(cache.get::<i32>("").await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.set("", &1).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.delete("").await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.exists("").await), ErrorKind::InvalidArgument);
    assert_eq!(
        kind(cache.multi_get::<i32, _, _>(["a", ""]).await),
        ErrorKind::InvalidArgument
    );
}

/// A long key is stored exactly, or refused with `InvalidArgument` when the backend has a key
/// limit; a key with spaces and control characters is never confused with another key.
pub async fn long_key_is_stored_or_refused_clearly(h: Harness) {
    let cache = h.cache();
    let long = "k".repeat(10_000);
    match h.capability().max_key_len {
        Some(_) => assert_eq!(kind(cache.set(&long, &1).await), ErrorKind::InvalidArgument),
        None => {
            cache.set(&long, &1).await.unwrap();
            assert_eq!(cache.get::<i32>(&long).await.unwrap(), Some(1));
        }
    }
    for (a, b) in [("a b", "a_b"), ("a\tb", "a b"), ("a\nb", "a\rb")] {
        let ra = cache.set(a, &1).await;
        let rb = cache.set(b, &2).await;
        match (ra, rb) {
            (Ok(()), Ok(())) => {
                assert_eq!(
                    cache.get::<i32>(a).await.unwrap(),
                    Some(1),
                    "{a:?} vs {b:?}"
                );
                assert_eq!(
                    cache.get::<i32>(b).await.unwrap(),
                    Some(2),
                    "{a:?} vs {b:?}"
                );
            }
            (ra, rb) => {
                for r in [ra, rb] {
                    if let Err(e) = r {
                        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
                    }
                }
            }
        }
    }
}

/// Bytes that do not decode give a `Serialization` error naming the key, never a panic or a
/// wrong value.
pub async fn undecodable_bytes_are_a_serialization_error_naming_the_key(h: Harness) {
    let cache = h.cache();
    cache
        .with_serializer(RawBytes)
        .set("bad", &Bytes::from_static(b"\xff\xfe not json {"))
        .await
        .unwrap();
    let err = cache.get::<User>("bad").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert_eq!(err.context_value("key"), Some("bad"));
    assert!(err.to_string().contains("bad"));
    let err = cache.multi_get::<User, _, _>(["bad"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    // a value of the wrong shape
    cache.set("shape", &"a string").await.unwrap();
    assert_eq!(
        kind(cache.get::<User>("shape").await),
        ErrorKind::Serialization
    );
}

/// A per-call serializer writes and reads that call's bytes.
pub async fn per_call_serializer_override(h: Harness) {
    let cache = h.cache();
    cache
        .with_serializer(Utf8)
        .set("t", &"plain")
        .await
        .unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("t").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"plain"[..]));
    assert_eq!(
        kind(cache.get::<String>("t").await),
        ErrorKind::Serialization,
        "plain text is not JSON"
    );
    cache.set("j", &"json").await.unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("j").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"\"json\""[..]));
    let custom = h.builder().serializer(Utf8).build();
    custom.set("n", &5).await.unwrap();
    assert_eq!(custom.get::<i64>("n").await.unwrap(), Some(5));
}

/// Per-call encode and decode functions replace the serializer for that call only.
pub async fn per_call_encode_and_decode_functions(h: Harness) {
    let cache = h.cache();
    cache
        .set_encoded("k", "v4lu3", |s: &str| Ok(s.as_bytes().to_vec()))
        .await
        .unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("k").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"v4lu3"[..]));
    let upper = cache
        .get_decoded("k", |b| Ok(String::from_utf8_lossy(b).to_uppercase()))
        .await
        .unwrap();
    assert_eq!(upper.as_deref(), Some("V4LU3"));
    let err = cache
        .get_decoded::<(), _>("k", |_| {
            Err(crate::Error::serialization("custom decoder refused"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert_eq!(err.context_value("key"), Some("k"));
    assert_eq!(
        cache.get_decoded("missing", |_| Ok(1)).await.unwrap(),
        None,
        "the decoder does not run on a miss"
    );
}

/// Binary values (all 256 byte values, CR LF inside) round-trip exactly.
pub async fn binary_values_round_trip_exactly(h: Harness) {
    let owner = h.cache();
    let cache = owner.with_serializer(RawBytes);
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend_from_slice(b"\r\nEND\r\n\0");
    cache.set("bin", &Bytes::from(value.clone())).await.unwrap();
    let back: Option<Vec<u8>> = cache.get("bin").await.unwrap();
    assert_eq!(back, Some(value));
    cache.set("empty", &Bytes::new()).await.unwrap();
    let back: Option<Vec<u8>> = cache.get("empty").await.unwrap();
    assert_eq!(back, Some(Vec::new()), "an empty value is a value");
}

/// Sleeps in `before` for `get` calls, to make commands slow on any backend.
#[derive(Debug)]
struct SlowGets(Duration);

#[async_trait]
impl Plugin for SlowGets {
    async fn before(&self, info: &CommandInfo<'_>) {
        if info.command == Command::Get {
            tokio::time::sleep(self.0).await;
        }
    }
}

/// A command past its deadline fails with `Timeout`, and the next call on the same cache
/// succeeds.
pub async fn timeout_fires_and_next_call_succeeds(h: Harness) {
    let cache = h
        .builder()
        .timeout(Duration::from_millis(50))
        .plugin(SlowGets(Duration::from_millis(300)))
        .build();
    cache.set("k", &1).await.unwrap();
    let err = cache.get::<i32>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_temporary());
    for _ in 0..20 {
        let err = cache
            .with_timeout(Duration::from_millis(1))
            .get::<i32>("k")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }
    cache.set("k", &2).await.unwrap();
    assert!(cache.exists("k").await.unwrap());
    assert_eq!(
        cache
            .with_timeout(Duration::from_secs(2))
            .get::<i32>("k")
            .await
            .unwrap(),
        Some(2)
    );
}

/// A zero or `None` timeout disables the deadline.
pub async fn zero_timeout_disables_deadline(h: Harness) {
    let cache = h
        .builder()
        .timeout(Duration::from_millis(20))
        .plugin(SlowGets(Duration::from_millis(100)))
        .build();
    // The write only sets up the reads; it must not depend on the machine's speed.
    cache
        .with_timeout(Duration::from_secs(5))
        .set("k", &1)
        .await
        .unwrap();
    assert_eq!(
        cache
            .with_timeout(Duration::ZERO)
            .get::<i32>("k")
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        cache.with_timeout(None).get::<i32>("k").await.unwrap(),
        Some(1)
    );
    let none = h
        .builder()
        .timeout(None)
        .plugin(SlowGets(Duration::from_millis(100)))
        .build();
    assert_eq!(none.get::<i32>("k").await.unwrap(), Some(1));
}

#[derive(Debug)]
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Plugin for Recorder {
    async fn before(&self, info: &CommandInfo<'_>) {
        self.log.lock().unwrap().push(format!(
            "{} before {} {:?}",
            self.name, info.command, info.keys
        ));
    }

    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        self.log.lock().unwrap().push(format!(
            "{} after {} hits={} misses={} error={:?}",
            self.name, info.command, outcome.hits, outcome.misses, outcome.error
        ));
    }
}

/// Plugins run before and after every command, in the order added, and see hits, misses and
/// errors; refused arguments run no hooks.
pub async fn plugins_run_in_order_with_outcome(h: Harness) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let cache = h
        .builder()
        .plugin(Recorder {
            name: "p1",
            log: log.clone(),
        })
        .plugin(Recorder {
            name: "p2",
            log: log.clone(),
        })
        .plugin(move |info: &CommandInfo<'_>, _: &Outcome| {
            assert!(info.namespace.is_some());
            seen2.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    cache.set("a", &1).await.unwrap();
    let _: Vec<Option<i32>> = cache.multi_get(["a", "b"]).await.unwrap();
    if h.capability().add {
        assert!(cache.add("a", &2).await.is_err());
    }
    assert!(cache.get::<i32>("").await.is_err(), "refused before hooks");
    let log = log.lock().unwrap().clone();
    let mut expected = vec![
        "p1 before set [\"a\"]".to_owned(),
        "p2 before set [\"a\"]".to_owned(),
        "p1 after set hits=0 misses=0 error=None".to_owned(),
        "p2 after set hits=0 misses=0 error=None".to_owned(),
        "p1 before multi_get [\"a\", \"b\"]".to_owned(),
        "p2 before multi_get [\"a\", \"b\"]".to_owned(),
        "p1 after multi_get hits=1 misses=1 error=None".to_owned(),
        "p2 after multi_get hits=1 misses=1 error=None".to_owned(),
    ];
    if h.capability().add {
        expected.extend([
            "p1 before add [\"a\"]".to_owned(),
            "p2 before add [\"a\"]".to_owned(),
            "p1 after add hits=0 misses=0 error=Some(AlreadyExists)".to_owned(),
            "p2 after add hits=0 misses=0 error=Some(AlreadyExists)".to_owned(),
        ]);
    }
    assert_eq!(log, expected);
    let calls = if h.capability().add { 3 } else { 2 };
    assert_eq!(seen.load(Ordering::Relaxed), calls);
}

/// `compare_and_set` writes only when the stored value matches the expected one (or, with no
/// expectation, when the key is absent).
pub async fn compare_and_set_writes_only_on_match(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        assert_eq!(
            kind(cache.compare_and_set("k", None, &1).await),
            ErrorKind::Unsupported
        );
        return;
    }
    assert!(cache.compare_and_set("k", None, &1).await.unwrap());
    assert!(!cache.compare_and_set("k", None, &2).await.unwrap());
    assert!(!cache.compare_and_set("k", Some(&5), &2).await.unwrap());
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    assert!(cache.compare_and_set("k", Some(&1), &2).await.unwrap());
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));
    assert!(!cache.compare_and_set("absent", Some(&1), &2).await.unwrap());
    assert!(!cache.exists("absent").await.unwrap());
}

/// Concurrent `get_or_set` callers of one cold key share one loader run.
pub async fn get_or_set_runs_loader_once_for_concurrent_callers(h: Harness) {
    let cache = h.cache();
    let runs = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            tokio::spawn(async move {
                cache
                    .get_or_set("cold", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, std::io::Error>(user(7))
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), user(7));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the loader ran once");
    assert_eq!(cache.get::<User>("cold").await.unwrap(), Some(user(7)));
}

/// `get_or_set_many` reads once, gives the loader only the distinct misses, stores what it
/// returned, answers in order with `None` for keys it did not return, and shares loads with
/// `get_or_set` and with other batches: every key is loaded once.
pub async fn get_or_set_many_loads_each_missing_key_once(h: Harness) {
    let cache = h.cache();
    cache.set("a", &user(1)).await.unwrap();
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let log = seen.clone();
    let got = cache
        .get_or_set_many(["a", "b", "c", "b", "d"], |missing: Vec<String>| {
            log.lock().unwrap().push(missing.clone());
            async move {
                Ok::<_, std::io::Error>(
                    missing
                        .into_iter()
                        .filter(|k| k != "d")
                        .map(|k| {
                            let id = if k == "b" { 2 } else { 3 };
                            (k, user(id))
                        })
                        .collect::<Vec<_>>(),
                )
            }
        })
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            Some(user(1)),
            Some(user(2)),
            Some(user(3)),
            Some(user(2)),
            None
        ]
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [["b", "c", "d"]],
        "distinct misses, once"
    );
    let stored: Vec<Option<User>> = cache.multi_get(["b", "c", "d"]).await.unwrap();
    assert_eq!(
        stored,
        [Some(user(2)), Some(user(3)), None],
        "d is not cached"
    );

    // Concurrent batches and single loads over overlapping cold keys: each key loads once.
    let runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let cache = cache.clone();
            let runs = runs.clone();
            tokio::spawn(async move {
                if t % 4 == 0 {
                    let v = cache
                        .get_or_set("k1", || async move {
                            runs.lock().unwrap().push("k1".to_owned());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, std::io::Error>(user(11))
                        })
                        .await
                        .unwrap();
                    vec![Some(v)]
                } else {
                    cache
                        .get_or_set_many(["k1", "k2", "k3"], |missing: Vec<String>| {
                            runs.lock().unwrap().extend(missing.iter().cloned());
                            async move {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Ok::<_, std::io::Error>(
                                    missing
                                        .into_iter()
                                        .map(|k| {
                                            let id = 10 + k[1..].parse::<u64>().unwrap();
                                            (k, user(id))
                                        })
                                        .collect::<Vec<_>>(),
                                )
                            }
                        })
                        .await
                        .unwrap()
                }
            })
        })
        .collect();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got[0], Some(user(11)));
        if got.len() == 3 {
            assert_eq!(got[1..], [Some(user(12)), Some(user(13))]);
        }
    }
    let mut runs = runs.lock().unwrap().clone();
    runs.sort();
    assert_eq!(runs, ["k1", "k2", "k3"], "every key loaded exactly once");
}

/// A batch loader's error reaches the batch and every caller waiting for one of its keys,
/// and nothing is cached.
pub async fn get_or_set_many_loader_error_reaches_waiters_and_is_not_cached(h: Harness) {
    let cache = h.cache();
    let loading = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let batch = {
        let cache = cache.clone();
        let (loading, release) = (loading.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_set_many(["x", "y"], |_missing: Vec<String>| {
                    let (loading, release) = (loading.clone(), release.clone());
                    async move {
                        loading.notify_one();
                        release.notified().await;
                        Err::<Vec<(String, User)>, _>("database down")
                    }
                })
                .await
        })
    };
    // The batch is loading "x" and "y": a get_or_set of "y" now waits for it.
    loading.notified().await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_set("y", || async { Ok::<_, std::io::Error>(user(9)) })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.notify_one();
    let waiter = waiter.await.unwrap();
    let batch = batch.await.unwrap();
    assert_eq!(batch.unwrap_err().kind(), ErrorKind::Loader);
    assert_eq!(
        waiter.unwrap_err().kind(),
        ErrorKind::Loader,
        "the waiter shares the error"
    );
    let stored: Vec<Option<User>> = cache.multi_get(["x", "y"]).await.unwrap();
    assert_eq!(stored, [None, None]);
}

/// `get_or_set` of a stored key answers it without running the loader.
pub async fn get_or_set_returns_stored_value_without_loading(h: Harness) {
    let cache = h.cache();
    cache.set("k", &user(1)).await.unwrap();
    let got: User = cache
        .get_or_set("k", || async { Err::<User, _>("must not run") })
        .await
        .unwrap();
    assert_eq!(got, user(1));
}

/// A loader error reaches every waiter as a `Loader` error and nothing is cached; the next
/// call loads again.
pub async fn get_or_set_loader_error_reaches_every_waiter_and_is_not_cached(h: Harness) {
    let cache = h.cache();
    let runs = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            tokio::spawn(async move {
                cache
                    .get_or_set::<User, _, _, _>("k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err(std::io::Error::other("database down"))
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Loader);
        let source = std::error::Error::source(&err).expect("loader error kept");
        assert_eq!(source.to_string(), "database down");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!cache.exists("k").await.unwrap(), "errors are not cached");
    let v: User = cache
        .get_or_set("k", || async { Ok::<_, std::io::Error>(user(2)) })
        .await
        .unwrap();
    assert_eq!(v, user(2));
}

/// `raw` works where the capability says so and is `Unsupported` elsewhere.
pub async fn raw_is_supported_or_refused(h: Harness) {
    let cache = h.cache();
    if !h.capability().raw {
        assert_eq!(
            kind(cache.raw("PING", Vec::<String>::new()).await),
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

/// `compare_and_delete` removes a key only while it holds the expected value.
pub async fn compare_and_delete_removes_only_on_match(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        assert_eq!(
            kind(cache.compare_and_delete("k", &1).await),
            ErrorKind::Unsupported
        );
        return;
    }
    cache.set("k", &1).await.unwrap();
    assert!(!cache.compare_and_delete("k", &2).await.unwrap());
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1), "kept");
    assert!(cache.compare_and_delete("k", &1).await.unwrap());
    assert!(!cache.exists("k").await.unwrap(), "removed");
    assert!(!cache.compare_and_delete("k", &1).await.unwrap(), "absent");
}

/// A lock has one owner at a time; a release frees it; waiters get it after a release and
/// time out while it stays held; releasing with another owner's token does nothing.
pub async fn lock_has_one_owner_and_only_the_owner_releases(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        assert_eq!(
            kind(cache.lock("job").try_acquire().await),
            ErrorKind::Unsupported
        );
        return;
    }
    let lock = cache.lock("job").lease(Duration::from_secs(30));
    let guard = lock.try_acquire().await.unwrap().expect("free");
    assert!(lock.try_acquire().await.unwrap().is_none(), "one owner");
    assert!(guard.is_held().await.unwrap());
    // A release with the wrong token (another owner's, or a forged one) does nothing.
    let text = cache.with_serializer(Utf8);
    assert!(
        !text
            .compare_and_delete(guard.lock_key(), "forged")
            .await
            .unwrap()
    );
    assert!(guard.is_held().await.unwrap(), "still held");
    // A waiter times out while the lock is held...
    let err = lock
        .clone()
        .wait(Duration::from_millis(150))
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // ...and gets it once the owner releases.
    let waiter = {
        let lock = lock.clone().wait(Duration::from_secs(5));
        tokio::spawn(async move { lock.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = guard.token().to_owned();
    assert!(guard.release().await.unwrap());
    let second = waiter.await.unwrap().unwrap();
    assert_ne!(first, second.token(), "a new owner token per holder");
    // The value stored is the owner token as text (what aiocache's RedLock stores).
    let stored: Option<String> = text.get(&lock.lock_key()).await.unwrap();
    assert_eq!(stored.as_deref(), Some(second.token()));
    // A guard dropped unreleased releases its lock from a spawned task.
    drop(second);
    let mut freed = false;
    for _ in 0..100 {
        if lock.try_acquire().await.unwrap().is_some() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(freed, "the dropped guard released the lock");
}

/// When a lease ends, another owner takes the lock; the old holder's release leaves the new
/// holder's lock alone, its extend fails with `Conflict`, and fencing tokens grow.
pub async fn lock_lease_expiry_never_lets_the_old_holder_touch_the_new_lock(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        return;
    }
    // Long enough for the old holder to take its fencing token on a loaded machine.
    let lease = h.short_ttl().max(Duration::from_secs(1));
    let lock = cache.lock("lease").lease(lease);
    let mut old = lock.try_acquire().await.unwrap().expect("free");
    let old_fence = old.fencing_token().await.unwrap();
    h.sleep_past(lease).await;
    let mut new = lock.try_acquire().await.unwrap().expect("the lease ended");
    let new_fence = new.fencing_token().await.unwrap();
    assert!(new_fence > old_fence, "{new_fence} > {old_fence}");
    // A fenced resource remembers the highest token it has seen and refuses lower ones: the
    // old holder, paused past its lease, cannot write any more.
    let mut highest = 0;
    let mut write = |fence: u64| {
        if fence < highest {
            false
        } else {
            highest = fence;
            true
        }
    };
    assert!(write(new_fence), "the new holder writes");
    assert!(!write(old_fence), "the old holder's write is refused");
    assert_eq!(kind(old.extend(lease).await), ErrorKind::Conflict);
    assert!(!old.is_held().await.unwrap());
    assert!(
        !old.release().await.unwrap(),
        "the old holder removes nothing"
    );
    assert!(
        new.is_held().await.unwrap(),
        "the new holder keeps its lock"
    );
    new.extend(Duration::from_secs(30)).await.unwrap();
    assert!(new.release().await.unwrap());
}

/// Tasks taking one lock in turn never overlap inside it: a read-modify-write of a counter
/// under the lock loses no update.
pub async fn lock_excludes_concurrent_holders(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        return;
    }
    let inside = Arc::new(AtomicU64::new(0));
    let overlaps = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            let inside = inside.clone();
            let overlaps = overlaps.clone();
            tokio::spawn(async move {
                let lock = cache
                    .lock("counter")
                    .lease(Duration::from_secs(30))
                    .wait(Duration::from_secs(60));
                for _ in 0..10 {
                    let guard = lock.acquire().await.unwrap();
                    if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    let n = cache.get::<u64>("n").await.unwrap().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    cache.set("n", &(n + 1)).await.unwrap();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert!(guard.release().await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "no overlap");
    assert_eq!(
        cache.get::<u64>("n").await.unwrap(),
        Some(80),
        "no lost update"
    );
}

/// An optimistic lock writes only when the value is unchanged since its read: a write in
/// between, a delete in between, or a key created in between is a `Conflict`; the TTL option
/// applies to the write.
pub async fn optimistic_lock_writes_only_an_unchanged_value(h: Harness) {
    let cache = h.cache();
    if !h.capability().compare_and_set {
        return;
    }
    cache.set("k", &1).await.unwrap();
    let mut lock = cache.optimistic_lock("k");
    assert_eq!(lock.get::<i32>().await.unwrap(), Some(1));
    lock.cas(&2).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));

    let mut lock = cache.optimistic_lock("k");
    lock.get::<i32>().await.unwrap();
    cache.set("k", &3).await.unwrap();
    assert_eq!(kind(lock.cas(&4).await), ErrorKind::Conflict);
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        Some(3),
        "the other write stays"
    );

    let mut lock = cache.optimistic_lock("k");
    lock.get::<i32>().await.unwrap();
    cache.delete("k").await.unwrap();
    assert_eq!(
        kind(lock.cas(&5).await),
        ErrorKind::Conflict,
        "deleted in between"
    );

    let mut lock = cache.optimistic_lock("absent");
    assert_eq!(lock.get::<i32>().await.unwrap(), None);
    cache.set("absent", &1).await.unwrap();
    assert_eq!(
        kind(lock.cas(&2).await),
        ErrorKind::Conflict,
        "created in between"
    );

    let mut lock = cache.optimistic_lock("fresh").with_ttl(h.short_ttl());
    assert_eq!(lock.get::<i32>().await.unwrap(), None);
    lock.cas(&1).await.unwrap();
    assert!(matches!(
        cache.ttl("fresh").await.unwrap(),
        KeyTtl::Remaining(_)
    ));
    let mut unread = cache.optimistic_lock("k");
    assert_eq!(
        kind(unread.cas(&1).await),
        ErrorKind::Conflict,
        "cas before get"
    );
}
