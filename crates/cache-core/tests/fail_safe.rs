//! Fail-safe read-through while the backend is down: the last known value, kept in process
//! by the `FailSafeLayer`, answers `get_or_set` through a failing loader for as long as its
//! fail-safe window lasts — also after fail-safe's own write-back of the stale value failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cache_core::layer::{Answer, Around, Next};
use cache_core::testkit::MapBackend;
use cache_core::{
    Cache, CallContext, Error, ErrorKind, Json, ReadThrough, ReadThroughEvent, Result,
};

/// Every call fails with a connection error while the backend is "down".
#[derive(Debug, Clone, Default)]
struct Outage(Arc<AtomicBool>);

impl Outage {
    fn set_down(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }
}

impl Around for Outage {
    async fn around<T: Answer>(&self, _ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        if self.0.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Connection, "the server is down"));
        }
        next.run().await
    }
}

const TTL: Duration = Duration::from_millis(40);
const THROTTLE: Duration = Duration::from_millis(10);

fn cache(outage: &Outage) -> Cache<Json> {
    Cache::builder(MapBackend::new())
        .layer(outage.clone())
        .ttl(TTL)
        .read_through(
            ReadThrough::new()
                .fail_safe(Duration::from_secs(60))
                .fail_safe_throttle(THROTTLE),
        )
        .build()
}

/// `get_or_set` of `v1`, once it is stored.
async fn warm(cache: &Cache<Json>) {
    let v: String = cache
        .get_or_set("k", || async { Ok::<_, Error>("v1".to_owned()) })
        .await
        .unwrap();
    assert_eq!(v, "v1");
    for _ in 0..100 {
        if cache.get::<String>("k").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("v1 was never stored");
}

async fn failing_load(cache: &Cache<Json>, loads: &Arc<AtomicU64>) -> Result<String> {
    let loads = loads.clone();
    cache
        .get_or_set("k", move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Err::<String, _>(Error::new(ErrorKind::Unexpected, "the database is down"))
        })
        .await
}

#[tokio::test]
async fn a_stale_value_is_served_through_repeated_failed_loads_while_the_backend_is_down() {
    let outage = Outage::default();
    let cache = cache(&outage);
    warm(&cache).await;
    tokio::time::sleep(TTL + Duration::from_millis(10)).await;
    outage.set_down(true);

    let loads = Arc::new(AtomicU64::new(0));
    for call in 0..20 {
        let answer = failing_load(&cache, &loads).await;
        assert_eq!(
            answer.as_deref().map_err(Error::kind),
            Ok("v1"),
            "call {call} during the outage"
        );
        // past the throttle: the next call tries the loader again, and its write-back of the
        // stale value fails again
        tokio::time::sleep(THROTTLE + Duration::from_millis(2)).await;
    }
    let stats = cache.read_through_stats();
    assert!(loads.load(Ordering::SeqCst) > 1, "the loader was retried");
    assert!(stats.get(ReadThroughEvent::FailSafeActivated) > 1);
    assert_eq!(stats.get(ReadThroughEvent::StaleServed), 20);
}

#[tokio::test]
async fn a_failed_write_of_another_value_forgets_the_kept_one() {
    let outage = Outage::default();
    let cache = cache(&outage);
    warm(&cache).await;
    tokio::time::sleep(TTL + Duration::from_millis(10)).await;
    outage.set_down(true);

    // the key now holds v1 or v2, nobody knows which: v1 is no longer the last known value
    let err = cache.set("k", &"v2".to_owned()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    let loads = Arc::new(AtomicU64::new(0));
    let err = failing_load(&cache, &loads).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader, "{err}");
}

/// A lease written over a kept value (a load in progress, here or in another process) keeps
/// that value as the key's last known answer: it is still served if the backend then fails.
#[tokio::test]
async fn a_lease_over_the_kept_value_keeps_it() {
    use cache_core::layer::{FailSafeLayer, Layer};
    use cache_core::{Backend, Command, OpSet, envelope};

    let outage = Outage::default();
    let inner: Arc<dyn Backend> = Arc::new(MapBackend::new());
    let stack = FailSafeLayer::new(10).layer(outage.clone().layer(inner));
    let ctx = CallContext::new(Command::Set);
    let now = envelope::now_ms();
    let times = envelope::Times::new(now, Some(Duration::from_secs(1)), Duration::from_secs(60));
    let v1 = envelope::encode_value(times, b"\"v1\"");
    stack
        .set(
            &ctx,
            "k",
            v1.clone(),
            OpSet::new(Some(Duration::from_secs(61))),
        )
        .await
        .unwrap();
    let lease = envelope::encode_lease(now, now + 5_000, [7; 16], &v1);
    let ctx = CallContext::new(Command::CompareAndSet);
    assert!(
        stack
            .compare_and_set(&ctx, "k", Some(v1.clone()), lease, OpSet::default())
            .await
            .unwrap()
    );
    outage.set_down(true);
    let ctx = CallContext::new(Command::Get);
    assert_eq!(stack.get(&ctx, "k").await.unwrap(), Some(v1));
}
