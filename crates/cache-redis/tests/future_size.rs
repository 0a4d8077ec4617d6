//! Every call through `dyn Backend` moves its future into a box: the hot commands' futures
//! stay a little above fred's own (about 5 KiB), with the cluster detour and the per-slot
//! reads behind boxes of their own, on every topology the backend serves.

use cache_core::testkit::{assert_command_futures_within, server_url};
use cache_redis::RedisConfig;

/// fred's `GET` future alone is about 5 KiB optimized, 7 KiB in a debug build.
const BOUND: usize = 12 * 1024;

async fn assert_small(var: &str) {
    let Some(url) = server_url(var) else { return };
    let backend = RedisConfig::from_url(&url)
        .expect("a redis URL")
        .into_builder()
        .build()
        .await
        .expect("connect");
    assert_command_futures_within(&backend, BOUND);
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_a_standalone_server() {
    assert_small("CACHE_TEST_REDIS_URL").await;
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_a_cluster() {
    assert_small("CACHE_TEST_REDIS_CLUSTER_URL").await;
}
