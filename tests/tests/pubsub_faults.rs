//! The pub/sub invalidation backplane (`cache_redis::RedisPubSub`) through a [`FaultProxy`]
//! in front of the shared redis-server (`CACHE_TEST_REDIS_URL`): one instance connects
//! through the proxy, another straight to the server.
//!
//! - **stall**: the proxy holds every byte with the connections open; heartbeats go
//!   unanswered and the sink is told `disconnected` within the heartbeat timeout (plus one
//!   heartbeat and some slack); once bytes flow again, `connected`, and deliveries go on;
//! - **reset**: every connection is reset; the sink is told `disconnected`, then, after the
//!   reconnect and a new subscription, `connected`, and deliveries go on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::testkit::{RecordingSink, SinkEvent as Event, random_namespace};
use cache_core::tier::{Invalidated, Invalidator};
use cache_core::{CallContext, Command};
use cache_redis::RedisPubSub;
use stratacache_tests::{FaultProxy, Kind};

const HEARTBEAT: Duration = Duration::from_millis(100);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on top of a bound the backplane promises.
const SLACK: Duration = Duration::from_millis(700);
/// Waiting longer than this means it never happens (a failure bound, not a speed requirement).
const PATIENCE: Duration = Duration::from_secs(15);

type Recorder = RecordingSink;

/// When `event` was first recorded after `since`; panics after [`PATIENCE`].
async fn wait_for(sink: &Recorder, event: &Event, since: Instant) -> Instant {
    let arrived = sink
        .wait_until(PATIENCE, |_| sink.first_since(event, since).is_some())
        .await;
    assert!(arrived, "waited for {event:?}, got {:?}", sink.events());
    sink.first_since(event, since).expect("checked")
}

/// An instance through `proxy` and one straight to the server, on a fresh channel; `None`
/// when the server is not configured.
#[allow(clippy::type_complexity)]
async fn pair() -> Option<(
    FaultProxy,
    RedisPubSub,
    Arc<Recorder>,
    RedisPubSub,
    Arc<Recorder>,
)> {
    let url = Kind::Redis.shared_url()?;
    let proxy = FaultProxy::start(&Kind::Redis.address_of(&url))
        .await
        .expect("start the fault proxy");
    let channel = random_namespace();
    let proxied = RedisPubSub::builder(format!("redis://{}", proxy.address()))
        .channel(&channel)
        .heartbeat(HEARTBEAT)
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .build()
        .await
        .expect("connect through the proxy");
    let recorder = Arc::new(Recorder::default());
    proxied.start(recorder.clone()).await.expect("subscribe");
    let direct = RedisPubSub::connect(&url, &channel)
        .await
        .expect("connect to CACHE_TEST_REDIS_URL");
    let direct_recorder = Arc::new(Recorder::default());
    direct
        .start(direct_recorder.clone())
        .await
        .expect("subscribe");
    Some((proxy, proxied, recorder, direct, direct_recorder))
}

/// Publishes a key from `from` and waits until `to` received it.
async fn delivered(from: &RedisPubSub, to: &Recorder, key: &str) {
    let since = Instant::now();
    let keys = vec![key.to_owned()];
    from.publish(&CallContext::new(Command::Delete), Invalidated::Keys(&keys))
        .await
        .unwrap();
    wait_for(to, &Event::Keys(keys), since).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscription_is_reported_lost_then_back() {
    let Some((proxy, proxied, seen, direct, _)) = pair().await else {
        return;
    };
    delivered(&direct, &seen, "before").await;

    let stalled = Instant::now();
    proxy.stall();
    let lost = wait_for(&seen, &Event::Disconnected, stalled).await;
    let took = lost - stalled;
    println!("FIGURE: stall noticed after {took:?}");
    assert!(
        took <= HEARTBEAT_TIMEOUT + HEARTBEAT + SLACK,
        "a stall must be noticed within the heartbeat timeout: {took:?}"
    );
    assert!(
        took >= HEARTBEAT_TIMEOUT - HEARTBEAT,
        "not before the heartbeat timeout: {took:?}"
    );

    let resumed = Instant::now();
    proxy.pass_through();
    let back = wait_for(&seen, &Event::Connected, resumed).await;
    println!("FIGURE: connected again after {:?}", back - resumed);
    delivered(&direct, &seen, "after").await;
    assert_eq!(proxied.stats().disconnects, 1, "{:?}", seen.events());

    proxied.close().await.unwrap();
    direct.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_subscribes_again() {
    let Some((proxy, proxied, seen, direct, seen_direct)) = pair().await else {
        return;
    };
    delivered(&direct, &seen, "before").await;

    let reset = Instant::now();
    assert!(
        proxy.reset_all() >= 2,
        "both connections go through the proxy"
    );
    wait_for(&seen, &Event::Disconnected, reset).await;
    let back = wait_for(&seen, &Event::Connected, reset).await;
    println!("FIGURE: subscribed again after {:?}", back - reset);
    // only a new subscription can deliver this
    delivered(&direct, &seen, "after").await;
    // and the publisher connection is back too
    delivered(&proxied, &seen_direct, "from-proxied").await;

    proxied.close().await.unwrap();
    direct.close().await.unwrap();
}
