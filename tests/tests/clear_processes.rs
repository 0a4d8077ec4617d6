//! Namespace generations under a race: two processes write and read the keys of one
//! namespace while both clear it now and then, against one real server. From the logged
//! start and end of every operation ([`clear_race::check`]): no read returns a value written
//! before a clear that had returned (Redis and memory: at once; Memcached: once the
//! documented `generation_refresh` has passed since the clear returned), and no write made
//! with no clear in the way is lost to its own read-back. Each clear is a trial; the test
//! also requires that many reads could have met a cleared value, so that it cannot pass
//! vacuously.

use std::time::Duration;

use cache_core::testkit::random_namespace;
use cache_core::{Cache, RawBytes};
use stratacache_tests::backends::Kind;
use stratacache_tests::clear_race::{self, Event, Plan, Verdict};
use stratacache_tests::report::Figures;
use stratacache_tests::workers;

const WORKER: &str = env!("CARGO_BIN_EXE_clear_race_worker");
const PROCESSES: u64 = 2;
const DURATION: Duration = Duration::from_secs(4);
/// Time for the workers to start and connect.
const STARTUP: Duration = Duration::from_millis(1500);
/// Memcached's refresh of a generation in the other process.
const MEMCACHED_REFRESH: Duration = Duration::from_millis(50);

fn assert_sound(name: &str, v: &Verdict) {
    Figures::new("clear race", name)
        .add("clears", v.clears)
        .add("reads", v.reads)
        .add("reads_at_risk", v.reads_at_risk)
        .add("read_backs", v.read_backs)
        .add("stale_reads", v.stale_count)
        .add("lost_writes", v.lost_count)
        .print();
    assert_eq!(v.stale_count, 0, "{name}: stale reads: {:#?}", v.stale);
    assert_eq!(v.lost_count, 0, "{name}: lost writes: {:#?}", v.lost);
    assert!(v.clears >= 40, "{name}: only {} clears", v.clears);
    assert!(
        v.reads_at_risk >= 1000,
        "{name}: only {} reads could have met a cleared value",
        v.reads_at_risk
    );
    assert!(
        v.read_backs >= 100,
        "{name}: only {} read-backs",
        v.read_backs
    );
}

async fn across_processes(kind: Kind, params: &str, clear_every: Duration, bound: Duration) {
    let Some(url) = kind.shared_url() else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}{params}");
    let namespace = random_namespace();
    let start_ms = workers::unix_ms() + STARTUP.as_millis() as u64;
    let runs: Vec<Vec<String>> = (0..PROCESSES)
        .map(|p| {
            vec![
                kind.name().to_owned(),
                url.clone(),
                namespace.clone(),
                p.to_string(),
                start_ms.to_string(),
                DURATION.as_millis().to_string(),
                clear_every.as_millis().to_string(),
            ]
        })
        .collect();
    let outputs = workers::run_workers(WORKER, &runs);
    let events: Vec<Event> = outputs
        .iter()
        .flat_map(|out| out.lines())
        .map(|line| Event::parse(line).unwrap_or_else(|| panic!("a worker printed {line:?}")))
        .collect();
    assert_sound(kind.name(), &clear_race::check(&events, bound));
}

#[test]
fn redis_generations_no_read_in_any_process_sees_a_cleared_value() {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(across_processes(
            Kind::Redis,
            "namespace_generations=true",
            Duration::from_millis(20),
            Duration::ZERO,
        ));
}

#[test]
fn memcached_generations_no_read_sees_a_cleared_value_past_the_refresh() {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(across_processes(
            Kind::Memcached,
            &format!(
                "namespace_generations=true&generation_refresh={}ms",
                MEMCACHED_REFRESH.as_millis()
            ),
            Duration::from_millis(40),
            MEMCACHED_REFRESH,
        ));
}

/// The memory backend is one process's store: two racing groups of tasks on one backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_generations_no_read_sees_a_cleared_value() {
    let backend = cache_memory::MemoryBuilder::new()
        .namespace_generations(true)
        .generation_sweep(true)
        .build();
    let cache = Cache::builder(backend)
        .namespace(random_namespace())
        .serializer(RawBytes)
        .build();
    let plan = |process| Plan {
        process,
        duration: DURATION,
        clear_every: Duration::from_millis(20),
    };
    let (a, b) = tokio::join!(
        clear_race::race(cache.clone(), plan(0)),
        clear_race::race(cache.clone(), plan(1))
    );
    let events: Vec<Event> = a.into_iter().chain(b).collect();
    assert_sound("memory", &clear_race::check(&events, Duration::ZERO));
}
