//! Namespace generations on Redis: `clear()` as one increment that no later read in any
//! client gets past, a lost counter, the background sweep, and a clear on a server holding
//! millions of other keys (with and without generations).

use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::testkit::{random_namespace, server_url};
use cache_core::{Cache, ErrorKind, RawBytes, RawValue};
use cache_redis::{RedisBackend, RedisConfig};
use cache_test_fixtures::{Server, ServerKind};

async fn backend(url: &str, sweep: bool) -> RedisBackend {
    connect(url, true, sweep).await
}

async fn connect(url: &str, generations: bool, sweep: bool) -> RedisBackend {
    RedisConfig::from_url(url)
        .expect("a redis URL")
        .into_builder()
        .namespace_generations(generations)
        .generation_sweep(sweep)
        .build()
        .await
        .expect("connect to the test server")
}

fn text(v: &RawValue) -> String {
    match v {
        RawValue::Text(t) => t.clone(),
        RawValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        RawValue::Int(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The keys of the server matching `pattern` (a cursor-complete `SCAN`).
async fn scan(cache: &Cache<RawBytes>, pattern: &str) -> Vec<String> {
    let mut cursor = "0".to_owned();
    let mut out = Vec::new();
    loop {
        let RawValue::Array(page) = cache
            .raw("SCAN", [cursor.as_str(), "MATCH", pattern, "COUNT", "1000"])
            .await
            .unwrap()
        else {
            panic!("SCAN answers an array");
        };
        let [next, RawValue::Array(keys)] = &page[..] else {
            panic!("SCAN answers a cursor and keys: {page:?}");
        };
        out.extend(keys.iter().map(text));
        cursor = text(next);
        if cursor == "0" {
            return out;
        }
    }
}

/// Two clients of one server: a clear by one is seen by the other's very next read (every
/// command reads the generation in its script: no refresh bound); other namespaces and keys
/// without a namespace are untouched; counters, TTLs and CAS work inside the generation; a
/// lost counter (evicted, deleted, flushed) makes the namespace empty, never brings an
/// older generation back; a key builder whose prefix is not `ns:` cannot clear.
#[tokio::test]
async fn a_clear_is_one_increment_seen_by_every_client_at_once() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let ns = random_namespace();
    let one = Cache::builder(backend(&url, false).await)
        .namespace(ns.clone())
        .build();
    let two = Cache::builder(backend(&url, false).await)
        .namespace(ns.clone())
        .build();
    let other = Cache::builder(backend(&url, false).await)
        .namespace(random_namespace())
        .build();
    let plain = Cache::builder(backend(&url, false).await).build();

    one.set("k", &1).await.unwrap();
    one.multi_set([("a", 1), ("b", 2)]).await.unwrap();
    assert_eq!(one.increment("n", 5).await.unwrap(), 5);
    other.set("k", &9).await.unwrap();
    plain.set("no-namespace", &7).await.unwrap();
    assert_eq!(two.get::<i32>("k").await.unwrap(), Some(1));

    // stored under the generation, in the namespace's hash tag
    let raw = Cache::builder(backend(&url, false).await)
        .serializer(RawBytes)
        .build();
    let generation = text(&raw.raw("GET", [format!("{{{ns}:}}#g")]).await.unwrap());
    let stored = raw
        .raw("GET", [format!("{{{ns}:}}{generation}.k")])
        .await
        .unwrap();
    assert_eq!(text(&stored), "1");

    assert_eq!(
        one.clear().await.unwrap(),
        None,
        "a clear cannot count keys"
    );
    for (key, who) in [("k", &two), ("a", &two), ("b", &one), ("n", &one)] {
        assert_eq!(
            who.get::<i32>(key).await.unwrap(),
            None,
            "{key} after the clear"
        );
    }
    assert!(!two.exists("k").await.unwrap());
    assert_eq!(other.get::<i32>("k").await.unwrap(), Some(9));
    assert_eq!(plain.get::<i32>("no-namespace").await.unwrap(), Some(7));

    // the new generation works like the old one
    assert_eq!(two.increment("n", 1).await.unwrap(), 1);
    two.with_ttl(Duration::from_secs(60))
        .set("k", &2)
        .await
        .unwrap();
    assert!(matches!(
        one.ttl("k").await.unwrap(),
        cache_core::KeyTtl::Remaining(d) if d <= Duration::from_secs(60)
    ));
    assert!(one.compare_and_set("k", Some(&2), &3).await.unwrap());
    assert_eq!(two.get::<i32>("k").await.unwrap(), Some(3));

    // the counter lost: a random new generation, the namespace empty, nothing older back
    raw.raw("DEL", [format!("{{{ns}:}}#g")]).await.unwrap();
    assert_eq!(one.get::<i32>("k").await.unwrap(), None);
    assert_eq!(two.get::<i32>("n").await.unwrap(), None);
    one.set("k", &4).await.unwrap();
    assert_eq!(two.get::<i32>("k").await.unwrap(), Some(4));

    // a prefix that is not a group cannot be cleared by a generation
    let piped = Cache::builder(backend(&url, false).await)
        .namespace(random_namespace())
        .key_builder(cache_core::testkit::PipeKeyBuilder)
        .build();
    piped.set("k", &1).await.unwrap();
    let e = piped.clear().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(piped.get::<i32>("k").await.unwrap(), Some(1));
}

/// With the sweep on, the keys of a cleared generation leave the server in the background,
/// and keys written after the clear stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_cleared_generations_and_keeps_later_writes() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let ns = random_namespace();
    let cache = Cache::builder(backend(&url, true).await)
        .namespace(ns.clone())
        .serializer(RawBytes)
        .build();
    let keys: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
    cache
        .multi_set(
            keys.iter()
                .map(|k| (k.as_str(), Bytes::from_static(b"old"))),
        )
        .await
        .unwrap();
    cache.clear().await.unwrap();
    cache
        .set("after", &Bytes::from_static(b"new"))
        .await
        .unwrap();
    let raw = Cache::builder(backend(&url, false).await)
        .serializer(RawBytes)
        .build();
    let pattern = format!("{{{ns}:}}*");
    let started = Instant::now();
    let left = loop {
        let left = scan(&raw, &pattern).await;
        // the counter and the key written after the clear
        if left.len() <= 2 || started.elapsed() > Duration::from_secs(30) {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        left.len(),
        2,
        "the sweep left {} keys: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    assert_eq!(
        cache.get("after").await.unwrap(),
        Some(Bytes::from_static(b"new"))
    );
}

/// `INFO commandstats` calls of `command` (0 when it never ran).
async fn calls(cache: &Cache<RawBytes>, command: &str) -> u64 {
    let info = text(&cache.raw("INFO", ["commandstats"]).await.unwrap());
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a call count"))
}

/// On a server holding two million other keys: with generations, `clear()` is one script
/// and no `SCAN` at all (its cost does not grow with the keyspace); without, a clear cut by
/// its deadline says it is incomplete and how many keys it removed, and a second clear
/// finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_among_millions_of_keys_is_one_command_or_reports_itself_cut() {
    let Some(server) = Server::start(ServerKind::Redis, &["--enable-debug-command", "local"])
    else {
        return;
    };
    let url = server.url();
    let raw = Cache::builder(connect(&url, false, false).await)
        .serializer(RawBytes)
        .timeout(Duration::from_secs(120))
        .build();
    raw.raw("DEBUG", ["POPULATE", "2000000", "other"])
        .await
        .expect("DEBUG POPULATE");
    let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();

    // with generations
    let generations = Cache::builder(backend(&url, false).await)
        .namespace("gen")
        .serializer(RawBytes)
        .build();
    for chunk in keys.chunks(1000) {
        generations
            .multi_set(chunk.iter().map(|k| (k.as_str(), Bytes::from_static(b"v"))))
            .await
            .unwrap();
    }
    raw.raw("CONFIG", ["RESETSTAT"]).await.unwrap();
    generations.clear().await.unwrap();
    assert_eq!(calls(&raw, "scan").await, 0, "no SCAN");
    assert_eq!(
        calls(&raw, "evalsha").await + calls(&raw, "eval").await,
        1,
        "one script"
    );
    assert_eq!(generations.get::<Bytes>("k1").await.unwrap(), None);

    // without: a deadline far shorter than a walk of two million keys; a plugin sees what
    // each clear removed
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let scanning = Cache::builder(connect(&url, false, false).await)
        .namespace("scan")
        .serializer(RawBytes)
        .plugin(
            move |info: &cache_core::CommandInfo<'_>, outcome: &cache_core::Outcome| {
                if info.command == cache_core::Command::Clear {
                    record
                        .lock()
                        .unwrap()
                        .push((outcome.error, outcome.removed));
                }
            },
        )
        .build();
    for chunk in keys.chunks(1000) {
        scanning
            .multi_set(chunk.iter().map(|k| (k.as_str(), Bytes::from_static(b"v"))))
            .await
            .unwrap();
    }
    let e = scanning
        .with_timeout(Duration::from_millis(50))
        .clear()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:#}");
    assert!(e.to_string().contains("incomplete"), "{e}");
    assert!(e.context_value("removed").is_some(), "{e:#}");
    let finished = scanning
        .with_timeout(Duration::from_secs(120))
        .clear()
        .await
        .unwrap();
    assert!(finished.is_some_and(|n| n > 0));
    // a page whose answer the deadline cut off was removed but not counted: a lower bound
    let removed_before: u64 = e.context_value("removed").unwrap().parse().unwrap();
    assert!(finished.unwrap_or(0) + removed_before <= keys.len() as u64);
    let left: Vec<Option<Bytes>> = scanning
        .with_timeout(Duration::from_secs(120))
        .multi_get(keys.iter().map(String::as_str))
        .await
        .unwrap();
    assert!(
        left.iter().all(Option::is_none),
        "the second clear finished it"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (
                Some(ErrorKind::Timeout),
                Some(removed_before).filter(|&n| n > 0)
            ),
            (None, finished),
        ],
        "plugins see what each clear removed, the interrupted one too"
    );
}

