//! The cost of `#[cached]` on a hit, against a hand-written `cache.get` of the same key.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_core::Cache;
use cache_macros::cached;
use cache_memory::MemoryBackend;

use crate::harness::{Stats, Target, paired};

/// Keys per pass.
const KEYS: u32 = 1024;

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));

/// The value of item `id`: what a hit returns (a 40-odd byte string).
fn value(id: u32) -> String {
    format!("item number {id:08} of the catalogue, v1")
}

#[cached(crate = "cache_core", cache = CACHE, key = "item:{id}")]
async fn item(id: u32) -> String {
    value(id)
}

#[cached(crate = "cache_core", cache = CACHE)]
async fn item_default_key(id: u32) -> String {
    value(id)
}

/// The same read by hand.
async fn item_by_hand(id: u32) -> Option<String> {
    CACHE
        .get::<String>(&format!("item:{id}"))
        .await
        .ok()
        .flatten()
}

#[derive(Clone, Copy)]
enum Contender {
    ByHand,
    Template,
    DefaultKey,
}

const CONTENDERS: [(Contender, &str); 3] = [
    (
        Contender::ByHand,
        "hand-written `cache.get(&format!(\"item:{id}\"))`",
    ),
    (Contender::Template, "`#[cached(key = \"item:{id}\")]`"),
    (
        Contender::DefaultKey,
        "`#[cached]` with the default key (JSON of the arguments)",
    ),
];

/// Nanoseconds per call of `who`, all hits, for about `dur`.
async fn ns_per_call(who: Contender, dur: Duration) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < dur {
        for id in 0..KEYS {
            match who {
                Contender::ByHand => {
                    std::hint::black_box(item_by_hand(std::hint::black_box(id)).await);
                }
                Contender::Template => {
                    std::hint::black_box(item(std::hint::black_box(id)).await);
                }
                Contender::DefaultKey => {
                    std::hint::black_box(item_default_key(std::hint::black_box(id)).await);
                }
            }
        }
        n += u64::from(KEYS);
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

/// The section and its target.
pub fn run(rounds: usize, dur: Duration) -> (String, Target) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let samples = rt.block_on(async {
        // Fill the cache through the functions themselves, then check the hand-written read
        // sees the same entries.
        for id in 0..KEYS {
            item(id).await;
            item_default_key(id).await;
        }
        assert_eq!(item_by_hand(7).await, Some(value(7)));
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CONTENDERS.len()];
        for round in 0..rounds {
            for i in 0..CONTENDERS.len() {
                let c = (i + round) % CONTENDERS.len();
                samples[c].push(ns_per_call(CONTENDERS[c].0, dur).await);
            }
        }
        samples
    });
    let ratio = paired(&samples[1], &samples[0]);
    let mut out = format!(
        "## Cached functions\n\nCommand: `cargo x bench decorators` (also part of `memory`). One task on a current-thread runtime, hits on {KEYS} keys of the memory backend (`Cache<Json>`, default 5 s deadline, a 40-byte string value), {rounds} interleaved rounds of {:.1} s; median ns per call (min – max).\n\n| call | ns per call | min – max | vs hand-written |\n|---|---|---|---|\n",
        dur.as_secs_f64()
    );
    let base = paired(&samples[0], &samples[0]);
    for (i, (_, name)) in CONTENDERS.iter().enumerate() {
        let s = Stats::of(&samples[i]);
        let r = if i == 0 {
            base
        } else {
            paired(&samples[i], &samples[0])
        };
        out.push_str(&format!(
            "| {name} | {:.0} | {:.0} – {:.0} | {:.3}× |\n",
            s.median, s.min, s.max, r.median
        ));
    }
    let target = Target {
        what: "`#[cached]` hit vs hand-written `cache.get` of the same key (memory): time".into(),
        goal: "≤ 1.05×".into(),
        measured: format!(
            "{:.3}× (rounds {:.3}–{:.3})",
            ratio.median, ratio.min, ratio.max
        ),
        met: ratio.median <= 1.05,
    };
    out.push_str(&format!(
        "\nThe ratio is the median of the per-round ratios. The default key serializes the arguments to JSON and prefixes the function's path, so it costs more than a short template; it is shown for reference, not against the target.\n\n{}\n",
        target.line()
    ));
    (out, target)
}
