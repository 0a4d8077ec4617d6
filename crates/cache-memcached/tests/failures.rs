//! Failure handling and edge cases, on private memcached processes: a server stopped and
//! restarted under a three-server cache, bursts of timeouts, unfit keys, oversize values,
//! negative and overflowing counters, generations, raw commands.

use std::time::{Duration, Instant};

use async_memcached::{AsciiProtocol, Client, MetaProtocol};
use bytes::Bytes;
use cache_core::{Cache, DefaultKeyBuilder, ErrorKind, KeyBuilder, KeyTtl, RawBytes, RawValue};
use cache_memcached::{MemcachedBackend, MemcachedBuilder};
use cache_test_fixtures::{Server, ServerKind};

fn built(ns: &str, key: &str) -> String {
    DefaultKeyBuilder.build(key, Some(ns)).unwrap().into_owned()
}

async fn raw_client(address: &str) -> Client {
    Client::new(format!("tcp://{address}")).await.unwrap()
}

/// Waits until `f` gives `Ok`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = cache_core::Result<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still failing after {limit:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_only_its_keys_and_recovers_after_restart() {
    let Some(a) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let Some(mut b) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let Some(c) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .servers([a.address(), b.address(), c.address()])
        .pool_size(4)
        .retry_backoff(Duration::from_millis(100))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend.clone()).namespace("f").build();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    cache
        .multi_set(keys.iter().map(|k| (k, k.len())))
        .await
        .unwrap();
    let b_address = b.address();
    let on_b = |k: &String| backend.server_for_key(&built("f", k)) == b_address;
    let (b_keys, other_keys): (Vec<String>, Vec<String>) = keys.iter().cloned().partition(on_b);
    assert!(
        b_keys.len() > 50 && other_keys.len() > 150,
        "{} on b",
        b_keys.len()
    );

    b.kill();

    for k in &b_keys[..20] {
        let e = cache.get::<usize>(k).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.is_temporary());
        assert_eq!(e.context_value("server"), Some(b_address.as_str()));
        assert_eq!(
            cache.set(k, &0usize).await.unwrap_err().kind(),
            ErrorKind::Connection
        );
    }
    for k in &other_keys {
        assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(k.len()));
    }
    cache.set(&other_keys[0], &7usize).await.unwrap();
    let live: Vec<Option<usize>> = cache.multi_get(&other_keys).await.unwrap();
    assert!(live.iter().skip(1).all(Option::is_some));
    // a multi_get that spans the stopped server fails as a whole and names it
    let e = cache.multi_get::<usize, _, _>(&keys).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.to_string().contains(&b_address), "{e}");

    // with miss_on_server_down, reads of its keys are misses and the rest are answered
    let lenient = MemcachedBuilder::new()
        .servers([a.address(), b.address(), c.address()])
        .miss_on_server_down(true)
        .retry_backoff(Duration::from_millis(100))
        .build()
        .await
        .expect("builds while one of three servers is down");
    let lenient = Cache::builder(lenient).namespace("f").build();
    let got: Vec<Option<usize>> = lenient.multi_get(&keys).await.unwrap();
    for (k, v) in keys.iter().zip(&got) {
        if on_b(k) {
            assert_eq!(*v, None);
        } else if *k != other_keys[0] {
            assert_eq!(*v, Some(k.len()));
        }
    }
    assert_eq!(lenient.get::<usize>(&b_keys[0]).await.unwrap(), None);
    assert!(!lenient.exists(&b_keys[0]).await.unwrap());
    assert_eq!(
        lenient.set(&b_keys[0], &1usize).await.unwrap_err().kind(),
        ErrorKind::Connection,
        "writes still fail"
    );

    b.restart();

    let v = eventually(Duration::from_secs(5), || cache.get::<usize>(&b_keys[0])).await;
    assert_eq!(v, None, "a restarted memcached is empty");
    for k in &b_keys {
        cache.set(k, &1usize).await.unwrap();
        assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(1));
    }
    let all: Vec<Option<usize>> = cache.multi_get(&keys).await.unwrap();
    assert!(all.iter().all(Option::is_some));
    let stats = backend.connection_stats();
    assert!(
        stats.lost >= 1 && stats.failed >= 1 && stats.connected >= 4,
        "the stop lost b's connections, connecting to it failed, and it was reconnected: \
         {stats:?}"
    );
    drop((a, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_tiny_timeouts_leaves_a_healthy_pool() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .pool_size(4)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend.clone()).namespace("burst").build();
    cache.set("k", &"v").await.unwrap();
    let tasks: Vec<_> = (0..400u64)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let quick = cache.with_timeout(Duration::from_micros(1 + i % 300));
                match i % 4 {
                    0 => quick.get::<String>("k").await.map(|_| ()),
                    1 => quick.set("k", &"v").await,
                    2 => quick
                        .multi_get::<String, _, _>(["k", "x"])
                        .await
                        .map(|_| ()),
                    _ => quick.increment("n", 1).await.map(|_| ()),
                }
            })
        })
        .collect();
    let mut timeouts = 0;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            timeouts += 1;
        }
    }
    assert!(timeouts > 0, "the burst must hit its deadlines");
    for s in backend.status() {
        assert!(s.connections <= 4, "{s:?}");
    }
    // every slot is usable again: 64 concurrent calls on 4 connections all succeed
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    assert_eq!(cache.get::<String>("k").await?.as_deref(), Some("v"));
                    cache.set("k", &"v").await?;
                }
                Ok::<(), cache_core::Error>(())
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("no connection slot leaked");

    // the backend's own command timeout behaves the same way
    let strict = MemcachedBuilder::new()
        .server(m.address())
        .pool_size(2)
        .command_timeout(Duration::from_micros(1))
        .build()
        .await
        .unwrap();
    let strict_cache = Cache::builder(strict.clone()).namespace("burst").build();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let c = strict_cache.clone();
            tokio::spawn(async move { c.get::<String>("k").await })
        })
        .collect();
    let mut strict_timeouts = 0;
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            assert!(e.to_string().contains("command timeout"), "{e}");
            strict_timeouts += 1;
        }
    }
    assert!(strict_timeouts > 0);
    assert!(strict.status().iter().all(|s| s.connections <= 2));
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn unfit_keys_are_encoded_injectively_and_plain_keys_stay_readable() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("keys").build();
    let long = "x".repeat(10_000);
    let keys = [
        "plain",
        "a b",
        "a_b",
        "a\tb",
        "a\nb",
        "a\rb",
        "a\u{0}b",
        "a\u{7f}b",
        "ünïcödé",
        "#h-looks-encoded",
        "#g",
        long.as_str(),
        &long[..240],
        &long[..241],
    ];
    for (i, k) in keys.iter().enumerate() {
        cache.set(k, &i).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(i), "{k:?}");
        assert!(cache.exists(k).await.unwrap());
    }
    let got: Vec<Option<usize>> = cache.multi_get(keys).await.unwrap();
    assert_eq!(got, (0..keys.len()).map(Some).collect::<Vec<_>>());
    assert_eq!(cache.multi_delete(keys).await.unwrap(), keys.len() as u64);

    // a plain key is stored verbatim: another memcached client sees it
    cache.set("shared", &42).await.unwrap();
    let mut client = raw_client(&m.address()).await;
    let v = client.get("keys:shared").await.unwrap().unwrap();
    assert_eq!(v.data.as_deref(), Some(&b"42"[..]));
    // an unfit key is stored under its group and a SHA-256 digest, never rewritten
    cache.set("with space", &1).await.unwrap();
    assert!(client.get("keys:with_space").await.unwrap().is_none());
    let dump = cache.raw("get", ["keys:with space"]).await;
    assert_eq!(dump.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn oversize_values_are_refused_and_keep_the_old_value() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let max = cache_core::Backend::capability(&backend)
        .max_value_len
        .expect("memcached values are limited");
    let cache = Cache::builder(backend).namespace("big").build();
    let raw = cache.with_serializer(RawBytes);
    raw.set("v", &Bytes::from_static(b"old")).await.unwrap();
    let e = raw
        .set("v", &Bytes::from(vec![b'x'; max + 1]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("at most"), "{e}");
    let old: Option<Vec<u8>> = raw.get("v").await.unwrap();
    assert_eq!(old.as_deref(), Some(&b"old"[..]));
    let e = raw
        .multi_set([("v", Bytes::from(vec![b'x'; max + 1]))])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // the limit itself fits, even under the longest key memcached takes
    let longest = "k".repeat(250 - "big:".len());
    raw.set(&longest, &Bytes::from(vec![b'y'; max]))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = raw.get(&longest).await.unwrap();
    assert_eq!(back.map(|v| v.len()), Some(max));

    // a backend told a larger limit than the server has: the server's refusal is still an
    // InvalidArgument (memcached itself drops the old value in that case)
    let loose = MemcachedBuilder::new()
        .server(m.address())
        .max_item_size(4 << 20)
        .build()
        .await
        .unwrap();
    let loose = Cache::builder(loose)
        .namespace("big")
        .serializer(RawBytes)
        .build();
    let e = loose
        .set("w", &Bytes::from(vec![b'z'; 2 << 20]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    loose.set("w", &Bytes::from_static(b"fine")).await.unwrap();
}

#[tokio::test]
async fn counters_are_exact_below_zero_and_refuse_overflow() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("ctr").build();
    assert_eq!(cache.increment("c", -5).await.unwrap(), -5);
    assert_eq!(cache.increment("c", 3).await.unwrap(), -2);
    assert_eq!(cache.increment("c", 10).await.unwrap(), 8);
    assert_eq!(cache.increment("c", -8).await.unwrap(), 0);
    assert_eq!(cache.increment("c", -1).await.unwrap(), -1);
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("c").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"-1"[..]));

    cache.increment("max", i64::MAX).await.unwrap();
    let e = cache.increment("max", 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("overflow"), "{e}");
    assert_eq!(cache.get_counter("max").await.unwrap(), Some(i64::MAX));
    assert_eq!(cache.increment("max", -1).await.unwrap(), i64::MAX - 1);

    // a value memcached's own incr would accept but that is no i64 is refused, untouched
    let mut client = raw_client(&m.address()).await;
    client
        .set("ctr:huge", "18446744073709551615", None, None)
        .await
        .unwrap();
    assert_eq!(
        cache.increment("huge", 1).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let v = client.get("ctr:huge").await.unwrap().unwrap();
    assert_eq!(v.data.as_deref(), Some(&b"18446744073709551615"[..]));
    // a counter padded by memcached's native decr still counts
    client.set("ctr:pad", "10", None, None).await.unwrap();
    client.decrement("ctr:pad", 1).await.unwrap();
    assert_eq!(cache.increment("pad", 1).await.unwrap(), 10);

    // the negative path keeps the TTL too
    cache
        .with_ttl(Duration::from_secs(100))
        .set("t", &5)
        .await
        .unwrap();
    assert_eq!(cache.increment("t", -10).await.unwrap(), -5);
    let left = cache.ttl("t").await.unwrap().remaining().expect("ttl kept");
    assert!(
        left > Duration::from_secs(95) && left <= Duration::from_secs(100),
        "{left:?}"
    );
}

#[tokio::test]
async fn exists_leaves_the_cas_token_alone() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("cas").build();
    cache.set("k", &1).await.unwrap();
    let mut client = raw_client(&m.address()).await;
    let before = client
        .meta_get("cas:k", false, None, Some(&["c"]))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(cache.exists("k").await.unwrap());
    }
    let after = client
        .meta_get("cas:k", false, None, Some(&["c"]))
        .await
        .unwrap();
    assert_eq!(before.unwrap().cas, after.unwrap().cas);
}

