//! The services table: which servers `cargo x services` runs, on which ports, and how to
//! launch one process of each kind.

use std::ffi::OsString;
use std::path::PathBuf;

use cache_test_fixtures::{Probe, ServerKind};

use crate::util;

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
    pub(super) kind: Kind,
    /// Loopback ports, one server process each.
    pub(super) ports: &'static [u16],
    /// What the tests connect to.
    pub(crate) url: &'static str,
    /// The environment variable the tests read `url` from.
    pub(crate) env_var: &'static str,
    /// Debian packages to install when the kind's binaries are missing.
    pub(super) packages: &'static [&'static str],
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
    pub(super) fn binary(self) -> &'static str {
        self.server().program()
    }

    /// Programs that must be installed to run this kind.
    pub(super) fn required_programs(self) -> &'static [&'static str] {
        match self {
            Kind::Redis => &["redis-server"],
            Kind::RedisClusterNode => &["redis-server", "redis-cli"],
            Kind::Memcached => &["memcached"],
        }
    }

    /// Arguments that start one daemonized server on `port` writing its pid to `files.pid`.
    pub(super) fn launch_args(self, port: u16, files: &Files) -> Vec<OsString> {
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
    pub(super) fn probe(self, port: u16) -> Probe {
        self.server().probe(port)
    }
}

/// Files of one server process.
pub(super) struct Files {
    pub(super) pid: PathBuf,
    pub(super) log: PathBuf,
    pub(super) dir: PathBuf,
}

pub(super) fn state_dir() -> PathBuf {
    util::workspace_root().join("target").join("services")
}

impl Service {
    pub(super) fn files(&self, port: u16) -> Files {
        let base = format!("{}-{}", self.name, port);
        let dir = state_dir();
        Files {
            pid: dir.join(format!("{base}.pid")),
            log: dir.join(format!("{base}.log")),
            dir: dir.join(base),
        }
    }

    /// `redis` for a one-port service, `redis-cluster:17001` when it has several.
    pub(super) fn label(&self, port: u16) -> String {
        if self.ports.len() > 1 {
            format!("{}:{port}", self.name)
        } else {
            self.name.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
