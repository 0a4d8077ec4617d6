//! Tier coherence across processes: four instances, each with a local level in front of one
//! shared server; one writes a key (a new version every 15–30 ms), three read it about every
//! millisecond. Asserted for every reader: it never answers a version older than one it has
//! already answered (no copy read before an invalidation lands after it), it sees every
//! write, and no read that starts later than [`BOUND_MS`] after a write returned answers the
//! version before it. The stale window (how long after a write returned a read still
//! answered the older version) is printed as p50 / p99 / max.

use stratacache_tests::tiers::TierSetup;
use stratacache_tests::workers::{self, field, unix_ms};

const TRIALS: u64 = 150;
const READERS: usize = 3;
/// The longest a reader may answer the previous version after a write returned, on
/// loopback (deliveries take about a millisecond; the bound leaves room for a loaded CI
/// machine).
const BOUND_MS: u64 = 250;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at]
}

fn coherence(setup: TierSetup) {
    if !setup.available() {
        return;
    }
    let namespace = cache_core::testkit::random_namespace();
    let start_at = (unix_ms() + 1_500).to_string();
    let args = |role: &str| {
        vec![
            setup.name().to_owned(),
            namespace.clone(),
            role.to_owned(),
            TRIALS.to_string(),
            start_at.clone(),
        ]
    };
    let mut runs = vec![args("writer")];
    runs.extend((0..READERS).map(|_| args("reader")));
    let outputs = workers::run_workers(env!("CARGO_BIN_EXE_tier_worker"), &runs);

    // trial → (w_start, w_end) in µs
    let writes: Vec<(u64, u64, u64)> = outputs[0]
        .lines()
        .filter_map(|l| {
            Some((
                field(l, "trial")?.parse().ok()?,
                field(l, "w_start")?.parse().ok()?,
                field(l, "w_end")?.parse().ok()?,
            ))
        })
        .collect();
    assert_eq!(writes.len() as u64, TRIALS, "{}", outputs[0]);

    let mut windows = Vec::new();
    for (r, out) in outputs[1..].iter().enumerate() {
        let violations: u64 = field(out, "violations")
            .or_else(|| out.lines().find_map(|l| field(l, "violations")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("reader {r} printed no summary: {out}"));
        assert_eq!(
            violations, 0,
            "reader {r} went back to an older version:\n{out}"
        );
        // version → last read start (µs)
        let last: Vec<(u64, u64)> = out
            .lines()
            .filter_map(|l| {
                Some((
                    field(l, "version")?.parse().ok()?,
                    field(l, "last_start")?.parse().ok()?,
                ))
            })
            .collect();
        assert!(
            last.iter().any(|&(v, _)| v == TRIALS),
            "reader {r} never saw the last write:\n{out}"
        );
        for &(t, _, w_end) in &writes {
            // the latest start of a read that answered a version older than t
            let stale_start = last
                .iter()
                .filter(|&&(v, _)| v < t)
                .map(|&(_, s)| s)
                .max()
                .unwrap_or(0);
            let window_us = stale_start.saturating_sub(w_end);
            assert!(
                window_us <= BOUND_MS * 1_000,
                "reader {r}: a read starting {} ms after write {t} returned still answered an \
                 older version",
                window_us / 1_000
            );
            windows.push(window_us);
        }
        let summary = out
            .lines()
            .find(|l| l.starts_with("violations="))
            .unwrap_or("");
        println!("{} reader {r}: {summary}", setup.name());
    }
    windows.sort_unstable();
    println!(
        "FIGURE: tier coherence, {}: stale window after a write returned, {} readings: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        setup.name(),
        windows.len(),
        percentile(&windows, 0.50) as f64 / 1_000.0,
        percentile(&windows, 0.99) as f64 / 1_000.0,
        windows.last().copied().unwrap_or(0) as f64 / 1_000.0,
    );
}

#[test]
fn redis_with_client_tracking_stays_coherent_across_four_instances() {
    coherence(TierSetup::RedisTracking);
}

#[test]
fn redis_with_a_pubsub_backplane_stays_coherent_across_four_instances() {
    coherence(TierSetup::RedisPubSub);
}

#[test]
fn memcached_with_a_redis_backplane_stays_coherent_across_four_instances() {
    coherence(TierSetup::MemcachedPubSub);
}
