//! A server killed with SIGKILL and restarted on the same port about a second later, while 64
//! tasks write and read, on a private `redis-server` and a private `memcached` (never the
//! shared servers).
//!
//! # What is checked
//!
//! Task `t` is the only writer of its four keys `t{t}-k{0..4}`, with versions that only grow.
//! Each loop it writes one of them, reads it back, and reads the same key of task `t + 1`.
//! Values carry their key and version ([`versioned`]), and every read is judged by the
//! freshness rule written there:
//!
//! - a read by the writer returns a miss, or the key's own intact value with
//!   `floor ≤ version ≤ ceiling`, where the floor is the highest version the writer has
//!   confirmed (a `set` that returned `Ok`, or a read) and the ceiling the highest version it
//!   has sent (failed `set`s included: they may have landed);
//! - a read by the neighbour returns a miss, or the key's intact value with a version not
//!   below the highest the neighbour has seen and not above the writer's published ceiling.
//!
//! A miss is always fine: neither server keeps data across a kill here (Redis runs without
//! persistence, Memcached has none), so after the restart every key is missing until written
//! again. A wrong key, a damaged value, a version older than one confirmed or a version never
//! written is a wrong answer; there must be none.
//!
//! Errors may happen only as `Connection` or `Timeout` kinds. Recovery: the time from the
//! moment the restarted server answers to the first successful call of each task; the slowest
//! task's recovery must be within 2 s, and every call started 2 s or more after the server's
//! return must succeed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::{Cache, ErrorKind};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::report::millis;
use stratacache_tests::versioned::{self, Observer, Writer};
use stratacache_tests::{Figures, Tally};

const TASKS: usize = 64;
const KEYS_PER_TASK: usize = 4;
/// Load before the kill.
const WARM_UP: Duration = Duration::from_millis(500);
/// Time between the kill and the restart.
const OUTAGE: Duration = Duration::from_secs(1);
/// Calls must succeed again this long after the server is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(2);
/// Load after the restart: past the recovery bound, so calls started after it are seen.
const AFTER: Duration = Duration::from_millis(3_000);
/// Per-call timeout of the cache.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause of a task after a failed call, so that 64 tasks do not spin on instant errors.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// One finished call.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// Since the test began.
    started: Duration,
    ended: Duration,
    error: Option<ErrorKind>,
}

#[derive(Debug, Default)]
struct TaskLog {
    calls: Vec<Call>,
    misses: u64,
    wrong: Vec<String>,
    errors: Tally,
}

fn key_of(task: usize, slot: usize) -> String {
    format!("t{task}-k{slot}")
}

