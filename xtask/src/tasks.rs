//! `cargo x test | ci | bench | lint | doc | deny | hack | fmt | tools`.

use std::env;
use std::time::{Duration, Instant};

use crate::services::{self, SERVICES, Service};
use crate::util::{self, Failure, Result};

/// How `cargo x deny` (and so `cargo x ci`) checks the RustSec advisories; see [`Advisories`].
const ADVISORIES_VAR: &str = "STRATACACHE_DENY_ADVISORIES";

/// How long fetching the RustSec database may take before it counts as unreachable. A
/// network that drops packets instead of refusing them would otherwise stall the gate.
const ADVISORY_FETCH_DEADLINE: Duration = Duration::from_secs(120);

/// The project's policy for a run where the advisory database can be neither fetched nor
/// found on the machine: `false`, the run passes with a loud warning, under `CI` too.
///
/// The machines this project's CI runs on reach the package registries but not the RustSec
/// database's repository, and start without a copy of it, so a failure here would fail every
/// CI run without telling anyone more than the warning does. Machines that can fetch it check
/// it on every run (the default mode); set `STRATACACHE_DENY_ADVISORIES=1` where a check
/// against the current database must never be skipped.
const UNCHECKED_ADVISORIES_FAIL_CI: bool = false;

/// What `STRATACACHE_DENY_ADVISORIES` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Advisories {
    /// Unset or `auto`: fetch the current database and check against it; when fetching fails,
    /// check against the copy a previous fetch left on this machine (saying how old it is);
    /// when there is none, skip the check with a warning (see
    /// [`UNCHECKED_ADVISORIES_FAIL_CI`]).
    Auto,
    /// `1` or `fetch`: check against the current database; a failed fetch fails the task.
    Required,
    /// `0` or `off`: no advisories check (licenses, bans and sources still run).
    Off,
}

impl Advisories {
    fn from_env() -> Result<Advisories> {
        Advisories::parse(env::var(ADVISORIES_VAR).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Advisories> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "auto") => Ok(Advisories::Auto),
            Some("1" | "fetch" | "true" | "yes") => Ok(Advisories::Required),
            Some("0" | "off" | "false" | "no") => Ok(Advisories::Off),
            Some(other) => Err(Failure::with_code(
                format!("{ADVISORIES_VAR}={other:?}: expected auto, 1 (fetch) or 0 (off)"),
                2,
            )),
        }
    }
}

/// What the last `deny` run did about advisories, for the `cargo x ci` summary.
static ADVISORIES_NOTE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn note_advisories(note: impl Into<String>) {
    let note = note.into();
    if let Ok(mut slot) = ADVISORIES_NOTE.lock() {
        *slot = Some(note);
    }
}

fn all_services() -> Vec<&'static Service> {
    SERVICES.iter().collect()
}

/// The `-p NAME` / `--package NAME` / `--package=NAME` options in `args`.
fn package_selection(args: &[String]) -> Vec<String> {
    let mut picked = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            break;
        }
        if arg == "-p" || arg == "--package" {
            if let Some(name) = iter.next() {
                picked.push(arg.clone());
                picked.push(name.clone());
            }
        } else if arg.starts_with("--package=") || (arg.starts_with("-p") && arg.len() > 2) {
            picked.push(arg.clone());
        }
    }
    picked
}

fn has_profile(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--profile" || a == "-P" || a.starts_with("--profile="))
}

/// Whether `.config/nextest.toml` defines the `ci` profile.
fn has_ci_profile() -> bool {
    let config = util::workspace_root().join(".config").join("nextest.toml");
    std::fs::read_to_string(config).is_ok_and(|text| text.contains("[profile.ci]"))
}

