//! `delete`, `multi_delete` and `exists`.

use std::time::Duration;

use crate::testkit::Harness;

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
