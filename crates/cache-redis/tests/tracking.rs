//! RESP3 client tracking (`RedisTracking`) against real servers: the shared one
//! (`CACHE_TEST_REDIS_URL`) for writes, deletes, expiry and the build errors, and private
//! `redis-server` processes for a flush, eviction under `maxmemory` and a restart.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_core::testkit::{RecordingSink, SinkEvent as Event, server_url};
use cache_core::tier::{Invalidated, Invalidator};
use cache_core::{Backend, CallContext, Command, ErrorKind, OpSet};
use cache_redis::fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface, Value};
use cache_redis::fred::types::{ClusterHash, CustomCommand};
use cache_redis::{RedisBackend, RedisBuilder, RedisTracking, RespProtocol};
use cache_test_fixtures::{Server, ServerKind};

/// How long a test waits for an event the server should send.
const WAIT: Duration = Duration::from_secs(5);

type Recorder = RecordingSink;

/// Waits until `key` was invalidated `times` times, up to [`WAIT`].
async fn wait_key(sink: &Recorder, key: &str, times: usize) -> bool {
    sink.wait_until(WAIT, |_| sink.count_key(key) >= times)
        .await
}

/// A prefix no other test uses.
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("trk-{tag}-{}-{nanos:x}:", std::process::id())
}

async fn backend(url: &str) -> RedisBackend {
    RedisBuilder::from_url(url)
        .unwrap()
        .protocol(RespProtocol::Resp3)
        .build()
        .await
        .expect("connect")
}

/// Another client of the server: a plain fred connection of its own.
async fn other_client(url: &str) -> cache_redis::fred::prelude::Client {
    let client = Builder::from_config(Config::from_url(url).unwrap())
        .build()
        .unwrap();
    client.init().await.expect("connect");
    client
}

async fn started(
    backend: &RedisBackend,
    prefixes: &[&str],
    heartbeat: Duration,
) -> (RedisTracking, Arc<Recorder>) {
    let tracking = backend
        .tracking()
        .prefixes(prefixes.iter().copied())
        .heartbeat(heartbeat)
        .heartbeat_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let sink = Arc::new(Recorder::default());
    tracking.start(sink.clone()).await.unwrap();
    assert_eq!(sink.events(), [Event::Connected], "connected once started");
    assert!(tracking.is_connected());
    sink.clear();
    (tracking, sink)
}

#[tokio::test]
async fn another_clients_set_delete_and_expire_reach_the_sink() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("others");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(500)).await;
    let other = other_client(&url).await;
    let key = format!("{prefix}k");

    let _: () = other.set(&key, "v1", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 1).await, "SET: {:?}", sink.events());
    let _: i64 = other.expire(&key, 100, None).await.unwrap();
    assert!(
        wait_key(&sink, &key, 2).await,
        "EXPIRE: {:?}",
        sink.events()
    );
    let _: i64 = other.del(&key).await.unwrap();
    assert!(wait_key(&sink, &key, 3).await, "DEL: {:?}", sink.events());

    // a key under no tracked prefix: nothing (the prefix's own keys still arrive, later)
    let outside = format!("{}k", unique("outside"));
    let _: () = other.set(&outside, "v", None, None, false).await.unwrap();
    let _: () = other.set(&key, "last", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 4).await, "{:?}", sink.events());
    assert_eq!(sink.count_key(&outside), 0, "{:?}", sink.events());
    assert!(!sink.events().contains(&Event::All), "{:?}", sink.events());

    let stats = tracking.stats();
    assert!(stats.messages >= 4 && stats.keys >= 4, "{stats:?}");
    assert_eq!((stats.flushes, stats.disconnects), (0, 0), "{stats:?}");
    let _: i64 = other.del(vec![key, outside]).await.unwrap();
    tracking.close().await.unwrap();
    tracking.close().await.unwrap();
}

/// The backend's own writes are reported too (tracking is on without `NOLOOP`): a tier drops
/// its local copy of a key it just wrote, and reads it again from the server.
#[tokio::test]
async fn the_backends_own_write_is_reported() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("own");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(500)).await;
    let key = format!("{prefix}k");
    let ctx = CallContext::new(Command::Set);
    backend
        .set(&ctx, &key, "v".into(), OpSet::default())
        .await
        .unwrap();
    assert!(wait_key(&sink, &key, 1).await, "{:?}", sink.events());
    backend
        .delete(&CallContext::new(Command::Delete), &key)
        .await
        .unwrap();
    assert!(wait_key(&sink, &key, 2).await, "{:?}", sink.events());
    tracking.close().await.unwrap();
}

