//! Instructions per operation, stratacache against the raw client, and where the difference
//! goes: each contender of `examples/mix_profile.rs` (Redis) alone in its process under
//! callgrind, at two operation counts; the difference of the two totals divided by the
//! difference of the counts is the cost of one more operation (start-up and connection set-up
//! cancel out). Instruction counts do not move with the load of the machine, so the
//! contenders can be set side by side step by step: each row adds one thing to the one
//! before.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::aiocache::workspace_root;

/// Operation counts of the two runs of each contender.
const FEW: usize = 20_000;
const MANY: usize = 60_000;

/// One contender: its argument to `mix_profile`, the protocol in the URL, the workload
/// (`""`: the 90/10 mix, `gets`, `mget`, `mset`), and what it is.
struct Step {
    who: &'static str,
    protocol: &'static str,
    mode: &'static str,
    what: &'static str,
}

const MIX: [Step; 4] = [
    Step {
        who: "raw",
        protocol: "resp2",
        mode: "",
        what: "raw fred `Client` (RESP2, its default), keys pre-built",
    },
    Step {
        who: "ours-layers",
        protocol: "resp2",
        mode: "",
        what: "`Cache<RawBytes>` over `RedisBackend`, no deadline: key building, the layer \
               pipeline, the `dyn Backend` calls (each future boxed)",
    },
    Step {
        who: "ours",
        protocol: "resp2",
        mode: "",
        what: "+ the 5 s deadline (a slot taken and given back in the runtime's table of \
               deadlines per call): the defaults, what the throughput tables run",
    },
    Step {
        who: "ours",
        protocol: "resp3",
        mode: "",
        what: "the same over RESP3 (`protocol=resp3`, needed for client tracking)",
    },
];

const GETS: [Step; 3] = [
    Step {
        who: "raw",
        protocol: "resp2",
        mode: "gets",
        what: "raw fred `Client`, `GET`s",
    },
    Step {
        who: "ours",
        protocol: "resp2",
        mode: "gets",
        what: "`Cache<RawBytes>` (defaults, 5 s deadline), `GET`s",
    },
    Step {
        who: "ours-coalesced",
        protocol: "resp2",
        mode: "gets",
        what: "+ `CoalesceLayer`: concurrent reads sent as `MGET`s",
    },
];

const MULTI: [Step; 6] = [
    Step {
        who: "raw",
        protocol: "resp2",
        mode: "mget",
        what: "raw fred `MGET` of 100 keys",
    },
    Step {
        who: "ours",
        protocol: "resp2",
        mode: "mget",
        what: "`Cache<RawBytes>::multi_get` of 100 keys (defaults)",
    },
    Step {
        who: "ours",
        protocol: "resp3",
        mode: "mget",
        what: "the same over RESP3",
    },
    Step {
        who: "raw",
        protocol: "resp2",
        mode: "mset",
        what: "raw fred `MSET` of 100 keys",
    },
    Step {
        who: "ours",
        protocol: "resp2",
        mode: "mset",
        what: "`Cache<RawBytes>::multi_set` of 100 keys (defaults)",
    },
    Step {
        who: "ours",
        protocol: "resp3",
        mode: "mset",
        what: "the same over RESP3",
    },
];

/// `valgrind --tool=callgrind` on `binary`, its output discarded: add the arguments and the
/// environment, then [`instructions`].
fn callgrind(binary: &Path) -> Command {
    let mut cmd = Command::new("valgrind");
    cmd.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(binary);
    cmd
}

/// Total instructions of the run `cmd` (from [`callgrind`]), from its summary line; `what`
/// names the run in errors.
fn instructions(mut cmd: Command, what: &str) -> Result<u64, String> {
    let out = cmd.output().map_err(|e| format!("valgrind: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{what}: {}", stderr.trim()));
    }
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in: {}", stderr.trim()))
}

