//! Tag invalidation across processes: a reader process writes tagged entries and keeps
//! reading them with a refresh of `R`; an invalidator process invalidates one tag per trial.
//! Over many trials the reader must see every invalidated entry miss, never before the
//! invalidation began and no read that starts later than `R` after it ended may hit; entries
//! of other tags stay.

use std::collections::HashMap;

use cache_core::testkit::random_namespace;
use stratacache_tests::backends::Kind;
use stratacache_tests::workers::{self, field};

const TRIALS: u64 = 40;
const REFRESH_MS: u64 = 100;
/// Milliseconds of rounding between the two processes' readings of the wall clock.
const SLACK_MS: u64 = 2;

fn trials(output: &str, fields: &[&str]) -> HashMap<u64, Vec<u64>> {
    output
        .lines()
        .filter_map(|line| {
            let trial = field(line, "trial")?.parse().ok()?;
            let values = fields
                .iter()
                .map(|f| {
                    field(line, f)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| panic!("{f} missing in {line:?}"))
                })
                .collect();
            Some((trial, values))
        })
        .collect()
}

async fn invalidation_across_processes(kind: Kind) {
    let Some(url) = kind.shared_url() else {
        return;
    };
    let namespace = random_namespace();
    let args = |role: &str| {
        vec![
            kind.name().to_owned(),
            url.clone(),
            namespace.clone(),
            role.to_owned(),
            TRIALS.to_string(),
            REFRESH_MS.to_string(),
        ]
    };
    let outputs = workers::run_workers(
        env!("CARGO_BIN_EXE_tags_worker"),
        &[args("reader"), args("invalidator")],
    );
    let reads = trials(&outputs[0], &["last_hit", "miss_end", "kept"]);
    let invalidations = trials(&outputs[1], &["inv_start", "inv_end"]);
    assert_eq!(reads.len() as u64, TRIALS, "{}", outputs[0]);
    assert_eq!(invalidations.len() as u64, TRIALS, "{}", outputs[1]);
    let mut worst_lag = 0;
    for trial in 0..TRIALS {
        let (read, inv) = (&reads[&trial], &invalidations[&trial]);
        let (last_hit, miss_end, kept) = (read[0], read[1], read[2]);
        let (inv_start, inv_end) = (inv[0], inv[1]);
        assert!(
            miss_end > 0,
            "trial {trial}: the invalidated entry never missed"
        );
        assert!(
            miss_end + SLACK_MS >= inv_start,
            "trial {trial}: a miss ended at {miss_end}, before the invalidation began at \
             {inv_start}"
        );
        assert!(
            last_hit <= inv_end + REFRESH_MS + SLACK_MS,
            "trial {trial}: a read that started {} ms after the invalidation ended still hit \
             (refresh {REFRESH_MS} ms)",
            last_hit.saturating_sub(inv_end)
        );
        assert_eq!(kept, 1, "trial {trial}: an entry of another tag was lost");
        worst_lag = worst_lag.max(miss_end.saturating_sub(inv_end));
    }
    eprintln!(
        "FIGURE: {} tags across processes: {TRIALS} trials, refresh {REFRESH_MS} ms, slowest \
         miss {worst_lag} ms after the invalidation",
        kind.name()
    );
}

#[tokio::test]
async fn tag_invalidation_reaches_other_processes_within_refresh_on_redis() {
    invalidation_across_processes(Kind::Redis).await;
}

#[tokio::test]
async fn tag_invalidation_reaches_other_processes_within_refresh_on_memcached() {
    invalidation_across_processes(Kind::Memcached).await;
}