#[tokio::test]
async fn a_key_expiring_is_reported() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("expiry");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(500)).await;
    let other = other_client(&url).await;
    let key = format!("{prefix}k");
    let _: () = other
        .set(&key, "v", Some(Expiration::PX(50)), None, false)
        .await
        .unwrap();
    assert!(
        wait_key(&sink, &key, 1).await,
        "the SET: {:?}",
        sink.events()
    );
    // the server's expiry cycle finds the key without anyone reading it
    assert!(
        wait_key(&sink, &key, 2).await,
        "the expiry: {:?}",
        sink.events()
    );
    let exists: i64 = other.exists(&key).await.unwrap();
    assert_eq!(exists, 0);
    tracking.close().await.unwrap();
}

#[tokio::test]
async fn tracking_every_key_covers_every_key() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let backend = backend(&url).await;
    let all = backend.tracking().build().unwrap();
    assert!(all.covers("anything") && all.covers(""));
    let some = backend.tracking().prefixes(["a:", "b:"]).build().unwrap();
    assert!(some.covers("a:1") && some.covers("b:") && !some.covers("c:1") && !some.covers("a"));
    assert_eq!(some.prefixes(), ["a:", "b:"]);
    // publish sends nothing
    let ctx = CallContext::new(Command::Set);
    some.publish(&ctx, Invalidated::Keys(&["a:1".to_owned()]))
        .await
        .unwrap();
    // close before start is fine, and start after close is refused
    some.close().await.unwrap();
    let e = some.start(Arc::new(Recorder::default())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn unsupported_setups_are_refused_at_build() {
    // RESP2
    if let Some(url) = server_url("CACHE_TEST_REDIS_URL") {
        let resp2 = RedisBuilder::from_url(&url)
            .unwrap()
            .protocol(RespProtocol::Resp2)
            .build()
            .await
            .unwrap();
        let e = resp2.tracking().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("RESP3"), "{e}");

        let generations = RedisBuilder::from_url(&url)
            .unwrap()
            .namespace_generations(true)
            .build()
            .await
            .unwrap();
        let e = generations.tracking().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("namespace_generations"), "{e}");

        let plain = backend(&url).await;
        let e = plain
            .tracking()
            .prefixes(["users:", "users:admin:"])
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("overlap"), "{e}");
        let e = plain.tracking().prefix("").build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let e = plain
            .tracking()
            .heartbeat(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    // a cluster (the clients need not be connected for the check)
    let config = Config::from_url("redis-cluster://127.0.0.1:1").unwrap();
    let client = Builder::from_config(config).build().unwrap();
    let cluster = RedisBackend::from_clients([client]).unwrap();
    let e = cluster.tracking().build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("Cluster"), "{e}");
}

/// Runs a command without arguments (on a private server only: `FLUSHDB`, `FLUSHALL`).
async fn run(client: &cache_redis::fred::prelude::Client, name: &'static str) {
    let command = CustomCommand::new_static(name, ClusterHash::FirstKey, false);
    let _: Value = client.custom(command, Vec::<Value>::new()).await.unwrap();
}

/// A private server, or `None` (after a SKIPPED line) when `redis-server` is missing.
fn private_server(extra: &[&str]) -> Option<Server> {
    Server::start(ServerKind::Redis, extra)
}

#[tokio::test]
async fn a_flush_invalidates_everything() {
    let Some(server) = private_server(&[]) else {
        return;
    };
    let url = server.url();
    let prefix = unique("flush");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(100)).await;
    let other = other_client(&url).await;
    let key = format!("{prefix}k");
    let _: () = other.set(&key, "v", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 1).await, "{:?}", sink.events());
    run(&other, "FLUSHDB").await;
    assert!(
        sink.wait_until(WAIT, |e| e.contains(&Event::All)).await,
        "{:?}",
        sink.events()
    );
    assert!(tracking.stats().flushes >= 1, "{:?}", tracking.stats());
    // and tracking goes on
    sink.clear();
    let _: () = other.set(&key, "v2", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 1).await, "{:?}", sink.events());
    run(&other, "FLUSHALL").await;
    assert!(
        sink.wait_until(WAIT, |e| e.contains(&Event::All)).await,
        "{:?}",
        sink.events()
    );
    tracking.close().await.unwrap();
}

