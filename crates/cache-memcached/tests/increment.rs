//! `increment` against `CACHE_TEST_MEMCACHED_URL`: one round trip (a single `ma`, counted by
//! a line-counting proxy) for a counter the pool last wrote, whichever of its connections
//! carries it and however many tasks increment it at once, and the exact compare-and-swap
//! path whenever that does not apply: the value was changed by another write (to text
//! memcached's arithmetic would accept but this crate refuses, to a negative number, to a
//! number past `i64::MAX`), deleted, or the result would overflow or be negative. On a
//! private memcached: a flush and a restart, after which a remembered CAS unique is never
//! sent, even when the restarted server gives the same unique to other text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cache_core::testkit::LineProxy;
use cache_core::{Backend, CallContext, Command, DefaultKeyBuilder, ErrorKind, KeyBuilder, OpSet};
use cache_memcached::{MemcachedBackend, MemcachedBuilder, MemcachedConfig};
use cache_test_fixtures::{Server, ServerKind};

const ONE: &str = "CACHE_TEST_MEMCACHED_URL";

fn ctx() -> CallContext<'static> {
    CallContext::new(Command::Increment)
}

fn built(ns: &str, key: &str) -> String {
    DefaultKeyBuilder.build(key, Some(ns)).unwrap().into_owned()
}

/// Command lines (first token of each line) a client sent through a [`Proxy`]; the data
/// blocks of writes are counted under their first token too.
#[derive(Default)]
struct Lines(Mutex<HashMap<String, usize>>);

impl Lines {
    fn count(&self, line: &[u8]) {
        let word = line
            .split(|&b| b == b' ' || b == b'\r')
            .next()
            .unwrap_or(b"");
        let word = String::from_utf8_lossy(word).into_owned();
        *self.0.lock().unwrap().entry(word).or_default() += 1;
    }

    fn take(&self) -> HashMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A proxy in front of one memcached server that counts the lines going up.
struct Proxy {
    address: String,
    lines: Arc<Lines>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let lines = Arc::new(Lines::default());
        let counted = lines.clone();
        let proxy = LineProxy::start(upstream, move |line| counted.count(line)).await;
        Proxy {
            address: proxy.address().to_owned(),
            lines,
        }
    }
}

/// A backend talking to the test server through a counting proxy, and the proxy.
async fn counted() -> Option<(MemcachedBackend, Proxy)> {
    let url = cache_core::testkit::server_url(ONE)?;
    let config = MemcachedConfig::from_url(&url).expect("a memcached:// URL");
    let proxy = Proxy::start(config.servers[0].address.clone()).await;
    let b = MemcachedBuilder::new()
        .servers([proxy.address.clone()])
        .build()
        .await
        .expect("memcached answers");
    proxy.lines.take();
    Some((b, proxy))
}

fn only_ma() -> HashMap<String, usize> {
    HashMap::from([("ma".to_owned(), 1)])
}

async fn raw_value(b: &MemcachedBackend, key: &str) -> Option<Bytes> {
    b.get(&ctx(), key).await.unwrap()
}

/// After a first write through memcached's arithmetic, every increment of the counter by a
/// non-negative delta is one `ma` and nothing else, with exact results; a decrement writes
/// its exact text (no padding), and after one more compare-and-swap the next increment is one
/// `ma` again.
#[tokio::test]
async fn a_known_counter_is_one_meta_arithmetic() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    let k = built(&cache_core::testkit::random_namespace(), "n");
    assert_eq!(b.increment(&ctx(), &k, 5).await.unwrap(), 5);
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 6);
    proxy.lines.take();
    let mut expected = 6i64;
    for delta in [3, 0, 1, 1_000_000, 7] {
        expected += delta;
        assert_eq!(b.increment(&ctx(), &k, delta).await.unwrap(), expected);
        assert_eq!(proxy.lines.take(), only_ma(), "one ma for {delta:+}");
    }
    assert_eq!(
        raw_value(&b, &k).await,
        Some(Bytes::from(expected.to_string()))
    );
    assert_eq!(b.increment(&ctx(), &k, -1_000_010).await.unwrap(), 7);
    assert_eq!(raw_value(&b, &k).await, Some(Bytes::from("7")));
    assert_eq!(b.increment(&ctx(), &k, 3).await.unwrap(), 10);
    proxy.lines.take();
    assert_eq!(b.increment(&ctx(), &k, 2).await.unwrap(), 12);
    assert_eq!(proxy.lines.take(), only_ma());
    assert_eq!(raw_value(&b, &k).await, Some(Bytes::from("12")));
    b.delete(&ctx(), &k).await.unwrap();
}

