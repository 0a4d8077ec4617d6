//! What the tier does on one instance, over the memory backend: local hits, copies that
//! follow the remote entry's lifetime, writes that fail, per-call locality, decoded values.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::layer::Layer;
use cache_core::{Backend, Cache, CallContext, Error, OpSet, Result, forward_backend};
use cache_memory::MemoryBackend;
use cache_tiered::{Locality, TierLayer, TierStatsHandle};

/// A backend whose writes can be made to fail (a refusing server), over the memory backend.
#[derive(Debug)]
struct Refusing {
    inner: MemoryBackend,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Backend for Refusing {
    forward_backend!(inner: name, capability, endpoint, get, multi_get, get_with_ttl,
        multi_get_with_ttl, add, delete, multi_delete, exists, increment, expire, ttl,
        compare_and_set, compare_and_delete, clear, raw, close);

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::new(cache_core::ErrorKind::Backend, "refused"));
        }
        self.inner.set(ctx, key, value, op).await
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::new(cache_core::ErrorKind::Backend, "refused"));
        }
        self.inner.multi_set(ctx, entries, op).await
    }
}

async fn tier_over(remote: Arc<dyn Backend>) -> (Cache, TierStatsHandle) {
    let tier = TierLayer::builder()
        .local_ttl(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let stats = tier.stats_handle();
    (
        Cache::builder(tier.layer(remote)).namespace("t").build(),
        stats,
    )
}

#[tokio::test]
async fn reads_after_the_first_are_local_hits() {
    let (cache, stats) = tier_over(Arc::new(MemoryBackend::new())).await;
    cache.set("k", &1).await.unwrap();
    for _ in 0..3 {
        assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    }
    let s = stats.get();
    assert_eq!(
        (s.local_hits, s.local_misses),
        (3, 0),
        "the write left a copy: {s:?}"
    );
    assert_eq!(s.entries, 1);
}

#[tokio::test]
async fn a_copy_ends_with_the_remote_entry() {
    let remote = Arc::new(MemoryBackend::new());
    let (cache, _) = tier_over(remote).await;
    cache
        .with_ttl(Duration::from_millis(80))
        .set("k", &1)
        .await
        .unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        cache
            .with_locality(Locality::LocalOnly)
            .get::<i32>("k")
            .await
            .unwrap(),
        None,
        "the local copy lived no longer than the remote entry"
    );
}

#[tokio::test]
async fn a_copy_read_from_the_remote_level_lives_no_longer_than_its_entry() {
    let remote: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    // written by another instance (straight to the remote level), read through this one
    let other = Cache::builder(Arc::clone(&remote)).namespace("t").build();
    other
        .with_ttl(Duration::from_millis(80))
        .set("k", &1)
        .await
        .unwrap();
    let (cache, stats) = tier_over(remote).await;
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    assert_eq!(stats.get().fills, 1);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        cache
            .with_locality(Locality::LocalOnly)
            .get::<i32>("k")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_failed_remote_write_leaves_no_local_copy() {
    let remote = Arc::new(Refusing {
        inner: MemoryBackend::new(),
        refuse: false.into(),
    });
    let (cache, _) = tier_over(remote.clone()).await;
    cache.set("k", &1).await.unwrap();
    remote
        .refuse
        .store(true, std::sync::atomic::Ordering::Relaxed);
    cache
        .set("k", &2)
        .await
        .expect_err("the remote level refuses");
    cache
        .multi_set([("k", 3), ("j", 3)])
        .await
        .expect_err("the remote level refuses");
    let local = cache.with_locality(Locality::LocalOnly);
    assert_eq!(
        local.get::<i32>("k").await.unwrap(),
        None,
        "no copy of a failed write"
    );
    assert_eq!(local.get::<i32>("j").await.unwrap(), None);
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        Some(1),
        "the remote value"
    );
}

