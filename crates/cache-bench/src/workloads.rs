//! The workloads and contenders of the network benchmarks: the data every contender reads
//! and writes, the raw clients, and one run of a workload. [`crate::net`] runs them in rounds
//! and reports.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, MetaProtocol};
use bytes::Bytes;
use cache_core::{Backend, Cache, RawBytes};
use cache_memcached::MemcachedConfig;
use cache_redis::{RedisConfig, RespProtocol};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, ServerConfig, TcpConfig};
use fred::types::{Key, Value};
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Errors of a workload.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Keys of the working set.
pub const KEYS: usize = 10_000;
/// Counter keys of the increment workload.
pub const COUNTERS: usize = 100;
/// Concurrent tasks of the mixed workloads.
pub const TASKS: usize = 64;
/// Connections of the memcached pools (ours and raw) and of aiocache's memcached client.
pub const POOL_SIZE: usize = 8;
/// Exponent of the Zipf key distribution.
pub const ZIPF_S: f64 = 1.0;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// redis-server.
    Redis,
    /// memcached.
    Memcached,
}

impl Server {
    /// Lowercase name: section marker, chart file, aiocache backend.
    pub fn name(self) -> &'static str {
        match self {
            Server::Redis => "redis",
            Server::Memcached => "memcached",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Server::Redis => "Redis",
            Server::Memcached => "Memcached",
        }
    }

    pub(crate) fn raw_name(self) -> &'static str {
        match self {
            Server::Redis => "raw fred",
            Server::Memcached => "raw async-memcached",
        }
    }

    /// The server named `name` (as [`Server::name`] gives it).
    pub(crate) fn from_name(name: &str) -> Option<Server> {
        [Server::Redis, Server::Memcached]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// Our backend for this server at `url`, configured by the URL alone.
    pub(crate) async fn backend(self, url: &str) -> Result<Arc<dyn Backend>, BoxError> {
        Ok(match self {
            Server::Redis => Arc::new(RedisConfig::from_url(url)?.into_builder().build().await?),
            Server::Memcached => Arc::new(
                MemcachedConfig::from_url(url)?
                    .into_builder()
                    .build()
                    .await?,
            ),
        })
    }

    /// The raw round trip the lock measurement compares with.
    pub(crate) fn raw_ping(self) -> &'static str {
        match self {
            Server::Redis => "a fred `GET` of an absent key",
            Server::Memcached => "an async-memcached `get` of an absent key",
        }
    }
}

/// The workloads, in the order they run and are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Sequential `get` of uniform keys.
    SeqGet,
    /// Sequential `set` of uniform keys.
    SeqSet,
    /// 64 tasks, 90 % get / 10 % set, uniform keys.
    MixUniform,
    /// 64 tasks, 90 % get / 10 % set, Zipf keys.
    MixZipf,
    /// Sequential `multi_get` of 10 keys.
    MultiGet10,
    /// Sequential `multi_get` of 100 keys.
    MultiGet100,
    /// Sequential `multi_set` of 100 keys.
    MultiSet100,
    /// Sequential `increment` by 1 of 100 counters.
    Incr,
}

/// What the values are on both sides of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Records through `serde_json`: `Cache<Json>`, and the raw client with `serde_json` by
    /// hand.
    Json,
    /// The records' JSON bytes as they are: `Cache<RawBytes>` with `Bytes` values, and the raw
    /// client sending and answering bytes.
    Bytes,
}

impl Workload {
    pub(crate) const ALL: [Workload; 8] = [
        Workload::SeqGet,
        Workload::SeqSet,
        Workload::MixUniform,
        Workload::MixZipf,
        Workload::MultiGet10,
        Workload::MultiGet100,
        Workload::MultiSet100,
        Workload::Incr,
    ];

    /// Whether the workload also runs in [`Mode::Bytes`].
    pub(crate) fn has_bytes(self) -> bool {
        matches!(
            self,
            Workload::SeqGet
                | Workload::SeqSet
                | Workload::MixUniform
                | Workload::MultiGet100
                | Workload::MultiSet100
        )
    }

