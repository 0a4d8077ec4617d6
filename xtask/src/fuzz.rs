//! `cargo x fuzz`: the cargo-fuzz targets in `fuzz/`, on a stable compiler.
//!
//! cargo-fuzz needs nightly-only compiler flags (sanitizers, coverage instrumentation); this
//! task sets `RUSTC_BOOTSTRAP=1` so that the stable toolchain accepts them. It builds into a
//! target directory of its own, so it never invalidates the workspace's build, and it is not
//! part of `cargo x ci`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use crate::util::{self, Failure, Result};

/// The targets in `fuzz/fuzz_targets/`, in the order `--smoke` runs them.
const TARGETS: &[&str] = &[
    "url_config",
    "key_encoding",
    "serializer_decode",
    "raw_reply",
];
/// Seconds per target of `--smoke`.
const SMOKE_SECS: u64 = 30;
/// Seconds of a single-target run without `--time`.
const DEFAULT_SECS: u64 = 60;

pub(crate) const USAGE: &str = "\
Usage: cargo x fuzz --smoke [--time SECS]
       cargo x fuzz TARGET [--time SECS] [-- LIBFUZZER ARGS]
       cargo x fuzz --list

Runs the cargo-fuzz targets in fuzz/ (installing cargo-fuzz if missing) with RUSTC_BOOTSTRAP=1
on the stable compiler. --smoke runs every target for 30 s; TARGET runs one (60 s unless
--time says otherwise). Each run starts from fuzz/corpus/TARGET and the seeds in
fuzz/seeds/TARGET; crashes land in fuzz/artifacts/TARGET. Prints executions, coverage,
corpus size and findings per target and fails if any target found something.

Not part of `cargo x ci`: it needs RUSTC_BOOTSTRAP and minutes of CPU.

Environment:
    STRATACACHE_FUZZ_TARGET_DIR   build directory (default: target/fuzz)";

/// What one fuzzing run reported.
#[derive(Debug, Default)]
struct Summary {
    target: String,
    /// Wall-clock seconds, build included.
    secs: u64,
    /// Seconds spent fuzzing, as libFuzzer counts them.
    fuzz_secs: Option<u64>,
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    cov: Option<u64>,
    corpus: Option<u64>,
    findings: usize,
    failed: bool,
}

/// `cargo x fuzz ARGS`.
pub(crate) fn cli(args: &[String]) -> Result {
    let (ours, libfuzzer) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut smoke = false;
    let mut target = None;
    let mut secs = None;
    let mut it = ours.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--list" => {
                TARGETS.iter().for_each(|t| println!("{t}"));
                return Ok(());
            }
            "--smoke" => smoke = true,
            "--time" => {
                let value = it
                    .next()
                    .ok_or_else(|| usage("--time needs a number of seconds"))?;
                secs = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or_else(|| usage(&format!("--time {value}: not a positive number")))?,
                );
            }
            other if !other.starts_with('-') && target.is_none() => target = Some(other),
            other => return Err(usage(&format!("unexpected argument `{other}`"))),
        }
    }
    let targets: Vec<&str> = match (smoke, target) {
        (true, None) => TARGETS.to_vec(),
        (false, Some(t)) if TARGETS.contains(&t) => vec![t],
        (false, Some(t)) => {
            return Err(usage(&format!(
                "unknown target `{t}`; the targets are {}",
                TARGETS.join(", ")
            )));
        }
        (true, Some(_)) => return Err(usage("give either --smoke or a target, not both")),
        (false, None) => return Err(usage("give --smoke or a target")),
    };
    let secs = secs.unwrap_or(if smoke { SMOKE_SECS } else { DEFAULT_SECS });

    util::ensure_cargo_tool("fuzz", "cargo-fuzz")?;
    let summaries = targets
        .iter()
        .map(|t| run_target(t, secs, libfuzzer))
        .collect::<Result<Vec<_>>>()?;

    util::header("fuzz summary");
    print_table(&summaries);
    let bad: Vec<&str> = summaries
        .iter()
        .filter(|s| s.failed || s.findings > 0)
        .map(|s| s.target.as_str())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "fuzzing found problems in {}; see fuzz/artifacts/ (reproduce with `cargo fuzz run TARGET ARTIFACT`)",
            bad.join(", ")
        )))
    }
}

fn usage(message: &str) -> Failure {
    Failure::with_code(format!("{message}\n\n{USAGE}"), 2)
}

