//! `clear`, namespaces and key builders.

use std::sync::{Arc, Mutex};

use super::kind;
use crate::testkit::Harness;
use crate::{Cache, ErrorKind, KeyBuilder, Result};

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
    cache.with_namespace(&other_ns).set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
    assert_eq!(
        cache
            .with_namespace(&other_ns)
            .get::<i32>("k")
            .await
            .unwrap(),
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
    cache.with_namespace("").set(&bare_key, &1).await.unwrap();
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
    cache.with_namespace("override").set("k", &2).await.unwrap();
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
