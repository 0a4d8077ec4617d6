//! `cache-bench`: the numbers in docs/benchmarks.md. Run through `cargo x bench`.

#![forbid(unsafe_code)]
// A binary: `pub` in its modules means "used by main".
#![allow(unreachable_pub)]

mod aiocache;
mod chart;
mod coalesce;
mod decorators;
mod generations;
mod harness;
mod memory;
mod net;
mod outage;
mod profile;
mod read_through;
mod serde_bench;
mod stampede;
mod stampede_processes;
mod tags;
mod tiered;
mod workloads;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aiocache::{Python, workspace_root};
use chart::Group;
use harness::{Target, machine, tool_version};
use workloads::Server;

const WORKLOADS: [&str; 11] = [
    "memory",
    "tags",
    "tiered",
    "generations",
    "decorators",
    "redis",
    "memcached",
    "profile",
    "serde",
    "stampede",
    "all",
];

fn usage() -> ! {
    eprintln!(
        "usage: cache-bench <memory|tags|tiered|generations|decorators|redis|memcached|profile|serde|stampede|all> [--quick] [--no-write]\n       cache-bench footprint <store> <entries>\n\n--quick: small sizes, a smoke test of the harness; writes target/bench-quick/ instead of docs/"
    );
    std::process::exit(2)
}

/// Runs the memory backend's hit-ratio study (`examples/hit_ratio.rs`) and returns its section.
fn eviction_study() -> String {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "cache-memory",
            "--example",
            "hit_ratio",
        ])
        .output();
    let table = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => format!(
            "hit-ratio study failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("hit-ratio study could not run: {e}"),
    };
    format!(
        "## Eviction policy of the memory backend\n\nCommand: `cargo run --release -p cache-memory --example hit_ratio` (run by `cargo x bench memory`).\n\nHit ratio of the real store (S3-FIFO) against exact LRU, CLOCK, FIFO and random eviction on the same request streams: 100,000 keys, 2,000,000 requests, a miss is followed by a set.\n\n{}",
        table.trim()
    )
}

/// A chart to draw: file stem, title, axis label, bars, log scale.
struct Chart {
    file: &'static str,
    title: String,
    axis: &'static str,
    groups: Vec<Group>,
    log: bool,
}

