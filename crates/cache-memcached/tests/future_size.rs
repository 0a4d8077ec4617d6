//! Every call through `dyn Backend` moves its future into a box: the hot commands' futures
//! stay small, on one server and on several.

use cache_core::testkit::{command_future_sizes, server_url};
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
    let sizes = command_future_sizes(&backend);
    eprintln!("{var}: {sizes:?}");
    let large: Vec<_> = sizes.iter().filter(|(_, n)| *n > BOUND).collect();
    assert!(
        large.is_empty(),
        "futures above {BOUND} bytes: {large:?} (all: {sizes:?})"
    );
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_one_server() {
    assert_small("CACHE_TEST_MEMCACHED_URL").await;
}

#[tokio::test]
async fn hot_command_futures_stay_small_on_several_servers() {
    assert_small("CACHE_TEST_MEMCACHED_CLUSTER_URL").await;
}