/// `cargo x test [NEXTEST ARGS]`: services up, nextest, doc tests, services down.
pub(crate) fn test(extra: &[String]) -> Result {
    util::ensure_cargo_tool("nextest", "cargo-nextest")?;
    let services = all_services();

    util::header("test: services up");
    let held = services::hold(&services)?;
    let mut failures: Vec<Failure> = Vec::new();
    let packages = package_selection(extra);

    util::header("test: cargo nextest");
    let mut nextest = util::cargo();
    nextest.args(["nextest", "run"]);
    if packages.is_empty() {
        nextest.arg("--workspace");
    }
    nextest.args(["--all-features", "--no-fail-fast"]);
    if util::is_ci() && !has_profile(extra) && has_ci_profile() {
        nextest.args(["--profile", "ci"]);
    }
    nextest.args(extra);
    services::set_env(&mut nextest, &services);
    if let Err(e) = util::run(&mut nextest) {
        failures.push(e);
    }

    util::header("test: doc tests");
    let mut doc = util::cargo();
    doc.args(["test", "--doc"]);
    if packages.is_empty() {
        // xtask is a binary: it has no doc tests, and alone it would make cargo fail.
        doc.args(["--workspace", "--exclude", "xtask"]);
    } else {
        doc.args(&packages);
    }
    doc.arg("--all-features");
    services::set_env(&mut doc, &services);
    if let Err(e) = util::run(&mut doc) {
        failures.push(e);
    }

    if packages.is_empty() {
        util::header("test: stratacache with only its default features");
        let mut lean = util::cargo();
        lean.args([
            "nextest",
            "run",
            "-p",
            "stratacache",
            "--no-default-features",
        ]);
        lean.args(["--features", "memory,json", "--no-fail-fast"]);
        if util::is_ci() && has_ci_profile() {
            lean.args(["--profile", "ci"]);
        }
        if let Err(e) = util::run(&mut lean) {
            failures.push(e);
        }
        failures.extend(run_examples(&services));
    }

    util::header("test: services down");
    if let Err(e) = held.release() {
        failures.push(e);
    }

    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => {
            let code = failures[0].code;
            let messages: Vec<String> = failures.into_iter().map(|f| f.message).collect();
            Err(Failure::with_code(messages.join("\n"), code))
        }
    }
}

/// An example's name, arguments and environment.
type ExampleRun = (String, Vec<String>, Vec<(String, String)>);

/// Runs the umbrella crate's examples: each on memory, and the per-environment one again on
/// the Redis and Memcached servers that are up (its URLs replaced through the environment,
/// its code unchanged).
fn run_examples(services: &[&'static Service]) -> Vec<Failure> {
    let url_of = |var: &str| {
        services
            .iter()
            .find(|s| s.env_var == var)
            .map(|s| s.url.to_owned())
    };
    let config_dir = util::workspace_root().join("crates/stratacache/examples/config");
    let mut runs: Vec<ExampleRun> = vec![
        ("quickstart".into(), vec![], vec![]),
        ("per_environment".into(), vec![], vec![]),
        ("axum_service".into(), vec!["--self-test".into()], vec![]),
        ("opentelemetry".into(), vec![], vec![]),
    ];
    if let Some(url) = url_of("CACHE_TEST_REDIS_URL") {
        runs.push((
            "per_environment".into(),
            vec![config_dir.join("redis.toml").display().to_string()],
            vec![
                ("APP_CACHE_USERS_URL".into(), url.clone()),
                ("APP_CACHE_SESSIONS_URL".into(), url),
            ],
        ));
    }
    if let Some(url) = url_of("CACHE_TEST_MEMCACHED_URL") {
        let url = format!("{url}?namespace_generations=true");
        runs.push((
            "per_environment".into(),
            vec![config_dir.join("memcached.toml").display().to_string()],
            vec![
                ("APP_CACHE_USERS_URL".into(), url.clone()),
                ("APP_CACHE_SESSIONS_URL".into(), url),
            ],
        ));
    }
    let mut failures = Vec::new();
    for (example, args, env) in runs {
        util::header(&format!("test: example {example} {}", args.join(" ")));
        let mut cmd = util::cargo();
        cmd.args(["run", "--quiet", "-p", "stratacache", "--all-features"]);
        cmd.args(["--example", &example, "--"]);
        cmd.args(&args);
        cmd.envs(env);
        if let Err(e) = util::run(&mut cmd) {
            failures.push(e);
        }
    }
    failures
}

fn fmt_check() -> Result {
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))
}

