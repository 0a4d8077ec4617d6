//! What namespace generations cost and save: a `get` through a backend with generations on
//! against a plain `get` (memory, Redis), and `clear()` of a namespace on a Redis server
//! holding five million other keys, with generations (one script) and without (a `SCAN` of
//! the whole keyspace).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Backend, Cache, RawBytes};
use cache_memory::MemoryBuilder;
use cache_redis::RedisConfig;
use cache_test_fixtures::{Server, ServerKind};

use crate::harness::{Stats, Target, interleaved, time_per_call as time, two_calls};
use crate::workloads::{BoxError, Record, record};

/// Keys read in turn by both contenders.
const KEYS: usize = 1_000;
/// The goal: a `get` with generations at most this many times a plain one.
const GET_GOAL: f64 = 1.10;
/// The goal for `clear()` with generations among five million keys.
const CLEAR_GOAL: Duration = Duration::from_millis(5);
/// Other keys on the server of the clear measurement.
const OTHER_KEYS: u64 = 5_000_000;

/// A plain cache and a cache with generations, in one namespace, their keys written.
struct Caches {
    plain: Cache,
    generations: Cache,
    keys: Vec<String>,
}

impl Caches {
    async fn new(
        plain: Arc<dyn Backend>,
        generations: Arc<dyn Backend>,
    ) -> Result<Caches, BoxError> {
        let ns = format!(
            "benchgen{:x}",
            cache_core::envelope::now_ms() ^ u64::from(std::process::id())
        );
        let build = |b: Arc<dyn Backend>| {
            Cache::builder(b)
                .namespace(ns.clone())
                .timeout(Duration::from_secs(5))
                .build()
        };
        let (plain, generations) = (build(plain), build(generations));
        let keys: Vec<String> = (0..KEYS).map(|i| format!("gen-k{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            plain.set(key, &record(i as u64)).await?;
            generations.set(key, &record(i as u64)).await?;
        }
        Ok(Caches {
            plain,
            generations,
            keys,
        })
    }

    async fn clean_up(&self) -> Result<(), BoxError> {
        self.plain.multi_delete(self.keys.iter()).await?;
        self.generations.clear().await?;
        Ok(())
    }

    /// Nanoseconds per `get`, `n` calls over the keys in turn.
    async fn ns_per_get(&self, generations: bool, n: usize) -> Result<f64, BoxError> {
        let cache = if generations {
            &self.generations
        } else {
            &self.plain
        };
        let started = Instant::now();
        for i in 0..n {
            let v: Record = cache
                .get(&self.keys[i % self.keys.len()])
                .await?
                .ok_or("a get missed")?;
            std::hint::black_box(v);
        }
        Ok(started.elapsed().as_nanos() as f64 / n as f64)
    }
}

/// The `get` rows of one backend: interleaved rounds, per-round ratios.
async fn get_cost(
    plain: Arc<dyn Backend>,
    generations: Arc<dyn Backend>,
    n: usize,
    rounds: usize,
    label: &str,
    setup: &str,
) -> (String, Target) {
    let what = format!("{label} `get` with namespace generations vs plain `get`: time");
    let measured = async {
        let caches = Caches::new(plain, generations).await?;
        let samples = interleaved(rounds, n, |g, n| caches.ns_per_get(g, n)).await?;
        caches.clean_up().await?;
        Ok::<_, BoxError>(samples)
    }
    .await;
    let samples = match measured {
        Ok(s) => s,
        Err(e) => {
            let target = Target::not_measured(what, format!("≤ {GET_GOAL:.2}×"), e);
            return (format!("\n{}\n", target.line()), target);
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### `get` with namespace generations ({label})\n\n{setup} {KEYS} keys holding the \
         benchmark's record, read in turn; each round times {n} calls of each `get`, in an \
         order that turns every round ({} rounds). Median time per call (min – max); the \
         ratio is the median (min – max) of the per-round ratios.\n",
        samples[0].len()
    );
    let (rows, target) = two_calls(
        &samples,
        ["plain `get`", "`get`, generations on"],
        what,
        GET_GOAL,
    );
    out.push_str(&rows);
    (out, target)
}

/// `clear()` on a private Redis server holding [`OTHER_KEYS`] other keys: with generations,
/// `clears` times; without, once.
async fn clear_cost(namespace_keys: usize, clears: usize) -> Result<(String, Target), BoxError> {
    let server = Server::start(ServerKind::Redis, &["--enable-debug-command", "local"])
        .ok_or("redis-server not found")?;
    let url = server.url();
    let connect = |generations: bool| {
        let url = url.clone();
        async move {
            let backend = RedisConfig::from_url(&url)?
                .into_builder()
                .namespace_generations(generations)
                .build()
                .await?;
            Ok::<_, BoxError>(backend)
        }
    };
    let raw = Cache::builder(connect(false).await?)
        .serializer(RawBytes)
        .timeout(Duration::from_secs(300))
        .build();
    raw.raw("DEBUG", ["POPULATE", &OTHER_KEYS.to_string(), "other"])
        .await?;
    let fill = |cache: Cache<RawBytes>| async move {
        let keys: Vec<String> = (0..namespace_keys).map(|i| format!("k{i}")).collect();
        for chunk in keys.chunks(1000) {
            cache
                .multi_set(
                    chunk
                        .iter()
                        .map(|k| (k.as_str(), bytes::Bytes::from_static(b"v"))),
                )
                .await?;
        }
        Ok::<_, BoxError>(())
    };
    let generations = Cache::builder(connect(true).await?)
        .namespace("gens")
        .serializer(RawBytes)
        .build();
    let mut times = Vec::with_capacity(clears);
    for _ in 0..clears {
        fill(generations.clone()).await?;
        let started = Instant::now();
        generations.clear().await?;
        times.push(started.elapsed().as_nanos() as f64);
    }
    let scanning = Cache::builder(connect(false).await?)
        .namespace("scan")
        .serializer(RawBytes)
        .without_timeout()
        .build();
    fill(scanning.clone()).await?;
    let started = Instant::now();
    let removed = scanning.clear().await?;
    let scan = started.elapsed().as_nanos() as f64;
    drop(server);
    let s = Stats::of(&times);
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### `clear()` among {OTHER_KEYS} other keys (Redis)\n\nA private `redis-server` \
         filled with `DEBUG POPULATE {OTHER_KEYS}`; a namespace of {namespace_keys} keys \
         written, then cleared. With generations: {clears} clears, each after writing the \
         namespace again. Without: one clear (a cursor-complete `SCAN` of the whole keyspace, \
         no deadline).\n\n| `clear()` | median | p99 | max | keys removed |\n|---|---|---|---|---|\n\
         | namespace generations (one script) | {} | {} | {} | — (unreachable at once) |\n\
         | `SCAN MATCH` + `UNLINK` | {} | — | — | {} |",
        time(s.median),
        time(p99),
        time(s.max),
        time(scan),
        removed.map_or("—".to_owned(), |n| n.to_string()),
    );
    let target = Target {
        what: format!("Redis `clear()` with generations, {OTHER_KEYS} other keys: time"),
        goal: format!("≤ {} ms", CLEAR_GOAL.as_millis()),
        measured: format!("median {}, max {}", time(s.median), time(s.max)),
        met: s.median <= CLEAR_GOAL.as_nanos() as f64,
    };
    let _ = writeln!(out, "\n{}\n", target.line());
    Ok((out, target))
}

/// The section: memory and Redis `get`, Redis `clear()` among millions of keys.
pub fn run(redis_url: &str, quick: bool) -> (String, Vec<Target>) {
    let rounds = if quick { 3 } else { 9 };
    let mut body = String::from(
        "## Namespace generations\n\nCommand: `cargo run --release -p cache-bench -- \
         generations`. What a read costs with generations on, and what a `clear()` costs on a \
         server with millions of keys.\n",
    );
    let mut targets = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (text, target) = rt.block_on(get_cost(
        Arc::new(MemoryBuilder::new().build()),
        Arc::new(MemoryBuilder::new().namespace_generations(true).build()),
        if quick { 20_000 } else { 500_000 },
        rounds,
        "memory",
        "One task on a current-thread runtime, `Cache<Json>` over the memory backend;",
    ));
    body.push_str(&text);
    targets.push(target);
    let rt = crate::runtime();
    let redis = rt.block_on(async {
        let connect = |generations: bool| async move {
            let b = RedisConfig::from_url(redis_url)?
                .into_builder()
                .namespace_generations(generations)
                .build()
                .await?;
            Ok::<_, BoxError>(Arc::new(b) as Arc<dyn Backend>)
        };
        match (connect(false).await, connect(true).await) {
            (Ok(plain), Ok(generations)) => Some(
                get_cost(
                    plain,
                    generations,
                    if quick { 300 } else { 10_000 },
                    rounds,
                    "Redis",
                    "Sequential calls from one task, `Cache<Json>` over a `RedisBackend` each \
                     (one auto-pipelined connection, 5 s deadline);",
                )
                .await,
            ),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("generations: Redis not measured: {e}");
                None
            }
        }
    });
    if let Some((text, target)) = redis {
        body.push_str(&text);
        targets.push(target);
    }
    match rt.block_on(clear_cost(10_000, if quick { 5 } else { 50 })) {
        Ok((text, target)) => {
            body.push_str(&text);
            targets.push(target);
        }
        Err(e) => {
            let target = Target::not_measured(
                format!("Redis `clear()` with generations, {OTHER_KEYS} other keys: time"),
                format!("≤ {} ms", CLEAR_GOAL.as_millis()),
                e,
            );
            let _ = writeln!(body, "\n{}\n", target.line());
            targets.push(target);
        }
    }
    (body, targets)
}
