//! Cache stampede across processes: 4 processes × 250 callers of `get_or_set` on one cold key,
//! through caches with [`ReadThrough::lease`], on Redis and on Memcached. Counts in the server
//! how often the loader runs per cold key (the target is exactly 1).
//!
//! The bench starts the processes itself: `cache-bench __stampede-worker …` ([`WORKER`]) runs
//! [`worker`], which prints one line of `name=value` fields per key and a last line with the
//! lease events of its cache; [`run`] starts them, reads the lines back and reports.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_core::{Cache, ReadThrough, ReadThroughEvent};
use tokio::sync::Barrier;

use crate::harness::{Stats, Target, machine};
use crate::workloads::{BoxError, Record, Server, record};

/// The hidden first argument of `cache-bench` that makes it a worker process.
pub const WORKER: &str = "__stampede-worker";
/// Worker processes.
const PROCESSES: usize = 4;
/// Concurrent callers per process and cold key.
const TASKS: usize = 250;
/// How long the loader takes (a database read).
const LOAD_TIME: Duration = Duration::from_millis(50);
/// The lease: far longer than the loader.
const LEASE: Duration = Duration::from_secs(2);
/// Per-call deadline of the caches.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the workers to start and connect before the callers of the first key are released.
const STARTUP: Duration = Duration::from_millis(1500);
/// One key's turn: the callers of the next key are released this long after the last.
const PERIOD: Duration = Duration::from_millis(400);
/// How long a worker waits, after its last key, for every key to hold its value.
const STORE_WAIT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: cache-bench __stampede-worker <redis|memcached> <url> <namespace> \
                     <start_ms> <period_ms> <keys>";

fn key(k: usize) -> String {
    format!("cold-{k}")
}

/// The counter of the loader runs of key `k`.
fn runs_key(k: usize) -> String {
    format!("runs:cold-{k}")
}

/// Wall-clock time in microseconds since the Unix epoch: an instant the processes of one
/// machine agree on.
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The numeric field `name` (`name=value`) of `line`, if it has one.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn number(text: &str) -> Result<u64, BoxError> {
    text.parse()
        .map_err(|_| format!("{text} is not a number\n{USAGE}").into())
}

/// The caches of a process: one with the lease, and a plain one for the loader's counter.
async fn caches(server: Server, url: &str, namespace: &str) -> Result<(Cache, Cache), BoxError> {
    let backend = server.backend(url).await?;
    let plain = Cache::builder(backend.clone())
        .namespace(namespace)
        .timeout(CALL_TIMEOUT)
        .build();
    let leased = Cache::builder(backend)
        .namespace(namespace)
        .timeout(CALL_TIMEOUT)
        .read_through(ReadThrough::new().lease(LEASE))
        .build();
    Ok((leased, plain))
}