fn clippy() -> Result {
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// `cargo x lint`: rustfmt check and clippy.
pub(crate) fn lint() -> Result {
    util::header("fmt");
    fmt_check()?;
    util::header("clippy");
    clippy()
}

/// `cargo x fmt`: formats the workspace.
pub(crate) fn fmt() -> Result {
    util::run(util::cargo().args(["fmt", "--all"]))
}

/// The crates published to crates.io, whose pages docs.rs builds.
const PUBLISHED: [&str; 8] = [
    "cache-core",
    "cache-macros",
    "cache-memory",
    "cache-redis",
    "cache-memcached",
    "cache-serde",
    "cache-tiered",
    "stratacache",
];

/// `RUSTDOCFLAGS` from the environment with `extra` appended.
fn rustdoc_flags(extra: &str) -> String {
    let mut flags = env::var("RUSTDOCFLAGS").unwrap_or_default();
    if !flags.is_empty() {
        flags.push(' ');
    }
    flags.push_str(extra);
    flags
}

/// `cargo x doc`: rustdoc with warnings denied, then each published crate the way docs.rs
/// builds it.
pub(crate) fn doc() -> Result {
    util::run(
        util::cargo()
            .args(["doc", "--workspace", "--all-features", "--no-deps"])
            .env("RUSTDOCFLAGS", rustdoc_flags("-D warnings")),
    )?;
    docs_rs()
}

/// Each published crate alone, as docs.rs builds it (`[package.metadata.docs.rs]`: every
/// feature, `--cfg docsrs`), so the `doc_cfg` feature badges ("Available on crate feature …
/// only") are checked too. docs.rs uses a nightly toolchain; `RUSTC_BOOTSTRAP=1` lets the
/// stable one accept the unstable `doc_cfg` that `--cfg docsrs` turns on. About 40 s on two
/// cores after the plain doc build.
fn docs_rs() -> Result {
    util::header("doc: as docs.rs builds it");
    for krate in PUBLISHED {
        util::run(
            util::cargo()
                .args(["doc", "--no-deps", "--all-features", "-p", krate])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTDOCFLAGS", rustdoc_flags("--cfg docsrs -D warnings")),
        )?;
    }
    Ok(())
}

/// `cargo x deny`: licenses, bans and sources, and the RustSec advisories as
/// `STRATACACHE_DENY_ADVISORIES` says (see [`Advisories`]; by default, against the current
/// database when it can be fetched, else against the copy on this machine).
pub(crate) fn deny() -> Result {
    util::ensure_cargo_tool("deny", "cargo-deny")?;
    let mode = Advisories::from_env()?;
    let mut cmd = util::cargo();
    let fetched = match mode {
        Advisories::Off => false,
        Advisories::Auto | Advisories::Required => fetch_advisory_db()?,
    };
    match (mode, fetched) {
        (Advisories::Off, _) => {
            warn_loudly(&[
                "advisories: NOT CHECKED: turned off with STRATACACHE_DENY_ADVISORIES=0.".into(),
            ]);
            note_advisories("advisories not checked (turned off)");
            cmd.args(["deny", "check"]);
        }
        (_, true) => {
            println!("advisories: against the current RustSec database");
            note_advisories("advisories checked (current database)");
            cmd.args(["deny", "--offline", "check", "advisories"]);
        }
        (Advisories::Required, false) => {
            note_advisories("advisories NOT checked (fetch failed)");
            return Err(Failure::new(format!(
                "could not fetch the RustSec advisory database, and {ADVISORIES_VAR}=1 requires \
                 it; unset it to fall back to the copy on this machine"
            )));
        }
        (Advisories::Auto, false) => {
            if let Some((db, date)) = local_advisory_db() {
                warn_loudly(&[
                    "advisories: the RustSec database could not be fetched; checking against"
                        .into(),
                    format!("the copy on this machine, {}", db.display()),
                    format!("(newest advisory commit {date}): advisories published since then"),
                    "are not seen.".into(),
                ]);
                note_advisories(format!("advisories checked against a local copy of {date}"));
                cmd.args(["deny", "--offline", "check", "advisories"]);
            } else {
                warn_loudly(&[
                    "advisories: NOT CHECKED: the RustSec database could not be fetched and".into(),
                    "this machine has no copy of it (cargo-deny keeps one under".into(),
                    "$CARGO_HOME/advisory-dbs after a successful fetch). Run `cargo x deny`".into(),
                    "where the network reaches it.".into(),
                ]);
                note_advisories("advisories NOT checked (no database)");
                if util::is_ci() && UNCHECKED_ADVISORIES_FAIL_CI {
                    return Err(Failure::new(
                        "advisories could not be checked, and the project's policy fails CI then",
                    ));
                }
                cmd.args(["deny", "check"]);
            }
        }
    }
    cmd.args(["bans", "licenses", "sources"]);
    util::run(&mut cmd)
}

/// `cargo deny fetch db`, bounded by [`ADVISORY_FETCH_DEADLINE`]; whether it succeeded.
fn fetch_advisory_db() -> Result<bool> {
    let mut cmd = util::cargo();
    cmd.args(["deny", "fetch", "db"]);
    match util::run_with_deadline(&mut cmd, ADVISORY_FETCH_DEADLINE)? {
        util::Ended::Success => Ok(true),
        util::Ended::Failed(why) => {
            println!("advisories: fetching the RustSec database failed ({why})");
            Ok(false)
        }
        util::Ended::TimedOut => {
            println!(
                "advisories: fetching the RustSec database did not finish within {} s",
                ADVISORY_FETCH_DEADLINE.as_secs()
            );
            Ok(false)
        }
    }
}

/// A boxed warning that stands out in a long CI log.
fn warn_loudly(lines: &[String]) {
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 4;
    let rule = "!".repeat(width);
    println!("\n{rule}");
    for line in lines {
        println!("! {line:<w$} !", w = width - 4);
    }
    println!("{rule}\n");
}

/// cargo-deny's default advisory database checkout, if one exists, and its last commit date.
fn local_advisory_db() -> Option<(std::path::PathBuf, String)> {
    let home = env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))?;
    let dbs = home.join("advisory-dbs");
    let db = std::fs::read_dir(&dbs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("advisory-db-"))
                && p.join("crates").is_dir()
        })?;
    let out = std::process::Command::new("git")
        .args(["-C"])
        .arg(&db)
        .args(["log", "-1", "--format=%cs"])
        .output()
        .ok()?;
    let date = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Some((
        db,
        if date.is_empty() {
            "unknown".into()
        } else {
            date
        },
    ))
}

