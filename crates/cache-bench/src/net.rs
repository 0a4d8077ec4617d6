//! The network workloads, the same on Redis and on Memcached: stratacache's `Cache<Json>` side
//! by side with the raw client of its backend and with Python's aiocache, in one run against
//! one server.
//!
//! Every contender reads and writes the same keys (`{namespace}:k{i}`) and the same JSON
//! records. The raw contender does by hand what an application on the client alone does for
//! typed values (`serde_json` both ways) but gets its keys pre-built. The main workloads also
//! run without JSON on either side, in the same rounds: `Cache<RawBytes>` on the same backend
//! with the records' bytes as `Bytes`, against the raw client sending and answering bytes.
//! Each round runs every workload for ours and raw back to back (alternating which goes
//! first), then one aiocache process runs the same workloads; ratios are medians of the
//! per-round ratios, so drift of the machine between rounds cancels out.
//!
//! This file runs the rounds and writes the report; the workloads, their data and the
//! contenders are in [`crate::workloads`], the coalescing measurement in [`crate::coalesce`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, RawBytes};

use crate::aiocache::Python;
use crate::chart::{Bar, Group};
use crate::harness::{Stats, Target, cell, machine, paired, ratio_cell};
use crate::workloads::{
    BoxError, Contender, Data, KEYS, Mode, POOL_SIZE, Server, Sizes, TASKS, Workload, contenders,
    host_port, record,
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
    /// `Cache<RawBytes>`, for the workloads that also run in [`Mode::Bytes`].
    ours_bytes: Vec<f64>,
    /// The raw client on bytes, in the same rounds.
    raw_bytes: Vec<f64>,
}

/// "1.012× (rounds 0.987–1.034)".
fn ratio_with_rounds(r: Stats) -> String {
    format!("{:.3}× (rounds {:.3}–{:.3})", r.median, r.min, r.max)
}

/// The target "stratacache time per op / raw ≤ goal" of one workload in one mode.
fn time_target(what: String, ours: &[f64], raw: &[f64], goal: f64) -> Target {
    // time per op ours / raw = raw rate / our rate
    let r = paired(raw, ours);
    Target {
        what,
        goal: format!("≤ {goal:.2}×"),
        measured: ratio_with_rounds(r),
        met: r.median <= goal,
    }
}

/// The target "stratacache throughput / raw ≥ goal" of one workload in one mode.
fn throughput_target(what: String, ours: &[f64], raw: &[f64], goal: f64) -> Target {
    let r = paired(ours, raw);
    Target {
        what,
        goal: format!("≥ {goal:.2}×"),
        measured: ratio_with_rounds(r),
        met: r.median >= goal,
    }
}

/// How a comparison is named in the headline: the two sides in `mode`, with what the raw
/// client sends (`op`, e.g. `` `MGET` ``) where that needs saying.
fn sides(server: Server, mode: Mode, op: &str) -> String {
    let raw = server.raw_name();
    let op = if op.is_empty() {
        String::new()
    } else {
        format!(" {op}")
    };
    match mode {
        Mode::Json => format!("`Cache<Json>` vs {raw}{op} + `serde_json`"),
        Mode::Bytes => format!("`Cache<RawBytes>` vs {raw}{op}, bytes on both sides (no JSON)"),
    }
}

/// The targets of workload `w` against the raw client, in both modes where it has them.
fn raw_targets(server: Server, w: Workload, s: &Samples) -> Vec<Target> {
    let title = server.title();
    let mut out = Vec::new();
    let modes = [
        (Mode::Json, &s.ours, &s.raw),
        (Mode::Bytes, &s.ours_bytes, &s.raw_bytes),
    ];
    for (mode, ours, raw) in modes {
        if ours.is_empty() {
            continue;
        }
        match w {
            Workload::SeqGet | Workload::SeqSet => out.push(time_target(
                format!(
                    "{title} {}, {}: time per op",
                    w.label(),
                    sides(server, mode, "")
                ),
                ours,
                raw,
                1.03,
            )),
            Workload::MixUniform | Workload::MixZipf => {
                let (how, goal) = match server {
                    Server::Redis => ("one auto-pipelined connection each".to_owned(), 0.97),
                    Server::Memcached => (format!("a pool of {POOL_SIZE} connections each"), 1.0),
                };
                out.push(throughput_target(
                    format!(
                        "{title} {}, {}, {how}: throughput",
                        w.label(),
                        sides(server, mode, "")
                    ),
                    ours,
                    raw,
                    goal,
                ));
            }
            Workload::MultiGet100 | Workload::MultiSet100 => out.push(throughput_target(
                format!(
                    "{title} `{}` of 100 keys, {}: throughput",
                    if w == Workload::MultiGet100 {
                        "multi_get"
                    } else {
                        "multi_set"
                    },
                    sides(server, mode, raw_sends(server, w)),
                ),
                ours,
                raw,
                0.95,
            )),
            Workload::Incr if server == Server::Memcached => out.push(time_target(
                format!(
                    "{title} sequential `increment` ({} counters), stratacache vs {} {}: time \
                     per op",
                    crate::workloads::COUNTERS,
                    server.raw_name(),
                    raw_sends(server, w),
                ),
                ours,
                raw,
                1.10,
            )),
            _ => {}
        }
    }
    out
}

