//! The network workloads, the same on Redis and on Memcached: stratacache's `Cache<Json>` side
//! by side with the raw client of its backend and with Python's aiocache, in one run against
//! one server.
//!
//! Every contender reads and writes the same keys (`{namespace}:k{i}`) and the same JSON
//! records. The raw contender does by hand what an application on the client alone does for
//! typed values (`serde_json` both ways) but gets its keys pre-built. Each round runs every
//! workload for ours and raw back to back (alternating which goes first), then one aiocache
//! process runs the same workloads; ratios are medians of the per-round ratios, so drift of the
//! machine between rounds cancels out.
//!
//! This file runs the rounds and writes the report; the workloads, their data and the
//! contenders are in [`crate::workloads`], the coalescing measurement in [`crate::coalesce`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::Cache;

use crate::aiocache::Python;
use crate::chart::{Bar, Group};
use crate::harness::{Stats, Target, cell, machine, paired, ratio_cell};
use crate::workloads::{
    BoxError, Contender, Data, KEYS, Server, Sizes, TASKS, Workload, contenders, host_port, record,
};

/// A finished server section: markdown, targets, chart data.
pub struct Section {
    /// The markdown section.
    pub body: String,
    /// The targets measured.
    pub targets: Vec<Target>,
    /// Bars for the chart.
    pub groups: Vec<Group>,
}

/// Per-round rates of one workload.
#[derive(Default)]
struct Samples {
    ours: Vec<f64>,
    raw: Vec<f64>,
    py: Vec<f64>,
    /// Our rate in the rounds that have an aiocache figure, for the paired ratio.
    ours_with_py: Vec<f64>,
}

/// The figures of the uncontended lock measurement.
struct LockCost {
    n: usize,
    lock_us: Vec<f64>,
    rt_us: Vec<f64>,
    ratio: Stats,
}

/// `n` uncontended acquire + release pairs through `cache` against `n` raw round trips, in
/// `rounds` interleaved rounds.
async fn lock_cost(
    cache: &Cache,
    raw: &Contender,
    n: usize,
    rounds: usize,
) -> Result<LockCost, BoxError> {
    let lock = cache.lock("bench-lock").lease(Duration::from_secs(10));
    let (mut lock_us, mut rt_us) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        let time_locks = async || -> Result<f64, BoxError> {
            let started = Instant::now();
            for _ in 0..n {
                let guard = lock.acquire().await?;
                guard.release().await?;
            }
            Ok(started.elapsed().as_secs_f64() * 1e6 / n as f64)
        };
        let time_round_trips = async || -> Result<f64, BoxError> {
            let started = Instant::now();
            for _ in 0..n {
                raw.round_trip().await?;
            }
            Ok(started.elapsed().as_secs_f64() * 1e6 / n as f64)
        };
        if round % 2 == 0 {
            lock_us.push(time_locks().await?);
            rt_us.push(time_round_trips().await?);
        } else {
            rt_us.push(time_round_trips().await?);
            lock_us.push(time_locks().await?);
        }
    }
    // time per op ours / raw = raw rate / our rate, with rates 1 / time
    let lock_rate: Vec<f64> = lock_us.iter().map(|t| 1.0 / t).collect();
    let rt_rate: Vec<f64> = rt_us.iter().map(|t| 1.0 / t).collect();
    let ratio = paired(&rt_rate, &lock_rate);
    Ok(LockCost {
        n,
        lock_us,
        rt_us,
        ratio,
    })
}

