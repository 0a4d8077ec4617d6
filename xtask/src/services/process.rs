//! Server processes: what runs on a port, starting a daemonized server and waiting until it
//! answers, and stopping it again.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cache_test_fixtures::{Probe, find_program};

use super::table::{Kind, Service};
use crate::util::{self, Failure, Result};

/// How long a freshly started server gets to answer its first request.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `down` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a server's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 25;

impl Service {
    /// The pid in this port's pidfile, if that process is still this server.
    pub(super) fn live_pid(&self, port: u16) -> Option<u32> {
        read_pid(&self.files(port).pid).filter(|&pid| is_alive(pid, self.kind.binary()))
    }

    pub(super) fn state(&self, port: u16) -> State {
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
pub(super) enum State {
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

pub(super) fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process running `binary` (a recycled pid does not count).
pub(super) fn is_alive(pid: u32, binary: &str) -> bool {
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

pub(super) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
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

pub(super) fn occupied(svc: &Service, port: u16, why: &str) -> Failure {
    Failure::new(format!(
        "port {port} on 127.0.0.1 ({}) is already taken by a program that is not a {} \
         started by `cargo x services` ({why}). Stop that program or free the port, then \
         run `cargo x services up` again.",
        svc.name,
        svc.kind.binary()
    ))
}

pub(super) fn start(svc: &Service, port: u16) -> Result {
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

pub(super) fn wait_ready(svc: &Service, port: u16) -> Result {
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
