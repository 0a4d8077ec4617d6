//! A Redis primary killed with SIGKILL under load, on private topologies started by each test
//! (never the shared servers): a Redis Cluster of 3 primaries + 3 replicas with a 2 s node
//! timeout, and one master + one replica watched by three sentinels (down-after 1 s).
//!
//! # What is checked
//!
//! Task `t` is the only writer of its keys; each loop it writes one of them, reads it back and
//! reads the same key of task `t + 1`. Values carry their key and version, and reads are judged
//! by the freshness rule of [`versioned`]. Each key has its own hash tag, so the keys spread
//! over every primary; a key belongs to the *failed* group when the killed primary served its
//! slot, to the *healthy* group otherwise.
//!
//! - No wrong answer: no value of another key, no damaged value, no version never written, and
//!   no version older than a confirmed one on a healthy primary. On the failed primary's slots
//!   Redis replicates asynchronously, so a write acknowledged just before the kill may be lost
//!   by the promotion: such reads are counted (`rolled_back`), not judged wrong.
//! - Errors are `Connection` or `Timeout` only.
//! - Recovery: every call started [`RECOVERY_BOUND`] after the replica's promotion succeeds.
//! - Cluster: the old primary, restarted, rejoins as a replica while calls go on, without an
//!   error or a wrong value.
//! - Cluster: at least [`HEALTHY_SHARE`] of the calls on the healthy primaries' keys started
//!   while the failed primary is down (from [`NOTICE`] after the kill to the promotion)
//!   succeed. Calls started in the first [`NOTICE`] may have been queued on the cluster
//!   connection before the client noticed the failure; they wait for their deadline, and are
//!   counted apart. The cluster
//!   runs with `cluster-require-full-coverage no`; with the default `yes` every node refuses
//!   every key (CLUSTERDOWN) from the moment the failed primary is marked FAIL until the
//!   promotion, whatever the client does.
//!
//! Figures (`FIGURE:` lines, `--no-capture`): per group the calls and successes during the
//! failover, the longest time without a successful call after the kill (`stall`), and the time
//! from the promotion to the first success on the failed keys (`promotion_to_ok`).
//!
//! ```sh
//! cargo nextest run -p stratacache-tests --test failover --no-capture 2>&1 | grep '^FIGURE:'
//! # the cluster at Redis's default node timeout
//! CACHE_TEST_FAILOVER_NODE_TIMEOUT_MS=15000 cargo nextest run -p stratacache-tests \
//!     --test failover --no-capture -E 'test(killed_under)' 2>&1 | grep '^FIGURE:'
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::{Cache, ErrorKind};
use cache_redis::RedisBuilder;
use cache_redis::fred::util::redis_keyslot;
use cache_test_fixtures::{Server, ServerKind, TempDir, find_program, server_binary, skip_or_fail};
use stratacache_tests::report::millis;
use stratacache_tests::versioned::{self, Observer, Verdict, Writer};
use stratacache_tests::{Figures, Tally};

const TASKS: usize = 24;
const KEYS_PER_TASK: usize = 6;
/// Load before the kill.
const WARM_UP: Duration = Duration::from_millis(1_000);
/// Every call started this long after the promotion must succeed.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// Load after the promotion: past the recovery bound.
const AFTER: Duration = Duration::from_secs(7);
/// Per-call deadline of the cache.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause of a task after each round of calls, to keep the load from taking every core of a
/// machine that runs other tests too (thousands of calls still fall in each failover).
const PACE: Duration = Duration::from_millis(2);
/// Pause of a task after a failed call, so that the tasks do not spin on instant errors.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// The first moments after the kill, before the client has noticed it: calls started then
/// may already be queued on the connection that waits for the failover, and are left out of
/// the success share (counted apart, `*_failed_at_kill`).
const NOTICE: Duration = Duration::from_millis(100);
/// Successful calls on the healthy primaries' keys during a cluster failover.
const HEALTHY_SHARE: f64 = 0.99;
/// Cluster node timeout and sentinel down-after, in milliseconds.
const NODE_TIMEOUT_MS: u64 = 2_000;
const DOWN_AFTER_MS: u64 = 1_000;
/// Overrides [`NODE_TIMEOUT_MS`], for a manual run at Redis's default (15000).
const NODE_TIMEOUT_VARIABLE: &str = "CACHE_TEST_FAILOVER_NODE_TIMEOUT_MS";

