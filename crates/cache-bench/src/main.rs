//! `cache-bench`: the numbers in docs/benchmarks.md. Run through `cargo x bench`.

// A binary: `pub` in its modules means "used by main".
#![allow(unreachable_pub)]

mod harness;
mod memcached;
mod memory;
mod redis;

use std::path::PathBuf;
use std::time::Duration;

fn usage() -> ! {
    eprintln!(
        "usage: cache-bench <memory|redis|memcached|all> [--quick] [--no-write]\n       cache-bench footprint <store> <entries>"
    );
    std::process::exit(2)
}

fn docs_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md")
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
    let quick = args.iter().any(|a| a == "--quick");
    let write = !quick && !args.iter().any(|a| a == "--no-write");
    let (rounds, dur, entries) = if quick {
        (1, Duration::from_millis(100), 10_000)
    } else {
        (5, Duration::from_secs(1), 1_000_000)
    };
    let mut sections: Vec<(&str, String)> = Vec::new();
    if matches!(what, "memory" | "all") {
        let mut body = format!(
            "## Memory backend\n\nCommand: `cargo x bench memory`. Machine: {}.\n\nWorkload: {} threads, 100k keys, 64-byte values, 90 % get / 10 % set with a 300 s TTL; async contenders run as 2 tasks on a 2-worker Tokio runtime, quick_cache on 2 OS threads.\n",
            harness::machine(),
            2
        );
        body.push_str(&memory::throughput(rounds, dur));
        body.push_str(&memory::footprint_table(entries));
        sections.push(("memory", body));
        if !quick {
            sections.push(("eviction", eviction_study()));
        }
    }
    if matches!(what, "redis" | "all") {
        let url = std::env::var("CACHE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:16379".into());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        match rt.block_on(redis::run(&url, quick)) {
            Ok(body) => sections.push(("redis", body)),
            Err(e) => {
                eprintln!("redis benchmark failed against {url}: {e}");
                std::process::exit(1);
            }
        }
    }
    if matches!(what, "memcached" | "all") {
        let url = std::env::var("CACHE_TEST_MEMCACHED_URL")
            .unwrap_or_else(|_| "memcached://127.0.0.1:21211".into());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        match rt.block_on(memcached::run(&url, quick)) {
            Ok(body) => sections.push(("memcached", body)),
            Err(e) => {
                eprintln!("memcached benchmark failed against {url}: {e}");
                std::process::exit(1);
            }
        }
    }
    if sections.is_empty() {
        usage()
    }
    for (name, body) in &sections {
        println!("{body}");
        if write && let Err(e) = harness::write_section(&docs_file(), name, body) {
            eprintln!("cannot write docs/benchmarks.md: {e}");
            std::process::exit(1);
        }
    }
}
