//! What tags cost on a read: a `get` of an entry written with two tags, through a cache with
//! tags on (the tags' times trusted in process), against a plain `get` of an untagged entry
//! through a cache without tags, over the same backend.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Backend, Cache, Tags};
use cache_memory::MemoryBackend;

use crate::harness::{Target, interleaved, two_calls};
use crate::workloads::{BoxError, Record, Server, record};

/// Keys read in turn by both contenders.
const KEYS: usize = 1_000;
/// The goal: a tagged `get` at most this many times a plain one.
const GOAL: f64 = 1.10;

/// The two caches compared, over one backend.
struct Caches {
    plain: Cache,
    tagged: Cache,
    plain_keys: Vec<String>,
    tagged_keys: Vec<String>,
}

impl Caches {
    /// Both caches in namespace `ns`, their keys written: `tg-plain-k{i}` with a plain
    /// `set`, `tg-tagged-k{i}` with tags `user:{i % 100}` and `all`.
    async fn new(backend: Arc<dyn Backend>, ns: &str) -> Result<Caches, BoxError> {
        let plain = Cache::builder(backend.clone())
            .namespace(ns)
            .timeout(Duration::from_secs(5))
            .build();
        let tagged = Cache::builder(backend)
            .namespace(ns)
            .timeout(Duration::from_secs(5))
            .tags(Tags::new())
            .build();
        let plain_keys: Vec<String> = (0..KEYS).map(|i| format!("tg-plain-k{i}")).collect();
        let tagged_keys: Vec<String> = (0..KEYS).map(|i| format!("tg-tagged-k{i}")).collect();
        for (i, key) in plain_keys.iter().enumerate() {
            plain.set(key, &record(i as u64)).await?;
        }
        for (i, key) in tagged_keys.iter().enumerate() {
            tagged
                .with_tags([format!("user:{}", i % 100), "all".to_owned()])
                .set(key, &record(i as u64))
                .await?;
        }
        Ok(Caches {
            plain,
            tagged,
            plain_keys,
            tagged_keys,
        })
    }

    async fn clean_up(&self) -> Result<(), BoxError> {
        self.plain.multi_delete(self.plain_keys.iter()).await?;
        self.tagged.multi_delete(self.tagged_keys.iter()).await?;
        Ok(())
    }

    /// Nanoseconds per `get`, `n` calls over the keys in turn; of the tagged cache when
    /// `tagged`.
    async fn ns_per_get(&self, tagged: bool, n: usize) -> Result<f64, BoxError> {
        let (cache, keys) = if tagged {
            (&self.tagged, &self.tagged_keys)
        } else {
            (&self.plain, &self.plain_keys)
        };
        let started = Instant::now();
        for i in 0..n {
            let v: Record = cache
                .get(&keys[i % keys.len()])
                .await?
                .ok_or("a get missed")?;
            std::hint::black_box(v);
        }
        Ok(started.elapsed().as_nanos() as f64 / n as f64)
    }
}

/// Per-round nanoseconds per call: `[plain, tagged]`.
struct Cost {
    samples: [Vec<f64>; 2],
    calls_per_round: usize,
}

async fn measure(caches: &Caches, n: usize, rounds: usize) -> Result<Cost, BoxError> {
    let samples = interleaved(rounds, n, |tagged, n| caches.ns_per_get(tagged, n)).await?;
    Ok(Cost {
        samples,
        calls_per_round: n,
    })
}

impl Cost {
    fn report(&self, backend: &str, setup: &str) -> (String, Target) {
        let mut out = String::new();
        let rounds = self.samples[0].len();
        let _ = writeln!(
            out,
            "\n### Tagged `get` vs plain `get` ({backend})\n\n{setup} {KEYS} keys holding the \
             benchmark's record, read in turn; each round times {} calls of each `get`, in an \
             order that turns every round ({rounds} rounds). The tagged cache has \
             `Tags::new()` (refresh 1 s) and its entries carry two tags each (`user:{{i % \
             100}}`, `all`), so a read unwraps the envelope and checks both tags against the \
             times it keeps in process; the plain cache has no tags. Median time per call \
             (min – max); the ratio is the median (min – max) of the per-round ratios.\n",
            self.calls_per_round,
        );
        let (rows, target) = two_calls(
            &self.samples,
            ["plain `get`", "`get` of a tagged entry, tags on"],
            format!("{backend} `get` of a tagged entry vs plain `get`: time"),
            GOAL,
        );
        out.push_str(&rows);
        (out, target)
    }
}

async fn one(
    backend: Arc<dyn Backend>,
    n: usize,
    rounds: usize,
    label: &str,
    setup: &str,
) -> (String, Target) {
    let ns = format!(
        "benchtags{:x}",
        cache_core::envelope::now_ms() ^ u64::from(std::process::id())
    );
    let result = async {
        let caches = Caches::new(backend, &ns).await?;
        let cost = measure(&caches, n, rounds).await?;
        caches.clean_up().await?;
        Ok::<_, BoxError>(cost)
    }
    .await;
    match result {
        Ok(cost) => cost.report(label, setup),
        Err(e) => {
            let target = Target::not_measured(
                format!("{label} `get` of a tagged entry vs plain `get`: time"),
                format!("≤ {GOAL:.2}×"),
                e,
            );
            (
                format!(
                    "\n### Tagged `get` vs plain `get` ({label})\n\n{}\n",
                    target.line()
                ),
                target,
            )
        }
    }
}

/// The section: memory, Redis and Memcached (the servers at `redis_url` and
/// `memcached_url`; a server that cannot be reached gives a row saying so).
pub fn run(redis_url: &str, memcached_url: &str, quick: bool) -> (String, Vec<Target>) {
    let rounds = if quick { 3 } else { 9 };
    let mut body = String::from(
        "## Tags\n\nCommand: `cargo run --release -p cache-bench -- tags`. What a read of an \
         entry written with tags costs once its tags' times are known in process.\n",
    );
    let mut targets = Vec::new();
    // memory: one task on a current-thread runtime, like the read-through rows
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (text, target) = rt.block_on(one(
        Arc::new(MemoryBackend::new()),
        if quick { 20_000 } else { 500_000 },
        rounds,
        "memory",
        "One task on a current-thread runtime, `Cache<Json>` over the memory backend with its \
         default 5 s deadline;",
    ));
    body.push_str(&text);
    targets.push(target);
    let rt = crate::runtime();
    let n = if quick { 300 } else { 10_000 };
    let servers = [
        (
            Server::Redis,
            redis_url,
            "Sequential calls from one task, `Cache<Json>` over one `RedisBackend` (one \
             auto-pipelined connection, 5 s deadline);",
        ),
        (
            Server::Memcached,
            memcached_url,
            "Sequential calls from one task, `Cache<Json>` over one `MemcachedBackend` (5 s \
             deadline);",
        ),
    ];
    let measured: Vec<Option<(String, Target)>> = servers
        .into_iter()
        .map(|(server, url, setup)| {
            rt.block_on(async {
                match server.backend(url).await {
                    Ok(b) => Some(one(b, n, rounds, server.title(), setup).await),
                    Err(e) => {
                        eprintln!("tags: {} not measured: {e}", server.title());
                        None
                    }
                }
            })
        })
        .collect();
    for (text, target) in measured.into_iter().flatten() {
        body.push_str(&text);
        targets.push(target);
    }
    (body, targets)
}
