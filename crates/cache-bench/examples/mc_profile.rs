//! One contender of the memcached workloads, alone in its process, for profilers: run it at
//! two operation counts under `valgrind --tool=callgrind` (or `perf stat -e instructions:u`
//! where the CPU counters are available) and divide the difference by the difference in
//! operations to get instructions per operation; `callgrind_annotate` tells where they go.
//!
//! ```sh
//! cargo build --release -p cache-bench --example mc_profile
//! CACHE_TEST_MEMCACHED_URL=memcached://127.0.0.1:11211 \
//!   valgrind --tool=callgrind target/release/examples/mc_profile ours mget 2000
//! ```
//!
//! `MC_PROFILE_RUNTIME=current` runs on one thread (steadier counts for the sequential
//! workloads); the default is the bench's runtime, two worker threads.
//!
//! Arguments: contender, workload, operations (calls for `mget` / `mset`), and `json` as a
//! fourth argument to encode records as JSON (`Cache<Json>`, `serde_json` by hand for raw);
//! bytes otherwise.
//!
//! Contenders, as `cargo x bench memcached` builds them: `ours` (`Cache<RawBytes>` or
//! `Cache<Json>` over `MemcachedBackend`, one server, pool of 8, 5 s timeout), `raw`
//! (async-memcached `Client`s behind a semaphore pool of 8, keys pre-built), `backend` (the
//! same `MemcachedBackend` called through the `Backend` trait with built keys and no deadline,
//! values as bytes: the backend's own cost without the cache above it; its `mget` / `mset`
//! also build the `String` keys, and the entries, that the trait takes).
//!
//! Workloads: `get` / `set` (sequential, one key each), `mget` (`multi_get` of 100 keys),
//! `mset` (`multi_set` of 100 keys), `mix` (64 tasks, 90 % get / 10 % set).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, MetaProtocol};
use bytes::Bytes;
use cache_core::{Backend, Cache, CallContext, Command, Json, OpSet, RawBytes};
use cache_memcached::{MemcachedBackend, MemcachedConfig};
use tokio::sync::Semaphore;

const KEYS: usize = 1000;
const BATCH: usize = 100;
const TASKS: usize = 64;
const POOL: usize = 8;
const NS: &str = "mcprofile";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn record(i: u64) -> Record {
    Record {
        id: i,
        name: format!("user-{i}"),
        tags: vec!["a".into(), "b".into()],
        score: i as f64 / 7.0,
    }
}

/// The raw contender's pool: a permit per connection and a stack of clients.
struct RawPool {
    permits: Semaphore,
    clients: Mutex<Vec<async_memcached::Client>>,
}

impl RawPool {
    async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&mut async_memcached::Client) -> T,
    ) -> Result<T, BoxError> {
        let _permit = self.permits.acquire().await?;
        let mut c = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or("no client")?;
        let r = f(&mut c).await;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(c);
        Ok(r)
    }
}

#[derive(Clone)]
enum Who {
    Bytes(Cache<RawBytes>),
    Json(Cache<Json>),
    Raw(Arc<RawPool>, bool),
    /// `MemcachedBackend` called through the `Backend` trait with built keys: the backend's
    /// own cost, without the cache above it.
    Backend(MemcachedBackend),
}

struct Data {
    user: Vec<String>,
    built: Vec<String>,
    json: Vec<Bytes>,
}

impl Who {
    async fn get(&self, d: &Data, i: usize) -> Result<(), BoxError> {
        match self {
            Who::Bytes(c) => {
                let v: Bytes = c.get(&d.user[i]).await?.ok_or("miss")?;
                std::hint::black_box(v);
            }
            Who::Json(c) => {
                let v: Record = c.get(&d.user[i]).await?.ok_or("miss")?;
                std::hint::black_box(v);
            }
            Who::Raw(p, json) => {
                let v = p.with(async |c| c.get(&d.built[i]).await).await??;
                let v = v.and_then(|v| v.data).ok_or("miss")?;
                if *json {
                    std::hint::black_box(serde_json::from_slice::<Record>(&v)?);
                } else {
                    std::hint::black_box(v);
                }
            }
            Who::Backend(b) => {
                let ctx = CallContext::new(Command::Get);
                let v = b.get(&ctx, &d.built[i]).await?.ok_or("miss")?;
                std::hint::black_box(v);
            }
        }
        Ok(())
    }

