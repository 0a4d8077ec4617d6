//! The pub/sub invalidation backplane against the shared redis-server
//! (`CACHE_TEST_REDIS_URL`): two instances on one channel, each with a sink that records what
//! it is told. Every test uses channels of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cache_core::testkit::{RecordingSink, SinkEvent as Event, random_namespace, server_url};
use cache_core::tier::{Invalidated, Invalidator};
use cache_core::{CallContext, Command, ErrorKind};
use cache_redis::fred::interfaces::{ClientLike, PubsubInterface};
use cache_redis::fred::prelude::{Builder, Config};
use cache_redis::{RedisConfig, RedisPubSub};

/// Waiting longer than this for a delivery means it never comes (a failure bound).
const PATIENCE: Duration = Duration::from_secs(10);
/// How long to wait before concluding that nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);

type Recorder = RecordingSink;

/// Waits until `n` invalidations arrived; panics after [`PATIENCE`].
async fn wait_for(sink: &Recorder, n: usize) -> Vec<Event> {
    let arrived = sink
        .wait_until(PATIENCE, |_| sink.invalidations().len() >= n)
        .await;
    let got = sink.invalidations();
    assert!(arrived, "waited for {n} invalidations, got {got:?}");
    got
}

fn ctx() -> CallContext<'static> {
    CallContext::new(Command::Delete)
}