/// Everything one run produces.
#[derive(Default)]
struct Report {
    sections: Vec<(&'static str, String)>,
    targets: Vec<Target>,
    charts: Vec<Chart>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn redis_url() -> String {
    env_url("CACHE_TEST_REDIS_URL", "redis://127.0.0.1:16379")
}

fn memcached_url() -> String {
    env_url("CACHE_TEST_MEMCACHED_URL", "memcached://127.0.0.1:21211")
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what} benchmark failed: {e}");
    std::process::exit(1)
}

fn server_section(report: &mut Report, server: Server, quick: bool, python: &Python) {
    let url = match server {
        Server::Redis => redis_url(),
        Server::Memcached => memcached_url(),
    };
    let py = python.clone();
    let result = runtime().block_on(async move {
        // on a worker thread, as in a service
        tokio::spawn(async move {
            net::run(server, &url, quick, &py)
                .await
                .map_err(|e| format!("{e} (against {url})"))
        })
        .await
        .map_err(|e| e.to_string())?
    });
    let section = result.unwrap_or_else(|e| fail(server.name(), e));
    report.sections.push((server.name(), section.body));
    report.targets.extend(section.targets);
    report.charts.push(Chart {
        file: server.name(),
        title: format!(
            "{} — stratacache vs raw client vs aiocache (median, min–max)",
            match server {
                Server::Redis => "Redis",
                Server::Memcached => "Memcached",
            }
        ),
        axis: "operations (multi_get, multi_set: calls) per second, log scale",
        groups: section.groups,
        log: true,
    });
}

/// Versions of the tools behind the figures.
fn versions(python: Option<&Python>) -> String {
    let redis = tool_version("redis-server", &["--version"])
        .map(|v| {
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map_or(v.clone(), |s| format!("redis-server {s}"))
        })
        .unwrap_or_else(|| "redis-server not found".into());
    let memcached =
        tool_version("memcached", &["-V"]).unwrap_or_else(|| "memcached not found".into());
    let py = match python.map(Python::label) {
        Some(Ok(v)) => format!("aiocache {v}"),
        Some(Err(e)) => format!("aiocache not available ({e})"),
        None => format!(
            "{} (aiocache not used by this command)",
            tool_version("python3", &["--version"]).unwrap_or_else(|| "python3 not found".into())
        ),
    };
    format!("{redis}; {memcached}; {py}")
}

fn setup_section(what: &str, quick: bool, python: Option<&Python>, took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## How these numbers are made\n\n\
         - Machine: {}.\n\
         - Tools: {}.\n\
         - Last command: `cargo x bench {what}{}` ({:.1} min on this machine).\n\n\
         | command | does |\n|---|---|\n\
         | `cargo x bench all` | every section below and the charts in `docs/img/`, in one run (servers started if needed) |\n\
         | `cargo x bench memory` | memory backend vs moka and quick_cache, memory per entry, eviction study, cached functions (no server) |\n\
         | `cargo x bench decorators` | a `#[cached]` hit vs a hand-written `get` of the same key (no server) |\n\
         | `cargo x bench tags` | a `get` of an entry with two tags (tags on) vs a plain `get`, on memory, Redis and Memcached |\n\
         | `cargo x bench tiered` | the in-process tier: a local hit through `Cache<Json>` vs moka's `get`, four instances against one Redis with and without the local level, and the delay from a write to every other instance dropping its copy |\n\
         | `cargo x bench generations` | a `get` with namespace generations vs a plain `get` (memory, Redis), and `clear()` among five million keys on a private Redis, with and without generations |\n\
         | `cargo x bench redis` | Redis: stratacache vs raw fred vs aiocache |\n\
         | `cargo x bench memcached` | Memcached: stratacache vs raw async-memcached vs aiocache |\n\
         | `cargo x bench profile` | instructions per operation under callgrind: stratacache vs raw fred step by step, and vs raw async-memcached (needs `valgrind`) |\n\
         | `cargo x bench stampede` | `get_or_set` with 1,000 concurrent callers per cold key, every backend, and across 4 processes × 250 callers on Redis and Memcached (`ReadThrough::lease`); `get_or_set` with fail-safe through a 5 s outage of a private Redis and Memcached |\n\
         | `cargo x bench serde` | serializer size and speed (no server) |\n\
         | `cargo x bench all --quick` | smoke test of the harness with tiny sizes; writes `target/bench-quick/`, never this page |\n\n\
         aiocache runs from `bench/aiocache_bench.py` in a virtualenv, `target/bench-venv`, that \
         the command creates when missing (`python3 -m venv`, `pip install -r \
         bench/requirements.txt`). Every figure is repeated in interleaved rounds (contenders \
         alternate within a round) and shown as median (min – max); every ratio and every \
         met / missed verdict on this page is computed by the program in the same run.",
        machine(),
        versions(python),
        if quick { " --quick" } else { "" },
        took.as_secs_f64() / 60.0,
    );
    out
}

fn headline(targets: &[Target]) -> String {
    let mut out = String::from(
        "## Headline\n\nTargets of `cargo x bench all`, each measured against its peer in the same run (details and charts below).\n\n| target | goal | measured | verdict |\n|---|---|---|---|\n",
    );
    for t in targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t.what,
            t.goal,
            t.measured,
            t.verdict()
        );
    }
    let met = targets.iter().filter(|t| t.met).count();
    let _ = writeln!(
        out,
        "\n{met} of {} targets met. Charts: [memory](img/memory.svg), [Redis](img/redis.svg), [Memcached](img/memcached.svg), [serializers](img/serde.svg).",
        targets.len()
    );
    out
}

