//! Namespace generations under races and outages, on private memcached processes: a clear
//! racing reads that are in flight, the counter's server down while the data server is up,
//! `miss_on_server_down` on a generation read, and a lost counter.

use std::time::Duration;

use cache_core::{Cache, ErrorKind};
use cache_memcached::{MemcachedBackend, MemcachedBuilder};
use cache_test_fixtures::{Server, ServerKind};

async fn backend(servers: &[String], refresh: Duration, lenient: bool) -> MemcachedBackend {
    MemcachedBuilder::new()
        .servers(servers.iter().cloned())
        .pool_size(8)
        .namespace_generations(true)
        .generation_refresh(refresh)
        .miss_on_server_down(lenient)
        .retry_backoff(Duration::from_millis(50))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap()
}

fn cache(backend: &MemcachedBackend, namespace: &str) -> Cache {
    Cache::builder(backend.clone()).namespace(namespace).build()
}

/// A clear made by this process is seen by it at once, even when reads of the namespace's
/// generation were in flight while it ran: none of them may install the pre-clear generation
/// afterwards. Over many trials: no read after the clear returns a cleared value, and no write
/// after it goes into the dead generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_is_seen_at_once_despite_generation_reads_in_flight() {
    let Some(m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let servers = [m.address()];
    // a long refresh: a stale generation installed by a late read would stay for the whole test
    let racing = backend(&servers, Duration::from_secs(600), false).await;
    let strict = backend(&servers, Duration::ZERO, false).await;
    const TRIALS: usize = 400;
    let (mut stale_reads, mut lost_writes, mut stale_after_write, mut stale_later) = (0, 0, 0, 0);
    for trial in 0..TRIALS {
        let ns = format!("race{trial}");
        let here = cache(&racing, &ns);
        let truth = cache(&strict, &ns);
        truth.set("k", &"old").await.unwrap();
        // this process has never read the generation of `ns`: each get reads it
        let in_flight = futures_util::future::join_all((0..6).map(|_| here.get::<String>("k")));
        let clearing = async {
            for _ in 0..trial % 4 {
                tokio::task::yield_now().await;
            }
            here.clear().await.unwrap();
            let after_clear = here.get::<String>("k").await.unwrap();
            here.set("k", &"new").await.unwrap();
            let seen_elsewhere = truth.get::<String>("k").await.unwrap();
            let seen_here = here.get::<String>("k").await.unwrap();
            (after_clear, seen_elsewhere, seen_here)
        };
        let (reads, (after_clear, seen_elsewhere, seen_here)) = tokio::join!(in_flight, clearing);
        for r in reads {
            // a read concurrent with the clear and the write may see any side of them
            let r = r.unwrap();
            assert!(matches!(r.as_deref(), None | Some("old" | "new")), "{r:?}");
        }
        if after_clear.is_some() {
            stale_reads += 1;
        }
        if seen_elsewhere.as_deref() != Some("new") {
            lost_writes += 1;
        }
        if seen_here.as_deref() != Some("new") {
            stale_after_write += 1;
        }
        // later reads of this process keep seeing the new generation
        tokio::time::sleep(Duration::from_millis(1)).await;
        if here.get::<String>("k").await.unwrap().as_deref() != Some("new") {
            stale_later += 1;
        }
    }
    println!(
        "FIGURE: {TRIALS} trials of 6 reads in flight racing a clear: {stale_reads} stale \
         reads, {lost_writes} lost writes, {stale_after_write} wrong reads after the write, {stale_later} wrong reads later"
    );
    assert_eq!(
        (stale_reads, lost_writes, stale_after_write, stale_later),
        (0, 0, 0, 0),
        "after its own clear, this process must neither read cleared values nor write into \
         the cleared generation"
    );
}

/// Two servers, and a namespace whose generation counter lives on one (returned first) while
/// the data key `k` lives on the other.
async fn split_namespace(backend: &MemcachedBackend) -> (String, String, String) {
    for i in 0..1000 {
        let ns = format!("split{i}");
        let counter = backend.server_for_key(&format!("{ns}:#g")).to_owned();
        let data = backend.server_for_key(&format!("{ns}:k")).to_owned();
        if counter != data {
            return (ns, counter, data);
        }
    }
    panic!("no namespace splits its counter from its data over two servers");
}