async fn run(kind: Kind) {
    let Some(mut server) = backends::private_server(kind) else {
        return;
    };
    let url = kind.url_for(&server.address());
    let setup = Setup {
        pool_size: match kind {
            Kind::Redis => 1,
            Kind::Memcached => 8,
        },
        // The default reconnect policy (at most 1 s + 100 ms jitter between attempts) is
        // what is under test: the 2 s bound holds without tuning.
        reconnect_max_delay: None,
    };
    let backend = backends::connect(kind, &url, &server.address(), &setup).await;
    let cache = Cache::builder(backend)
        .namespace(random_namespace())
        .timeout(CALL_TIMEOUT)
        .build();

    let clock = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // per key, the highest version its writer has sent, published before sending
    let ceilings: Arc<Vec<AtomicU64>> = Arc::new(
        (0..TASKS * KEYS_PER_TASK)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let (cache, stop, ceilings) = (cache.clone(), stop.clone(), ceilings.clone());
        tasks.push(tokio::spawn(async move {
            let mut log = TaskLog::default();
            let mut writer = Writer::new();
            let mut observer = Observer::new();
            let neighbour = (t + 1) % TASKS;
            let mut version = 0u64;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                let slot = (version as usize) % KEYS_PER_TASK;
                let key = key_of(t, slot);
                let mut failed = false;

                writer.sending(&key, version);
                ceilings[t * KEYS_PER_TASK + slot].fetch_max(version, Ordering::SeqCst);
                let started = clock.elapsed();
                let r = cache.set(&key, &versioned::value(&key, version, 32)).await;
                let error = match r {
                    Ok(()) => {
                        writer.acknowledged(&key, version);
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.calls.push(Call {
                    started,
                    ended: clock.elapsed(),
                    error,
                });

                let started = clock.elapsed();
                let r = cache.get::<String>(&key).await;
                let error = match r {
                    Ok(read) => {
                        log.misses += u64::from(read.is_none());
                        let verdict = writer.read(&key, read.as_deref());
                        if verdict.is_wrong() {
                            log.wrong
                                .push(format!("{key} read by its writer: {verdict}"));
                        }
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.calls.push(Call {
                    started,
                    ended: clock.elapsed(),
                    error,
                });

                let other = key_of(neighbour, slot);
                let started = clock.elapsed();
                let r = cache.get::<String>(&other).await;
                let error = match r {
                    Ok(read) => {
                        let ceiling =
                            ceilings[neighbour * KEYS_PER_TASK + slot].load(Ordering::SeqCst);
                        let verdict = observer.read(&other, read.as_deref(), ceiling);
                        if verdict.is_wrong() {
                            log.wrong
                                .push(format!("{other} read by task {t}: {verdict}"));
                        }
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.calls.push(Call {
                    started,
                    ended: clock.elapsed(),
                    error,
                });

                for call in &log.calls[log.calls.len() - 3..] {
                    if let Some(kind) = call.error {
                        log.errors.add(kind);
                        failed = true;
                    }
                }
                if failed {
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
            log
        }));
    }

    tokio::time::sleep(WARM_UP).await;
    let killed_at = clock.elapsed();
    tokio::task::block_in_place(|| server.kill());
    tokio::time::sleep(OUTAGE).await;
    // `restart` returns once the new process answers: that is the server's return
    tokio::task::block_in_place(|| server.restart());
    let restarted_at = clock.elapsed();
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);

    let mut logs = Vec::with_capacity(TASKS);
    for task in tasks {
        logs.push(task.await.expect("a load task"));
    }

    let calls: Vec<Call> = logs.iter().flat_map(|l| l.calls.iter().copied()).collect();
    let mut errors = Tally::new();
    for log in &logs {
        errors.merge(&log.errors);
    }
    let wrong: Vec<&String> = logs.iter().flat_map(|l| &l.wrong).collect();
    let misses: u64 = logs.iter().map(|l| l.misses).sum();
    let errors_before_kill = calls
        .iter()
        .filter(|c| c.error.is_some() && c.ended < killed_at)
        .count();
    // per task: from the server's return to its first success after it
    let recoveries: Vec<Option<Duration>> = logs
        .iter()
        .map(|l| {
            l.calls
                .iter()
                .find(|c| c.error.is_none() && c.ended >= restarted_at)
                .map(|c| c.ended - restarted_at)
        })
        .collect();
    let late_failures: Vec<&Call> = calls
        .iter()
        .filter(|c| c.error.is_some() && c.started >= restarted_at + RECOVERY_BOUND)
        .collect();

    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");
    assert!(
        errors
            .outside(&[ErrorKind::Connection, ErrorKind::Timeout])
            .is_empty(),
        "errors other than connection and timeout errors: {errors}"
    );
    assert!(errors.total() > 0, "the outage was seen by the tasks");
    assert!(
        recoveries.iter().all(Option::is_some),
        "every task succeeded again after the restart: {recoveries:?}"
    );
    let recovery = recoveries
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_default();
    let mut sorted: Vec<Duration> = recoveries.iter().flatten().copied().collect();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        recovery <= RECOVERY_BOUND,
        "a task needed {recovery:?} after the server's return to succeed again (bound \
         {RECOVERY_BOUND:?})"
    );
    assert!(
        late_failures.is_empty(),
        "{} calls started {RECOVERY_BOUND:?} after the server's return failed, first {:?}",
        late_failures.len(),
        late_failures.first()
    );

    // and afterwards the cache works as before
    for i in 0..50u64 {
        let key = format!("after-{i}");
        let value = versioned::value(&key, 1, 32);
        cache.set(&key, &value).await.expect("a set after recovery");
        assert_eq!(
            cache
                .get::<String>(&key)
                .await
                .expect("a get after recovery"),
            Some(value)
        );
    }

    Figures::new("kill-restart", kind.name())
        .add("tasks", TASKS)
        .add("kills", 1)
        .add("calls", calls.len())
        .add("ok", calls.len() as u64 - errors.total())
        .add("misses", misses)
        .add("errors", &errors)
        .add("errors_before_kill", errors_before_kill)
        .add("wrong", wrong.len())
        .add("outage", millis(restarted_at - killed_at))
        .add("recovery_max", millis(recovery))
        .add("recovery_median", millis(median))
        .add("failed_after_bound", late_failures.len())
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_redis_under_64_tasks() {
    run(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_memcached_under_64_tasks() {
    run(Kind::Memcached).await;
}