/// An instance on `channel`, started with a recorder of its own.
async fn instance(url: &str, channel: &str) -> (RedisPubSub, Arc<Recorder>) {
    let pubsub = RedisPubSub::connect(url, channel)
        .await
        .expect("connect to CACHE_TEST_REDIS_URL");
    let recorder = Arc::new(Recorder::default());
    pubsub.start(recorder.clone()).await.expect("subscribe");
    assert_eq!(recorder.events(), vec![Event::Connected]);
    (pubsub, recorder)
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| (*k).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_prefix_and_all_reach_the_others_and_never_the_sender() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let channel = random_namespace();
    let (a, seen_by_a) = instance(&url, &channel).await;
    let (b, seen_by_b) = instance(&url, &channel).await;
    assert_eq!(a.name(), "redis-pubsub");
    assert!(a.covers("anything at all"));

    let batch = keys(&["ns:1", "ns:2", "ns:3"]);
    a.publish(&ctx(), Invalidated::Keys(&batch)).await.unwrap();
    a.publish(&ctx(), Invalidated::Prefix("ns:")).await.unwrap();
    a.publish(&ctx(), Invalidated::All).await.unwrap();
    // an empty batch sends nothing
    a.publish(&ctx(), Invalidated::Keys(&[])).await.unwrap();
    assert_eq!(
        wait_for(&seen_by_b, 3).await,
        vec![
            Event::Keys(batch.clone()),
            Event::Prefix("ns:".into()),
            Event::All
        ]
    );
    b.publish(&ctx(), Invalidated::Keys(&keys(&["ns:4"])))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&seen_by_a, 1).await,
        vec![Event::Keys(keys(&["ns:4"]))],
        "a skipped its own three messages and got b's"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        seen_by_b.invalidations().len(),
        3,
        "b skipped its own message"
    );

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.published, sa.own_skipped, sa.received), (3, 3, 1));
    assert_eq!((sb.published, sb.own_skipped, sb.received), (1, 1, 3));
    assert_eq!((sa.malformed, sa.lagged, sa.disconnects), (0, 0, 0));

    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_of_different_names_are_isolated() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let (orders, other) = (random_namespace(), random_namespace());
    let (a, _) = instance(&url, &orders).await;
    let (b, seen_by_b) = instance(&url, &orders).await;
    let (c, seen_by_c) = instance(&url, &other).await;
    a.publish(&ctx(), Invalidated::Prefix("orders:"))
        .await
        .unwrap();
    wait_for(&seen_by_b, 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(seen_by_c.invalidations(), vec![]);
    assert_eq!(c.stats().received + c.stats().malformed, 0);
    for pubsub in [a, b, c] {
        pubsub.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_any_bytes_and_large_batches_round_trip() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let channel = random_namespace();
    let (a, _) = instance(&url, &channel).await;
    let (b, seen_by_b) = instance(&url, &channel).await;
    let odd = vec![
        "ns:line\nbreak".to_owned(),
        "ns:\r\n*3\r\n$3\r\nDEL".to_owned(),
        "ns:\0nul".to_owned(),
        "ns:ü€😀".to_owned(),
        String::new(),
        "k".repeat(100_000),
    ];
    let many: Vec<String> = (0..5_000).map(|i| format!("ns:{i}")).collect();
    a.publish(&ctx(), Invalidated::Keys(&odd)).await.unwrap();
    a.publish(&ctx(), Invalidated::Keys(&many)).await.unwrap();
    a.publish(&ctx(), Invalidated::Prefix("ns:\n\0"))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&seen_by_b, 3).await,
        vec![
            Event::Keys(odd),
            Event::Keys(many),
            Event::Prefix("ns:\n\0".into())
        ]
    );
    assert_eq!(a.stats().published, 3, "one message per batch");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_of_another_format_is_all_and_counted() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let channel = random_namespace();
    let (a, seen_by_a) = instance(&url, &channel).await;
    let (b, _) = instance(&url, &channel).await;

    let plain = Builder::from_config(Config::from_url(&url).expect("a fred URL"))
        .build()
        .expect("a client");
    plain.init().await.expect("connect");
    let junk: [&[u8]; 5] = [
        b"hello",
        b"",
        // the right magic and version, cut inside the instance id
        &[0xCA, 1, 1, 7, 7],
        // a key whose length runs past the end
        &[
            0xCA, 1, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 9, b'a',
        ],
        // a later version
        &[
            0xCA, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ],
    ];
    for message in junk {
        let _: i64 = plain.publish(channel.as_str(), message).await.unwrap();
    }
    assert_eq!(wait_for(&seen_by_a, 5).await, vec![Event::All; 5]);
    assert_eq!(a.stats().malformed, 5);
    assert_eq!(a.stats().received, 0);

    // deliveries go on
    b.publish(&ctx(), Invalidated::Keys(&keys(&["ns:after"])))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&seen_by_a, 6).await[5],
        Event::Keys(keys(&["ns:after"]))
    );
    plain.quit().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_the_build_fast_and_leaves_nothing_running() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let started = Instant::now();
    let err = RedisPubSub::builder(format!("redis://:s3cret-pw@127.0.0.1:{closed_port}"))
        .channel("orders")
        .build()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err:#}"
    );
    let text = format!("{err:#} {err:?}");
    assert!(text.contains(&closed_port.to_string()), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
    // the aborted connection tasks end at their next poll
    let settled = Instant::now();
    while metrics.num_alive_tasks() > before && settled.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "no task left running");
}

