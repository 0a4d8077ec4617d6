//! Kill -9 and restart the server while 16 tasks run set/get loops: errors during the outage
//! are connection or timeout errors, every call succeeds again within a bounded time after
//! the restart, and no read ever returns another key's value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{Cache, ErrorKind};
use cache_redis::{RedisBuilder, RedisConfig};
use cache_test_fixtures::{Server, ServerKind};
use tokio::sync::Mutex;

const TASKS: usize = 16;
/// Every call must succeed again this long after the server is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Log {
    ok: u64,
    misses: u64,
    /// (time since the test began, error kind, message)
    errors: Vec<(Duration, ErrorKind, String)>,
    wrong_values: Vec<String>,
}

/// A value that names its key and version, so a read can check it is this key's value.
fn value_for(key: &str, version: u64) -> String {
    format!("{key}|v{version}")
}

async fn run_restart(builder: RedisBuilder, server: &mut Server) {
    let backend = Arc::new(builder.build().await.unwrap());
    assert_eq!(
        backend.connection_stats(),
        Default::default(),
        "nothing yet"
    );
    let cache = Cache::builder(backend.clone() as Arc<dyn cache_core::Backend>)
        .namespace("restart")
        .timeout(Duration::from_secs(1))
        .build();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Log::default()));
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (cache, stop, log, calls) = (cache.clone(), stop.clone(), log.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut version = 0u64;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                let key = format!("t{t}-k{}", version % 8);
                let written = value_for(&key, version);
                let set = cache.set(&key, &written).await;
                let get = cache.get::<String>(&key).await;
                calls.fetch_add(2, Ordering::Relaxed);
                let mut log = log.lock().await;
                match set {
                    Ok(()) => log.ok += 1,
                    Err(e) => log.errors.push((start.elapsed(), e.kind(), e.to_string())),
                }
                match get {
                    Ok(Some(v)) => {
                        // the key's own value, never one from the future
                        let ok = v
                            .strip_prefix(&format!("{key}|v"))
                            .and_then(|n| n.parse::<u64>().ok())
                            .is_some_and(|n| n <= version);
                        if ok {
                            log.ok += 1;
                        } else {
                            log.wrong_values.push(format!("{key} read {v:?}"));
                        }
                    }
                    Ok(None) => {
                        log.ok += 1;
                        log.misses += 1;
                    }
                    Err(e) => log.errors.push((start.elapsed(), e.kind(), e.to_string())),
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_kill = calls.load(Ordering::Relaxed);
    assert!(
        before_kill > 100,
        "the loop runs before the kill ({before_kill} calls)"
    );
    server.kill();
    let killed_at = start.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart();
    let restarted_at = start.elapsed();
    tokio::time::sleep(RECOVERY_BOUND + Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let log = log.lock().await;
    assert!(
        log.wrong_values.is_empty(),
        "reads returned other values: {:?}",
        log.wrong_values
    );
    for (at, kind, message) in &log.errors {
        assert!(
            matches!(kind, ErrorKind::Connection | ErrorKind::Timeout),
            "unexpected error kind {kind:?} at {at:?}: {message}"
        );
        assert!(
            *at >= killed_at,
            "error before the kill at {at:?}: {message}"
        );
        assert!(
            *at <= restarted_at + RECOVERY_BOUND,
            "error {at:?} after start, more than {RECOVERY_BOUND:?} after the restart at \
             {restarted_at:?}: {message}"
        );
    }
    assert!(!log.errors.is_empty(), "the outage was seen");
    let last_error = log
        .errors
        .iter()
        .map(|(at, ..)| *at)
        .max()
        .unwrap_or_default();
    eprintln!(
        "restart: {} ok ({} misses), {} errors between {:?} and {:?}; killed at {killed_at:?}, \
         restarted at {restarted_at:?}, recovered {:?} after the restart",
        log.ok,
        log.misses,
        log.errors.len(),
        log.errors
            .iter()
            .map(|(at, ..)| *at)
            .min()
            .unwrap_or_default(),
        last_error,
        last_error.saturating_sub(restarted_at),
    );
    drop(log);

    // and afterwards every call succeeds
    for i in 0..200 {
        let key = format!("after-{i}");
        cache.set(&key, &value_for(&key, 1)).await.unwrap();
        assert_eq!(
            cache.get::<String>(&key).await.unwrap(),
            Some(value_for(&key, 1))
        );
    }
    assert_eq!(cache.increment("counter", 2).await.unwrap(), 2);
    let stats = backend.connection_stats();
    assert!(
        stats.connected >= 1 && stats.failed >= 1,
        "the kill was a connection error and the restart a reconnection: {stats:?}"
    );
    cache.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_server_recovers_and_never_mixes_values() {
    let Some(mut server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let builder = RedisConfig::from_url(&server.url()).unwrap().into_builder();
    run_restart(builder, &mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_with_a_pool_resp3_and_no_client_deadline() {
    let Some(mut server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let url = format!(
        "{}?pool_size=3&protocol=resp3&command_timeout=0",
        server.url()
    );
    let builder = RedisConfig::from_url(&url).unwrap().into_builder();
    run_restart(builder, &mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_and_the_client_recovers_when_it_resumes() {
    // A Lua busy loop blocks the server (Debian's build has DEBUG SLEEP disabled); calls
    // time out, and afterwards the same cache works again.
    let Some(server) = Server::start(ServerKind::Redis, &["--busy-reply-threshold", "100000"])
    else {
        return;
    };
    let backend = RedisBuilder::new()
        .port(server.port())
        .command_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend)
        .namespace("stall")
        .timeout(Duration::from_millis(200))
        .build();
    cache.set("k", &1).await.unwrap();
    let blocker = cache.clone();
    let busy = tokio::spawn(async move {
        blocker
            .with_timeout(Duration::from_secs(5))
            .raw(
                "EVAL",
                [
                    "local t = redis.call('TIME'); local s = t[1] * 1000 + t[2] / 1000; \
                     while true do local n = redis.call('TIME'); \
                     if n[1] * 1000 + n[2] / 1000 - s > 1500 then break end end return 1",
                    "0",
                ],
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = cache.get::<i32>("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    let done = busy.await.unwrap();
    assert!(done.is_ok(), "{done:?}");
    let started = Instant::now();
    loop {
        match cache.get::<i32>("k").await {
            Ok(v) => {
                assert_eq!(v, Some(1));
                break;
            }
            Err(e) => {
                assert!(started.elapsed() < RECOVERY_BOUND, "not recovered: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Writes cut by the caller's deadline while the server is down, before they could be sent,
/// are never applied when the connection comes back: for a command still unsent, `Timeout`
/// means "not applied".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_timed_out_unsent_are_never_applied_later() {
    let Some(mut server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let backend = Arc::new(
        RedisConfig::from_url(&server.url())
            .unwrap()
            .into_builder()
            .build()
            .await
            .unwrap(),
    );
    let cache = Cache::builder(backend.clone() as Arc<dyn cache_core::Backend>)
        .namespace("late")
        .timeout(Duration::from_millis(200))
        .build();
    cache.set("k", &"before").await.unwrap();
    server.kill();
    // Once the client has seen the connection drop, writes wait unsent for the reconnect (a
    // write sent before that is on the wire: nothing can call it back).
    let killed = Instant::now();
    while backend.connection_stats().failed == 0 {
        assert!(
            killed.elapsed() < RECOVERY_BOUND,
            "the client never saw the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut cut = 0;
    for i in 0..10 {
        match cache.set(&format!("w{i}"), &"late").await {
            Err(e) if e.kind() == ErrorKind::Timeout => cut += 1,
            Err(e) if e.kind() == ErrorKind::Connection => {}
            other => panic!("a write to a dead server answered {other:?}"),
        }
    }
    assert!(cut > 0, "no write timed out while the server was down");
    server.restart();
    let back = Instant::now();
    while cache.get::<String>("k").await.is_err() {
        assert!(
            back.elapsed() < RECOVERY_BOUND,
            "the client never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // time for anything the client still held to reach the server
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for i in 0..10 {
        let key = format!("w{i}");
        assert_eq!(
            cache.get::<String>(&key).await.unwrap(),
            None,
            "{key}: a write reported as timed out was applied after the restart"
        );
    }
}