    /// The name in aiocache_bench.py's JSON output.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Workload::SeqGet => "seq_get",
            Workload::SeqSet => "seq_set",
            Workload::MixUniform => "mix_uniform",
            Workload::MixZipf => "mix_zipf",
            Workload::MultiGet10 => "multi_get_10",
            Workload::MultiGet100 => "multi_get_100",
            Workload::MultiSet100 => "multi_set_100",
            Workload::Incr => "increment",
        }
    }

    pub(crate) fn label(self) -> String {
        match self {
            Workload::SeqGet => "sequential get".into(),
            Workload::SeqSet => "sequential set".into(),
            Workload::MixUniform => format!("{TASKS} tasks, 90/10 get/set, uniform keys"),
            Workload::MixZipf => format!("{TASKS} tasks, 90/10 get/set, Zipf s={ZIPF_S} keys"),
            Workload::MultiGet10 => "multi_get of 10 keys".into(),
            Workload::MultiGet100 => "multi_get of 100 keys".into(),
            Workload::MultiSet100 => "multi_set of 100 keys".into(),
            Workload::Incr => format!("sequential increment ({COUNTERS} counters)"),
        }
    }

    pub(crate) fn short(self) -> &'static str {
        match self {
            Workload::SeqGet => "seq get",
            Workload::SeqSet => "seq set",
            Workload::MixUniform => "mix uniform",
            Workload::MixZipf => "mix Zipf",
            Workload::MultiGet10 => "multi_get 10",
            Workload::MultiGet100 => "multi_get 100",
            Workload::MultiSet100 => "multi_set 100",
            Workload::Incr => "increment",
        }
    }

    pub(crate) fn unit(self) -> &'static str {
        match self {
            Workload::MultiGet10 | Workload::MultiGet100 | Workload::MultiSet100 => "calls/s",
            _ => "ops/s",
        }
    }
}

/// Operations per workload and round.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Interleaved rounds.
    pub rounds: usize,
    /// Sequential get / set calls.
    pub sequential: usize,
    /// Operations of each of the 64 tasks.
    pub per_task: usize,
    /// `multi_get` calls of 10 keys.
    pub multi_10: usize,
    /// `multi_get` calls of 100 keys.
    pub multi_100: usize,
    /// `multi_set` calls of 100 keys.
    pub multi_set: usize,
    /// Sequential increments.
    pub incr: usize,
}

impl Sizes {
    /// Sizes of the Rust contenders.
    pub fn rust(quick: bool) -> Sizes {
        if quick {
            Sizes {
                rounds: 2,
                sequential: 300,
                per_task: 20,
                multi_10: 100,
                multi_100: 30,
                multi_set: 30,
                incr: 300,
            }
        } else {
            Sizes {
                rounds: 7,
                sequential: 8_000,
                per_task: 1_000,
                multi_10: 2_000,
                multi_100: 500,
                multi_set: 500,
                incr: 5_000,
            }
        }
    }

    /// Sizes of the aiocache process (slower, so fewer operations; rates are per second).
    pub fn python(quick: bool) -> Sizes {
        if quick {
            Sizes {
                rounds: 2,
                sequential: 100,
                per_task: 5,
                multi_10: 30,
                multi_100: 10,
                multi_set: 10,
                incr: 100,
            }
        } else {
            Sizes {
                rounds: 7,
                sequential: 1_500,
                per_task: 150,
                multi_10: 400,
                multi_100: 150,
                multi_set: 150,
                incr: 1_500,
            }
        }
    }
}

/// The cached value: a small record, about 60 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

/// The record stored under key `i`.
pub fn record(id: u64) -> Record {
    Record {
        id,
        name: format!("user-{id}"),
        tags: vec!["a".into(), "b".into()],
        score: id as f64 / 7.0,
    }
}

/// A tiny deterministic generator, so every contender sees the same key sequence.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One operation of a mixed workload: key index, and whether it is a set.
pub(crate) type MixOp = (u32, bool);

/// Keys and pre-generated operation sequences, shared by the contenders.
pub(crate) struct Data {
    pub(crate) user: Vec<String>,
    built: Vec<String>,
    /// The JSON bytes of `record(i)`, the values of [`Mode::Bytes`].
    json: Vec<Bytes>,
    pub(crate) counters_user: Vec<String>,
    counters_built: Vec<String>,
    pub(crate) mix_uniform: Vec<Arc<Vec<MixOp>>>,
    pub(crate) mix_zipf: Vec<Arc<Vec<MixOp>>>,
}

