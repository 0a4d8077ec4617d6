//! The memcached workloads: stratacache's `Cache` (Json, 5 s timeout) over `MemcachedBackend`
//! side by side with raw async-memcached calls on the same server, interleaved.
//!
//! - sequential `get` and `set`, 10,000 each per round;
//! - 64 concurrent tasks, 90 % get / 10 % set over 1,000 keys, both over a pool of the same
//!   size (raw: a semaphore and a stack of clients, the least a hand-written pool does);
//! - `multi_get` of 100 keys against raw `get_multi`.
//!
//! Both sides read and write the same bytes (the JSON text of a 64-character string) under the
//! same keys (`{namespace}:{key}`); the raw side gets them pre-encoded. Each round runs every
//! workload for both contenders back to back, alternating which one goes first, and the
//! reported ratio is the median of the per-round ratios, so load changes on the machine between
//! rounds cancel out.

use std::error::Error;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, Client};
use cache_core::Cache;
use cache_memcached::MemcachedConfig;
use tokio::sync::Semaphore;

use crate::harness::{Stats, rate};

type BoxError = Box<dyn Error + Send + Sync>;

const POOL_SIZE: usize = 8;
const TASKS: usize = 64;
const HOT_KEYS: usize = 1_000;
const MULTI: usize = 100;

#[derive(Clone, Copy)]
struct Sizes {
    rounds: usize,
    sequential: usize,
    per_task: usize,
    multi_calls: usize,
}

/// The least a pool of raw clients does: a permit per connection and a stack of clients.
struct RawPool {
    permits: Semaphore,
    clients: Mutex<Vec<Client>>,
}

impl RawPool {
    async fn new(dsn: &str, size: usize) -> Result<Arc<RawPool>, BoxError> {
        let mut clients = Vec::with_capacity(size);
        for _ in 0..size {
            clients.push(Client::new(dsn).await?);
        }
        Ok(Arc::new(RawPool {
            permits: Semaphore::new(size),
            clients: Mutex::new(clients),
        }))
    }
}

/// Everything both contenders work on.
struct Setup {
    cache: Cache,
    raw: Client,
    pool: Arc<RawPool>,
    value: String,
    encoded: Vec<u8>,
    keys: Arc<Vec<String>>,
    built: Arc<Vec<String>>,
    sizes: Sizes,
}

/// Operations per second of `ops` operations that took since `start`.
fn per_sec(ops: usize, start: Instant) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64()
}

async fn ours_get(s: &Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    for i in 0..s.sizes.sequential {
        let v: Option<String> = s.cache.get(&s.keys[i % HOT_KEYS]).await?;
        assert!(v.is_some());
    }
    Ok(per_sec(s.sizes.sequential, start))
}

async fn raw_get(s: &mut Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    for i in 0..s.sizes.sequential {
        let v = s.raw.get(&s.built[i % HOT_KEYS]).await?;
        assert!(v.is_some());
    }
    Ok(per_sec(s.sizes.sequential, start))
}

async fn ours_set(s: &Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    for i in 0..s.sizes.sequential {
        s.cache.set(&s.keys[i % HOT_KEYS], &s.value).await?;
    }
    Ok(per_sec(s.sizes.sequential, start))
}

async fn raw_set(s: &mut Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    for i in 0..s.sizes.sequential {
        s.raw
            .set(&s.built[i % HOT_KEYS], s.encoded.as_slice(), None, None)
            .await?;
    }
    Ok(per_sec(s.sizes.sequential, start))
}

