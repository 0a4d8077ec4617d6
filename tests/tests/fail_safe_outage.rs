//! A cache with fail-safe read-through through an outage of its server: a private
//! `redis-server` and a private `memcached` (never the shared servers) killed with SIGKILL
//! while 16 tasks call `get_or_set` on one key, then restarted.
//!
//! The cache: TTL 300 ms, a 500 ms deadline per call, `ReadThrough::new()
//! .fail_safe(3 s).fail_safe_throttle(200 ms)`. A key is warmed with `get_or_set` (value v1),
//! then the server is killed.
//!
//! # What is checked
//!
//! - **Database down too** (the loader fails): every call that starts before the end of the
//!   value's fail-safe window (its write + TTL + max staleness) less a margin succeeds and
//!   answers v1 — no error at all, whether the backend refuses connections (Memcached) or
//!   hangs until the deadline (Redis, whose commands wait for the reconnect). Every call that
//!   starts after the window plus a margin fails, with a `Loader`, `Timeout` or `Connection`
//!   error. The margin before the end covers one call's length (the deadline, then the
//!   loader); calls inside the margins may go either way. The loader is tried again once per
//!   throttle and fails each time. The read-through counts `StaleServed`,
//!   `FailSafeActivated` and `ReadFailed`.
//! - **Database up** (the loader succeeds): every call during the outage succeeds with the
//!   loader's value; no stale value is served.
//! - **Recovery**: after the restart, within 3 s, `get_or_set` runs a loader that returns v2,
//!   answers v2, and a plain `get` reads v2 back from the server.
//!
//! Each scenario prints a `FIGURE:` line: calls, successes, the share of successful calls
//! while within the fail-safe window, errors by kind, loader runs, the recovery time and the
//! read-through counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::{Cache, ErrorKind, Json, ReadThrough, ReadThroughEvent, ReadThroughStats};
use cache_test_fixtures::Server;
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::report::millis;
use stratacache_tests::{Figures, Tally};

/// Concurrent callers during the outage.
const TASKS: usize = 16;
/// Freshness of the entries.
const TTL: Duration = Duration::from_millis(300);
/// How long past its TTL a value may be served when the loader or the backend fails.
const MAX_STALE: Duration = Duration::from_secs(3);
/// After a failed load, how long the stale value is served before the loader runs again.
const THROTTLE: Duration = Duration::from_millis(200);
/// Per-call deadline of the cache.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Calls that start this long before the end of the fail-safe window must still be served:
/// one call's length (a read up to the deadline, a failing loader) and scheduling slack.
const MARGIN_BEFORE: Duration = Duration::from_millis(800);
/// Calls that start this long after the end of the window must fail (clock slack).
const MARGIN_AFTER: Duration = Duration::from_millis(300);
/// Calls go on this long past the window and its margin, so that failing calls are seen.
const PAST_WINDOW: Duration = Duration::from_secs(1);
/// Length of the outage when the database is up.
const OUTAGE_DATABASE_UP: Duration = Duration::from_secs(2);
/// After the restart, `get_or_set` must load, answer and store a new value within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(3);
/// Pause of a task between calls, so that 16 tasks do not spin on instant answers.
const PAUSE: Duration = Duration::from_millis(5);

const KEY: &str = "product-7";
const V1: &str = "v1: the value before the outage";
const V2: &str = "v2: the value after the outage";
const FROM_DATABASE: &str = "db: loaded while the cache was down";

/// The database behind the loader during the outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    /// The loader fails.
    Down,
    /// The loader answers [`FROM_DATABASE`].
    Up,
}

/// One finished `get_or_set` during the outage.
#[derive(Debug, Clone)]
struct Call {
    /// Since the test began.
    started: Duration,
    ended: Duration,
    answer: Result<String, ErrorKind>,
}

/// The loader's error while the database is down.
#[derive(Debug)]
struct DatabaseDown;

