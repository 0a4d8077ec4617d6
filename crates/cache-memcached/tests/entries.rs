//! Values read with their remaining lifetime (`get_with_ttl`, `multi_get_with_ttl`): the TTL
//! memcached reports, of the folded key under namespace generations, misses and expired keys,
//! the three servers of `CACHE_TEST_MEMCACHED_CLUSTER_URL`, one pipelined round trip per
//! server (counted by a line-counting proxy), answers this crate must refuse, a server that is
//! down or silent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_memcached::{AsciiProtocol, Client};
use bytes::Bytes;
use cache_core::testkit::LineProxy;
use cache_core::{
    Backend, CallContext, Command, DefaultKeyBuilder, Entry, ErrorKind, KeyBuilder, OpSet,
};
use cache_memcached::{MemcachedBackend, MemcachedBuilder, MemcachedConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const ONE: &str = "CACHE_TEST_MEMCACHED_URL";
const CLUSTER: &str = "CACHE_TEST_MEMCACHED_CLUSTER_URL";

fn ctx() -> CallContext<'static> {
    CallContext::new(Command::Get)
}

fn built(ns: &str, key: &str) -> String {
    DefaultKeyBuilder.build(key, Some(ns)).unwrap().into_owned()
}

fn ttl(secs: u64) -> OpSet {
    OpSet::new(Some(Duration::from_secs(secs)))
}

async fn backend(var: &str, generations: bool) -> Option<MemcachedBackend> {
    let url = cache_core::testkit::server_url(var)?;
    let backend = MemcachedConfig::from_url(&url)
        .expect("a memcached:// URL")
        .into_builder()
        .namespace_generations(generations)
        .build()
        .await
        .expect("memcached answers");
    Some(backend)
}

/// The lifetime reported for a key written with `secs` seconds just before: at most `secs`, at
/// least `secs - 2` (memcached counts whole seconds on a clock that ticks once a second).
fn assert_about(entry: &Entry, secs: u64) {
    assert_within(entry, secs, 2);
}

/// The lifetime reported for a key written with `secs` seconds at most `slack` seconds ago.
fn assert_within(entry: &Entry, secs: u64, slack: u64) {
    let d = entry.ttl.expect("a key written with a TTL reports one");
    assert!(
        d <= Duration::from_secs(secs) && d >= Duration::from_secs(secs - slack),
        "{d:?} for a TTL of {secs} s"
    );
}

#[tokio::test]
async fn a_value_comes_with_the_lifetime_it_was_written_with() {
    for generations in [false, true] {
        let Some(b) = backend(ONE, generations).await else {
            return;
        };
        let ns = cache_core::testkit::random_namespace();
        let (short, long, forever) = (built(&ns, "a"), built(&ns, "b"), built(&ns, "c"));
        b.set(&ctx(), &short, Bytes::from_static(b"1"), ttl(60))
            .await
            .unwrap();
        b.set(&ctx(), &long, Bytes::from_static(b""), ttl(86_400))
            .await
            .unwrap();
        b.set(&ctx(), &forever, Bytes::from_static(b"3"), OpSet::new(None))
            .await
            .unwrap();

        let e = b.get_with_ttl(&ctx(), &short).await.unwrap().unwrap();
        assert_eq!(e.value, Bytes::from_static(b"1"));
        assert_about(&e, 60);
        let e = b.get_with_ttl(&ctx(), &long).await.unwrap().unwrap();
        assert_eq!(e.value, Bytes::new(), "an empty value is a hit");
        assert_about(&e, 86_400);
        let e = b.get_with_ttl(&ctx(), &forever).await.unwrap().unwrap();
        assert_eq!(e, Entry::new(Bytes::from_static(b"3"), None));

        let asked = [short.clone(), forever.clone(), long.clone(), short.clone()];
        let many = b.multi_get_with_ttl(&ctx(), &asked).await.unwrap();
        assert_about(many[0].as_ref().unwrap(), 60);
        assert_eq!(many[1], Some(Entry::new(Bytes::from_static(b"3"), None)));
        assert_about(many[2].as_ref().unwrap(), 86_400);
        assert_eq!(many[3], many[0]);

        // the lifetime follows expire
        assert!(
            b.expire(&ctx(), &forever, Some(Duration::from_secs(30)))
                .await
                .unwrap()
        );
        assert_about(
            &b.get_with_ttl(&ctx(), &forever).await.unwrap().unwrap(),
            30,
        );
        assert!(b.expire(&ctx(), &short, None).await.unwrap());
        assert_eq!(
            b.get_with_ttl(&ctx(), &short).await.unwrap().unwrap().ttl,
            None
        );
    }
}

