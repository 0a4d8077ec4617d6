//! The in-process workload: 2 threads, 100k keys, 64-byte values, 90 % get / 10 % set with a
//! TTL, uniform and Zipf keys; plus memory per entry at 1M entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Backend, Cache, CallContext, Command, OpSet};
use cache_memory::MemoryBackend;
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;

use crate::chart::{Bar, Group};
use crate::harness::{Stats, Target, row, rss_bytes};

const KEYS: usize = 100_000;
const VALUE_LEN: usize = 64;
const TTL: Duration = Duration::from_secs(300);
const THREADS: usize = 2;
const OPS_PER_THREAD: usize = 1 << 20;

/// One pre-generated operation: key index, and whether it is a set.
#[derive(Clone, Copy)]
struct Op {
    key: u32,
    set: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Uniform,
    Zipf,
}

impl Keys {
    fn label(self) -> &'static str {
        match self {
            Keys::Uniform => "uniform",
            Keys::Zipf => "Zipf s=1.0",
        }
    }
}

fn ops(keys: Keys, seed: u64) -> Arc<Vec<Op>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = rand_distr::Zipf::new(KEYS as f64, 1.0).expect("valid zipf");
    let mut perm: Vec<u32> = (0..KEYS as u32).collect();
    // spread hot keys over the key space so they do not share shards by construction
    for i in (1..perm.len()).rev() {
        let j = rng.random_range(0..=i);
        perm.swap(i, j);
    }
    Arc::new(
        (0..OPS_PER_THREAD)
            .map(|_| {
                let k = match keys {
                    Keys::Uniform => rng.random_range(0..KEYS as u32),
                    Keys::Zipf => perm[(zipf.sample(&mut rng) as usize - 1).min(KEYS - 1)],
                };
                Op {
                    key: k,
                    set: rng.random_range(0..10) == 0,
                }
            })
            .collect(),
    )
}

fn key_names(prefix: &str) -> Arc<Vec<String>> {
    Arc::new((0..KEYS).map(|i| format!("{prefix}{i}")).collect())
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; VALUE_LEN])
}

/// Runs `per_thread` on THREADS OS threads for `dur`, returns total ops/s.
fn run_threads<F>(dur: Duration, per_thread: F) -> f64
where
    F: Fn(usize, &AtomicBool) -> u64 + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let f = Arc::new(per_thread);
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let stop = stop.clone();
            let f = f.clone();
            std::thread::spawn(move || f(t, &stop))
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// Runs `per_task` as THREADS tasks on a THREADS-worker runtime for `dur`, returns ops/s.
fn run_tasks<F, Fut>(dur: Duration, per_task: F) -> f64
where
    F: Fn(usize, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| tokio::spawn(per_task(t, stop.clone())))
            .collect();
        // The workers never yield, so they never drive Tokio's timer: block this (non-worker)
        // thread instead.
        std::thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap_or(0);
        }
        total as f64 / start.elapsed().as_secs_f64()
    })
}

struct Workload {
    ops: Vec<Arc<Vec<Op>>>,
}

impl Workload {
    fn new(keys: Keys) -> Workload {
        Workload {
            ops: (0..THREADS).map(|t| ops(keys, 42 + t as u64)).collect(),
        }
    }
}

fn bench_backend(w: &Workload, dur: Duration) -> f64 {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new().max_entries(4 * KEYS as u64));
    let keys = key_names("key:");
    let v = value();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        for k in keys.iter() {
            let ctx = CallContext::new(Command::Set);
            backend
                .set(&ctx, k, v.clone(), OpSet::new(Some(TTL)))
                .await
                .ok();
        }
    });
    let ops = w.ops.clone();
    run_tasks(dur, move |t, stop| {
        let backend = backend.clone();
        let keys = keys.clone();
        let ops = ops[t].clone();
        let v = v.clone();
        async move {
            let mut n = 0u64;
            'outer: loop {
                for chunk in ops.chunks(1024) {
                    for op in chunk {
                        let k = &keys[op.key as usize];
                        if op.set {
                            let ctx = CallContext::new(Command::Set);
                            let _ = backend.set(&ctx, k, v.clone(), OpSet::new(Some(TTL))).await;
                        } else {
                            let ctx = CallContext::new(Command::Get);
                            std::hint::black_box(backend.get(&ctx, k).await.ok());
                        }
                    }
                    n += chunk.len() as u64;
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
            }
            n
        }
    })
}

