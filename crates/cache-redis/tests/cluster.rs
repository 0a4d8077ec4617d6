//! The conformance suite and cluster-specific checks against a 3-primary Redis Cluster
//! (`CACHE_TEST_REDIS_CLUSTER_URL`, e.g.
//! `redis-cluster://127.0.0.1:17001?node=127.0.0.1:17002&node=127.0.0.1:17003`).

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use cache_core::testkit::{random_namespace, server_url};
use cache_core::{Backend, Cache, CallContext, Command, Json, OpSet, RawValue};
use cache_redis::{RedisBackend, RedisConfig, RedisMode};

const VAR: &str = "CACHE_TEST_REDIS_CLUSTER_URL";

async fn backend() -> Option<RedisBackend> {
    backend_with(false).await
}

async fn backend_with(generations: bool) -> Option<RedisBackend> {
    let url = server_url(VAR)?;
    let config = RedisConfig::from_url(&url).expect("CACHE_TEST_REDIS_CLUSTER_URL is a redis URL");
    assert_eq!(
        config.mode,
        RedisMode::Cluster,
        "{VAR} must be a redis-cluster:// URL"
    );
    Some(
        config
            .into_builder()
            .namespace_generations(generations)
            .build()
            .await
            .expect("connect to the cluster"),
    )
}

cache_core::conformance_tests!(backend());

/// With namespace generations: every namespace in one hash slot, every command one script.
mod generations {
    cache_core::conformance_tests!(super::backend_with(true));
}

/// `(first slot, last slot, address)` of every primary, from `CLUSTER SLOTS`.
async fn slot_ranges(cache: &Cache<Json>) -> Vec<(u16, u16, String)> {
    let RawValue::Array(ranges) = cache
        .raw("CLUSTER SLOTS", Vec::<String>::new())
        .await
        .unwrap()
    else {
        panic!("CLUSTER SLOTS is an array")
    };
    ranges
        .into_iter()
        .map(|range| {
            let RawValue::Array(parts) = range else {
                panic!("a slot range is an array")
            };
            let first = parts[0].as_i64().unwrap() as u16;
            let last = parts[1].as_i64().unwrap() as u16;
            let RawValue::Array(node) = &parts[2] else {
                panic!("a node is an array")
            };
            let addr = format!(
                "{}:{}",
                node[0].as_str().unwrap(),
                node[1].as_i64().unwrap()
            );
            (first, last, addr)
        })
        .collect()
}