/// Instructions per operation: the runs of `few` and `many` operations at once (two cores),
/// their difference divided by the difference of the operations `done` counts for each.
fn slope(
    few: usize,
    many: usize,
    done: impl Fn(usize) -> f64,
    run: impl Fn(usize) -> Result<u64, String> + Sync,
) -> Result<f64, String> {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(few));
        let b = s.spawn(|| run(many));
        (a.join(), b.join())
    });
    let a = a.map_err(|_| "a callgrind run panicked".to_owned())??;
    let b = b.map_err(|_| "a callgrind run panicked".to_owned())??;
    Ok((b as f64 - a as f64) / (done(many) - done(few)))
}

/// Instructions per operation of `step`.
fn per_op(binary: &Path, url: &str, step: &Step) -> Result<f64, String> {
    // mix_profile runs 64 tasks of ops / 64 each, or ops / 100 calls of 100 keys; a
    // multi-key call is counted as one operation
    let done = |n: usize| match step.mode {
        "mget" | "mset" => (n / 100) as f64,
        _ => (n / 64 * 64) as f64,
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}protocol={}", step.protocol);
    slope(FEW, MANY, done, |ops| {
        let mut cmd = callgrind(binary);
        cmd.args([step.who, &ops.to_string()])
            .env("CACHE_TEST_REDIS_URL", &url);
        if !step.mode.is_empty() {
            cmd.arg(step.mode);
        }
        instructions(cmd, &format!("{} {ops}", step.who))
    })
}

/// A table of `steps`, each against the row above and against the raw client of its group
/// (the last row whose contender is `raw`).
fn table(out: &mut String, title: &str, unit: &str, steps: &[Step], figures: &[f64]) {
    let _ = writeln!(
        out,
        "| {title} | instructions per {unit} | vs the row above | vs raw |\n|---|---|---|---|"
    );
    let mut raw = figures[0];
    for (i, (step, n)) in steps.iter().zip(figures).enumerate() {
        let step_delta = if i == 0 || step.who == "raw" {
            raw = *n;
            "—".to_owned()
        } else {
            format!("{:+.0}", n - figures[i - 1])
        };
        let _ = writeln!(
            out,
            "| {} | {n:.0} | {step_delta} | {:.2}× |",
            step.what,
            n / raw
        );
    }
    let _ = writeln!(out);
}

/// Builds `mix_profile`, runs every contender under callgrind and returns the section.
pub(crate) fn section(redis_url: &str) -> String {
    let mut out = String::from(
        "## Instructions per operation (Redis)\n\nCommand: `cargo x bench profile` (needs \
         `valgrind`). Each contender of `crates/cache-bench/examples/mix_profile.rs` runs alone \
         in its process under callgrind: 64 tasks (or one, for the calls of 100 keys) on a \
         2-worker runtime, 1,000 keys of 100-byte values, values as bytes on both sides (no \
         JSON), against the benchmark's redis-server. Instructions per operation = \
         (instructions of a run of 60,000 operations (keys) − those of a run of 20,000) / \
         40,000 (/ 400 calls): start-up and connecting cancel out. Callgrind runs the \
         threads one at a time, so the batches of auto-pipelining and coalescing differ from a \
         free run; the counts are the CPU work per operation, not throughput. Each row adds one \
         thing to the row above.\n\n",
    );
    let Some(binary) = built("mix_profile", &mut out) else {
        return out;
    };
    let run = |steps: &[Step]| -> Result<Vec<f64>, String> {
        steps
            .iter()
            .map(|s| per_op(&binary, redis_url, s))
            .collect()
    };
    match (run(&MIX), run(&GETS), run(&MULTI)) {
        (Ok(mix), Ok(gets), Ok(multi)) => {
            table(
                &mut out,
                "64 tasks, 90 % `get` / 10 % `set`",
                "op",
                &MIX,
                &mix,
            );
            table(&mut out, "64 tasks, `get` only", "op", &GETS, &gets);
            table(
                &mut out,
                "one task, 100 keys per call",
                "call",
                &MULTI,
                &multi,
            );
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            let _ = writeln!(out, "Not measured: {e}");
        }
    }
    out
}

/// One Memcached workload of `examples/mc_profile.rs`: its name, the two counts (operations,
/// or calls of 100 keys), whether it runs on one thread, and what a row says.
struct McWorkload {
    name: &'static str,
    few: usize,
    many: usize,
    one_thread: bool,
    what: &'static str,
}