fn bench_cache(w: &Workload, dur: Duration) -> f64 {
    let cache = Cache::builder(MemoryBackend::new().max_entries(4 * KEYS as u64))
        .namespace("bench")
        .ttl(TTL)
        .build();
    let keys = key_names("");
    let v: String = "v".repeat(VALUE_LEN);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        for k in keys.iter() {
            cache.set(k, &v).await.ok();
        }
    });
    let ops = w.ops.clone();
    run_tasks(dur, move |t, stop| {
        let cache = cache.clone();
        let keys = keys.clone();
        let ops = ops[t].clone();
        let v = v.clone();
        async move {
            let mut n = 0u64;
            'outer: loop {
                for chunk in ops.chunks(1024) {
                    for op in chunk {
                        let k = &keys[op.key as usize];
                        if op.set {
                            let _ = cache.set(k, &v).await;
                        } else {
                            std::hint::black_box(cache.get::<String>(k).await.ok());
                        }
                    }
                    n += chunk.len() as u64;
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
            }
            n
        }
    })
}

struct MokaExpiry;

impl moka::Expiry<String, (Bytes, Duration)> for MokaExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &(Bytes, Duration),
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &(Bytes, Duration),
        _now: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

fn moka_cache() -> moka::future::Cache<String, (Bytes, Duration)> {
    moka::future::Cache::builder()
        .max_capacity(4 * KEYS as u64)
        .expire_after(MokaExpiry)
        .build()
}

fn bench_moka(w: &Workload, dur: Duration) -> f64 {
    let cache = moka_cache();
    let keys = key_names("key:");
    let v = value();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        for k in keys.iter() {
            cache.insert(k.clone(), (v.clone(), TTL)).await;
        }
    });
    let ops = w.ops.clone();
    run_tasks(dur, move |t, stop| {
        let cache = cache.clone();
        let keys = keys.clone();
        let ops = ops[t].clone();
        let v = v.clone();
        async move {
            let mut n = 0u64;
            'outer: loop {
                for chunk in ops.chunks(1024) {
                    for op in chunk {
                        let k = &keys[op.key as usize];
                        if op.set {
                            cache.insert(k.clone(), (v.clone(), TTL)).await;
                        } else {
                            std::hint::black_box(cache.get(k).await);
                        }
                    }
                    n += chunk.len() as u64;
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                }
            }
            n
        }
    })
}

fn quick_cache() -> quick_cache::sync::Cache<String, Bytes> {
    quick_cache::sync::Cache::new(2 * KEYS)
}

fn bench_quick_cache(w: &Workload, dur: Duration) -> f64 {
    let cache = Arc::new(quick_cache());
    let keys = key_names("key:");
    let v = value();
    for k in keys.iter() {
        cache.insert(k.clone(), v.clone());
    }
    let ops = w.ops.clone();
    run_threads(dur, move |t, stop| {
        let ops = &ops[t];
        let mut n = 0u64;
        'outer: loop {
            for chunk in ops.chunks(1024) {
                for op in chunk {
                    let k = &keys[op.key as usize];
                    if op.set {
                        cache.insert(k.clone(), v.clone());
                    } else {
                        std::hint::black_box(cache.get(k.as_str()));
                    }
                }
                n += chunk.len() as u64;
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
            }
        }
        n
    })
}