impl Data {
    pub(crate) fn new(ns: &str, per_task: usize) -> Data {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let zipf = rand_distr::Zipf::new(KEYS as f64, ZIPF_S).expect("valid zipf");
        // scatter the Zipf ranks over the key space
        let mut perm: Vec<u32> = (0..KEYS as u32).collect();
        for i in (1..perm.len()).rev() {
            let j = rng.random_range(0..=i);
            perm.swap(i, j);
        }
        let mut mix = |z: bool| -> Vec<Arc<Vec<MixOp>>> {
            (0..TASKS)
                .map(|_| {
                    Arc::new(
                        (0..per_task)
                            .map(|_| {
                                let k = if z {
                                    perm[(zipf.sample(&mut rng) as usize - 1).min(KEYS - 1)]
                                } else {
                                    rng.random_range(0..KEYS as u32)
                                };
                                (k, rng.random_range(0..10) == 0)
                            })
                            .collect(),
                    )
                })
                .collect()
        };
        let mix_uniform = mix(false);
        let mix_zipf = mix(true);
        Data {
            user: (0..KEYS).map(|i| format!("k{i}")).collect(),
            built: (0..KEYS).map(|i| format!("{ns}:k{i}")).collect(),
            json: (0..KEYS)
                .map(|i| Bytes::from(serde_json::to_vec(&record(i as u64)).expect("a record")))
                .collect(),
            counters_user: (0..COUNTERS).map(|i| format!("c{i}")).collect(),
            counters_built: (0..COUNTERS).map(|i| format!("{ns}:c{i}")).collect(),
            mix_uniform,
            mix_zipf,
        }
    }
}

/// The least a pool of raw memcached clients does: a permit per connection and a stack of
/// clients.
pub struct RawPool {
    permits: Semaphore,
    clients: Mutex<Vec<async_memcached::Client>>,
}

/// A client taken from a [`RawPool`]; goes back on drop.
struct Taken<'a> {
    pool: &'a RawPool,
    client: Option<async_memcached::Client>,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.pool
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(c);
        }
    }
}

impl RawPool {
    async fn new(dsn: &str, size: usize) -> Result<RawPool, BoxError> {
        let mut clients = Vec::with_capacity(size);
        for _ in 0..size {
            clients.push(async_memcached::Client::new(dsn).await?);
        }
        Ok(RawPool {
            permits: Semaphore::new(size),
            clients: Mutex::new(clients),
        })
    }

    async fn take(&self) -> Taken<'_> {
        let permit = self.permits.acquire().await.expect("never closed");
        let client = self.clients.lock().unwrap_or_else(|p| p.into_inner()).pop();
        Taken {
            pool: self,
            client,
            _permit: permit,
        }
    }
}

impl Taken<'_> {
    fn client(&mut self) -> &mut async_memcached::Client {
        self.client.as_mut().expect("a permit guarantees a client")
    }
}

/// A contender: ours, or a raw client.
#[derive(Clone)]
pub(crate) enum Contender {
    /// `Cache<Json>`, records.
    Ours(Cache),
    /// `Cache<RawBytes>` on the same backend, `Bytes` values.
    OursBytes(Cache<RawBytes>),
    /// Raw fred, records through `serde_json` or bytes as they are.
    Fred(fred::prelude::Client, Mode),
    /// Raw async-memcached, records through `serde_json` or bytes as they are.
    Mc(Arc<RawPool>, Mode),
}

fn decode(bytes: &[u8]) -> Result<Record, BoxError> {
    Ok(serde_json::from_slice(bytes)?)
}

impl Contender {
    /// The same client in `mode` (raw clients only; ours is chosen by its serializer).
    pub(crate) fn in_mode(&self, mode: Mode) -> Contender {
        match self {
            Contender::Fred(c, _) => Contender::Fred(c.clone(), mode),
            Contender::Mc(p, _) => Contender::Mc(p.clone(), mode),
            other => other.clone(),
        }
    }

    /// One data round trip of the raw client with nothing to decode: a `GET` of an absent
    /// key.
    pub(crate) async fn round_trip(&self) -> Result<(), BoxError> {
        match self {
            Contender::Ours(c) => {
                c.exists("bench-round-trip").await?;
            }
            Contender::OursBytes(c) => {
                c.exists("bench-round-trip").await?;
            }
            Contender::Fred(c, _) => {
                let v: Option<Bytes> = c.get("bench-round-trip-absent").await?;
                std::hint::black_box(v);
            }
            Contender::Mc(p, _) => {
                let mut t = p.take().await;
                let v = t.client().get("bench-round-trip-absent").await?;
                std::hint::black_box(v);
            }
        }
        Ok(())
    }