async fn ours_mixed(s: &Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, keys, value) = (s.cache.clone(), s.keys.clone(), s.value.clone());
            let n = s.sizes.per_task;
            tokio::spawn(async move {
                for i in 0..n {
                    let k = &keys[(t * 7919 + i * 31) % HOT_KEYS];
                    if i % 10 == 0 {
                        cache.set(k, &value).await?;
                    } else {
                        let _: Option<String> = cache.get(k).await?;
                    }
                }
                Ok::<_, cache_core::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(per_sec(TASKS * s.sizes.per_task, start))
}

async fn raw_mixed(s: &Setup) -> Result<f64, BoxError> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, built, encoded) = (s.pool.clone(), s.built.clone(), s.encoded.clone());
            let n = s.sizes.per_task;
            tokio::spawn(async move {
                for i in 0..n {
                    let k = &built[(t * 7919 + i * 31) % HOT_KEYS];
                    let _permit = pool.permits.acquire().await.expect("never closed");
                    let mut c = pool
                        .clients
                        .lock()
                        .unwrap()
                        .pop()
                        .expect("a permit guarantees a client");
                    let r = if i % 10 == 0 {
                        c.set(k, encoded.as_slice(), None, None).await
                    } else {
                        c.get(k).await.map(|_| ())
                    };
                    pool.clients.lock().unwrap().push(c);
                    r?;
                }
                Ok::<_, async_memcached::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(per_sec(TASKS * s.sizes.per_task, start))
}

async fn ours_multi(s: &Setup) -> Result<f64, BoxError> {
    let keys = &s.keys[..MULTI];
    let start = Instant::now();
    for _ in 0..s.sizes.multi_calls {
        let v: Vec<Option<String>> = s.cache.multi_get(keys).await?;
        assert_eq!(v.len(), MULTI);
    }
    Ok(per_sec(s.sizes.multi_calls, start))
}

async fn raw_multi(s: &mut Setup) -> Result<f64, BoxError> {
    let built = s.built.clone();
    let keys = &built[..MULTI];
    let start = Instant::now();
    for _ in 0..s.sizes.multi_calls {
        let v = s.raw.get_multi(keys).await?;
        assert_eq!(v.len(), MULTI);
    }
    Ok(per_sec(s.sizes.multi_calls, start))
}

/// One row: name, stats, and for ours the paired ratio to raw against the target.
fn line(out: &mut String, name: &str, s: Stats, vs_raw: Option<(f64, f64, bool)>) {
    let ratio = match vs_raw {
        Some((x, target, at_least)) => {
            // `at_least`: throughput ratio ≥ target; else time ratio (1/x) ≤ target
            let ok = if at_least {
                x >= target
            } else {
                1.0 / x <= target
            };
            let (shown, goal) = if at_least {
                (
                    format!("{x:.3}× throughput"),
                    format!("throughput ≥ {target:.2}× raw"),
                )
            } else {
                (
                    format!("{:.3}× time", 1.0 / x),
                    format!("time ≤ {target:.2}× raw"),
                )
            };
            let verdict = if ok { "met" } else { "missed" };
            format!("{shown} ({verdict}; target {goal})")
        }
        None => "—".into(),
    };
    let _ = writeln!(
        out,
        "| {name} | {} | {} – {} | {ratio} |",
        rate(s.median),
        rate(s.min),
        rate(s.max)
    );
}

/// Median of the per-round ratios `ours[i] / raw[i]`.
fn paired_ratio(ours: &[f64], raw: &[f64]) -> f64 {
    let ratios: Vec<f64> = ours.iter().zip(raw).map(|(o, r)| o / r).collect();
    Stats::of(&ratios).median
}

/// Runs the three workloads against the memcached server of `url` (its first server) and
/// returns a markdown section. Every workload runs inside a spawned task (a worker thread, as
/// in a service), whatever thread calls this.
pub async fn run(url: &str, quick: bool) -> Result<String, Box<dyn Error>> {
    let url = url.to_owned();
    tokio::spawn(async move { measure(&url, quick).await.map_err(|e| e.to_string()) })
        .await?
        .map_err(Into::into)
}

async fn measure(url: &str, quick: bool) -> Result<String, BoxError> {
    let sizes = if quick {
        Sizes {
            rounds: 2,
            sequential: 1_000,
            per_task: 100,
            multi_calls: 200,
        }
    } else {
        Sizes {
            rounds: 9,
            sequential: 10_000,
            per_task: 1_000,
            multi_calls: 2_000,
        }
    };
    let mut config = MemcachedConfig::from_url(url)?;
    let address = config
        .servers
        .first()
        .map(|s| s.address.clone())
        .ok_or("no server in the URL")?;
    let dsn = format!("tcp://{address}");
    config.servers.truncate(1);
    config.pool_size = POOL_SIZE;
    let backend = config.into_builder().build().await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let ns = format!("bench{:x}", stamp ^ u128::from(std::process::id()));
    let cache: Cache = Cache::builder(backend)
        .namespace(ns.clone())
        .timeout(Duration::from_secs(5))
        .build();
    let value = "v".repeat(64);
    let keys: Vec<String> = (0..HOT_KEYS).map(|i| format!("key-{i}")).collect();
    let built: Vec<String> = keys.iter().map(|k| format!("{ns}:{k}")).collect();
    cache.multi_set(keys.iter().map(|k| (k, &value))).await?;
    let mut s = Setup {
        cache,
        raw: Client::new(&dsn).await?,
        pool: RawPool::new(&dsn, POOL_SIZE).await?,
        encoded: format!("\"{value}\"").into_bytes(),
        value,
        keys: Arc::new(keys),
        built: Arc::new(built),
        sizes,
    };

    let mut results: [(Vec<f64>, Vec<f64>); 4] = Default::default();
    for round in 0..sizes.rounds {
        let ours_first = round % 2 == 0;
        macro_rules! both {
            ($slot:expr, $ours:expr, $raw:expr) => {
                if ours_first {
                    $slot.0.push($ours.await?);
                    $slot.1.push($raw.await?);
                } else {
                    $slot.1.push($raw.await?);
                    $slot.0.push($ours.await?);
                }
            };
        }
        both!(results[0], ours_get(&s), raw_get(&mut s));
        both!(results[1], ours_set(&s), raw_set(&mut s));
        both!(results[2], ours_mixed(&s), raw_mixed(&s));
        both!(results[3], ours_multi(&s), raw_multi(&mut s));
    }
    s.cache.multi_delete(s.keys.iter()).await?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Memcached backend\n\nCommand: `cargo x bench memcached`. Machine: {}. Server: memcached on {address} (loopback). {} rounds; each runs every workload for both contenders back to back, alternating which goes first. Figures are operations (or `multi_get` calls) per second, median and min – max over the rounds; the ratio is the median of the per-round ratios. Ours: `Cache` with `Json` and a 5 s timeout over `MemcachedBackend` (pool of {POOL_SIZE}); raw: async-memcached 0.9 `Client` calls with pre-encoded values.\n",
        crate::harness::machine(),
        sizes.rounds
    );
    let _ = writeln!(out, "| workload | median | min – max | vs raw |");
    let _ = writeln!(out, "|---|---|---|---|");
    let n = sizes.sequential;
    let names = [
        (format!("sequential get ×{n}"), 1.05, false),
        (format!("sequential set ×{n}"), 1.05, false),
        (
            format!("{TASKS} tasks, 90/10 get/set, pool of {POOL_SIZE}"),
            1.0,
            true,
        ),
        (format!("multi_get of {MULTI} keys"), 0.9, true),
    ];
    for ((name, target, at_least), (ours, raw)) in names.into_iter().zip(&results) {
        line(
            &mut out,
            &format!("{name}: stratacache"),
            Stats::of(ours),
            Some((paired_ratio(ours, raw), target, at_least)),
        );
        line(
            &mut out,
            &format!("{name}: raw async-memcached"),
            Stats::of(raw),
            None,
        );
    }
    Ok(out)
}
