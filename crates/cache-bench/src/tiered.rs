//! The in-process tier: a local hit through `Cache<Json>` against moka's `get` of the same
//! typed value; a fleet of four instances against one Redis, with and without the local
//! level; and the delay from a write's return to every other instance dropping its copy.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::layer::Layer;
use cache_core::{Backend, Cache};
use cache_tiered::TierLayer;

use cache_core::tier::{Invalidator, Locality};
use cache_redis::{RedisConfig, RedisPubSub};

use crate::harness::{Stats, Target, interleaved, rate, two_calls};
use crate::workloads::{BoxError, Data, KEYS as FLEET_KEYS, Record, TASKS, ZIPF_S, record};

/// Keys read in turn by the local-hit contenders.
const KEYS: usize = 1_000;
/// The goal: a local hit through `Cache<Json>` takes at most this many times moka's `get`
/// (throughput ≥ 0.5× moka).
const HIT_GOAL: f64 = 2.0;

/// The contenders of the local-hit measurement, their keys written and read once.
struct Hit {
    moka: moka::future::Cache<String, Record>,
    tier: Cache,
    keys: Vec<String>,
}

impl Hit {
    async fn new(remote: Arc<dyn Backend>) -> Result<Hit, BoxError> {
        let tier = TierLayer::builder()
            .max_entries(KEYS as u64 * 2)
            .build()
            .await?;
        let ns = format!(
            "benchtier{:x}",
            cache_core::envelope::now_ms() ^ u64::from(std::process::id())
        );
        let tier = Cache::builder(tier.layer(remote))
            .namespace(ns)
            .timeout(Duration::from_secs(5))
            .build();
        let moka = moka::future::Cache::builder()
            .max_capacity(KEYS as u64 * 2)
            .build();
        let keys: Vec<String> = (0..KEYS).map(|i| format!("tier-k{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            tier.set(key, &record(i as u64)).await?;
            moka.insert(key.clone(), record(i as u64)).await;
            // the first hit decodes and keeps the value
            tier.get_shared::<Record>(key)
                .await?
                .ok_or("a local read missed")?;
        }
        Ok(Hit { moka, tier, keys })
    }

    /// Nanoseconds per read, `n` reads over the keys in turn: moka's `get` (`tier`
    /// false) or the tier's `get_shared` (true).
    async fn ns_per_get(&self, tier: bool, n: usize) -> Result<f64, BoxError> {
        let started = Instant::now();
        for i in 0..n {
            let key = &self.keys[i % self.keys.len()];
            if tier {
                let v = self.tier.get_shared::<Record>(key).await?;
                std::hint::black_box(v.ok_or("a local read missed")?);
            } else {
                let v = self.moka.get(key).await;
                std::hint::black_box(v.ok_or("a moka read missed")?);
            }
        }
        Ok(started.elapsed().as_nanos() as f64 / n as f64)
    }

    /// Nanoseconds per `get` that decodes every hit (for the table).
    async fn ns_per_decoding_get(&self, n: usize) -> Result<f64, BoxError> {
        let started = Instant::now();
        for i in 0..n {
            let v: Record = self
                .tier
                .get(&self.keys[i % self.keys.len()])
                .await?
                .ok_or("a local read missed")?;
            std::hint::black_box(v);
        }
        Ok(started.elapsed().as_nanos() as f64 / n as f64)
    }
}

/// The local-hit rows: moka vs the tier's `get_shared`, interleaved rounds.
async fn local_hit(remote: Arc<dyn Backend>, n: usize, rounds: usize) -> (String, Target) {
    let what = "tier: a local hit through `Cache<Json>` (`get_shared`) vs moka's `get` of the \
                same typed value: time"
        .to_owned();
    let measured = async {
        let hit = Hit::new(remote).await?;
        let samples = interleaved(rounds, n, |t, n| hit.ns_per_get(t, n)).await?;
        let decoding = hit.ns_per_decoding_get(n).await?;
        hit.tier.clear().await?;
        Ok::<_, BoxError>((samples, decoding))
    }
    .await;
    let (samples, decoding) = match measured {
        Ok(s) => s,
        Err(e) => {
            let target = Target::not_measured(what, format!("≤ {HIT_GOAL:.2}×"), e);
            return (format!("\n{}\n", target.line()), target);
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### A local hit\n\n{KEYS} keys holding the benchmark's record, read in turn by one \
         task; each round times {n} reads of each contender, in an order that turns every round \
         ({} rounds): moka 0.12 `future::Cache<String, Record>` (`get` clones the record) and a \
         `Cache<Json>` with a tier in front of Redis, every read a local hit through \
         `get_shared::<Record>` (the value decoded at the first hit, handed out as an `Arc`). \
         Median time per call (min – max); the ratio is the median (min – max) of the \
         per-round ratios. For comparison, a plain `get::<Record>` of the same local hits, \
         which decodes the JSON every time: {:.0} ns per call.\n",
        samples[0].len(),
        decoding
    );
    let (rows, target) = two_calls(
        &samples,
        ["moka `get`", "tier `get_shared`, local hit"],
        what,
        HIT_GOAL,
    );
    out.push_str(&rows);
    (out, target)
}

/// Instances of the fleet measurements.
const INSTANCES: usize = 4;
/// The goal: the fleet with local levels serves at least this many times the operations per
/// second of the fleet without.
const FLEET_GOAL: f64 = 5.0;
/// The goal for the 99th percentile of the invalidation delay.
const DELAY_GOAL: Duration = Duration::from_millis(5);

/// How the instances of a fleet are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fleet {
    /// No local level.
    Plain,
    /// A tier kept coherent by client tracking.
    Tracking,
    /// A tier kept coherent by a pub/sub backplane.
    PubSub,
}

impl Fleet {
    fn label(self) -> &'static str {
        match self {
            Fleet::Plain => "no local level",
            Fleet::Tracking => "tier, client tracking",
            Fleet::PubSub => "tier, pub/sub backplane",
        }
    }
}