/// The primaries holding `keys` (built keys).
async fn owners(cache: &Cache<Json>, keys: &[String]) -> BTreeSet<String> {
    let ranges = slot_ranges(cache).await;
    keys.iter()
        .map(|k| {
            let slot = fred::util::redis_keyslot(k.as_bytes());
            ranges
                .iter()
                .find(|(a, b, _)| (*a..=*b).contains(&slot))
                .map(|(.., addr)| addr.clone())
                .expect("every slot is served")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_span_every_primary_without_crossslot_errors() {
    let Some(backend) = backend().await else {
        return;
    };
    assert!(
        !backend.capability().atomic_multi_set,
        "atomic per slot only on a cluster"
    );
    let ns = random_namespace();
    let cache = Cache::builder(backend).namespace(ns.clone()).build();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let built: Vec<String> = keys.iter().map(|k| format!("{ns}:{k}")).collect();
    assert_eq!(
        owners(&cache, &built).await.len(),
        3,
        "the keys live on all three primaries"
    );

    cache
        .with_ttl(Duration::from_secs(60))
        .multi_set(keys.iter().enumerate().map(|(i, k)| (k, i)))
        .await
        .unwrap();
    // answers in the caller's order, with misses and duplicates, across slots
    let mut asked: Vec<String> = keys.iter().rev().cloned().collect();
    asked.insert(10, "missing".into());
    asked.push(keys[0].clone());
    let got: Vec<Option<usize>> = cache.multi_get(&asked).await.unwrap();
    let expected: Vec<Option<usize>> = asked
        .iter()
        .map(|k| keys.iter().position(|x| x == k))
        .collect();
    assert_eq!(got, expected);
    for k in ["k0", "k150", "k299"] {
        let left = cache
            .ttl(k)
            .await
            .unwrap()
            .remaining()
            .expect("ttl set on every slot");
        assert!(left > Duration::from_secs(50), "{k}: {left:?}");
    }
    // hash-tagged keys share a slot and are written in one atomic step
    cache
        .multi_set([("{user1}:a", 1), ("{user1}:b", 2)])
        .await
        .unwrap();
    let tagged: Vec<Option<i32>> = cache.multi_get(["{user1}:a", "{user1}:b"]).await.unwrap();
    assert_eq!(tagged, vec![Some(1), Some(2)]);
    // several keys of one slot with a TTL (one script) next to keys of other slots
    cache
        .with_ttl(Duration::from_secs(60))
        .multi_set([
            ("{user2}:a", 1),
            ("{user2}:b", 2),
            ("{user3}:a", 3),
            ("{user2}:a", 4),
        ])
        .await
        .unwrap();
    let tagged: Vec<Option<i32>> = cache
        .multi_get(["{user2}:a", "{user2}:b", "{user3}:a"])
        .await
        .unwrap();
    assert_eq!(
        tagged,
        vec![Some(4), Some(2), Some(3)],
        "the later duplicate wins"
    );
    for k in ["{user2}:a", "{user2}:b", "{user3}:a"] {
        let left = cache.ttl(k).await.unwrap().remaining().expect("ttl set");
        assert!(left > Duration::from_secs(50), "{k}: {left:?}");
    }

    assert_eq!(cache.multi_delete(&keys[..200]).await.unwrap(), 200);
    assert_eq!(cache.multi_delete(&keys[..200]).await.unwrap(), 0);
    assert_eq!(cache.clear().await.unwrap(), Some(105));
}

/// `multi_get_with_ttl` over keys of every primary (and, with generations, of several
/// namespaces): one script run per slot, answers in the caller's order with misses and
/// duplicates, each value with its own lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_with_their_ttl_span_every_primary_in_order() {
    for generations in [false, true] {
        let Some(backend) = backend_with(generations).await else {
            return;
        };
        let ctx = CallContext::new(Command::Get);
        let namespaces = [random_namespace(), random_namespace()];
        let built: Vec<String> = (0..200)
            .map(|i| format!("{}:k{i}", namespaces[i % 2]))
            .collect();
        for (i, key) in built.iter().enumerate() {
            let ttl = (i % 3 != 0).then(|| Duration::from_secs(60 + i as u64));
            backend
                .set(&ctx, key, Bytes::from(format!("v{i}")), OpSet::new(ttl))
                .await
                .unwrap();
        }
        let mut asked: Vec<String> = built.iter().rev().cloned().collect();
        asked.insert(7, format!("{}:missing", namespaces[0]));
        asked.push(built[3].clone());
        asked.push("no-namespace-missing".into());
        let got = backend.multi_get_with_ttl(&ctx, &asked).await.unwrap();
        assert_eq!(got.len(), asked.len());
        for (key, entry) in asked.iter().zip(&got) {
            let Some(i) = built.iter().position(|k| k == key) else {
                assert_eq!(entry, &None, "{key}");
                continue;
            };
            let entry = entry.as_ref().unwrap_or_else(|| panic!("{key} is stored"));
            assert_eq!(entry.value, Bytes::from(format!("v{i}")), "{key}");
            match entry.ttl {
                None => assert_eq!(i % 3, 0, "{key} was written with a TTL"),
                Some(ttl) => {
                    let written = Duration::from_secs(60 + i as u64);
                    assert!(
                        ttl <= written && ttl > written - Duration::from_secs(10),
                        "{key}: {ttl:?}"
                    );
                }
            }
        }
        let one = backend.get_with_ttl(&ctx, &built[4]).await.unwrap();
        assert_eq!(one.map(|e| e.value), Some(Bytes::from_static(b"v4")));
        backend.multi_delete(&ctx, &built).await.unwrap();
        backend.close(&ctx).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_reaches_every_primary_and_nothing_else() {
    let Some(backend) = backend().await else {
        return;
    };
    let ns = random_namespace();
    let cache = Cache::builder(backend).namespace(ns.clone()).build();
    let neighbour = cache.with_namespace("neighbour-of-clear");
    let keys: Vec<String> = (0..1500).map(|i| format!("k{i}")).collect();
    let built: Vec<String> = keys.iter().map(|k| format!("{ns}:{k}")).collect();
    assert_eq!(owners(&cache, &built).await.len(), 3);
    cache.multi_set(keys.iter().map(|k| (k, 1))).await.unwrap();
    neighbour.set(&ns, &2).await.unwrap();
    // more keys than one SCAN page, on three nodes
    assert_eq!(cache.clear().await.unwrap(), Some(1500));
    let left: Vec<Option<i32>> = cache.multi_get(&keys).await.unwrap();
    assert!(left.iter().all(Option::is_none));
    assert_eq!(neighbour.get::<i32>(&ns).await.unwrap(), Some(2));
    neighbour.delete(&ns).await.unwrap();
}