    pub(crate) async fn get(&self, d: &Data, i: usize) -> Result<(), BoxError> {
        match self {
            Contender::Ours(c) => {
                let v: Record = c.get(&d.user[i]).await?.ok_or("miss")?;
                std::hint::black_box(v);
            }
            Contender::OursBytes(c) => {
                let v: Bytes = c.get(&d.user[i]).await?.ok_or("miss")?;
                std::hint::black_box(v);
            }
            Contender::Fred(c, mode) => {
                let b: Option<Bytes> = c.get(d.built[i].as_str()).await?;
                let b = b.ok_or("miss")?;
                match mode {
                    Mode::Json => {
                        std::hint::black_box(decode(&b)?);
                    }
                    Mode::Bytes => {
                        std::hint::black_box(b);
                    }
                }
            }
            Contender::Mc(p, mode) => {
                let mut t = p.take().await;
                let v = t.client().get(&d.built[i]).await?;
                drop(t);
                let v = v.and_then(|v| v.data).ok_or("miss")?;
                match mode {
                    Mode::Json => {
                        std::hint::black_box(decode(&v)?);
                    }
                    Mode::Bytes => {
                        std::hint::black_box(v);
                    }
                }
            }
        }
        Ok(())
    }

    async fn set(&self, d: &Data, i: usize) -> Result<(), BoxError> {
        match self {
            Contender::Ours(c) => c.set(&d.user[i], &record(i as u64)).await?,
            Contender::OursBytes(c) => c.set(&d.user[i], &d.json[i]).await?,
            Contender::Fred(c, mode) => {
                let bytes = match mode {
                    Mode::Json => Bytes::from(serde_json::to_vec(&record(i as u64))?),
                    Mode::Bytes => d.json[i].clone(),
                };
                let () = c.set(d.built[i].as_str(), bytes, None, None, false).await?;
            }
            Contender::Mc(p, mode) => {
                let encoded;
                let bytes: &[u8] = match mode {
                    Mode::Json => {
                        encoded = serde_json::to_vec(&record(i as u64))?;
                        &encoded
                    }
                    Mode::Bytes => &d.json[i],
                };
                let mut t = p.take().await;
                t.client().set(&d.built[i], bytes, None, None).await?;
            }
        }
        Ok(())
    }

    async fn multi_get(&self, d: &Data, picks: &[usize]) -> Result<(), BoxError> {
        let n = match self {
            Contender::Ours(c) => {
                let v: Vec<Option<Record>> = c
                    .multi_get(picks.iter().map(|&i| d.user[i].as_str()))
                    .await?;
                v.len()
            }
            Contender::OursBytes(c) => {
                let v: Vec<Option<Bytes>> = c
                    .multi_get(picks.iter().map(|&i| d.user[i].as_str()))
                    .await?;
                v.len()
            }
            Contender::Fred(c, mode) => {
                let keys: Vec<&str> = picks.iter().map(|&i| d.built[i].as_str()).collect();
                let values: Vec<Option<Bytes>> = c.mget(keys).await?;
                match mode {
                    Mode::Json => {
                        let v: Vec<Option<Record>> = values
                            .into_iter()
                            .map(|b| b.map(|b| decode(&b)).transpose())
                            .collect::<Result<_, _>>()?;
                        v.len()
                    }
                    Mode::Bytes => std::hint::black_box(values).len(),
                }
            }
            Contender::Mc(p, mode) => {
                let keys: Vec<&str> = picks.iter().map(|&i| d.built[i].as_str()).collect();
                let mut t = p.take().await;
                let values = t.client().get_multi(&keys).await?;
                drop(t);
                // answers come for hits only, keyed: put them back in request order
                match mode {
                    Mode::Json => {
                        let mut by_key: HashMap<Vec<u8>, Record> =
                            HashMap::with_capacity(values.len());
                        for v in values {
                            if let Some(data) = &v.data {
                                by_key.insert(v.key, decode(data)?);
                            }
                        }
                        let v: Vec<Option<&Record>> =
                            keys.iter().map(|k| by_key.get(k.as_bytes())).collect();
                        std::hint::black_box(&v);
                        v.len()
                    }
                    Mode::Bytes => {
                        let mut by_key: HashMap<Vec<u8>, Vec<u8>> =
                            HashMap::with_capacity(values.len());
                        for v in values {
                            if let Some(data) = v.data {
                                by_key.insert(v.key, data);
                            }
                        }
                        let v: Vec<Option<&Vec<u8>>> =
                            keys.iter().map(|k| by_key.get(k.as_bytes())).collect();
                        std::hint::black_box(&v);
                        v.len()
                    }
                }
            }
        };
        if n != picks.len() {
            return Err("multi_get answered the wrong number of values".into());
        }
        Ok(())
    }

