//! Workspace-level reliability tests of stratacache: fault injection against the Redis and
//! Memcached backends.
//!
//! The library holds what the test files share:
//!
//! - [`proxy`]: a TCP fault proxy that adds latency, stalls, resets connections and cuts
//!   replies, and counts the connections it carries;
//! - [`versioned`]: values that carry their key and version, and the freshness rule readers
//!   check them against;
//! - [`backends`]: the backends under test, built against any address;
//! - [`report`]: error tallies and the `FIGURE:` lines each scenario prints;
//! - [`workers`]: the worker processes of the cross-process scenarios, started together,
//!   and the `name=value` fields they print;
//! - [`clear_race`]: reads and writes racing `clear()`, and the check of what they saw.
//!
//! The private servers the scenarios kill and restart come from the `cache-test-fixtures`
//! package ([`backends::private_server`]).
//!
//! The scenarios are in `tests/`: `restart.rs` (a server killed and restarted under load),
//! `fail_safe_outage.rs` (`get_or_set` with fail-safe through a server's outage),
//! `proxy_faults.rs` (timeout storm, reply cut mid-value, stall), and, with worker processes
//! from `src/bin/`, `lock_processes.rs` (a lock across processes) and
//! `stampede_processes.rs` (one loader run per cold key across processes, a late fill that
//! must not overwrite a newer value) and `clear_processes.rs` (namespace generations: no
//! read in any process returns a value from before a clear that returned). Run them with the shared servers up:
//!
//! ```sh
//! cargo x services up
//! export CACHE_TEST_REDIS_URL=redis://127.0.0.1:16379 CACHE_TEST_MEMCACHED_URL=memcached://127.0.0.1:21211
//! cargo nextest run -p stratacache-tests --no-capture 2>&1 | grep '^FIGURE:'
//! ```

#![forbid(unsafe_code)]

pub mod backends;
pub mod clear_race;
pub mod proxy;
pub mod report;
pub mod tiers;
pub mod versioned;
pub mod workers;

pub use backends::{Kind, Setup};
pub use proxy::{FaultProxy, Mode, ProxyStats};
pub use report::{Figures, Tally};
