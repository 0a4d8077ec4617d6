//! The layer seam: order, context, and the shipped layers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cache_core::layer::{Answer, Around, ChaosLayer, Layer, Next, RetryLayer};
use cache_core::testkit::MapBackend;
use cache_core::{
    Backend, Cache, CallContext, Command, CommandInfo, Error, ErrorKind, Outcome, Plugin, Result,
};

type Log = Arc<Mutex<Vec<String>>>;

/// Logs each call on the way down and up.
#[derive(Debug, Clone)]
struct Tag(&'static str, Log);

impl Around for Tag {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        self.1
            .lock()
            .unwrap()
            .push(format!("{} {} down", self.0, ctx.command()));
        let answer = next.run().await;
        self.1
            .lock()
            .unwrap()
            .push(format!("{} {} up", self.0, ctx.command()));
        answer
    }
}

struct HookLog(Log);

#[async_trait]
impl Plugin for HookLog {
    async fn before(&self, info: &CommandInfo<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("before {}", info.command));
    }
    async fn after(&self, info: &CommandInfo<'_>, _: &Outcome) {
        self.0
            .lock()
            .unwrap()
            .push(format!("after {}", info.command));
    }
}

#[tokio::test]
async fn layers_wrap_in_order_the_last_added_outermost_inside_the_hooks() {
    let log: Log = Arc::default();
    let cache = Cache::builder(MapBackend::new())
        .layer(Tag("first", log.clone()))
        .plugin(HookLog(log.clone()))
        .layer(Tag("second", log.clone()))
        .build();
    cache.set("k", &1).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "before set",
            "second set down",
            "first set down",
            "first set up",
            "second set up",
            "after set",
        ]
    );
}

/// Records the context each call carries down to the backend.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Around for Capture {
    async fn around<T: Answer>(&self, ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        self.0.lock().unwrap().push(format!(
            "{} ns={:?} keys={:?} backend={} deadline={:?} raw={:?}",
            ctx.command(),
            ctx.namespace(),
            ctx.keys(),
            ctx.backend(),
            ctx.deadline().map(|d| d.budget()),
            ctx.raw_command(),
        ));
        next.run().await
    }
}

#[tokio::test]
async fn context_reaches_the_layers_with_user_keys_namespace_and_deadline() {
    let capture = Capture::default();
    let cache = Cache::builder(MapBackend::new())
        .namespace("users")
        .timeout(Duration::from_millis(700))
        .layer(capture.clone())
        .build();
    cache.set("42", &"Ada").await.unwrap();
    let _: Vec<Option<String>> = cache
        .with_namespace("admins")
        .with_timeout(None)
        .multi_get(["1", "2"])
        .await
        .unwrap();
    cache.raw("PING", cache_core::NO_ARGS).await.unwrap();
    let _: Option<String> = cache.without_timeout().get("7").await.unwrap();
    cache.clear().await.unwrap();
    cache
        .with_timeout(Duration::from_secs(3))
        .clear()
        .await
        .unwrap();
    assert_eq!(
        *capture.0.lock().unwrap(),
        [
            "set ns=Some(\"users\") keys=[\"42\"] backend=map deadline=Some(700ms) raw=None",
            "multi_get ns=Some(\"admins\") keys=[\"1\", \"2\"] backend=map deadline=None raw=None",
            "raw ns=None keys=[] backend=map deadline=Some(700ms) raw=Some(\"PING\")",
            "get ns=Some(\"users\") keys=[\"7\"] backend=map deadline=None raw=None",
            // a clear has no per-command deadline, only one given for the call
            "clear ns=Some(\"users\") keys=[] backend=map deadline=None raw=None",
            "clear ns=Some(\"users\") keys=[] backend=map deadline=Some(3s) raw=None",
        ]
    );
}

/// Fails the first `n` calls with a temporary error, then lets calls through.
#[derive(Debug, Clone)]
struct FailFirst {
    left: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
    kind: ErrorKind,
}

impl FailFirst {
    fn new(n: u32, kind: ErrorKind) -> Self {
        FailFirst {
            left: Arc::new(AtomicU32::new(n)),
            calls: Arc::default(),
            kind,
        }
    }
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Around for FailFirst {
    async fn around<T: Answer>(&self, _ctx: &CallContext<'_>, next: Next<'_, T>) -> Result<T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Error::new(self.kind, "injected"));
        }
        next.run().await
    }
}

fn retried(fail: &FailFirst, retry: RetryLayer) -> Cache {
    Cache::builder(MapBackend::new())
        .layer(fail.clone())
        .layer(retry.initial_backoff(Duration::from_millis(1)))
        .build()
}

