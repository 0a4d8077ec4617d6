//! Faults injected by a [`FaultProxy`] between each backend and its shared test server
//! (`CACHE_TEST_REDIS_URL`, `CACHE_TEST_MEMCACHED_URL`):
//!
//! - **timeout storm**: 5 ms of latency per chunk and 10 000 calls with a 1 ms timeout; every
//!   call succeeds or times out, then 1 000 plain calls all succeed, and the proxy carries no
//!   more connections than the pool may hold;
//! - **reply cut mid-value**: a 64 KiB value whose reply is cut after a few bytes is never
//!   returned truncated or wrong, and reads back intact afterwards;
//! - **stall**: a stalled connection gives `Timeout` to calls with a 50 ms timeout, and calls
//!   succeed once it flows again;
//! - **connection resets** under load: only connection and timeout errors, never a wrong
//!   value, and every call succeeds afterwards.
//!
//! Values carry their key and version ([`versioned`]); each scenario prints its figures as a
//! `FIGURE:` line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::{Cache, ErrorKind, Json};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::report::millis;
use stratacache_tests::versioned::{self, Verdict, Writer};
use stratacache_tests::{FaultProxy, Figures, Tally};
use tokio::task::JoinSet;

/// Waiting longer than this for a call means it hung (a failure, not a speed requirement).
const HANG: Duration = Duration::from_secs(30);
/// How long closed connections may take to be noticed by the proxy before they count as
/// leaked (a leak bound, not a speed requirement).
const SETTLE: Duration = Duration::from_secs(10);

/// Connections each backend may open: redis `pool_size`, memcached `pool_size`.
fn pool_size(kind: Kind) -> usize {
    match kind {
        Kind::Redis => 2,
        Kind::Memcached => 4,
    }
}

/// A proxy in front of `kind`'s shared server and a cache connected through it, in a fresh
/// namespace; `None` when the server is not configured (after the skip line).
async fn through_proxy(kind: Kind) -> Option<(FaultProxy, Cache<Json>)> {
    let url = kind.shared_url()?;
    let proxy = FaultProxy::start(&kind.address_of(&url))
        .await
        .expect("start the fault proxy");
    let backend =
        backends::connect(kind, &url, &proxy.address(), &Setup::pool(pool_size(kind))).await;
    let cache = Cache::builder(backend)
        .namespace(random_namespace())
        .build();
    Some((proxy, cache))
}

/// Runs `call` and panics if it does not finish within [`HANG`].
async fn no_hang<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG:?}"))
}

/// `n` set/get pairs (`2 n` calls) on fresh keys, each of which must succeed and read back
/// the value just written. Returns the calls made.
async fn all_succeed(cache: &Cache<Json>, tag: &str, n: u64) -> u64 {
    let mut writer = Writer::new();
    for i in 0..n {
        let key = format!("{tag}-{}", i % 16);
        let version = i + 1;
        writer.sending(&key, version);
        no_hang("set", cache.set(&key, &versioned::value(&key, version, 64)))
            .await
            .unwrap_or_else(|e| panic!("set {key} after the fault: {e:#}"));
        writer.acknowledged(&key, version);
        let read: Option<String> = no_hang("get", cache.get(&key))
            .await
            .unwrap_or_else(|e| panic!("get {key} after the fault: {e:#}"));
        assert_eq!(
            writer.read(&key, read.as_deref()),
            Verdict::Fresh(version),
            "{key} reads back what was just written"
        );
    }
    2 * n
}

/// The leak check: once closes have been noticed, the proxy carries at most the pool's
/// connections.
async fn assert_no_leak(kind: Kind, proxy: &FaultProxy) -> usize {
    let pool = pool_size(kind);
    let alive = proxy.settle_alive(pool, SETTLE).await;
    assert!(
        alive <= pool,
        "{alive} connections still open through the proxy, pool size {pool} ({:?})",
        proxy.stats()
    );
    alive
}

// ---------------------------------------------------------------------------------------
// b. timeout storm