/// The counter evicted under memory pressure (`allkeys-random` picks it as readily as any
/// key): the namespace reads as empty from then on, never as an older generation. Each round
/// writes `k`, sometimes clears, and reads `k` back: a read returns the last value written
/// since the last clear, or nothing — never a value from before a clear.
#[tokio::test]
async fn an_evicted_counter_never_brings_back_a_cleared_value() {
    let Some(server) = Server::start(
        ServerKind::Redis,
        &["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-random"],
    ) else {
        return;
    };
    let ns = random_namespace();
    let cache = Cache::builder(backend(&server.url(), false).await)
        .namespace(ns.clone())
        .build();
    let raw = Cache::builder(backend(&server.url(), false).await)
        .serializer(RawBytes)
        .build();
    let counter = format!("{{{ns}:}}#g");
    let filler = Bytes::from(vec![b'x'; 2048]);
    let (mut losses, mut cleared_reads, mut hits) = (0, 0, 0);
    let mut since_clear: Option<u64>;
    // the counter as last read; the script makes a lost counter anew before it runs, so a
    // loss shows as a generation that changed without a clear
    let generation = || async {
        match raw.raw("GET", [counter.as_str()]).await.unwrap() {
            RawValue::Nil => None,
            v => Some(text(&v).parse::<u64>().expect("a generation")),
        }
    };
    let mut last = None;
    for i in 0..20_000u64 {
        cache.set("k", &i).await.unwrap();
        since_clear = Some(i);
        cache
            .with_serializer(RawBytes)
            .set(&format!("f{i}"), &filler)
            .await
            .unwrap();
        let cleared = i % 7 == 0;
        if cleared {
            cache.clear().await.unwrap();
            since_clear = None;
        }
        let now = generation().await;
        let expected = last.map(|g: u64| if cleared { g + 1 } else { g });
        if last.is_some() && now != expected {
            losses += 1;
        }
        last = now;
        match cache.get::<u64>("k").await.unwrap() {
            None if since_clear.is_none() => cleared_reads += 1,
            // evicted, or the counter was lost: a miss is always allowed
            None => {}
            Some(v) => {
                assert_eq!(
                    Some(v),
                    since_clear,
                    "round {i}: a value from before a clear"
                );
                hits += 1;
            }
        }
    }
    assert!(
        losses > 0,
        "the counter was never evicted: the scenario did not run"
    );
    assert!(
        cleared_reads > 1000 && hits > 1000,
        "{cleared_reads} / {hits}"
    );
}
