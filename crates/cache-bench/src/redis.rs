//! Redis: a `Cache` over `RedisBackend` (Json values, default 5 s timeout) side by side with
//! hand-written calls on one raw fred client, against the same server in one run.
//!
//! Both contenders store and read the same keys and bytes. The raw contender does by hand what
//! an application on fred alone would do for typed values (`serde_json` both ways) but gets its
//! keys pre-built, uses fred's defaults (no command timeout, no reconnect policy) plus
//! `TCP_NODELAY` and the same RESP version: the cheapest correct use of the client. Rounds run
//! interleaved (A B A B …), and each ratio is the median of the per-round ratios, so drift of
//! the machine between rounds cancels out.

use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cache_core::Cache;
use cache_redis::{RedisConfig, RespProtocol};
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, ServerConfig, TcpConfig};
use serde::{Deserialize, Serialize};

use crate::harness::{Stats, machine, rate};

type BoxError = Box<dyn Error + Send + Sync>;

/// Keys of the working set.
const KEYS: usize = 10_000;
/// Namespace of every key (`bench:k<n>`).
const NAMESPACE: &str = "bench";
/// Concurrent tasks of the mixed workload.
const TASKS: usize = 64;
/// Keys per `multi_get`.
const BATCH: usize = 100;

/// The cached value: a small record, about 60 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn record(id: u64) -> Record {
    Record {
        id,
        name: format!("user-{id}"),
        tags: vec!["a".into(), "b".into()],
        score: id as f64 / 7.0,
    }
}

fn built_key(i: usize) -> String {
    format!("{NAMESPACE}:k{i}")
}

/// A tiny deterministic generator, so both contenders see the same key sequence.
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
}

/// The two contenders.
struct Contenders {
    cache: Cache,
    raw: Client,
    keys: Arc<Vec<String>>,
}

/// Counts of each workload per round.
struct Sizes {
    rounds: usize,
    sequential: usize,
    mixed_ops: usize,
    batches: usize,
}

