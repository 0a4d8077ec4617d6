//! Private `redis-server` and `memcached` processes for tests that kill and restart a server,
//! so that the shared servers of `cargo x services up` are never disturbed.
//!
//! A server listens on a free loopback port with persistence off; [`PrivateServer::kill`]
//! sends SIGKILL, [`PrivateServer::restart`] starts the same command again on the same port
//! (empty: neither server keeps data across a kill here). The process is killed on drop.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backends::Kind;

/// How long a started server gets to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Kind {
    fn binary_name(self) -> &'static str {
        match self {
            Kind::Redis => "redis-server",
            Kind::Memcached => "memcached",
        }
    }

    fn binary_variable(self) -> &'static str {
        match self {
            Kind::Redis => "REDIS_SERVER",
            Kind::Memcached => "MEMCACHED_BIN",
        }
    }
}

/// The server binary of `kind`: `$REDIS_SERVER` / `$MEMCACHED_BIN`, else the first on `PATH`
/// or in `/usr/bin`, `/usr/local/bin`, `/usr/sbin`.
///
/// Missing: under CI (`CI` set) this panics; locally it prints one loud `SKIPPED` line and
/// returns `None`.
///
/// # Panics
/// When no binary is found and `CI` is set.
pub fn binary(kind: Kind) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(kind.binary_variable()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(kind.binary_name()))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let (name, var) = (kind.binary_name(), kind.binary_variable());
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not installed (or set {var}), and CI requires this test's server");
        }
        eprintln!(
            "SKIPPED: {name} is not on PATH; install it or set {var} to run this test \
             against a private server"
        );
    }
    found
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stratacache-tests-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One private server process on a loopback port.
#[derive(Debug)]
pub struct PrivateServer {
    kind: Kind,
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateServer {
    /// Starts a server of `kind` on a free port and waits until it answers, or returns
    /// `None` after [`binary`] printed why the test is skipped.
    ///
    /// # Panics
    /// When the binary is missing under CI, or the server does not start.
    pub fn start(kind: Kind) -> Option<PrivateServer> {
        let binary = binary(kind)?;
        let mut server = PrivateServer {
            kind,
            binary,
            port: free_port(),
            dir: TempDir::new(kind.binary_name()),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the process with SIGKILL (no goodbye to clients) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers. A running
    /// process is killed first.
    ///
    /// # Panics
    /// When the server does not start.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("server.log");
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.binary);
        match self.kind {
            Kind::Redis => {
                cmd.args(["--port", &port, "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(self.dir.path())
                    .arg("--logfile")
                    .arg(&log);
            }
            Kind::Memcached => {
                cmd.args(["-l", "127.0.0.1", "-p", &port, "-U", "0", "-m", "64"]);
                if is_root() {
                    cmd.args(["-u", "root"]);
                }
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready(&log);
    }

    fn wait_ready(&mut self, log: &Path) {
        let (request, answer): (&[u8], &[u8]) = match self.kind {
            Kind::Redis => (b"PING\r\n", b"+PONG"),
            Kind::Memcached => (b"version\r\n", b"VERSION"),
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{} exited with {status} on port {}:\n{log}",
                    self.kind.binary_name(),
                    self.port
                );
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if s.write_all(request).is_ok()
                    && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(answer))
                {
                    return;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{} on port {} did not answer within {READY_TIMEOUT:?}:\n{log}",
                    self.kind.binary_name(),
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}
