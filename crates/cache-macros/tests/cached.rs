//! `#[cached]` on the memory backend: how often the body runs, what is stored and where.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::{Cache, ErrorKind, KeyTtl, MemoryBackend, cached};

fn memory() -> Cache {
    Cache::new(MemoryBackend::new())
}

// ---- keys, hits, TTL and namespace ---------------------------------------------------------

static USERS: LazyLock<Cache> = LazyLock::new(memory);
static USER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A user's name.
#[cached(cache = USERS, key = "user:{id}", ttl = "1m")]
async fn user_name(id: u64) -> String {
    USER_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("user {id}")
}

#[tokio::test]
async fn a_second_call_is_a_hit_under_the_template_key_with_the_ttl() {
    assert_eq!(user_name(1).await, "user 1");
    assert_eq!(user_name(1).await, "user 1");
    assert_eq!(user_name(2).await, "user 2");
    assert_eq!(USER_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(user_name_key(&1).unwrap(), "user:1");
    assert_eq!(
        USERS.get::<String>("user:1").await.unwrap().as_deref(),
        Some("user 1")
    );
    match USERS.ttl("user:1").await.unwrap() {
        KeyTtl::Remaining(d) => {
            assert!(d <= Duration::from_secs(60) && d > Duration::from_secs(50))
        }
        other => panic!("expected a TTL, got {other:?}"),
    }
}

static NS: LazyLock<Cache> = LazyLock::new(memory);

#[cached(cache = NS, namespace = "tax", key = "rate:{country}")]
async fn rate(country: &str) -> u32 {
    if country == "fr" { 20 } else { 0 }
}

#[tokio::test]
async fn the_namespace_is_applied() {
    assert_eq!(rate("fr").await, 20);
    assert_eq!(
        NS.with_namespace("tax")
            .get::<u32>("rate:fr")
            .await
            .unwrap(),
        Some(20)
    );
    assert_eq!(NS.get::<u32>("rate:fr").await.unwrap(), None);
    // The helpers use the namespace too.
    assert_eq!(rate_cached("fr").await.unwrap(), Some(20));
    assert!(rate_invalidate("fr").await.unwrap());
    assert_eq!(
        NS.with_namespace("tax")
            .get::<u32>("rate:fr")
            .await
            .unwrap(),
        None
    );
}

static DEFAULT_KEYS: LazyLock<Cache> = LazyLock::new(memory);
static SUM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = DEFAULT_KEYS)]
async fn sum(a: u32, b: String, tags: Vec<&'static str>) -> u64 {
    SUM_RUNS.fetch_add(1, Ordering::SeqCst);
    u64::from(a) + b.len() as u64 + tags.len() as u64
}

