//! The conformance suite against the memory backend.

cache_core::conformance_tests!(async { Some(cache_memory::MemoryBackend::new()) });

/// The suite again on a tightly bounded store: bounds must not change any answer the suite
/// checks (every case stays far below the bound of its own keys).
mod bounded {
    cache_core::conformance_tests!(async {
        Some(
            cache_memory::MemoryBackend::new()
                .max_entries(50_000)
                .max_bytes(64 << 20),
        )
    });
}

/// The suite with namespace generations (`clear()` of a namespace is one increment), with
/// and without the background sweep.
mod generations {
    cache_core::conformance_tests!(async {
        Some(
            cache_memory::MemoryBuilder::new()
                .namespace_generations(true)
                .build(),
        )
    });

    mod swept {
        cache_core::conformance_tests!(async {
            Some(
                cache_memory::MemoryBuilder::new()
                    .max_entries(50_000)
                    .namespace_generations(true)
                    .generation_sweep(true)
                    .build(),
            )
        });
    }
}