#[tokio::test]
async fn retry_repeats_idempotent_commands_on_temporary_errors() {
    let fail = FailFirst::new(2, ErrorKind::Connection);
    let cache = retried(&fail, RetryLayer::new().max_attempts(3));
    cache.set("k", &1).await.unwrap();
    assert_eq!(fail.calls(), 3, "two failures, then success");
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));

    let fail = FailFirst::new(5, ErrorKind::Connection);
    let cache = retried(&fail, RetryLayer::new().max_attempts(3));
    let err = cache.get::<u32>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert_eq!(err.context_value("attempts"), Some("3"));
    assert_eq!(fail.calls(), 3, "bounded attempts");
}

#[tokio::test]
async fn retry_never_repeats_a_command_that_could_apply_twice() {
    for (what, command) in [
        ("add", Command::Add),
        ("increment", Command::Increment),
        ("compare_and_set", Command::CompareAndSet),
        ("raw SET", Command::Raw),
    ] {
        let fail = FailFirst::new(1, ErrorKind::Connection);
        let cache = retried(&fail, RetryLayer::new().max_attempts(5));
        let err = match command {
            Command::Add => cache.add("k", &1).await.unwrap_err(),
            Command::Increment => cache.increment("n", 1).await.unwrap_err(),
            Command::CompareAndSet => cache.compare_and_set("k", None, &1).await.unwrap_err(),
            _ => cache.raw("SET", ["k", "v"]).await.unwrap_err(),
        };
        assert_eq!(err.kind(), ErrorKind::Connection, "{what}");
        assert_eq!(fail.calls(), 1, "{what} ran once");
    }
    // A raw command known to be read-only is retried.
    let fail = FailFirst::new(1, ErrorKind::Connection);
    let cache = retried(&fail, RetryLayer::new());
    cache.raw("PING", cache_core::NO_ARGS).await.unwrap();
    assert_eq!(fail.calls(), 2);
}

#[tokio::test]
async fn retry_leaves_permanent_errors_alone() {
    let fail = FailFirst::new(1, ErrorKind::Backend);
    let cache = retried(&fail, RetryLayer::new());
    assert_eq!(
        cache.get::<u32>("k").await.unwrap_err().kind(),
        ErrorKind::Backend
    );
    assert_eq!(fail.calls(), 1);
}

#[tokio::test]
async fn retry_stays_within_the_callers_deadline() {
    let fail = FailFirst::new(u32::MAX, ErrorKind::Connection);
    let cache = Cache::builder(MapBackend::new())
        .layer(fail.clone())
        .layer(
            RetryLayer::new()
                .max_attempts(1000)
                .initial_backoff(Duration::from_millis(20))
                .max_backoff(Duration::from_millis(20))
                .seed(1),
        )
        .timeout(Duration::from_millis(200))
        .build();
    let began = std::time::Instant::now();
    let err = cache.get::<u32>("k").await.unwrap_err();
    let took = began.elapsed();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    // Without the deadline the retries would go on for 1000 × 20 ms.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(fail.calls() < 100, "{} attempts", fail.calls());
}

#[tokio::test]
async fn chaos_is_deterministic_for_a_seed() {
    async fn pattern(seed: u64) -> Vec<bool> {
        let chaos = ChaosLayer::new(seed).error_rate(0.5);
        let cache = Cache::builder(MapBackend::new()).layer(chaos).build();
        let mut out = Vec::new();
        for _ in 0..64 {
            out.push(cache.get::<u32>("k").await.is_err());
        }
        out
    }
    let a = pattern(7).await;
    assert_eq!(a, pattern(7).await, "same seed, same faults");
    assert_ne!(a, pattern(8).await, "another seed, other faults");
    let failed = a.iter().filter(|f| **f).count();
    assert!((16..=48).contains(&failed), "{failed} of 64 at rate 0.5");
}

#[tokio::test]
async fn chaos_hangs_end_at_the_deadline_and_change_nothing() {
    let chaos = ChaosLayer::new(1).hang_rate(1.0).only(&[Command::Set]);
    let cache = Cache::builder(MapBackend::new())
        .layer(chaos.clone())
        .timeout(Duration::from_millis(50))
        .build();
    let err = cache.set("k", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(chaos.injected_hangs(), 1);
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        None,
        "nothing written"
    );
}

#[tokio::test]
async fn chaos_latency_and_error_kind_apply() {
    let chaos = ChaosLayer::new(3)
        .latency(Duration::from_millis(30))
        .error_rate(1.0)
        .error_kind(ErrorKind::Backend);
    let cache = Cache::builder(MapBackend::new())
        .layer(chaos.clone())
        .build();
    let began = std::time::Instant::now();
    let err = cache.exists("k").await.unwrap_err();
    assert!(began.elapsed() >= Duration::from_millis(30));
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert_eq!(
        err.context_value("op"),
        Some("exists"),
        "error context on top"
    );
    assert_eq!((chaos.injected_delays(), chaos.injected_errors()), (1, 1));
}

