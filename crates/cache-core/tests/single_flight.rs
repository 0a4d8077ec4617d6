//! `get_or_set`'s single flight: deadlines for waiters, re-entrant loaders, values that
//! cannot be stored, and which callers share a load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::testkit::MapBackend;
use cache_core::{
    Backend, Cache, CallContext, Capability, CommandInfo, Error, ErrorKind, OpSet, Outcome, Result,
};

/// Never lets a test hang: a hang is the failure these tests look for.
async fn bounded<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

#[tokio::test]
async fn get_or_set_reentrant_call_for_its_own_key_fails_instead_of_hanging() {
    let cache = Cache::builder(MapBackend::new()).without_timeout().build();
    let inner_error: Arc<Mutex<Option<Error>>> = Arc::default();
    let seen = inner_error.clone();
    let c = cache.clone();
    let answer = bounded("a re-entrant get_or_set", async {
        cache
            .get_or_set("k", || async move {
                // The loader asks for its own key again.
                match c.get_or_set("k", || async { Ok::<_, Error>(1u32) }).await {
                    Ok(v) => Ok(v + 100),
                    Err(e) => {
                        *seen.lock().unwrap() = Some(e.clone());
                        Err(e)
                    }
                }
            })
            .await
    })
    .await;
    let inner = inner_error
        .lock()
        .unwrap()
        .clone()
        .expect("the inner call failed");
    assert_eq!(inner.kind(), ErrorKind::InvalidArgument, "{inner}");
    assert_eq!(inner.context_value("key"), Some("k"));
    assert_eq!(answer.unwrap_err().kind(), ErrorKind::Loader);
    // A different key from inside a loader is fine.
    let c = cache.clone();
    let v = bounded("a nested get_or_set of another key", async {
        cache
            .get_or_set("outer", || async move {
                c.get_or_set("inner", || async { Ok::<_, Error>(2u32) })
                    .await
                    .map(|v| v * 10)
            })
            .await
    })
    .await
    .unwrap();
    assert_eq!(v, 20);
}

#[tokio::test]
async fn get_or_set_waiters_honour_their_deadline() {
    let cache = Cache::builder(MapBackend::new())
        .timeout(Duration::from_millis(100))
        .build();
    let loader_started = Arc::new(tokio::sync::Notify::new());
    let started = loader_started.clone();
    let c = cache.clone();
    let hung = tokio::spawn(async move {
        c.get_or_set("k", || async move {
            started.notify_one();
            std::future::pending::<std::result::Result<u32, Error>>().await
        })
        .await
    });
    loader_started.notified().await;
    let began = tokio::time::Instant::now();
    let err = bounded("a waiter behind a hung loader", async {
        cache
            .get_or_set("k", || async { Ok::<_, Error>(1u32) })
            .await
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(began.elapsed() < Duration::from_secs(2));
    // A waiter with a longer per-call deadline waits longer, and the same holds for it.
    let err = bounded("a waiter with its own deadline", async {
        cache
            .with_timeout(Duration::from_millis(300))
            .get_or_set("k", || async { Ok::<_, Error>(1u32) })
            .await
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    hung.abort();
}

/// A backend that holds values of at most 8 bytes and says so, refusing longer ones.
#[derive(Debug)]
struct Small {
    inner: MapBackend,
}

#[async_trait]
impl Backend for Small {
    cache_core::forward_backend!(inner: get_with_ttl, multi_get_with_ttl, name, endpoint, get, multi_get, add, multi_set, delete,
        multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);

    fn capability(&self) -> Capability {
        Capability {
            max_value_len: Some(8),
            ..self.inner.capability()
        }
    }

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        if value.len() > 8 {
            return Err(Error::invalid_argument("value too large for this backend"));
        }
        self.inner.set(ctx, key, value, op).await
    }
}

#[derive(Default)]
struct SetOutcomes(Mutex<Vec<Option<ErrorKind>>>);

#[async_trait]
impl cache_core::Plugin for SetOutcomes {
    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        if info.command == cache_core::Command::Set {
            self.0.lock().unwrap().push(outcome.error);
        }
    }
}

#[tokio::test]
async fn get_or_set_returns_a_value_too_large_to_store_to_the_caller_and_every_waiter() {
    let outcomes = Arc::new(SetOutcomes::default());
    let cache = Cache::builder(Small {
        inner: MapBackend::new(),
    })
    .shared_plugin(outcomes.clone())
    .build();
    let loads = Arc::new(AtomicU64::new(0));
    let big = "a value much longer than eight bytes".to_string();
    let call = || {
        let loads = loads.clone();
        let big = big.clone();
        cache.get_or_set("k", || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Error>(big)
        })
    };
    // Polled together: all four join before the load ends.
    let (a, b, c, d) = tokio::join!(call(), call(), call(), call());
    for answer in [a, b, c, d] {
        assert_eq!(answer.unwrap(), big);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for four callers");
    assert_eq!(
        *outcomes.0.lock().unwrap(),
        [Some(ErrorKind::InvalidArgument)],
        "plugins see the refused write"
    );
    assert_eq!(cache.get::<String>("k").await.unwrap(), None);
}

#[tokio::test]
async fn single_flight_is_shared_by_clones_not_by_separate_caches() {
    let backend: Arc<dyn Backend> = Arc::new(MapBackend::new());
    let one = Cache::new(backend.clone());
    let other = Cache::new(backend);
    let loads = Arc::new(AtomicU64::new(0));
    let load = |loads: Arc<AtomicU64>| async move {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, Error>(7u32)
    };
    let clone = one.clone();
    let (a, b) = tokio::join!(
        one.get_or_set("clone", {
            let l = loads.clone();
            move || load(l)
        }),
        clone.get_or_set("clone", {
            let l = loads.clone();
            move || load(l)
        }),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (7, 7));
    assert_eq!(loads.swap(0, Ordering::SeqCst), 1, "clones share one load");
    let (a, b) = tokio::join!(
        one.get_or_set("separate", {
            let l = loads.clone();
            move || load(l)
        }),
        other.get_or_set("separate", {
            let l = loads.clone();
            move || load(l)
        }),
    );
    assert_eq!((a.unwrap(), b.unwrap()), (7, 7));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "separately built caches load on their own"
    );
}

/// The loader may be an async closure or a closure returning a future, and a loader that
/// only fails needs no more than the value type named.
#[tokio::test]
async fn get_or_set_takes_async_closures_and_needs_at_most_the_value_type() {
    let cache = Cache::new(MapBackend::new());
    let n = 41u32;
    let v: u32 = cache
        .get_or_set("a", async move || Ok::<_, Error>(n + 1))
        .await
        .unwrap();
    assert_eq!(v, 42);
    let v: u32 = cache
        .get_or_set("a", || async { Ok::<_, Error>(0) })
        .await
        .unwrap();
    assert_eq!(v, 42, "the stored value, the loader not run");
    let e = cache
        .get_or_set::<String>("b", || async { Err(std::io::Error::other("db down")) })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Loader);
}

/// Outside a Tokio runtime there is no task to load on: the caller loads in place.
#[test]
fn get_or_set_without_a_runtime_loads_in_place() {
    let cache = Cache::builder(MapBackend::new()).without_timeout().build();
    let v: u32 = cache_core::testkit::block_on_without_runtime(
        cache.get_or_set("k", || async { Ok::<_, Error>(3) }),
    )
    .unwrap();
    assert_eq!(v, 3);
    let again: Option<u32> = cache_core::testkit::block_on_without_runtime(cache.get("k")).unwrap();
    assert_eq!(again, Some(3));
}