fn node_timeout_ms() -> u64 {
    std::env::var(NODE_TIMEOUT_VARIABLE)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NODE_TIMEOUT_MS)
}

/// The longest wait for the promotion after the kill.
fn promotion_bound() -> Duration {
    Duration::from_millis(node_timeout_ms() * 3) + Duration::from_secs(10)
}

// ---------------------------------------------------------------------------------------------
// Processes

/// `redis-cli`, or `None` after the skip-or-fail rule.
fn redis_cli() -> Option<PathBuf> {
    let found = find_program("redis-cli");
    if found.is_none() {
        skip_or_fail("redis-cli is not installed (it forms the test's Redis cluster)");
    }
    found
}

/// Runs `redis-cli -p port args…` and returns its output ("" when it cannot run).
fn run_cli(bin: &Path, port: u16, args: &[&str]) -> String {
    Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {bound:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the node on `port` is a primary (`ROLE` answers `master`).
fn is_primary(bin: &Path, port: u16) -> bool {
    run_cli(bin, port, &["role"]).lines().next() == Some("master")
}

/// One primary of the cluster: its port and slot ranges, and the port of its replica.
#[derive(Debug, Clone)]
struct Shard {
    port: u16,
    slots: Vec<(u16, u16)>,
    replica: u16,
}

/// A private Redis Cluster: 3 primaries and 3 replicas.
struct Cluster {
    cli: PathBuf,
    nodes: Vec<Server>,
    shards: Vec<Shard>,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let cli = redis_cli()?;
        let timeout = node_timeout_ms().to_string();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(Server::start(
                ServerKind::Redis,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                    // the healthy primaries keep serving their slots while one is down (with
                    // the default `yes` every node answers CLUSTERDOWN from the moment the
                    // failed primary is marked FAIL until its replica is promoted)
                    "--cluster-require-full-coverage",
                    "no",
                ],
            )?);
        }
        let addresses: Vec<String> = nodes.iter().map(Server::address).collect();
        let out = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let ports: Vec<u16> = nodes.iter().map(Server::port).collect();
        wait_until(Duration::from_secs(20), "the cluster is formed", || {
            ports
                .iter()
                .all(|&p| cli_ok(&cli, p, &["cluster", "info"], "cluster_state:ok"))
                && ports
                    .iter()
                    .filter(|&&p| !is_primary(&cli, p))
                    .all(|&p| cli_ok(&cli, p, &["info", "replication"], "master_link_status:up"))
                && shards(&cli, ports[0]).len() == 3
        });
        let shards = shards(&cli, ports[0]);
        Some(Cluster { cli, nodes, shards })
    }

    fn node(&mut self, port: u16) -> &mut Server {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("a node of the cluster")
    }

    fn owner(&self, slot: u16) -> u16 {
        self.shards
            .iter()
            .find(|s| s.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .map(|s| s.port)
            .expect("every slot is served")
    }
}

fn cli_ok(bin: &Path, port: u16, args: &[&str], needle: &str) -> bool {
    run_cli(bin, port, args).contains(needle)
}

/// The shards as `CLUSTER NODES` on `port` sees them (primaries with slots and a replica).
fn shards(bin: &Path, port: u16) -> Vec<Shard> {
    let text = run_cli(bin, port, &["cluster", "nodes"]);
    let mut primaries: Vec<(String, Shard)> = Vec::new();
    let mut replicas: Vec<(String, u16)> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 || fields[2].contains("fail") {
            continue;
        }
        let Some(node_port) = fields[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            continue;
        };
        if fields[2].contains("master") {
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect::<Vec<(u16, u16)>>();
            if !slots.is_empty() {
                primaries.push((
                    fields[0].to_owned(),
                    Shard {
                        port: node_port,
                        slots,
                        replica: 0,
                    },
                ));
            }
        } else if fields[2].contains("slave") {
            replicas.push((fields[3].to_owned(), node_port));
        }
    }
    primaries
        .into_iter()
        .filter_map(|(id, mut shard)| {
            shard.replica = replicas.iter().find(|(m, _)| *m == id)?.1;
            Some(shard)
        })
        .collect()
}

