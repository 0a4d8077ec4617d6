//! One contender of the 64-task Redis mix (90 % get / 10 % set, 1,000 keys, 100-byte values),
//! alone in its process, for profilers: `perf stat -e instructions:u` gives instructions per
//! operation, `perf record` where they go.
//!
//! ```sh
//! cargo build --release -p cache-bench --example mix_profile
//! CACHE_TEST_REDIS_URL=redis://127.0.0.1:16379 \
//!   perf stat -e instructions:u target/release/examples/mix_profile ours 200000
//! ```
//!
//! Contenders: `ours` (`Cache<RawBytes>` over `RedisBackend`, as the bench builds it),
//! `ours-layers` (the same with no timeout: the pipeline's pass-through cost),
//! `ours-coalesced` (with `CoalesceLayer`), `raw` (one fred `Client`, keys pre-built). A third
//! argument `gets` makes every operation a read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Cache, RawBytes};
use cache_redis::RedisConfig;
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, ServerConfig};

const TASKS: usize = 64;
const KEYS: usize = 1000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let who = args.next().unwrap_or_else(|| "ours".into());
    let ops: usize = args.next().map_or(Ok(200_000), |s| s.parse())?;
    // `gets`: only reads; `mget` / `mset`: one task, calls of 100 keys (`ops` keys in all);
    // otherwise one write in ten
    let mode = args.next().unwrap_or_default();
    let sets = mode != "gets";
    let multi = matches!(mode.as_str(), "mget" | "mset").then_some(mode.as_str());
    let url =
        std::env::var("CACHE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let config = RedisConfig::from_url(&url)?;
    let value = Bytes::from(vec![b'v'; 100]);
    let per_task = ops / TASKS;
    let started;
    match who.as_str() {
        "ours" | "ours-layers" | "ours-coalesced" => {
            let backend = config.into_builder().build().await?;
            let mut builder = Cache::builder(backend)
                .serializer(RawBytes)
                .namespace("mixprofile");
            builder = builder.timeout((who != "ours-layers").then_some(Duration::from_secs(5)));
            if who == "ours-coalesced" {
                builder = builder.layer(cache_core::layer::CoalesceLayer::new());
            }
            let cache = builder.build();
            let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("k{i}")).collect());
            for k in keys.iter() {
                cache.set(k, &value).await?;
            }
            started = Instant::now();
            if let Some(multi) = multi {
                for call in 0..ops / 100 {
                    let window = &keys[(call * 100) % KEYS..(call * 100) % KEYS + 100];
                    if multi == "mget" {
                        let v: Vec<Option<Bytes>> = cache.multi_get(window).await?;
                        std::hint::black_box(v);
                    } else {
                        cache.multi_set(window.iter().map(|k| (k, &value))).await?;
                    }
                }
                return report(&who, ops / 100 * 100, started);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..TASKS {
                let (cache, keys, value) = (cache.clone(), keys.clone(), value.clone());
                tasks.spawn(async move {
                    for i in 0..per_task {
                        let k = &keys[(t * 7919 + i * 104_729) % KEYS];
                        if sets && i % 10 == 0 {
                            cache.set(k, &value).await?;
                        } else {
                            let v: Option<Bytes> = cache.get(k).await?;
                            std::hint::black_box(v);
                        }
                    }
                    Ok::<(), cache_core::Error>(())
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
        }
        "raw" => {
            let client = Builder::from_config(Config {
                server: ServerConfig::new_centralized(config.endpoint.clone(), config.port),
                ..Config::default()
            })
            .build()?;
            client.init().await?;
            let keys: Arc<Vec<String>> =
                Arc::new((0..KEYS).map(|i| format!("mixprofile:k{i}")).collect());
            for k in keys.iter() {
                let () = client
                    .set(k.as_str(), value.clone(), None, None, false)
                    .await?;
            }
            started = Instant::now();
            if let Some(multi) = multi {
                for call in 0..ops / 100 {
                    let window = &keys[(call * 100) % KEYS..(call * 100) % KEYS + 100];
                    if multi == "mget" {
                        let names: Vec<&str> = window.iter().map(String::as_str).collect();
                        let v: Vec<Option<Bytes>> = client.mget(names).await?;
                        std::hint::black_box(v);
                    } else {
                        let pairs: Vec<(&str, Bytes)> =
                            window.iter().map(|k| (k.as_str(), value.clone())).collect();
                        let () = client.mset(pairs).await?;
                    }
                }
                return report(&who, ops / 100 * 100, started);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..TASKS {
                let (client, keys, value) = (client.clone(), keys.clone(), value.clone());
                tasks.spawn(async move {
                    for i in 0..per_task {
                        let k = keys[(t * 7919 + i * 104_729) % KEYS].as_str();
                        if sets && i % 10 == 0 {
                            let () = client.set(k, value.clone(), None, None, false).await?;
                        } else {
                            let v: Option<Bytes> = client.get(k).await?;
                            std::hint::black_box(v);
                        }
                    }
                    Ok::<(), fred::error::Error>(())
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
        }
        other => return Err(format!("unknown contender {other}: ours, ours-layers or raw").into()),
    }
    report(&who, per_task * TASKS, started)
}

fn report(who: &str, done: usize, started: Instant) -> Result<(), BoxError> {
    let elapsed = started.elapsed();
    println!(
        "{who}: {done} ops in {:.3} s = {:.0} ops/s",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
