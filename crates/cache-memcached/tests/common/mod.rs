//! Private memcached processes for tests that stop and restart servers, so they never disturb
//! the shared ones.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `memcached` binary: `$MEMCACHED_BIN`, else the first on `PATH` or in the usual places.
pub fn memcached_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEMCACHED_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/bin",
                "/usr/local/bin",
                "/usr/sbin",
                "/opt/homebrew/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|d| d.join("memcached"))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One memcached process on a loopback port; killed when dropped.
pub struct Memcached {
    binary: PathBuf,
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Memcached {
    /// Starts a server on a free port, or prints SKIPPED and returns `None` when there is no
    /// memcached binary (panics instead under CI).
    pub fn start() -> Option<Memcached> {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with extra command-line arguments (such as `-I 2m`).
    pub fn start_with(extra: &[&str]) -> Option<Memcached> {
        let Some(binary) = memcached_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("no memcached binary found; install memcached or set MEMCACHED_BIN");
            }
            eprintln!(
                "SKIPPED: no memcached binary found (install memcached or set MEMCACHED_BIN)"
            );
            return None;
        };
        let mut m = Memcached {
            binary,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        m.launch();
        Some(m)
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ])
        .args(&self.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.spawn().expect("memcached starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 64];
                if s.write_all(b"version\r\n").is_ok()
                    && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("memcached on port {} did not answer `version`", self.port);
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the process and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty, as after a real restart).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
    }
}