#[tokio::test]
async fn an_eviction_under_maxmemory_is_reported() {
    let Some(server) =
        private_server(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-random"])
    else {
        return;
    };
    let url = server.url();
    let prefix = unique("evict");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(500)).await;
    let other = other_client(&url).await;
    let value = "x".repeat(4096);
    let keys: Vec<String> = (0..2000).map(|i| format!("{prefix}{i}")).collect();
    for key in &keys {
        let _: () = other
            .set(key, value.as_str(), None, None, false)
            .await
            .unwrap();
    }
    // every key was invalidated once by its SET; an evicted key once more
    let mut evicted = Vec::new();
    for key in &keys {
        let n: i64 = other.exists(key).await.unwrap();
        if n == 0 {
            evicted.push(key.clone());
        }
    }
    assert!(!evicted.is_empty(), "nothing was evicted");
    let last = keys.last().unwrap();
    assert!(wait_key(&sink, last, 1).await, "the last SET arrives");
    let reported = sink
        .wait_until(WAIT, |_| evicted.iter().all(|k| sink.count_key(k) >= 2))
        .await;
    let missing: Vec<&String> = evicted.iter().filter(|k| sink.count_key(k) < 2).collect();
    assert!(
        reported,
        "{} of {} evicted keys were not reported as evicted: {:?}",
        missing.len(),
        evicted.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    tracking.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_disconnects_then_tracking_resumes() {
    restart_with(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_disconnects_then_tracking_resumes_on_every_connection_of_a_pool() {
    restart_with(3).await;
}

async fn restart_with(pool_size: usize) {
    let Some(mut server) = private_server(&[]) else {
        return;
    };
    let url = server.url();
    let prefix = unique("restart");
    let backend = RedisBuilder::from_url(&url)
        .unwrap()
        .protocol(RespProtocol::Resp3)
        .pool_size(pool_size)
        .build()
        .await
        .unwrap();
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(100)).await;
    let key = format!("{prefix}k");
    {
        let other = other_client(&url).await;
        let _: () = other.set(&key, "v", None, None, false).await.unwrap();
        assert!(wait_key(&sink, &key, 1).await, "{:?}", sink.events());
        let _ = other.quit().await;
    }

    server.kill();
    assert!(
        sink.wait_until(WAIT, |e| e.contains(&Event::Disconnected))
            .await,
        "{:?}",
        sink.events()
    );
    assert!(!tracking.is_connected());
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| server.restart());
    assert!(
        sink.wait_until(WAIT, |e| {
            e.iter()
                .position(|x| *x == Event::Disconnected)
                .is_some_and(|d| e[d..].contains(&Event::Connected))
        })
        .await,
        "{:?}",
        sink.events()
    );
    assert!(tracking.is_connected(), "{:?}", sink.events());
    assert!(tracking.stats().disconnects >= 1, "{:?}", tracking.stats());

    // tracking was turned on again on every new connection
    sink.clear();
    let other = other_client(&url).await;
    let _: () = other.set(&key, "after", None, None, false).await.unwrap();
    assert!(
        wait_key(&sink, &key, pool_size).await,
        "{:?}",
        sink.events()
    );
    tracking.close().await.unwrap();
    assert_eq!(sink.events().last(), Some(&Event::Disconnected));
}

/// Each connection of a pool is tracked: a change is reported once per connection.
#[tokio::test]
async fn every_connection_of_a_pool_is_tracked() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("pool");
    let backend = RedisBuilder::from_url(&url)
        .unwrap()
        .protocol(RespProtocol::Resp3)
        .pool_size(3)
        .build()
        .await
        .unwrap();
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(500)).await;
    let other = other_client(&url).await;
    let key = format!("{prefix}k");
    let _: () = other.set(&key, "v", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 3).await, "{:?}", sink.events());
    let stats = tracking.stats();
    assert!(stats.messages >= 3 && stats.keys >= 3, "{stats:?}");
    let _: i64 = other.del(&key).await.unwrap();
    tracking.close().await.unwrap();
}

/// With no prefix every key is tracked; the tracker's own marker key is never passed on.
#[tokio::test]
async fn with_no_prefix_every_key_is_tracked() {
    let Some(server) = private_server(&[]) else {
        return;
    };
    let url = server.url();
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[], Duration::from_millis(50)).await;
    let other = other_client(&url).await;
    let _: () = other.set("any:key", "v", None, None, false).await.unwrap();
    let _: () = other.set("another", "v", None, None, false).await.unwrap();
    assert!(wait_key(&sink, "any:key", 1).await, "{:?}", sink.events());
    assert!(wait_key(&sink, "another", 1).await, "{:?}", sink.events());
    // a few heartbeats after the marker was written (and reported by the server)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = sink.events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Keys(keys)
            if keys.iter().any(|k| k.starts_with("stratacache:tracking:")))),
        "{events:?}"
    );
    assert!(!events.contains(&Event::All), "{events:?}");
    tracking.close().await.unwrap();
}

