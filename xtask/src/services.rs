//! `cargo x services up|down|status`: real servers on loopback, started from the locally
//! installed binaries (Debian's `redis-server` and `memcached` packages), for the backend tests.
//!
//! Every server is one row of [`SERVICES`]. A service may run several processes (one per port);
//! its kind says how to launch one and how to check that it answers. State lives in
//! `target/services/`: `<name>-<port>.pid`, `<name>-<port>.log` and a working directory.
//!
//! The server binaries, readiness probes and listen arguments come from the
//! `cache-test-fixtures` package, which the tests' private servers use too.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cache_test_fixtures::{Probe, ServerKind, find_program, is_root};

use crate::util::{self, Failure, Result};

/// How long a freshly started server gets to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a server's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 25;

/// How to run and check one kind of server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A standalone `redis-server`.
    Redis,
    /// One node of a Redis cluster; the service's ports form one cluster of primaries.
    RedisClusterNode,
    /// A `memcached`.
    Memcached,
}

/// One entry of the services table.
#[derive(Debug)]
pub(crate) struct Service {
    /// Name on the command line (`cargo x services up redis`) and in state file names.
    pub(crate) name: &'static str,
    kind: Kind,
    /// Loopback ports, one server process each.
    ports: &'static [u16],
    /// What the tests connect to.
    pub(crate) url: &'static str,
    /// The environment variable the tests read `url` from.
    pub(crate) env_var: &'static str,
    /// Debian packages to install when the kind's binaries are missing.
    packages: &'static [&'static str],
}

/// Every service `cargo x services` knows, in start order.
pub(crate) const SERVICES: &[Service] = &[
    Service {
        name: "redis",
        kind: Kind::Redis,
        ports: &[16379],
        url: "redis://127.0.0.1:16379",
        env_var: "CACHE_TEST_REDIS_URL",
        packages: &["redis-server", "redis-tools"],
    },
    Service {
        name: "memcached",
        kind: Kind::Memcached,
        ports: &[21211],
        url: "memcached://127.0.0.1:21211",
        env_var: "CACHE_TEST_MEMCACHED_URL",
        packages: &["memcached"],
    },
    Service {
        name: "redis-cluster",
        kind: Kind::RedisClusterNode,
        ports: &[17001, 17002, 17003],
        url: "redis-cluster://127.0.0.1:17001?node=127.0.0.1:17002&node=127.0.0.1:17003",
        env_var: "CACHE_TEST_REDIS_CLUSTER_URL",
        packages: &["redis-server", "redis-tools"],
    },
    Service {
        name: "memcached-trio",
        kind: Kind::Memcached,
        ports: &[21212, 21213, 21214],
        url: "memcached://127.0.0.1:21212,127.0.0.1:21213,127.0.0.1:21214",
        env_var: "CACHE_TEST_MEMCACHED_CLUSTER_URL",
        packages: &["memcached"],
    },
];

impl Kind {
    /// The program this kind runs, as the test fixtures know it.
    fn server(self) -> ServerKind {
        match self {
            Kind::Redis | Kind::RedisClusterNode => ServerKind::Redis,
            Kind::Memcached => ServerKind::Memcached,
        }
    }

