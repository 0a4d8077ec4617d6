//! Stampede protection across processes ([`ReadThrough::lease`]) against one real server.
//!
//! - One loader run per cold key: 4 processes × 250 tasks call `get_or_set` on the same cold
//!   key at the same instant, for 20 keys in turn. The loader counts its runs in the server:
//!   every key must have been loaded exactly once, and all 1,000 callers must get that run's
//!   value, without an error.
//! - A late fill never overwrites: a loader slower than its lease (200 ms lease, 1 s load)
//!   loses the key to a second process that takes the expired lease over (coming after it
//!   expired, or waiting for it to) and stores a newer value; the slow loader's value must
//!   not be written over it, and its cache must count one `LeaseLost`. Ten trials.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::{Backend, Cache, ReadThrough, ReadThroughEvent};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::report::{Figures, millis};
use stratacache_tests::workers;

const WORKER: &str = env!("CARGO_BIN_EXE_stampede_worker");

const PROCESSES: usize = 4;
const TASKS: usize = 250;
const KEYS: usize = 20;
/// The stampede's lease: far longer than its 100 ms loader (on memcached the lease lives
/// whole seconds: 2 s leases are kept 2 to 3 s).
const STAMPEDE_LEASE: Duration = Duration::from_secs(2);
/// Time for the workers to start and connect before the first key's callers are released.
const STARTUP: Duration = Duration::from_millis(1500);
/// One key's turn: the callers of the next key are released this long after the last.
const PERIOD: Duration = Duration::from_millis(400);

const TRIALS: usize = 10;
/// The lease of the slow loader, which the loader outlives. Memcached keeps it 1 to 2 s
/// (whole seconds, one more than asked): there the other process takes over the expired
/// lease still stored, by a compare-and-set over it; Redis drops it after 200 ms, and the
/// other process finds the key empty.
const SHORT_LEASE: Duration = Duration::from_millis(200);
/// The slow loader's time (it also waits for the other process to be done).
const SLOW_LOAD: Duration = Duration::from_secs(1);

async fn connect(kind: Kind, url: &str) -> Arc<dyn Backend> {
    backends::connect(kind, url, &kind.address_of(url), &Setup::pool(2)).await
}

/// A cache over `backend` in `namespace` with a lease of `lease`.
fn lease_cache(backend: &Arc<dyn Backend>, namespace: &str, lease: Duration) -> Cache {
    Cache::builder(backend.clone())
        .namespace(namespace)
        .timeout(Duration::from_secs(10))
        .read_through(ReadThrough::new().lease(lease))
        .build()
}

/// What the workers' callers of one key got.
#[derive(Default)]
struct KeyReport {
    /// How many processes reported the key.
    processes: usize,
    calls: u64,
    errors: u64,
    /// Each value got, with how many callers got it.
    values: BTreeMap<String, u64>,
}