/// With the counter's server down and the data server up, a process that has not seen a
/// clear must not go on using the generation it knew before: past `generation_refresh` the
/// generation is unknown and the command fails (a miss with `miss_on_server_down`), rather
/// than serving the values the clear removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_generation_past_its_refresh_is_never_the_old_one() {
    let Some(a) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let Some(b) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let servers = [a.address(), b.address()];
    let mut by_address = [(a.address(), a), (b.address(), b)];
    let refresh = Duration::from_millis(200);
    let unaware = backend(&servers, refresh, false).await;
    let lenient = backend(&servers, refresh, true).await;
    let clearer = backend(&servers, refresh, false).await;
    let (ns, counter_server, data_server) = split_namespace(&unaware).await;
    let unaware = cache(&unaware, &ns);
    let lenient = cache(&lenient, &ns);
    unaware.set("k", &1).await.unwrap();
    assert_eq!(unaware.get::<i32>("k").await.unwrap(), Some(1));
    assert_eq!(lenient.get::<i32>("k").await.unwrap(), Some(1));

    // another process clears; then the counter's server goes down
    cache(&clearer, &ns).clear().await.unwrap();
    by_address
        .iter_mut()
        .find(|(address, _)| *address == counter_server)
        .unwrap()
        .1
        .kill();
    tokio::time::sleep(refresh + Duration::from_millis(100)).await;

    for _ in 0..5 {
        match unaware.get::<i32>("k").await {
            Ok(Some(v)) => panic!(
                "served the pre-clear value {v} with the generation's server down, {:?} \
                 after the clear",
                refresh + Duration::from_millis(100)
            ),
            Ok(None) => panic!("a miss without miss_on_server_down"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
                assert_eq!(e.context_value("server"), Some(counter_server.as_str()));
            }
        }
        assert_eq!(
            lenient.get::<i32>("k").await.unwrap(),
            None,
            "miss_on_server_down answers a miss, never the old value"
        );
        let e = unaware.set("k", &2).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the data server itself is fine
    let data = Cache::builder(
        MemcachedBuilder::new()
            .server(data_server)
            .build()
            .await
            .unwrap(),
    )
    .build();
    data.raw("version", cache_core::NO_ARGS).await.unwrap();
}

/// `miss_on_server_down` covers a generation that cannot be read: reads of a process that
/// never read it are misses, writes still fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_on_server_down_covers_a_failed_generation_read() {
    let Some(a) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let Some(b) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let servers = [a.address(), b.address()];
    let mut by_address = [(a.address(), a), (b.address(), b)];
    let lenient = backend(&servers, Duration::from_secs(1), true).await;
    let (ns, counter_server, _) = split_namespace(&lenient).await;
    cache(&lenient, &ns).set("k", &1).await.unwrap();
    by_address
        .iter_mut()
        .find(|(address, _)| *address == counter_server)
        .unwrap()
        .1
        .kill();
    // a process that never read the generation of this namespace
    let fresh = backend(&servers, Duration::from_secs(1), true).await;
    let fresh = cache(&fresh, &ns);
    assert_eq!(fresh.get::<i32>("k").await.unwrap(), None);
    assert!(!fresh.exists("k").await.unwrap());
    assert_eq!(
        fresh.ttl("k").await.unwrap(),
        cache_core::KeyTtl::Missing,
        "a miss, like a read of a stopped data server"
    );
    let many: Vec<Option<i32>> = fresh.multi_get(["k", "j"]).await.unwrap();
    assert_eq!(many, vec![None, None]);
    let e = fresh.set("k", &2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let e = fresh.clear().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
}

/// A counter that disappears (evicted, deleted, its server restarted) empties its namespace
/// at once for every process that reads it again, and the backend counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_generation_counter_empties_the_namespace_and_is_counted() {
    let Some(mut m) = Server::start(ServerKind::Memcached, &[]) else {
        return;
    };
    let servers = [m.address()];
    let backend = backend(&servers, Duration::ZERO, false).await;
    let c = cache(&backend, "lost");
    assert_eq!(backend.generations_lost(), 0);
    c.set("k", &1).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(1));
    assert_eq!(
        backend.generations_lost(),
        0,
        "creating a counter is no loss"
    );

    // deleted (as by an eviction): the namespace is empty at once
    c.raw("md", ["lost:#g"]).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
    assert_eq!(backend.generations_lost(), 1);
    c.set("k", &2).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(2));
    assert_eq!(backend.generations_lost(), 1);

    // its server restarted: the same
    m.restart();
    let mut after = None;
    for _ in 0..100 {
        match c.get::<i32>("k").await {
            Ok(v) => {
                after = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(after, Some(None), "a restarted server holds nothing");
    c.set("k", &3).await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), Some(3));
    assert_eq!(backend.generations_lost(), 2);
    // a clear is not a loss
    c.clear().await.unwrap();
    assert_eq!(c.get::<i32>("k").await.unwrap(), None);
    assert_eq!(backend.generations_lost(), 2);
}