fn fuzz_dir() -> PathBuf {
    util::workspace_root().join("fuzz")
}

fn target_dir() -> PathBuf {
    std::env::var_os("STRATACACHE_FUZZ_TARGET_DIR")
        .map_or_else(|| util::workspace_root().join("target/fuzz"), PathBuf::from)
}

/// Files in `dir` (0 when it does not exist).
fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .count()
    })
}

fn run_target(target: &str, secs: u64, libfuzzer: &[String]) -> Result<Summary> {
    util::header(&format!("fuzz {target} ({secs} s)"));
    let fuzz = fuzz_dir();
    let corpus = fuzz.join("corpus").join(target);
    fs::create_dir_all(&corpus)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", corpus.display())))?;
    let artifacts = fuzz.join("artifacts").join(target);
    let before = count_files(&artifacts);

    let mut cmd = util::cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir())
        .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(&corpus);
    let seeds = fuzz.join("seeds").join(target);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={secs}"))
        .args(libfuzzer)
        .stderr(Stdio::piped());
    util::print_command(&cmd);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("cannot run cargo fuzz: {e}")))?;
    let mut summary = Summary {
        target: target.to_owned(),
        ..Summary::default()
    };
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            eprintln!("{line}");
            read_status(&line, &mut summary);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("cargo fuzz did not finish: {e}")))?;
    summary.secs = started.elapsed().as_secs();
    summary.fuzz_secs = summary.fuzz_secs.or(Some(summary.secs));
    summary.failed = !status.success();
    summary.findings = count_files(&artifacts).saturating_sub(before);
    Ok(summary)
}

/// Picks the figures out of libFuzzer's status lines
/// (`#1234 DONE cov: 56 ft: 78 corp: 9/10b lim: 4 exec/s: 11 rss: 12Mb`) and its final
/// `Done 1234 runs in 30 second(s)`.
fn read_status(line: &str, summary: &mut Summary) {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return;
    };
    if first == "Done" {
        let words: Vec<&str> = words.collect();
        summary.runs = words.first().and_then(|n| n.parse().ok()).or(summary.runs);
        if let Some(secs) = words.get(3).and_then(|n| n.parse().ok()) {
            summary.fuzz_secs = Some(secs);
        }
        return;
    }
    let Some(runs) = first.strip_prefix('#').and_then(|n| n.parse().ok()) else {
        return;
    };
    summary.runs = Some(runs);
    let words: Vec<&str> = words.collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let number = |key: &str| after(key).and_then(|v| v.parse::<u64>().ok());
    if let Some(cov) = number("cov:") {
        summary.cov = Some(cov);
    }
    if let Some(rate) = number("exec/s:") {
        summary.execs_per_sec = Some(rate);
    }
    if let Some(corp) = after("corp:").and_then(|v| v.split('/').next()?.parse().ok()) {
        summary.corpus = Some(corp);
    }
}

fn print_table(summaries: &[Summary]) {
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "{:<18} {:>6} {:>6} {:>12} {:>9} {:>7} {:>6} {:>9}",
        "target", "fuzz s", "wall s", "execs", "execs/s", "corpus", "cov", "findings"
    );
    for s in summaries {
        let findings = if s.failed && s.findings == 0 {
            "failed".to_owned()
        } else {
            s.findings.to_string()
        };
        println!(
            "{:<18} {:>6} {:>6} {:>12} {:>9} {:>7} {:>6} {:>9}",
            s.target,
            show(s.fuzz_secs),
            s.secs,
            show(s.runs),
            show(s.execs_per_sec),
            show(s.corpus),
            show(s.cov),
            findings
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_status_lines() {
        let mut s = Summary::default();
        read_status(
            "#4096\tpulse  cov: 120 ft: 300 corp: 40/1203b lim: 4096 exec/s: 2048 rss: 60Mb",
            &mut s,
        );
        read_status(
            "#98765\tDONE   cov: 130 ft: 320 corp: 44/2Kb lim: 4096 exec/s: 3292 rss: 61Mb",
            &mut s,
        );
        read_status("Done 98765 runs in 30 second(s)", &mut s);
        assert_eq!(s.runs, Some(98765));
        assert_eq!(s.fuzz_secs, Some(30));
        assert_eq!(s.cov, Some(130));
        assert_eq!(s.corpus, Some(44));
        assert_eq!(s.execs_per_sec, Some(3292));
    }
}