    /// The server binary.
    fn binary(self) -> &'static str {
        self.server().program()
    }

    /// Programs that must be installed to run this kind.
    fn required_programs(self) -> &'static [&'static str] {
        match self {
            Kind::Redis => &["redis-server"],
            Kind::RedisClusterNode => &["redis-server", "redis-cli"],
            Kind::Memcached => &["memcached"],
        }
    }

    /// Arguments that start one daemonized server on `port` writing its pid to `files.pid`.
    fn launch_args(self, port: u16, files: &Files) -> Vec<OsString> {
        let mut args: Vec<OsString> = self
            .server()
            .listen_args(port)
            .into_iter()
            .map(OsString::from)
            .collect();
        match self {
            Kind::Redis | Kind::RedisClusterNode => {
                args.extend(["--daemonize", "yes"].map(OsString::from));
                args.push("--pidfile".into());
                args.push(files.pid.clone().into());
                args.push("--dir".into());
                args.push(files.dir.clone().into());
                args.push("--logfile".into());
                args.push(files.log.clone().into());
                if self == Kind::RedisClusterNode {
                    for a in [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ] {
                        args.push(a.into());
                    }
                }
            }
            Kind::Memcached => {
                // -v keeps stderr open after daemonizing, so errors reach the log.
                args.extend(["-m", "256", "-v", "-d", "-P"].map(OsString::from));
                args.push(files.pid.clone().into());
            }
        }
        args
    }

    /// Sends one request and checks the answer: PING for Redis, `version` for Memcached.
    fn probe(self, port: u16) -> Probe {
        self.server().probe(port)
    }
}

/// Files of one server process.
struct Files {
    pid: PathBuf,
    log: PathBuf,
    dir: PathBuf,
}

fn state_dir() -> PathBuf {
    util::workspace_root().join("target").join("services")
}

impl Service {
    fn files(&self, port: u16) -> Files {
        let base = format!("{}-{}", self.name, port);
        let dir = state_dir();
        Files {
            pid: dir.join(format!("{base}.pid")),
            log: dir.join(format!("{base}.log")),
            dir: dir.join(base),
        }
    }

    /// `redis` for a one-port service, `redis-cluster:17001` when it has several.
    fn label(&self, port: u16) -> String {
        if self.ports.len() > 1 {
            format!("{}:{port}", self.name)
        } else {
            self.name.to_owned()
        }
    }

    /// The pid in this port's pidfile, if that process is still this server.
    fn live_pid(&self, port: u16) -> Option<u32> {
        read_pid(&self.files(port).pid).filter(|&pid| is_alive(pid, self.kind.binary()))
    }

    fn state(&self, port: u16) -> State {
        if let Some(pid) = self.live_pid(port) {
            return match self.kind.probe(port) {
                Probe::Ready => State::Running(pid),
                other => State::Unresponsive(pid, other.why_not().unwrap_or_default()),
            };
        }
        match self.kind.probe(port) {
            Probe::Ready => State::External,
            Probe::Closed => State::Stopped,
            other => State::Occupied(other.why_not().unwrap_or_default()),
        }
    }
}

/// What runs on a service's port.
#[derive(Debug)]
enum State {
    /// Started by `cargo x services` and answering.
    Running(u32),
    /// Started by `cargo x services` but not answering (yet).
    Unresponsive(u32, String),
    /// The right kind of server answers, but it was started elsewhere (docker compose, a system
    /// service).
    External,
    /// Something else holds the port.
    Occupied(String),
    /// Nothing listens.
    Stopped,
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process running `binary` (a recycled pid does not count).
fn is_alive(pid: u32, binary: &str) -> bool {
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The state letter follows the parenthesized command name; Z and X are dead.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('Z' | 'X')) {
            return false;
        }
        return match fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(cmdline) if !cmdline.is_empty() => {
                String::from_utf8_lossy(&cmdline).contains(binary)
            }
            _ => true,
        };
    }
    util::succeeds(Command::new("kill").args(["-0", &pid.to_string()]))
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}

fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            let tail: Vec<String> = lines[start..].iter().map(|l| format!("    {l}")).collect();
            format!(
                "last lines of {}:\n{}",
                util::short_path(path),
                tail.join("\n")
            )
        }
        Ok(_) => format!("{} is empty", util::short_path(path)),
        Err(e) => format!("could not read {}: {e}", util::short_path(path)),
    }
}

// ---------------------------------------------------------------------------------------------
// Command line

pub(crate) const USAGE: &str = "\
cargo x services up|down|status [SERVICE...]

    up      start the services (idempotent) and wait until they answer
    down    stop the services started by `up` (idempotent)
    status  show each service, its URL and the variable the tests read it from

