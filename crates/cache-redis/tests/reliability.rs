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
