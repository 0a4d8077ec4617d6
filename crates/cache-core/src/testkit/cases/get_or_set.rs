//! `get_or_set` and `get_or_set_many`: read-through with single flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{User, user};
use crate::ErrorKind;
use crate::testkit::Harness;

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
                    .get_or_set::<User>("k", || async move {
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