/// With namespace generations the entry is the folded key's: a value stored under the
/// unfolded key (with another lifetime) is neither read nor its TTL reported.
#[tokio::test]
async fn with_generations_the_lifetime_is_the_folded_keys() {
    let Some(b) = backend(ONE, true).await else {
        return;
    };
    let ns = cache_core::testkit::random_namespace();
    let key = built(&ns, "k");
    let unfolded = b.server_for_key(&key).to_owned();
    let mut raw = Client::new(format!("tcp://{unfolded}")).await.unwrap();
    raw.set(key.as_str(), "unfolded", None, None).await.unwrap();
    assert_eq!(b.get_with_ttl(&ctx(), &key).await.unwrap(), None);
    assert_eq!(
        b.multi_get_with_ttl(&ctx(), std::slice::from_ref(&key))
            .await
            .unwrap(),
        vec![None]
    );
    b.set(&ctx(), &key, Bytes::from_static(b"folded"), ttl(40))
        .await
        .unwrap();
    let e = b.get_with_ttl(&ctx(), &key).await.unwrap().unwrap();
    assert_eq!(e.value, Bytes::from_static(b"folded"));
    assert_about(&e, 40);
    let many = b
        .multi_get_with_ttl(&ctx(), std::slice::from_ref(&key))
        .await
        .unwrap();
    assert_eq!(many, vec![Some(e)]);
    raw.delete(key.as_str()).await.unwrap();
}

#[tokio::test]
async fn missing_and_expired_keys_are_misses() {
    let Some(b) = backend(ONE, false).await else {
        return;
    };
    let ns = cache_core::testkit::random_namespace();
    let (brief, kept, never) = (built(&ns, "brief"), built(&ns, "kept"), built(&ns, "never"));
    b.set(&ctx(), &brief, Bytes::from_static(b"x"), ttl(1))
        .await
        .unwrap();
    let e = b.get_with_ttl(&ctx(), &brief).await.unwrap().unwrap();
    assert_eq!(
        e.ttl,
        Some(Duration::from_secs(1)),
        "a live key: at least 1 s"
    );
    // written for 1 s, gone at most 3 s later (whole seconds plus memcached's clock second)
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    b.set(&ctx(), &kept, Bytes::from_static(b"y"), ttl(60))
        .await
        .unwrap();
    assert_eq!(b.get_with_ttl(&ctx(), &brief).await.unwrap(), None);
    assert_eq!(b.get_with_ttl(&ctx(), &never).await.unwrap(), None);
    let many = b
        .multi_get_with_ttl(&ctx(), &[brief.clone(), kept.clone(), never.clone()])
        .await
        .unwrap();
    assert_eq!(many[0], None);
    assert_about(many[1].as_ref().unwrap(), 60);
    assert_eq!(many[2], None);
    // a key asked alone that misses: the pipeline still ends cleanly
    assert_eq!(
        b.multi_get_with_ttl(&ctx(), &[never.clone(), never])
            .await
            .unwrap(),
        vec![None, None]
    );
    assert_eq!(
        b.get_with_ttl(&ctx(), &kept).await.unwrap().unwrap().value,
        "y"
    );
}

