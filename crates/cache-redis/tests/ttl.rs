//! `ttl()` of a key in its last millisecond (`CACHE_TEST_REDIS_URL`).

use std::time::{Duration, Instant};

use cache_core::testkit::server_url;
use cache_core::{Cache, KeyTtl, Ttl};
use cache_redis::RedisConfig;

/// Redis answers `PTTL` 0 for a key that is still there in the millisecond it expires. A live
/// key always reports at least 1 ms, as the memory backend does (and memcached, 1 s): zero
/// remaining would read as "expired" while `get` still returns the value.
#[tokio::test]
async fn ttl_of_a_live_key_is_never_zero() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let backend = RedisConfig::from_url(&url)
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend)
        .namespace(format!("ttl-last-ms-{}", std::process::id()))
        .build();
    let (mut samples, mut last_ms_samples) = (0u32, 0u32);
    for trial in 0..40 {
        let key = format!("k{trial}");
        cache
            .with_ttl(Ttl::After(Duration::from_millis(3)))
            .set(&key, &1)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match cache.ttl(&key).await.unwrap() {
                KeyTtl::Missing => break,
                KeyTtl::Remaining(d) => {
                    samples += 1;
                    if d <= Duration::from_millis(1) {
                        last_ms_samples += 1;
                    }
                    assert!(
                        d >= Duration::from_millis(1),
                        "a live key reported {d:?} remaining (trial {trial})"
                    );
                }
                KeyTtl::NoExpiry => panic!("the key was set with a TTL"),
            }
            assert!(Instant::now() < deadline, "the key did not expire");
        }
    }
    println!("FIGURE: {samples} ttl samples, {last_ms_samples} in the last millisecond");
}