#[tokio::test]
async fn writes_and_removals_drop_or_replace_the_copy() {
    let remote: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let (cache, _) = tier_over(Arc::clone(&remote)).await;
    let local = || cache.with_locality(Locality::LocalOnly);
    cache.set("n", &5).await.unwrap();
    assert_eq!(cache.increment("n", 2).await.unwrap(), 7);
    assert_eq!(
        local().get::<i64>("n").await.unwrap(),
        None,
        "increment drops the copy"
    );
    assert_eq!(cache.get::<i64>("n").await.unwrap(), Some(7));

    cache.set("d", &1).await.unwrap();
    cache.delete("d").await.unwrap();
    assert_eq!(local().get::<i32>("d").await.unwrap(), None);
    assert_eq!(cache.get::<i32>("d").await.unwrap(), None);

    cache.set("e", &1).await.unwrap();
    cache.expire("e", Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        local().get::<i32>("e").await.unwrap(),
        None,
        "expire drops the copy"
    );

    cache.set("c", &1).await.unwrap();
    assert!(cache.compare_and_set("c", Some(&1), &2).await.unwrap());
    assert_eq!(
        local().get::<i32>("c").await.unwrap(),
        Some(2),
        "the written value"
    );
    assert!(!cache.compare_and_set("c", Some(&1), &3).await.unwrap());
    assert_eq!(
        local().get::<i32>("c").await.unwrap(),
        None,
        "a refused CAS drops the copy"
    );

    cache.set("a", &1).await.unwrap();
    cache.add("a", &2).await.expect_err("the key exists");
    assert_eq!(local().get::<i32>("a").await.unwrap(), None);

    cache.multi_set([("m1", 1), ("m2", 2)]).await.unwrap();
    cache.get::<i32>("m1").await.unwrap();
    cache.clear().await.unwrap();
    assert_eq!(
        local().get::<i32>("m1").await.unwrap(),
        None,
        "clear drops the namespace"
    );
    assert_eq!(cache.get::<i32>("m2").await.unwrap(), None);
}

#[tokio::test]
async fn skip_local_reads_the_remote_level_and_local_only_never_does() {
    let remote: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let other = Cache::builder(Arc::clone(&remote)).namespace("t").build();
    let (cache, _) = tier_over(remote).await;
    cache.set("k", &1).await.unwrap();
    other.set("k", &2).await.unwrap(); // unseen: no channel
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        Some(1),
        "the local copy"
    );
    assert_eq!(
        cache
            .with_locality(Locality::SkipLocal)
            .get::<i32>("k")
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        Some(2),
        "refreshed the copy"
    );

    other.set("only-remote", &1).await.unwrap();
    let local = cache.with_locality(Locality::LocalOnly);
    assert_eq!(local.get::<i32>("only-remote").await.unwrap(), None);
    local.set("only-local", &9).await.unwrap();
    assert_eq!(local.get::<i32>("only-local").await.unwrap(), Some(9));
    assert_eq!(
        other.get::<i32>("only-local").await.unwrap(),
        None,
        "not written remotely"
    );
}

#[tokio::test]
async fn multi_get_serves_local_hits_and_asks_the_remote_level_for_the_rest_once() {
    let remote: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let other = Cache::builder(Arc::clone(&remote)).namespace("t").build();
    let (cache, stats) = tier_over(remote).await;
    cache.set("a", &1).await.unwrap();
    other.set("b", &2).await.unwrap();
    let got: Vec<Option<i32>> = cache.multi_get(["a", "b", "c", "a"]).await.unwrap();
    assert_eq!(got, vec![Some(1), Some(2), None, Some(1)]);
    let s = stats.get();
    assert_eq!((s.local_hits, s.local_misses), (2, 2));
    let again: Vec<Option<i32>> = cache.multi_get(["b", "a"]).await.unwrap();
    assert_eq!(again, vec![Some(2), Some(1)]);
    assert_eq!(
        stats.get().local_hits,
        4,
        "b was copied by the first multi_get"
    );
}

#[tokio::test]
async fn a_shared_read_decodes_a_copy_once() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        name: String,
    }
    let (cache, _) = tier_over(Arc::new(MemoryBackend::new())).await;
    cache.set("u", &User { name: "Ada".into() }).await.unwrap();
    let first = cache.get_shared::<User>("u").await.unwrap().unwrap();
    let second = cache.get_shared::<User>("u").await.unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "the second hit hands out the kept value"
    );
    assert_eq!(second.name, "Ada");
    cache
        .set(
            "u",
            &User {
                name: "Grace".into(),
            },
        )
        .await
        .unwrap();
    let third = cache.get_shared::<User>("u").await.unwrap().unwrap();
    assert_eq!(third.name, "Grace", "a new copy is decoded again");
    // another type of the same entry is decoded for itself
    let raw = cache
        .get_shared::<serde_json::Value>("u")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw["name"], "Grace");
}