/// `cargo x hack`: every library crate builds alone with each of its features.
pub(crate) fn hack() -> Result {
    util::ensure_cargo_tool("hack", "cargo-hack")?;
    util::run(util::cargo().args([
        "hack",
        "check",
        "--each-feature",
        "--no-dev-deps",
        "--workspace",
        "--exclude",
        "xtask",
    ]))
}

/// `cargo x tools`: installs the cargo subcommands the tasks use, when missing.
pub(crate) fn tools() -> Result {
    for (subcommand, krate) in [
        ("nextest", "cargo-nextest"),
        ("deny", "cargo-deny"),
        ("hack", "cargo-hack"),
    ] {
        util::ensure_cargo_tool(subcommand, krate)?;
        println!("{krate}: installed");
    }
    Ok(())
}

/// A `cargo x ci` step: its name and what it runs.
type Step = (&'static str, fn() -> Result);

/// How a `cargo x ci` step ended.
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    NotRun,
}

/// `cargo x ci`: every gate in order, stopping at the first failure, then a timing summary.
pub(crate) fn ci() -> Result {
    let steps: [Step; 6] = [
        ("fmt", fmt_check),
        ("clippy", clippy),
        ("test", || test(&[])),
        ("doc", doc),
        ("deny", deny),
        ("hack", hack),
    ];
    let started = Instant::now();
    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
    let mut failure: Option<Failure> = None;
    for (name, step) in steps {
        if failure.is_some() {
            outcomes.push((name, Outcome::NotRun));
            continue;
        }
        util::header(name);
        let t = Instant::now();
        match step() {
            Ok(()) => outcomes.push((name, Outcome::Passed(t.elapsed()))),
            Err(e) => {
                outcomes.push((name, Outcome::Failed(t.elapsed())));
                failure = Some(e);
            }
        }
    }

    util::header("summary");
    let advisories = ADVISORIES_NOTE.lock().ok().and_then(|n| n.clone());
    for (name, outcome) in &outcomes {
        match outcome {
            Outcome::Passed(d) if *name == "deny" && advisories.is_some() => println!(
                "{name:<8} ok      {:>7.1} s   {}",
                d.as_secs_f64(),
                advisories.as_deref().unwrap_or_default()
            ),
            Outcome::Passed(d) => println!("{name:<8} ok      {:>7.1} s", d.as_secs_f64()),
            Outcome::Failed(d) => println!("{name:<8} FAILED  {:>7.1} s", d.as_secs_f64()),
            Outcome::NotRun => println!("{name:<8} not run"),
        }
    }
    println!(
        "{:<8} {:<7} {:>7.1} s",
        "total",
        if failure.is_some() { "FAILED" } else { "ok" },
        started.elapsed().as_secs_f64()
    );
    failure.map_or(Ok(()), Err)
}

