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