impl std::fmt::Display for DatabaseDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database is down")
    }
}

impl std::error::Error for DatabaseDown {}

fn cache_over(backend: Arc<dyn cache_core::Backend>) -> Cache<Json> {
    Cache::builder(backend)
        .namespace(random_namespace())
        .ttl(TTL)
        .timeout(CALL_TIMEOUT)
        .read_through(
            ReadThrough::new()
                .fail_safe(MAX_STALE)
                .fail_safe_throttle(THROTTLE),
        )
        .build()
}

/// `TASKS` tasks calling `get_or_set(KEY)` until `stop`, with a loader as `database` says;
/// every loader run is counted in `loads`.
fn load(
    cache: &Cache<Json>,
    database: Database,
    clock: Instant,
    stop: &Arc<AtomicBool>,
    loads: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Vec<Call>>> {
    (0..TASKS)
        .map(|_| {
            let (cache, stop, loads) = (cache.clone(), stop.clone(), loads.clone());
            tokio::spawn(async move {
                let mut calls = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let loads = loads.clone();
                    let started = clock.elapsed();
                    let answer = cache
                        .get_or_set::<String>(KEY, move || async move {
                            loads.fetch_add(1, Ordering::Relaxed);
                            match database {
                                Database::Down => Err(DatabaseDown),
                                Database::Up => Ok(FROM_DATABASE.to_owned()),
                            }
                        })
                        .await
                        .map_err(|e| e.kind());
                    calls.push(Call {
                        started,
                        ended: clock.elapsed(),
                        answer,
                    });
                    tokio::time::sleep(PAUSE).await;
                }
                calls
            })
        })
        .collect()
}

