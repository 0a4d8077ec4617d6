//! The `get_or_set` family with [`ReadThrough`] options: the envelope, loader-chosen TTLs,
//! optional loaders and negative entries, fail-safe, soft and hard timeouts, eager refresh,
//! leases between separately built caches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{User, user};
use crate::testkit::Harness;
use crate::{
    ErrorKind, EventInfo, HitMissRatioPlugin, KeyTtl, Loaded, Plugin, RawBytes, ReadThrough,
    ReadThroughEvent,
};

/// A loader counting its runs.
fn counted<T: Send + 'static>(
    runs: &Arc<AtomicU64>,
    pause: Duration,
    answer: std::result::Result<T, &'static str>,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn Future<Output = std::result::Result<T, std::io::Error>> + Send>,
> + Send
+ 'static {
    let runs = runs.clone();
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(pause).await;
            answer.map_err(std::io::Error::other)
        })
    }
}

/// With the envelope on, values written without it (by a plain `set`, or by a cache
/// without the envelope) still read, through `get` and `get_or_set` alike; and entries the
/// read-through writes in the envelope read back through `get`, `multi_get` and
/// `get_or_set_many`.
pub async fn read_through_reads_values_written_without_the_envelope(h: Harness) {
    let plain = h.cache();
    let enveloped = h
        .builder()
        .read_through(ReadThrough::new().envelope(true))
        .build();
    plain.set("old", &user(1)).await.unwrap();
    assert_eq!(enveloped.get::<User>("old").await.unwrap(), Some(user(1)));
    let runs = Arc::new(AtomicU64::new(0));
    let got: User = enveloped
        .get_or_set("old", counted(&runs, Duration::ZERO, Ok(user(9))))
        .await
        .unwrap();
    assert_eq!((got, runs.load(Ordering::SeqCst)), (user(1), 0));

    let got: User = enveloped
        .get_or_set("new", counted(&runs, Duration::ZERO, Ok(user(2))))
        .await
        .unwrap();
    assert_eq!(got, user(2));
    let stored: Option<Vec<u8>> = plain.with_serializer(RawBytes).get("new").await.unwrap();
    assert_eq!(
        stored.as_deref().map(|b| &b[..3]),
        Some(&crate::envelope::MAGIC[..]),
        "the read-through wrote the envelope"
    );
    assert_eq!(enveloped.get::<User>("new").await.unwrap(), Some(user(2)));
    let many: Vec<Option<User>> = enveloped.multi_get(["new", "old", "none"]).await.unwrap();
    assert_eq!(many, [Some(user(2)), Some(user(1)), None]);
    let batch = enveloped
        .get_or_set_many(["new", "batch"], |missing: Vec<String>| async move {
            assert_eq!(missing, ["batch"]);
            Ok::<_, std::io::Error>(vec![("batch".to_string(), user(3))])
        })
        .await
        .unwrap();
    assert_eq!(batch, [Some(user(2)), Some(user(3))]);
    assert_eq!(enveloped.get::<User>("batch").await.unwrap(), Some(user(3)));
}