/// A process killed on drop (the sentinels, which need a config file of their own).
struct Sentinel {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A master, its replica and three sentinels.
struct SentinelSetup {
    cli: PathBuf,
    master: Server,
    replica: Server,
    sentinels: Vec<Sentinel>,
}

const SERVICE: &str = "failover-test";

impl SentinelSetup {
    fn start() -> Option<SentinelSetup> {
        let cli = redis_cli()?;
        let binary = server_binary(ServerKind::Redis)?;
        let master = Server::start(ServerKind::Redis, &[])?;
        let master_port = master.port().to_string();
        let replica = Server::start(
            ServerKind::Redis,
            &["--replicaof", "127.0.0.1", &master_port],
        )?;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = cache_test_fixtures::free_port();
            let dir = TempDir::new("sentinel");
            let conf = dir.path().join("sentinel.conf");
            let mut text = String::new();
            let _ = writeln!(
                text,
                "port {port}\nbind 127.0.0.1\ndir {}",
                dir.path().display()
            );
            let _ = writeln!(
                text,
                "sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SERVICE} 3000\n\
                 sentinel parallel-syncs {SERVICE} 1"
            );
            std::fs::write(&conf, text).expect("write sentinel.conf");
            let log = std::fs::File::create(dir.path().join("sentinel.log")).expect("a log");
            let child = Command::new(&binary)
                .arg(&conf)
                .arg("--sentinel")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(Stdio::null())
                .spawn()
                .expect("start a sentinel");
            sentinels.push(Sentinel {
                child,
                port,
                _dir: dir,
            });
        }
        let setup = SentinelSetup {
            cli,
            master,
            replica,
            sentinels,
        };
        wait_until(
            Duration::from_secs(20),
            "the sentinels know the replica and each other",
            || {
                cli_ok(
                    &setup.cli,
                    setup.replica.port(),
                    &["info", "replication"],
                    "master_link_status:up",
                ) && setup.sentinels.iter().all(|s| {
                    let text = run_cli(&setup.cli, s.port, &["sentinel", "master", SERVICE]);
                    let field = |name: &str| {
                        let mut lines = text.lines();
                        while let Some(line) = lines.next() {
                            if line == name {
                                return lines.next().map(str::to_owned);
                            }
                        }
                        None
                    };
                    field("num-slaves").as_deref() == Some("1")
                        && field("num-other-sentinels").as_deref() == Some("2")
                })
            },
        );
        Some(setup)
    }
}

// ---------------------------------------------------------------------------------------------
// Load

/// One finished call.
#[derive(Debug, Clone, Copy)]
struct Call {
    /// Since the test began.
    started: Duration,
    ended: Duration,
    /// On the failed primary's slots.
    failed_group: bool,
    error: Option<ErrorKind>,
}

#[derive(Debug, Default)]
struct TaskLog {
    calls: Vec<Call>,
    wrong: Vec<String>,
    rolled_back: u64,
    errors: Tally,
}

impl TaskLog {
    /// Records a call that started at `started` (since `clock`) and ended now.
    fn record(
        &mut self,
        clock: Instant,
        started: Duration,
        failed_group: bool,
        error: Option<ErrorKind>,
    ) {
        self.calls.push(Call {
            started,
            ended: clock.elapsed(),
            failed_group,
            error,
        });
    }

    /// Checks what the writer of `key` read of it (`how`: the call, for the report).
    fn check_own(
        &mut self,
        writer: &mut Writer,
        key: &str,
        read: Option<&str>,
        lost_allowed: bool,
        how: &str,
    ) {
        let verdict = writer.read(key, read);
        judge(self, &verdict, lost_allowed, || {
            format!("{key} read by its writer{how}: {verdict}")
        });
    }

    /// Checks what task `t` read of its neighbour's `key`, of which version `ceiling` is the
    /// highest sent so far.
    #[allow(clippy::too_many_arguments)]
    fn check_other(
        &mut self,
        observer: &mut Observer,
        t: usize,
        key: &str,
        read: Option<&str>,
        ceiling: u64,
        lost_allowed: bool,
        how: &str,
    ) {
        let verdict = observer.read(key, read, ceiling);
        judge(self, &verdict, lost_allowed, || {
            format!("{key} read by task {t}{how}: {verdict}")
        });
    }
}

