//! Cache stampede: 1,000 concurrent `get_or_set` callers on one cold key, on every backend.
//! Counts how often the loader runs per cold key (single flight: the target is exactly 1).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_core::Cache;
use cache_memory::MemoryBackend;
use tokio::sync::Barrier;

use crate::harness::{Stats, Target, machine};
use crate::workloads::{BoxError, Record, Server, record};

/// Concurrent callers per cold key.
pub const CALLERS: usize = 1_000;
/// How long the loader takes (a database read).
const LOAD_TIME: Duration = Duration::from_millis(20);

/// The stampede section and its target.
pub struct Section {
    /// The markdown.
    pub body: String,
    /// Loader runs per cold key, per backend.
    pub targets: Vec<Target>,
}

/// One cold key: `CALLERS` tasks released at once; answers (loader runs, time until every
/// caller has its value).
async fn one_key(cache: &Cache, key: &str, id: u64) -> Result<(usize, Duration), BoxError> {
    let runs = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CALLERS));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, key, runs, barrier) =
                (cache.clone(), key.to_owned(), runs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let v: Record = cache
                    .get_or_set(&key, move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(LOAD_TIME).await;
                        Ok::<_, std::convert::Infallible>(record(id))
                    })
                    .await?;
                Ok::<Record, BoxError>(v)
            })
        })
        .collect();
    let want = record(id);
    for t in tasks {
        if t.await?? != want {
            return Err("get_or_set returned a wrong value".into());
        }
    }
    Ok((runs.load(Ordering::SeqCst), start.elapsed()))
}

/// Runs the stampede on the memory backend and, given their URLs, on Redis and Memcached;
/// `cold_keys` cold keys per backend, backends interleaved key by key.
///
/// # Errors
/// When a server cannot be reached or a call fails.
pub async fn run(
    redis: Option<&str>,
    memcached: Option<&str>,
    cold_keys: usize,
) -> Result<Section, BoxError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let ns = format!("stampede{stamp:x}");
    let mut backends: Vec<(&str, Cache)> = vec![(
        "memory",
        Cache::builder(MemoryBackend::new()).namespace(&ns).build(),
    )];
    for (server, url) in [(Server::Redis, redis), (Server::Memcached, memcached)] {
        if let Some(url) = url {
            let backend = server.backend(url).await?;
            backends.push((
                server.title(),
                Cache::builder(backend).namespace(&ns).build(),
            ));
        }
    }
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
    for k in 0..cold_keys {
        let key = format!("cold-{k}");
        for (i, (_, cache)) in backends.iter().enumerate() {
            let (n, t) = one_key(cache, &key, k as u64).await?;
            runs[i].push(n as f64);
            times[i].push(t.as_secs_f64() * 1e3);
        }
    }
    let keys: Vec<String> = (0..cold_keys).map(|k| format!("cold-{k}")).collect();
    for (_, cache) in &backends {
        cache.multi_delete(keys.iter()).await?;
        cache.close().await?;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Cache stampede (`get_or_set`)\n\nCommand: `cargo x bench stampede`. Machine: {}.\n\n\
         {CALLERS} tasks call `get_or_set` on one cold key at the same moment (released by a \
         barrier); the loader takes {} ms and counts its runs. Repeated over {cold_keys} cold \
         keys per backend, backends interleaved key by key; `Cache<Json>` with a namespace.\n\n\
         | backend | loader runs per cold key (median, min – max) | cold keys | time until all {CALLERS} callers have the value, ms (median, min – max) |\n|---|---|---|---|",
        machine(),
        LOAD_TIME.as_millis(),
    );
    let mut targets = Vec::new();
    for (i, (name, _)) in backends.iter().enumerate() {
        let r = Stats::of(&runs[i]);
        let t = Stats::of(&times[i]);
        let _ = writeln!(
            out,
            "| {name} | {:.0} ({:.0} – {:.0}) | {cold_keys} | {:.1} ({:.1} – {:.1}) |",
            r.median, r.min, r.max, t.median, t.min, t.max
        );
        targets.push(Target {
            what: format!("{name} stampede: loader runs per cold key ({CALLERS} callers)"),
            goal: "exactly 1".into(),
            measured: if r.min == r.max {
                format!("{:.0} on every key", r.max)
            } else {
                format!("{:.0} – {:.0}", r.min, r.max)
            },
            met: r.min == 1.0 && r.max == 1.0,
        });
    }
    out.push('\n');
    for t in &targets {
        let _ = writeln!(out, "{}\n", t.line());
    }
    Ok(Section { body: out, targets })
}
