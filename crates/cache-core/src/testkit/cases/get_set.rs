//! get and set: misses, round trips, stored `null`, overwrites.

use std::time::Duration;

use super::{User, user};
use crate::KeyTtl;
use crate::testkit::Harness;

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