Services: all by default, or any of the names below. State: target/services/.";

/// `cargo x services …`
pub(crate) fn cli(args: &[String]) -> Result {
    let Some((action, names)) = args.split_first() else {
        println!("{USAGE}");
        print_table();
        return Ok(());
    };
    match action.as_str() {
        "up" => up(&select(names)?),
        "down" => down(&select(names)?, false),
        "status" => {
            status(&select(names)?);
            Ok(())
        }
        "__guard" => guard(names),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            print_table();
            Ok(())
        }
        other => Err(Failure::with_code(
            format!("unknown action `{other}`\n\n{USAGE}"),
            2,
        )),
    }
}

fn print_table() {
    println!();
    for svc in SERVICES {
        println!("    {:<12} {:<30} {}", svc.name, svc.url, svc.env_var);
    }
}

/// The services named in `names` (all of them when empty, or for `all`).
pub(crate) fn select(names: &[String]) -> Result<Vec<&'static Service>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(SERVICES.iter().collect());
    }
    let mut picked: Vec<&'static Service> = Vec::new();
    for name in names {
        let Some(svc) = SERVICES.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
            return Err(Failure::with_code(
                format!(
                    "unknown service `{name}` (known: {})",
                    util::join_words(&known)
                ),
                2,
            ));
        };
        if !picked.iter().any(|p| p.name == svc.name) {
            picked.push(svc);
        }
    }
    Ok(picked)
}

// ---------------------------------------------------------------------------------------------
// up

