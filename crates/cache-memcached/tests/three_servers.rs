//! Three memcached servers behind one cache (`CACHE_TEST_MEMCACHED_CLUSTER_URL`): the whole
//! conformance suite, key distribution and multi-key calls split per server.

use async_memcached::{AsciiProtocol, Client};
use cache_core::{Cache, DefaultKeyBuilder, KeyBuilder};
use cache_memcached::{MemcachedBackend, MemcachedConfig};

const VAR: &str = "CACHE_TEST_MEMCACHED_CLUSTER_URL";

async fn backend(generations: bool) -> Option<MemcachedBackend> {
    let url = cache_core::testkit::server_url(VAR)?;
    let backend = MemcachedConfig::from_url(&url)
        .expect("CACHE_TEST_MEMCACHED_CLUSTER_URL is a memcached:// URL")
        .into_builder()
        .namespace_generations(generations)
        .build()
        .await
        .expect("the memcached cluster answers");
    assert!(
        backend.servers().len() >= 2,
        "{VAR} should name several servers"
    );
    Some(backend)
}

mod plain {
    cache_core::conformance_tests!(super::backend(false));
}

mod generations {
    cache_core::conformance_tests!(super::backend(true));
}

fn built(ns: &str, key: &str) -> String {
    DefaultKeyBuilder.build(key, Some(ns)).unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_every_server_where_the_ring_says() {
    let Some(backend) = backend(false).await else {
        return;
    };
    let ns = cache_core::testkit::random_namespace();
    let cache = Cache::builder(backend.clone())
        .namespace(ns.clone())
        .build();
    let keys: Vec<String> = (0..3000).map(|i| format!("key-{i}")).collect();
    cache
        .multi_set(keys.iter().map(|k| (k, k.as_str())))
        .await
        .unwrap();
    let servers = backend.servers();
    let mut clients = Vec::new();
    for s in &servers {
        clients.push(Client::new(format!("tcp://{s}")).await.unwrap());
    }
    let mut per_server = vec![0usize; servers.len()];
    for k in &keys {
        let b = built(&ns, k);
        let home = backend.server_for_key(&b);
        for (i, (s, c)) in servers.iter().zip(clients.iter_mut()).enumerate() {
            let found = c.get(&b).await.unwrap().is_some();
            assert_eq!(
                found,
                *s == home,
                "{b} expected only on {home}, checked {s}"
            );
            if found {
                per_server[i] += 1;
            }
        }
    }
    let fair = keys.len() / servers.len();
    for n in &per_server {
        assert!(*n > fair / 2 && *n < fair * 3 / 2, "{per_server:?}");
    }
    assert_eq!(cache.multi_delete(&keys).await.unwrap(), keys.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_calls_split_per_server_and_keep_the_callers_order() {
    let Some(backend) = backend(false).await else {
        return;
    };
    let cache = Cache::builder(backend.clone())
        .namespace(cache_core::testkit::random_namespace())
        .build();
    let stored: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
    cache
        .multi_set(stored.iter().enumerate().map(|(i, k)| (k, i)))
        .await
        .unwrap();
    // interleave hits, misses and duplicates from every server
    let mut asked = Vec::new();
    let mut expected = Vec::new();
    for (i, k) in stored.iter().enumerate().rev() {
        asked.push(k.clone());
        expected.push(Some(i));
        if i % 3 == 0 {
            asked.push(format!("missing{i}"));
            expected.push(None);
        }
        if i % 7 == 0 {
            asked.push(stored[0].clone());
            expected.push(Some(0));
        }
    }
    let got: Vec<Option<usize>> = cache.multi_get(&asked).await.unwrap();
    assert_eq!(got, expected);
    let mut doomed: Vec<String> = stored[..100].to_vec();
    doomed.push("missing".into());
    doomed.push(stored[0].clone());
    assert_eq!(cache.multi_delete(&doomed).await.unwrap(), 100);
    let left: Vec<Option<usize>> = cache.multi_get(&stored).await.unwrap();
    assert!(left[..100].iter().all(Option::is_none));
    assert!(left[100..].iter().all(Option::is_some));
    cache.multi_delete(&stored).await.unwrap();
}
