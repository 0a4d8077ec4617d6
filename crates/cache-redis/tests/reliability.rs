//! The reliability suite (`cache_core::reliability_tests!`) against a standalone redis-server
//! (`CACHE_TEST_REDIS_URL`) and a Redis Cluster (`CACHE_TEST_REDIS_CLUSTER_URL`).

use cache_core::testkit::server_url;
use cache_redis::{RedisBackend, RedisConfig, RedisMode};

async fn backend(var: &str) -> Option<RedisBackend> {
    let url = server_url(var)?;
    let config = RedisConfig::from_url(&url).expect("a redis URL");
    if var == "CACHE_TEST_REDIS_CLUSTER_URL" {
        assert_eq!(config.mode, RedisMode::Cluster, "{var} is a cluster URL");
    }
    Some(
        config
            .into_builder()
            .build()
            .await
            .expect("connect to the test server"),
    )
}

mod standalone {
    cache_core::reliability_tests!(super::backend("CACHE_TEST_REDIS_URL"); serializers {
        stored_garbage_msgpack => cache_serde::MsgPack,
        stored_garbage_cbor => cache_serde::Cbor,
    });
}

mod cluster {
    cache_core::reliability_tests!(super::backend("CACHE_TEST_REDIS_CLUSTER_URL"); serializers {
        stored_garbage_msgpack => cache_serde::MsgPack,
        stored_garbage_cbor => cache_serde::Cbor,
    });
}

/// Building a backend returns once its connections are up, however quickly they come up:
/// 50 rounds of 8 backends of 4 connections built at once, each build bounded (a hang, not
/// a speed requirement). fred announces a finished connection only to waiters that
/// subscribed before it finished, so a build that looked at the client between the two
/// waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_a_backend_never_misses_its_connections_coming_up() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}pool_size=4");
    for round in 0..50 {
        let mut builds = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let config = RedisConfig::from_url(&url).expect("a redis URL");
            builds.spawn(async move {
                tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    config.into_builder().build(),
                )
                .await
            });
        }
        while let Some(done) = builds.join_next().await {
            let built = done.expect("a build task");
            let backend = built
                .unwrap_or_else(|_| panic!("round {round}: a build hung for 20 s"))
                .expect("connect to the test server");
            drop(backend);
        }
    }
}

/// A clear cut short by its deadline says that it is incomplete and how many keys it had
/// removed, and `clear` again finishes it. A clear without a deadline of its own ignores the
/// cache's per-command timeout: the cache here has 1 ms, and a 30,000-key clear still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_clear_says_how_far_it_got_and_clear_again_finishes() {
    use std::time::Duration;

    use bytes::Bytes;
    use cache_core::{Cache, ErrorKind, RawBytes};

    const KEYS: usize = 30_000;
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let backend = RedisConfig::from_url(&url)
        .expect("a redis URL")
        .into_builder()
        .build()
        .await
        .expect("connect to the test server");
    let cache = Cache::builder(backend)
        .namespace(cache_core::testkit::random_namespace())
        .serializer(RawBytes)
        .timeout(Duration::from_millis(1))
        .build();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let patient = cache.with_timeout(Duration::from_secs(30));
    let mut interrupted = 0;
    for trial in 0..5 {
        for chunk in keys.chunks(1000) {
            patient
                .multi_set(chunk.iter().map(|k| (k.as_str(), Bytes::from_static(b"v"))))
                .await
                .expect("write the namespace");
        }
        match cache.with_timeout(Duration::from_millis(2)).clear().await {
            // a fast machine may finish within the deadline
            Ok(removed) => assert_eq!(removed, Some(KEYS as u64)),
            Err(e) => {
                interrupted += 1;
                assert_eq!(e.kind(), ErrorKind::Timeout, "{e:#}");
                assert!(e.to_string().contains("incomplete"), "{e}");
                let reported: u64 = e
                    .context_value("removed")
                    .expect("the error says how many keys were removed")
                    .parse()
                    .expect("a count");
                let left: Vec<Option<Bytes>> = patient
                    .multi_get(keys.iter().map(String::as_str))
                    .await
                    .expect("read the namespace");
                let gone = left.iter().filter(|v| v.is_none()).count() as u64;
                // a page whose answer the deadline cut off is removed but not yet counted
                assert!(
                    reported <= gone,
                    "trial {trial}: reported {reported} removed, {gone} are gone"
                );
                assert!(
                    gone < KEYS as u64,
                    "trial {trial}: the clear was not cut short"
                );
            }
        }
        // no deadline of its own: the cache's 1 ms does not apply, and it finishes
        cache.clear().await.expect("clear again");
        let left: Vec<Option<Bytes>> = patient
            .multi_get(keys.iter().map(String::as_str))
            .await
            .expect("read the namespace");
        assert!(left.iter().all(Option::is_none), "trial {trial}: keys left");
    }
    assert!(
        interrupted > 0,
        "no 2 ms clear of {KEYS} keys was cut short in 5 trials"
    );
}
