//! The conformance suite over layered stacks: the memory backend wrapped in each shipped
//! layer that keeps the contract, configured to change nothing (retry with no faults below
//! it, chaos at rate 0, fail-open reads with a healthy backend, reads coalesced into
//! multi-gets). `TtlJitterLayer` is left
//! out: changing TTLs is its job.
//! A layer that breaks the contract fails these cases.

use std::sync::Arc;

use cache_core::Backend;
use cache_core::layer::{
    ChaosLayer, CoalesceLayer, FailOpenLayer, Layer, RetryLayer, TimeoutLayer,
};
use cache_memory::MemoryBackend;

fn memory() -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new())
}

/// Every shipped layer at once, in the order a service would stack them.
fn all_layers() -> Arc<dyn Backend> {
    let stack = ChaosLayer::new(1).layer(memory());
    let stack = RetryLayer::new().layer(stack);
    let stack = FailOpenLayer::new().layer(stack);
    let stack = CoalesceLayer::new().layer(stack);
    TimeoutLayer::new().layer(stack)
}

mod retry {
    cache_core::conformance_tests!(async {
        Some(cache_core::layer::Layer::layer(
            &super::RetryLayer::new(),
            super::memory(),
        ))
    });
}

mod chaos {
    cache_core::conformance_tests!(async {
        Some(cache_core::layer::Layer::layer(
            &super::ChaosLayer::new(42),
            super::memory(),
        ))
    });
}

mod fail_open {
    cache_core::conformance_tests!(async {
        Some(cache_core::layer::Layer::layer(
            &super::FailOpenLayer::new(),
            super::memory(),
        ))
    });
}

mod coalesce {
    cache_core::conformance_tests!(async {
        Some(cache_core::layer::Layer::layer(
            &super::CoalesceLayer::new(),
            super::memory(),
        ))
    });
}

mod stacked {
    cache_core::conformance_tests!(async { Some(super::all_layers()) });
}