/// One instance of a fleet in namespace `ns`.
async fn instance(
    url: &str,
    fleet: Fleet,
    ns: &str,
) -> Result<(Cache, Option<cache_tiered::TierStatsHandle>), BoxError> {
    let mut config = RedisConfig::from_url(url)?;
    if fleet == Fleet::Tracking {
        // client tracking pushes its invalidations over RESP3
        config.protocol = cache_redis::RespProtocol::Resp3;
    }
    let backend = config.into_builder().build().await?;
    let channel: Option<Arc<dyn Invalidator>> = match fleet {
        Fleet::Plain => None,
        Fleet::Tracking => Some(Arc::new(
            backend.tracking().prefix(format!("{ns}:")).build()?,
        )),
        Fleet::PubSub => Some(Arc::new(
            RedisPubSub::builder(url).channel(ns).build().await?,
        )),
    };
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let (stack, stats) = match channel {
        None => (backend, None),
        Some(channel) => {
            let tier = TierLayer::builder()
                .max_entries(FLEET_KEYS as u64 * 2)
                .invalidation_arc(channel)
                .build()
                .await?;
            let stats = tier.stats_handle();
            (tier.layer(backend), Some(stats))
        }
    };
    let cache = Cache::builder(stack)
        .namespace(ns.to_owned())
        .timeout(Duration::from_secs(5))
        .build();
    Ok((cache, stats))
}

