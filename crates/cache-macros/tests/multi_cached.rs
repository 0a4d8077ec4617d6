//! `#[multi_cached]` on the memory backend: only missing keys reach the function, what it
//! returns is stored once, keys are built once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use stratacache::{Cache, KeyTtl, MemoryBackend, multi_cached};

fn memory() -> Cache {
    Cache::new(MemoryBackend::new())
}

static USERS: LazyLock<Cache> = LazyLock::new(memory);
static ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// Names of the users that exist (even ids).
#[multi_cached(cache = USERS, key = "user:{}", ttl = "1m")]
async fn user_names(ids: Vec<u64>) -> HashMap<u64, String> {
    let mut asked = ids.clone();
    asked.sort_unstable();
    ASKED.lock().unwrap().push(asked);
    ids.into_iter()
        .filter(|id| id % 2 == 0)
        .map(|id| (id, format!("user {id}")))
        .collect()
}

#[tokio::test]
async fn only_the_missing_keys_reach_the_function() {
    let first = user_names(vec![2, 4]).await;
    assert_eq!(
        first,
        HashMap::from([(2, "user 2".into()), (4, "user 4".into())])
    );
    // Stored under the template, applied once per key, with the TTL.
    assert_eq!(
        USERS.get::<String>("user:2").await.unwrap().as_deref(),
        Some("user 2")
    );
    assert!(
        matches!(USERS.ttl("user:4").await.unwrap(), KeyTtl::Remaining(d) if d <= Duration::from_secs(60))
    );

    let second = user_names(vec![4, 6, 7, 6]).await;
    assert_eq!(
        second,
        HashMap::from([(4, "user 4".into()), (6, "user 6".into())])
    );
    // 7 was not found: not stored, asked again next time.
    assert!(!USERS.exists("user:7").await.unwrap());
    let third = user_names(vec![2, 4, 6]).await;
    assert_eq!(third.len(), 3);
    assert_eq!(*ASKED.lock().unwrap(), [vec![2, 4], vec![6, 7]]);

    assert_eq!(user_names_invalidate(&vec![2, 4, 9]).await.unwrap(), 2);
    assert!(!USERS.exists("user:2").await.unwrap());
}

static PRICES: LazyLock<Cache> = LazyLock::new(memory);
static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Prices in a market; fails on its first run.
#[multi_cached(cache = PRICES, keys = skus, key = "{market}:{}", namespace = "prices")]
async fn prices(market: &str, skus: &[String]) -> Result<BTreeMap<String, u32>, std::io::Error> {
    if PRICE_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err(std::io::Error::other("down"));
    }
    Ok(skus
        .iter()
        .map(|s| (s.clone(), s.len() as u32 + market.len() as u32))
        .collect())
}

#[tokio::test]
async fn errors_are_not_cached_and_other_arguments_reach_the_key() {
    let skus = vec!["ab".to_string(), "abc".to_string()];
    assert_eq!(prices("eu", &skus).await.unwrap_err().to_string(), "down");
    assert!(
        !PRICES
            .with_namespace("prices")
            .exists("eu:ab")
            .await
            .unwrap()
    );
    let found = prices("eu", &skus).await.unwrap();
    assert_eq!(found, BTreeMap::from([("ab".into(), 4), ("abc".into(), 5)]));
    assert_eq!(
        PRICES
            .with_namespace("prices")
            .get::<u32>("eu:abc")
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(prices("eu", &skus).await.unwrap().len(), 2);
    assert_eq!(PRICE_RUNS.load(Ordering::SeqCst), 2);
}

static DEFAULT_KEYS: LazyLock<Cache> = LazyLock::new(memory);

#[multi_cached(cache = DEFAULT_KEYS, keys = ids)]
async fn lengths(region: String, ids: HashSet<String>) -> Vec<(String, usize)> {
    let _ = region;
    ids.into_iter()
        .map(|id| {
            let n = id.len();
            (id, n)
        })
        .collect()
}

#[tokio::test]
async fn the_default_key_is_the_one_cached_would_give_each_key() {
    let found = lengths("eu".into(), HashSet::from(["a".to_string()])).await;
    assert_eq!(found, [("a".to_string(), 1)]);
    assert_eq!(
        DEFAULT_KEYS
            .get::<usize>(r#"multi_cached::lengths["eu","a"]"#)
            .await
            .unwrap(),
        Some(1)
    );
}

static FLIGHT: LazyLock<Cache> = LazyLock::new(memory);
static SLOW_KEYS: AtomicUsize = AtomicUsize::new(0);

#[multi_cached(cache = FLIGHT, key = "k:{}")]
async fn slow(ids: Vec<u32>) -> HashMap<u32, u32> {
    SLOW_KEYS.fetch_add(ids.len(), Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    ids.into_iter().map(|i| (i, i * 2)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_load_each_key_once() {
    let calls: Vec<_> = (0..8).map(|_| tokio::spawn(slow(vec![1, 2, 3]))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap().len(), 3);
    }
    assert_eq!(SLOW_KEYS.load(Ordering::SeqCst), 3);
}