/// Closing the backend (`QUIT`) ends deliveries: the sink hears `disconnected`.
#[tokio::test]
async fn closing_the_backend_disconnects_the_sink() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("closing");
    let backend = backend(&url).await;
    let (tracking, sink) = started(&backend, &[&prefix], Duration::from_millis(100)).await;
    backend
        .close(&CallContext::new(Command::Close))
        .await
        .unwrap();
    assert!(
        sink.wait_until(WAIT, |e| e.contains(&Event::Disconnected))
            .await,
        "{:?}",
        sink.events()
    );
    assert!(!tracking.is_connected());
    assert_eq!(tracking.stats().disconnects, 1);
    tracking.close().await.unwrap();
    assert_eq!(
        sink.events()
            .iter()
            .filter(|e| **e == Event::Disconnected)
            .count(),
        1,
        "{:?}",
        sink.events()
    );
}

/// A server that stops answering (`CLIENT PAUSE`, on a private server) is taken as lost once
/// a heartbeat goes unanswered for `heartbeat_timeout`, and found again when answers return.
#[tokio::test]
async fn a_silent_server_disconnects_until_it_answers_again() {
    let Some(server) = private_server(&[]) else {
        return;
    };
    let url = server.url();
    let prefix = unique("silent");
    let backend = backend(&url).await;
    let tracking = backend
        .tracking()
        .prefix(&prefix)
        .heartbeat(Duration::from_millis(50))
        .heartbeat_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let sink = Arc::new(Recorder::default());
    tracking.start(sink.clone()).await.unwrap();
    sink.clear();
    let other = other_client(&url).await;
    let pause = CustomCommand::new_static("CLIENT PAUSE", ClusterHash::FirstKey, false);
    let paused_at = Instant::now();
    let _: Value = other
        .custom(pause, vec![Value::from(1500), Value::from("ALL")])
        .await
        .unwrap();
    assert!(
        sink.wait_until(WAIT, |e| e.contains(&Event::Disconnected))
            .await,
        "{:?}",
        sink.events()
    );
    let silent_for = paused_at.elapsed();
    assert!(
        silent_for < Duration::from_millis(1500),
        "noticed only after {silent_for:?}"
    );
    assert!(!tracking.is_connected());
    assert!(
        sink.wait_until(WAIT, |e| e.ends_with(&[Event::Connected]))
            .await,
        "{:?}",
        sink.events()
    );
    assert!(
        paused_at.elapsed() >= Duration::from_millis(1400),
        "connected while the server was still paused: {:?}",
        paused_at.elapsed()
    );
    // still tracked
    sink.clear();
    let key = format!("{prefix}k");
    let _: () = other.set(&key, "v", None, None, false).await.unwrap();
    assert!(wait_key(&sink, &key, 1).await, "{:?}", sink.events());
    assert_eq!(tracking.stats().disconnects, 1, "{:?}", tracking.stats());
    tracking.close().await.unwrap();
}

/// No password in the Debug output of a tracker or its builder, nor in what the sink hears.
#[tokio::test]
async fn the_password_never_shows() {
    let Some(server) = private_server(&["--requirepass", "tr4ck-s3cret"]) else {
        return;
    };
    let url = format!("redis://:tr4ck-s3cret@{}", server.address());
    let backend = backend(&url).await;
    let builder = backend.tracking().prefix("p:");
    let shown = format!("{builder:?}");
    let tracking = builder.build().unwrap();
    let shown = format!("{shown} {tracking:?} {:?}", tracking.stats());
    assert!(!shown.contains("tr4ck-s3cret"), "{shown}");
    let sink = Arc::new(Recorder::default());
    tracking.start(sink.clone()).await.unwrap();
    let shown = format!("{:?}", sink.events());
    assert!(!shown.contains("tr4ck-s3cret"), "{shown}");
    tracking.close().await.unwrap();
}

/// A server that refuses `CLIENT TRACKING` (here: by ACL) makes `start` fail with the
/// server's error, and nothing runs.
#[tokio::test]
async fn a_refused_client_tracking_fails_start() {
    let Some(server) = private_server(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
        "-client|tracking",
    ]) else {
        return;
    };
    let backend = backend(&server.url()).await;
    let tracking = backend.tracking().prefix("p:").build().unwrap();
    let sink = Arc::new(Recorder::default());
    let e = tracking.start(sink.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains("NOPERM"), "{e}");
    assert!(!tracking.is_connected());
    assert!(sink.events().is_empty(), "{:?}", sink.events());
    // nothing started: a second attempt fails alike
    let e = tracking.start(sink.clone()).await.unwrap_err();
    assert!(e.to_string().contains("NOPERM"), "{e}");
    tracking.close().await.unwrap();
}
