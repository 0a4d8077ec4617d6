//! The reliability suite (`cache_core::reliability_tests!`) against one memcached server
//! (`CACHE_TEST_MEMCACHED_URL`) and three (`CACHE_TEST_MEMCACHED_CLUSTER_URL`), each with and
//! without namespace generations (without them, scoped `clear` is `Unsupported` and its case
//! checks exactly that).

use cache_memcached::{MemcachedBackend, MemcachedConfig};

async fn backend(var: &str, generations: bool) -> Option<MemcachedBackend> {
    let url = cache_core::testkit::server_url(var)?;
    let backend = MemcachedConfig::from_url(&url)
        .expect("a memcached:// URL")
        .into_builder()
        .namespace_generations(generations)
        .build()
        .await
        .expect("the test memcached answers");
    Some(backend)
}

mod plain {
    cache_core::reliability_tests!(super::backend("CACHE_TEST_MEMCACHED_URL", false));
}

mod generations {
    cache_core::reliability_tests!(super::backend("CACHE_TEST_MEMCACHED_URL", true); serializers {
        stored_garbage_msgpack => cache_serde::MsgPack,
        stored_garbage_cbor => cache_serde::Cbor,
    });
}

mod three_servers_generations {
    cache_core::reliability_tests!(super::backend("CACHE_TEST_MEMCACHED_CLUSTER_URL", true));
}
