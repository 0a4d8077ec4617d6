//! A server outage under fail-safe read-through: a private `redis-server` and a private
//! `memcached` (never the shared servers) killed with SIGKILL while 16 tasks call
//! `get_or_set`, restarted after the outage. Counts the calls that got their value.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Backend, Cache, ReadThrough};
use cache_memcached::MemcachedConfig;
use cache_redis::RedisConfig;
use cache_test_fixtures::{Server, ServerKind, find_program};

use crate::harness::{Stats, Target, machine};
use crate::workloads::{BoxError, Record, record};

/// Concurrent callers.
const TASKS: usize = 16;
/// Keys the callers read, warmed before the outage.
const KEYS: usize = 100;
/// Freshness of the entries: past it, every call during the outage needs fail-safe.
const TTL: Duration = Duration::from_secs(1);
/// The fail-safe window: longer than the TTL and the outage together.
const MAX_STALE: Duration = Duration::from_secs(60);
/// Per-call deadline of the cache.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause of a caller between two calls.
const PAUSE: Duration = Duration::from_millis(1);
/// How long the cache may take to load, answer and store fresh values after the restart.
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);

/// The loader's error while the database is down.
#[derive(Debug)]
struct DatabaseDown;

impl std::fmt::Display for DatabaseDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database is down too")
    }
}

impl std::error::Error for DatabaseDown {}

/// `12 ms` from 1 ms up, `34 µs` below.
fn time(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.0} µs", ms * 1e3)
    }
}

/// The figures of one outage.
struct Outcome {
    calls: usize,
    ok: usize,
    /// Milliseconds per call during the outage.
    latency_ms: Vec<f64>,
    /// From the restart to a fresh value loaded, answered and stored.
    recovery: Duration,
}

fn title(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::Redis => "Redis",
        ServerKind::Memcached => "Memcached",
    }
}

async fn connect(kind: ServerKind, server: &Server) -> Result<Arc<dyn Backend>, BoxError> {
    Ok(match kind {
        ServerKind::Redis => Arc::new(
            RedisConfig::from_url(&server.url())?
                .into_builder()
                .build()
                .await?,
        ),
        ServerKind::Memcached => {
            let mut config = MemcachedConfig::from_url(&server.url())?;
            config.pool_size = 4;
            Arc::new(config.into_builder().build().await?)
        }
    })
}

fn key(i: usize) -> String {
    format!("outage-k{i}")
}

