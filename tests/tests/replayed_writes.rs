//! A write whose connection breaks while it is in flight must not land later, after an
//! invalidation that went over a healthy connection (the resurrected-invalidation bug).
//!
//! A private `redis-server` behind a [`FaultProxy`], a Redis backend with a pool of two
//! connections. Each trial: the reply to `set(k, old)` is cut (so its connection breaks with
//! the command in flight); `delete(k)` then runs and succeeds while the broken connection is
//! being replaced (over whichever connection the backend picks); once it is replaced, `k`
//! must not hold `old`. In turn: the caller still waiting for its `set`; the caller's deadline
//! passed before the reconnect; and a `set(k, old)` sent while its connection is being
//! replaced (broken by a write of another key of the same hash slot), whose caller gave up
//! before the reconnect.

use std::time::{Duration, Instant};

use cache_core::{Cache, Json};
use cache_test_fixtures::{Server, ServerKind};
use stratacache_tests::FaultProxy;
use stratacache_tests::backends::{self, Kind, Setup};

const TRIALS: usize = 12;

/// Waits until the proxy counted `cuts` cut replies (bounded).
async fn wait_for_cut(proxy: &FaultProxy, cuts: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats().cuts < cuts {
        assert!(Instant::now() < deadline, "the armed cut never fired");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `delete(k)`, retried (bounded) while it lands on the broken connection.
async fn delete(cache: &Cache<Json>, key: &str) {
    for _ in 0..50 {
        if cache.delete(key).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("delete({key}) never succeeded");
}

/// Reads `k` once both connections work again (every call of a few rounds succeeds).
async fn settled_read(cache: &Cache<Json>, key: &str) -> Option<String> {
    // longer than the reconnect delay (100 ms to 1 s) plus a replay
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..100 {
        let a = cache.get::<String>(key).await;
        let b = cache.get::<String>(key).await;
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b, "the two connections disagree");
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the backend did not recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_mid_flight_never_lands_after_a_later_delete() {
    let Some(server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let proxy = FaultProxy::start(&server.address()).await.unwrap();
    let url = Kind::Redis.url_for(&server.address());
    let backend = backends::connect(Kind::Redis, &url, &proxy.address(), &Setup::pool(2)).await;
    let cache = Cache::builder(backend)
        .namespace("replay")
        .timeout(Duration::from_secs(10))
        .build();

    let mut resurrected = Vec::new();
    for trial in 0..TRIALS {
        let variant = trial % 3;
        let waiting = variant == 0;
        // a hash tag, so that `{key}breaker` shares the key's slot (and connection)
        let key = format!("{{t{trial}}}");
        let cuts = proxy.stats().cuts;
        proxy.cut_next_reply(0);
        let set_result = if waiting {
            // the caller waits for its set while the delete runs
            let writer = cache.clone();
            let k = key.clone();
            let set = tokio::spawn(async move { writer.set(&k, &"old").await });
            wait_for_cut(&proxy, cuts + 1).await;
            delete(&cache, &key).await;
            set.await.unwrap()
        } else if variant == 2 {
            // the connection breaks under a write of another key of the same slot; a read goes
            // in between (pools that take turns then send the next call to the broken
            // connection again); the set waits for the reconnect and its caller gives up
            let breaker = cache
                .with_timeout(Duration::from_millis(30))
                .set(&format!("{key}breaker"), &"x")
                .await;
            let _ = breaker;
            wait_for_cut(&proxy, cuts + 1).await;
            let _ = cache.get::<String>("unrelated").await;
            let r = cache
                .with_timeout(Duration::from_millis(30))
                .set(&key, &"old")
                .await;
            delete(&cache, &key).await;
            r
        } else {
            // the caller's deadline passes before the broken connection is replaced
            let r = cache
                .with_timeout(Duration::from_millis(30))
                .set(&key, &"old")
                .await;
            wait_for_cut(&proxy, cuts + 1).await;
            delete(&cache, &key).await;
            r
        };
        let after = settled_read(&cache, &key).await;
        println!(
            "trial {trial} ({}): set {:?}, afterwards {after:?}",
            [
                "caller waiting",
                "caller timed out",
                "queued, caller timed out"
            ][variant],
            set_result.as_ref().map_err(|e| e.kind())
        );
        if after.is_some() {
            resurrected.push(trial);
        }
    }
    println!(
        "FIGURE: {TRIALS} writes cut mid-flight, then deleted: {} \
         came back",
        resurrected.len()
    );
    assert!(
        resurrected.is_empty(),
        "a write cut mid-flight landed after a later delete in trials {resurrected:?}"
    );
}