/// A write by anyone else changes the CAS unique: the next increment takes the exact path and
/// judges the new text itself. Text memcached's `incr` would take as a number (a sign, leading
/// blanks or zeros, trailing junk after a blank, `-0`, past `i64::MAX`) stays refused and
/// untouched; a negative number is incremented exactly.
#[tokio::test]
async fn another_write_sends_the_next_increment_down_the_exact_path() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    let k = built(&cache_core::testkit::random_namespace(), "n");
    for text in [
        "abc",
        "+5",
        " 5",
        "007",
        "5 x",
        "-0",
        "",
        "9223372036854775808",
        "18446744073709551615",
        "-18446744073709551615",
    ] {
        b.increment(&ctx(), &k, 1).await.unwrap();
        b.increment(&ctx(), &k, 1).await.unwrap();
        proxy.lines.take();
        b.set(&ctx(), &k, Bytes::from(text), OpSet::new(None))
            .await
            .unwrap();
        let e = b.increment(&ctx(), &k, 1).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{text:?}: {e}");
        assert_eq!(raw_value(&b, &k).await, Some(Bytes::from(text)), "{text:?}");
        // nor does a later increment through the same connection take it
        let e = b.increment(&ctx(), &k, 0).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{text:?}: {e}");
        assert_eq!(raw_value(&b, &k).await, Some(Bytes::from(text)), "{text:?}");
        b.delete(&ctx(), &k).await.unwrap();
    }

    b.increment(&ctx(), &k, 1).await.unwrap();
    b.increment(&ctx(), &k, 1).await.unwrap();
    b.set(&ctx(), &k, Bytes::from("-5"), OpSet::new(None))
        .await
        .unwrap();
    assert_eq!(b.increment(&ctx(), &k, 3).await.unwrap(), -2);
    assert_eq!(raw_value(&b, &k).await, Some(Bytes::from("-2")));
    assert_eq!(b.increment(&ctx(), &k, 5).await.unwrap(), 3);
    assert_eq!(b.increment(&ctx(), &k, 5).await.unwrap(), 8);
    b.delete(&ctx(), &k).await.unwrap();
}

/// Two backends (two connections) on one counter: each sees the other's writes, no update is
/// lost.
#[tokio::test]
async fn increments_through_another_connection_are_not_lost() {
    let (Some((a, _pa)), Some((b, _pb))) = (counted().await, counted().await) else {
        return;
    };
    let k = built(&cache_core::testkit::random_namespace(), "n");
    let mut expected = 0;
    for i in 0..20i64 {
        let (first, second) = if i % 3 == 0 { (&a, &b) } else { (&b, &a) };
        expected += i;
        assert_eq!(first.increment(&ctx(), &k, i).await.unwrap(), expected);
        expected -= 1;
        assert_eq!(second.increment(&ctx(), &k, -1).await.unwrap(), expected);
    }
    a.delete(&ctx(), &k).await.unwrap();
}

/// A known counter whose result would pass `i64::MAX` is refused without any `ma` reaching
/// the server (nobody ever sees an out-of-range value) and keeps its value; a result below 0
/// is written exactly by the compare-and-swap path.
#[tokio::test]
async fn overflow_and_negative_results_never_use_memcached_arithmetic() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    let k = built(&cache_core::testkit::random_namespace(), "n");
    assert_eq!(
        b.increment(&ctx(), &k, i64::MAX - 1).await.unwrap(),
        i64::MAX - 1
    );
    assert_eq!(b.increment(&ctx(), &k, 0).await.unwrap(), i64::MAX - 1);
    proxy.lines.take();
    let e = b.increment(&ctx(), &k, 2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(proxy.lines.take(), HashMap::from([("mg".to_owned(), 1)]));
    assert_eq!(
        raw_value(&b, &k).await,
        Some(Bytes::from((i64::MAX - 1).to_string()))
    );
    proxy.lines.take();
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), i64::MAX);
    assert_eq!(proxy.lines.take(), only_ma());
    let e = b.increment(&ctx(), &k, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        raw_value(&b, &k).await,
        Some(Bytes::from(i64::MAX.to_string()))
    );

    b.set(&ctx(), &k, Bytes::from("3"), OpSet::new(None))
        .await
        .unwrap();
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 4);
    assert_eq!(b.increment(&ctx(), &k, -10).await.unwrap(), -6);
    assert_eq!(raw_value(&b, &k).await, Some(Bytes::from("-6")));
    assert_eq!(b.increment(&ctx(), &k, 6).await.unwrap(), 0);
    b.delete(&ctx(), &k).await.unwrap();
}

