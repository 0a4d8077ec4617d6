//! `Lock` and `OptimisticLock`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::kind;
use crate::testkit::Harness;
use crate::{ErrorKind, KeyTtl, Utf8};

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