#[tokio::test]
async fn bad_settings_are_config_errors_and_secrets_never_show() {
    let cases = [
        RedisPubSub::builder("redis://127.0.0.1:1"),
        RedisPubSub::builder("redis://127.0.0.1:1").channel(""),
        RedisPubSub::builder("redis://127.0.0.1:1")
            .channel("c")
            .heartbeat(Duration::ZERO),
        RedisPubSub::builder("redis://127.0.0.1:1")
            .channel("c")
            .heartbeat(Duration::from_secs(2))
            .heartbeat_timeout(Duration::from_secs(2)),
        RedisPubSub::builder("nope://127.0.0.1:1").channel("c"),
    ];
    for builder in cases {
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err:#}");
    }
    let builder = RedisPubSub::builder("redis://user:s3cret-pw@127.0.0.1:1").channel("c");
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains("s3cret-pw") && shown.contains("127.0.0.1"),
        "{shown}"
    );
    let config = RedisConfig::from_url("redis://user:s3cret-pw@127.0.0.1:1").unwrap();
    let shown = format!("{:?}", cache_redis::RedisPubSubBuilder::from_config(config));
    assert!(!shown.contains("s3cret-pw"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_once_close_idempotent_and_nothing_after_close() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let channel = random_namespace();
    let (a, seen_by_a) = instance(&url, &channel).await;
    let (b, seen_by_b) = instance(&url, &channel).await;
    let shown = format!("{a:?}");
    assert!(shown.contains(&channel), "{shown}");

    let again = a.start(Arc::new(Recorder::default())).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidArgument, "{again:#}");

    a.close().await.unwrap();
    a.close().await.unwrap();
    assert_eq!(
        seen_by_a.events().last(),
        Some(&Event::Disconnected),
        "a closed channel delivers nothing more"
    );
    let err = a.publish(&ctx(), Invalidated::All).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:#}");
    let err = a.start(Arc::new(Recorder::default())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:#}");

    // the other instance is unaffected, and the closed one hears nothing
    let count = seen_by_a.events().len();
    b.publish(&ctx(), Invalidated::All).await.unwrap();
    let c = RedisPubSub::connect(&url, &channel).await.unwrap();
    let seen_by_c = Arc::new(Recorder::default());
    c.start(seen_by_c.clone()).await.unwrap();
    c.publish(&ctx(), Invalidated::Prefix("p:")).await.unwrap();
    assert_eq!(
        wait_for(&seen_by_b, 1).await,
        vec![Event::Prefix("p:".into())]
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(seen_by_a.events().len(), count);
    assert_eq!(a.stats().disconnects, 0, "closing is not a lost connection");
    b.close().await.unwrap();
    c.close().await.unwrap();
}

/// On a cluster: messages published through one node reach subscribers on any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_cross_a_cluster() {
    let Some(url) = server_url("CACHE_TEST_REDIS_CLUSTER_URL") else {
        return;
    };
    let channel = random_namespace();
    let (a, _) = instance(&url, &channel).await;
    let (b, seen_by_b) = instance(&url, &channel).await;
    let batch = keys(&["{a}1", "b2", "c3"]);
    a.publish(&ctx(), Invalidated::Keys(&batch)).await.unwrap();
    assert_eq!(wait_for(&seen_by_b, 1).await, vec![Event::Keys(batch)]);
    // heartbeats keep the subscription counted as alive
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.stats().disconnects, 0);
    assert_eq!(seen_by_b.events().first(), Some(&Event::Connected));
    assert!(!seen_by_b.events().contains(&Event::Disconnected));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Heartbeats keep an idle subscription counted as alive, over RESP3 and RESP2 (where a
/// subscribed connection answers `PING` in its own way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscription_stays_connected() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    for url in [format!("{url}{sep}protocol=resp3"), url.clone()] {
        let channel = random_namespace();
        let a = RedisPubSub::builder(&url)
            .channel(&channel)
            .heartbeat(Duration::from_millis(50))
            .heartbeat_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        let seen_by_a = Arc::new(Recorder::default());
        a.start(seen_by_a.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(seen_by_a.events(), vec![Event::Connected], "{url}");
        let (b, _) = instance(&url, &channel).await;
        b.publish(&ctx(), Invalidated::All).await.unwrap();
        assert_eq!(wait_for(&seen_by_a, 1).await, vec![Event::All], "{url}");
        a.close().await.unwrap();
        b.close().await.unwrap();
    }
}

/// With a password (a private redis-server): both connections authenticate; a wrong password
/// is a `Config` error that never repeats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_with_a_password_and_a_wrong_one_refused() {
    use cache_test_fixtures::{Server, ServerKind};

    let Some(server) = Server::start(ServerKind::Redis, &["--requirepass", "s3cr@t-pw"]) else {
        return;
    };
    let url = format!("redis://:s3cr%40t-pw@127.0.0.1:{}", server.port());
    let (a, _) = instance(&url, "orders").await;
    let (b, seen_by_b) = instance(&url, "orders").await;
    assert!(!format!("{a:?} {}", a.server()).contains("s3cr"), "{a:?}");
    a.publish(&ctx(), Invalidated::Prefix("orders:"))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&seen_by_b, 1).await,
        vec![Event::Prefix("orders:".into())]
    );
    a.close().await.unwrap();
    b.close().await.unwrap();

    let wrong = format!("redis://:wr0ng-pw@127.0.0.1:{}", server.port());
    let err = RedisPubSub::connect(&wrong, "orders").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err:#}");
    let text = format!("{err:#} {err:?}");
    assert!(!text.contains("wr0ng-pw"), "{text}");
}

