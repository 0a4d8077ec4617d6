//! Every call through `dyn Backend` moves its future into a box: the hot commands' futures
//! stay small, on one server and on several.

use cache_core::testkit::{assert_command_futures_within, server_url};
use cache_memcached::MemcachedConfig;

/// The largest, `increment`, is about 2.6 KiB.
const BOUND: usize = 4 * 1024;

async fn assert_small(var: &str) {
    let Some(url) = server_url(var) else { return };
    let backend = MemcachedConfig::from_url(&url)
        .expect("a memcached URL")
        .into_builder()
        .build()
        .await
        .expect("connect");
    assert_command_futures_within(&backend, BOUND);
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_one_server() {
    assert_small("CACHE_TEST_MEMCACHED_URL").await;
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_several_servers() {
    assert_small("CACHE_TEST_MEMCACHED_CLUSTER_URL").await;
}