#[tokio::test]
async fn the_default_key_is_the_path_and_the_arguments_as_json() {
    assert_eq!(
        sum_key(&1, &"x y".to_string(), &vec!["a"]).unwrap(),
        r#"cached::sum[1,"x y",["a"]]"#
    );
    assert_eq!(sum(1, "ab".into(), vec![]).await, 3);
    assert_eq!(sum(1, "ab".into(), vec![]).await, 3);
    // Argument boundaries are kept: ("a", "b,c") and ("a,b", "c") are two keys.
    assert_ne!(
        sum_key(&1, &"a".into(), &vec!["b,c"]).unwrap(),
        sum_key(&1, &"a,b".into(), &vec!["c"]).unwrap()
    );
    assert_eq!(sum(2, "ab".into(), vec![]).await, 4);
    assert_eq!(SUM_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(
        DEFAULT_KEYS
            .get::<u64>(r#"cached::sum[1,"ab",[]]"#)
            .await
            .unwrap(),
        Some(3)
    );
}

// ---- generic functions ---------------------------------------------------------------------

static GENERIC: LazyLock<Cache> = LazyLock::new(memory);

#[cached(cache = GENERIC)]
async fn zero<T: Default + serde::Serialize + serde::de::DeserializeOwned>(id: u8) -> T {
    let _ = id;
    T::default()
}

#[tokio::test]
async fn type_parameters_are_part_of_the_default_key() {
    assert_eq!(zero::<u32>(1).await, 0);
    assert_eq!(zero::<String>(1).await, "");
    assert_eq!(zero::<u32>(1).await, 0);
    assert_eq!(zero_key::<u32>(&1).unwrap(), "cached::zero::<u32>[1]");
    assert_eq!(
        zero_key::<String>(&1).unwrap(),
        "cached::zero::<alloc::string::String>[1]"
    );
}

// ---- Result and Option ---------------------------------------------------------------------

static RESULTS: LazyLock<Cache> = LazyLock::new(memory);
static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails on its first run, succeeds afterwards.
#[cached(cache = RESULTS, key = "flaky:{id}")]
async fn flaky(id: u32) -> Result<u32, std::io::Error> {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err(std::io::Error::other("database down"))
    } else {
        Ok(id * 10)
    }
}

#[tokio::test]
async fn errors_reach_the_caller_and_are_not_cached() {
    let err = flaky(4).await.unwrap_err();
    assert_eq!(err.to_string(), "database down");
    assert_eq!(RESULTS.get::<u32>("flaky:4").await.unwrap(), None);
    assert_eq!(flaky(4).await.unwrap(), 40);
    assert_eq!(flaky(4).await.unwrap(), 40);
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(RESULTS.get::<u32>("flaky:4").await.unwrap(), Some(40));
}

static OPTIONS: LazyLock<Cache> = LazyLock::new(memory);
static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);
static FIND_ALL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = OPTIONS, key = "find:{id}")]
async fn find(id: u32) -> Option<String> {
    FIND_RUNS.fetch_add(1, Ordering::SeqCst);
    (id == 1).then(|| "one".to_string())
}

#[cached(cache = OPTIONS, key = "find_all:{id}", cache_none = true)]
async fn find_storing_none(id: u32) -> Option<String> {
    FIND_ALL_RUNS.fetch_add(1, Ordering::SeqCst);
    (id == 1).then(|| "one".to_string())
}

#[tokio::test]
async fn none_is_not_cached_unless_asked() {
    assert_eq!(find(2).await, None);
    assert_eq!(find(2).await, None);
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(find(1).await.as_deref(), Some("one"));
    assert_eq!(find(1).await.as_deref(), Some("one"));
    assert_eq!(FIND_RUNS.load(Ordering::SeqCst), 3);
    // Some values are stored bare.
    assert_eq!(
        OPTIONS.get::<String>("find:1").await.unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(find_cached(&2).await.unwrap(), None);

    assert_eq!(find_storing_none(2).await, None);
    assert_eq!(find_storing_none(2).await, None);
    assert_eq!(FIND_ALL_RUNS.load(Ordering::SeqCst), 1);
    // A stored None is a stored null: a hit holding `None`.
    assert_eq!(find_storing_none_cached(&2).await.unwrap(), Some(None));
    assert_eq!(
        OPTIONS.get::<Option<String>>("find_all:2").await.unwrap(),
        Some(None)
    );
}

static UNLESS: LazyLock<Cache> = LazyLock::new(memory);
static LIST_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = UNLESS, key = "list:{n}", unless = |v: &Vec<u32>| v.is_empty())]
async fn list(n: u32) -> Result<Vec<u32>, std::io::Error> {
    LIST_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok((0..n).collect())
}

#[tokio::test]
async fn unless_keeps_a_value_out_of_the_cache() {
    assert_eq!(list(0).await.unwrap(), Vec::<u32>::new());
    assert_eq!(list(0).await.unwrap(), Vec::<u32>::new());
    assert_eq!(list(2).await.unwrap(), [0, 1]);
    assert_eq!(list(2).await.unwrap(), [0, 1]);
    assert_eq!(LIST_RUNS.load(Ordering::SeqCst), 3);
    assert!(!UNLESS.exists("list:0").await.unwrap());
}

// ---- methods and helpers -------------------------------------------------------------------

struct Repo {
    cache: Cache,
    runs: AtomicUsize,
}