#[tokio::test]
async fn a_closed_backend_refuses_both_reads() {
    let Some(b) = backend(ONE, false).await else {
        return;
    };
    b.close(&ctx()).await.unwrap();
    let e = b.get_with_ttl(&ctx(), "x:k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    let e = b
        .multi_get_with_ttl(&ctx(), &["x:k".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
}

/// Hits, misses and duplicates from every server of the cluster, in the caller's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_over_three_servers_keep_order_misses_and_duplicates() {
    for generations in [false, true] {
        let Some(b) = backend(CLUSTER, generations).await else {
            return;
        };
        let ns = cache_core::testkit::random_namespace();
        let stored: Vec<String> = (0..90).map(|i| built(&ns, &format!("s{i}"))).collect();
        for (i, k) in stored.iter().enumerate() {
            let op = if i % 2 == 0 {
                ttl(100 + i as u64)
            } else {
                OpSet::new(None)
            };
            b.set(&ctx(), k, Bytes::from(i.to_string()), op)
                .await
                .unwrap();
        }
        let servers: std::collections::HashSet<&str> =
            stored.iter().map(|k| b.server_for_key(k)).collect();
        assert_eq!(servers.len(), b.servers().len(), "keys on every server");

        let mut asked = Vec::new();
        let mut expected: Vec<Option<usize>> = Vec::new();
        for (i, k) in stored.iter().enumerate().rev() {
            asked.push(k.clone());
            expected.push(Some(i));
            if i % 3 == 0 {
                asked.push(built(&ns, &format!("missing{i}")));
                expected.push(None);
            }
            if i % 7 == 0 {
                asked.push(stored[0].clone());
                expected.push(Some(0));
            }
        }
        let got = b.multi_get_with_ttl(&ctx(), &asked).await.unwrap();
        assert_eq!(got.len(), asked.len());
        for ((entry, want), key) in got.iter().zip(&expected).zip(&asked) {
            match (entry, want) {
                (None, None) => {}
                (Some(e), Some(i)) => {
                    assert_eq!(e.value, Bytes::from(i.to_string()), "{key}");
                    if i % 2 == 0 {
                        // written one by one a moment ago
                        assert_within(e, 100 + *i as u64, 10);
                    } else {
                        assert_eq!(e.ttl, None, "{key}");
                    }
                }
                _ => panic!("{key}: got {entry:?}, expected {want:?}"),
            }
        }
        b.multi_delete(&ctx(), &stored).await.unwrap();
    }
}

/// Lines a client sent through a [`Proxy`]: meta gets (quiet or not), `mn` and anything else.
#[derive(Default)]
struct Lines {
    quiet_gets: AtomicUsize,
    gets: AtomicUsize,
    noops: AtomicUsize,
    other: AtomicUsize,
}

impl Lines {
    fn count(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        let tokens: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let counter = match tokens[0] {
            b"mg" if tokens.contains(&&b"q"[..]) => &self.quiet_gets,
            b"mg" => &self.gets,
            b"mn" => &self.noops,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> [usize; 4] {
        [
            self.quiet_gets.load(Ordering::SeqCst),
            self.gets.load(Ordering::SeqCst),
            self.noops.load(Ordering::SeqCst),
            self.other.load(Ordering::SeqCst),
        ]
    }
}

/// A proxy in front of one memcached server that counts the lines going up (the data
/// blocks of writes too: the counts are compared around reads only).
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

/// `get_with_ttl` is one meta get; `multi_get_with_ttl` sends each server one pipeline of
/// quiet meta gets for the keys it holds, ended by one `mn`: one round trip per server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_server() {
    let Some(url) = cache_core::testkit::server_url(CLUSTER) else {
        return;
    };
    let config = MemcachedConfig::from_url(&url).unwrap();
    let mut proxies = Vec::new();
    for s in &config.servers {
        proxies.push(Proxy::start(s.address.clone()).await);
    }
    let counted = MemcachedBuilder::new()
        .servers(proxies.iter().map(|p| p.address.clone()))
        .build()
        .await
        .unwrap();
    let ns = cache_core::testkit::random_namespace();
    let keys: Vec<String> = (0..100).map(|i| built(&ns, &format!("k{i}"))).collect();
    let written: Vec<(String, Bytes)> = keys
        .iter()
        .step_by(2)
        .map(|k| (k.clone(), Bytes::from(k.clone())))
        .collect();
    counted.multi_set(&ctx(), &written, ttl(120)).await.unwrap();
    let mut asked = keys.clone();
    asked.extend(keys[..10].iter().cloned());

    let before: Vec<[usize; 4]> = proxies.iter().map(|p| p.lines.snapshot()).collect();
    let got = counted.multi_get_with_ttl(&ctx(), &asked).await.unwrap();
    for (i, (e, k)) in got.iter().zip(&asked).enumerate() {
        assert_eq!(e.is_some(), i % 100 % 2 == 0, "{k}");
    }
    for (p, before) in proxies.iter().zip(&before) {
        let owned = asked
            .iter()
            .filter(|k| counted.server_for_key(k) == p.address)
            .count();
        assert!(owned > 0, "keys on every server");
        let [quiet, plain, noops, other] = p.lines.snapshot();
        assert_eq!(
            [
                quiet - before[0],
                plain - before[1],
                noops - before[2],
                other - before[3]
            ],
            [owned, 0, 1, 0],
            "server {}: one pipeline of quiet meta gets and one mn",
            p.address
        );
    }

    let one = &keys[0];
    let home = proxies
        .iter()
        .find(|p| p.address == counted.server_for_key(one))
        .unwrap();
    let before = home.lines.snapshot();
    let e = counted.get_with_ttl(&ctx(), one).await.unwrap().unwrap();
    assert_eq!(e.value, Bytes::from(one.clone()));
    assert!(e.ttl.is_some_and(|d| d <= Duration::from_secs(120)));
    let after = home.lines.snapshot();
    let sent: Vec<usize> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(sent, [0, 1, 0, 0], "one meta get");
    counted.multi_delete(&ctx(), &keys).await.unwrap();
}

/// A memcached stand-in that answers `version`, and meta gets with the answer `answer` gives
/// for the key (a line and a data block, without the key flag), adding `k<key>` in quiet mode.
/// An empty answer is no answer at all: the server stays silent on that connection from then on.
async fn fake_server(answer: fn(&str) -> Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut silent = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if silent {
                        continue;
                    }
                    let tokens: Vec<&str> = line.split(' ').collect();
                    let reply = match tokens[0] {
                        "version" => "VERSION 1.6.18\r\n".to_owned(),
                        "mn" => "MN\r\n".to_owned(),
                        "mg" => {
                            let quiet = tokens.contains(&"q");
                            match answer(tokens[1]) {
                                None if quiet => String::new(),
                                None => "EN\r\n".to_owned(),
                                Some(a) if a.is_empty() => {
                                    silent = true;
                                    a
                                }
                                Some(a) if quiet => {
                                    let (head, data) = a.split_once("\r\n").unwrap();
                                    format!("{head} k{}\r\n{data}", tokens[1])
                                }
                                Some(a) => a,
                            }
                        }
                        _ => "ERROR\r\n".to_owned(),
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// A `t` flag that is missing, out of range or not a number is an error naming the server, not
/// a panic or a made-up lifetime, and the next read works.
#[tokio::test]
async fn a_malformed_lifetime_is_a_clear_error() {
    let address = fake_server(|key| match key.rsplit(':').next() {
        Some("good") => Some("VA 1 t31\r\nx\r\n".into()),
        Some("none") => Some("VA 1\r\nx\r\n".into()),
        Some("negative") => Some("VA 1 t-5\r\nx\r\n".into()),
        Some("text") => Some("VA 1 tsoon\r\nx\r\n".into()),
        _ => None,
    })
    .await;
    let b = MemcachedBuilder::new()
        .servers([address.clone()])
        .build()
        .await
        .unwrap();
    let good = Some(Entry::new(
        Bytes::from_static(b"x"),
        Some(Duration::from_secs(30)),
    ));
    assert_eq!(b.get_with_ttl(&ctx(), "f:good").await.unwrap(), good);
    for bad in ["f:none", "f:negative", "f:text"] {
        let e = b.get_with_ttl(&ctx(), bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{bad}: {e}");
        assert_eq!(e.context_value("server"), Some(address.as_str()), "{bad}");
        if bad != "f:text" {
            assert!(e.to_string().contains("t flag"), "{bad}: {e}");
        }
        let e = b
            .multi_get_with_ttl(&ctx(), &["f:good".into(), bad.into()])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend, "{bad}: {e}");
        assert_eq!(b.get_with_ttl(&ctx(), "f:good").await.unwrap(), good);
    }
    assert_eq!(
        b.multi_get_with_ttl(&ctx(), &["f:good".into(), "f:gone".into()])
            .await
            .unwrap(),
        vec![good, None]
    );
}

/// A server that is down fails the reads of its keys and names itself; with
/// `miss_on_server_down` its keys are misses and the other servers' keys are answered.
#[tokio::test]
async fn a_down_server_fails_its_keys_or_makes_them_misses() {
    let alive = fake_server(|_| Some("VA 1 t-1\r\nx\r\n".into())).await;
    let dead = format!("127.0.0.1:{}", cache_test_fixtures::free_port());
    let hit = Some(Entry::new(Bytes::from_static(b"x"), None));
    for lenient in [false, true] {
        let b = MemcachedBuilder::new()
            .servers([alive.clone(), dead.clone()])
            .miss_on_server_down(lenient)
            .retry_backoff(Duration::from_millis(20))
            .connect_timeout(Duration::from_millis(500))
            .build()
            .await
            .unwrap();
        let keys: Vec<String> = (0..40).map(|i| format!("d:k{i}")).collect();
        let on_dead = |k: &str| b.server_for_key(k) == dead;
        let dead_key = keys
            .iter()
            .find(|k| on_dead(k))
            .expect("a key on each server");
        let live_key = keys
            .iter()
            .find(|k| !on_dead(k))
            .expect("a key on each server");
        assert_eq!(b.get_with_ttl(&ctx(), live_key).await.unwrap(), hit);
        let one = b.get_with_ttl(&ctx(), dead_key).await;
        let many = b.multi_get_with_ttl(&ctx(), &keys).await;
        if lenient {
            assert_eq!(one.unwrap(), None);
            for (k, e) in keys.iter().zip(many.unwrap()) {
                assert_eq!(e, if on_dead(k) { None } else { hit.clone() }, "{k}");
            }
        } else {
            for e in [one.unwrap_err(), many.unwrap_err()] {
                assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
                assert_eq!(e.context_value("server"), Some(dead.as_str()), "{e}");
            }
        }
    }
}

/// A server that does not answer: both reads end at the command timeout.
#[tokio::test]
async fn a_silent_server_times_out() {
    let address = fake_server(|_| Some(String::new())).await;
    let b = MemcachedBuilder::new()
        .servers([address])
        .command_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let e = b.get_with_ttl(&ctx(), "s:k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let e = b
        .multi_get_with_ttl(&ctx(), &["s:k".into(), "s:j".into()])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}