/// What each side sends for `multi_get` and `multi_set` of 100 keys, and for `increment`.
fn what_is_sent(server: Server) -> String {
    match server {
        Server::Redis => "What goes on the wire: `multi_get` — one `MGET` of the 100 keys from \
            stratacache and from raw fred (`mget`); `multi_set` — the benchmark writes without a \
            TTL, so stratacache's `RedisBackend` sends one `MSET` of the 100 pairs, and raw fred \
            sends the same `MSET` (`mset`); `increment` — `INCRBY <key> 1` from both."
            .to_owned(),
        Server::Memcached => format!(
            "What goes on the wire: `multi_get` — one `get k1 … k100` from both \
             (`MemcachedBackend`, and raw async-memcached's `get_multi`), on one connection of \
             each pool, the answers put back in request order; `multi_set` — the benchmark writes without a TTL, so \
             stratacache's `MemcachedBackend` sends one pipeline of 100 quiet meta sets \
             ending in `mn` on one connection of its pool of {POOL_SIZE}, and raw \
             async-memcached sends the same pipeline with `meta_set_multi` (`ms <key> <len> k \
             q` per key, then `mn`) on one connection of its pool; `increment` — raw \
             async-memcached sends one `incr <key> 1` (`increment`); stratacache's \
             `MemcachedBackend`, once it wrote the counter, one meta arithmetic guarded by the \
             CAS unique it remembers (`ma <key> C<cas> D1 v c`): one round trip, as raw (a \
             counter it never wrote, or one another client changed, takes a meta get of the \
             value and its CAS unique first)."
        ),
    }
}

