//! `add`, `compare_and_set` and `compare_and_delete`: writes that depend on what is stored.

use super::kind;
use crate::ErrorKind;
use crate::testkit::Harness;

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