#[tokio::test]
async fn ttls_round_up_and_long_ones_become_absolute() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("ttl").build();
    // 40 days: sent as an absolute time, read back as about 40 days
    let forty_days = Duration::from_secs(40 * 86_400);
    cache.with_ttl(forty_days).set("long", &1).await.unwrap();
    let left = cache.ttl("long").await.unwrap().remaining().unwrap();
    assert!(
        left <= forty_days && left > forty_days - Duration::from_secs(5),
        "{left:?}"
    );
    assert!(
        cache
            .expire("long", Duration::from_secs(31 * 86_400))
            .await
            .unwrap()
    );
    assert!(cache.exists("long").await.unwrap());
    // a sub-second TTL lives at least as long as asked
    for _ in 0..3 {
        cache
            .with_ttl(Duration::from_millis(300))
            .set("short", &1)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(290)).await;
        assert!(cache.exists("short").await.unwrap(), "expired early");
    }
    assert!(cache.expire("short", cache_core::Ttl::Never).await.unwrap());
    assert_eq!(cache.ttl("short").await.unwrap(), KeyTtl::NoExpiry);
}

#[tokio::test]
async fn clear_needs_generations_and_wipe_all_flushes_every_server() {
    let Some(a) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let Some(b) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let plain = MemcachedBuilder::new()
        .servers([a.address(), b.address()])
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(plain.clone()).namespace("w").build();
    let e = cache.clear().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    // called directly, the backend says how to get a scoped clear
    let e = cache_core::Backend::clear(
        &plain,
        &cache_core::CallContext::new(cache_core::Command::Clear),
        cache_core::ClearScope::Namespace {
            namespace: "w",
            prefix: "w:",
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("namespace_generations"), "{e}");
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    cache.multi_set(keys.iter().map(|k| (k, 1))).await.unwrap();
    cache.wipe_all().await.unwrap();
    let got: Vec<Option<i32>> = cache.multi_get(&keys).await.unwrap();
    assert!(got.iter().all(Option::is_none));
}

#[tokio::test]
async fn generations_scope_clear_across_processes_and_never_resurrect() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let build = |refresh: Duration| {
        MemcachedBuilder::new()
            .server(m.address())
            .namespace_generations(true)
            .generation_refresh(refresh)
            .build()
    };
    let one = Cache::builder(build(Duration::from_millis(200)).await.unwrap())
        .namespace("g")
        .build();
    let two = Cache::builder(build(Duration::from_millis(200)).await.unwrap())
        .namespace("g")
        .build();
    let strict = Cache::builder(build(Duration::ZERO).await.unwrap())
        .namespace("g")
        .build();
    let other = Cache::builder(build(Duration::from_secs(60)).await.unwrap())
        .namespace("other")
        .build();
    one.set("k", &1).await.unwrap();
    other.set("k", &9).await.unwrap();
    assert_eq!(two.get::<i32>("k").await.unwrap(), Some(1));
    assert_eq!(strict.get::<i32>("k").await.unwrap(), Some(1));
    assert_eq!(one.clear().await.unwrap(), None);
    assert_eq!(
        one.get::<i32>("k").await.unwrap(),
        None,
        "seen at once here"
    );
    assert_eq!(
        strict.get::<i32>("k").await.unwrap(),
        None,
        "refresh 0 reads every time"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        two.get::<i32>("k").await.unwrap(),
        None,
        "seen after the refresh"
    );
    assert_eq!(other.get::<i32>("k").await.unwrap(), Some(9));

    // the generation record lost (evicted, flushed, deleted): a fresh random generation is
    // made, and no earlier generation comes back
    one.set("k", &2).await.unwrap();
    let md = strict.raw("md", ["g:#g"]).await.unwrap();
    assert_eq!(md, RawValue::Text("HD".into()));
    assert_eq!(strict.get::<i32>("k").await.unwrap(), None);
    strict.set("k", &3).await.unwrap();
    assert_eq!(strict.get::<i32>("k").await.unwrap(), Some(3));

    // a custom key builder without a `group:` prefix cannot be cleared by generation
    let piped = Cache::builder(build(Duration::from_secs(1)).await.unwrap())
        .namespace("p")
        .key_builder(cache_core::testkit::PipeKeyBuilder)
        .build();
    piped.set("k", &1).await.unwrap();
    assert_eq!(
        piped.clear().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn raw_commands_reach_the_server_unchanged() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let backend = MemcachedBuilder::new()
        .server(m.address())
        .build()
        .await
        .unwrap();
    let cache: Cache = Cache::builder(backend).namespace("r").build();
    let none: [&str; 0] = [];
    let RawValue::Map(versions) = cache.raw("version", none).await.unwrap() else {
        panic!("version answers a map per server")
    };
    assert_eq!(versions.len(), 1);
    assert!(versions[0].1.as_str().unwrap().starts_with('1'));
    assert_eq!(
        cache.raw("set", ["plain", "v"]).await.unwrap(),
        RawValue::Text("STORED".into())
    );
    assert_eq!(
        cache.raw("get", ["plain"]).await.unwrap(),
        RawValue::Bytes(Bytes::from_static(b"v"))
    );
    assert_eq!(
        cache.raw("ms", ["plain", "w", "MR"]).await.unwrap(),
        RawValue::Text("HD".into())
    );
    assert_eq!(
        cache.raw("ms", ["absent", "w", "MR"]).await.unwrap(),
        RawValue::Text("NS".into())
    );
    let RawValue::Map(fields) = cache.raw("mg", ["plain", "v", "c", "t"]).await.unwrap() else {
        panic!("mg answers a map")
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        field("value"),
        Some(RawValue::Bytes(Bytes::from_static(b"w")))
    );
    assert_eq!(field("ttl"), Some(RawValue::Int(-1)));
    assert!(matches!(field("cas"), Some(RawValue::Int(_))));
    assert_eq!(
        cache.raw("mg", ["absent", "v"]).await.unwrap(),
        RawValue::Nil
    );
    assert_eq!(
        cache
            .raw("incr", vec![RawValue::from("n"), RawValue::Int(1)])
            .await
            .unwrap(),
        RawValue::Nil
    );
    let RawValue::Map(ma) = cache.raw("ma", ["n", "N0", "J5", "v"]).await.unwrap() else {
        panic!("ma with v answers a map")
    };
    assert_eq!(ma[0].1, RawValue::Bytes(Bytes::from_static(b"5")));
    assert_eq!(
        cache.raw("md", ["plain"]).await.unwrap(),
        RawValue::Text("HD".into())
    );
    assert_eq!(
        cache.raw("md", ["plain"]).await.unwrap(),
        RawValue::Text("NF".into())
    );
    let e = cache.raw("shutdown", none).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("known"), "{e}");
}

#[tokio::test]
async fn build_needs_one_reachable_server_and_close_is_final() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let e = MemcachedBuilder::new()
        .server(dead.clone())
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    // the server's own error, with its address, is the source
    assert!(format!("{e:#}").contains(&dead), "{e:#}");
    let e = MemcachedBuilder::new().build().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);

    let backend: MemcachedBackend = MemcachedBuilder::new()
        .server(m.address())
        .server(dead)
        .build()
        .await
        .expect("one of two servers answers");
    let cache = Cache::builder(backend.clone()).build();
    cache_core::Backend::close(
        &backend,
        &cache_core::CallContext::new(cache_core::Command::Close),
    )
    .await
    .unwrap();
    cache_core::Backend::close(
        &backend,
        &cache_core::CallContext::new(cache_core::Command::Close),
    )
    .await
    .unwrap();
    assert_eq!(
        cache_core::Backend::get(
            &backend,
            &cache_core::CallContext::new(cache_core::Command::Get),
            "k"
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::Closed
    );
    assert!(backend.status().iter().all(|s| s.connections == 0));
    drop(cache);
}
