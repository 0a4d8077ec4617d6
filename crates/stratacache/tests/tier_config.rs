//! A tier described as data: the `tier…` URL parameters and the `[tier]` table, their
//! defaults and their errors.
#![cfg(all(feature = "tiered", feature = "memory", feature = "redis"))]

use std::time::{Duration, Instant};

use cache_core::testkit::server_url;
use stratacache::{CacheConfig, ErrorKind, Locality, from_url};

async fn refused(url: &str, mentions: &str) {
    let err = from_url(url).await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains(mentions),
        "{err:?} should mention {mentions}"
    );
}

#[tokio::test]
async fn a_url_puts_a_local_level_in_front_of_the_backend() {
    let cache = from_url("memory://?namespace=t&tier=none&tier_max_entries=100&tier_local_ttl=5s")
        .await
        .unwrap();
    cache.set("k", &1).await.unwrap();
    let local: Option<i32> = cache
        .with_locality(Locality::LocalOnly)
        .get("k")
        .await
        .unwrap();
    assert_eq!(local, Some(1), "the write left a local copy");
    let plain = from_url("memory://?namespace=t").await.unwrap();
    plain.set("k", &1).await.unwrap();
    let local: Option<i32> = plain
        .with_locality(Locality::LocalOnly)
        .get("k")
        .await
        .unwrap();
    assert_eq!(local, Some(1), "without a tier, locality changes nothing");
}

#[tokio::test]
async fn bad_tier_settings_are_refused_naming_them() {
    refused("memory://?tier=sometimes", "tracking, pubsub or none").await;
    refused("memory://?tier=none&tier_max_entries=0", "max_entries").await;
    refused("memory://?tier=none&tier_max_bytes=0", "max_bytes").await;
    refused("memory://?tier=none&tier_local_ttl=2h", "local_ttl").await;
    refused("memory://?tier=none&tier_local_ttl=soon", "tier_local_ttl").await;
    refused(
        "memory://?tier_max_entries=10",
        "`invalidation` is required",
    )
    .await;
    refused("memory://?tier=tracking", "Redis URL").await;
    refused("memory://?namespace=t&tier=pubsub", "backplane").await;
    refused("memory://?tier=none&tier=pubsub", "given twice").await;
}

#[tokio::test]
async fn a_backplane_that_does_not_connect_fails_the_build_quickly() {
    let started = Instant::now();
    let err =
        from_url("memory://?namespace=t&tier=pubsub&tier_backplane=redis%3A%2F%2F127.0.0.1%3A1")
            .await
            .expect_err("nothing listens on port 1");
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_tier_table_reads_from_a_config_file_and_shows_without_secrets() {
    let config: CacheConfig = toml::from_str(
        r#"
        url = "memory://"
        namespace = "users"

        [tier]
        invalidation = "none"
        max_entries = 1000
        local_ttl = "10s"
        "#,
    )
    .unwrap();
    let cache = config.build().await.unwrap();
    cache.set("42", &"Ada").await.unwrap();
    let local: Option<String> = cache
        .with_locality(Locality::LocalOnly)
        .get("42")
        .await
        .unwrap();
    assert_eq!(local.as_deref(), Some("Ada"));

    let typo: Result<CacheConfig, _> =
        toml::from_str("url = \"memory://\"\n[tier]\ninvalidation = \"none\"\nmax_entry = 1\n");
    assert!(typo.unwrap_err().to_string().contains("max_entry"));

    let shown: CacheConfig = toml::from_str(
        r#"
        url = "memcached://127.0.0.1:1"
        [tier]
        invalidation = "pubsub"
        backplane = "redis://app:s3cret@bus:6379"
        channel = "c"
        "#,
    )
    .unwrap();
    let json = serde_json::to_string(&shown).unwrap();
    assert!(!json.contains("s3cret"), "{json}");
    assert!(json.contains("redis://***@bus:6379"), "{json}");
    assert!(!format!("{shown:?}").contains("s3cret"));

    let both = CacheConfig::new("memory://?tier=none").tier(stratacache::TierConfig::new(
        stratacache::InvalidationName::None,
    ));
    let err = both.build().await.unwrap_err();
    assert!(err.to_string().contains("`tier` is set both"), "{err}");
}

/// Redis with client tracking and with a pub/sub backplane, from URLs: a write by one cache
/// reaches the local copy of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_urls_with_tracking_and_pubsub_keep_two_caches_coherent() {
    let Some(base) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    for channel in ["tracking", "pubsub"] {
        let ns = cache_core::testkit::random_namespace();
        let url = format!(
            "{base}?namespace={ns}&tier={channel}&tier_heartbeat=100ms&tier_heartbeat_timeout=500ms"
        );
        let (a, b) = (from_url(&url).await.unwrap(), from_url(&url).await.unwrap());
        a.set("k", &1).await.unwrap();
        assert_eq!(b.get::<i32>("k").await.unwrap(), Some(1));
        a.set("k", &2).await.unwrap();
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            if b.get::<i32>("k").await.unwrap() == Some(2) {
                break;
            }
            assert!(
                Instant::now() < end,
                "{channel}: the change never reached b"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.clear().await.unwrap();
        b.clear().await.unwrap();
    }
}

/// Client tracking needs RESP3: a URL that does not name a protocol gets it for the tier's
/// backend, one that asks for RESP2 is refused with the reason.
#[tokio::test]
async fn tracking_from_a_url_speaks_resp3_unless_told_otherwise() {
    let Some(base) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let ns = cache_core::testkit::random_namespace();
    let cache = from_url(&format!("{base}?namespace={ns}&tier=tracking"))
        .await
        .expect("tracking over the default protocol");
    cache.set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    cache.clear().await.unwrap();
    refused(
        &format!("{base}?namespace={ns}&protocol=resp2&tier=tracking"),
        "RESP3",
    )
    .await;
}