const STORM_CALLS: u64 = 10_000;
const STORM_TASKS: u64 = 32;
const STORM_LATENCY: Duration = Duration::from_millis(5);
const STORM_TIMEOUT: Duration = Duration::from_millis(1);

async fn timeout_storm(kind: Kind) {
    let Some((proxy, cache)) = through_proxy(kind).await else {
        return;
    };
    proxy.set_latency(STORM_LATENCY);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for t in 0..STORM_TASKS {
        let (cache, next) = (cache.clone(), next.clone());
        tasks.spawn(async move {
            let quick = cache.with_timeout(STORM_TIMEOUT);
            let (mut ok, mut errors, mut wrong) = (0u64, Tally::new(), Vec::new());
            let mut durations = Vec::new();
            // versions this task sent, per key: a read may see any of them (a timed-out
            // write may still land), never another key's value or a damaged one
            let mut ceiling = [0u64; 4];
            // this task's calls: a set, then a get of the same key, over four keys
            for i in 0u64.. {
                // the global call number, also the version of a set
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= STORM_CALLS {
                    break;
                }
                let slot = ((i / 2) % 4) as usize;
                let key = format!("storm-{t}-{slot}");
                let started = Instant::now();
                let outcome = if i % 2 == 0 {
                    ceiling[slot] = n;
                    quick
                        .set(&key, &versioned::value(&key, n, 32))
                        .await
                        .map(|()| None)
                } else {
                    quick.get::<String>(&key).await
                };
                durations.push(started.elapsed());
                match outcome {
                    Ok(read) => {
                        ok += 1;
                        let verdict = versioned::judge(&key, read.as_deref(), 0, ceiling[slot]);
                        if verdict.is_wrong() {
                            wrong.push(format!("{key}: {verdict}"));
                        }
                    }
                    Err(e) => errors.add(e.kind()),
                }
            }
            (ok, errors, wrong, durations)
        });
    }
    let storm_started = Instant::now();
    let (mut ok, mut errors, mut wrong, mut durations) =
        (0u64, Tally::new(), Vec::new(), Vec::new());
    while let Some(done) = no_hang("the storm", tasks.join_next()).await {
        let (o, e, w, d) = done.expect("a storm task");
        ok += o;
        errors.merge(&e);
        wrong.extend(w);
        durations.extend(d);
    }
    let storm_time = storm_started.elapsed();
    durations.sort();
    let storm = proxy.stats();
    proxy.pass_through();

    assert!(wrong.is_empty(), "wrong answers in the storm: {wrong:?}");
    assert_eq!(ok + errors.total(), STORM_CALLS);
    assert!(
        errors.outside(&[ErrorKind::Timeout]).is_empty(),
        "the storm gave errors other than timeouts: {errors}"
    );
    assert!(
        errors.count(ErrorKind::Timeout) > 0,
        "1 ms timeouts under 5 ms latency time out"
    );

    let after = all_succeed(&cache, "after-storm", 500).await;
    let alive = assert_no_leak(kind, &proxy).await;
    Figures::new("timeout-storm", kind.name())
        .add("calls", STORM_CALLS)
        .add("ok", ok)
        .add("errors", &errors)
        .add("wrong", wrong.len())
        .add("storm_time", millis(storm_time))
        .add("call_p50", millis(durations[durations.len() / 2]))
        .add("call_max", millis(durations[durations.len() - 1]))
        .add("delayed_chunks", storm.delayed_chunks)
        .add("connections_opened", storm.opened)
        .add("calls_after", after)
        .add("failed_after", 0)
        .add("connections_alive_after", alive)
        .add("pool_size", pool_size(kind))
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_storm_redis() {
    timeout_storm(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_storm_memcached() {
    timeout_storm(Kind::Memcached).await;
}

// ---------------------------------------------------------------------------------------
// c. reply cut mid-value

const BIG: usize = 64 * 1024;

/// Per-call timeout of a `get` whose every reply is cut.
const CUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a failed `get` of a cut reply failed the allowed way.
fn allowed_cut_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Connection | ErrorKind::Backend | ErrorKind::Timeout
    )
}

/// Cuts the reply of a `get` of a 64 KiB value at several offsets, in two passes.
///
/// 1. Only the next reply is cut. The `get` must fail with a connection, backend or timeout
///    error, or — if the client re-sends the read on a new connection by itself, as fred does
///    for reads — return the whole, intact value. Never a truncated or another value.
/// 2. Every reply is cut until the proxy passes traffic again, so no attempt can succeed:
///    the `get` (with a 2 s timeout) must fail with one of those kinds.
///
/// After each cut, with the proxy passing traffic again, the value reads back intact.
async fn reply_cut(kind: Kind) {
    let Some((proxy, cache)) = through_proxy(kind).await else {
        return;
    };
    let key = "big";
    let big = versioned::value(key, 1, BIG);
    cache.set(key, &big).await.expect("store the big value");
    // the serialized value (JSON: quoted) is shorter than its reply, so every offset below
    // falls inside the reply: in the header, at a chunk boundary, in the value, at its end
    let encoded = big.len() as u64 + 2;
    let once = [0, 1, 7, 100, 16 * 1024, 40_000, encoded];
    let every = [1, 40_000, encoded];
    let (mut errors, mut retried, mut wrong) = (Tally::new(), 0u64, Vec::new());
    let passes = once
        .iter()
        .map(|&c| (c, 1))
        .chain(every.iter().map(|&c| (c, u64::MAX)));
    for (cut, connections) in passes {
        proxy.cut_replies(cut, connections);
        let got = no_hang(
            "a cut get",
            cache.with_timeout(CUT_TIMEOUT).get::<String>(key),
        )
        .await;
        if connections == 1 {
            assert!(!proxy.cut_pending(), "the get's reply went through the cut");
        }
        match got {
            Err(e) => {
                assert!(
                    allowed_cut_error(e.kind()),
                    "cut at {cut}: unexpected error kind {:?}: {e}",
                    e.kind()
                );
                errors.add(e.kind());
            }
            Ok(Some(v)) if v == big && connections == 1 => retried += 1,
            Ok(other) => {
                let verdict = versioned::judge(key, other.as_deref(), 1, 1);
                wrong.push(format!("cut at {cut} of {connections} replies: {verdict}"));
            }
        }
        proxy.pass_through();
        let again: Option<String> = no_hang("a get after the cut", cache.get(key))
            .await
            .unwrap_or_else(|e| panic!("cut at {cut}: the next get failed: {e:#}"));
        assert!(
            again.as_deref() == Some(big.as_str()),
            "cut at {cut}: the value does not read back intact ({})",
            versioned::judge(key, again.as_deref(), 1, 1)
        );
    }
    assert!(
        wrong.is_empty(),
        "cut replies gave wrong answers: {wrong:?}"
    );
    let calls_after = all_succeed(&cache, "after-cut", 50).await;
    let alive = assert_no_leak(kind, &proxy).await;
    Figures::new("reply-cut", kind.name())
        .add("value_bytes", big.len())
        .add("gets_cut", once.len() + every.len())
        .add("replies_cut", proxy.stats().cuts)
        .add("errors", &errors)
        .add("retried_intact", retried)
        .add("wrong", wrong.len())
        .add("reads_back_intact", once.len() + every.len())
        .add("calls_after", calls_after)
        .add("connections_opened", proxy.stats().opened)
        .add("connections_alive_after", alive)
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_cut_redis() {
    reply_cut(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_cut_memcached() {
    reply_cut(Kind::Memcached).await;
}

// ---------------------------------------------------------------------------------------
// d. stall

const STALL_TIMEOUT: Duration = Duration::from_millis(50);

async fn stall(kind: Kind) {
    let Some((proxy, cache)) = through_proxy(kind).await else {
        return;
    };
    let key = "stalled";
    cache
        .set(key, &versioned::value(key, 1, 16))
        .await
        .expect("store before the stall");
    proxy.stall();
    let quick = cache.with_timeout(STALL_TIMEOUT);
    let mut slowest = Duration::ZERO;
    let mut errors = Tally::new();
    let mut calls = 0u64;
    // one by one, then 16 at once
    for i in 0..10u64 {
        let started = Instant::now();
        let r = if i % 2 == 0 {
            no_hang("a stalled get", quick.get::<String>(key))
                .await
                .map(|_| ())
        } else {
            no_hang(
                "a stalled set",
                quick.set(key, &versioned::value(key, 2, 16)),
            )
            .await
        };
        slowest = slowest.max(started.elapsed());
        calls += 1;
        let e = r.expect_err("nothing passes a stalled proxy");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        errors.add(e.kind());
    }
    let mut tasks = JoinSet::new();
    for _ in 0..16 {
        let cache = cache.clone();
        tasks.spawn(async move {
            let started = Instant::now();
            let r = cache.with_timeout(STALL_TIMEOUT).get::<String>(key).await;
            (started.elapsed(), r.map(|_| ()))
        });
    }
    while let Some(done) = no_hang("stalled gets", tasks.join_next()).await {
        let (elapsed, r) = done.expect("a stalled get");
        slowest = slowest.max(elapsed);
        calls += 1;
        let e = r.expect_err("nothing passes a stalled proxy");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        errors.add(e.kind());
    }
    let held = proxy.stats().stalled_chunks;
    assert!(held > 0, "the proxy held the calls' requests");

    proxy.pass_through();
    let started = Instant::now();
    let read: Option<String> = no_hang("the first get after the stall", cache.get(key))
        .await
        .expect("the first call after the stall succeeds");
    let first_after = started.elapsed();
    let verdict = versioned::judge(key, read.as_deref(), 1, 2);
    assert!(matches!(verdict, Verdict::Fresh(_)), "{verdict}");
    let calls_after = 1 + all_succeed(&cache, "after-stall", 100).await;
    let alive = assert_no_leak(kind, &proxy).await;
    Figures::new("stall", kind.name())
        .add("calls", calls)
        .add("errors", &errors)
        .add("timeout", millis(STALL_TIMEOUT))
        .add("slowest_timeout", millis(slowest))
        .add("held_chunks", held)
        .add("first_call_after", millis(first_after))
        .add("calls_after", calls_after)
        .add("failed_after", 0)
        .add("connections_alive_after", alive)
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_redis() {
    stall(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_memcached() {
    stall(Kind::Memcached).await;
}

// ---------------------------------------------------------------------------------------
// e. connection resets under load

const RESET_TASKS: usize = 16;
const RESETS: usize = 3;

/// 16 tasks write and read their own keys (the freshness rule of [`versioned`]) while every
/// connection through the proxy is reset three times. Errors may only be connection or
/// timeout errors; no read may be wrong; afterwards every call succeeds.
async fn resets(kind: Kind) {
    let Some((proxy, cache)) = through_proxy(kind).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for t in 0..RESET_TASKS {
        let (cache, stop) = (cache.clone(), stop.clone());
        tasks.spawn(async move {
            let mut writer = Writer::new();
            let (mut calls, mut errors, mut wrong) = (0u64, Tally::new(), Vec::new());
            let mut version = 0u64;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                let key = format!("reset-{t}-{}", version % 4);
                writer.sending(&key, version);
                calls += 2;
                let before = errors.total();
                match cache.set(&key, &versioned::value(&key, version, 128)).await {
                    Ok(()) => writer.acknowledged(&key, version),
                    Err(e) => errors.add(e.kind()),
                }
                match cache.get::<String>(&key).await {
                    Ok(read) => {
                        let verdict = writer.read(&key, read.as_deref());
                        if verdict.is_wrong() {
                            wrong.push(format!("{key}: {verdict}"));
                        }
                    }
                    Err(e) => errors.add(e.kind()),
                }
                if errors.total() > before {
                    // do not spin on a connection being replaced
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            (calls, errors, wrong)
        });
    }
    let mut reset_connections = 0;
    for _ in 0..RESETS {
        tokio::time::sleep(Duration::from_millis(200)).await;
        reset_connections += proxy.reset_all();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut errors, mut wrong) = (0u64, Tally::new(), Vec::new());
    while let Some(done) = no_hang("the reset load", tasks.join_next()).await {
        let (c, e, w) = done.expect("a load task");
        calls += c;
        errors.merge(&e);
        wrong.extend(w);
    }
    assert!(wrong.is_empty(), "wrong answers around resets: {wrong:?}");
    assert!(
        errors
            .outside(&[ErrorKind::Connection, ErrorKind::Timeout])
            .is_empty(),
        "resets gave errors other than connection and timeout errors: {errors}"
    );
    let calls_after = all_succeed(&cache, "after-reset", 100).await;
    let alive = assert_no_leak(kind, &proxy).await;
    Figures::new("reset", kind.name())
        .add("calls", calls)
        .add("resets", RESETS)
        .add("connections_reset", reset_connections)
        .add("errors", &errors)
        .add("wrong", wrong.len())
        .add("calls_after", calls_after)
        .add("failed_after", 0)
        .add("connections_opened", proxy.stats().opened)
        .add("connections_alive_after", alive)
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_redis() {
    resets(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_memcached() {
    resets(Kind::Memcached).await;
}

// ---------------------------------------------------------------------------------------
// f. writes that never left the client

const UNSENT_TRIALS: usize = 20;
const UNSENT_WRITES: usize = 200;

/// Every connection through the proxy is reset, and at once 200 writes are issued
/// concurrently, twenty times over. A write may fail only if it had gone out on the broken
/// connection (the server may have applied it: it is not re-sent); a write the client had not
/// sent yet when the connection broke waits for the new connection and succeeds. The client's
/// own "could not route" refusal of a write that never left it must not reach the caller.
async fn unsent_writes_wait(kind: Kind) {
    let Some((proxy, cache)) = through_proxy(kind).await else {
        return;
    };
    let (mut ok, mut errors, mut unsent) = (0u64, Tally::new(), Vec::new());
    for trial in 0..UNSENT_TRIALS {
        proxy.reset_all();
        let mut tasks = JoinSet::new();
        for i in 0..UNSENT_WRITES {
            let cache = cache.clone();
            tasks.spawn(async move {
                let key = format!("unsent-{trial}-{i}");
                cache
                    .with_timeout(Duration::from_secs(10))
                    .set(&key, &versioned::value(&key, 1, 32))
                    .await
            });
        }
        while let Some(done) = no_hang("writes after a reset", tasks.join_next()).await {
            match done.expect("a write task") {
                Ok(()) => ok += 1,
                Err(e) => {
                    let chain = format!("{e:#}");
                    if chain.contains("route") {
                        unsent.push(chain);
                    }
                    errors.add(e.kind());
                }
            }
        }
    }
    assert!(
        unsent.is_empty(),
        "{} writes that never left the client failed instead of waiting for the new \
         connection, e.g. {:?}",
        unsent.len(),
        unsent.first()
    );
    assert!(
        errors
            .outside(&[ErrorKind::Connection, ErrorKind::Timeout])
            .is_empty(),
        "resets gave errors other than connection and timeout errors: {errors}"
    );
    let calls_after = all_succeed(&cache, "after-unsent", 50).await;
    Figures::new("unsent-writes", kind.name())
        .add("trials", UNSENT_TRIALS)
        .add("writes", UNSENT_TRIALS * UNSENT_WRITES)
        .add("ok", ok)
        .add("errors", &errors)
        .add("calls_after", calls_after)
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_writes_wait_for_the_new_connection_redis() {
    unsent_writes_wait(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_writes_wait_for_the_new_connection_memcached() {
    unsent_writes_wait(Kind::Memcached).await;
}
