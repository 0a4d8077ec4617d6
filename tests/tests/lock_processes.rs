//! Mutual exclusion across processes: 4 processes × 8 tasks take one lock 2,000 times in all
//! against one real server, each holder doing a read-pause-write of a shared counter inside.
//! The counter must end at exactly 2,000, and no holder may ever find another inside.

use std::time::Instant;

use cache_core::Cache;
use cache_core::testkit::random_namespace;
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::workers;

const PROCESSES: usize = 4;
const TASKS: usize = 8;
const ACQUISITIONS: usize = 2_000;

/// The acquisitions that do not divide evenly among the processes (the first ones take one
/// more each).
fn remainder() -> usize {
    ACQUISITIONS % PROCESSES
}

async fn exclusion_across_processes(kind: Kind) {
    let Some(url) = kind.shared_url() else {
        return;
    };
    let namespace = random_namespace();
    let started = Instant::now();
    let runs: Vec<Vec<String>> = (0..PROCESSES)
        .map(|p| {
            let share = ACQUISITIONS / PROCESSES + usize::from(p < remainder());
            vec![
                kind.name().to_owned(),
                url.clone(),
                namespace.clone(),
                TASKS.to_string(),
                share.to_string(),
            ]
        })
        .collect();
    let outputs = workers::run_workers(env!("CARGO_BIN_EXE_lock_worker"), &runs);
    let overlaps = workers::sum(&outputs, "overlaps");
    let acquired = workers::sum(&outputs, "acquired");
    let took = started.elapsed();
    let backend = backends::connect(kind, &url, &kind.address_of(&url), &Setup::pool(1)).await;
    let cache = Cache::builder(backend).namespace(namespace).build();
    let n = cache.get::<u64>("n").await.unwrap();
    eprintln!(
        "{}: {acquired} acquisitions by {PROCESSES} processes × {TASKS} tasks in {took:.1?}, \
         counter {n:?}, {overlaps} overlaps",
        kind.name()
    );
    assert_eq!(acquired, ACQUISITIONS as u64);
    assert_eq!(overlaps, 0, "a holder found another inside the lock");
    assert_eq!(n, Some(ACQUISITIONS as u64), "no update lost");
    cache
        .multi_delete(["n", "inside", "shared-lock"])
        .await
        .unwrap();
}

#[tokio::test]
async fn lock_excludes_across_processes_on_redis() {
    exclusion_across_processes(Kind::Redis).await;
}

#[tokio::test]
async fn lock_excludes_across_processes_on_memcached() {
    exclusion_across_processes(Kind::Memcached).await;
}