/// Runs the three workloads and returns the markdown section.
///
/// # Errors
/// When the server cannot be reached or a call fails.
pub async fn run(url: &str, quick: bool) -> Result<String, BoxError> {
    let sizes = if quick {
        Sizes {
            rounds: 5,
            sequential: 1_000,
            mixed_ops: 20_000,
            batches: 200,
        }
    } else {
        Sizes {
            rounds: 9,
            sequential: 10_000,
            mixed_ops: 100_000,
            batches: 1_000,
        }
    };
    let config = RedisConfig::from_url(url)?;
    // the raw client talks to the same server with the same credentials, database and
    // protocol (our URL parameters, such as command_timeout, concern only our backend)
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
    let client_timeout = if config.command_timeout.is_zero() {
        "no client-side command timeout".to_owned()
    } else {
        format!("{:?} client-side command timeout", config.command_timeout)
    };
    let backend = config.into_builder().build().await?;
    let cache = Cache::builder(backend).namespace(NAMESPACE).build();
    let raw = Builder::from_config(raw_config)
        .with_connection_config(|c| {
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            }
        })
        .build()?;
    raw.init().await?;

    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(built_key).collect());
    // the working set, written once through the cache (both read the same bytes)
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        cache
            .multi_set(chunk.iter().map(|&i| (format!("k{i}"), record(i as u64))))
            .await?;
    }
    let c = Contenders { cache, raw, keys };

    // warm-up: connections, allocator, branch predictors
    sequential(&c, true, false, 500).await?;
    sequential(&c, false, false, 500).await?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Redis backend\n\nCommand: `cargo x bench redis`. Machine: {}. Server: redis-server on \
         loopback (`{}`), sharing the cores with the client.\n\n\
         Contenders: **stratacache** = `Cache<Json>` over `RedisBackend` (one auto-pipelined \
         connection, 5 s cache timeout, {}, reconnect policy on); **raw \
         fred** = one fred 10.1 `Client` with `TCP_NODELAY`, no timeout, no reconnect policy, keys \
         pre-built, values through `serde_json` by hand. Same keys, same bytes, {} interleaved \
         rounds; the ratio is the median of per-round ratios.\n",
        machine(),
        redacted(url),
        client_timeout,
        sizes.rounds,
    );
    let _ = writeln!(
        out,
        "| workload | stratacache | raw fred | ratio (median, min – max) | client CPU µs/op, ours / raw | target |\n|---|---|---|---|---|---|"
    );

    let (cr, n_seq, n_mixed, n_batches) = (&c, sizes.sequential, sizes.mixed_ops, sizes.batches);
    let same_time = "≥ 0.95 (our time / raw ≤ 1.05)";
    let seq_get = interleave(sizes.rounds, |ours| async move {
        sequential(cr, ours, false, n_seq).await
    })
    .await?;
    row(
        &mut out,
        &format!("sequential get ×{n_seq}"),
        "ops/s",
        &seq_get,
        0.95,
        same_time,
    );

    let seq_set = interleave(sizes.rounds, |ours| async move {
        sequential(cr, ours, true, n_seq).await
    })
    .await?;
    row(
        &mut out,
        &format!("sequential set ×{n_seq}"),
        "ops/s",
        &seq_set,
        0.95,
        same_time,
    );

    let mixed_r = interleave(sizes.rounds, |ours| async move {
        mixed(cr, ours, n_mixed).await
    })
    .await?;
    let name = format!("{TASKS} tasks, 90 % get / 10 % set, {KEYS} keys");
    row(&mut out, &name, "ops/s", &mixed_r, 0.95, "≥ 0.95");

    let mget = interleave(sizes.rounds, |ours| async move {
        multi_get(cr, ours, n_batches).await
    })
    .await?;
    row(
        &mut out,
        &format!("multi_get of {BATCH} keys"),
        "calls/s",
        &mget,
        0.90,
        "≥ 0.90",
    );

    let _ = writeln!(
        out,
        "\nSequential rows give time per operation as a ratio of throughputs: 0.95 means our \
         calls take 1/0.95 = 1.05× as long. Client CPU is this process's user + system time \
         per operation (per call for multi_get); with client and server on the same cores the \
         concurrent workload is CPU-bound, so extra client CPU shows up as lost throughput. \
         Absolute rates on this machine vary 10–30 % from run to run; compare only within one \
         run."
    );
    // leave the server as we found it
    c.cache.clear().await?;
    c.cache.close().await?;
    c.raw.quit().await?;
    Ok(out)
}

/// Results of one workload: per-round rates of both contenders, and the client CPU time per
/// operation (µs, this process, all threads) where the OS reports it.
struct Paired {
    ours: Vec<f64>,
    raw: Vec<f64>,
    ours_cpu: Vec<f64>,
    raw_cpu: Vec<f64>,
}

/// CPU time of this process so far, in seconds (Linux; `None` elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn interleave<F, Fut>(rounds: usize, mut once: F) -> Result<Paired, BoxError>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<(f64, usize), BoxError>>,
{
    let mut p = Paired {
        ours: Vec::new(),
        raw: Vec::new(),
        ours_cpu: Vec::new(),
        raw_cpu: Vec::new(),
    };
    for round in 0..rounds {
        // alternate which contender goes first, so neither always runs on a warmer machine
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for ours in order {
            let cpu_before = process_cpu_seconds();
            let (rate, ops) = once(ours).await?;
            let cpu = cpu_before
                .zip(process_cpu_seconds())
                .map(|(a, b)| (b - a) / ops as f64 * 1e6);
            let (rates, cpus) = if ours {
                (&mut p.ours, &mut p.ours_cpu)
            } else {
                (&mut p.raw, &mut p.raw_cpu)
            };
            rates.push(rate);
            cpus.extend(cpu);
        }
    }
    Ok(p)
}

