//! The conformance suite against the reference `MapBackend`: proves the suite itself.

cache_core::conformance_tests!(async { Some(cache_core::testkit::MapBackend::new()) });