/// One worker process: `<server> <url> <namespace> <start_ms> <period_ms> <keys>`. For key
/// `k`, [`TASKS`] tasks are released together when the wall clock reads `start_ms + k ×
/// period_ms` and call `get_or_set`; the loader adds one to the key's counter in the server,
/// sleeps [`LOAD_TIME`] and returns [`record`]`(k)`. Prints `key=k served=N late_us=L
/// took_us=T` per key (callers that got the value; how late the release was; from the release
/// until the last caller had its value), then, once every key holds its value (or
/// [`STORE_WAIT`] passed), `lease_acquired=… lease_waited=… lease_lost=… unstored=N`.
///
/// # Errors
/// On wrong arguments, or when the server cannot be reached.
pub async fn worker(args: &[String]) -> Result<(), BoxError> {
    let [server, url, namespace, start_ms, period_ms, keys] = args else {
        return Err(USAGE.into());
    };
    let server = Server::from_name(server).ok_or_else(|| format!("unknown server {server}"))?;
    let (start_us, period_us) = (number(start_ms)? * 1_000, number(period_ms)? * 1_000);
    let keys = usize::try_from(number(keys)?)?;
    let (cache, counter) = caches(server, url, namespace).await?;
    for k in 0..keys {
        let barrier = Arc::new(Barrier::new(TASKS + 1));
        let callers: Vec<_> = (0..TASKS)
            .map(|_| {
                let (cache, counter, barrier) = (cache.clone(), counter.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cache
                        .get_or_set::<Record>(&key(k), move || async move {
                            counter.increment(&runs_key(k), 1).await?;
                            tokio::time::sleep(LOAD_TIME).await;
                            Ok::<_, cache_core::Error>(record(k as u64))
                        })
                        .await
                })
            })
            .collect();
        let at = start_us + k as u64 * period_us;
        let now = unix_us();
        if at > now {
            tokio::time::sleep(Duration::from_micros(at - now)).await;
        }
        let late_us = unix_us().saturating_sub(at);
        let released = Instant::now();
        barrier.wait().await;
        let want = record(k as u64);
        let mut served = 0;
        for caller in callers {
            match caller.await? {
                Ok(v) if v == want => served += 1,
                Ok(_) => eprintln!("get_or_set {}: a wrong value", key(k)),
                Err(e) => eprintln!("get_or_set {}: {e}", key(k)),
            }
        }
        println!(
            "key={k} served={served} late_us={late_us} took_us={}",
            released.elapsed().as_micros()
        );
    }
    // The callers of the process that loaded had the value before it was written: let the
    // writes land before exiting, or the other processes would take the lease over.
    let mut unstored = 0;
    for k in 0..keys {
        let waiting = Instant::now();
        while !matches!(cache.get::<Record>(&key(k)).await, Ok(Some(_))) {
            if waiting.elapsed() > STORE_WAIT {
                unstored += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let stats = cache.read_through_stats();
    println!(
        "lease_acquired={} lease_waited={} lease_lost={} unstored={unstored}",
        stats.get(ReadThroughEvent::LeaseAcquired),
        stats.get(ReadThroughEvent::LeaseWaited),
        stats.get(ReadThroughEvent::LeaseLost),
    );
    Ok(())
}

/// The figures of one server.
struct Outcome {
    /// Loader runs of each key, counted in the server.
    runs: Vec<f64>,
    /// Callers that got their key's value.
    served: u64,
    /// Callers that did not (a failed call, a wrong value).
    errors: u64,
    /// Per key, from the release instant until the last caller had the value, ms.
    serve_ms: Vec<f64>,
    /// The latest release of a process after its instant, ms.
    late_ms: f64,
    leases_taken: u64,
    leases_waited: u64,
    leases_lost: u64,
    /// Keys a process found without a value at its end.
    unstored: u64,
}

impl Outcome {
    fn met(&self) -> bool {
        self.runs.iter().all(|&r| r == 1.0) && self.errors == 0 && self.unstored == 0
    }
}

/// Starts [`PROCESSES`] workers on `server` at `url` over `cold_keys` cold keys and reads
/// back what they printed and the loader runs counted in the server.
async fn one(server: Server, url: &str, cold_keys: usize) -> Result<Outcome, BoxError> {
    let namespace = format!("stampede-processes{:x}", unix_us());
    let start_ms = (unix_us() / 1_000) + STARTUP.as_millis() as u64;
    let exe = std::env::current_exe()?;
    let args = [
        WORKER.to_owned(),
        server.name().to_owned(),
        url.to_owned(),
        namespace.clone(),
        start_ms.to_string(),
        PERIOD.as_millis().to_string(),
        cold_keys.to_string(),
    ];
    let workers = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args(&args)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(std::process::Child::wait_with_output)
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;

    let mut served = vec![0u64; cold_keys];
    let mut serve_us = vec![0u64; cold_keys];
    let (mut late_us, mut taken, mut waited, mut lost, mut unstored) = (0, 0, 0, 0, 0);
    for out in &outputs {
        if !out.status.success() {
            return Err(format!("a worker failed: {}", out.status).into());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let sum = |name| field(line, name).unwrap_or(0);
            match field(line, "key").and_then(|k| usize::try_from(k).ok()) {
                Some(k) if k < cold_keys => {
                    served[k] += sum("served");
                    serve_us[k] = serve_us[k].max(sum("late_us") + sum("took_us"));
                    late_us = late_us.max(sum("late_us"));
                }
                Some(_) => return Err(format!("a worker reported a key not asked: {line}").into()),
                None => {
                    taken += sum("lease_acquired");
                    waited += sum("lease_waited");
                    lost += sum("lease_lost");
                    unstored += sum("unstored");
                }
            }
        }
    }

    let (_, counter) = caches(server, url, &namespace).await?;
    let mut runs = Vec::with_capacity(cold_keys);
    for k in 0..cold_keys {
        runs.push(counter.get::<u64>(&runs_key(k)).await?.unwrap_or(0) as f64);
    }
    counter
        .multi_delete((0..cold_keys).flat_map(|k| [key(k), runs_key(k)]))
        .await?;
    counter.close().await?;
    let callers = (cold_keys * PROCESSES * TASKS) as u64;
    let served: u64 = served.iter().sum();
    Ok(Outcome {
        runs,
        served,
        errors: callers.saturating_sub(served),
        serve_ms: serve_us.iter().map(|&us| us as f64 / 1e3).collect(),
        late_ms: late_us as f64 / 1e3,
        leases_taken: taken,
        leases_waited: waited,
        leases_lost: lost,
        unstored,
    })
}

/// The cross-process subsection of the stampede section, on Redis at `redis` and Memcached
/// at `memcached`, `cold_keys` cold keys each; one target per server.
///
/// # Errors
/// When a server cannot be reached or a worker process fails.
pub async fn run(
    redis: &str,
    memcached: &str,
    cold_keys: usize,
) -> Result<(String, Vec<Target>), BoxError> {
    let callers = PROCESSES * TASKS;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Across processes (`ReadThrough::lease`)\n\nCommand: `cargo x bench stampede`. \
         Machine: {}.\n\n{PROCESSES} processes (the bench starts itself {PROCESSES} times) run \
         {TASKS} tasks each; the {callers} tasks call `get_or_set` on one cold key, released \
         at the same wall-clock instant, through a `Cache<Json>` with \
         `ReadThrough::new().lease({} s)` per process. The loader adds one to a counter key in \
         the server (`increment` through a plain cache), takes {} ms and returns the value; \
         the runs per key are read back from the server. {cold_keys} cold keys per backend, \
         one every {} ms. Served: callers that got the key's value; errors: those that did \
         not. Time: from the release instant until the last of the {callers} callers has the \
         value.\n\n| backend | loader runs per cold key (max, mean) | cold keys | callers \
         served | errors | leases taken / waited for | time until all {callers} callers \
         have the value, ms (median, min – max) |\n|---|---|---|---|---|---|---|",
        machine(),
        LEASE.as_secs(),
        LOAD_TIME.as_millis(),
        PERIOD.as_millis(),
    );
    let mut targets = Vec::new();
    let mut notes = String::new();
    for (server, url) in [(Server::Redis, redis), (Server::Memcached, memcached)] {
        let o = one(server, url, cold_keys)
            .await
            .map_err(|e| format!("{e} (against {url})"))?;
        let r = Stats::of(&o.runs);
        let mean = o.runs.iter().sum::<f64>() / o.runs.len().max(1) as f64;
        let t = Stats::of(&o.serve_ms);
        let _ = writeln!(
            out,
            "| {} | {:.0}, {mean:.2} | {cold_keys} | {} | {} | {} / {} | {:.1} ({:.1} – {:.1}) |",
            server.title(),
            r.max,
            o.served,
            o.errors,
            o.leases_taken,
            o.leases_waited,
            t.median,
            t.min,
            t.max
        );
        let _ = write!(
            notes,
            "{}: processes released at most {:.1} ms after the instant; {} leases lost; {} \
             keys left without their value. ",
            server.title(),
            o.late_ms,
            o.leases_lost,
            o.unstored
        );
        targets.push(Target {
            what: format!(
                "{} cross-process stampede: loader runs per cold key with {PROCESSES} \
                 processes × {TASKS} callers",
                server.title()
            ),
            goal: "exactly 1".into(),
            measured: if o.met() {
                "1 on every key".into()
            } else {
                format!(
                    "max {:.0}, mean {mean:.2}; {} errors, {} keys unstored",
                    r.max, o.errors, o.unstored
                )
            },
            met: o.met(),
        });
    }
    let _ = writeln!(out, "\n{}\n", notes.trim_end());
    for t in &targets {
        let _ = writeln!(out, "{}\n", t.line());
    }
    Ok((out, targets))
}
