//! `multi_get` and `multi_set`.

use std::time::Duration;

use super::{User, user};
use crate::ErrorKind;
use crate::testkit::Harness;

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
