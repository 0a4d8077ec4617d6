//! The conformance suite over a tier: the local level in front of the memory backend, with no
//! channel (one instance), and with the local level bypassed per call. The suites over Redis
//! and Memcached with their channels are in the `stratacache-tests` crate.

use std::sync::Arc;

use cache_core::Backend;
use cache_core::layer::Layer;
use cache_memory::MemoryBackend;
use cache_tiered::TierLayer;

async fn tiered(max_entries: u64) -> Arc<dyn Backend> {
    let tier = TierLayer::builder()
        .max_entries(max_entries)
        .build()
        .await
        .expect("a tier with valid bounds builds");
    tier.layer(Arc::new(MemoryBackend::new()))
}

mod over_memory {
    cache_core::conformance_tests!(async { Some(super::tiered(10_000).await) });
}

/// A local level so small that most reads miss it: the remote path of every command.
mod over_memory_tiny_local {
    cache_core::conformance_tests!(async { Some(super::tiered(2).await) });
}
