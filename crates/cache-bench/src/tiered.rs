//! The in-process tier: a local hit through `Cache<Json>` against moka's `get` of the same
//! typed value; a fleet of four instances against one Redis, with and without the local
//! level; and the delay from a write's return to every other instance dropping its copy.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::layer::Layer;
use cache_core::{Backend, Cache};
use cache_tiered::TierLayer;

use crate::harness::{Target, interleaved, two_calls};
use crate::workloads::{BoxError, Record, record};

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
        (body, targets)
    })
}
