//! Every call through `dyn Backend` moves its future into a box: the hot commands' futures
//! stay a little above fred's own (about 5 KiB), with the cluster detour and the per-slot
//! reads behind boxes of their own, on every topology the backend serves.

use cache_core::testkit::{command_future_sizes, server_url};
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
    let sizes = command_future_sizes(&backend);
    eprintln!("{var}: {sizes:?}");
    let large: Vec<_> = sizes.iter().filter(|(_, n)| *n > BOUND).collect();
    assert!(
        large.is_empty(),
        "futures above {BOUND} bytes: {large:?} (all: {sizes:?})"
    );
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_a_standalone_server() {
    assert_small("CACHE_TEST_REDIS_URL").await;
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_a_cluster() {
    assert_small("CACHE_TEST_REDIS_CLUSTER_URL").await;
}