    /// `multi_set` of the keys `picks` with their records (no TTL, as every write of the
    /// benchmark). Ours sends one `MSET` (Redis) or one pipeline of quiet meta sets ending in
    /// `mn` (memcached); the raw clients send the same: fred `MSET`,
    /// async-memcached `meta_set_multi` (`ms <key> <len> k q` per key, then `mn`).
    async fn multi_set(&self, d: &Data, picks: &[usize]) -> Result<(), BoxError> {
        match self {
            Contender::Ours(c) => {
                c.multi_set(
                    picks
                        .iter()
                        .map(|&i| (d.user[i].as_str(), record(i as u64))),
                )
                .await?;
            }
            Contender::OursBytes(c) => {
                c.multi_set(picks.iter().map(|&i| (d.user[i].as_str(), &d.json[i])))
                    .await?;
            }
            Contender::Fred(c, mode) => {
                let pairs = picks
                    .iter()
                    .map(|&i| {
                        let bytes = match mode {
                            Mode::Json => Bytes::from(serde_json::to_vec(&record(i as u64))?),
                            Mode::Bytes => d.json[i].clone(),
                        };
                        Ok((Key::from(d.built[i].as_str()), Value::Bytes(bytes)))
                    })
                    .collect::<Result<Vec<(Key, Value)>, BoxError>>()?;
                let () = c.mset(pairs).await?;
            }
            Contender::Mc(p, mode) => {
                let encoded: Vec<Vec<u8>> = match mode {
                    Mode::Json => picks
                        .iter()
                        .map(|&i| serde_json::to_vec(&record(i as u64)))
                        .collect::<Result<_, _>>()?,
                    Mode::Bytes => Vec::new(),
                };
                let items: Vec<(&str, &[u8])> = picks
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| {
                        let value: &[u8] = match mode {
                            Mode::Json => &encoded[n],
                            Mode::Bytes => &d.json[i],
                        };
                        (d.built[i].as_str(), value)
                    })
                    .collect();
                let mut t = p.take().await;
                // quiet mode: only the items not stored answer
                let refused = t.client().meta_set_multi(&items, None).await?;
                if !refused.is_empty() {
                    return Err(
                        format!("{} of {} items not stored", refused.len(), items.len()).into(),
                    );
                }
            }
        }
        Ok(())
    }

    async fn incr(&self, d: &Data, i: usize) -> Result<(), BoxError> {
        let n: i64 = match self {
            Contender::Ours(c) => c.increment(&d.counters_user[i], 1).await?,
            Contender::OursBytes(c) => c.increment(&d.counters_user[i], 1).await?,
            Contender::Fred(c, _) => c.incr_by(d.counters_built[i].as_str(), 1).await?,
            Contender::Mc(p, _) => {
                let mut t = p.take().await;
                let n = t.client().increment(&d.counters_built[i], 1).await?;
                i64::try_from(n)?
            }
        };
        std::hint::black_box(n);
        Ok(())
    }

    /// Runs workload `w` once; answers operations (or calls) per second.
    pub(crate) async fn run(&self, d: &Arc<Data>, w: Workload, s: &Sizes) -> Result<f64, BoxError> {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let start = Instant::now();
        let ops = match w {
            Workload::SeqGet => {
                for _ in 0..s.sequential {
                    self.get(d, rng.below(KEYS)).await?;
                }
                s.sequential
            }
            Workload::SeqSet => {
                for _ in 0..s.sequential {
                    self.set(d, rng.below(KEYS)).await?;
                }
                s.sequential
            }
            Workload::Incr => {
                for _ in 0..s.incr {
                    self.incr(d, rng.below(COUNTERS)).await?;
                }
                s.incr
            }
            Workload::MultiGet10 | Workload::MultiGet100 => {
                let (n, calls) = if w == Workload::MultiGet10 {
                    (10, s.multi_10)
                } else {
                    (100, s.multi_100)
                };
                let mut picks = vec![0; n];
                for _ in 0..calls {
                    for p in &mut picks {
                        *p = rng.below(KEYS);
                    }
                    self.multi_get(d, &picks).await?;
                }
                calls
            }
            Workload::MultiSet100 => {
                let mut picks = vec![0; 100];
                for _ in 0..s.multi_set {
                    for p in &mut picks {
                        *p = rng.below(KEYS);
                    }
                    self.multi_set(d, &picks).await?;
                }
                s.multi_set
            }
            Workload::MixUniform | Workload::MixZipf => {
                let seqs = if w == Workload::MixUniform {
                    &d.mix_uniform
                } else {
                    &d.mix_zipf
                };
                let per_task = s.per_task.min(seqs[0].len());
                let tasks: Vec<_> = seqs
                    .iter()
                    .map(|ops| {
                        let (c, d, ops) = (self.clone(), d.clone(), ops.clone());
                        tokio::spawn(async move {
                            for &(k, set) in &ops[..per_task] {
                                if set {
                                    c.set(&d, k as usize).await?;
                                } else {
                                    c.get(&d, k as usize).await?;
                                }
                            }
                            Ok::<(), BoxError>(())
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await??;
                }
                per_task * TASKS
            }
        };
        Ok(ops as f64 / start.elapsed().as_secs_f64())
    }
}

/// Host and port of the first server of `url`.
pub(crate) fn host_port(server: Server, url: &str) -> Result<(String, u16), BoxError> {
    match server {
        Server::Redis => {
            let c = RedisConfig::from_url(url)?;
            Ok((c.endpoint.clone(), c.port))
        }
        Server::Memcached => {
            let c = MemcachedConfig::from_url(url)?;
            let address = c
                .servers
                .first()
                .map(|s| s.address.clone())
                .ok_or("no server in the URL")?;
            let (h, p) = address.rsplit_once(':').ok_or("no port in the address")?;
            Ok((h.to_owned(), p.parse()?))
        }
    }
}

/// Our cache and the raw client for `server`.
pub(crate) async fn contenders(
    server: Server,
    url: &str,
    ns: &str,
) -> Result<(Cache, Contender, String), BoxError> {
    match server {
        Server::Redis => {
            let config = RedisConfig::from_url(url)?;
            let raw_config = Config {
                server: ServerConfig::new_centralized(config.endpoint.clone(), config.port),
                username: config.username.clone(),
                password: config.password.clone(),
                database: (config.db != 0).then_some(config.db),
                version: match config.protocol {
                    RespProtocol::Resp2 => fred::types::RespVersion::RESP2,
                    _ => fred::types::RespVersion::RESP3,
                },
                ..Config::default()
            };
            let backend = config.into_builder().build().await?;
            let cache = Cache::builder(backend)
                .namespace(ns)
                .timeout(Duration::from_secs(5))
                .build();
            let raw = Builder::from_config(raw_config)
                .with_connection_config(|c| {
                    c.tcp = TcpConfig {
                        nodelay: Some(true),
                        ..TcpConfig::default()
                    }
                })
                .build()?;
            raw.init().await?;
            let about = "**stratacache** = `Cache<Json>` over `RedisBackend` (one auto-pipelined \
                fred connection, 5 s timeout, reconnect policy on); **raw fred** = one fred 10 \
                `Client` with `TCP_NODELAY`, no timeout, no reconnect policy, keys pre-built, \
                values through `serde_json` by hand; **aiocache** = `RedisCache` (redis-py \
                asyncio pool) with its `JsonSerializer`"
                .to_owned();
            Ok((cache, Contender::Fred(raw, Mode::Json), about))
        }
        Server::Memcached => {
            let mut config = MemcachedConfig::from_url(url)?;
            let address = config
                .servers
                .first()
                .map(|s| s.address.clone())
                .ok_or("no server in the URL")?;
            config.servers.truncate(1);
            config.pool_size = POOL_SIZE;
            let backend = config.into_builder().build().await?;
            let cache = Cache::builder(backend)
                .namespace(ns)
                .timeout(Duration::from_secs(5))
                .build();
            let pool = RawPool::new(&format!("tcp://{address}"), POOL_SIZE).await?;
            let about = format!(
                "**stratacache** = `Cache<Json>` over `MemcachedBackend` (pool of {POOL_SIZE}, 5 s \
                 timeout); **raw async-memcached** = async-memcached 0.9 `Client`s behind a \
                 semaphore (pool of {POOL_SIZE}), keys pre-built, values through `serde_json` by \
                 hand; **aiocache** = `MemcachedCache` (aiomcache, pool of {POOL_SIZE}) with its \
                 `JsonSerializer`"
            );
            Ok((cache, Contender::Mc(Arc::new(pool), Mode::Json), about))
        }
    }
}