impl Repo {
    /// A price.
    #[cached(cache = self.cache, key = "price:{sku}")]
    async fn price(&self, sku: &str) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        sku.len() as u64 * 100
    }

    /// A stock level, under the default key.
    #[cached(cache = self.cache)]
    async fn stock(&self, sku: String) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        sku.len() as u64
    }
}

#[tokio::test]
async fn methods_use_a_cache_of_self_and_have_helpers() {
    let repo = Repo {
        cache: memory(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(repo.price("abc").await, 300);
    assert_eq!(repo.price("abc").await, 300);
    assert_eq!(repo.runs.load(Ordering::SeqCst), 1);
    assert_eq!(repo.price_cached("abc").await.unwrap(), Some(300));

    assert!(repo.price_invalidate("abc").await.unwrap());
    assert!(!repo.price_invalidate("abc").await.unwrap());
    assert_eq!(repo.price_cached("abc").await.unwrap(), None);
    assert_eq!(repo.price("abc").await, 300);
    assert_eq!(repo.runs.load(Ordering::SeqCst), 2);

    // refresh runs the body even on a hit, and stores.
    repo.cache.set("price:abc", &1u64).await.unwrap();
    assert_eq!(repo.price("abc").await, 1);
    assert_eq!(repo.price_refresh("abc").await, 300);
    assert_eq!(repo.runs.load(Ordering::SeqCst), 3);
    assert_eq!(repo.price("abc").await, 300);

    // A method's default key starts with its type's name; `self` is not in it.
    assert_eq!(
        repo.stock_key(&"ab".into()).unwrap(),
        r#"cached::Repo::stock["ab"]"#
    );
    assert_eq!(repo.stock("ab".into()).await, 2);
    assert_eq!(repo.stock("ab".into()).await, 2);
    assert_eq!(repo.runs.load(Ordering::SeqCst), 4);
}

static REFRESH: LazyLock<Cache> = LazyLock::new(memory);
static PRESENT: AtomicUsize = AtomicUsize::new(1);

#[cached(cache = REFRESH, key = "present")]
async fn present() -> Option<u32> {
    (PRESENT.load(Ordering::SeqCst) == 1).then_some(7)
}

#[tokio::test]
async fn refresh_of_a_value_that_is_not_cached_removes_the_entry() {
    assert_eq!(present().await, Some(7));
    PRESENT.store(0, Ordering::SeqCst);
    assert_eq!(present().await, Some(7)); // still cached
    assert_eq!(present_refresh().await, None);
    assert_eq!(present_cached().await.unwrap(), None);
    assert_eq!(present().await, None);
}

// ---- single flight -------------------------------------------------------------------------

static FLIGHT: LazyLock<Cache> = LazyLock::new(memory);
static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = FLIGHT, key = "slow:{id}")]
async fn slow(id: u32) -> u32 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    id + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_of_one_key_share_one_run() {
    let calls: Vec<_> = (0..16).map(|_| tokio::spawn(slow(5))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 6);
    }
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
}

static FAILING: LazyLock<Cache> = LazyLock::new(memory);
static FAILING_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = FAILING, key = "failing")]
async fn failing() -> Result<u32, String> {
    let n = FAILING_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(format!("run {n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_of_a_failed_run_gets_an_error_of_its_own() {
    let calls: Vec<_> = (0..8).map(|_| tokio::spawn(failing())).collect();
    let mut errors = Vec::new();
    for call in calls {
        errors.push(call.await.unwrap().unwrap_err());
    }
    errors.sort();
    errors.dedup();
    // Every caller got an error from a run, and none was cached.
    assert_eq!(errors.len(), FAILING_RUNS.load(Ordering::SeqCst));
    assert!(!FAILING.exists("failing").await.unwrap());
}

// ---- when the cache fails ------------------------------------------------------------------

static CLOSED: LazyLock<Cache> = LazyLock::new(memory);
static CLOSED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = CLOSED, key = "k")]
async fn on_closed_cache() -> u32 {
    CLOSED_RUNS.fetch_add(1, Ordering::SeqCst);
    9
}