/// Operations per second of `caches` running the 64-task 90/10 Zipf workload of `data`, task
/// `i` on instance `i % INSTANCES`, `per_task` operations each.
async fn fleet_rate(caches: &[Cache], data: &Arc<Data>, per_task: usize) -> Result<f64, BoxError> {
    let started = Instant::now();
    let tasks: Vec<_> = data
        .mix_zipf
        .iter()
        .enumerate()
        .map(|(i, ops)| {
            let (cache, data, ops) = (caches[i % caches.len()].clone(), data.clone(), ops.clone());
            tokio::spawn(async move {
                for &(k, set) in &ops[..per_task.min(ops.len())] {
                    let key = &data.user[k as usize];
                    if set {
                        cache.set(key, &record(u64::from(k))).await?;
                    } else {
                        let v: Option<Record> = cache.get(key).await?;
                        std::hint::black_box(v);
                    }
                }
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((per_task * TASKS) as f64 / started.elapsed().as_secs_f64())
}

/// The fleet rows: the three setups in interleaved rounds.
async fn fleet(
    url: &str,
    per_task: usize,
    rounds: usize,
) -> Result<(String, Vec<Target>), BoxError> {
    let ns = format!(
        "benchfleet{:x}",
        cache_core::envelope::now_ms() ^ u64::from(std::process::id())
    );
    let data = Arc::new(Data::new(&ns, per_task));
    let setups = [Fleet::Plain, Fleet::Tracking, Fleet::PubSub];
    let mut fleets = Vec::new();
    let mut stats = Vec::new();
    for setup in setups {
        let mut caches = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..INSTANCES {
            let (cache, handle) = instance(url, setup, &ns).await?;
            caches.push(cache);
            handles.extend(handle);
        }
        fleets.push(caches);
        stats.push(handles);
    }
    for (i, key) in data.user.iter().enumerate() {
        fleets[0][0].set(key, &record(i as u64)).await?;
    }
    for caches in &fleets {
        fleet_rate(caches, &data, per_task / 4).await?;
    }
    let mut samples = vec![Vec::new(); setups.len()];
    for round in 0..rounds {
        for i in 0..setups.len() {
            let c = (i + round) % setups.len();
            samples[c].push(fleet_rate(&fleets[c], &data, per_task).await?);
        }
    }
    fleets[0][0].clear().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Four instances against one Redis\n\n{INSTANCES} instances in one process, each \
         with its own connections (and its own local level and channel where it has one), \
         {TASKS} tasks spread over them, each running {per_task} operations: 90 % `get`, 10 % \
         `set` of a record, keys drawn from {FLEET_KEYS} by Zipf s={ZIPF_S}. Each round runs \
         the three fleets in an order that turns every round ({rounds} rounds); operations per \
         second, median (min – max); the ratio is the median (min – max) of the per-round \
         ratios to the fleet without a local level; the local hit ratio is over all rounds.\n\n\
         | fleet | operations per second | vs no local level | local hits |\n|---|---|---|---|"
    );
    let mut targets = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        let s = Stats::of(&samples[i]);
        let ratio = crate::harness::paired(&samples[i], &samples[0]);
        let vs = if i == 0 {
            "—".to_owned()
        } else {
            crate::harness::ratio_cell(ratio)
        };
        let (hits, misses) = stats[i].iter().fold((0, 0), |(h, m), s| {
            let s = s.get();
            (h + s.local_hits, m + s.local_misses)
        });
        let hit_ratio = if hits + misses == 0 {
            "—".to_owned()
        } else {
            format!("{:.1} %", 100.0 * hits as f64 / (hits + misses) as f64)
        };
        let _ = writeln!(
            out,
            "| {} | {} ({} – {}) | {vs} | {hit_ratio} |",
            setup.label(),
            rate(s.median),
            rate(s.min),
            rate(s.max)
        );
        if i > 0 {
            targets.push(Target {
                what: format!(
                    "tier: {INSTANCES} instances, {TASKS} tasks, 90/10 Zipf, against one Redis, \
                     {} vs no local level: throughput",
                    setup.label()
                ),
                goal: format!("≥ {FLEET_GOAL:.1}×"),
                measured: format!(
                    "{:.2}× (rounds {:.2}–{:.2})",
                    ratio.median, ratio.min, ratio.max
                ),
                met: ratio.median >= FLEET_GOAL,
            });
        }
    }
    let _ = writeln!(
        out,
        "\nA write drops the copies of its key in the other instances (with client tracking \
         also the writer's own: the server reports a connection's own writes), so a key read \
         fewer times between two writes than there are instances misses about as often as it \
         hits. With 10 % writes over Zipf keys most keys are in that case; the local hit ratio \
         above bounds what any local level can gain on this workload (at most about \
         1 / (1 − hit ratio) with free hits and free writes)."
    );
    for t in &targets {
        let _ = writeln!(out, "\n{}", t.line());
    }
    out.push('\n');
    Ok((out, targets))
}

/// Microseconds from a write's return until every other instance's local level dropped the
/// key, for `trials` writes, in a fleet of `fleet`.
async fn delays(url: &str, fleet: Fleet, trials: usize) -> Result<Vec<f64>, BoxError> {
    let ns = format!(
        "benchdelay{:x}",
        cache_core::envelope::now_ms() ^ u64::from(std::process::id())
    );
    let mut caches = Vec::new();
    for _ in 0..INSTANCES {
        caches.push(instance(url, fleet, &ns).await?.0);
    }
    let mut delays = Vec::with_capacity(trials * (INSTANCES - 1));
    for t in 0..trials as u64 {
        let key = format!("d{}", t % 16);
        caches[0].set(&key, &t).await?;
        // every other instance holds the value locally
        for cache in &caches[1..] {
            let local = cache.with_locality(Locality::LocalOnly);
            let until = Instant::now() + Duration::from_secs(2);
            while local.get::<u64>(&key).await? != Some(t) {
                let _ = cache.get::<u64>(&key).await?;
                if Instant::now() > until {
                    return Err("a copy was never made".into());
                }
            }
        }
        let watchers: Vec<_> = caches[1..]
            .iter()
            .map(|cache| {
                let (cache, key) = (cache.clone(), key.clone());
                tokio::spawn(async move {
                    let local = cache.with_locality(Locality::LocalOnly);
                    let until = Instant::now() + Duration::from_secs(2);
                    loop {
                        if local.get::<u64>(&key).await? != Some(t) {
                            return Ok::<Instant, BoxError>(Instant::now());
                        }
                        if Instant::now() > until {
                            return Err("the copy was never dropped".into());
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        caches[0].set(&key, &(t + 1_000_000)).await?;
        let returned = Instant::now();
        for w in watchers {
            let dropped = w.await??;
            delays.push(dropped.saturating_duration_since(returned).as_secs_f64() * 1e6);
        }
    }
    caches[0].clear().await?;
    Ok(delays)
}

/// The invalidation delay rows of both channels.
async fn delay_section(url: &str, trials: usize) -> (String, Vec<Target>) {
    let mut out = format!(
        "\n### Invalidation delay\n\n{INSTANCES} instances; {trials} times, the other three \
         hold a key locally, one writes it, and each of the others checks its local level in \
         a loop; the delay runs from the write's return to the other instance's copy being \
         gone (zero when it was gone before the write returned).\n\n\
         | channel | p50 | p99 | max |\n|---|---|---|---|\n"
    );
    let mut targets = Vec::new();
    for fleet in [Fleet::Tracking, Fleet::PubSub] {
        let what = format!(
            "tier: invalidation delay on loopback, {}, from a write's return to every other \
             instance dropping its copy: p99",
            fleet.label()
        );
        match delays(url, fleet, trials).await {
            Ok(mut d) => {
                d.sort_by(f64::total_cmp);
                let at = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize];
                let (p50, p99, max) = (at(0.5), at(0.99), d[d.len() - 1]);
                let _ = writeln!(
                    out,
                    "| {} | {:.0} µs | {:.0} µs | {:.0} µs |",
                    fleet.label(),
                    p50,
                    p99,
                    max
                );
                targets.push(Target {
                    what,
                    goal: format!("≤ {} ms", DELAY_GOAL.as_millis()),
                    measured: format!(
                        "{:.2} ms (p50 {:.2} ms, max {:.2} ms)",
                        p99 / 1e3,
                        p50 / 1e3,
                        max / 1e3
                    ),
                    met: p99 <= DELAY_GOAL.as_secs_f64() * 1e6,
                });
            }
            Err(e) => targets.push(Target::not_measured(
                what,
                format!("≤ {} ms", DELAY_GOAL.as_millis()),
                e,
            )),
        }
    }
    out.push('\n');
    for t in &targets {
        let _ = writeln!(out, "{}\n", t.line());
    }
    (out, targets)
}

async fn redis(url: &str) -> Result<Arc<dyn Backend>, BoxError> {
    Ok(Arc::new(
        cache_redis::RedisConfig::from_url(url)?
            .into_builder()
            .build()
            .await?,
    ))
}

/// The section and its targets.
pub fn run(redis_url: &str, quick: bool) -> (String, Vec<Target>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (n, rounds) = if quick { (2_000, 2) } else { (200_000, 9) };
        let mut body = String::from("## Tiered cache\n");
        let mut targets = Vec::new();
        let remote = match redis(redis_url).await {
            Ok(b) => b,
            Err(e) => {
                let target = Target::not_measured("tier: a local hit", "≤ 2.00×", e);
                body.push_str(&format!("\n{}\n", target.line()));
                return (body, vec![target]);
            }
        };
        let (section, target) = local_hit(remote, n, rounds).await;
        body.push_str(&section);
        targets.push(target);
        let (per_task, fleet_rounds) = if quick { (200, 2) } else { (5_000, 7) };
        match fleet(redis_url, per_task, fleet_rounds).await {
            Ok((section, t)) => {
                body.push_str(&section);
                targets.extend(t);
            }
            Err(e) => {
                let target =
                    Target::not_measured("tier: four instances against one Redis", "≥ 5.0×", e);
                body.push_str(&format!("\n{}\n", target.line()));
                targets.push(target);
            }
        }
        let (section, t) = delay_section(redis_url, if quick { 20 } else { 300 }).await;
        body.push_str(&section);
        targets.extend(t);
        (body, targets)
    })
}