async fn one_loader_per_cold_key(kind: Kind) {
    let Some(url) = kind.shared_url() else {
        return;
    };
    let namespace = random_namespace();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("cold-{i}")).collect();
    let start_ms = workers::unix_ms() + STARTUP.as_millis() as u64;
    let started = Instant::now();
    let mut args = vec![
        "stampede".to_owned(),
        kind.name().to_owned(),
        url.clone(),
        namespace.clone(),
        TASKS.to_string(),
        STAMPEDE_LEASE.as_millis().to_string(),
        start_ms.to_string(),
        PERIOD.as_millis().to_string(),
    ];
    args.extend(keys.iter().cloned());
    let outputs = workers::run_workers(WORKER, &vec![args; PROCESSES]);
    let took = started.elapsed();

    let mut reports = BTreeMap::<String, KeyReport>::new();
    let mut late_max = 0u64;
    for line in outputs.iter().flat_map(|out| out.lines()) {
        let Some(key) = workers::field(line, "key") else {
            continue;
        };
        let report = reports.entry(key.to_owned()).or_default();
        report.processes += 1;
        report.calls += workers::sum(&[line], "calls");
        report.errors += workers::sum(&[line], "errors");
        late_max = late_max.max(workers::sum(&[line], "late_ms"));
        let values = workers::field(line, "values").unwrap_or_default();
        for entry in values.split(',').filter(|e| !e.is_empty()) {
            let (value, n) = entry.rsplit_once('*').expect("value*count");
            *report.values.entry(value.to_owned()).or_default() += n.parse::<u64>().unwrap();
        }
    }

    let backend = connect(kind, &url).await;
    let counter = Cache::builder(backend.clone())
        .namespace(namespace.as_str())
        .build();
    let reader = lease_cache(&backend, &namespace, STAMPEDE_LEASE);
    let mut loader_runs = 0;
    let mut most_runs = 0;
    let mut failures = Vec::new();
    for key in &keys {
        let runs = counter
            .get::<u64>(&format!("runs:{key}"))
            .await
            .unwrap()
            .unwrap_or(0);
        loader_runs += runs;
        most_runs = most_runs.max(runs);
        let stored = reader.get::<String>(key).await.unwrap();
        let Some(report) = reports.get(key) else {
            failures.push(format!("{key}: no worker reported it"));
            continue;
        };
        let values: Vec<&String> = report.values.keys().collect();
        let ok = runs == 1
            && report.processes == PROCESSES
            && report.calls == (PROCESSES * TASKS) as u64
            && report.errors == 0
            && values.len() == 1
            && report.values[values[0]] == (PROCESSES * TASKS) as u64
            && values[0].starts_with(&format!("{key}/"))
            && values[0].ends_with("/1")
            && stored.as_ref() == Some(values[0]);
        if !ok {
            failures.push(format!(
                "{key}: {runs} loader runs, {} processes reported {} calls, {} errors, values \
                 {:?}, stored {stored:?}",
                report.processes, report.calls, report.errors, report.values
            ));
        }
    }
    let acquired = workers::sum(&outputs, "lease_acquired");
    let waited = workers::sum(&outputs, "lease_waited");
    let lost = workers::sum(&outputs, "lease_lost");
    let unstored = workers::sum(&outputs, "unstored");
    Figures::new("stampede_processes", kind.name())
        .add("keys", KEYS)
        .add("callers_per_key", PROCESSES * TASKS)
        .add("loader_runs", loader_runs)
        .add("most_runs_per_key", most_runs)
        .add("lease_acquired", acquired)
        .add("lease_waited", waited)
        .add("lease_lost", lost)
        .add("late_max", format!("{late_max}ms"))
        .add("took", millis(took))
        .print();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(loader_runs, KEYS as u64, "one loader run per key");
    assert_eq!(acquired, KEYS as u64, "one lease taken per key");
    assert_eq!(lost, 0, "no lease lost");
    assert!(
        waited >= KEYS as u64,
        "the processes hardly met on the keys ({waited} waits for {KEYS} keys, released up to \
         {late_max} ms late): nothing was tested"
    );
    assert_eq!(unstored, 0, "every key holds its value");

    let mut written: Vec<String> = keys.iter().map(|k| format!("runs:{k}")).collect();
    written.extend(keys);
    counter.multi_delete(written).await.unwrap();
}

