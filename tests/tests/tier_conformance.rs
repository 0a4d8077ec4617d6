//! The conformance suite over a tier in front of a real server, with its channel: Redis with
//! client tracking, Redis with a pub/sub backplane, Memcached with a pub/sub backplane on a
//! Redis beside it. One instance per case; the coherence of several is in
//! `tier_coherence.rs`.

use std::sync::Arc;

use cache_core::Backend;
use stratacache_tests::tiers::{self, Options, TierSetup};

async fn tiered(setup: TierSetup) -> Option<Arc<dyn Backend>> {
    if !setup.available() {
        return None;
    }
    let channel = cache_core::testkit::random_namespace();
    // tracking of every key: the suite picks its namespaces case by case
    Some(
        tiers::stack(setup, None, &channel, &Options::default())
            .await
            .0,
    )
}

mod redis_tracking {
    cache_core::conformance_tests!(super::tiered(super::TierSetup::RedisTracking));
}

mod redis_pubsub {
    cache_core::conformance_tests!(super::tiered(super::TierSetup::RedisPubSub));
}

mod memcached_pubsub {
    cache_core::conformance_tests!(super::tiered(super::TierSetup::MemcachedPubSub));
}