const MC_WORKLOADS: [McWorkload; 5] = [
    McWorkload {
        name: "get",
        few: 1_000,
        many: 3_000,
        one_thread: true,
        what: "sequential `get`, per op",
    },
    McWorkload {
        name: "set",
        few: 1_000,
        many: 3_000,
        one_thread: true,
        what: "sequential `set`, per op",
    },
    McWorkload {
        name: "mix",
        few: 3_200,
        many: 9_600,
        one_thread: false,
        what: "64 tasks, 90 % `get` / 10 % `set`, per op",
    },
    McWorkload {
        name: "mget",
        few: 100,
        many: 300,
        one_thread: true,
        what: "`multi_get` of 100 keys, per call",
    },
    McWorkload {
        name: "mset",
        few: 100,
        many: 300,
        one_thread: true,
        what: "`multi_set` of 100 keys, per call",
    },
];

/// Instructions per operation (or call) of `who` on `w`.
fn mc_per_op(binary: &Path, url: &str, who: &str, w: &McWorkload) -> Result<f64, String> {
    slope(
        w.few,
        w.many,
        |n| n as f64,
        |ops| {
            let mut cmd = callgrind(binary);
            cmd.args([who, w.name, &ops.to_string()])
                .env("CACHE_TEST_MEMCACHED_URL", url);
            if w.one_thread {
                cmd.env("MC_PROFILE_RUNTIME", "current");
            }
            instructions(cmd, &format!("{who} {} {ops}", w.name))
        },
    )
}

/// The Memcached section: raw async-memcached, the backend alone, the cache over it.
pub(crate) fn memcached_section(memcached_url: &str) -> String {
    let mut out = String::from(
        "## Instructions per operation (Memcached)\n\nCommand: `cargo x bench profile`. \
         `crates/cache-bench/examples/mc_profile.rs` under callgrind, as above: raw \
         async-memcached (`Client`s behind a semaphore pool of 8, keys pre-built), \
         `MemcachedBackend` called through the `Backend` trait with built keys and no deadline \
         (the backend's own cost; for calls of 100 keys it also builds the `String` keys and \
         entries the trait takes), and `Cache<RawBytes>` over it (defaults: 5 s deadline, pool \
         of 8). One server, 1,000 keys, values as bytes; the sequential workloads and the calls \
         of 100 keys run on one thread (steadier counts), the mix on two. Per operation = the \
         difference of two runs (1,000 and 3,000 operations; 3,200 and 9,600 for the mix; 100 \
         and 300 calls) divided by the difference of their counts.\n\n",
    );
    let Some(binary) = built("mc_profile", &mut out) else {
        return out;
    };
    let _ = writeln!(
        out,
        "| workload | raw async-memcached | `MemcachedBackend` alone | `Cache<RawBytes>` | cache vs raw |\n|---|---|---|---|---|"
    );
    for w in &MC_WORKLOADS {
        let row: Result<Vec<f64>, String> = ["raw", "backend", "ours"]
            .iter()
            .map(|who| mc_per_op(&binary, memcached_url, who, w))
            .collect();
        match row {
            Ok(n) => {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.0} | {:.0} | {:.2}× |",
                    w.what,
                    n[0],
                    n[1],
                    n[2],
                    n[2] / n[0]
                );
            }
            Err(e) => {
                let _ = writeln!(out, "| {} | not measured: {e} | | | |", w.what);
            }
        }
    }
    out
}

/// Builds the example `name` (release) and returns its path, or says in `out` why not.
fn built(name: &str, out: &mut String) -> Option<PathBuf> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        let _ = writeln!(
            out,
            "Not measured: `valgrind` is not installed (`apt install valgrind`)."
        );
        return None;
    }
    let root = workspace_root();
    let build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "cache-bench",
            "--example",
            name,
        ])
        .status();
    if !matches!(build, Ok(s) if s.success()) {
        let _ = writeln!(out, "Not measured: `{name}` did not build.");
        return None;
    }
    Some(
        root.join("target")
            .join("release")
            .join("examples")
            .join(name),
    )
}