/// One outage of `outage` on a private server of `kind`; `None` when its program is missing.
async fn one(kind: ServerKind, outage: Duration) -> Result<Option<Outcome>, BoxError> {
    if std::env::var_os(kind.binary_variable()).is_none() && find_program(kind.program()).is_none()
    {
        return Ok(None);
    }
    let Some(mut server) = tokio::task::block_in_place(|| Server::start(kind, &[])) else {
        return Ok(None);
    };
    let cache: Cache = Cache::builder(connect(kind, &server).await?)
        .namespace("outage")
        .ttl(TTL)
        .timeout(CALL_TIMEOUT)
        .read_through(ReadThrough::new().fail_safe(MAX_STALE))
        .build();
    for i in 0..KEYS {
        let id = i as u64;
        let v: Record = cache
            .get_or_set(
                &key(i),
                move || async move { Ok::<_, DatabaseDown>(record(id)) },
            )
            .await?;
        std::hint::black_box(v);
    }
    // the loaded values are written just after they are answered: wait until all landed
    for i in 0..KEYS {
        let mut tries = 0;
        while cache.get::<Record>(&key(i)).await?.is_none() {
            tries += 1;
            if tries > 1_000 {
                return Err(format!("{} was never stored", key(i)).into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    tokio::task::block_in_place(|| server.kill());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, stop) = (cache.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut calls, mut ok, mut latency_ms) = (0usize, 0usize, Vec::new());
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 7) % KEYS;
                    let started = Instant::now();
                    let answer = cache
                        .get_or_set::<Record>(&key(i), || async { Err(DatabaseDown) })
                        .await;
                    latency_ms.push(started.elapsed().as_secs_f64() * 1e3);
                    calls += 1;
                    ok += usize::from(matches!(answer, Ok(v) if v == record(i as u64)));
                    tokio::time::sleep(PAUSE).await;
                }
                (calls, ok, latency_ms)
            })
        })
        .collect();
    tokio::time::sleep(outage).await;
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut ok, mut latency_ms) = (0, 0, Vec::new());
    for task in tasks {
        let (c, o, l) = task.await?;
        calls += c;
        ok += o;
        latency_ms.extend(l);
    }

    tokio::task::block_in_place(|| server.restart());
    let restarted = Instant::now();
    let fresh = record(1_000_000);
    loop {
        if restarted.elapsed() > RECOVERY_LIMIT {
            return Err(format!(
                "no fresh value {RECOVERY_LIMIT:?} after the restart of {}",
                kind.program()
            )
            .into());
        }
        let want = fresh.clone();
        let answer = cache
            .get_or_set::<Record>(&key(0), move || async move { Ok::<_, DatabaseDown>(want) })
            .await;
        if matches!(&answer, Ok(v) if *v == fresh) {
            // stored once the write lands
            tokio::time::sleep(Duration::from_millis(5)).await;
            if matches!(cache.get::<Record>(&key(0)).await, Ok(Some(v)) if v == fresh) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = restarted.elapsed();
    cache.close().await?;
    Ok(Some(Outcome {
        calls,
        ok,
        latency_ms,
        recovery,
    }))
}

/// The outage subsection of the stampede section: one outage of `outage` per server, and one
/// target per server.
///
/// # Errors
/// When a private server cannot be used (a missing program is reported, not an error).
pub async fn run(outage: Duration) -> Result<(String, Vec<Target>), BoxError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Outage with fail-safe\n\nCommand: `cargo x bench stampede`. Machine: {}.\n\nA \
         private server (never the shared one) is killed with SIGKILL and restarted {:.0} s \
         later. Before, {KEYS} keys are loaded through `get_or_set` into a `Cache<Json>` with \
         a {} s TTL, a {} ms deadline per call and `ReadThrough::new().fail_safe({} s)`. During \
         the outage {TASKS} tasks call `get_or_set` on those keys in turn (a {} ms pause \
         between calls), with a loader that fails (the database is down too); a call succeeds \
         when it answers the key's value. Recovery: from the restart until a `get_or_set` has \
         loaded, answered and stored a new value (read back with `get`).\n\n| backend | \
         calls during the outage | successful | share | time per call (median, p99, max) | \
         recovery after the restart |\n|---|---|---|---|---|---|",
        machine(),
        outage.as_secs_f64(),
        TTL.as_secs(),
        CALL_TIMEOUT.as_millis(),
        MAX_STALE.as_secs(),
        PAUSE.as_millis(),
    );
    let mut targets = Vec::new();
    for kind in [ServerKind::Redis, ServerKind::Memcached] {
        let what = format!(
            "{} outage of {:.0} s with fail-safe: successful `get_or_set` calls",
            title(kind),
            outage.as_secs_f64()
        );
        match one(kind, outage).await? {
            None => {
                let _ = writeln!(
                    out,
                    "| {} | not run: {} not found | | | | |",
                    title(kind),
                    kind.program()
                );
                targets.push(Target {
                    what,
                    goal: "100 %".into(),
                    measured: format!("not run ({} not found)", kind.program()),
                    met: false,
                });
            }
            Some(o) => {
                let share = 100.0 * o.ok as f64 / o.calls.max(1) as f64;
                let mut sorted = o.latency_ms.clone();
                sorted.sort_by(f64::total_cmp);
                let p99 = sorted
                    .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(f64::NAN);
                let s = Stats::of(&o.latency_ms);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {share:.2} % | {}, {}, {} | {} |",
                    title(kind),
                    o.calls,
                    o.ok,
                    time(s.median),
                    time(p99),
                    time(s.max),
                    time(o.recovery.as_secs_f64() * 1e3)
                );
                targets.push(Target {
                    what,
                    goal: "100 %".into(),
                    measured: format!("{share:.2} % ({} of {})", o.ok, o.calls),
                    met: o.calls > 0 && o.ok == o.calls,
                });
            }
        }
    }
    let _ = writeln!(
        out,
        "\nWhile the server is down, the Redis client holds each command for the reconnect, so \
         a call waits for its deadline before the last known value answers; the Memcached \
         backend fails at once.\n"
    );
    for t in &targets {
        let _ = writeln!(out, "{}\n", t.line());
    }
    Ok((out, targets))
}
