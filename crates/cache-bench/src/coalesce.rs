//! Request coalescing: 64 tasks of `get`s only, stratacache with and without
//! [`CoalesceLayer`] against the raw client, throughput and per-call latency.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::layer::CoalesceLayer;
use cache_core::{Cache, RawBytes};
use cache_memcached::MemcachedConfig;
use cache_redis::RedisConfig;

use crate::harness::{Stats, Target, cell, paired, ratio_cell};
use crate::workloads::{BoxError, Contender, Data, POOL_SIZE, Server, Sizes, TASKS};

/// A second cache on its own connections, with the coalescing layer, and the same with bytes
/// as values.
pub(crate) async fn coalesced_cache(
    server: Server,
    url: &str,
    ns: &str,
) -> Result<(Cache, Cache<RawBytes>, CoalesceLayer), BoxError> {
    let layer = CoalesceLayer::new();
    let backend: Arc<dyn cache_core::Backend> = match server {
        Server::Redis => Arc::new(RedisConfig::from_url(url)?.into_builder().build().await?),
        Server::Memcached => {
            let mut config = MemcachedConfig::from_url(url)?;
            config.servers.truncate(1);
            config.pool_size = POOL_SIZE;
            Arc::new(config.into_builder().build().await?)
        }
    };
    let cache = Cache::builder(backend.clone())
        .namespace(ns)
        .timeout(Duration::from_secs(5))
        .layer(layer.clone())
        .build();
    let bytes = Cache::builder(backend)
        .namespace(ns)
        .timeout(Duration::from_secs(5))
        .serializer(RawBytes)
        .layer(layer.clone())
        .build();
    Ok((cache, bytes, layer))
}

/// One run of the get-only workload: operations per second, and each call's latency in
/// nanoseconds.
async fn get_only(
    c: &Contender,
    d: &Arc<Data>,
    per_task: usize,
) -> Result<(f64, Vec<u64>), BoxError> {
    let per_task = per_task.min(d.mix_uniform[0].len());
    let start = Instant::now();
    let tasks: Vec<_> = d
        .mix_uniform
        .iter()
        .map(|ops| {
            let (c, d, ops) = (c.clone(), d.clone(), ops.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for &(k, _) in &ops[..per_task] {
                    let t = Instant::now();
                    c.get(&d, k as usize).await?;
                    latencies.push(t.elapsed().as_nanos() as u64);
                }
                Ok::<_, BoxError>(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per_task * TASKS);
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    Ok((rate, all))
}

/// The `q` quantile of `v` (sorted in place), in microseconds.
fn quantile_us(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64 / 1000.0
}

#[derive(Default)]
struct Series {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Series {
    fn push(&mut self, (rate, mut latencies): (f64, Vec<u64>)) {
        self.rate.push(rate);
        self.p50.push(quantile_us(&mut latencies, 0.50));
        self.p99.push(quantile_us(&mut latencies, 0.99));
    }

    fn row(&self, name: &str, raw: &Series) -> String {
        let vs_raw = paired(&self.rate, &raw.rate);
        format!(
            "| {name} | {} | {} | {} | {} |",
            cell(&self.rate, "ops/s"),
            us(&self.p50),
            us(&self.p99),
            ratio_cell(vs_raw),
        )
    }
}

fn us(v: &[f64]) -> String {
    let s = Stats::of(v);
    format!("{:.0} µs ({:.0} – {:.0})", s.median, s.min, s.max)
}

/// The three contenders of one mode: ours, ours with the layer, the raw client.
pub(crate) struct Trio<'a> {
    /// The stratacache cache without the layer.
    pub(crate) plain: &'a Contender,
    /// The stratacache cache with the layer.
    pub(crate) coalesced: &'a Contender,
    /// The raw client.
    pub(crate) raw: &'a Contender,
}

#[derive(Default)]
struct Figures {
    ours: Series,
    co: Series,
    rw: Series,
}

/// Interleaved rounds of the get-only workload for the three contenders, with JSON records
/// and with bytes (both modes in every round, the six runs in rotating order); the markdown
/// and the targets.
pub(crate) async fn measure(
    server: Server,
    json: Trio<'_>,
    bytes: Trio<'_>,
    layer: &CoalesceLayer,
    data: &Arc<Data>,
    sizes: &Sizes,
) -> Result<(String, Vec<Target>), BoxError> {
    let trios = [&json, &bytes];
    // warm-up
    for t in trios {
        for c in [t.plain, t.coalesced, t.raw] {
            get_only(c, data, 50).await?;
        }
    }
    let (reads0, batches0) = (layer.reads(), layer.batches());
    let mut figures = [Figures::default(), Figures::default()];
    for round in 0..sizes.rounds {
        // rotate which contender and which mode goes first
        for i in 0..6 {
            let k = (round + i) % 6;
            let (t, f) = (trios[k / 3], &mut figures[k / 3]);
            match k % 3 {
                0 => f.ours.push(get_only(t.plain, data, sizes.per_task).await?),
                1 => {
                    f.co.push(get_only(t.coalesced, data, sizes.per_task).await?)
                }
                _ => f.rw.push(get_only(t.raw, data, sizes.per_task).await?),
            }
        }
    }
    let batch = (layer.reads() - reads0) as f64 / (layer.batches() - batches0).max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Request coalescing: {TASKS} tasks issuing only `get`s (uniform keys, {} each per \
         round), {} rounds, the six runs (three contenders, records through JSON and bytes as \
         they are) in rotating order. The coalesced caches (`Cache<Json>` and `Cache<RawBytes>`) \
         share their own connections, with `CoalesceLayer::new()` (batches of at most 128 keys, \
         sent after one scheduler pass); their reads went down in batches of {batch:.1} keys on \
         average. Latency is per call, median (min – max) over the rounds of each round's p50 \
         and p99.\n",
        sizes.per_task, sizes.rounds,
    );
    let mut targets = Vec::new();
    for (f, mode) in figures.iter().zip(["JSON records", "bytes (no JSON)"]) {
        let _ = writeln!(
            out,
            "| {TASKS} tasks, get only, {mode} | throughput | p50 | p99 | throughput vs {} |\n|---|---|---|---|---|",
            server_raw(server)
        );
        let _ = writeln!(out, "{}", f.co.row("stratacache + CoalesceLayer", &f.rw));
        let _ = writeln!(out, "{}", f.ours.row("stratacache", &f.rw));
        let _ = writeln!(out, "{}", f.rw.row(server_raw(server), &f.rw));
        let _ = writeln!(out);
        if server == Server::Redis {
            let r = paired(&f.co.rate, &f.rw.rate);
            targets.push(Target {
                what: format!(
                    "Redis {TASKS} tasks, get only, {mode}, with CoalesceLayer: throughput / raw \
                     fred on one connection; latency p50 and p99 of both (medians over the rounds)"
                ),
                goal: "≥ 1.5×".into(),
                measured: format!(
                    "{:.2}× (p50 {:.0} µs vs {:.0} µs, p99 {:.0} µs vs {:.0} µs)",
                    r.median,
                    Stats::of(&f.co.p50).median,
                    Stats::of(&f.rw.p50).median,
                    Stats::of(&f.co.p99).median,
                    Stats::of(&f.rw.p99).median,
                ),
                met: r.median >= 1.5,
            });
        }
    }
    Ok((out, targets))
}

fn server_raw(server: Server) -> &'static str {
    match server {
        Server::Redis => "raw fred",
        Server::Memcached => "raw async-memcached",
    }
}
