//! Interleaved rounds, statistics and report plumbing shared by every workload.

use std::fmt::Write as _;
use std::path::Path;

/// Median, minimum and maximum of repeated measurements.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// The median.
    pub median: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Stats {
            median,
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Formats ops/s as `1.23 M` / `456 k`.
pub fn rate(ops_per_sec: f64) -> String {
    if ops_per_sec >= 1e6 {
        format!("{:.2} M", ops_per_sec / 1e6)
    } else if ops_per_sec >= 1e3 {
        format!("{:.1} k", ops_per_sec / 1e3)
    } else {
        format!("{ops_per_sec:.0}")
    }
}

/// A markdown table row for one contender.
pub fn row(name: &str, s: Stats, base: Option<f64>) -> String {
    let ratio = base
        .map(|b| format!("{:.2}×", s.median / b))
        .unwrap_or_else(|| "—".into());
    format!(
        "| {name} | {} | {} – {} | {ratio} |",
        rate(s.median),
        rate(s.min),
        rate(s.max)
    )
}

/// The machine the numbers come from: CPU model, cores, memory, rustc.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "? GiB".into());
    let mut out = String::new();
    let _ = write!(
        out,
        "{cpu}, {cores} cores, {mem}, {}",
        tool_version("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".into())
    );
    out
}

/// The first line a tool prints for its version flag, if it runs.
pub fn tool_version(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

/// One target of the page, measured in this run.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is compared, e.g. "Redis sequential get: time vs raw fred".
    pub what: String,
    /// The goal, e.g. "≤ 1.05×".
    pub goal: String,
    /// The measured value, formatted.
    pub measured: String,
    /// Whether the goal is met.
    pub met: bool,
}

impl Target {
    /// A target that could not be measured (`why`: the error), which counts as missed.
    pub fn not_measured(
        what: impl Into<String>,
        goal: impl Into<String>,
        why: impl std::fmt::Display,
    ) -> Target {
        Target {
            what: what.into(),
            goal: goal.into(),
            measured: format!("not measured: {why}"),
            met: false,
        }
    }

    /// `met` or `missed`, bold when missed.
    pub fn verdict(&self) -> &'static str {
        if self.met { "met" } else { "**missed**" }
    }

    /// One sentence: "Target: WHAT GOAL — measured X (met)."
    pub fn line(&self) -> String {
        format!(
            "Target: {} {} — measured **{}** ({}).",
            self.what,
            self.goal,
            self.measured,
            if self.met { "met" } else { "missed" }
        )
    }
}

/// The median of the per-round ratios `a[i] / b[i]` and their min and max.
pub fn paired(a: &[f64], b: &[f64]) -> Stats {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Stats::of(&ratios)
}

/// Replaces the section between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` in
/// `file` (creating the file or appending the section when missing).
pub fn write_section(file: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let current = std::fs::read_to_string(file).unwrap_or_else(|_| {
        "# Benchmarks\n\nEvery table on this page is written by `cargo x bench`; none is edited by hand.\n".to_owned()
    });
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (current.find(&start), current.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{}{}", &current[..a], section, &current[b + end.len()..])
        }
        _ => format!("{}\n{}\n", current.trim_end(), section),
    };
    std::fs::write(file, updated)
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A cell of rates: median (min – max).
pub fn cell(s: &[f64], unit: &str) -> String {
    if s.is_empty() {
        return "not run".into();
    }
    let st = Stats::of(s);
    format!(
        "{} {unit} ({} – {})",
        rate(st.median),
        rate(st.min),
        rate(st.max)
    )
}

/// A cell of ratios: median (min – max).
pub fn ratio_cell(r: Stats) -> String {
    format!("{:.3}× ({:.3} – {:.3})", r.median, r.min, r.max)
}

/// Nanoseconds per call of two contenders, `[base, other]`, one sample per round: a warm-up
/// of a tenth of `n` calls each, then `rounds` rounds of `n` calls of each, in an order that
/// turns every round. `ns_per_call(other, n)` runs `n` calls of one contender.
pub async fn interleaved<F, Fut, E>(
    rounds: usize,
    n: usize,
    mut ns_per_call: F,
) -> Result<[Vec<f64>; 2], E>
where
    F: FnMut(bool, usize) -> Fut,
    Fut: std::future::Future<Output = Result<f64, E>>,
{
    for other in [false, true] {
        ns_per_call(other, (n / 10).max(100)).await?;
    }
    let mut samples: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds.max(1) {
        for i in 0..2 {
            let c = (i + round) % 2;
            samples[c].push(ns_per_call(c == 1, n).await?);
        }
    }
    Ok(samples)
}

/// A time per call: `345 ns`, `77.1 µs`, `1.23 ms`.
pub fn time_per_call(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The table of two contenders measured by [`interleaved`] (`labels`: base, other) and the
/// target "the other costs at most `goal` times the base" (`what` names it), as markdown
/// rows and the target line.
pub fn two_calls(
    samples: &[Vec<f64>; 2],
    labels: [&str; 2],
    what: String,
    goal: f64,
) -> (String, Target) {
    let mut out = String::from("| call | time per call | vs the first |\n|---|---|---|\n");
    let rate = |v: &[f64]| v.iter().map(|t| 1.0 / t).collect::<Vec<f64>>();
    let ratio = paired(&rate(&samples[0]), &rate(&samples[1]));
    for (i, label) in labels.iter().enumerate() {
        let s = Stats::of(&samples[i]);
        let vs = if i == 1 {
            ratio_cell(ratio)
        } else {
            "—".to_owned()
        };
        let _ = writeln!(
            out,
            "| {label} | {} ({} – {}) | {vs} |",
            time_per_call(s.median),
            time_per_call(s.min),
            time_per_call(s.max)
        );
    }
    let target = Target {
        what,
        goal: format!("≤ {goal:.2}×"),
        measured: format!(
            "{:.3}× (rounds {:.3}–{:.3})",
            ratio.median, ratio.min, ratio.max
        ),
        met: ratio.median <= goal,
    };
    let _ = writeln!(out, "\n{}\n", target.line());
    (out, target)
}