/// One-`ma` increments keep the key's TTL; a remembered counter that was deleted is created
/// again with `delta` and no expiry.
#[tokio::test]
async fn the_ttl_is_kept_and_a_deleted_counter_comes_back_without_expiry() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    let k = built(&cache_core::testkit::random_namespace(), "n");
    b.increment(&ctx(), &k, 1).await.unwrap();
    assert!(
        b.expire(&ctx(), &k, Some(Duration::from_secs(100)))
            .await
            .unwrap()
    );
    b.increment(&ctx(), &k, 1).await.unwrap();
    proxy.lines.take();
    for n in 3..10 {
        assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), n);
        assert_eq!(proxy.lines.take(), only_ma());
    }
    let e = b.get_with_ttl(&ctx(), &k).await.unwrap().unwrap();
    assert_eq!(e.value, Bytes::from("9"));
    let t = e.ttl.expect("the TTL is kept");
    assert!(
        t <= Duration::from_secs(100) && t >= Duration::from_secs(95),
        "{t:?}"
    );

    assert!(b.delete(&ctx(), &k).await.unwrap());
    assert_eq!(b.increment(&ctx(), &k, 4).await.unwrap(), 4);
    let e = b.get_with_ttl(&ctx(), &k).await.unwrap().unwrap();
    assert_eq!(e.value, Bytes::from("4"));
    assert_eq!(e.ttl, None);
    b.delete(&ctx(), &k).await.unwrap();
}

/// Opens every connection of `b`'s pool (one server): rounds of concurrent reads until the
/// pool holds `pool_size` connections.
async fn fill_pool(b: &MemcachedBackend, pool_size: usize) {
    for _ in 0..200 {
        if b.status()[0].connections == pool_size {
            return;
        }
        let reads = (0..4 * pool_size).map(|i| {
            let b = b.clone();
            tokio::spawn(async move { b.get(&ctx(), &format!("fill-{i}")).await.unwrap() })
        });
        for r in reads.collect::<Vec<_>>() {
            r.await.unwrap();
        }
    }
    panic!(
        "the pool never opened {pool_size} connections: {:?}",
        b.status()
    );
}

/// The memory is the pool's: with the default pool of 8 connections all open, 8 tasks
/// incrementing one counter — while other tasks keep connections busy with reads, so the
/// increments go through different connections — send one `ma` per increment and nothing
/// else, and every increment is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_the_pool_are_one_meta_arithmetic_each() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    fill_pool(&b, 8).await;
    let k = built(&cache_core::testkit::random_namespace(), "n");
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 1);
    proxy.lines.take();
    const TASKS: i64 = 8;
    const EACH: i64 = 50;
    let incrementing = (0..TASKS).map(|t| {
        let (b, k) = (b.clone(), k.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..EACH {
                seen.push(b.increment(&ctx(), &k, t + i + 1).await.unwrap());
            }
            seen
        })
    });
    let reading = (0..TASKS).map(|t| {
        let b = b.clone();
        tokio::spawn(async move {
            for i in 0..EACH {
                b.get(&ctx(), &format!("other-{t}-{i}")).await.unwrap();
            }
        })
    });
    let reading: Vec<_> = reading.collect();
    let mut seen = Vec::new();
    for task in incrementing.collect::<Vec<_>>() {
        seen.extend(task.await.unwrap());
    }
    for task in reading {
        task.await.unwrap();
    }
    let total: i64 = 1
        + (0..TASKS)
            .map(|t| (0..EACH).map(|i| t + i + 1).sum::<i64>())
            .sum::<i64>();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len() as i64, TASKS * EACH, "every result is distinct");
    assert_eq!(*seen.last().unwrap(), total);
    let lines = proxy.lines.take();
    assert_eq!(
        lines,
        HashMap::from([
            ("ma".to_owned(), (TASKS * EACH) as usize),
            ("get".to_owned(), (TASKS * EACH) as usize),
        ]),
        "one ma per increment, one get per read"
    );
    assert_eq!(
        b.status()[0].connections,
        8,
        "no connection was opened since"
    );
    assert_eq!(
        raw_value(&b, &k).await,
        Some(Bytes::from(total.to_string()))
    );
    b.delete(&ctx(), &k).await.unwrap();
}

