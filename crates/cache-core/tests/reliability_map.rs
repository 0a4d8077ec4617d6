//! The reliability suite against the reference `MapBackend`: proves the suite itself.

cache_core::reliability_tests!(async { Some(cache_core::testkit::MapBackend::new()) });