/// Runs every workload against `server` and returns its section.
///
/// # Errors
/// When the server cannot be reached or a Rust contender's call fails. aiocache failures do
/// not fail the run: its column says why it has no figures.
pub async fn run(
    server: Server,
    url: &str,
    quick: bool,
    python: &Python,
) -> Result<Section, BoxError> {
    let sizes = Sizes::rust(quick);
    let py_sizes = Sizes::python(quick);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let ns = format!("bench{:x}", (stamp ^ u128::from(std::process::id())) as u64);
    let (cache, raw, about) = contenders(server, url, &ns).await?;
    let (host, port) = host_port(server, url)?;
    let data = Arc::new(Data::new(&ns, sizes.per_task.max(py_sizes.per_task)));

    // the working set and the counters, written once through the cache
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        cache
            .multi_set(
                chunk
                    .iter()
                    .map(|&i| (data.user[i].as_str(), record(i as u64))),
            )
            .await?;
    }
    for k in &data.counters_user {
        cache.increment(k, 0).await?;
    }
    let ours = Contender::Ours(cache.clone());
    // warm-up: connections, allocator, branch predictors
    let warm = Sizes {
        sequential: 300,
        ..Sizes::rust(true)
    };
    for w in Workload::ALL {
        ours.run(&data, w, &warm).await?;
        raw.run(&data, w, &warm).await?;
    }

    let mut samples: Vec<Samples> = Workload::ALL.iter().map(|_| Samples::default()).collect();
    let mut py_error: Option<String> = None;
    for round in 0..sizes.rounds {
        for (w, s) in Workload::ALL.iter().zip(samples.iter_mut()) {
            // alternate which contender goes first, so neither always runs on a warmer machine
            if round % 2 == 0 {
                s.ours.push(ours.run(&data, *w, &sizes).await?);
                s.raw.push(raw.run(&data, *w, &sizes).await?);
            } else {
                s.raw.push(raw.run(&data, *w, &sizes).await?);
                s.ours.push(ours.run(&data, *w, &sizes).await?);
            }
        }
        if py_error.is_none() {
            match python.round(server.name(), &host, port, &ns, &py_sizes) {
                Ok(rates) => {
                    for (w, s) in Workload::ALL.iter().zip(samples.iter_mut()) {
                        if let Some(r) = rates.get(w.id()) {
                            s.py.push(*r);
                            s.ours_with_py.push(*s.ours.last().unwrap_or(&f64::NAN));
                        }
                    }
                }
                Err(e) => py_error = Some(e),
            }
        }
        eprintln!(
            "{}: round {}/{} done",
            server.name(),
            round + 1,
            sizes.rounds
        );
    }

    let lock = lock_cost(&cache, &raw, if quick { 200 } else { 2_000 }, sizes.rounds).await?;

    let hit_caches =
        crate::read_through::Caches::new(cache.backend().clone(), &ns, Duration::from_secs(5))
            .await?;
    let hit_cost =
        crate::read_through::measure(&hit_caches, if quick { 300 } else { 10_000 }, sizes.rounds)
            .await?;
    hit_caches.clean_up().await?;
    let (hit_body, hit_target) = hit_cost.report(
        server.title(),
        "Sequential calls from one task, two `Cache<Json>` over the stratacache backend above \
         (same connections, 5 s deadline);",
    );

    let (co_cache, co_layer) = crate::coalesce::coalesced_cache(server, url, &ns).await?;
    let coalesced = Contender::Ours(co_cache.clone());
    let (co_body, co_target) =
        crate::coalesce::measure(server, &ours, &coalesced, &co_layer, &raw, &data, &sizes).await?;
    co_cache.close().await?;

    // leave the server as we found it
    match server {
        Server::Redis => {
            cache.clear().await?;
        }
        Server::Memcached => {
            cache.multi_delete(data.user.iter()).await?;
            cache.multi_delete(data.counters_user.iter()).await?;
        }
    }
    cache.close().await?;

    let py_note = match (&py_error, python.label()) {
        (Some(e), _) => format!("aiocache: no figures — {e}"),
        (None, Err(e)) => format!("aiocache: no figures — {e}"),
        (None, Ok(v)) => format!("aiocache {v}"),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## {} backend\n\nCommand: `cargo x bench {}`. Machine: {}. Server: {} on {host}:{port} \
         (loopback, sharing the cores with the clients). {py_note}.\n\nContenders: {about}. Same \
         keys, same bytes. {} rounds; each runs every workload for stratacache and {} back to \
         back (alternating which goes first), then one aiocache process runs the same \
         workloads. Figures are median (min – max) over the rounds; ratios are medians (min – \
         max) of the per-round ratios.\n",
        server.title(),
        server.name(),
        machine(),
        server.name(),
        sizes.rounds,
        server.raw_name(),
    );
    let _ = writeln!(
        out,
        "| workload | stratacache | {} | aiocache | time per op vs {} | throughput vs aiocache |\n|---|---|---|---|---|---|",
        server.raw_name(),
        server.raw_name()
    );
    let mut targets = Vec::new();
    let mut groups = Vec::new();
    for (w, s) in Workload::ALL.iter().zip(&samples) {
        let unit = w.unit();
        // time per op ours / raw = raw rate / our rate
        let vs_raw = paired(&s.raw, &s.ours);
        let vs_py = (!s.py.is_empty()).then(|| paired(&s.ours_with_py, &s.py));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            w.label(),
            cell(&s.ours, unit),
            cell(&s.raw, unit),
            cell(&s.py, unit),
            ratio_cell(vs_raw),
            vs_py.map_or("—".into(), ratio_cell),
        );
        if matches!(w, Workload::SeqGet | Workload::SeqSet) {
            targets.push(Target {
                what: format!(
                    "{} {}: stratacache time per op / {}",
                    server.title(),
                    w.label(),
                    server.raw_name()
                ),
                goal: "≤ 1.05×".into(),
                measured: format!("{:.3}×", vs_raw.median),
                met: vs_raw.median <= 1.05,
            });
        }
        if matches!(w, Workload::MixUniform | Workload::MixZipf) {
            targets.push(match vs_py {
                Some(r) => Target {
                    what: format!(
                        "{} {}: stratacache throughput / aiocache",
                        server.title(),
                        w.label()
                    ),
                    goal: "≥ 20×".into(),
                    measured: format!("{:.1}×", r.median),
                    met: r.median >= 20.0,
                },
                None => Target {
                    what: format!(
                        "{} {}: stratacache throughput / aiocache",
                        server.title(),
                        w.label()
                    ),
                    goal: "≥ 20×".into(),
                    measured: "no aiocache figures".into(),
                    met: false,
                },
            });
        }
        let bar = |name: &str, v: &[f64]| {
            (!v.is_empty()).then(|| {
                let st = Stats::of(v);
                Bar {
                    series: name.to_owned(),
                    median: st.median,
                    min: st.min,
                    max: st.max,
                }
            })
        };
        groups.push(Group {
            label: format!("{} ({unit})", w.short()),
            bars: [
                bar("stratacache", &s.ours),
                bar(server.raw_name(), &s.raw),
                bar("aiocache", &s.py),
            ]
            .into_iter()
            .flatten()
            .collect(),
        });
    }
    let _ = writeln!(
        out,
        "\nOperations per round: stratacache and {}: {} sequential get / set, {} × {} mixed, {} \
         multi_get of 10, {} of 100, {} increments; aiocache: {} / {} × {} / {} / {} / {} (its \
         rates are per second all the same). \"Time per op vs raw\" below 1.000 means ours is \
         faster.\n",
        server.raw_name(),
        sizes.sequential,
        TASKS,
        sizes.per_task,
        sizes.multi_10,
        sizes.multi_100,
        sizes.incr,
        py_sizes.sequential,
        TASKS,
        py_sizes.per_task,
        py_sizes.multi_10,
        py_sizes.multi_100,
        py_sizes.incr,
    );
    let _ = writeln!(
        out,
        "Uncontended `Lock`: {} × (`acquire` + `release`) of one lock against {} × one raw \
         round trip ({}), interleaved in each of {} rounds: {} per acquire + release, {} per \
         round trip; ratio (median of per-round ratios) {}. An acquire is one `add` with the \
         lease, a release one compare-and-delete: {}.\n",
        lock.n,
        lock.n,
        server.raw_ping(),
        sizes.rounds,
        cell(&lock.lock_us, "µs"),
        cell(&lock.rt_us, "µs"),
        ratio_cell(lock.ratio),
        match server {
            Server::Redis => "two round trips (`SET NX PX`, then a script)",
            Server::Memcached => {
                "three round trips (`add`, then a meta get of the CAS unique and a meta delete \
                 with it)"
            }
        },
    );
    out.push_str(&hit_body);
    targets.push(hit_target);
    out.push_str(&co_body);
    targets.extend(co_target);
    if server == Server::Redis {
        targets.push(Target {
            what: "Redis uncontended lock acquire + release / one round trip".into(),
            goal: "≤ 2.0×".into(),
            measured: format!("{:.2}×", lock.ratio.median),
            met: lock.ratio.median <= 2.0,
        });
    }
    for t in &targets {
        let _ = writeln!(out, "{}\n", t.line());
    }
    let _ = writeln!(
        out,
        "![{} throughput, log scale](img/{}.svg)",
        server.title(),
        server.name()
    );
    Ok(Section {
        body: out,
        targets,
        groups,
    })
}