/// A backend of its own (a pool of 8) on the test server, without proxy.
async fn direct(url: &str) -> MemcachedBackend {
    let config = MemcachedConfig::from_url(url).expect("a memcached:// URL");
    MemcachedBuilder::new()
        .servers([config.servers[0].address.clone()])
        .build()
        .await
        .expect("memcached answers")
}

/// Two backends (two pools of 8) with 8 tasks each, incrementing and decrementing one
/// counter: the result is the exact sum, written as canonical decimal text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_from_two_pools_sum_exactly() {
    let Some(url) = cache_core::testkit::server_url(ONE) else {
        return;
    };
    let a = direct(&url).await;
    let b = direct(&url).await;
    let k = built(&cache_core::testkit::random_namespace(), "n");
    const TASKS: i64 = 8;
    const EACH: i64 = 40;
    // +, −, large and small deltas; the counter crosses 0 both ways
    let delta = |backend: i64, t: i64, i: i64| match (backend + t + i) % 5 {
        0 => -1_000 * (t + 1),
        1 => 3,
        2 => -7,
        3 => 997 * (i + 1),
        _ => i - t,
    };
    let tasks = [(0, a.clone()), (1, b.clone())]
        .into_iter()
        .flat_map(|(n, backend)| {
            let k = k.clone();
            (0..TASKS).map(move |t| {
                let (backend, k) = (backend.clone(), k.clone());
                tokio::spawn(async move {
                    for i in 0..EACH {
                        backend.increment(&ctx(), &k, delta(n, t, i)).await.unwrap();
                    }
                })
            })
        });
    for task in tasks.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    let total: i64 = (0..2)
        .flat_map(|n| (0..TASKS).flat_map(move |t| (0..EACH).map(move |i| delta(n, t, i))))
        .sum();
    assert_eq!(a.increment(&ctx(), &k, 0).await.unwrap(), total);
    assert_eq!(b.increment(&ctx(), &k, 0).await.unwrap(), total);
    assert_eq!(
        raw_value(&a, &k).await,
        Some(Bytes::from(total.to_string()))
    );
    a.delete(&ctx(), &k).await.unwrap();
}

/// Another client's `set` between two increments changes the CAS unique, even when it
/// writes the text the pool remembers: the guarded `ma` misses (`EX`) and the increment adds
/// to the value now stored. A key deleted and written again by another client is the same.
#[tokio::test]
async fn another_clients_write_between_increments_is_seen() {
    let Some((b, proxy)) = counted().await else {
        return;
    };
    let Some(url) = cache_core::testkit::server_url(ONE) else {
        return;
    };
    let other = direct(&url).await;
    let k = built(&cache_core::testkit::random_namespace(), "n");
    let three = |ma, mg| HashMap::from([("ma".to_owned(), ma), ("mg".to_owned(), mg)]);
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 1);
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 2);
    other
        .set(&ctx(), &k, Bytes::from("100"), OpSet::new(None))
        .await
        .unwrap();
    proxy.lines.take();
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 101);
    assert_eq!(
        proxy.lines.take(),
        three(2, 1),
        "the guarded ma, then mg and ma"
    );
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 102);
    assert_eq!(proxy.lines.take(), only_ma());

    // the very text the pool remembers, written again: a new unique all the same
    other
        .set(&ctx(), &k, Bytes::from("102"), OpSet::new(None))
        .await
        .unwrap();
    assert_eq!(other.increment(&ctx(), &k, 10).await.unwrap(), 112);
    other
        .set(&ctx(), &k, Bytes::from("102"), OpSet::new(None))
        .await
        .unwrap();
    proxy.lines.take();
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 103);
    assert_eq!(proxy.lines.take(), three(2, 1));

    // deleted and written again by another client
    assert!(other.delete(&ctx(), &k).await.unwrap());
    other
        .set(&ctx(), &k, Bytes::from("103"), OpSet::new(None))
        .await
        .unwrap();
    assert_eq!(b.increment(&ctx(), &k, 1).await.unwrap(), 104);
    assert!(other.delete(&ctx(), &k).await.unwrap());
    other
        .set(&ctx(), &k, Bytes::from("+5"), OpSet::new(None))
        .await
        .unwrap();
    let e = b.increment(&ctx(), &k, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(raw_value(&b, &k).await, Some(Bytes::from("+5")));
    b.delete(&ctx(), &k).await.unwrap();
}

