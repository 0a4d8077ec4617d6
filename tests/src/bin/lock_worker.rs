//! One process of the cross-process lock test: `lock_worker <redis|memcached> <url>
//! <namespace> <tasks> <acquisitions>` takes the lock `shared` `acquisitions` times in all,
//! spread over `tasks` tasks, and inside it checks that nobody else is inside (an `inside`
//! counter in the cache must read 1 after its own increment) and adds one to the counter `n`
//! by a read, a pause and a write. Prints `overlaps=N acquired=M`.

use std::time::Duration;

use cache_core::Cache;
use stratacache_tests::backends::{self, Kind, Setup};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, url, namespace, tasks, total] = &args[..] else {
        eprintln!("usage: lock_worker <redis|memcached> <url> <namespace> <tasks> <acquisitions>");
        std::process::exit(2);
    };
    let kind = Kind::from_name(kind).unwrap_or_else(|| panic!("unknown backend {kind}"));
    let tasks: usize = tasks.parse().expect("a task count");
    let total: usize = total.parse().expect("an acquisition count");
    let backend = backends::connect(kind, url, &kind.address_of(url), &Setup::pool(4)).await;
    let cache = Cache::builder(backend)
        .namespace(namespace.clone())
        .timeout(Duration::from_secs(5))
        .build();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let cache = cache.clone();
            let mine = total / tasks + usize::from(t < total % tasks);
            tokio::spawn(async move {
                let lock = cache
                    .lock("shared")
                    .lease(Duration::from_secs(10))
                    .wait(Duration::from_secs(120));
                let mut overlaps = 0u64;
                for _ in 0..mine {
                    let guard = lock.acquire().await.expect("acquire");
                    if cache.increment("inside", 1).await.expect("enter") != 1 {
                        overlaps += 1;
                    }
                    let n = cache.get::<u64>("n").await.expect("read").unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    cache.set("n", &(n + 1)).await.expect("write");
                    cache.increment("inside", -1).await.expect("leave");
                    assert!(guard.release().await.expect("release"), "lock lost");
                }
                (overlaps, mine)
            })
        })
        .collect();
    let (mut overlaps, mut acquired) = (0, 0);
    for h in handles {
        let (o, a) = h.await.expect("task");
        overlaps += o;
        acquired += a;
    }
    println!("overlaps={overlaps} acquired={acquired}");
}