/// Over TLS (a private redis-server with certificates made at test time).
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_over_tls() {
    use cache_test_fixtures::{Server, TestPki};

    let pki = TestPki::new();
    let Some(server) = Server::start_redis_tls(
        &pki.file("server.crt"),
        &pki.file("server.key"),
        &pki.file("ca.crt"),
        false,
    ) else {
        return;
    };
    let url = format!(
        "{}?tls_ca_file={}",
        server.url(),
        pki.file("ca.crt").display()
    );
    assert!(url.starts_with("rediss://"));
    let (a, _) = instance(&url, "orders").await;
    let (b, seen_by_b) = instance(&url, "orders").await;
    assert!(a.server().starts_with("rediss://"), "{}", a.server());
    let batch = keys(&["orders:1", "orders:2"]);
    a.publish(&ctx(), Invalidated::Keys(&batch)).await.unwrap();
    assert_eq!(wait_for(&seen_by_b, 1).await, vec![Event::Keys(batch)]);
    // heartbeats are answered over TLS too
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.stats().disconnects, 0);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// A burst of messages from many tasks at once: each reaches the other instance, or — when
/// the client's buffer overflowed (here: behind a sink that is busy for a while) — is counted
/// lost, with an `All` standing in for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_delivered_or_stood_in_for_by_all() {
    let Some(url) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    for slow_sink in [false, true] {
        burst(&url, slow_sink).await;
    }
}

async fn burst(url: &str, slow_sink: bool) {
    let channel = random_namespace();
    let (a, _) = instance(url, &channel).await;
    let (b, seen_by_b) = instance(url, &channel).await;
    let published = Arc::new(AtomicBool::new(false));
    if slow_sink {
        seen_by_b.hold_next_invalidation(published.clone(), PATIENCE);
    }
    let a = Arc::new(a);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20 {
        let a = a.clone();
        tasks.spawn(async move {
            for i in 0..150 {
                let key = vec![format!("ns:{t}:{i}")];
                a.publish(&ctx(), Invalidated::Keys(&key)).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // the messages reach the client while a slow sink still holds up the first one
    tokio::time::sleep(QUIET).await;
    published.store(true, Ordering::Release);
    // every message, delivered or counted lost (and stood in for by an `All`)
    let started = Instant::now();
    loop {
        let got = seen_by_b.invalidations();
        let keys = got.iter().filter(|e| matches!(e, Event::Keys(_))).count() as u64;
        let alls = got.iter().filter(|e| **e == Event::All).count() as u64;
        let lost = b.stats().lagged;
        assert!(
            (lost == 0) == (alls == 0),
            "an All stands for lost messages: {alls} All, {lost} lost"
        );
        if keys + lost == 3000 {
            println!("FIGURE: {keys} of 3000 delivered, {lost} lost in {alls} lags");
            if slow_sink {
                assert!(lost > 0, "a sink that holds up 3000 messages loses some");
            }
            break;
        }
        assert!(
            keys + lost < 3000 && started.elapsed() < PATIENCE,
            "{keys} delivered, {lost} lost of 3000"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.stats().published, 3000);
    assert_eq!(b.stats().malformed, 0);
    a.close().await.unwrap();
    b.close().await.unwrap();
}