type Contender = (&'static str, fn(&Workload, Duration) -> f64);

const CONTENDERS: [Contender; 4] = [
    (
        "(a) stratacache `MemoryBackend` via `dyn Backend`",
        bench_backend,
    ),
    (
        "(b) stratacache `Cache<Json>` (namespace, TTL, timeout)",
        bench_cache,
    ),
    (
        "(c) moka 0.12 `future::Cache` + per-entry `Expiry`",
        bench_moka,
    ),
    (
        "(d) quick_cache 0.7 `sync::Cache` (no TTL)",
        bench_quick_cache,
    ),
];

/// Runs the throughput tables; returns markdown, the targets and the chart bars.
pub fn throughput(rounds: usize, dur: Duration) -> (String, Vec<Target>, Vec<Group>) {
    let mut out = String::new();
    let mut targets = Vec::new();
    let mut groups = Vec::new();
    for keys in [Keys::Uniform, Keys::Zipf] {
        let w = Workload::new(keys);
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
        for round in 0..rounds {
            // interleave, rotating the starting contender each round
            for i in 0..CONTENDERS.len() {
                let c = (i + round) % CONTENDERS.len();
                samples[c].push((CONTENDERS[c].1)(&w, dur));
            }
        }
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        let qc = stats[3].median;
        out.push_str(&format!(
            "\n**{} keys** ({rounds} interleaved rounds of {:.1} s; ratio = median / quick_cache median)\n\n",
            keys.label(),
            dur.as_secs_f64()
        ));
        out.push_str(
            "| contender | ops/s median | min – max | vs quick_cache |\n|---|---|---|---|\n",
        );
        for (i, (name, _)) in CONTENDERS.iter().enumerate() {
            out.push_str(&row(name, stats[i], Some(qc)));
            out.push('\n');
        }
        // ratios of medians: the contenders do not run at the same moment, so per-round
        // pairing would pair different machine states anyway
        let a = stats[0].median;
        let vs_qc = a / qc;
        let vs_moka = a / stats[2].median;
        let t = [
            Target {
                what: format!(
                    "memory ({} keys): `MemoryBackend` throughput / quick_cache",
                    keys.label()
                ),
                goal: "≥ 1.0×".into(),
                measured: format!("{vs_qc:.2}×"),
                met: vs_qc >= 1.0,
            },
            Target {
                what: format!(
                    "memory ({} keys): `MemoryBackend` throughput / moka",
                    keys.label()
                ),
                goal: "≥ 3×".into(),
                measured: format!("{vs_moka:.2}×"),
                met: vs_moka >= 3.0,
            },
        ];
        out.push('\n');
        for t in &t {
            out.push_str(&t.line());
            out.push_str("\n\n");
        }
        targets.extend(t);
        groups.push(Group {
            label: format!("{} keys", keys.label()),
            bars: CONTENDERS
                .iter()
                .zip(&stats)
                .map(|((name, _), s)| Bar {
                    series: chart_name(name),
                    median: s.median,
                    min: s.min,
                    max: s.max,
                })
                .collect(),
        });
    }
    out.push_str("![Memory backend throughput](img/memory.svg)\n");
    (out, targets, groups)
}

/// A contender's name without markdown, for chart legends.
fn chart_name(name: &str) -> String {
    name.replace('`', "")
}

/// Bytes of RSS per entry after inserting `n` entries into `store`, minus the payload
/// (key bytes + 64 value bytes). Runs in this process: call it from a fresh process.
pub fn footprint(store: &str, n: usize) -> Result<f64, String> {
    let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
    let key_bytes: usize = keys.iter().map(String::len).sum();
    let payload = (key_bytes + n * VALUE_LEN) as f64 / n as f64;
    let before = rss_bytes();
    let keep: Box<dyn std::any::Any> = match store {
        "stratacache" => {
            let backend = MemoryBackend::new().max_entries(2 * n as u64);
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                for k in &keys {
                    let v = Bytes::from(vec![b'v'; VALUE_LEN]);
                    let ctx = CallContext::new(Command::Set);
                    backend.set(&ctx, k, v, OpSet::new(Some(TTL))).await.ok();
                }
            });
            Box::new(backend)
        }
        "moka" => {
            let cache = moka_cache();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                for k in &keys {
                    let v = Bytes::from(vec![b'v'; VALUE_LEN]);
                    cache.insert(k.clone(), (v, TTL)).await;
                }
                cache.run_pending_tasks().await;
            });
            Box::new(cache)
        }
        "quick_cache" => {
            let cache = quick_cache::sync::Cache::<String, Bytes>::new(2 * n);
            for k in &keys {
                cache.insert(k.clone(), Bytes::from(vec![b'v'; VALUE_LEN]));
            }
            Box::new(cache)
        }
        other => return Err(format!("unknown store {other}")),
    };
    let after = rss_bytes();
    drop(keep);
    Ok((after.saturating_sub(before)) as f64 / n as f64 - payload)
}

/// Runs `footprint` for each store in a child process; returns markdown.
pub fn footprint_table(n: usize) -> String {
    let exe = std::env::current_exe().ok();
    let mut out = format!(
        "\n**Memory over payload at {n} entries** (RSS growth per entry minus key and value bytes; each store in a fresh process)\n\n| store | bytes per entry over payload |\n|---|---|\n"
    );
    let mut ours = None;
    for store in ["stratacache", "moka", "quick_cache"] {
        let measured = exe.as_ref().and_then(|exe| {
            std::process::Command::new(exe)
                .args(["footprint", store, &n.to_string()])
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
        });
        if store == "stratacache" {
            ours = measured;
        }
        out.push_str(&format!(
            "| {store} | {} |\n",
            measured.map_or("failed".into(), |b| format!("{b:.0} B"))
        ));
    }
    if let Some(b) = ours {
        out.push_str(&format!(
            "\nTarget: ≤ 150 B per entry — measured **{b:.0} B** ({}).\n",
            if b <= 150.0 { "met" } else { "missed" }
        ));
    }
    out
}