/// The CAS unique a raw client reads for `key`.
async fn cas_of(client: &mut async_memcached::Client, key: &str) -> u64 {
    use async_memcached::MetaProtocol;
    let v = client
        .meta_get(key.as_bytes(), false, None, Some(&["c"]))
        .await
        .unwrap()
        .expect("the key exists");
    v.cas.expect("a CAS unique")
}

/// On a private memcached: after `flush_all` a remembered counter is created again; after a
/// restart, the restarted server gives the counter's key the very CAS unique the pool
/// remembers, holding text memcached's `incr` would take (`007`). The increment never sends
/// the remembered unique (it would turn `007` into `8`): it reads the text and refuses it,
/// and the value stays `007`. Once the key holds a counter again, increments are one round
/// trip again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_never_sees_a_remembered_unique() {
    use async_memcached::{AsciiProtocol, Client, MetaProtocol};
    let Some(mut server) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let dsn = format!("tcp://{}", server.address());
    let b = MemcachedBuilder::new()
        .servers([server.address()])
        .retry_backoff(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let k = "counter";

    // flush_all
    assert_eq!(b.increment(&ctx(), k, 5).await.unwrap(), 5);
    assert_eq!(b.increment(&ctx(), k, 1).await.unwrap(), 6);
    let mut raw = Client::new(&dsn).await.unwrap();
    raw.flush_all().await.unwrap();
    assert_eq!(b.increment(&ctx(), k, 2).await.unwrap(), 2);
    assert_eq!(b.increment(&ctx(), k, 2).await.unwrap(), 4);
    let remembered = cas_of(&mut raw, k).await;
    drop(raw);

    server.restart();
    let mut raw = Client::new(&dsn).await.unwrap();
    // the restarted server counts uniques from the start: spend them up to the remembered one
    let mut filler = 0;
    loop {
        let v = raw
            .meta_set(format!("filler-{filler}"), "x", false, None, Some(&["c"]))
            .await
            .unwrap()
            .and_then(|v| v.cas)
            .expect("a CAS unique");
        filler += 1;
        assert!(v < remembered, "uniques ran past {remembered}");
        if v + 1 == remembered {
            break;
        }
    }
    raw.set(k, "007", None, None).await.unwrap();
    assert_eq!(
        cas_of(&mut raw, k).await,
        remembered,
        "the same unique, other text"
    );

    // reads meet the connections to the old process first, fail and drop them, until one
    // goes through a new connection; the counter's memory is untouched by them
    let mut read = b.get(&ctx(), "other").await;
    for _ in 0..20 {
        if read.is_ok() {
            break;
        }
        read = b.get(&ctx(), "other").await;
    }
    assert_eq!(read.unwrap(), None, "the restarted server answers");
    let answer = b.increment(&ctx(), k, 1).await;
    let e = answer.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        raw.get(k).await.unwrap().and_then(|v| v.data),
        Some(b"007".to_vec()),
        "the remembered unique was never sent"
    );

    raw.set(k, "10", None, None).await.unwrap();
    assert_eq!(b.increment(&ctx(), k, 1).await.unwrap(), 11);
    assert_eq!(b.increment(&ctx(), k, 1).await.unwrap(), 12);
    let before = cas_of(&mut raw, k).await;
    assert_eq!(b.increment(&ctx(), k, 1).await.unwrap(), 13);
    assert_eq!(
        cas_of(&mut raw, k).await,
        before + 1,
        "one write and nothing else reached the server"
    );
}