/// After the restart: `get_or_set` with a loader of v2 until it answers v2 and a plain `get`
/// reads v2 back. Returns the time from the restart to that.
async fn recover(cache: &Cache<Json>, clock: Instant, restarted_at: Duration) -> Duration {
    // v2 is stored fresh for long enough to be read back after the call returned (the write
    // may land just after the answer)
    let long = cache.with_ttl(Duration::from_secs(60));
    let mut attempts = Vec::new();
    loop {
        let since = clock.elapsed() - restarted_at;
        assert!(
            since <= RECOVERY_BOUND,
            "no fresh value {RECOVERY_BOUND:?} after the restart; attempts: {attempts:?}"
        );
        let answer = long
            .get_or_set::<String>(KEY, || async { Ok::<_, DatabaseDown>(V2.to_owned()) })
            .await;
        match answer {
            Ok(v) if v == V2 => {
                // the value was loaded; it is stored once the write lands
                for _ in 0..20 {
                    if let Ok(Some(stored)) = cache.get::<String>(KEY).await {
                        assert_eq!(stored, V2, "the stored value after the restart");
                        return clock.elapsed() - restarted_at;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                attempts.push("v2 answered, not stored".to_owned());
            }
            Ok(other) => attempts.push(format!("answered {other:?}")),
            Err(e) => attempts.push(format!("{:?}", e.kind())),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pool_size(kind: Kind) -> usize {
    match kind {
        Kind::Redis => 1,
        Kind::Memcached => 4,
    }
}

async fn connect(kind: Kind, server: &Server) -> Cache<Json> {
    let url = kind.url_for(&server.address());
    let backend =
        backends::connect(kind, &url, &server.address(), &Setup::pool(pool_size(kind))).await;
    cache_over(backend)
}

/// Loads v1 through `get_or_set` and waits until it is stored (the write lands just after the
/// answer).
async fn warm(cache: &Cache<Json>) {
    let v = cache
        .get_or_set::<String>(KEY, || async { Ok::<_, DatabaseDown>(V1.to_owned()) })
        .await
        .expect("warm the key");
    assert_eq!(v, V1);
    for _ in 0..100 {
        if let Some(stored) = cache.get::<String>(KEY).await.expect("read the warmed key") {
            assert_eq!(stored, V1, "the warmed value");
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the warmed value was never stored");
}

fn stats_line(cache: &Cache<Json>) -> String {
    let stats = cache.read_through_stats();
    stats
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(e, n)| format!("{e}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What happened during one outage.
struct Outage {
    /// Every call made while the server was down.
    calls: Vec<Call>,
    /// Loader runs.
    loads: u64,
    /// The read-through counts at the end of the outage.
    stats: ReadThroughStats,
    /// Errors by kind.
    errors: Tally,
    killed_at: Duration,
    restarted_at: Duration,
    /// From the restart to the first fresh value.
    recovery: Duration,
}

/// Kills `server`, runs the callers until `until` (since `clock`), restarts the server and
/// waits for the cache to recover.
async fn outage(
    cache: &Cache<Json>,
    server: &mut Server,
    database: Database,
    clock: Instant,
    until: Duration,
) -> Outage {
    let killed_at = clock.elapsed();
    tokio::task::block_in_place(|| server.kill());
    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicU64::new(0));
    let tasks = load(cache, database, clock, &stop, &loads);
    tokio::time::sleep(until.saturating_sub(clock.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for task in tasks {
        calls.extend(task.await.expect("a caller task"));
    }
    let stats = cache.read_through_stats();

    tokio::task::block_in_place(|| server.restart());
    let restarted_at = clock.elapsed();
    let recovery = recover(cache, clock, restarted_at).await;

    let mut errors = Tally::new();
    for call in &calls {
        if let Err(kind) = call.answer {
            errors.add(kind);
        }
    }
    Outage {
        calls,
        loads: loads.load(Ordering::Relaxed),
        stats,
        errors,
        killed_at,
        restarted_at,
        recovery,
    }
}

impl Outage {
    /// The figures every scenario prints; each adds its own.
    fn figures(&self, name: &str, kind: Kind, cache: &Cache<Json>) -> Figures {
        Figures::new(name, kind.name())
            .add("tasks", TASKS)
            .add("calls", self.calls.len())
            .add("errors", &self.errors)
            .add("loader_runs", self.loads)
            .add("slowest_call", millis(slowest(&self.calls)))
            .add("outage", millis(self.restarted_at - self.killed_at))
            .add("recovery", millis(self.recovery))
            .add("events", stats_line(cache))
    }
}

/// Database down: the last value through the fail-safe window, then errors, then recovery.
async fn database_down(kind: Kind) {
    let Some(mut server) = backends::private_server(kind) else {
        return;
    };
    let cache = connect(kind, &server).await;
    let clock = Instant::now();

    let write_from = clock.elapsed();
    warm(&cache).await;
    let write_to = clock.elapsed();
    // the window ends between these two: the write's moment + TTL + max staleness
    let window = TTL + MAX_STALE;
    let served_until = write_from + window - MARGIN_BEFORE;
    let failing_from = write_to + window + MARGIN_AFTER;

    let outage = outage(
        &cache,
        &mut server,
        Database::Down,
        clock,
        failing_from + PAST_WINDOW,
    )
    .await;
    let Outage {
        calls,
        loads,
        stats: outage_stats,
        errors,
        ..
    } = &outage;

    let within: Vec<&Call> = calls.iter().filter(|c| c.started < served_until).collect();
    let past: Vec<&Call> = calls.iter().filter(|c| c.started > failing_from).collect();
    let within_ok = within
        .iter()
        .filter(|c| c.answer.as_deref() == Ok(V1))
        .count();
    let share = 100.0 * within_ok as f64 / within.len().max(1) as f64;
    outage
        .figures("fail-safe-outage-database-down", kind, &cache)
        .add("ok", calls.iter().filter(|c| c.answer.is_ok()).count())
        .add("calls_within_window", within.len())
        .add("ok_within_window", within_ok)
        .add("ok_share_within_window", format!("{share:.1}%"))
        .add("calls_past_window", past.len())
        .print();

    assert!(
        within.len() >= TASKS,
        "too few calls within the window to judge: {}",
        within.len()
    );
    let wrong: Vec<&&Call> = within
        .iter()
        .filter(|c| c.answer.as_deref() != Ok(V1))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} calls started within the fail-safe window did not answer v1 (window ends \
         between {:?} and {:?}), first: {:?}",
        wrong.len(),
        within.len(),
        write_from + window,
        write_to + window,
        wrong.first()
    );
    let answered_other: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(&c.answer, Ok(v) if v != V1))
        .collect();
    assert!(
        answered_other.is_empty(),
        "answers other than v1: {answered_other:?}"
    );
    assert!(
        past.len() >= TASKS,
        "too few calls past the window to judge: {}",
        past.len()
    );
    let served_past: Vec<&&Call> = past.iter().filter(|c| c.answer.is_ok()).collect();
    assert!(
        served_past.is_empty(),
        "{} calls started after the fail-safe window were answered, first: {:?}",
        served_past.len(),
        served_past.first()
    );
    assert!(
        errors
            .outside(&[ErrorKind::Loader, ErrorKind::Timeout, ErrorKind::Connection])
            .is_empty(),
        "errors other than loader, timeout and connection errors: {errors}"
    );
    assert!(*loads > 1, "the loader was tried again during the outage");
    for event in [
        ReadThroughEvent::StaleServed,
        ReadThroughEvent::FailSafeActivated,
        ReadThroughEvent::ReadFailed,
    ] {
        assert!(
            outage_stats.get(event) > 0,
            "no {event} during the outage: {}",
            stats_line(&cache)
        );
    }
}

/// Database up: the loader's value through the outage, then recovery.
async fn database_up(kind: Kind) {
    let Some(mut server) = backends::private_server(kind) else {
        return;
    };
    let cache = connect(kind, &server).await;
    let clock = Instant::now();
    warm(&cache).await;
    // past v1's TTL: every answer during the outage comes from the loader
    tokio::time::sleep(TTL + Duration::from_millis(50)).await;

    let until = clock.elapsed() + OUTAGE_DATABASE_UP;
    let outage = outage(&cache, &mut server, Database::Up, clock, until).await;
    let Outage {
        calls,
        stats: outage_stats,
        ..
    } = &outage;

    let ok = calls
        .iter()
        .filter(|c| c.answer.as_deref() == Ok(FROM_DATABASE))
        .count();
    let share = 100.0 * ok as f64 / calls.len().max(1) as f64;
    outage
        .figures("fail-safe-outage-database-up", kind, &cache)
        .add("ok", ok)
        .add("ok_share", format!("{share:.1}%"))
        .print();

    assert!(calls.len() >= TASKS, "too few calls: {}", calls.len());
    let wrong: Vec<&Call> = calls
        .iter()
        .filter(|c| c.answer.as_deref() != Ok(FROM_DATABASE))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} calls during the outage did not answer the loader's value, first: {:?}",
        wrong.len(),
        calls.len(),
        wrong.first()
    );
    assert!(
        outage_stats.get(ReadThroughEvent::ReadFailed) > 0,
        "the failed reads were counted: {}",
        stats_line(&cache)
    );
    assert_eq!(
        outage_stats.get(ReadThroughEvent::StaleServed),
        0,
        "no stale value is served while the loader answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_serves_the_last_value_until_max_stale() {
    database_down(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_outage_serves_the_last_value_until_max_stale() {
    database_down(Kind::Memcached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_with_the_database_up_serves_loaded_values() {
    database_up(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_outage_with_the_database_up_serves_loaded_values() {
    database_up(Kind::Memcached).await;
}

/// The longest a call took.
fn slowest(calls: &[Call]) -> std::time::Duration {
    calls
        .iter()
        .map(|c| c.ended - c.started)
        .max()
        .unwrap_or_default()
}