/// Starts `services` and waits until each answers; already running ones are fine.
pub(crate) fn up(services: &[&'static Service]) -> Result {
    fs::create_dir_all(state_dir())
        .map_err(|e| Failure::new(format!("could not create {}: {e}", state_dir().display())))?;

    // Refuse a taken port before installing or starting anything.
    let mut to_start: Vec<&Service> = Vec::new();
    for svc in services {
        for &port in svc.ports {
            match svc.state(port) {
                State::Occupied(why) => return Err(occupied(svc, port, &why)),
                State::Stopped => {
                    if !to_start.iter().any(|s| s.name == svc.name) {
                        to_start.push(svc);
                    }
                }
                State::Running(_) | State::Unresponsive(..) | State::External => {}
            }
        }
    }
    ensure_installed(&to_start)?;

    for svc in services {
        for &port in svc.ports {
            let label = svc.label(port);
            match svc.state(port) {
                State::Running(pid) => {
                    println!("{label}: already running on 127.0.0.1:{port} (pid {pid})");
                }
                State::Unresponsive(pid, _) => {
                    println!("{label}: pid {pid} is not answering yet, waiting");
                    wait_ready(svc, port)?;
                    println!("{label}: running on 127.0.0.1:{port} (pid {pid})");
                }
                State::External => println!(
                    "{label}: a {} not started by `cargo x services` already answers on \
                     127.0.0.1:{port} (docker compose?); using it",
                    svc.kind.binary()
                ),
                State::Occupied(why) => return Err(occupied(svc, port, &why)),
                State::Stopped => {
                    start(svc, port)?;
                    let pid = svc
                        .live_pid(port)
                        .map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"));
                    println!("{label}: started on 127.0.0.1:{port} ({pid})");
                }
            }
        }
    }
    for svc in services {
        if svc.kind == Kind::RedisClusterNode {
            form_cluster(svc)?;
        }
    }
    for svc in services {
        println!("{}={}", svc.env_var, svc.url);
    }
    Ok(())
}

/// Whether every node of the cluster service reports `cluster_state:ok`.
fn cluster_ok(svc: &Service) -> bool {
    svc.ports.iter().all(|port| {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
    })
}

/// Joins the nodes of a cluster service into one cluster of primaries (idempotent).
fn form_cluster(svc: &Service) -> Result {
    if cluster_ok(svc) {
        println!("{}: cluster already formed", svc.name);
        return Ok(());
    }
    let nodes: Vec<String> = svc.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut cmd = Command::new("redis-cli");
    cmd.arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdin(Stdio::null());
    util::run(&mut cmd)?;
    if wait_until(READY_TIMEOUT, || cluster_ok(svc)) {
        println!("{}: cluster of {} primaries formed", svc.name, nodes.len());
        Ok(())
    } else {
        Err(Failure::new(format!(
            "{}: the cluster did not reach cluster_state:ok within {} s",
            svc.name,
            READY_TIMEOUT.as_secs()
        )))
    }
}

fn occupied(svc: &Service, port: u16, why: &str) -> Failure {
    Failure::new(format!(
        "port {port} on 127.0.0.1 ({}) is already taken by a program that is not a {} \
         started by `cargo x services` ({why}). Stop that program or free the port, then \
         run `cargo x services up` again.",
        svc.name,
        svc.kind.binary()
    ))
}

fn start(svc: &Service, port: u16) -> Result {
    let files = svc.files(port);
    let io_err = |what: &str, path: &Path, e: io::Error| {
        Failure::new(format!("could not {what} {}: {e}", path.display()))
    };
    fs::create_dir_all(&files.dir).map_err(|e| io_err("create", &files.dir, e))?;
    let _ = fs::remove_file(&files.pid);
    if svc.kind == Kind::RedisClusterNode {
        // A node that remembers an old cluster refuses to join a new one.
        let _ = fs::remove_file(files.dir.join("nodes.conf"));
    }
    File::create(&files.log).map_err(|e| io_err("create", &files.log, e))?;
    let log = OpenOptions::new()
        .append(true)
        .open(&files.log)
        .map_err(|e| io_err("open", &files.log, e))?;
    let log_err = log.try_clone().map_err(|e| io_err("open", &files.log, e))?;

    let binary = find_program(svc.kind.binary())
        .ok_or_else(|| Failure::new(format!("{} not found", svc.kind.binary())))?;
    let mut cmd = Command::new(binary);
    cmd.args(svc.kind.launch_args(port, &files))
        .current_dir(&files.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    util::print_command(&cmd);
    let status = cmd.status().map_err(|e| {
        Failure::new(format!(
            "could not run {}: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    if !status.success() {
        return Err(start_failure(
            svc,
            port,
            &format!("the launcher exited with {status}"),
        ));
    }
    wait_ready(svc, port)
}

fn wait_ready(svc: &Service, port: u16) -> Result {
    let files = svc.files(port);
    let started = Instant::now();
    loop {
        let last = match svc.kind.probe(port) {
            Probe::Ready => break,
            other => other.why_not().unwrap_or_default(),
        };
        if let Some(pid) = read_pid(&files.pid)
            && !is_alive(pid, svc.kind.binary())
        {
            return Err(start_failure(
                svc,
                port,
                &format!("process {pid} exited during startup"),
            ));
        }
        if started.elapsed() >= READY_TIMEOUT {
            return Err(start_failure(
                svc,
                port,
                &format!(
                    "it did not answer within {} s (last: {last})",
                    READY_TIMEOUT.as_secs()
                ),
            ));
        }
        sleep(Duration::from_millis(100));
    }
    // A daemon may answer a moment before its pidfile appears; `down` needs the pidfile.
    if !wait_until(Duration::from_secs(5), || read_pid(&files.pid).is_some()) {
        eprintln!(
            "warning: {} answers on port {port} but wrote no pidfile ({}); \
             `cargo x services down` will not be able to stop it",
            svc.name,
            util::short_path(&files.pid)
        );
    }
    Ok(())
}

fn start_failure(svc: &Service, port: u16, why: &str) -> Failure {
    let files = svc.files(port);
    Failure::new(format!(
        "{} on 127.0.0.1:{port} did not start: {why}\n{}",
        svc.label(port),
        log_tail(&files.log)
    ))
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Makes sure the programs of `services` are installed: as root on a Debian-like system they
/// are installed with apt-get, otherwise the error says how to get them.
fn ensure_installed(services: &[&Service]) -> Result {
    let missing_in = |svc: &Service| -> Vec<&'static str> {
        svc.kind
            .required_programs()
            .iter()
            .copied()
            .filter(|p| find_program(p).is_none())
            .collect()
    };
    let mut missing: Vec<&str> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for svc in services {
        let programs = missing_in(svc);
        if !programs.is_empty() {
            missing.extend(programs);
            packages.extend(svc.packages);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let missing_words = util::join_words(&missing);
    if !(is_root() && find_program("apt-get").is_some()) {
        let how = if find_program("apt-get").is_some() {
            format!("sudo apt-get install -y {}", packages.join(" "))
        } else {
            "your package manager (e.g. `brew install redis memcached`)".to_owned()
        };
        return Err(Failure::new(format!(
            "{missing_words} not found. Install them with {how}, or run the same servers \
             in Docker with `docker compose up -d` (docker-compose.yml at the workspace root \
             uses the same ports) and run the tests with the variables from .env.example."
        )));
    }

    println!(
        "{missing_words} not found: installing the Debian packages {}",
        packages.join(" ")
    );
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        util::run(apt_get().arg("update"))?;
    }
    util::run(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages),
    )?;
    let still: Vec<&str> = services.iter().flat_map(|s| missing_in(s)).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "apt-get installed {} but {} is still not found",
            packages.join(" "),
            util::join_words(&still)
        )))
    }
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}

// ---------------------------------------------------------------------------------------------
// down and status

/// Stops the servers of `services` that `up` started (SIGTERM, then SIGKILL). With `quiet`,
/// prints only what it stopped.
pub(crate) fn down(services: &[&'static Service], quiet: bool) -> Result {
    let mut errors = Vec::new();
    for svc in services {
        for &port in svc.ports {
            let label = svc.label(port);
            let files = svc.files(port);
            let Some(pid) = read_pid(&files.pid) else {
                if !quiet {
                    if let Probe::Ready = svc.kind.probe(port) {
                        println!(
                            "{label}: not started by `cargo x services` (no pidfile), but a \
                             server answers on 127.0.0.1:{port}; leaving it alone"
                        );
                    } else {
                        println!("{label}: not running");
                    }
                }
                continue;
            };
            let binary = svc.kind.binary();
            if !is_alive(pid, binary) {
                let _ = fs::remove_file(&files.pid);
                if !quiet {
                    println!("{label}: not running (removed a stale pidfile)");
                }
                continue;
            }
            println!("$ kill -TERM {pid}   # {label}");
            signal(pid, "TERM");
            if !wait_until(STOP_TIMEOUT, || !is_alive(pid, binary)) {
                println!(
                    "$ kill -KILL {pid}   # {label} ignored SIGTERM for {} s",
                    STOP_TIMEOUT.as_secs()
                );
                signal(pid, "KILL");
                if !wait_until(Duration::from_secs(3), || !is_alive(pid, binary)) {
                    errors.push(format!("{label}: could not stop pid {pid}"));
                    continue;
                }
            }
            let _ = fs::remove_file(&files.pid);
            println!("{label}: stopped (pid {pid})");
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(errors.join("\n")))
    }
}

fn status(services: &[&'static Service]) {
    for svc in services {
        for &port in svc.ports {
            let state = match svc.state(port) {
                State::Running(pid) => format!("running (pid {pid})"),
                State::Unresponsive(pid, why) => format!("not answering (pid {pid}: {why})"),
                State::External => "running (not started by cargo x)".to_owned(),
                State::Occupied(why) => format!("port taken by another program ({why})"),
                State::Stopped => "stopped".to_owned(),
            };
            println!(
                "{:<12} {:<38} {:<30} {}",
                svc.label(port),
                state,
                svc.url,
                svc.env_var
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Services held for the length of a task

/// Services started for one task (`cargo x test`, `cargo x bench`). [`Held::release`] or drop
/// stops the ones the task started; services that were already running stay up.
///
/// A watcher process (`cargo x services __guard`, in its own process group so Ctrl-C does not
/// reach it) waits for this process to exit and stops the same services if the task was
/// interrupted before it could.
pub(crate) struct Held {
    owned: Vec<&'static Service>,
    guard: Option<Child>,
    released: bool,
}

/// Starts `services` for a task; see [`Held`].
pub(crate) fn hold(services: &[&'static Service]) -> Result<Held> {
    let mut owned = Vec::new();
    let mut kept = Vec::new();
    for &svc in services {
        let running = svc
            .ports
            .iter()
            .any(|&port| matches!(svc.state(port), State::Running(_) | State::Unresponsive(..)));
        if running {
            kept.push(svc.name);
        } else {
            owned.push(svc);
        }
    }
    if !kept.is_empty() {
        println!(
            "{} already running: left running afterwards",
            util::join_words(&kept)
        );
    }
    let guard = if owned.is_empty() {
        None
    } else {
        match spawn_guard(&owned) {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!(
                    "warning: could not start the cleanup watcher ({e}); an interrupted run may leave services running"
                );
                None
            }
        }
    };
    let held = Held {
        owned,
        guard,
        released: false,
    };
    up(services)?;
    Ok(held)
}

fn spawn_guard(services: &[&'static Service]) -> io::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["services", "__guard"])
        .args(services.iter().map(|s| s.name))
        .stdin(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn()
}

/// The watcher: blocks until its parent closes our stdin (which the kernel does when the parent
/// exits, however it exits), then stops the named services if they are still running.
fn guard(names: &[String]) -> Result {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let services = select(names)?;
    let left: Vec<&'static Service> = services
        .into_iter()
        .filter(|svc| svc.ports.iter().any(|&port| svc.live_pid(port).is_some()))
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    eprintln!("\ninterrupted: stopping the services this run started");
    down(&left, true)
}

impl Held {
    /// Stops the services this task started.
    pub(crate) fn release(mut self) -> Result {
        self.release_now()
    }

    fn release_now(&mut self) -> Result {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let result = if self.owned.is_empty() {
            println!("nothing to stop");
            Ok(())
        } else {
            down(&self.owned, false)
        };
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
        result
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Err(e) = self.release_now() {
            eprintln!("error: {}", e.message);
        }
    }
}

/// Sets each service's URL variable on `cmd`.
pub(crate) fn set_env(cmd: &mut Command, services: &[&'static Service]) {
    for svc in services {
        cmd.env(svc.env_var, svc.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_name() {
        let all = select(&[]).unwrap();
        assert_eq!(all.len(), SERVICES.len());
        let one = select(&["memcached".into(), "memcached".into()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "memcached");
        assert!(select(&["nope".into()]).is_err());
    }

    #[test]
    fn table_is_consistent() {
        for (i, svc) in SERVICES.iter().enumerate() {
            assert!(!svc.ports.is_empty(), "{} has no port", svc.name);
            assert!(svc.url.contains(&svc.ports[0].to_string()), "{}", svc.name);
            assert!(svc.env_var.starts_with("CACHE_TEST_"), "{}", svc.name);
            for other in &SERVICES[i + 1..] {
                assert_ne!(svc.name, other.name);
                assert!(svc.ports.iter().all(|p| !other.ports.contains(p)));
            }
        }
    }

    #[test]
    fn redis_runs_without_persistence() {
        let svc = &SERVICES[0];
        let args = svc.kind.launch_args(16379, &svc.files(16379));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let save = args.iter().position(|a| a == "--save").unwrap();
        assert_eq!(args[save + 1], "");
        assert!(args.windows(2).any(|w| w == ["--appendonly", "no"]));
        assert!(args.windows(2).any(|w| w == ["--bind", "127.0.0.1"]));
    }
}
