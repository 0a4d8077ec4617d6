//! The conformance suite against one memcached server (`CACHE_TEST_MEMCACHED_URL`), once with
//! the default settings, once with namespace generations (scoped `clear`), and once with
//! generations through the request-coalescing layer.

use cache_memcached::{MemcachedBackend, MemcachedConfig};

async fn backend(generations: bool) -> Option<MemcachedBackend> {
    let url = cache_core::testkit::server_url("CACHE_TEST_MEMCACHED_URL")?;
    let backend = MemcachedConfig::from_url(&url)
        .expect("CACHE_TEST_MEMCACHED_URL is a memcached:// URL")
        .into_builder()
        .namespace_generations(generations)
        .build()
        .await
        .expect("memcached at CACHE_TEST_MEMCACHED_URL answers");
    Some(backend)
}

mod plain {
    cache_core::conformance_tests!(super::backend(false));
}

mod generations {
    cache_core::conformance_tests!(super::backend(true));
}

/// Through the request-coalescing layer, with generations: single-key reads go down as
/// multi-gets.
mod coalesced {
    cache_core::conformance_tests!(async {
        super::backend(true).await.map(|b| {
            cache_core::layer::Layer::layer(
                &cache_core::layer::CoalesceLayer::new(),
                std::sync::Arc::new(b),
            )
        })
    });
}

/// The backend names its (first) server for telemetry: `server.address` and `server.port`.
#[tokio::test]
async fn the_endpoint_is_the_first_server() {
    let Some(backend) = backend(false).await else {
        return;
    };
    let url = cache_core::testkit::server_url("CACHE_TEST_MEMCACHED_URL").unwrap();
    let first = url
        .trim_start_matches("memcached://")
        .split([',', '/', '?'])
        .next()
        .unwrap()
        .to_owned();
    let (host, port) = first.rsplit_once(':').unwrap();
    let endpoint = cache_core::Backend::endpoint(&backend).expect("a server");
    assert_eq!(endpoint.address, host);
    assert_eq!(endpoint.port, Some(port.parse().unwrap()));
}