/// Where the page and the charts go: docs/ for real runs, target/bench-quick/ for `--quick`.
fn destination(quick: bool) -> (PathBuf, PathBuf) {
    let root = workspace_root();
    let docs = root.join("docs").join("benchmarks.md");
    if quick {
        let dir = root.join("target").join("bench-quick");
        let page = dir.join("benchmarks.md");
        let _ = std::fs::create_dir_all(dir.join("img"));
        // start from the real page, so every section has its place
        if let Ok(text) = std::fs::read_to_string(&docs) {
            let _ = std::fs::write(&page, text);
        }
        (page, dir.join("img"))
    } else {
        (docs, root.join("docs").join("img"))
    }
}

fn write(report: &Report, page: &Path, img: &Path) {
    if let Err(e) = std::fs::create_dir_all(img) {
        fail("chart", format!("cannot create {}: {e}", img.display()));
    }
    for c in &report.charts {
        let path = img.join(format!("{}.svg", c.file));
        if let Err(e) = chart::bars(&path, &c.title, c.axis, &c.groups, c.log) {
            fail("chart", format!("cannot draw {}: {e}", path.display()));
        }
        println!("wrote {}", path.display());
    }
    for (name, body) in &report.sections {
        if let Err(e) = harness::write_section(page, name, body) {
            fail("report", format!("cannot write {}: {e}", page.display()));
        }
    }
    println!("wrote {}", page.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(what) = args.first().map(String::as_str) else {
        usage()
    };
    if what == "footprint" {
        let (Some(store), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok())) else {
            usage()
        };
        match memory::footprint(store, n) {
            Ok(b) => println!("{b:.1}"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        }
        return;
    }
    if what == stampede_processes::WORKER {
        // one process of the cross-process stampede, started by the stampede workload
        if let Err(e) = runtime().block_on(stampede_processes::worker(&args[1..])) {
            eprintln!("stampede worker failed: {e}");
            std::process::exit(1)
        }
        return;
    }
    if !WORKLOADS.contains(&what) {
        usage()
    }
    let quick = args.iter().any(|a| a == "--quick");
    let write_out = !args.iter().any(|a| a == "--no-write");
    let all = what == "all";
    let started = Instant::now();
    let mut report = Report::default();

    if all || what == "memory" {
        let (rounds, dur, entries) = if quick {
            (2, Duration::from_millis(100), 10_000)
        } else {
            (5, Duration::from_secs(1), 1_000_000)
        };
        let (text, targets, groups) = memory::throughput(rounds, dur);
        let mut body = format!(
            "## Memory backend\n\nCommand: `cargo x bench memory`. Machine: {}.\n\nWorkload: {} threads, 100k keys, 64-byte values, 90 % get / 10 % set with a 300 s TTL; async contenders run as 2 tasks on a 2-worker Tokio runtime, quick_cache on 2 OS threads. The targets compare (a), the backend behind every `Cache`, with the two in-process peers.\n",
            machine(),
            2
        );
        body.push_str(&text);
        body.push_str(&memory::layer_costs(rounds, dur));
        let (hit_body, hit_target) =
            read_through::memory(rounds, if quick { 20_000 } else { 500_000 });
        body.push_str(&hit_body);
        body.push_str(&memory::footprint_table(entries));
        report.sections.push(("memory", body));
        report.targets.extend(targets);
        report.targets.push(hit_target);
        report.charts.push(Chart {
            file: "memory",
            title: "Memory backend vs moka and quick_cache (median, min–max)".into(),
            axis: "operations per second (2 threads, 90 % get)",
            groups,
            log: false,
        });
        if !quick {
            report.sections.push(("eviction", eviction_study()));
        }
        eprintln!("memory done after {:.0} s", started.elapsed().as_secs_f64());
    }

    if all || what == "memory" || what == "decorators" {
        let (rounds, dur) = if quick {
            (3, Duration::from_millis(100))
        } else {
            (9, Duration::from_millis(500))
        };
        let (body, target) = decorators::run(rounds, dur);
        report.sections.push(("decorators", body));
        report.targets.push(target);
        eprintln!(
            "decorators done after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    let python = (all || matches!(what, "redis" | "memcached")).then(Python::prepare);
    for (name, server) in [("redis", Server::Redis), ("memcached", Server::Memcached)] {
        if all || what == name {
            let py = python.as_ref().expect("prepared above");
            server_section(&mut report, server, quick, py);
            eprintln!("{name} done after {:.0} s", started.elapsed().as_secs_f64());
        }
    }

    if (all && !quick) || what == "profile" {
        report.sections.push((
            "profile",
            format!(
                "{}\n{}",
                profile::section(&redis_url()),
                profile::memcached_section(&memcached_url())
            ),
        ));
        eprintln!(
            "profile done after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    if all || what == "stampede" {
        let (redis, memcached) = (redis_url(), memcached_url());
        let cold_keys = if quick { 3 } else { 20 };
        let outage = Duration::from_secs(if quick { 1 } else { 5 });
        let (section, (processes_body, processes_targets), (outage_body, outage_targets)) =
            runtime()
                .block_on(async move {
                    tokio::spawn(async move {
                        let section = stampede::run(Some(&redis), Some(&memcached), cold_keys)
                            .await
                            .map_err(|e| e.to_string())?;
                        let processes = stampede_processes::run(&redis, &memcached, cold_keys)
                            .await
                            .map_err(|e| format!("cross-process stampede: {e}"))?;
                        let outage = outage::run(outage)
                            .await
                            .map_err(|e| format!("outage: {e}"))?;
                        Ok::<_, String>((section, processes, outage))
                    })
                    .await
                    .map_err(|e| e.to_string())?
                })
                .unwrap_or_else(|e| fail("stampede", e));
        report.sections.push((
            "stampede",
            format!("{}{processes_body}{outage_body}", section.body),
        ));
        report.targets.extend(section.targets);
        report.targets.extend(processes_targets);
        report.targets.extend(outage_targets);
        eprintln!(
            "stampede done after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    if all || what == "tags" {
        let (body, targets) = tags::run(&redis_url(), &memcached_url(), quick);
        report.sections.push(("tags", body));
        report.targets.extend(targets);
        eprintln!("tags done after {:.0} s", started.elapsed().as_secs_f64());
    }

    if all || what == "tiered" {
        let (body, targets) = tiered::run(&redis_url(), quick);
        report.sections.push(("tiered", body));
        report.targets.extend(targets);
        eprintln!("tiered done after {:.0} s", started.elapsed().as_secs_f64());
    }

    if all || what == "generations" {
        let (body, targets) = generations::run(&redis_url(), quick);
        report.sections.push(("generations", body));
        report.targets.extend(targets);
        eprintln!(
            "generations done after {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    if all || what == "serde" {
        let (rounds, n) = if quick { (2, 500) } else { (7, 20_000) };
        let section = serde_bench::run(rounds, n);
        report.sections.push(("serde", section.body));
        report.charts.push(Chart {
            file: "serde",
            title: "Serializers: one typical record (median, min–max)".into(),
            axis: "nanoseconds per operation",
            groups: section.groups,
            log: false,
        });
    }

    if all {
        report
            .sections
            .push(("headline", headline(&report.targets)));
    }
    report.sections.push((
        "setup",
        setup_section(what, quick, python.as_ref(), started.elapsed()),
    ));

    for (_, body) in &report.sections {
        println!("{body}");
    }
    if write_out {
        let (page, img) = destination(quick);
        write(&report, &page, &img);
    }
    let missed = report.targets.iter().filter(|t| !t.met).count();
    println!(
        "{} targets, {missed} missed; {:.1} min",
        report.targets.len(),
        started.elapsed().as_secs_f64() / 60.0
    );
}