#[tokio::test]
async fn retry_absorbs_chaos_below_it() {
    let chaos = ChaosLayer::new(11).error_rate(0.3);
    let cache = Cache::builder(MapBackend::new())
        .layer(chaos.clone())
        .layer(
            RetryLayer::new()
                .max_attempts(20)
                .initial_backoff(Duration::ZERO),
        )
        .build();
    for i in 0..100u32 {
        cache.set(&format!("k{i}"), &i).await.unwrap();
        assert_eq!(cache.get::<u32>(&format!("k{i}")).await.unwrap(), Some(i));
    }
    assert!(chaos.injected_errors() > 20, "{}", chaos.injected_errors());
}

#[test]
fn a_layer_is_a_backend_over_a_backend() {
    let stack: Arc<dyn Backend> = RetryLayer::new().layer(Arc::new(MapBackend::new()));
    assert_eq!(stack.name(), "map");
    assert_eq!(stack.capability(), MapBackend::new().capability());
}

/// Answers `multi_get` in reverse order: a layer that breaks the contract.
#[derive(Debug)]
struct Reversed {
    inner: Arc<dyn Backend>,
}

#[async_trait]
impl Backend for Reversed {
    cache_core::forward_backend!(inner: get_with_ttl, multi_get_with_ttl, name, capability, endpoint, get, set, add, multi_set, delete,
        multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<bytes::Bytes>>> {
        let mut values = self.inner.multi_get(ctx, keys).await?;
        values.reverse();
        Ok(values)
    }
}

#[tokio::test]
async fn the_suite_fails_a_layer_that_breaks_the_contract() {
    use cache_core::testkit::{Harness, cases};
    let broken = Reversed {
        inner: Arc::new(MapBackend::new()),
    };
    let outcome = tokio::spawn(cases::multi_get_keeps_order_length_and_misses(
        Harness::new(broken),
    ))
    .await;
    assert!(
        outcome.is_err_and(|e| e.is_panic()),
        "the conformance case must fail"
    );
    // The same case passes over an honest stack.
    let honest = RetryLayer::new().layer(Arc::new(MapBackend::new()));
    cases::multi_get_keeps_order_length_and_misses(Harness::new(honest)).await;
}

#[tokio::test]
async fn ttl_jitter_spreads_expiries_within_the_fraction() {
    use cache_core::KeyTtl;
    use cache_core::layer::TtlJitterLayer;
    let ttl = Duration::from_secs(1000);
    let cache = Cache::builder(MapBackend::new())
        .ttl(ttl)
        .layer(TtlJitterLayer::new(0.2).seed(5))
        .build();
    let mut lefts = Vec::new();
    for i in 0..50 {
        let k = format!("k{i}");
        cache.set(&k, &i).await.unwrap();
        let KeyTtl::Remaining(left) = cache.ttl(&k).await.unwrap() else {
            panic!("no ttl")
        };
        assert!(
            left <= ttl.mul_f64(1.2) + Duration::from_millis(1),
            "{left:?}"
        );
        assert!(left >= ttl - Duration::from_millis(50), "{left:?}");
        lefts.push(left.as_secs());
    }
    lefts.sort_unstable();
    lefts.dedup();
    assert!(lefts.len() > 20, "expiries spread: {lefts:?}");
    // Writes without a TTL stay without one.
    cache
        .with_ttl(cache_core::Ttl::Never)
        .set("forever", &1)
        .await
        .unwrap();
    assert_eq!(cache.ttl("forever").await.unwrap(), KeyTtl::NoExpiry);
}

#[tokio::test]
async fn fail_open_turns_temporary_read_failures_into_counted_misses() {
    use cache_core::layer::FailOpenLayer;
    let down = FailFirst::new(u32::MAX, ErrorKind::Connection);
    let fail_open = FailOpenLayer::new();
    let cache = Cache::builder(MapBackend::new())
        .layer(down.clone())
        .layer(fail_open.clone())
        .build();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    let many: Vec<Option<u32>> = cache.multi_get(["a", "b"]).await.unwrap();
    assert_eq!(many, [None, None]);
    assert!(!cache.exists("k").await.unwrap());
    assert_eq!(fail_open.misses_served(), 3);
    // get_or_set answers from its loader while the cache is down.
    let v: u32 = cache
        .get_or_set("k", || async { Ok::<_, Error>(5) })
        .await
        .unwrap();
    assert_eq!(v, 5);
    // Writes still fail, and so do errors that are not temporary.
    assert_eq!(
        cache.set("k", &1).await.unwrap_err().kind(),
        ErrorKind::Connection
    );
    let broken = FailFirst::new(u32::MAX, ErrorKind::Serialization);
    let cache = Cache::builder(MapBackend::new())
        .layer(broken)
        .layer(FailOpenLayer::new())
        .build();
    assert_eq!(
        cache.get::<u32>("k").await.unwrap_err().kind(),
        ErrorKind::Serialization
    );
}