#[tokio::test]
async fn the_function_runs_without_a_cache_that_fails() {
    CLOSED.close().await.unwrap();
    assert_eq!(on_closed_cache().await, 9);
    assert_eq!(on_closed_cache().await, 9);
    assert_eq!(CLOSED_RUNS.load(Ordering::SeqCst), 2);
    // The helpers, which return the cache's errors, say why.
    assert_eq!(
        on_closed_cache_cached().await.unwrap_err().kind(),
        ErrorKind::Closed
    );
}

static STALE: LazyLock<Cache> = LazyLock::new(memory);
static STALE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = STALE, key = "count")]
async fn count() -> u64 {
    STALE_RUNS.fetch_add(1, Ordering::SeqCst);
    12
}

#[tokio::test]
async fn a_stored_value_that_no_longer_decodes_is_replaced() {
    STALE.set("count", &"twelve").await.unwrap();
    assert_eq!(count().await, 12);
    assert_eq!(count().await, 12);
    assert_eq!(STALE_RUNS.load(Ordering::SeqCst), 1);
}

// ---- the runtime path ----------------------------------------------------------------------

mod reexport {
    pub(crate) use stratacache as cache;
}

static ELSEWHERE: LazyLock<Cache> = LazyLock::new(memory);

#[cached(cache = ELSEWHERE, crate = "crate::reexport::cache", key = "x:{x}", ttl = Duration::from_secs(5))]
async fn through_a_reexport(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn the_runtime_path_can_be_another() {
    assert_eq!(through_a_reexport(3).await, 3);
    assert_eq!(ELSEWHERE.get::<u8>("x:3").await.unwrap(), Some(3));
}

static SKIPPED: LazyLock<Cache> = LazyLock::new(memory);
static SKIPPED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails on its first run; its values are never to be cached.
#[cached(cache = SKIPPED, key = "skipped", unless = |_| true)]
async fn never_cached() -> Result<u32, String> {
    let n = SKIPPED_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if n == 0 { Err("first".into()) } else { Ok(1) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_failed_run_keep_to_unless() {
    let calls: Vec<_> = (0..4).map(|_| tokio::spawn(never_cached())).collect();
    let mut ok = 0;
    for call in calls {
        ok += usize::from(call.await.unwrap().is_ok());
    }
    assert_eq!(ok, 3);
    assert!(!SKIPPED.exists("skipped").await.unwrap());
}

// ---- a cache from the registry -------------------------------------------------------------

static CACHES: LazyLock<stratacache::Caches> = LazyLock::new(|| {
    stratacache::Caches::new([(
        "users",
        stratacache::CacheConfig::new("memory://").namespace("users"),
    )])
});
static REGISTRY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(caches = CACHES, alias = "users", key = "u:{id}")]
async fn from_registry(id: u32) -> u32 {
    REGISTRY_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

#[cached(caches = CACHES, alias = "nobody", key = "u:{id}")]
async fn from_an_unknown_name(id: u32) -> u32 {
    REGISTRY_RUNS.fetch_add(100, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_registry_name_gives_the_shared_cache() {
    assert_eq!(from_registry(1).await, 1);
    assert_eq!(from_registry(1).await, 1);
    assert_eq!(REGISTRY_RUNS.load(Ordering::SeqCst), 1);
    let users = CACHES.get("users").await.unwrap();
    assert_eq!(users.get::<u32>("u:1").await.unwrap(), Some(1));
    assert_eq!(from_registry_cached(&1).await.unwrap(), Some(1));
    // An unknown name: the function runs without a cache; the helpers say why.
    assert_eq!(from_an_unknown_name(2).await, 2);
    assert_eq!(from_an_unknown_name(2).await, 2);
    assert_eq!(REGISTRY_RUNS.load(Ordering::SeqCst), 201);
    assert_eq!(
        from_an_unknown_name_cached(&2).await.unwrap_err().kind(),
        ErrorKind::Config
    );
}
