//! What the read-through costs on a hit: a `get_or_set` whose key is present (its loader
//! never runs) against a plain `get` of the same key through the same cache, on every
//! backend; once on a cache without read-through options, once on a cache with fail-safe
//! (values in the envelope, last known values kept in process).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cache_core::{Cache, ReadThrough};
use cache_memory::MemoryBackend;

use crate::harness::{Stats, Target, paired, ratio_cell};
use crate::workloads::{BoxError, Record, record};

/// Keys read in turn by every contender.
pub const KEYS: usize = 1_000;
/// The fail-safe window of the fail-safe cache.
const MAX_STALE: Duration = Duration::from_secs(3_600);
/// The TTL of the entries: they stay fresh for the whole measurement.
const TTL: Duration = Duration::from_secs(300);

/// The loader of every measured `get_or_set`: on a hit it never runs; if it does, the call
/// fails and so does the benchmark.
#[derive(Debug)]
struct LoaderRan;

impl std::fmt::Display for LoaderRan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the loader of a get_or_set hit ran: the key was not present")
    }
}

impl std::error::Error for LoaderRan {}

/// The four calls, in table order: (fail-safe cache, `get_or_set`).
const CALLS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

fn call_label(fail_safe: bool, get_or_set: bool) -> &'static str {
    match (fail_safe, get_or_set) {
        (false, false) => "`get`",
        (false, true) => "`get_or_set` hit",
        (true, false) => "`get`, fail-safe cache",
        (true, true) => "`get_or_set` hit, fail-safe cache",
    }
}

/// The two caches compared, over one backend.
pub struct Caches {
    /// No read-through options: values stored as the serializer writes them.
    plain: Cache,
    /// `ReadThrough::new().fail_safe(1 h)`: values in the envelope, a `FailSafeLayer`.
    fail_safe: Cache,
    /// Keys of the plain cache.
    plain_keys: Vec<String>,
    /// Keys of the fail-safe cache, written through its `get_or_set` (in the envelope).
    fail_safe_keys: Vec<String>,
}