/// Whether a `cargo x bench` run needs the servers: every workload but `memory` and `serde`
/// does, and running without a workload means all of them.
fn bench_needs_services(args: &[String]) -> bool {
    let workloads: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    workloads.is_empty()
        || workloads
            .iter()
            .any(|w| !matches!(w.as_str(), "memory" | "serde"))
}

/// `cargo x bench [WORKLOAD] [--quick] …`: runs the `cache-bench` crate, with the services it
/// needs.
pub(crate) fn bench(args: &[String]) -> Result {
    let manifest = util::workspace_root()
        .join("crates")
        .join("cache-bench")
        .join("Cargo.toml");
    if !manifest.is_file() {
        println!("no benchmark crate yet (crates/cache-bench): nothing to run");
        return Ok(());
    }
    let services = all_services();
    let held = if bench_needs_services(args) {
        util::header("bench: services up");
        Some(services::hold(&services)?)
    } else {
        None
    };

    util::header("bench");
    let mut cmd = util::cargo();
    cmd.args(["run", "--release", "-p", "cache-bench", "--"])
        .args(args);
    if held.is_some() {
        services::set_env(&mut cmd, &services);
    }
    let result = util::run(&mut cmd);

    if let Some(held) = held {
        util::header("bench: services down");
        let stopped = held.release();
        result?;
        stopped
    } else {
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn finds_package_selection() {
        let args = strings(&[
            "-p",
            "cache-core",
            "--package=cache-serde",
            "-pfoo",
            "-E",
            "x",
        ]);
        assert_eq!(
            package_selection(&args),
            strings(&["-p", "cache-core", "--package=cache-serde", "-pfoo"])
        );
        assert!(package_selection(&strings(&["--", "-p", "x"])).is_empty());
    }

    #[test]
    fn finds_profile() {
        assert!(has_profile(&strings(&["--profile", "default"])));
        assert!(has_profile(&strings(&["--profile=ci"])));
        assert!(!has_profile(&strings(&["--", "--profile"])));
    }

    /// Every crate that can be published is documented the way docs.rs builds it, and says
    /// so in its manifest.
    #[test]
    fn published_crates_are_the_ones_docs_rs_builds() {
        let crates = util::workspace_root().join("crates");
        let mut publishable = Vec::new();
        for entry in std::fs::read_dir(&crates).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
                continue;
            };
            if manifest.contains("publish = false") {
                continue;
            }
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                manifest.contains("[package.metadata.docs.rs]")
                    && manifest.contains("all-features = true")
                    && manifest.contains(r#"rustdoc-args = ["--cfg", "docsrs"]"#),
                "{name}: no docs.rs metadata"
            );
            let lib = std::fs::read_to_string(dir.join("src").join("lib.rs")).unwrap();
            assert!(
                lib.contains("#![cfg_attr(docsrs, feature(doc_cfg))]"),
                "{name}: lib.rs does not turn on doc_cfg under docsrs"
            );
            publishable.push(name);
        }
        publishable.sort();
        let mut listed = PUBLISHED.map(str::to_owned).to_vec();
        listed.sort();
        assert_eq!(publishable, listed);
    }

    #[test]
    fn advisories_are_checked_unless_turned_off() {
        assert_eq!(Advisories::parse(None).unwrap(), Advisories::Auto);
        assert_eq!(Advisories::parse(Some("")).unwrap(), Advisories::Auto);
        assert_eq!(Advisories::parse(Some(" Auto ")).unwrap(), Advisories::Auto);
        assert_eq!(Advisories::parse(Some("1")).unwrap(), Advisories::Required);
        assert_eq!(
            Advisories::parse(Some("fetch")).unwrap(),
            Advisories::Required
        );
        assert_eq!(Advisories::parse(Some("0")).unwrap(), Advisories::Off);
        assert_eq!(Advisories::parse(Some("off")).unwrap(), Advisories::Off);
        let e = Advisories::parse(Some("maybe")).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("maybe"), "{}", e.message);
    }

    #[test]
    fn memory_bench_needs_no_server() {
        assert!(!bench_needs_services(&strings(&["memory", "--quick"])));
        assert!(!bench_needs_services(&strings(&["serde"])));
        assert!(bench_needs_services(&strings(&["all"])));
        assert!(bench_needs_services(&strings(&["--quick"])));
        assert!(bench_needs_services(&[]));
    }
}
