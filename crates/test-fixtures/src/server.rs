//! Private server processes: one per test that needs a server of its own (TLS, ACL, a kill
//! and a restart), so the shared servers of `cargo x services up` are never disturbed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Probe, ServerKind, free_port, is_listening, server_binary};

/// How long a started server gets to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Memory limit of a private memcached, in megabytes.
const MEMCACHED_MEGABYTES: &str = "64";

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `cache-test-fixtures-{tag}-{pid}-{n}` in the temporary directory.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cache-test-fixtures-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One private server process on a free loopback port, with its own working directory (and
/// log, `server.log`). Nothing is persisted: a restarted server is empty. The process is
/// killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    kind: ServerKind,
    binary: PathBuf,
    port: u16,
    tls: bool,
    args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts a server of `kind` with `extra` arguments after the usual ones (for Redis
    /// `["--requirepass", "x"]`, for Memcached `["-I", "2m"]`) and waits until it answers.
    ///
    /// Returns `None` when the binary is missing and `CI` is unset, after one `SKIPPED` line
    /// ([`server_binary`]).
    ///
    /// # Panics
    /// When the binary is missing under CI, or the server exits or does not answer within
    /// 10 s (the message holds its log).
    pub fn start(kind: ServerKind, extra: &[&str]) -> Option<Server> {
        let port = free_port();
        let mut args = kind.listen_args(port);
        if kind == ServerKind::Memcached {
            args.extend(["-m".to_owned(), MEMCACHED_MEGABYTES.to_owned()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Server::launch(kind, port, false, args, kind.program())
    }

    /// Starts a TLS-only `redis-server` (no plain port) with the given PEM files: its
    /// certificate and key, and the CA it checks client certificates against, which it
    /// requires when `require_client_cert` is set. See [`TestPki`](crate::TestPki).
    ///
    /// Returns `None` as [`start`](Self::start) does.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_redis_tls(
        cert: &Path,
        key: &Path,
        ca: &Path,
        require_client_cert: bool,
    ) -> Option<Server> {
        let port = free_port();
        // Port 0 turns the plain port off.
        let mut args = ServerKind::Redis.listen_args(0);
        args.extend([
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            cert.display().to_string(),
            "--tls-key-file".to_owned(),
            key.display().to_string(),
            "--tls-ca-cert-file".to_owned(),
            ca.display().to_string(),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
        ]);
        Server::launch(ServerKind::Redis, port, true, args, "redis-tls")
    }

    fn launch(
        kind: ServerKind,
        port: u16,
        tls: bool,
        args: Vec<String>,
        tag: &str,
    ) -> Option<Server> {
        let binary = server_binary(kind)?;
        let mut server = Server {
            kind,
            binary,
            port,
            tls,
            args,
            dir: TempDir::new(tag),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// The kind of server.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The port clients connect to (the TLS port of a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:port` (`rediss://` for a TLS server) or
    /// `memcached://127.0.0.1:port`.
    pub fn url(&self) -> String {
        let scheme = match (self.kind, self.tls) {
            (ServerKind::Redis, false) => "redis",
            (ServerKind::Redis, true) => "rediss",
            (ServerKind::Memcached, _) => "memcached",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The server's working directory, removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the process with SIGKILL (no shutdown, no goodbye to clients) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same arguments, and waits until it
    /// answers. A running process is killed first.
    ///
    /// # Panics
    /// When the server exits or does not answer within 10 s.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn(&mut self) {
        let log = self.log();
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match self.kind {
            ServerKind::Redis => {
                cmd.arg("--dir")
                    .arg(self.dir.path())
                    .arg("--logfile")
                    .arg(&log)
                    .stderr(Stdio::null());
            }
            ServerKind::Memcached => {
                // memcached has no log file: its errors go to stderr.
                match File::create(&log) {
                    Ok(file) => cmd.stderr(file),
                    Err(_) => cmd.stderr(Stdio::null()),
                };
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Whether the server serves: a TLS port that accepts connections; a Redis that answers
    /// anything (`-NOAUTH` from one with a password too); a Memcached that answers `version`.
    fn serves(&self) -> bool {
        if self.tls {
            return is_listening(self.port);
        }
        matches!(
            (self.kind, self.kind.probe(self.port)),
            (_, Probe::Ready) | (ServerKind::Redis, Probe::Answered(_))
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} on port {}:\n{}",
                    self.kind.program(),
                    self.port,
                    self.log_text()
                );
            }
            if self.serves() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} on port {} did not answer within {READY_TIMEOUT:?}:\n{}",
                    self.kind.program(),
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
