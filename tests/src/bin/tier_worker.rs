//! One instance of the cross-process tier coherence test: `tier_worker <setup> <namespace>
//! <writer|reader> <trials> <start_at_ms>`, where `<setup>` names a tier configuration of
//! [`stratacache_tests::tiers::TierSetup`] (`redis-tracking`, `redis-pubsub`, `memcached-pubsub`).
//!
//! Every instance is a cache with a local level in front of the shared server, kept coherent
//! by the setup's channel. From `start_at_ms` (wall clock):
//! - the **writer** waits 500 ms (the readers fill their local levels), then writes versions
//!   `1..=trials` of one key, 15–30 ms apart, and prints `trial=t w_start=µs w_end=µs` for each;
//! - a **reader** reads the key about every millisecond until the writer is done (plus one
//!   second) and prints, for every version it saw, `version=v first_start=µs last_start=µs
//!   reads=n`, then `violations=n` (reads that answered an older version than one this reader
//!   had already seen) and its tier's counters.
//!
//! Times are wall-clock microseconds since the epoch; all processes run on one machine.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stratacache_tests::tiers::{self, TierSetup};
use stratacache_tests::workers::sleep_until_unix_ms;

const KEY: &str = "coherent";
/// Time the readers get to fill their local levels before the first write.
const WARM_UP_MS: u64 = 500;
/// The longest pause between two writes.
const MAX_GAP_MS: u64 = 30;

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, setup, namespace, role, trials, start_at] = &args[..] else {
        eprintln!("usage: tier_worker <setup> <namespace> <writer|reader> <trials> <start_at_ms>");
        std::process::exit(2);
    };
    let setup = TierSetup::from_name(setup).unwrap_or_else(|| panic!("unknown setup {setup}"));
    let trials: u64 = trials.parse().expect("a trial count");
    let start_at: u64 = start_at.parse().expect("a start time in ms");
    let tier = tiers::instance(setup, namespace, tiers::Options::default()).await;
    sleep_until_unix_ms(start_at).await;
    match role.as_str() {
        "writer" => {
            sleep_until_unix_ms(start_at + WARM_UP_MS).await;
            for t in 1..=trials {
                let w_start = unix_us();
                tier.cache.set(KEY, &t).await.expect("the write succeeds");
                let w_end = unix_us();
                println!("trial={t} w_start={w_start} w_end={w_end}");
                let gap = 15 + (t * 7) % (MAX_GAP_MS - 15);
                tokio::time::sleep(Duration::from_millis(gap)).await;
            }
        }
        "reader" => {
            let until = start_at + WARM_UP_MS + trials * MAX_GAP_MS + 1_000;
            // version → (first read start, last read start, reads)
            let mut seen: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
            let mut newest = 0;
            let mut violations = 0;
            while stratacache_tests::workers::unix_ms() < until {
                let start = unix_us();
                let version = tier
                    .cache
                    .get::<u64>(KEY)
                    .await
                    .expect("the read succeeds")
                    .unwrap_or(0);
                if version < newest {
                    violations += 1;
                    eprintln!("read at {start} answered version {version} after {newest}");
                }
                newest = newest.max(version);
                let e = seen.entry(version).or_insert((start, start, 0));
                e.1 = start;
                e.2 += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            for (version, (first, last, reads)) in &seen {
                println!("version={version} first_start={first} last_start={last} reads={reads}");
            }
            let stats = tier.stats.get();
            println!(
                "violations={violations} local_hits={} local_misses={} fills_discarded={} \
                 invalidated_keys={} disconnects={}",
                stats.local_hits,
                stats.local_misses,
                stats.fills_discarded,
                stats.invalidated_keys,
                stats.disconnects
            );
        }
        other => panic!("unknown role {other}"),
    }
    tier.cache.close().await.expect("close");
}