/// What the raw client sends for the workloads whose targets say it.
fn raw_sends(server: Server, w: Workload) -> &'static str {
    match (server, w) {
        (Server::Redis, Workload::MultiGet100) => "`MGET`",
        (Server::Redis, Workload::MultiSet100) => "`MSET`",
        (Server::Memcached, Workload::MultiGet100) => "`get_multi` (one `get k1 … k100`)",
        (Server::Memcached, Workload::MultiSet100) => {
            "`meta_set_multi` (100 pipelined quiet `ms`, then `mn`)"
        }
        (Server::Memcached, Workload::Incr) => "`increment` (one `incr <key> 1`)",
        _ => "",
    }
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
    // the same backend (same connections), namespace and deadline, values as bytes
    let ours_bytes = Contender::OursBytes(
        Cache::builder(cache.backend().clone())
            .namespace(&ns)
            .timeout(Duration::from_secs(5))
            .serializer(RawBytes)
            .build(),
    );
    let raw_bytes = raw.in_mode(Mode::Bytes);
    // warm-up: connections, allocator, branch predictors
    let warm = Sizes {
        sequential: 300,
        ..Sizes::rust(true)
    };
    for w in Workload::ALL {
        ours.run(&data, w, &warm).await?;
        raw.run(&data, w, &warm).await?;
        if w.has_bytes() {
            ours_bytes.run(&data, w, &warm).await?;
            raw_bytes.run(&data, w, &warm).await?;
        }
    }

    let mut samples: Vec<Samples> = Workload::ALL.iter().map(|_| Samples::default()).collect();
    let mut py_error: Option<String> = None;
    for round in 0..sizes.rounds {
        for (w, s) in Workload::ALL.iter().zip(samples.iter_mut()) {
            // alternate which mode and which contender go first, so that none always runs on
            // a warmer machine: odd rounds run the even rounds' order backwards
            let modes: &[Mode] = match (w.has_bytes(), round % 2 == 0) {
                (false, _) => &[Mode::Json],
                (true, true) => &[Mode::Json, Mode::Bytes],
                (true, false) => &[Mode::Bytes, Mode::Json],
            };
            for &mode in modes {
                let (o, r, so, sr) = match mode {
                    Mode::Json => (&ours, &raw, &mut s.ours, &mut s.raw),
                    Mode::Bytes => (&ours_bytes, &raw_bytes, &mut s.ours_bytes, &mut s.raw_bytes),
                };
                if round % 2 == 0 {
                    so.push(o.run(&data, *w, &sizes).await?);
                    sr.push(r.run(&data, *w, &sizes).await?);
                } else {
                    sr.push(r.run(&data, *w, &sizes).await?);
                    so.push(o.run(&data, *w, &sizes).await?);
                }
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

    let (co_cache, co_bytes, co_layer) = crate::coalesce::coalesced_cache(server, url, &ns).await?;
    let (coalesced, coalesced_bytes) = (
        Contender::Ours(co_cache.clone()),
        Contender::OursBytes(co_bytes),
    );
    let trio = |plain, coalesced, raw| crate::coalesce::Trio {
        plain,
        coalesced,
        raw,
    };
    let (co_body, co_targets) = crate::coalesce::measure(
        server,
        trio(&ours, &coalesced, &raw),
        trio(&ours_bytes, &coalesced_bytes, &raw_bytes),
        &co_layer,
        &data,
        &sizes,
    )
    .await?;
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
    let raw_name = server.raw_name();
    let _ = writeln!(
        out,
        "| workload | stratacache | {raw_name} | aiocache | time per op vs {raw_name} | \
         throughput vs {raw_name} | throughput vs aiocache |\n|---|---|---|---|---|---|---|",
    );
    let mut targets = Vec::new();
    let mut groups = Vec::new();
    let mut bytes_rows = String::new();
    for (w, s) in Workload::ALL.iter().zip(&samples) {
        let unit = w.unit();
        // time per op ours / raw = raw rate / our rate
        let vs_raw = paired(&s.raw, &s.ours);
        let vs_py = (!s.py.is_empty()).then(|| paired(&s.ours_with_py, &s.py));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            w.label(),
            cell(&s.ours, unit),
            cell(&s.raw, unit),
            cell(&s.py, unit),
            ratio_cell(vs_raw),
            ratio_cell(paired(&s.ours, &s.raw)),
            vs_py.map_or("—".into(), ratio_cell),
        );
        if !s.ours_bytes.is_empty() {
            let _ = writeln!(
                bytes_rows,
                "| {} | {} | {} | {} | {} |",
                w.label(),
                cell(&s.ours_bytes, unit),
                cell(&s.raw_bytes, unit),
                ratio_cell(paired(&s.raw_bytes, &s.ours_bytes)),
                ratio_cell(paired(&s.ours_bytes, &s.raw_bytes)),
            );
        }
        targets.extend(raw_targets(server, *w, s));
        if matches!(w, Workload::MixUniform | Workload::MixZipf) {
            let what = format!(
                "{} {}: stratacache throughput / aiocache",
                server.title(),
                w.label()
            );
            targets.push(match vs_py {
                Some(r) => Target {
                    what,
                    goal: "≥ 20×".into(),
                    measured: format!("{:.1}×", r.median),
                    met: r.median >= 20.0,
                },
                None => Target {
                    what,
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
                bar(raw_name, &s.raw),
                bar("aiocache", &s.py),
            ]
            .into_iter()
            .flatten()
            .collect(),
        });
    }
    let _ = writeln!(
        out,
        "\nOperations per round: stratacache and {raw_name}: {} sequential get / set, {} × {} \
         mixed, {} multi_get of 10, {} of 100, {} multi_set of 100, {} increments; aiocache: {} \
         / {} × {} / {} / {} / {} / {} (its rates are per second all the same). \"Time per op vs \
         raw\" below 1.000 means ours is faster.\n",
        sizes.sequential,
        TASKS,
        sizes.per_task,
        sizes.multi_10,
        sizes.multi_100,
        sizes.multi_set,
        sizes.incr,
        py_sizes.sequential,
        TASKS,
        py_sizes.per_task,
        py_sizes.multi_10,
        py_sizes.multi_100,
        py_sizes.multi_set,
        py_sizes.incr,
    );
    let _ = writeln!(out, "{}\n", what_is_sent(server));
    let _ = writeln!(
        out,
        "**Without JSON.** The workloads below also run with the values as bytes on both sides, \
         in the same rounds as the table above (the two modes alternate which goes first, as \
         the contenders do): **stratacache** = `Cache<RawBytes>` over the same backend (same \
         connections, namespace and deadline) with `bytes::Bytes` values, the records' JSON \
         bytes; **{raw_name}** = the same client and keys, sending those bytes and answering \
         the bytes it reads, nothing decoded. Same operations per round. What is left is the \
         facade's own cost.\n\n| workload, bytes | stratacache `Cache<RawBytes>` | {raw_name} \
         on bytes | time per op vs {raw_name} | throughput vs {raw_name} |\n|---|---|---|---|---|\n\
         {bytes_rows}"
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
    targets.extend(co_targets);
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