    async fn set(&self, d: &Data, i: usize) -> Result<(), BoxError> {
        match self {
            Who::Bytes(c) => c.set(&d.user[i], &d.json[i]).await?,
            Who::Json(c) => c.set(&d.user[i], &record(i as u64)).await?,
            Who::Raw(p, json) => {
                let encoded;
                let bytes: &[u8] = if *json {
                    encoded = serde_json::to_vec(&record(i as u64))?;
                    &encoded
                } else {
                    &d.json[i]
                };
                p.with(async |c| c.set(&d.built[i], bytes, None, None).await)
                    .await??;
            }
            Who::Backend(b) => {
                let ctx = CallContext::new(Command::Set);
                b.set(&ctx, &d.built[i], d.json[i].clone(), OpSet::new(None))
                    .await?;
            }
        }
        Ok(())
    }

    async fn multi_get(&self, d: &Data, picks: &[usize]) -> Result<(), BoxError> {
        let n = match self {
            Who::Bytes(c) => {
                let v: Vec<Option<Bytes>> = c
                    .multi_get(picks.iter().map(|&i| d.user[i].as_str()))
                    .await?;
                std::hint::black_box(&v).len()
            }
            Who::Json(c) => {
                let v: Vec<Option<Record>> = c
                    .multi_get(picks.iter().map(|&i| d.user[i].as_str()))
                    .await?;
                std::hint::black_box(&v).len()
            }
            Who::Raw(p, json) => {
                let keys: Vec<&str> = picks.iter().map(|&i| d.built[i].as_str()).collect();
                let values = p.with(async |c| c.get_multi(&keys).await).await??;
                if *json {
                    let mut by_key: HashMap<Vec<u8>, Record> = HashMap::with_capacity(values.len());
                    for v in values {
                        if let Some(data) = &v.data {
                            by_key.insert(v.key, serde_json::from_slice(data)?);
                        }
                    }
                    let v: Vec<Option<&Record>> =
                        keys.iter().map(|k| by_key.get(k.as_bytes())).collect();
                    std::hint::black_box(&v).len()
                } else {
                    let mut by_key: HashMap<Vec<u8>, Vec<u8>> =
                        HashMap::with_capacity(values.len());
                    for v in values {
                        if let Some(data) = v.data {
                            by_key.insert(v.key, data);
                        }
                    }
                    let v: Vec<Option<&Vec<u8>>> =
                        keys.iter().map(|k| by_key.get(k.as_bytes())).collect();
                    std::hint::black_box(&v).len()
                }
            }
            Who::Backend(b) => {
                let ctx = CallContext::new(Command::MultiGet);
                let keys: Vec<String> = picks.iter().map(|&i| d.built[i].clone()).collect();
                let v = b.multi_get(&ctx, &keys).await?;
                std::hint::black_box(&v).len()
            }
        };
        if n != picks.len() {
            return Err("multi_get answered the wrong number of values".into());
        }
        Ok(())
    }

    async fn multi_set(&self, d: &Data, picks: &[usize]) -> Result<(), BoxError> {
        match self {
            Who::Bytes(c) => {
                c.multi_set(picks.iter().map(|&i| (d.user[i].as_str(), &d.json[i])))
                    .await?;
            }
            Who::Json(c) => {
                c.multi_set(
                    picks
                        .iter()
                        .map(|&i| (d.user[i].as_str(), record(i as u64))),
                )
                .await?;
            }
            Who::Raw(p, json) => {
                let encoded: Vec<Vec<u8>> = if *json {
                    picks
                        .iter()
                        .map(|&i| serde_json::to_vec(&record(i as u64)))
                        .collect::<Result<_, _>>()?
                } else {
                    Vec::new()
                };
                let items: Vec<(&str, &[u8])> = picks
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| {
                        let value: &[u8] = if *json { &encoded[n] } else { &d.json[i] };
                        (d.built[i].as_str(), value)
                    })
                    .collect();
                let refused = p
                    .with(async |c| c.meta_set_multi(&items, None).await)
                    .await??;
                if !refused.is_empty() {
                    return Err("items not stored".into());
                }
            }
            Who::Backend(b) => {
                let ctx = CallContext::new(Command::MultiSet);
                let entries: Vec<(String, Bytes)> = picks
                    .iter()
                    .map(|&i| (d.built[i].clone(), d.json[i].clone()))
                    .collect();
                b.multi_set(&ctx, &entries, OpSet::new(None)).await?;
            }
        }
        Ok(())
    }
}