fn row(out: &mut String, name: &str, unit: &str, p: &Paired, target: f64, target_text: &str) {
    let ours = Stats::of(&p.ours);
    let raw = Stats::of(&p.raw);
    let ratios: Vec<f64> = p.ours.iter().zip(&p.raw).map(|(o, r)| o / r).collect();
    let ratio = Stats::of(&ratios);
    let verdict = if ratio.median >= target {
        "met"
    } else {
        "**missed**"
    };
    let cpu = if p.ours_cpu.is_empty() || p.raw_cpu.is_empty() {
        "—".to_owned()
    } else {
        format!(
            "{:.1} / {:.1}",
            Stats::of(&p.ours_cpu).median,
            Stats::of(&p.raw_cpu).median
        )
    };
    let _ = writeln!(
        out,
        "| {name} | {} {unit} ({} – {}) | {} {unit} ({} – {}) | {:.3} ({:.3} – {:.3}) | {cpu} | {target_text}: {verdict} |",
        rate(ours.median),
        rate(ours.min),
        rate(ours.max),
        rate(raw.median),
        rate(raw.min),
        rate(raw.max),
        ratio.median,
        ratio.min,
        ratio.max,
    );
}

/// `n` sequential gets or sets; answers ops/s.
async fn sequential(
    c: &Contenders,
    ours: bool,
    set: bool,
    n: usize,
) -> Result<(f64, usize), BoxError> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let start = Instant::now();
    for _ in 0..n {
        let i = (rng.next() % KEYS as u64) as usize;
        match (ours, set) {
            (true, false) => {
                let v: Option<Record> = c.cache.get(&format!("k{i}")).await?;
                std::hint::black_box(v);
            }
            (true, true) => c.cache.set(&format!("k{i}"), &record(i as u64)).await?,
            (false, false) => {
                let bytes: Option<Bytes> = c.raw.get(c.keys[i].as_str()).await?;
                let v: Option<Record> = bytes.map(|b| serde_json::from_slice(&b)).transpose()?;
                std::hint::black_box(v);
            }
            (false, true) => {
                let bytes = serde_json::to_vec(&record(i as u64))?;
                let () = c
                    .raw
                    .set(c.keys[i].as_str(), bytes, None, None, false)
                    .await?;
            }
        }
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

/// `total` operations over [`TASKS`] tasks, 90 % get / 10 % set; answers ops/s.
async fn mixed(c: &Contenders, ours: bool, total: usize) -> Result<(f64, usize), BoxError> {
    let per_task = total / TASKS;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let cache = c.cache.clone();
        let raw = c.raw.clone();
        let keys = c.keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ (t as u64 + 1));
            for _ in 0..per_task {
                let r = rng.next();
                let i = (r % KEYS as u64) as usize;
                let set = (r >> 32).is_multiple_of(10);
                if ours {
                    if set {
                        cache.set(&format!("k{i}"), &record(i as u64)).await?;
                    } else {
                        let v: Option<Record> = cache.get(&format!("k{i}")).await?;
                        std::hint::black_box(v);
                    }
                } else if set {
                    let bytes = serde_json::to_vec(&record(i as u64))?;
                    let () = raw.set(keys[i].as_str(), bytes, None, None, false).await?;
                } else {
                    let bytes: Option<Bytes> = raw.get(keys[i].as_str()).await?;
                    let v: Option<Record> =
                        bytes.map(|b| serde_json::from_slice(&b)).transpose()?;
                    std::hint::black_box(v);
                }
            }
            Ok::<(), BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ops = per_task * TASKS;
    Ok((ops as f64 / start.elapsed().as_secs_f64(), ops))
}

/// `n` sequential `multi_get`s of [`BATCH`] random keys; answers calls/s.
async fn multi_get(c: &Contenders, ours: bool, n: usize) -> Result<(f64, usize), BoxError> {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let start = Instant::now();
    for _ in 0..n {
        let picks: Vec<usize> = (0..BATCH)
            .map(|_| (rng.next() % KEYS as u64) as usize)
            .collect();
        if ours {
            let user_keys: Vec<String> = picks.iter().map(|i| format!("k{i}")).collect();
            let v: Vec<Option<Record>> = c.cache.multi_get(&user_keys).await?;
            std::hint::black_box(v);
        } else {
            let keys: Vec<&str> = picks.iter().map(|&i| c.keys[i].as_str()).collect();
            let values: Vec<Option<Bytes>> = c.raw.mget(keys).await?;
            let v: Vec<Option<Record>> = values
                .into_iter()
                .map(|b| b.map(|b| serde_json::from_slice(&b)).transpose())
                .collect::<Result<_, _>>()?;
            std::hint::black_box(v);
        }
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), n))
}

/// The URL without credentials, for the report.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}
