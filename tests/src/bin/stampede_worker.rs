//! One process of the cross-process stampede tests. Two modes:
//!
//! - `stampede_worker stampede <redis|memcached> <url> <namespace> <tasks> <lease_ms>
//!   <start_ms> <period_ms> <key>...`: for the `i`-th key, `tasks` tasks wait on a barrier
//!   that is released when the wall clock reads `start_ms + i × period_ms`, then all call
//!   `get_or_set` on the key through a cache with a lease of `lease_ms`. The loader adds one
//!   to the counter `runs:<key>` in the server, sleeps 100 ms and returns
//!   `<key>/<process id>/<counter>`. Prints one line per key, `key=K calls=N errors=E
//!   values=V*n,… late_ms=L` (the values the callers got, with how many got each; how late
//!   the barrier was released), then, once every key holds a value (or 5 s passed),
//!   `lease_acquired=… lease_waited=… lease_lost=… unstored=N`.
//! - `stampede_worker take-over <redis|memcached> <url> <namespace> <lease_ms> <value> <key>`:
//!   one `get_or_set` of `key` through a cache with a lease of `lease_ms`, whose loader
//!   returns `value` at once. Once the key holds a value (or 5 s passed), prints `value=V
//!   loads=N stored=true|false lease_acquired=… lease_waited=… lease_lost=…`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{Cache, ReadThrough, ReadThroughEvent};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::workers;
use tokio::sync::Barrier;

/// How long the loader of the stampede takes.
const LOAD: Duration = Duration::from_millis(100);

const USAGE: &str = "usage: stampede_worker stampede <redis|memcached> <url> <namespace> <tasks> \
                     <lease_ms> <start_ms> <period_ms> <key>...\n       \
                     stampede_worker take-over <redis|memcached> <url> <namespace> <lease_ms> \
                     <value> <key>";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((mode, rest)) if mode == "stampede" => stampede(rest).await,
        Some((mode, rest)) if mode == "take-over" => take_over(rest).await,
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

fn number(text: &str) -> u64 {
    text.parse()
        .unwrap_or_else(|_| panic!("{text} is not a number\n{USAGE}"))
}

/// The cache under test: `kind` at `url`, in `namespace`, with a lease of `lease_ms`.
async fn lease_cache(kind: &str, url: &str, namespace: &str, lease_ms: &str) -> Cache {
    let kind = Kind::from_name(kind).unwrap_or_else(|| panic!("unknown backend {kind}"));
    let backend = backends::connect(kind, url, &kind.address_of(url), &Setup::pool(8)).await;
    Cache::builder(backend)
        .namespace(namespace)
        .timeout(Duration::from_secs(10))
        .read_through(ReadThrough::new().lease(Duration::from_millis(number(lease_ms))))
        .build()
}

fn lease_events(cache: &Cache) -> String {
    let stats = cache.read_through_stats();
    format!(
        "lease_acquired={} lease_waited={} lease_lost={}",
        stats.get(ReadThroughEvent::LeaseAcquired),
        stats.get(ReadThroughEvent::LeaseWaited),
        stats.get(ReadThroughEvent::LeaseLost),
    )
}

async fn stampede(args: &[String]) {
    let [
        kind,
        url,
        namespace,
        tasks,
        lease_ms,
        start_ms,
        period_ms,
        keys @ ..,
    ] = args
    else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let cache = lease_cache(kind, url, namespace, lease_ms).await;
    // The loader's counter: the same server and namespace, no read-through options.
    let counter = Cache::builder(cache.backend().clone())
        .namespace(namespace.as_str())
        .timeout(Duration::from_secs(10))
        .build();
    let tasks = usize::try_from(number(tasks)).expect("a task count");
    let (start_ms, period_ms) = (number(start_ms), number(period_ms));
    for (round, key) in (0u64..).zip(keys) {
        let barrier = Arc::new(Barrier::new(tasks + 1));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (cache, counter, barrier) = (cache.clone(), counter.clone(), barrier.clone());
                let key = key.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let runs = format!("runs:{key}");
                    let value_key = key.clone();
                    cache
                        .get_or_set::<String>(&key, move || async move {
                            let run = counter.increment(&runs, 1).await?;
                            tokio::time::sleep(LOAD).await;
                            Ok::<_, cache_core::Error>(format!(
                                "{value_key}/{}/{run}",
                                std::process::id()
                            ))
                        })
                        .await
                })
            })
            .collect();
        let late = workers::sleep_until_unix_ms(start_ms + round * period_ms).await;
        barrier.wait().await;
        let mut values = BTreeMap::<String, u64>::new();
        let mut errors = 0u64;
        for handle in handles {
            match handle.await.expect("a caller task") {
                Ok(value) => *values.entry(value).or_default() += 1,
                Err(e) => {
                    if errors == 0 {
                        eprintln!("get_or_set {key}: {e:#}");
                    }
                    errors += 1;
                }
            }
        }
        let values: Vec<String> = values.iter().map(|(v, n)| format!("{v}*{n}")).collect();
        println!(
            "key={key} calls={tasks} errors={errors} values={} late_ms={}",
            values.join(","),
            late.as_millis()
        );
    }
    // The callers of the process that loaded got the value before it was written: let the
    // write land before the process exits.
    let mut unstored = 0u64;
    for key in keys {
        unstored += u64::from(!stored(&cache, key).await);
    }
    println!("{} unstored={unstored}", lease_events(&cache));
}

/// Waits (up to 5 s) until `key` holds a fresh value; whether it did.
async fn stored(cache: &Cache, key: &str) -> bool {
    for _ in 0..500 {
        if let Ok(Some(_)) = cache.get::<String>(key).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn take_over(args: &[String]) {
    let [kind, url, namespace, lease_ms, value, key] = args else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let cache = lease_cache(kind, url, namespace, lease_ms).await;
    let loads = Arc::new(AtomicU64::new(0));
    let counted = loads.clone();
    let value = value.clone();
    let got = cache
        .get_or_set::<String>(key, move || async move {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok::<_, std::io::Error>(value)
        })
        .await
        .unwrap_or_else(|e| panic!("get_or_set {key}: {e:#}"));
    let stored = stored(&cache, key).await;
    println!(
        "value={got} loads={} stored={stored} {}",
        loads.load(Ordering::Relaxed),
        lease_events(&cache)
    );
}
