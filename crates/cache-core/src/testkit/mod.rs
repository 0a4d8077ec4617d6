//! The conformance suite every backend runs (feature `testkit`; not covered by semver).
//!
//! Each rule of the behaviour contract is one `pub async fn` in [`cases`], named
//! `<operation>_<expected behaviour>`. A backend crate runs them all with one macro call in
//! its `tests/conformance.rs`:
//!
//! ```ignore
//! cache_core::conformance_tests!(async { Some(my_backend::MyBackend::new()) });
//! ```
//!
//! The expression is awaited by each test and gives `Option<impl IntoBackend>`; `None` means
//! "server not configured" (see [`server_url`]), and the test returns after the skip line
//! has been printed. Every case uses its own random namespace, so cases run in parallel
//! against one server. Cases read the backend's [`Capability`] and, where an operation is
//! switched off, check that the cache refuses it with `Unsupported` instead.
//!
//! [`reliability`] holds the heavier checks (scoped `clear` among 100,000 keys of other
//! namespaces, bad input that must change nothing), run the same way by
//! [`reliability_tests!`](crate::reliability_tests) in each backend crate's
//! `tests/reliability.rs`.

pub mod cases;
mod future_size;
mod line_proxy;
mod map_backend;
pub mod reliability;
mod sink;

use std::sync::Arc;
use std::time::Duration;

pub use self::future_size::{assert_command_futures_within, command_future_sizes};
pub use self::line_proxy::LineProxy;
pub use self::map_backend::MapBackend;
pub use self::sink::{RecordingSink, SinkEvent};
use crate::{Backend, Cache, CacheBuilder, Capability, IntoBackend, Json};

/// One conformance case's view of the backend under test.
#[derive(Debug, Clone)]
pub struct Harness {
    backend: Arc<dyn Backend>,
    namespace: String,
}

impl Harness {
    /// A harness over `backend` with a fresh random namespace.
    pub fn new(backend: impl IntoBackend) -> Self {
        Harness {
            backend: backend.into_backend(),
            namespace: random_namespace(),
        }
    }

    /// The backend under test.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The backend's capability.
    pub fn capability(&self) -> Capability {
        self.backend.capability()
    }

    /// This case's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A builder over the backend, in this case's namespace.
    pub fn builder(&self) -> CacheBuilder<Json> {
        Cache::builder(self.backend.clone()).namespace(self.namespace.clone())
    }

    /// A cache over the backend, in this case's namespace, with default settings.
    pub fn cache(&self) -> Cache<Json> {
        self.builder().build()
    }

    /// A short TTL the backend can express exactly: 300 ms with millisecond precision, else
    /// 1 s.
    pub fn short_ttl(&self) -> Duration {
        if self.capability().ttl_millis {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(1)
        }
    }

    /// Sleeps until an entry written now with `ttl` must have expired on this backend.
    pub async fn sleep_past(&self, ttl: Duration) {
        let margin = if self.capability().ttl_millis {
            Duration::from_millis(150)
        } else {
            // whole-second clocks may expire up to a second late
            Duration::from_millis(1_300)
        };
        tokio::time::sleep(ttl + margin).await;
    }
}

/// A key builder that joins namespace and key with `|` (`ns|key`): its namespace prefix
/// (`ns|`) is not a group (`name:`), so a backend with namespace generations cannot clear
/// it and says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeKeyBuilder;

impl crate::KeyBuilder for PipeKeyBuilder {
    fn build<'a>(
        &self,
        key: &'a str,
        ns: Option<&str>,
    ) -> crate::Result<std::borrow::Cow<'a, str>> {
        Ok(format!("{}|{key}", ns.unwrap_or("")).into())
    }

    fn namespace_prefix(&self, ns: &str) -> Option<String> {
        Some(format!("{ns}|"))
    }
}

/// A namespace no other case uses: `t` and 16 hex digits.
pub fn random_namespace() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

/// Random printable passwords (every character from space to `~`, `@ / ? # : %` included),
/// for tests that a secret never shows in `Debug`, `Display` or an error. A xorshift
/// generator: the same seed gives the same passwords on every run.
///
/// ```
/// use cache_core::testkit::Passwords;
///
/// let mut passwords = Passwords::new(7);
/// let password = passwords.password();
/// assert!((8..32).contains(&password.len()));
/// assert!(password.chars().all(|c| (' '..='~').contains(&c)));
/// assert_eq!(Passwords::new(7).password(), password);
/// ```
#[derive(Debug, Clone)]
pub struct Passwords {
    state: u64,
}

impl Passwords {
    /// A generator starting from `seed` (not zero).
    pub fn new(seed: u64) -> Self {
        Passwords { state: seed }
    }

    /// The next raw number.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A printable ASCII character, space to `~`.
    pub fn char(&mut self) -> char {
        char::from(0x20 + (self.next_u64() % 95) as u8)
    }

    /// A password of 8 to 31 printable characters.
    pub fn password(&mut self) -> String {
        let len = 8 + (self.next_u64() % 24) as usize;
        (0..len).map(|_| self.char()).collect()
    }
}