/// One stack of the layer-cost table: its name and how to build it.
type StackCase = (&'static str, fn() -> Cache<cache_core::RawBytes>);

/// The stacks whose per-call cost the layer table compares, each over the same memory backend
/// settings, read with `RawBytes` so the serializer does not hide the facade's cost.
const STACKS: [StackCase; 6] = [
    ("no deadline, no plugin", || {
        layered(Cache::builder(MemoryBackend::new()).without_timeout())
    }),
    ("default 5 s deadline (`TimeoutLayer` armed)", || {
        layered(Cache::builder(MemoryBackend::new()))
    }),
    ("+ `RetryLayer`", || {
        layered(Cache::builder(MemoryBackend::new()).layer(cache_core::layer::RetryLayer::new()))
    }),
    ("+ `ChaosLayer` at rate 0", || {
        layered(Cache::builder(MemoryBackend::new()).layer(cache_core::layer::ChaosLayer::new(1)))
    }),
    ("+ one plugin (`HitMissRatioPlugin`)", || {
        layered(Cache::builder(MemoryBackend::new()).plugin(cache_core::HitMissRatioPlugin::new()))
    }),
    ("+ `RetryLayer`, `ChaosLayer` and the plugin", || {
        layered(
            Cache::builder(MemoryBackend::new())
                .layer(cache_core::layer::ChaosLayer::new(1))
                .layer(cache_core::layer::RetryLayer::new())
                .plugin(cache_core::HitMissRatioPlugin::new()),
        )
    }),
];

fn layered(builder: cache_core::CacheBuilder) -> Cache<cache_core::RawBytes> {
    builder
        .namespace("bench")
        .serializer(cache_core::RawBytes)
        .build()
}

/// Nanoseconds per `get` hit through `cache`, one task on a current-thread runtime.
fn ns_per_get(cache: &Cache<cache_core::RawBytes>, dur: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let keys = key_names("");
        let keys = &keys[..1024];
        for k in keys {
            cache.set(k, &vec![b'v'; VALUE_LEN]).await.ok();
        }
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < dur {
            for k in keys {
                std::hint::black_box(cache.get::<Vec<u8>>(k).await.ok());
            }
            n += keys.len() as u64;
        }
        started.elapsed().as_nanos() as f64 / n as f64
    })
}

/// The cost of each shipped layer per call: `get` hits through stacks that differ by one
/// layer, interleaved rounds, medians.
pub fn layer_costs(rounds: usize, dur: Duration) -> String {
    let caches: Vec<_> = STACKS.iter().map(|(_, build)| build()).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STACKS.len()];
    for round in 0..rounds {
        for i in 0..STACKS.len() {
            let c = (i + round) % STACKS.len();
            samples[c].push(ns_per_get(&caches[c], dur));
        }
    }
    let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
    let base = stats[0].median;
    let armed = stats[1].median;
    let mut out = format!(
        "\n### Cost of each layer per call\n\nOne task, `Cache<RawBytes>::get` hits on 1,024 keys of the memory backend, {rounds} interleaved rounds of {:.1} s; median ns per call (min – max). \"vs deadline\" is the difference from the default stack (the deadline armed), i.e. what the layer adds.\n\n| stack | ns per get | min – max | vs deadline |\n|---|---|---|---|\n",
        dur.as_secs_f64()
    );
    for (i, (name, _)) in STACKS.iter().enumerate() {
        let delta = match i {
            0 => format!("{:+.0} ns", stats[i].median - armed),
            1 => "—".into(),
            _ => format!("{:+.0} ns", stats[i].median - armed),
        };
        out.push_str(&format!(
            "| {name} | {:.0} | {:.0} – {:.0} | {delta} |\n",
            stats[i].median, stats[i].min, stats[i].max
        ));
    }
    out.push_str(&format!(
        "\nThe pipeline's own layers (error context, deadline) are in every row; the first row is {base:.0} ns without a deadline.\n"
    ));
    out
}
