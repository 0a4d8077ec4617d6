//! The attributes over Redis and Memcached (`CACHE_TEST_REDIS_URL`, `CACHE_TEST_MEMCACHED_URL`;
//! a loud skip without them, a failure without them under `CI`): default keys hold quotes,
//! spaces and brackets, which both backends must keep apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::testkit::{random_namespace, server_url};
use stratacache::{AnyCache, cached, multi_cached};

struct Service {
    cache: AnyCache,
    runs: AtomicUsize,
    batches: AtomicUsize,
}

impl Service {
    #[cached(cache = self.cache, ttl = "1m")]
    async fn greet(&self, name: String, times: u8) -> Result<String, std::io::Error> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(name.repeat(usize::from(times)))
    }

    #[multi_cached(cache = self.cache, keys = names, ttl = "1m")]
    async fn lengths(&self, names: Vec<String>) -> HashMap<String, usize> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        names
            .into_iter()
            .map(|n| {
                let l = n.len();
                (n, l)
            })
            .collect()
    }
}

async fn exercise(url: &str) {
    let url = format!("{url}?namespace={}", random_namespace());
    let service = Arc::new(Service {
        cache: stratacache::from_url(&url).await.expect("connect"),
        runs: AtomicUsize::new(0),
        batches: AtomicUsize::new(0),
    });
    // Arguments whose JSON holds a quote, a space and brackets.
    let odd = "a \"b\" [c]".to_string();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let s = service.clone();
            let odd = odd.clone();
            tokio::spawn(async move { s.greet(odd, 2).await.unwrap() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), odd.repeat(2));
    }
    assert_eq!(
        service.runs.load(Ordering::SeqCst),
        1,
        "one run for concurrent callers"
    );
    assert_eq!(service.greet(odd.clone(), 1).await.unwrap(), odd);
    assert_eq!(
        service.runs.load(Ordering::SeqCst),
        2,
        "another argument, another key"
    );
    assert_eq!(
        service.greet_cached(&odd, &2).await.unwrap(),
        Some(odd.repeat(2))
    );
    assert!(service.greet_invalidate(&odd, &2).await.unwrap());
    assert_eq!(service.greet_cached(&odd, &2).await.unwrap(), None);

    let names = vec!["x y".to_string(), "\"".to_string()];
    assert_eq!(service.lengths(names.clone()).await.len(), 2);
    let more = service.lengths(vec!["x y".into(), "z".into()]).await;
    assert_eq!(more, HashMap::from([("x y".into(), 3), ("z".into(), 1)]));
    assert_eq!(service.batches.load(Ordering::SeqCst), 2);
    assert_eq!(service.lengths(names.clone()).await.len(), 2);
    assert_eq!(service.batches.load(Ordering::SeqCst), 2, "all hits");
    assert_eq!(service.lengths_invalidate(&names).await.unwrap(), 2);
    // What is left expires within a minute.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_over_redis() {
    if let Some(url) = server_url("CACHE_TEST_REDIS_URL") {
        exercise(&url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_over_memcached() {
    if let Some(url) = server_url("CACHE_TEST_MEMCACHED_URL") {
        exercise(&url).await;
    }
}