/// The key of task `t`'s `i`th key: its own hash tag.
fn key_of(task: usize, i: usize) -> String {
    format!("{{f{task}-{i}}}")
}

fn slot_of(key: &str) -> u16 {
    redis_keyslot(key.trim_start_matches('{').trim_end_matches('}').as_bytes())
}

/// When the primary was killed (since the clock's start), set by the failover just before.
type KillTime = Arc<Mutex<Option<Duration>>>;

/// What the load saw.
struct Load {
    calls: Vec<Call>,
    wrong: Vec<String>,
    rolled_back: u64,
    errors: Tally,
}

/// Runs the load on `cache` while `failover` runs (it returns the kill and promotion times,
/// since `clock`), then for [`AFTER`] more.
async fn under_load<F>(
    cache: Cache,
    failed: Arc<dyn Fn(u16) -> bool + Send + Sync>,
    clock: Instant,
    kill_time: KillTime,
    failover: F,
) -> (Load, Duration, Duration)
where
    F: std::future::Future<Output = (Duration, Duration)>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ceilings: Arc<Vec<AtomicU64>> = Arc::new(
        (0..TASKS * KEYS_PER_TASK)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let mut tasks = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let (cache, stop, ceilings) = (cache.clone(), stop.clone(), ceilings.clone());
        let (failed, kill_time) = (failed.clone(), kill_time.clone());
        tasks.push(tokio::spawn(async move {
            let mut log = TaskLog::default();
            let mut writer = Writer::new();
            let mut observer = Observer::new();
            let neighbour = (t + 1) % TASKS;
            let mut version = 0u64;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                let i = (version as usize) % KEYS_PER_TASK;
                let key = key_of(t, i);
                let other = key_of(neighbour, i);
                let in_failed = failed(slot_of(&key));
                let other_failed = failed(slot_of(&other));
                let after_kill = |at: Duration| kill_time.lock().unwrap().is_some_and(|k| at >= k);

                writer.sending(&key, version);
                ceilings[t * KEYS_PER_TASK + i].fetch_max(version, Ordering::SeqCst);
                let started = clock.elapsed();
                let r = cache.set(&key, &versioned::value(&key, version, 16)).await;
                let error = match r {
                    Ok(()) => {
                        writer.acknowledged(&key, version);
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.record(clock, started, in_failed, error);

                let own_lost = |started| in_failed && after_kill(started);
                let other_lost = |started| other_failed && after_kill(started);
                let ceiling = || ceilings[neighbour * KEYS_PER_TASK + i].load(Ordering::SeqCst);

                let started = clock.elapsed();
                let error = match cache.get::<String>(&key).await {
                    Ok(read) => {
                        log.check_own(&mut writer, &key, read.as_deref(), own_lost(started), "");
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.record(clock, started, in_failed, error);

                let started = clock.elapsed();
                let error = match cache.get::<String>(&other).await {
                    Ok(read) => {
                        let (lost, ceiling) = (other_lost(started), ceiling());
                        log.check_other(
                            &mut observer,
                            t,
                            &other,
                            read.as_deref(),
                            ceiling,
                            lost,
                            "",
                        );
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.record(clock, started, other_failed, error);

                // both keys at once: one MGET per slot, on two primaries most of the time
                let started = clock.elapsed();
                let both = [key.as_str(), other.as_str()];
                let error = match cache.multi_get::<String, _, _>(both).await {
                    Ok(read) => {
                        let how = " in a multi_get";
                        log.check_own(
                            &mut writer,
                            &key,
                            read[0].as_deref(),
                            own_lost(started),
                            how,
                        );
                        let (lost, ceiling) = (other_lost(started), ceiling());
                        log.check_other(
                            &mut observer,
                            t,
                            &other,
                            read[1].as_deref(),
                            ceiling,
                            lost,
                            how,
                        );
                        None
                    }
                    Err(e) => Some(e.kind()),
                };
                log.record(clock, started, in_failed || other_failed, error);

                let mut any_failed = false;
                for call in &log.calls[log.calls.len() - 4..] {
                    if let Some(kind) = call.error {
                        log.errors.add(kind);
                        any_failed = true;
                    }
                }
                tokio::time::sleep(if any_failed { ERROR_PAUSE } else { PACE }).await;
            }
            log
        }));
    }

    tokio::time::sleep(WARM_UP).await;
    let (killed_at, promoted_at) = failover.await;
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);

    let mut load = Load {
        calls: Vec::new(),
        wrong: Vec::new(),
        rolled_back: 0,
        errors: Tally::new(),
    };
    for task in tasks {
        let log = task.await.expect("a load task");
        load.calls.extend(log.calls);
        load.wrong.extend(log.wrong);
        load.rolled_back += log.rolled_back;
        load.errors.merge(&log.errors);
    }
    (load, killed_at, promoted_at)
}

/// Records a wrong read; a stale read of the failed primary's keys after the kill is a write
/// the promotion lost (Redis replicates asynchronously), counted apart.
fn judge(log: &mut TaskLog, verdict: &Verdict, lost_allowed: bool, what: impl FnOnce() -> String) {
    if !verdict.is_wrong() {
        return;
    }
    if lost_allowed && matches!(verdict, Verdict::Stale { .. }) {
        log.rolled_back += 1;
    } else {
        log.wrong.push(what());
    }
}

/// Figures of one group of keys.
struct Group {
    /// Calls started from [`NOTICE`] after the kill to the promotion, and those that succeeded.
    calls: usize,
    ok: usize,
    /// Calls started in the first [`NOTICE`] after the kill that failed.
    caught: usize,
    /// The longest time without a successful call, from the kill to the end.
    stall: Duration,
    /// When the longest stall began, after the kill.
    stall_at: Duration,
    /// From the promotion to the first success of a call started after the kill.
    promotion_to_ok: Option<Duration>,
    /// Calls started [`RECOVERY_BOUND`] after the promotion that failed.
    late_failures: usize,
    max_latency: Duration,
}

impl Group {
    fn of(calls: &[Call], failed: bool, killed_at: Duration, promoted_at: Duration) -> Group {
        let mine: Vec<&Call> = calls.iter().filter(|c| c.failed_group == failed).collect();
        let settled = killed_at + NOTICE;
        let during: Vec<&&Call> = mine
            .iter()
            .filter(|c| c.started >= settled && c.started < promoted_at)
            .collect();
        let caught = mine
            .iter()
            .filter(|c| c.started >= killed_at && c.started < settled && c.error.is_some())
            .count();
        let mut oks: Vec<Duration> = mine
            .iter()
            .filter(|c| c.error.is_none() && c.started >= killed_at)
            .map(|c| c.ended)
            .collect();
        oks.sort();
        let end = calls.iter().map(|c| c.ended).max().unwrap_or_default();
        let mut stall = Duration::ZERO;
        let mut stall_at = Duration::ZERO;
        let mut last = killed_at;
        for &t in oks.iter().chain(std::iter::once(&end)) {
            if t.saturating_sub(last) > stall {
                stall = t.saturating_sub(last);
                stall_at = last.saturating_sub(killed_at);
            }
            last = last.max(t);
        }
        Group {
            calls: during.len(),
            ok: during.iter().filter(|c| c.error.is_none()).count(),
            caught,
            stall,
            stall_at,
            promotion_to_ok: oks.first().map(|&t| t.saturating_sub(promoted_at)),
            late_failures: mine
                .iter()
                .filter(|c| c.error.is_some() && c.started >= promoted_at + RECOVERY_BOUND)
                .count(),
            max_latency: during
                .iter()
                .map(|c| c.ended - c.started)
                .max()
                .unwrap_or_default(),
        }
    }

    fn share(&self) -> f64 {
        if self.calls == 0 {
            1.0
        } else {
            self.ok as f64 / self.calls as f64
        }
    }

    fn add(&self, figures: Figures, prefix: &str) -> Figures {
        figures
            .add(&format!("{prefix}_calls"), self.calls)
            .add(&format!("{prefix}_ok"), self.ok)
            .add(
                &format!("{prefix}_share"),
                if self.calls == 0 {
                    "n/a".to_owned()
                } else {
                    format!("{:.3}", self.share())
                },
            )
            .add(&format!("{prefix}_failed_at_kill"), self.caught)
            .add(&format!("{prefix}_max_latency"), millis(self.max_latency))
            .add(&format!("{prefix}_stall"), millis(self.stall))
            .add(&format!("{prefix}_stall_from"), millis(self.stall_at))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn check_common(load: &Load) {
    assert!(load.wrong.is_empty(), "wrong answers: {:#?}", load.wrong);
    assert!(
        load.errors
            .outside(&[ErrorKind::Connection, ErrorKind::Timeout])
            .is_empty(),
        "errors other than connection and timeout errors: {}",
        load.errors
    );
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Kills the primary of the first shard under load; the client is seeded with `seeds(victim,
/// all nodes)`.
fn cluster_failover(scenario: &str, seeds: impl Fn(u16, &[u16]) -> Vec<String>) {
    let Some(mut cluster) = Cluster::start() else {
        return;
    };
    let victim = cluster.shards[0].clone();
    let all: Vec<u16> = cluster.nodes.iter().map(Server::port).collect();
    let seeds = seeds(victim.port, &all);
    let owners: Vec<u16> = (0..16384u16).map(|s| cluster.owner(s)).collect();
    let failed: Arc<dyn Fn(u16) -> bool + Send + Sync> =
        Arc::new(move |slot| owners[usize::from(slot)] == victim.port);
    let cli = cluster.cli.clone();

    runtime().block_on(async {
        let backend = RedisBuilder::new()
            .cluster(seeds.clone())
            .build()
            .await
            .expect("connect to the cluster");
        let cache = Cache::builder(backend)
            .namespace(random_namespace())
            .timeout(CALL_TIMEOUT)
            .build();
        let clock = Instant::now();
        let kill_time = KillTime::default();
        let failover = async {
            let killed_at = clock.elapsed();
            *kill_time.lock().unwrap() = Some(killed_at);
            tokio::task::block_in_place(|| cluster.node(victim.port).kill());
            let promoted_at = tokio::task::spawn_blocking(move || {
                wait_until(promotion_bound(), "the replica is promoted", || {
                    is_primary(&cli, victim.replica)
                });
                clock.elapsed()
            })
            .await
            .expect("the promotion watch");
            (killed_at, promoted_at)
        };
        let (load, killed_at, promoted_at) =
            under_load(cache.clone(), failed, clock, kill_time.clone(), failover).await;

        let healthy = Group::of(&load.calls, false, killed_at, promoted_at);
        let lost = Group::of(&load.calls, true, killed_at, promoted_at);
        let mut figures = Figures::new(scenario, "redis-cluster")
            .add("tasks", TASKS)
            .add("seeds", seeds.len())
            .add("node_timeout", format!("{}ms", node_timeout_ms()))
            .add("calls", load.calls.len())
            .add("errors", &load.errors)
            .add("wrong", load.wrong.len())
            .add("rolled_back", load.rolled_back)
            .add("kill_to_promotion", millis(promoted_at - killed_at));
        figures = healthy.add(figures, "healthy");
        figures = lost.add(figures, "failed");
        figures = figures
            .add(
                "promotion_to_ok",
                lost.promotion_to_ok
                    .map_or_else(|| "never".to_owned(), millis),
            )
            .add("late_failures", healthy.late_failures + lost.late_failures);
        figures.print();

        check_common(&load);
        assert!(
            lost.promotion_to_ok.is_some() && lost.late_failures == 0 && healthy.late_failures == 0,
            "every call started {RECOVERY_BOUND:?} after the promotion succeeds: {figures}"
        );
        assert!(
            healthy.share() >= HEALTHY_SHARE,
            "calls on the healthy primaries' keys during the failover: {:.3} succeeded, at least \
             {HEALTHY_SHARE} expected: {figures}",
            healthy.share()
        );

        // the old primary, restarted, rejoins as a replica while calls go on, without errors
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..4 {
            let (cache, stop) = (cache.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut calls, mut errors) = (0u64, Vec::new());
                let mut version = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    version += 1;
                    let key = format!("{{rejoin{t}-{}}}", version % 16);
                    let value = versioned::value(&key, version, 16);
                    calls += 2;
                    if let Err(e) = cache.set(&key, &value).await {
                        errors.push(format!("set {key}: {e}"));
                        continue;
                    }
                    match cache.get::<String>(&key).await {
                        Ok(read) if read.as_deref() == Some(value.as_str()) => {}
                        Ok(read) => errors.push(format!("get {key}: {read:?}")),
                        Err(e) => errors.push(format!("get {key}: {e}")),
                    }
                }
                (calls, errors)
            }));
        }
        let cli = cluster.cli.clone();
        tokio::task::block_in_place(|| {
            cluster.node(victim.port).restart();
            wait_until(
                Duration::from_secs(30),
                "the old primary rejoins as a replica",
                || {
                    !is_primary(&cli, victim.port)
                        && cli_ok(
                            &cli,
                            victim.port,
                            &["info", "replication"],
                            "master_link_status:up",
                        )
                },
            );
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut calls, mut errors) = (0, Vec::new());
        for task in tasks {
            let (c, e) = task.await.expect("a rejoin task");
            calls += c;
            errors.extend(e);
        }
        Figures::new(&format!("{scenario}-rejoin"), "redis-cluster")
            .add("calls", calls)
            .add("errors", errors.len())
            .print();
        assert!(
            calls > 0 && errors.is_empty(),
            "while the old primary rejoined: {errors:#?}"
        );
        cache.close().await.expect("close");
    });
}

#[test]
fn cluster_primary_killed_under_load() {
    cluster_failover("cluster-failover", |_, all| {
        all.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    });
}

/// Seeded with one node, which dies: recovery uses the topology learned from the cluster.
#[test]
fn cluster_seeded_only_with_the_primary_that_dies() {
    cluster_failover("cluster-failover-dead-seed", |victim, _| {
        vec![format!("127.0.0.1:{victim}")]
    });
}

#[test]
fn sentinel_master_killed_under_load() {
    let Some(mut setup) = SentinelSetup::start() else {
        return;
    };
    let sentinels: Vec<String> = setup
        .sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let cli = setup.cli.clone();
    let replica = setup.replica.port();
    runtime().block_on(async {
        let backend = RedisBuilder::new()
            .sentinel(SERVICE, sentinels.clone())
            .build()
            .await
            .expect("connect through the sentinels");
        let cache = Cache::builder(backend)
            .namespace(random_namespace())
            .timeout(CALL_TIMEOUT)
            .build();
        let clock = Instant::now();
        let kill_time = KillTime::default();
        let failover = async {
            let killed_at = clock.elapsed();
            *kill_time.lock().unwrap() = Some(killed_at);
            tokio::task::block_in_place(|| setup.master.kill());
            let promoted_at = tokio::task::spawn_blocking(move || {
                wait_until(promotion_bound(), "the replica is promoted", || {
                    is_primary(&cli, replica)
                });
                clock.elapsed()
            })
            .await
            .expect("the promotion watch");
            (killed_at, promoted_at)
        };
        // every key is on the master
        let (load, killed_at, promoted_at) = under_load(
            cache.clone(),
            Arc::new(|_| true),
            clock,
            kill_time.clone(),
            failover,
        )
        .await;
        let all = Group::of(&load.calls, true, killed_at, promoted_at);
        let figures = all
            .add(
                Figures::new("sentinel-failover", "redis-sentinel")
                    .add("tasks", TASKS)
                    .add("down_after", format!("{DOWN_AFTER_MS}ms"))
                    .add("calls", load.calls.len())
                    .add("errors", &load.errors)
                    .add("wrong", load.wrong.len())
                    .add("rolled_back", load.rolled_back)
                    .add("kill_to_promotion", millis(promoted_at - killed_at)),
                "all",
            )
            .add(
                "promotion_to_ok",
                all.promotion_to_ok
                    .map_or_else(|| "never".to_owned(), millis),
            )
            .add("late_failures", all.late_failures);
        figures.print();

        check_common(&load);
        assert!(
            all.promotion_to_ok.is_some() && all.late_failures == 0,
            "every call started {RECOVERY_BOUND:?} after the promotion succeeds: {figures}"
        );
        cache.close().await.expect("close");
    });
}
