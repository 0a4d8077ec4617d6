//! The Python peer: `bench/aiocache_bench.py` in a virtualenv under `target/bench-venv`, one
//! process per round.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workloads::{Sizes, TASKS, ZIPF_S};

/// The interpreter of the virtualenv, or why there is none.
#[derive(Debug, Clone)]
pub struct Python {
    ready: Result<PathBuf, String>,
    script: PathBuf,
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            Err(format!("{what} failed ({}): {}", o.status, last.trim()))
        }
        Err(e) => Err(format!("{what} could not start: {e}")),
    }
}

impl Python {
    /// Finds or creates the virtualenv (`python3 -m venv target/bench-venv`, then
    /// `pip install -r bench/requirements.txt`). Never fails: a missing Python is recorded and
    /// reported in the tables.
    pub fn prepare() -> Python {
        let root = workspace_root();
        let script = root.join("bench").join("aiocache_bench.py");
        let venv = root.join("target").join("bench-venv");
        let ready = Self::venv(&root, &venv);
        if let Err(e) = &ready {
            eprintln!("aiocache will not run: {e}");
        }
        Python { ready, script }
    }

    fn venv(root: &Path, venv: &Path) -> Result<PathBuf, String> {
        let python = venv.join("bin").join("python");
        let check = |python: &Path| {
            run(
                Command::new(python).args(["-c", "import aiocache, redis, aiomcache"]),
                "import aiocache",
            )
        };
        if python.is_file() && check(&python).is_ok() {
            return Ok(python);
        }
        eprintln!("creating {} (python3 -m venv; pip install)", venv.display());
        run(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(venv)
                .current_dir(root),
            "python3 -m venv",
        )?;
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(root.join("bench").join("requirements.txt")),
            "pip install -r bench/requirements.txt",
        )?;
        check(&python)?;
        Ok(python)
    }

    /// "0.12.3 on Python 3.x.y", or why aiocache cannot run.
    pub fn label(&self) -> Result<String, String> {
        let python = self.ready.as_ref().map_err(Clone::clone)?;
        let out = run(
            Command::new(python).args([
                "-c",
                "import sys, aiocache; print(aiocache.__version__, sys.version.split()[0])",
            ]),
            "python",
        )?;
        let mut parts = out.split_whitespace();
        Ok(format!(
            "{} on Python {}",
            parts.next().unwrap_or("?"),
            parts.next().unwrap_or("?")
        ))
    }

    /// Runs one round of every workload against `server` (`redis` or `memcached`); answers
    /// rates by workload id.
    ///
    /// # Errors
    /// When there is no virtualenv or the script fails.
    pub fn round(
        &self,
        server: &str,
        host: &str,
        port: u16,
        namespace: &str,
        s: &Sizes,
    ) -> Result<HashMap<String, f64>, String> {
        let python = self.ready.as_ref().map_err(Clone::clone)?;
        let out = tokio::task::block_in_place(|| {
            run(
                Command::new(python)
                    .arg(&self.script)
                    .args(["--server", server, "--host", host])
                    .args(["--port", &port.to_string(), "--namespace", namespace])
                    .args(["--keys", &crate::workloads::KEYS.to_string()])
                    .args(["--counters", &crate::workloads::COUNTERS.to_string()])
                    .args(["--tasks", &TASKS.to_string()])
                    .args(["--pool-size", &crate::workloads::POOL_SIZE.to_string()])
                    .args(["--zipf-s", &ZIPF_S.to_string()])
                    .args(["--sequential", &s.sequential.to_string()])
                    .args(["--per-task", &s.per_task.to_string()])
                    .args(["--multi-10", &s.multi_10.to_string()])
                    .args(["--multi-100", &s.multi_100.to_string()])
                    .args(["--multi-set-100", &s.multi_set.to_string()])
                    .args(["--increments", &s.incr.to_string()]),
                "bench/aiocache_bench.py",
            )
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("aiocache_bench.py output: {e}"))?;
        let rates = value
            .get("rates")
            .and_then(|r| r.as_object())
            .ok_or("aiocache_bench.py output has no `rates`")?;
        Ok(rates
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
            .collect())
    }
}
