//! What a build without a backend's or serializer's feature says when a URL or config asks
//! for it: an error naming the feature to enable. `cargo x test` runs this file a second
//! time with only the `memory` feature, where these paths are live.

use stratacache::{
    AnySerializer, CacheConfig, CompressionName, ErrorKind, PluginConfig, SerializerName,
};

async fn config_error(config: CacheConfig) -> Option<String> {
    match config.build().await {
        Ok(_) => None,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
            Some(e.to_string())
        }
    }
}

#[tokio::test]
async fn missing_backend_features_are_named() {
    for (url, feature, on) in [
        ("redis://127.0.0.1:1", "redis", cfg!(feature = "redis")),
        (
            "valkey-cluster://127.0.0.1:1",
            "redis",
            cfg!(feature = "redis"),
        ),
        (
            "rediss://127.0.0.1:1",
            "redis-tls",
            cfg!(feature = "redis-tls"),
        ),
        (
            "memcached://127.0.0.1:1",
            "memcached",
            cfg!(feature = "memcached"),
        ),
    ] {
        if on {
            continue;
        }
        let e = config_error(CacheConfig::new(url)).await.unwrap();
        assert!(
            e.contains(&format!("`{feature}` feature of stratacache")),
            "{url}: {e}"
        );
    }
}

#[tokio::test]
async fn missing_serializer_and_plugin_features_are_named() {
    for name in [SerializerName::MsgPack, SerializerName::Cbor] {
        let e = config_error(CacheConfig::new("memory://").serializer(name)).await;
        match (name.is_available(), e) {
            (true, None) => {}
            (false, Some(e)) => {
                assert!(e.contains(&format!("`{name}` feature")), "{e}");
                assert!(AnySerializer::new(name).is_err());
            }
            (available, e) => panic!("{name}: available {available}, error {e:?}"),
        }
    }
    for c in [CompressionName::Zstd, CompressionName::Lz4] {
        let e = config_error(CacheConfig::new("memory://").compression(c)).await;
        match (c.is_available(), e) {
            (true, None) => {}
            (false, Some(e)) => assert!(e.contains(&format!("`{c}` feature")), "{e}"),
            (available, e) => panic!("{c}: available {available}, error {e:?}"),
        }
    }
    let e =
        config_error(CacheConfig::new("memory://").plugin(PluginConfig::Metrics { prefix: None }))
            .await;
    assert_eq!(e.is_some(), !cfg!(feature = "metrics"), "{e:?}");
    if let Some(e) = e {
        assert!(e.contains("`metrics` feature"), "{e}");
    }
}
