//! The command pipeline: timeouts and plugin hooks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::testkit::Harness;
use crate::{Command, CommandInfo, ErrorKind, Outcome, Plugin};

/// Sleeps in `before` for `get` calls, to make commands slow on any backend.
#[derive(Debug)]
struct SlowGets(Duration);

#[async_trait]
impl Plugin for SlowGets {
    async fn before(&self, info: &CommandInfo<'_>) {
        if info.command == Command::Get {
            tokio::time::sleep(self.0).await;
        }
    }
}

/// A command past its deadline fails with `Timeout`, and the next call on the same cache
/// succeeds.
pub async fn timeout_fires_and_next_call_succeeds(h: Harness) {
    let cache = h
        .builder()
        .timeout(Duration::from_millis(50))
        .plugin(SlowGets(Duration::from_millis(300)))
        .build();
    cache.set("k", &1).await.unwrap();
    let err = cache.get::<i32>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_temporary());
    for _ in 0..20 {
        let err = cache
            .with_timeout(Duration::from_millis(1))
            .get::<i32>("k")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }
    cache.set("k", &2).await.unwrap();
    assert!(cache.exists("k").await.unwrap());
    assert_eq!(
        cache
            .with_timeout(Duration::from_secs(2))
            .get::<i32>("k")
            .await
            .unwrap(),
        Some(2)
    );
}

/// A zero or `None` timeout disables the deadline.
pub async fn zero_timeout_disables_deadline(h: Harness) {
    let cache = h
        .builder()
        .timeout(Duration::from_millis(20))
        .plugin(SlowGets(Duration::from_millis(100)))
        .build();
    // The write only sets up the reads; it must not depend on the machine's speed.
    cache
        .with_timeout(Duration::from_secs(5))
        .set("k", &1)
        .await
        .unwrap();
    assert_eq!(
        cache
            .with_timeout(Duration::ZERO)
            .get::<i32>("k")
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        cache.with_timeout(None).get::<i32>("k").await.unwrap(),
        Some(1)
    );
    let none = h
        .builder()
        .timeout(None)
        .plugin(SlowGets(Duration::from_millis(100)))
        .build();
    assert_eq!(none.get::<i32>("k").await.unwrap(), Some(1));
}

#[derive(Debug)]
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Plugin for Recorder {
    async fn before(&self, info: &CommandInfo<'_>) {
        self.log.lock().unwrap().push(format!(
            "{} before {} {:?}",
            self.name, info.command, info.keys
        ));
    }

    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        self.log.lock().unwrap().push(format!(
            "{} after {} hits={} misses={} error={:?}",
            self.name, info.command, outcome.hits, outcome.misses, outcome.error
        ));
    }
}

/// Plugins run before and after every command, in the order added, and see hits, misses and
/// errors; refused arguments run no hooks.
pub async fn plugins_run_in_order_with_outcome(h: Harness) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let cache = h
        .builder()
        .plugin(Recorder {
            name: "p1",
            log: log.clone(),
        })
        .plugin(Recorder {
            name: "p2",
            log: log.clone(),
        })
        .plugin(move |info: &CommandInfo<'_>, _: &Outcome| {
            assert!(info.namespace.is_some());
            seen2.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    cache.set("a", &1).await.unwrap();
    let _: Vec<Option<i32>> = cache.multi_get(["a", "b"]).await.unwrap();
    if h.capability().add {
        assert!(cache.add("a", &2).await.is_err());
    }
    assert!(cache.get::<i32>("").await.is_err(), "refused before hooks");
    let log = log.lock().unwrap().clone();
    let mut expected = vec![
        "p1 before set [\"a\"]".to_owned(),
        "p2 before set [\"a\"]".to_owned(),
        "p1 after set hits=0 misses=0 error=None".to_owned(),
        "p2 after set hits=0 misses=0 error=None".to_owned(),
        "p1 before multi_get [\"a\", \"b\"]".to_owned(),
        "p2 before multi_get [\"a\", \"b\"]".to_owned(),
        "p1 after multi_get hits=1 misses=1 error=None".to_owned(),
        "p2 after multi_get hits=1 misses=1 error=None".to_owned(),
    ];
    if h.capability().add {
        expected.extend([
            "p1 before add [\"a\"]".to_owned(),
            "p2 before add [\"a\"]".to_owned(),
            "p1 after add hits=0 misses=0 error=Some(AlreadyExists)".to_owned(),
            "p2 after add hits=0 misses=0 error=Some(AlreadyExists)".to_owned(),
        ]);
    }
    assert_eq!(log, expected);
    let calls = if h.capability().add { 3 } else { 2 };
    assert_eq!(seen.load(Ordering::Relaxed), calls);
}