/// The same pseudo-random key sequence for every contender.
fn pick(n: usize) -> usize {
    (n.wrapping_mul(104_729).wrapping_add(7919)) % KEYS
}

fn main() -> Result<(), BoxError> {
    // `MC_PROFILE_RUNTIME=current`: one thread, for steadier counts of the sequential
    // workloads; the bench's two workers otherwise
    let runtime = match std::env::var("MC_PROFILE_RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run())
}

async fn run() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let who = args.next().unwrap_or_else(|| "ours".into());
    let workload = args.next().unwrap_or_else(|| "get".into());
    let ops: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;
    let json = args.next().as_deref() == Some("json");
    let url = std::env::var("CACHE_TEST_MEMCACHED_URL")
        .unwrap_or_else(|_| "memcached://127.0.0.1:11211".into());
    let mut config = MemcachedConfig::from_url(&url)?;
    config.servers.truncate(1);
    config.pool_size = POOL;
    let address = config.servers[0].address.clone();
    let data = Arc::new(Data {
        user: (0..KEYS).map(|i| format!("k{i}")).collect(),
        built: (0..KEYS).map(|i| format!("{NS}:k{i}")).collect(),
        json: (0..KEYS)
            .map(|i| Bytes::from(serde_json::to_vec(&record(i as u64)).expect("a record")))
            .collect(),
    });
    let contender = match who.as_str() {
        "ours" => {
            let backend = config.into_builder().build().await?;
            let builder = Cache::builder(backend)
                .namespace(NS)
                .timeout(Duration::from_secs(5));
            if json {
                Who::Json(builder.build())
            } else {
                Who::Bytes(builder.serializer(RawBytes).build())
            }
        }
        "raw" => {
            let mut clients = Vec::with_capacity(POOL);
            for _ in 0..POOL {
                clients.push(async_memcached::Client::new(format!("tcp://{address}")).await?);
            }
            Who::Raw(
                Arc::new(RawPool {
                    permits: Semaphore::new(POOL),
                    clients: Mutex::new(clients),
                }),
                json,
            )
        }
        "backend" => Who::Backend(config.into_builder().build().await?),
        other => return Err(format!("unknown contender {other}: ours, raw or backend").into()),
    };
    // every key present, with the same bytes for both contenders
    for i in 0..KEYS {
        contender.set(&data, i).await?;
    }
    let started = Instant::now();
    match workload.as_str() {
        "get" => {
            for n in 0..ops {
                contender.get(&data, pick(n)).await?;
            }
        }
        "set" => {
            for n in 0..ops {
                contender.set(&data, pick(n)).await?;
            }
        }
        "mget" | "mset" => {
            let mut picks = Vec::with_capacity(BATCH);
            for n in 0..ops {
                picks.clear();
                picks.extend((0..BATCH).map(|j| pick(n * BATCH + j)));
                if workload == "mget" {
                    contender.multi_get(&data, &picks).await?;
                } else {
                    contender.multi_set(&data, &picks).await?;
                }
            }
        }
        "mix" => {
            let per_task = ops / TASKS;
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..TASKS {
                let (contender, data) = (contender.clone(), data.clone());
                tasks.spawn(async move {
                    for i in 0..per_task {
                        let k = (t * 7919 + i * 104_729) % KEYS;
                        if i % 10 == 0 {
                            contender.set(&data, k).await?;
                        } else {
                            contender.get(&data, k).await?;
                        }
                    }
                    Ok::<(), BoxError>(())
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
        }
        other => return Err(format!("unknown workload {other}: get, set, mget, mset, mix").into()),
    }
    let elapsed = started.elapsed();
    println!(
        "{who} {workload}{}: {ops} ops in {:.3} s = {:.0} ops/s",
        if json { " json" } else { "" },
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