async fn late_fill_never_overwrites(kind: Kind) {
    let Some(url) = kind.shared_url() else {
        return;
    };
    let namespace = random_namespace();
    let backend = connect(kind, &url).await;
    let reader = lease_cache(&backend, &namespace, SHORT_LEASE);
    let started = Instant::now();
    let mut keys = Vec::new();
    // Trials where the other process found the slow loader's lease still held.
    let mut other_waited = 0;
    for trial in 0..TRIALS {
        let key = format!("slow-{trial}");
        keys.push(key.clone());
        // A cache of its own: it shares no in-process flight with anything else.
        let slow = lease_cache(&backend, &namespace, SHORT_LEASE);
        let (loading, load_started) = tokio::sync::oneshot::channel::<()>();
        let (done, other_done) = tokio::sync::oneshot::channel::<()>();
        let call = tokio::spawn({
            let (slow, key) = (slow.clone(), key.clone());
            async move {
                slow.get_or_set::<String>(&key, move || async move {
                    let _ = loading.send(());
                    let _ = tokio::join!(tokio::time::sleep(SLOW_LOAD), other_done);
                    Ok::<_, std::io::Error>("old".to_owned())
                })
                .await
            }
        });
        // The loader runs once its lease is taken. Another process comes past the lease (even
        // trials) or while it is held (odd trials: it waits for the lease to expire), takes
        // the lease over and stores "new".
        load_started.await.expect("the slow loader started");
        tokio::time::sleep(if trial % 2 == 0 {
            SHORT_LEASE + Duration::from_millis(100)
        } else {
            SHORT_LEASE / 4
        })
        .await;
        let args = vec![
            "take-over".to_owned(),
            kind.name().to_owned(),
            url.clone(),
            namespace.clone(),
            SHORT_LEASE.as_millis().to_string(),
            "new".to_owned(),
            key.clone(),
        ];
        let output = tokio::task::spawn_blocking(move || workers::run_workers(WORKER, &[args]))
            .await
            .unwrap()
            .remove(0);
        done.send(()).unwrap();
        // The slow load's callers get what it loaded.
        assert_eq!(call.await.unwrap().unwrap(), "old", "trial {trial}");
        // They get it before the fenced write: wait for the write's outcome (a lost lease,
        // or a value over the newer one).
        let waited = Instant::now();
        let stored = loop {
            let stored = reader.get::<String>(&key).await.unwrap();
            if slow.read_through_stats().get(ReadThroughEvent::LeaseLost) > 0
                || stored.as_deref() != Some("new")
                || waited.elapsed() > Duration::from_secs(5)
            {
                break stored;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(
            workers::field(&output, "value"),
            Some("new"),
            "trial {trial}: {output}"
        );
        assert_eq!(
            workers::field(&output, "stored"),
            Some("true"),
            "trial {trial}: {output}"
        );
        assert_eq!(
            workers::sum(&[&output], "lease_acquired"),
            1,
            "trial {trial}: the other process took the expired lease over: {output}"
        );
        assert_eq!(workers::sum(&[&output], "loads"), 1, "trial {trial}");
        other_waited += workers::sum(&[&output], "lease_waited");
        assert_eq!(
            stored.as_deref(),
            Some("new"),
            "trial {trial}: the late fill overwrote the newer value"
        );
        let stats = slow.read_through_stats();
        assert_eq!(
            stats.get(ReadThroughEvent::LeaseAcquired),
            1,
            "trial {trial}"
        );
        assert_eq!(
            stats.get(ReadThroughEvent::LeaseLost),
            1,
            "trial {trial}: the late fill counted as lost"
        );
    }
    let took = started.elapsed();
    // Later still, nothing has overwritten the newer values.
    for key in &keys {
        assert_eq!(
            reader.get::<String>(key).await.unwrap().as_deref(),
            Some("new")
        );
    }
    Figures::new("lease_lost_processes", kind.name())
        .add("trials", TRIALS)
        .add("lease", millis(SHORT_LEASE))
        .add("slow_load", millis(SLOW_LOAD))
        .add("other_waited", other_waited)
        .add("took", millis(took))
        .print();
    reader.multi_delete(keys).await.unwrap();
}

#[tokio::test]
async fn one_loader_per_cold_key_across_processes_on_redis() {
    one_loader_per_cold_key(Kind::Redis).await;
}

#[tokio::test]
async fn one_loader_per_cold_key_across_processes_on_memcached() {
    one_loader_per_cold_key(Kind::Memcached).await;
}

#[tokio::test]
async fn late_fill_never_overwrites_across_processes_on_redis() {
    late_fill_never_overwrites(Kind::Redis).await;
}

#[tokio::test]
async fn late_fill_never_overwrites_across_processes_on_memcached() {
    late_fill_never_overwrites(Kind::Memcached).await;
}