impl Caches {
    /// Both caches over `backend` in namespace `ns` with a `timeout` per call, and their keys
    /// written (`rt-plain-k{i}` with `set`, `rt-safe-k{i}` with `get_or_set`).
    ///
    /// # Errors
    /// When a write fails or a value is never stored.
    pub async fn new(
        backend: std::sync::Arc<dyn cache_core::Backend>,
        ns: &str,
        timeout: Duration,
    ) -> Result<Caches, BoxError> {
        let plain = Cache::builder(backend.clone())
            .namespace(ns)
            .ttl(TTL)
            .timeout(timeout)
            .build();
        let fail_safe = Cache::builder(backend)
            .namespace(ns)
            .ttl(TTL)
            .timeout(timeout)
            .read_through(ReadThrough::new().fail_safe(MAX_STALE))
            .build();
        let plain_keys: Vec<String> = (0..KEYS).map(|i| format!("rt-plain-k{i}")).collect();
        let fail_safe_keys: Vec<String> = (0..KEYS).map(|i| format!("rt-safe-k{i}")).collect();
        for (i, key) in plain_keys.iter().enumerate() {
            plain.set(key, &record(i as u64)).await?;
        }
        for (i, key) in fail_safe_keys.iter().enumerate() {
            let id = i as u64;
            let v: Record = fail_safe
                .get_or_set(key, move || async move {
                    Ok::<_, std::convert::Infallible>(record(id))
                })
                .await?;
            std::hint::black_box(v);
        }
        // the loaded values are written just after they are answered: wait until all landed
        for key in &fail_safe_keys {
            let mut tries = 0;
            while fail_safe.get::<Record>(key).await?.is_none() {
                tries += 1;
                if tries > 1_000 {
                    return Err(format!("{key} was never stored").into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(Caches {
            plain,
            fail_safe,
            plain_keys,
            fail_safe_keys,
        })
    }

    /// Deletes the keys written by [`new`](Self::new).
    ///
    /// # Errors
    /// When the delete fails.
    pub async fn clean_up(&self) -> Result<(), BoxError> {
        self.plain.multi_delete(self.plain_keys.iter()).await?;
        self.fail_safe
            .multi_delete(self.fail_safe_keys.iter())
            .await?;
        Ok(())
    }

    /// Nanoseconds per call of one of [`CALLS`], `n` calls over the keys in turn.
    async fn ns_per_call(
        &self,
        fail_safe: bool,
        get_or_set: bool,
        n: usize,
    ) -> Result<f64, BoxError> {
        let (cache, keys) = if fail_safe {
            (&self.fail_safe, &self.fail_safe_keys)
        } else {
            (&self.plain, &self.plain_keys)
        };
        let started = Instant::now();
        for i in 0..n {
            let key = &keys[i % keys.len()];
            let v: Record = if get_or_set {
                cache
                    .get_or_set(key, || async { Err::<Record, _>(LoaderRan) })
                    .await?
            } else {
                cache.get(key).await?.ok_or("a get missed")?
            };
            std::hint::black_box(v);
        }
        Ok(started.elapsed().as_nanos() as f64 / n as f64)
    }
}

/// Per-round nanoseconds per call of each of [`CALLS`].
pub struct HitCost {
    samples: [Vec<f64>; 4],
    calls_per_round: usize,
}

/// `rounds` interleaved rounds (the order of the four calls turns each round) of `n` calls
/// of each.
///
/// # Errors
/// When a call fails (a loader that runs fails its call).
pub async fn measure(caches: &Caches, n: usize, rounds: usize) -> Result<HitCost, BoxError> {
    // warm-up: connections, allocator, branch predictors
    for (fail_safe, get_or_set) in CALLS {
        caches
            .ns_per_call(fail_safe, get_or_set, (n / 10).max(100))
            .await?;
    }
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds.max(1) {
        for i in 0..CALLS.len() {
            let c = (i + round) % CALLS.len();
            let (fail_safe, get_or_set) = CALLS[c];
            samples[c].push(caches.ns_per_call(fail_safe, get_or_set, n).await?);
        }
    }
    Ok(HitCost {
        samples,
        calls_per_round: n,
    })
}

/// `123 ns` below 1 µs, `12.3 µs` above.
fn time(ns: f64) -> String {
    if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

impl HitCost {
    /// Time per `get_or_set` hit over time per `get`, per round; of the fail-safe cache when
    /// `fail_safe`.
    fn ratio(&self, fail_safe: bool) -> Stats {
        let (get, hit) = if fail_safe { (2, 3) } else { (0, 1) };
        // time ratio hit / get = rate ratio get / hit, with rates 1 / time
        let rate = |v: &[f64]| v.iter().map(|t| 1.0 / t).collect::<Vec<f64>>();
        paired(&rate(&self.samples[get]), &rate(&self.samples[hit]))
    }

    /// The subsection for `backend` ("memory", "Redis", "Memcached") and its target.
    pub fn report(&self, backend: &str, setup: &str) -> (String, Target) {
        let mut out = String::new();
        let rounds = self.samples[0].len();
        let _ = writeln!(
            out,
            "\n### `get_or_set` hit vs `get` ({backend})\n\n{setup} {KEYS} keys holding the \
             benchmark's record, read in turn; each round times {} calls of each of the four \
             calls below, in an order that turns every round ({rounds} rounds). The `get_or_set` \
             calls find their key (their loader never runs) and are compared with a `get` of \
             the same keys through the same cache. The fail-safe cache has \
             `ReadThrough::new().fail_safe(1 h)`: its values are stored in the value envelope \
             (written by its `get_or_set`) and read through the layer that keeps the last known \
             values. Median time per call (min – max); ratios are medians (min – max) of the \
             per-round ratios.\n\n| call | time per call | vs `get` of the same cache |\n|---|---|---|",
            self.calls_per_round,
        );
        for (i, (fail_safe, get_or_set)) in CALLS.iter().enumerate() {
            let s = Stats::of(&self.samples[i]);
            let ratio = if *get_or_set {
                ratio_cell(self.ratio(*fail_safe))
            } else {
                "—".to_owned()
            };
            let _ = writeln!(
                out,
                "| {} | {} ({} – {}) | {ratio} |",
                call_label(*fail_safe, *get_or_set),
                time(s.median),
                time(s.min),
                time(s.max)
            );
        }
        // what the envelope and the kept values add to a get_or_set hit
        let rate = |v: &[f64]| v.iter().map(|t| 1.0 / t).collect::<Vec<f64>>();
        let envelope = paired(&rate(&self.samples[1]), &rate(&self.samples[3]));
        let _ = writeln!(
            out,
            "\nFail-safe's cost on a `get_or_set` hit (fail-safe cache / cache without options, \
             time per call): {}.\n",
            ratio_cell(envelope)
        );
        let ratio = self.ratio(false);
        let target = Target {
            what: format!("{backend} `get_or_set` hit vs `get` of the same key: time"),
            goal: "≤ 1.05×".into(),
            measured: format!(
                "{:.3}× (rounds {:.3}–{:.3})",
                ratio.median, ratio.min, ratio.max
            ),
            met: ratio.median <= 1.05,
        };
        let _ = writeln!(out, "{}\n", target.line());
        (out, target)
    }
}

/// The memory backend's subsection: one task on a current-thread runtime.
pub fn memory(rounds: usize, n: usize) -> (String, Target) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let cost = rt.block_on(async {
        let backend: std::sync::Arc<dyn cache_core::Backend> =
            std::sync::Arc::new(MemoryBackend::new());
        let caches = Caches::new(backend, "bench", Duration::from_secs(5)).await?;
        measure(&caches, n, rounds).await
    });
    match cost {
        Ok(cost) => cost.report(
            "memory",
            "One task on a current-thread runtime, `Cache<Json>` over the memory backend with \
             its default 5 s deadline;",
        ),
        Err(e) => {
            let target = Target::not_measured(
                "memory `get_or_set` hit vs `get` of the same key: time",
                "≤ 1.05×",
                e,
            );
            (
                format!(
                    "\n### `get_or_set` hit vs `get` (memory)\n\n{}\n",
                    target.line()
                ),
                target,
            )
        }
    }
}
