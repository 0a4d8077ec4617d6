//! The tier when its channel or its server fails: a stalled or cut channel (through the TCP
//! fault proxy), a flushed, restarted or full (evicting) server, entries expiring. One
//! instance reads through its local level; a second instance (or a plain client) changes the
//! server. Asserted: no read returns a value from before a change later than the bound the
//! guide states for that case — the heartbeat timeout for a lost channel, nothing for client
//! tracking, `local_ttl` for changes a pub/sub backplane does not carry.

use std::time::{Duration, Instant};

use cache_core::testkit::random_namespace;
use cache_core::tier::Locality;
use cache_core::{Cache, ErrorKind};
use stratacache_tests::FaultProxy;
use stratacache_tests::backends::{Kind, private_server};
use stratacache_tests::tiers::{self, Instance, Options, TierSetup};

/// Time for the channel to see a change on loopback, with room for a loaded machine.
const DELIVERY: Duration = Duration::from_millis(200);

fn options() -> Options {
    Options {
        local_ttl: Duration::from_secs(30),
        heartbeat: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(500),
        ..Options::default()
    }
}

/// Reads `key` every 10 ms for `span`, failing on any answer equal to `stale` among reads that
/// start after `not_after`; errors are allowed (a stalled connection times out). Returns the
/// last answer.
async fn never_stale_after(
    cache: &Cache,
    key: &str,
    stale: Option<u64>,
    not_after: Instant,
    span: Duration,
) -> Option<u64> {
    let end = Instant::now() + span;
    let mut last = None;
    while Instant::now() < end {
        let started = Instant::now();
        match cache.get::<u64>(key).await {
            Ok(v) => {
                if started > not_after {
                    assert_ne!(
                        v,
                        stale,
                        "a read {:?} past the bound answered the value from before the change",
                        started - not_after
                    );
                }
                last = v;
            }
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Connection),
                "only timeouts and connection errors while the server is cut off: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    last
}

/// Reads `key` through the tier until its local level holds `value` (a read may race the
/// invalidation of the write that made it, and then leaves no copy).
async fn held_locally(cache: &Cache, key: &str, value: u64) {
    until("the value is held locally", DELIVERY * 5, async || {
        let _ = cache.get::<u64>(key).await;
        cache
            .with_locality(Locality::LocalOnly)
            .get::<u64>(key)
            .await
            .ok()
            .flatten()
            == Some(value)
    })
    .await;
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// A stalled channel: the reader's channel connection goes silent (pub/sub: the backplane's
/// connections; tracking: the reader's connection to the server, which carries both). Once
/// the heartbeat timeout passed, no read answers the old value; when the connection comes
/// back, the local level is used again.
async fn stalled_channel(setup: TierSetup) {
    if !setup.available() {
        return;
    }
    let ns = random_namespace();
    let redis = Kind::Redis.shared_url().expect("checked");
    let proxy = FaultProxy::start(&Kind::Redis.address_of(&redis))
        .await
        .expect("proxy");
    let mut opts = options();
    if setup == TierSetup::RedisTracking {
        opts.remote_address = Some(proxy.address());
    } else {
        opts.channel_address = Some(proxy.address());
    }
    opts.timeout = Duration::from_millis(300);
    let reader = tiers::instance(setup, &ns, opts.clone()).await;
    let reader_cache = &reader.cache;
    let writer = tiers::instance(setup, &ns, options()).await;

    writer.cache.set("k", &1_u64).await.unwrap();
    held_locally(reader_cache, "k", 1).await;

    proxy.stall();
    writer.cache.set("k", &2_u64).await.unwrap();
    let bound = Instant::now() + opts.heartbeat_timeout + opts.heartbeat + DELIVERY;
    never_stale_after(reader_cache, "k", Some(1), bound, Duration::from_secs(2)).await;
    let stats = reader.stats.get();
    assert!(stats.disconnects >= 1, "the stall was seen: {stats:?}");
    assert!(!stats.connected, "{stats:?}");

    proxy.pass_through();
    until("the channel is back", Duration::from_secs(10), async || {
        reader.stats.get().connected
    })
    .await;
    writer.cache.set("k", &3_u64).await.unwrap();
    // the local level is used again: the new value comes to be held locally
    held_locally(reader_cache, "k", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pubsub_channel_empties_and_bypasses_the_local_level() {
    stalled_channel(TierSetup::RedisPubSub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backplane_beside_memcached_empties_and_bypasses_the_local_level() {
    stalled_channel(TierSetup::MemcachedPubSub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tracking_connection_empties_and_bypasses_the_local_level() {
    stalled_channel(TierSetup::RedisTracking).await;
}

/// A cut channel: every connection through the proxy is reset. The local level is emptied at
/// once, and a write made after the channel is back reaches the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_channel_empties_the_local_level() {
    let setup = TierSetup::RedisPubSub;
    if !setup.available() {
        return;
    }
    let ns = random_namespace();
    let redis = Kind::Redis.shared_url().expect("checked");
    let proxy = FaultProxy::start(&Kind::Redis.address_of(&redis))
        .await
        .expect("proxy");
    let mut opts = options();
    opts.channel_address = Some(proxy.address());
    let reader = tiers::instance(setup, &ns, opts).await;
    let writer = tiers::instance(setup, &ns, options()).await;
    writer.cache.set("k", &1_u64).await.unwrap();
    held_locally(&reader.cache, "k", 1).await;
    assert!(
        proxy.reset_all() > 0,
        "the channel's connections went through the proxy"
    );
    until("the reset is seen", Duration::from_secs(2), async || {
        reader.stats.get().disconnects >= 1
    })
    .await;
    until("the channel is back", Duration::from_secs(10), async || {
        reader.stats.get().connected
    })
    .await;
    assert_eq!(
        reader.stats.get().entries,
        0,
        "the local level starts empty"
    );
    assert_eq!(reader.cache.get::<u64>("k").await.unwrap(), Some(1));
    writer.cache.set("k", &2_u64).await.unwrap();
    until("the write reaches the reader", DELIVERY, async || {
        reader.cache.get::<u64>("k").await.ok().flatten() == Some(2)
    })
    .await;
}

/// A private Redis and two instances of `setup` on it.
async fn on_private_redis(
    setup: TierSetup,
    extra: &[&str],
) -> Option<(cache_test_fixtures::Server, Instance, Cache, String)> {
    if !setup.available() {
        return None;
    }
    let server = match extra {
        [] => private_server(Kind::Redis)?,
        _ => cache_test_fixtures::Server::start(cache_test_fixtures::ServerKind::Redis, extra)?,
    };
    let ns = random_namespace();
    let mut opts = options();
    opts.local_ttl = Duration::from_secs(1);
    opts.remote_address = Some(server.address());
    opts.channel_address = Some(server.address());
    let reader = tiers::instance(setup, &ns, opts).await;
    let plain = Cache::builder(
        cache_redis::RedisConfig::from_url(&server.url())
            .unwrap()
            .into_builder()
            .build()
            .await
            .unwrap(),
    )
    .namespace(ns.clone())
    .build();
    Some((server, reader, plain, ns))
}

/// `FLUSHDB` by another client: with tracking the reader follows at once; with pub/sub
/// (which does not carry it) within `local_ttl`.
async fn flushdb(setup: TierSetup, bound: Duration) {
    let Some((_server, reader, plain, _)) = on_private_redis(setup, &[]).await else {
        return;
    };
    plain.set("k", &1_u64).await.unwrap();
    assert_eq!(reader.cache.get::<u64>("k").await.unwrap(), Some(1));
    plain.raw("FLUSHDB", cache_core::NO_ARGS).await.unwrap();
    let flushed = Instant::now();
    never_stale_after(
        &reader.cache,
        "k",
        Some(1),
        flushed + bound,
        bound + DELIVERY * 2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_is_followed_at_once_with_client_tracking() {
    flushdb(TierSetup::RedisTracking, DELIVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_is_followed_within_local_ttl_with_pubsub() {
    flushdb(TierSetup::RedisPubSub, Duration::from_secs(1)).await;
}

/// A restarted server (no persistence: it comes back empty): the channel is lost, the local
/// level emptied; nothing from before the restart is served.
async fn restart(setup: TierSetup) {
    let Some((mut server, reader, plain, _)) = on_private_redis(setup, &[]).await else {
        return;
    };
    plain.set("k", &1_u64).await.unwrap();
    assert_eq!(reader.cache.get::<u64>("k").await.unwrap(), Some(1));
    server.restart();
    let restarted = Instant::now();
    let last = never_stale_after(
        &reader.cache,
        "k",
        Some(1),
        restarted + options().heartbeat_timeout + DELIVERY,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(last, None, "the restarted server is empty");
    assert!(reader.stats.get().disconnects >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_serves_nothing_from_before_it_with_client_tracking() {
    restart(TierSetup::RedisTracking).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_serves_nothing_from_before_it_with_pubsub() {
    restart(TierSetup::RedisPubSub).await;
}

/// Entries expiring and evicted (`maxmemory` with `allkeys-random`): a copy never outlives
/// an expired entry; an evicted one is followed at once with tracking, within `local_ttl`
/// with pub/sub.
async fn expiry_and_eviction(setup: TierSetup, eviction_bound: Duration) {
    let Some((_server, reader, plain, _)) = on_private_redis(
        setup,
        &["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-random"],
    )
    .await
    else {
        return;
    };
    plain
        .with_ttl(Duration::from_millis(300))
        .set("short", &1_u64)
        .await
        .unwrap();
    assert_eq!(reader.cache.get::<u64>("short").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        reader.cache.get::<u64>("short").await.unwrap(),
        None,
        "the copy ended with the entry"
    );

    plain.set("victim", &1_u64).await.unwrap();
    assert_eq!(reader.cache.get::<u64>("victim").await.unwrap(), Some(1));
    let filler = vec![7_u8; 16 * 1024];
    let mut i = 0;
    while plain.exists("victim").await.unwrap() {
        plain
            .with_serializer(cache_core::RawBytes)
            .set(&format!("fill{i}"), &filler)
            .await
            .unwrap();
        i += 1;
        assert!(i < 100_000, "the server never evicted the key");
    }
    let evicted = Instant::now();
    never_stale_after(
        &reader.cache,
        "victim",
        Some(1),
        evicted + eviction_bound,
        eviction_bound + DELIVERY * 2,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_eviction_are_followed_with_client_tracking() {
    expiry_and_eviction(TierSetup::RedisTracking, DELIVERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_followed_and_eviction_bounded_by_local_ttl_with_pubsub() {
    expiry_and_eviction(TierSetup::RedisPubSub, Duration::from_secs(1)).await;
}