/// Bytes that start like an envelope but are not one this build reads are a
/// `Serialization` error naming the key, from `get` and `get_or_set` alike — never a panic,
/// never a silent miss.
pub async fn unreadable_envelope_is_a_serialization_error_naming_the_key(h: Harness) {
    let raw = h.builder().serializer(RawBytes).build();
    let mut future_version = crate::envelope::MAGIC.to_vec();
    future_version.extend_from_slice(&[9; 40]);
    raw.set("bad", &future_version).await.unwrap();
    raw.set("cut", &crate::envelope::MAGIC.to_vec())
        .await
        .unwrap();
    let cache = h
        .builder()
        .read_through(ReadThrough::new().envelope(true))
        .build();
    for key in ["bad", "cut"] {
        let err = cache.get::<User>(key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        assert!(
            format!("{err:#}").contains(key),
            "the error names the key: {err:#}"
        );
        let runs = Arc::new(AtomicU64::new(0));
        let err = cache
            .get_or_set::<User>(key, counted(&runs, Duration::ZERO, Ok(user(1))))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        assert_eq!(runs.load(Ordering::SeqCst), 0, "nothing loaded over it");
    }
}

/// A loader chooses the TTL of its entry; `get_or_insert_with` takes an infallible loader.
pub async fn get_or_load_stores_under_the_loaders_ttl(h: Harness) {
    let cache = h.cache();
    let got: Option<u32> = cache
        .get_or_load("chosen", || async {
            Ok::<_, std::io::Error>(Loaded::value(5).with_ttl(Duration::from_secs(60)))
        })
        .await
        .unwrap();
    assert_eq!(got, Some(5));
    match cache.ttl("chosen").await.unwrap() {
        KeyTtl::Remaining(left) => {
            assert!(
                left <= Duration::from_secs(60) && left > Duration::from_secs(50),
                "{left:?}"
            )
        }
        other => panic!("the loader's TTL was not applied: {other:?}"),
    }
    let n: u64 = cache
        .get_or_insert_with("infallible", || async { 42 })
        .await
        .unwrap();
    assert_eq!(n, 42);
    assert_eq!(cache.get::<u64>("infallible").await.unwrap(), Some(42));
}

/// An optional loader's `None` is not cached — unless a negative TTL is set, when the next
/// calls answer `None` without loading until it expires. A `get_or_set` (which needs a
/// value) loads over a negative entry.
pub async fn optional_loaders_cache_nothing_or_a_negative_entry(h: Harness) {
    let runs = Arc::new(AtomicU64::new(0));
    let plain = h.cache();
    for _ in 0..2 {
        let got: Option<u32> = plain
            .get_or_set_optional("absent", counted(&runs, Duration::ZERO, Ok(None)))
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(
        runs.swap(0, Ordering::SeqCst),
        2,
        "None is not cached by default"
    );

    let ttl = h.short_ttl();
    let negative = h
        .builder()
        .read_through(ReadThrough::new().negative_ttl(ttl))
        .build();
    for _ in 0..3 {
        let got: Option<u32> = negative
            .get_or_set_optional("neg", counted(&runs, Duration::ZERO, Ok(None)))
            .await
            .unwrap();
        assert_eq!(got, None);
    }
    assert_eq!(
        runs.swap(0, Ordering::SeqCst),
        1,
        "the negative entry answered"
    );
    assert_eq!(negative.get::<u32>("neg").await.unwrap(), None);
    let v: u32 = negative
        .get_or_set("neg", counted(&runs, Duration::ZERO, Ok(8)))
        .await
        .unwrap();
    assert_eq!((v, runs.swap(0, Ordering::SeqCst)), (8, 1));
    h.sleep_past(ttl).await;
    let _: Option<u32> = negative
        .get_or_set_optional("neg2", counted(&runs, Duration::ZERO, Ok(None)))
        .await
        .unwrap();
    h.sleep_past(ttl).await;
    let got: Option<u32> = negative
        .get_or_set_optional("neg2", counted(&runs, Duration::ZERO, Ok(Some(3))))
        .await
        .unwrap();
    assert_eq!(got, Some(3), "an expired negative entry is loaded again");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// Fail-safe: past its TTL a value is a miss for `get`, but when the loader fails
/// `get_or_set` serves it; the failing loader is then not run again for the throttle.
/// Without fail-safe the failure is an error.
pub async fn fail_safe_serves_the_stale_value_when_the_loader_fails(h: Harness) {
    let ttl = Duration::from_millis(200);
    let cache = h
        .builder()
        .ttl(ttl)
        .read_through(
            ReadThrough::new()
                .fail_safe(Duration::from_secs(60))
                .fail_safe_throttle(Duration::from_secs(30)),
        )
        .build();
    let runs = Arc::new(AtomicU64::new(0));
    let v: User = cache
        .get_or_set("k", counted(&runs, Duration::ZERO, Ok(user(1))))
        .await
        .unwrap();
    assert_eq!(v, user(1));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(cache.get::<User>("k").await.unwrap(), None, "past its TTL");
    for _ in 0..3 {
        let v: User = cache
            .get_or_set("k", counted(&runs, Duration::ZERO, Err("db down")))
            .await
            .unwrap();
        assert_eq!(v, user(1), "the stale value is served");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one failing load, then throttled"
    );
    let stats = cache.read_through_stats();
    assert_eq!(stats.get(ReadThroughEvent::FailSafeActivated), 1);
    // The first call served the stale value; the next ones are served the throttled value,
    // stale from this process's throttle until the write-back lands, then as a plain hit.
    let stale = stats.get(ReadThroughEvent::StaleServed);
    assert!((1..=3).contains(&stale), "{stale} stale values served");
    // Other processes see the throttle through the backend: the value is fresh again once
    // the write-back (which the failed call does not wait for) has landed.
    let other = h
        .builder()
        .read_through(ReadThrough::new().fail_safe(Duration::from_secs(60)))
        .build();
    let deadline = Instant::now() + Duration::from_secs(2);
    while other.get::<User>("k").await.unwrap().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(other.get::<User>("k").await.unwrap(), Some(user(1)));

    let strict = h.builder().ttl(ttl).build();
    let _: User = strict
        .get_or_set("s", counted(&runs, Duration::ZERO, Ok(user(2))))
        .await
        .unwrap();
    h.sleep_past(h.short_ttl().max(ttl)).await;
    let err = strict
        .get_or_set::<User>("s", counted(&runs, Duration::ZERO, Err("db down")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader);
}

/// Past the hard timeout the loader is abandoned: `Timeout` without a stale value, the stale
/// value with fail-safe. Past the soft timeout a caller with a stale value gets it, and the
/// load lands later.
pub async fn soft_and_hard_timeouts_bound_the_loader(h: Harness) {
    let runs = Arc::new(AtomicU64::new(0));
    let hard = h
        .builder()
        .read_through(ReadThrough::new().hard_timeout(Duration::from_millis(100)))
        .build();
    let started = Instant::now();
    let err = hard
        .get_or_set::<u32>("slow", counted(&runs, Duration::from_secs(30), Ok(1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hard timeout ended the wait"
    );
    assert_eq!(
        hard.read_through_stats().get(ReadThroughEvent::HardTimeout),
        1
    );
    assert_eq!(
        hard.get::<u32>("slow").await.unwrap(),
        None,
        "nothing stored"
    );

    let ttl = Duration::from_millis(200);
    let soft = h
        .builder()
        .ttl(ttl)
        .read_through(
            ReadThrough::new()
                .fail_safe(Duration::from_secs(60))
                .soft_timeout(Duration::from_millis(50))
                .hard_timeout(Duration::from_secs(5)),
        )
        .build();
    let _: u32 = soft
        .get_or_set("k", counted(&runs, Duration::ZERO, Ok(1)))
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let started = Instant::now();
    let v: u32 = soft
        .with_ttl(Duration::from_secs(60))
        .get_or_set("k", counted(&runs, Duration::from_millis(600), Ok(2)))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(v, 1, "the stale value at the soft timeout");
    assert!(
        waited < Duration::from_millis(500),
        "answered at the soft timeout, took {waited:?}"
    );
    assert_eq!(
        soft.read_through_stats().get(ReadThroughEvent::SoftTimeout),
        1
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        soft.get::<u32>("k").await.unwrap(),
        Some(2),
        "the load landed"
    );

    let fail_safe_hard = h
        .builder()
        .ttl(ttl)
        .read_through(
            ReadThrough::new()
                .fail_safe(Duration::from_secs(60))
                .hard_timeout(Duration::from_millis(100)),
        )
        .build();
    let _: u32 = fail_safe_hard
        .get_or_set("h", counted(&runs, Duration::ZERO, Ok(1)))
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let v: u32 = fail_safe_hard
        .get_or_set("h", counted(&runs, Duration::from_secs(30), Ok(2)))
        .await
        .unwrap();
    assert_eq!(v, 1, "past the hard timeout, the stale value");
}

/// Eager refresh: a key read continuously across several TTLs never misses; the refreshes
/// run in the background.
pub async fn eager_refresh_keeps_a_hot_key_from_missing(h: Harness) {
    // A whole-second clock may drop an entry up to a second before its TTL: give it room.
    let ttl = if h.capability().ttl_millis {
        Duration::from_millis(600)
    } else {
        Duration::from_secs(3)
    };
    let ratio = Arc::new(HitMissRatioPlugin::new());
    let cache = h
        .builder()
        .ttl(ttl)
        .shared_plugin(ratio.clone())
        .read_through(ReadThrough::new().eager_refresh(0.5))
        .build();
    let runs = Arc::new(AtomicU64::new(0));
    let _: u64 = cache
        .get_or_set("hot", counted(&runs, Duration::ZERO, Ok(0)))
        .await
        .unwrap();
    let misses_after_warm_up = ratio.misses();
    let until = Instant::now() + ttl * 3;
    let mut reads = 0;
    while Instant::now() < until {
        let _: u64 = cache
            .get_or_set("hot", counted(&runs, Duration::from_millis(5), Ok(1)))
            .await
            .unwrap();
        reads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reads > 50, "{reads} reads");
    assert_eq!(
        ratio.misses(),
        misses_after_warm_up,
        "the hot key never missed"
    );
    assert_eq!(
        cache
            .read_through_stats()
            .get(ReadThroughEvent::LoadStarted),
        1,
        "no caller found the key stale: only the first call loaded"
    );
    assert!(
        runs.load(Ordering::SeqCst) >= 3,
        "refreshed in the background"
    );
    assert!(
        cache
            .read_through_stats()
            .get(ReadThroughEvent::RefreshStarted)
            >= 2
    );
}

/// Two separately built caches (as two processes would) with leases: 2 × 50 concurrent
/// callers of one cold key run the loader once between them.
pub async fn lease_lets_one_of_two_caches_load(h: Harness) {
    if !h.capability().compare_and_set {
        return;
    }
    let options = ReadThrough::new().lease(Duration::from_secs(5));
    let caches = [
        h.builder().read_through(options.clone()).build(),
        h.builder().read_through(options).build(),
    ];
    let runs = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let cache = caches[i % 2].clone();
            let load = counted(&runs, Duration::from_millis(200), Ok(user(4)));
            tokio::spawn(async move { cache.get_or_set::<User>("cold", load).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), user(4));
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one load between both caches"
    );
    let waited: u64 = caches
        .iter()
        .map(|c| c.read_through_stats().get(ReadThroughEvent::LeaseWaited))
        .sum();
    assert!(waited >= 1, "one cache waited for the other's lease");
    assert_eq!(caches[0].get::<User>("cold").await.unwrap(), Some(user(4)));
}

/// Read-through decisions reach plugins' `on_event` with the key, as they are counted.
pub async fn read_through_events_reach_plugins(h: Harness) {
    #[derive(Default)]
    struct Events(Mutex<Vec<(ReadThroughEvent, String)>>);
    impl Plugin for Events {
        fn on_event(&self, info: &EventInfo<'_>) {
            self.0
                .lock()
                .unwrap()
                .push((info.event, info.key.to_owned()));
        }
    }
    let events = Arc::new(Events::default());
    let cache = h
        .builder()
        .shared_plugin(events.clone())
        .read_through(ReadThrough::new().hard_timeout(Duration::from_millis(50)))
        .build();
    let runs = Arc::new(AtomicU64::new(0));
    let (a, b) = tokio::join!(
        cache.get_or_set::<u32>("e", counted(&runs, Duration::from_secs(30), Ok(1))),
        cache.get_or_set::<u32>("e", counted(&runs, Duration::from_secs(30), Ok(1))),
    );
    assert!(a.is_err() && b.is_err());
    let seen = events.0.lock().unwrap().clone();
    assert!(
        seen.contains(&(ReadThroughEvent::WaiterCoalesced, "e".to_string())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(ReadThroughEvent::HardTimeout, "e".to_string())),
        "{seen:?}"
    );
    let stats = cache.read_through_stats();
    assert_eq!(stats.get(ReadThroughEvent::WaiterCoalesced), 1);
    assert_eq!(stats.get(ReadThroughEvent::HardTimeout), 1);
}

/// With a negative TTL, keys a batch loader did not return are cached as negative entries:
/// the next batch answers `None` for them without loading.
pub async fn get_or_set_many_caches_keys_not_found_as_negative_entries(h: Harness) {
    let cache = h
        .builder()
        .read_through(ReadThrough::new().negative_ttl(Duration::from_secs(60)))
        .build();
    let calls: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    for _ in 0..2 {
        let log = calls.clone();
        let got = cache
            .get_or_set_many(["found", "gone"], move |missing: Vec<String>| {
                log.lock().unwrap().push(missing.clone());
                async move {
                    Ok::<_, std::io::Error>(
                        missing
                            .into_iter()
                            .filter(|k| k == "found")
                            .map(|k| (k, user(5)))
                            .collect::<Vec<_>>(),
                    )
                }
            })
            .await
            .unwrap();
        assert_eq!(got, [Some(user(5)), None]);
    }
    assert_eq!(
        *calls.lock().unwrap(),
        [vec!["found".to_string(), "gone".to_string()]],
        "the second batch loaded nothing"
    );
    assert_eq!(cache.get::<User>("gone").await.unwrap(), None);
}