/// The URL of a test server from environment variable `var`.
///
/// Set: returns it. Unset: with `CI` set, panics (a CI run must never pass without its
/// server); otherwise prints one loud `SKIPPED` line and returns `None`.
///
/// # Panics
/// When `var` is unset and `CI` is set.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{var} is not set, and CI requires this test's server: run `cargo x test`");
            }
            eprintln!(
                "SKIPPED: {var} is not set; start the servers with `cargo x services up` or run `cargo x test`"
            );
            None
        }
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each calling
/// [`cases`]`::<name>` with a fresh [`Harness`] over the backend that `$factory` (an
/// expression evaluating to a future of `Option<impl IntoBackend>`) gives.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_cases!($factory;
            get_missing_returns_none,
            set_then_get_returns_value,
            get_stored_null_is_a_value_not_a_miss,
            set_overwrites_value_and_ttl,
            add_stores_when_absent,
            add_existing_key_is_already_exists_and_keeps_value,
            add_is_atomic_under_contention,
            multi_get_keeps_order_length_and_misses,
            multi_get_empty_input_is_empty,
            multi_get_allows_duplicate_keys,
            multi_set_stores_every_pair,
            multi_set_empty_input_is_ok,
            multi_set_applies_ttl_to_every_key,
            multi_set_refuses_bad_input_without_writing,
            delete_returns_count,
            multi_delete_returns_count,
            exists_reports_presence,
            exists_does_not_write,
            increment_missing_key_starts_at_delta,
            increment_adds_delta_to_existing_counter,
            increment_negative_results_are_exact,
            increment_results_are_exact_across_the_i64_range,
            increment_overflow_is_invalid_argument_and_value_untouched,
            increment_non_integer_is_invalid_argument_and_value_untouched,
            increment_keeps_ttl,
            increment_is_atomic_under_contention,
            counter_reads_back_right_or_errors_with_every_serializer,
            expire_sets_ttl_on_existing_key,
            expire_missing_key_returns_false,
            expire_never_removes_expiry_and_answers_true,
            ttl_distinguishes_missing_no_expiry_and_remaining,
            expired_entry_is_never_returned,
            ttl_keeps_backend_precision,
            get_with_ttl_reads_values_with_their_remaining_lifetime,
            zero_ttl_is_invalid_argument_and_writes_nothing,
            default_ttl_applies_and_per_call_ttl_overrides,
            clear_removes_only_its_namespace,
            clear_escapes_glob_characters_in_namespace,
            clear_without_namespace_follows_store_ownership,
            namespace_override_per_call,
            empty_namespace_override_removes_namespace,
            namespaces_never_collide,
            custom_key_builder_receives_key_and_resolved_namespace,
            empty_key_is_invalid_argument,
            long_key_is_stored_or_refused_clearly,
            undecodable_bytes_are_a_serialization_error_naming_the_key,
            per_call_serializer_override,
            per_call_encode_and_decode_functions,
            binary_values_round_trip_exactly,
            timeout_fires_and_next_call_succeeds,
            zero_timeout_disables_deadline,
            plugins_run_in_order_with_outcome,
            compare_and_set_writes_only_on_match,
            compare_and_delete_removes_only_on_match,
            lock_has_one_owner_and_only_the_owner_releases,
            lock_lease_expiry_never_lets_the_old_holder_touch_the_new_lock,
            lock_excludes_concurrent_holders,
            optimistic_lock_writes_only_an_unchanged_value,
            get_or_set_runs_loader_once_for_concurrent_callers,
            get_or_set_returns_stored_value_without_loading,
            get_or_set_loader_error_reaches_every_waiter_and_is_not_cached,
            get_or_set_many_loads_each_missing_key_once,
            get_or_set_many_loader_error_reaches_waiters_and_is_not_cached,
            read_through_reads_values_written_without_the_envelope,
            unreadable_envelope_is_a_serialization_error_naming_the_key,
            get_or_load_stores_under_the_loaders_ttl,
            optional_loaders_cache_nothing_or_a_negative_entry,
            fail_safe_serves_the_stale_value_when_the_loader_fails,
            soft_and_hard_timeouts_bound_the_loader,
            eager_refresh_keeps_a_hot_key_from_missing,
            lease_lets_one_of_two_caches_load,
            read_through_events_reach_plugins,
            get_or_set_many_caches_keys_not_found_as_negative_entries,
            tags_invalidated_entries_are_misses_and_others_untouched,
            tags_multi_get_mixes_invalidated_and_kept_entries,
            tags_read_through_loads_again_after_invalidation,
            tags_envelope_bytes_round_trip,
            tags_are_refused_without_tags_and_validated,
            tags_other_caches_see_invalidations_within_refresh,
            raw_is_supported_or_refused,
            close_is_idempotent_and_later_calls_are_closed,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = ($factory).await else { return };
                $crate::testkit::cases::$case($crate::testkit::Harness::new(backend)).await;
            }
        )*
    };
}

/// Runs `future` to completion on this thread without any runtime (polling in a loop), to
/// check what a call does outside Tokio.
pub fn block_on_without_runtime<F: std::future::Future>(future: F) -> F::Output {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
