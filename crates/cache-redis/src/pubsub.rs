//! [`RedisPubSub`]: an invalidation backplane over Redis pub/sub, usable beside any backend.
//!
//! Every instance of a service publishes what it changed on one channel per logical cache and
//! subscribes to it; the tier of each instance drops its local copies of what others changed.
//! Messages are binary: see [`RedisPubSub`] for the format.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use cache_core::tier::{Invalidated, InvalidationSink, Invalidator};
use cache_core::{CallContext, Error, ErrorKind, Result};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::prelude::{Client, Options, Value};
use fred::types::{ClusterHash, ConnectHandle, CustomCommand, Message};
use fred::util::redis_keyslot;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::builder::connect_all;
use crate::error;
use crate::{RedisBuilder, RedisConfig};

/// The first byte of every message.
const MAGIC: u8 = 0xCA;
/// The format version this crate writes and reads.
const VERSION: u8 = 1;
/// Message kinds.
const KIND_KEYS: u8 = 1;
const KIND_PREFIX: u8 = 2;
const KIND_ALL: u8 = 3;
/// Bytes of an instance id.
const ID_LEN: usize = 16;
/// Bytes before the body: magic, version, kind, instance id.
const HEADER_LEN: usize = 3 + ID_LEN;

/// Messages fred buffers for the forwarding task.
const SUBSCRIBER_BUFFER: usize = 1024;
/// Default interval between two heartbeats.
const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);
/// Default silence after which the subscription counts as lost.
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// An instance's random id: 16 bytes from two independently keyed hashes of the time, the
/// process and a counter.
type InstanceId = [u8; ID_LEN];

/// A Redis pub/sub channel that keeps the in-process tiers of several instances coherent: an
/// [`Invalidator`] usable beside any backend (Redis itself, Memcached, …) with a Redis server
/// to carry the messages.
///
/// Each instance connects twice — one connection publishes, one subscribes — to the channel
/// of one logical cache. [`publish`](Invalidator::publish) sends what this instance changed
/// in one `PUBLISH`; the subscription hands what the other instances changed to the
/// [`InvalidationSink`] given to [`start`](Invalidator::start). An instance ignores its own
/// messages.
///
/// # Losing and regaining the subscription
///
/// The sink is told [`disconnected`](InvalidationSink::disconnected) when the subscriber
/// connection breaks, and when it goes silent: the subscriber connection is pinged every
/// [`heartbeat`](RedisPubSubBuilder::heartbeat) (500 ms by default), and when nothing —
/// answer or message — arrived for
/// [`heartbeat_timeout`](RedisPubSubBuilder::heartbeat_timeout) (2 s) the connection counts
/// as lost, though TCP may still hold it open. The sink is told
/// [`connected`](InvalidationSink::connected) once the subscription is in place again (after a
/// reconnect: subscribed again) and the connection answers. Messages that fred could not hand
/// over in time (its buffer overflowed) are reported as [`Invalidated::All`].
///
/// # Messages
///
/// Binary, so keys may hold any character (newlines included): a magic byte `0xCA`, the format
/// version (1), the kind (1 keys, 2 prefix, 3 all), the publishing instance's 16-byte random
/// id, then for keys their number and each key, for a prefix the prefix; numbers and
/// lengths as unsigned LEB128, each key or prefix as its length and its UTF-8 bytes. A message that does not read as this format — another
/// publisher on the channel, a later version — is taken as [`Invalidated::All`] (always
/// safe) and counted as [`malformed`](PubSubStats::malformed).
///
/// # Example
///
/// ```no_run
/// # async fn example() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_redis::RedisPubSub;
///
/// let backplane = RedisPubSub::builder("redis://cache.internal:6379")
///     .channel("orders")
///     .heartbeat(Duration::from_millis(250))
///     .heartbeat_timeout(Duration::from_secs(1))
///     .build()
///     .await?;
/// // hand `backplane` to the in-process tier, which calls `start` and `publish`
/// # let _ = backplane;
/// # Ok(()) }
/// ```
pub struct RedisPubSub {
    shared: Arc<Shared>,
    publisher: Client,
    /// Connection tasks of both clients.
    connections: Mutex<Vec<ConnectHandle>>,
    /// The task that forwards messages to the sink, once started.
    task: Mutex<Option<JoinHandle<()>>>,
    /// The sink given to `start`, told `disconnected` when closing.
    sink: Mutex<Option<Arc<dyn InvalidationSink>>>,
    started: AtomicBool,
    closed: AtomicBool,
    /// Where it is connected (no credentials).
    server: String,
    /// How long `close` and `start` wait for the server.
    wait: Duration,
}

/// What the forwarding task shares with the handle.
struct Shared {
    channel: String,
    id: InstanceId,
    subscriber: Client,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
    stats: Counters,
}

/// Counters of a [`RedisPubSub`], from [`RedisPubSub::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PubSubStats {
    /// Messages this instance published.
    pub published: u64,
    /// Messages of other instances handed to the sink.
    pub received: u64,
    /// This instance's own messages, received and skipped.
    pub own_skipped: u64,
    /// Messages that did not read as the format, handed to the sink as `All`.
    pub malformed: u64,
    /// Messages lost because the client's buffer overflowed; each loss (of one or more) was
    /// handed to the sink as one `All`.
    pub lagged: u64,
    /// Times the subscription was lost (connection broken or silent); each told the sink
    /// `disconnected`.
    pub disconnects: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    own_skipped: AtomicU64,
    malformed: AtomicU64,
    lagged: AtomicU64,
    disconnects: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Builds a [`RedisPubSub`]: [`RedisPubSub::builder`].
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisPubSubBuilder {
    redis: Result<RedisBuilder>,
    channel: Option<String>,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
}

impl fmt::Debug for RedisPubSubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPubSubBuilder")
            .field(
                "server",
                &self.redis.as_ref().map(|b| b.config().describe()).ok(),
            )
            .field("channel", &self.channel)
            .field("heartbeat", &self.heartbeat)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .finish()
    }
}

impl RedisPubSubBuilder {
    /// A builder for the server of `config` (standalone, TLS, sentinel, cluster or Unix
    /// socket, with its credentials, timeouts and reconnect policy; settings of a backend's
    /// data commands — pool size, namespace generations — do not apply).
    pub fn from_config(config: RedisConfig) -> Self {
        RedisPubSubBuilder {
            redis: Ok(RedisBuilder::from_config(config)),
            channel: None,
            heartbeat: DEFAULT_HEARTBEAT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }

    /// The channel of the logical cache (required, not empty). Every instance of one cache
    /// uses the same name; different caches use different names.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// How often the subscriber connection is pinged. Default: 500 ms.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long the subscriber connection may stay silent (no answer to a heartbeat, no
    /// message) before the subscription counts as lost and the sink is told `disconnected`.
    /// Must be longer than the heartbeat. Default: 2 s.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Checks the settings and connects the publisher and the subscriber connection. Nothing
    /// is subscribed yet: [`start`](Invalidator::start) does that.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad URL or setting (an empty or missing channel, a
    /// heartbeat of zero or a timeout not longer than the heartbeat) or credentials the
    /// server refuses; [`ErrorKind::Connection`] or [`ErrorKind::Timeout`] when the server
    /// cannot be reached within the connect timeout. On error nothing keeps running: no
    /// connection, no task.
    pub async fn build(self) -> Result<RedisPubSub> {
        let channel = match self.channel {
            Some(c) if !c.is_empty() => c,
            Some(_) => return Err(Error::config("the pub/sub channel name is empty")),
            None => {
                return Err(Error::config(
                    "a pub/sub invalidator needs a channel name (one per logical cache)",
                ));
            }
        };
        if self.heartbeat.is_zero() {
            return Err(Error::config(
                "the pub/sub heartbeat must be longer than zero",
            ));
        }
        if self.heartbeat_timeout <= self.heartbeat {
            return Err(Error::config(format!(
                "the pub/sub heartbeat_timeout ({:?}) must be longer than the heartbeat ({:?})",
                self.heartbeat_timeout, self.heartbeat
            )));
        }
        let (config, mut builder) = self.redis?.prepare()?;
        let publisher = builder.build().map_err(error::convert)?;
        // room for bursts: a message fred cannot buffer is lost (and reported as `All`)
        builder.with_performance_config(|p| p.broadcast_channel_capacity = SUBSCRIBER_BUFFER);
        let subscriber = builder.build().map_err(error::convert)?;
        let connections = connect_all(&[publisher.clone(), subscriber.clone()], &config).await?;
        Ok(RedisPubSub {
            shared: Arc::new(Shared {
                channel,
                id: instance_id(),
                subscriber,
                heartbeat: self.heartbeat,
                heartbeat_timeout: self.heartbeat_timeout,
                stats: Counters::default(),
            }),
            publisher,
            connections: Mutex::new(connections),
            task: Mutex::new(None),
            sink: Mutex::new(None),
            started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            server: config.describe(),
            wait: config.connect_timeout,
        })
    }
}

impl RedisPubSub {
    /// A builder for the server at `url` (the URLs of [`RedisConfig::from_url`]); a bad URL
    /// is reported by [`build`](RedisPubSubBuilder::build).
    pub fn builder(url: impl AsRef<str>) -> RedisPubSubBuilder {
        RedisPubSubBuilder {
            redis: RedisBuilder::from_url(url.as_ref()),
            channel: None,
            heartbeat: DEFAULT_HEARTBEAT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }

    /// Connects to the server at `url` for `channel`, with the default heartbeat.
    ///
    /// # Errors
    /// As [`RedisPubSubBuilder::build`].
    pub async fn connect(url: impl AsRef<str>, channel: impl Into<String>) -> Result<RedisPubSub> {
        RedisPubSub::builder(url).channel(channel).build().await
    }

    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    /// Where it is connected (scheme, hosts, database; no credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The counters so far.
    pub fn stats(&self) -> PubSubStats {
        let c = &self.shared.stats;
        PubSubStats {
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            own_skipped: c.own_skipped.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
        }
    }

    fn closed_error() -> Error {
        Error::new(
            ErrorKind::Closed,
            "the redis pub/sub invalidator was closed",
        )
        .with_context("backend", "redis")
    }

    /// Stops the forwarding task and the connection tasks.
    fn abort_tasks(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
        let connections: Vec<ConnectHandle> = self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in connections {
            task.abort();
        }
    }
}

impl fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPubSub")
            .field("server", &self.server)
            .field("channel", &self.shared.channel)
            .field("instance", &hex(&self.shared.id))
            .field("started", &self.started.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for RedisPubSub {
    fn drop(&mut self) {
        self.abort_tasks();
    }
}

#[async_trait]
impl Invalidator for RedisPubSub {
    fn name(&self) -> &'static str {
        "redis-pubsub"
    }

    /// Subscribes to the channel, tells `sink` [`connected`](InvalidationSink::connected)
    /// and starts the task that hands it every other instance's messages.
    ///
    /// # Errors
    /// The subscription's error (the server cannot be reached within the connect timeout);
    /// [`ErrorKind::InvalidArgument`] when called a second time; [`ErrorKind::Closed`] after
    /// [`close`](Invalidator::close).
    async fn start(&self, sink: Arc<dyn InvalidationSink>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Self::closed_error());
        }
        if self.started.swap(true, Ordering::AcqRel) {
            return Err(Error::invalid_argument(
                "the redis pub/sub invalidator was already started",
            ));
        }
        let shared = &self.shared;
        // receivers first: nothing that arrives after the subscription is missed
        let messages = shared.subscriber.message_rx();
        let reconnects = shared.subscriber.reconnect_rx();
        let errors = shared.subscriber.error_rx();
        if let Err(e) = shared.subscribe(self.wait).await {
            self.started.store(false, Ordering::Release);
            return Err(error::convert(e).with_context("server", &self.server));
        }
        sink.connected();
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink.clone());
        let forward = Forward {
            shared: shared.clone(),
            sink,
            up: true,
            subscribed: true,
            last_seen: Instant::now(),
        };
        let task = tokio::spawn(forward.run(messages, reconnects, errors));
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        if self.closed.load(Ordering::Acquire) {
            // closed while subscribing: the task must not outlive it, and nothing more comes
            self.abort_tasks();
            let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(sink) = sink {
                sink.disconnected();
            }
        }
        Ok(())
    }

    /// One `PUBLISH` of `what`, within the call's deadline; empty key lists send nothing.
    async fn publish(&self, ctx: &CallContext<'_>, what: Invalidated<'_>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Self::closed_error());
        }
        if matches!(what, Invalidated::Keys([])) {
            return Ok(());
        }
        let payload = encode(&self.shared.id, what);
        let options = Options {
            timeout: ctx
                .deadline()
                .map(|d| d.remaining().max(Duration::from_millis(1))),
            ..Options::default()
        };
        let sent: Result<i64, FredError> = self
            .publisher
            .with_options(&options)
            .publish(self.shared.channel.as_str(), payload)
            .await;
        match sent {
            Ok(_) => {
                Counters::add(&self.shared.stats.published);
                Ok(())
            }
            Err(_) if self.closed.load(Ordering::Acquire) => Err(Self::closed_error()),
            Err(e) => Err(error::convert(e)),
        }
    }

    fn covers(&self, _key: &str) -> bool {
        true
    }

    /// Unsubscribes, stops the forwarding task, tells the sink
    /// [`disconnected`](InvalidationSink::disconnected) (no more deliveries will come), and
    /// quits both connections, waiting at most the connect timeout for the server.
    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let deadline = Instant::now() + self.wait;
        let subscriber = &self.shared.subscriber;
        if self.started.load(Ordering::Acquire) {
            let unsubscribe = subscriber.unsubscribe(self.shared.channel.as_str());
            if let Ok(Err(e)) = tokio::time::timeout_at(deadline, unsubscribe).await {
                tracing::debug!(error = %e, "redis pub/sub: UNSUBSCRIBE failed while closing");
            }
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sink) = sink {
            sink.disconnected();
        }
        for client in [subscriber, &self.publisher] {
            match tokio::time::timeout_at(deadline, client.quit()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "redis pub/sub: QUIT failed"),
                Err(_) => tracing::debug!("redis pub/sub: QUIT timed out while closing"),
            }
        }
        self.abort_tasks();
        Ok(())
    }
}

/// A future the forwarding task waits on among others.
type Pending = Pin<Box<dyn Future<Output = Result<(), FredError>> + Send>>;

/// The forwarding task's state.
struct Forward {
    shared: Arc<Shared>,
    sink: Arc<dyn InvalidationSink>,
    /// What the sink was told last: `connected` (true) or `disconnected`.
    up: bool,
    /// Whether the subscription is in place on the current connection.
    subscribed: bool,
    /// When the subscriber connection last delivered something (a message, an answer).
    last_seen: Instant,
}

impl Forward {
    async fn run(
        mut self,
        mut messages: tokio::sync::broadcast::Receiver<Message>,
        mut reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
        mut errors: tokio::sync::broadcast::Receiver<(
            FredError,
            Option<fred::types::config::Server>,
        )>,
    ) {
        let mut ticks = tokio::time::interval(self.shared.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping: Option<Pending> = None;
        let mut subscribing: Option<Pending> = None;
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Ok(message) => {
                        self.last_seen = Instant::now();
                        if *message.channel == *self.shared.channel {
                            self.deliver(message.value);
                        }
                    }
                    Err(RecvError::Lagged(lost)) => {
                        tracing::warn!(lost, "redis pub/sub: messages lost in the client's buffer");
                        self.shared.stats.lagged.fetch_add(lost, Ordering::Relaxed);
                        self.sink.invalidate(Invalidated::All);
                    }
                    Err(RecvError::Closed) => {
                        self.set_up(false);
                        return;
                    }
                },
                reconnected = reconnects.recv() => {
                    if matches!(reconnected, Err(RecvError::Closed)) {
                        self.set_up(false);
                        return;
                    }
                    // a new connection holds no subscription
                    self.subscribed = false;
                    self.set_up(false);
                    subscribing = Some(self.subscribe());
                }
                failed = errors.recv() => {
                    if matches!(failed, Err(RecvError::Closed)) {
                        self.set_up(false);
                        return;
                    }
                    if let Ok((e, _)) = &failed {
                        tracing::debug!(error = %e, "redis pub/sub: subscriber connection error");
                    }
                    self.subscribed = false;
                    self.set_up(false);
                }
                Some(done) = wait(&mut subscribing) => {
                    subscribing = None;
                    match done {
                        Ok(()) => {
                            self.subscribed = true;
                            self.last_seen = Instant::now();
                        }
                        Err(e) => tracing::debug!(error = %e, "redis pub/sub: SUBSCRIBE failed"),
                    }
                }
                Some(done) = wait(&mut ping) => {
                    ping = None;
                    if done.is_ok() {
                        self.last_seen = Instant::now();
                    }
                }
                _ = ticks.tick() => {
                    if ping.is_none() {
                        ping = Some(self.ping());
                    }
                    if !self.subscribed
                        && subscribing.is_none()
                        && self.shared.subscriber.is_connected()
                    {
                        subscribing = Some(self.subscribe());
                    }
                }
            }
            let alive = self.last_seen.elapsed() <= self.shared.heartbeat_timeout;
            self.set_up(self.subscribed && alive);
        }
    }

    /// Tells the sink when the state changes.
    fn set_up(&mut self, up: bool) {
        if up == self.up {
            return;
        }
        self.up = up;
        if up {
            tracing::info!(channel = %self.shared.channel, "redis pub/sub: subscribed again");
            self.sink.connected();
        } else {
            tracing::warn!(channel = %self.shared.channel, "redis pub/sub: subscription lost");
            Counters::add(&self.shared.stats.disconnects);
            self.sink.disconnected();
        }
    }

    /// Hands one message to the sink.
    fn deliver(&self, value: Value) {
        let stats = &self.shared.stats;
        let payload = match value {
            Value::Bytes(b) => b,
            Value::String(s) => s.inner().clone(),
            _ => Bytes::new(),
        };
        match decode(&payload) {
            Some(decoded) if decoded.id == self.shared.id => Counters::add(&stats.own_skipped),
            Some(decoded) => {
                Counters::add(&stats.received);
                match &decoded.body {
                    Body::Keys(keys) => self.sink.invalidate(Invalidated::Keys(keys)),
                    Body::Prefix(prefix) => self.sink.invalidate(Invalidated::Prefix(prefix)),
                    Body::All => self.sink.invalidate(Invalidated::All),
                }
            }
            None => {
                tracing::warn!(
                    channel = %self.shared.channel,
                    len = payload.len(),
                    "redis pub/sub: a message of an unknown format; every local copy is dropped"
                );
                Counters::add(&stats.malformed);
                self.sink.invalidate(Invalidated::All);
            }
        }
    }

    /// [`Shared::subscribe`] within the heartbeat timeout.
    fn subscribe(&self) -> Pending {
        let shared = self.shared.clone();
        Box::pin(async move { shared.subscribe(shared.heartbeat_timeout).await })
    }

    /// [`Shared::ping`] within the heartbeat timeout.
    fn ping(&self) -> Pending {
        let shared = self.shared.clone();
        Box::pin(async move { shared.ping(shared.heartbeat_timeout).await })
    }
}

impl Shared {
    /// The options of the subscriber's own commands: one attempt within `timeout`.
    fn bounded(timeout: Duration) -> Options {
        Options {
            timeout: Some(timeout),
            max_attempts: Some(1),
            ..Options::default()
        }
    }

    /// Subscribes on the current connection and answers once the server has it: fred
    /// completes `SUBSCRIBE` as soon as it is written (its confirmation comes out of band),
    /// so a `PING` follows on the same connection, and the server answers it only after it
    /// has run the `SUBSCRIBE` before it.
    async fn subscribe(&self, timeout: Duration) -> Result<(), FredError> {
        let started = Instant::now();
        self.subscriber
            .with_options(&Self::bounded(timeout))
            .subscribe(self.channel.as_str())
            .await?;
        self.ping(
            timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1)),
        )
        .await
    }

    /// `PING` on the subscribed connection (on a cluster: the node that holds the
    /// subscription), within `timeout`.
    async fn ping(&self, timeout: Duration) -> Result<(), FredError> {
        // fred sends a client's subscriptions to the node of its id's hash slot
        let slot = redis_keyslot(self.subscriber.id().as_bytes());
        let command = CustomCommand::new_static("PING", ClusterHash::Custom(slot), false);
        self.subscriber
            .with_options(&Self::bounded(timeout))
            .custom::<Value, Value>(command, Vec::new())
            .await
            .map(|_| ())
    }
}

/// Waits on `pending` if there is one; never finishes otherwise (so `select!` skips it).
async fn wait(pending: &mut Option<Pending>) -> Option<Result<(), FredError>> {
    match pending {
        Some(future) => Some(future.await),
        None => std::future::pending().await,
    }
}

/// A decoded message.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    id: InstanceId,
    body: Body,
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    Keys(Vec<String>),
    Prefix(String),
    All,
}

/// The message of `what` from instance `id`.
fn encode(id: &InstanceId, what: Invalidated<'_>) -> Bytes {
    let (kind, len) = match what {
        Invalidated::Keys(keys) => (
            KIND_KEYS,
            keys.iter().map(|k| k.len() + 5).sum::<usize>() + 5,
        ),
        Invalidated::Prefix(prefix) => (KIND_PREFIX, prefix.len() + 5),
        Invalidated::All => (KIND_ALL, 0),
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + len);
    out.put_u8(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_slice(id);
    match what {
        Invalidated::Keys(keys) => {
            put_len(&mut out, keys.len());
            for key in keys {
                put_len(&mut out, key.len());
                out.put_slice(key.as_bytes());
            }
        }
        Invalidated::Prefix(prefix) => {
            put_len(&mut out, prefix.len());
            out.put_slice(prefix.as_bytes());
        }
        Invalidated::All => {}
    }
    out.freeze()
}

/// Appends `n` as unsigned LEB128.
fn put_len(out: &mut BytesMut, n: usize) {
    let mut n = n as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

/// Takes an unsigned LEB128 length off the front of `rest`.
fn take_len(rest: &mut &[u8]) -> Option<usize> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        if shift > 56 {
            return None;
        }
        len |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return usize::try_from(len).ok();
        }
    }
}

/// Reads a message; `None` when it is not one of this format and version.
fn decode(message: &[u8]) -> Option<Decoded> {
    let (header, mut rest) = message.split_at_checked(HEADER_LEN)?;
    let [magic, version, kind, id @ ..] = header else {
        return None;
    };
    if *magic != MAGIC || *version != VERSION {
        return None;
    }
    let id: InstanceId = id.try_into().ok()?;
    let body = match *kind {
        KIND_KEYS => {
            let count = take_len(&mut rest)?;
            // each key takes at least one byte: a count beyond that is a lie, not a size
            let mut keys = Vec::with_capacity(count.min(rest.len()));
            for _ in 0..count {
                keys.push(item(&mut rest)?);
            }
            if keys.is_empty() || !rest.is_empty() {
                return None;
            }
            Body::Keys(keys)
        }
        KIND_PREFIX => {
            let prefix = item(&mut rest)?;
            if !rest.is_empty() {
                return None;
            }
            Body::Prefix(prefix)
        }
        KIND_ALL if rest.is_empty() => Body::All,
        _ => return None,
    };
    Some(Decoded { id, body })
}

/// Takes one length-prefixed UTF-8 text off the front of `rest`.
fn item(rest: &mut &[u8]) -> Option<String> {
    let len = take_len(rest)?;
    let (text, tail) = rest.split_at_checked(len)?;
    *rest = tail;
    String::from_utf8(text.to_vec()).ok()
}

/// A random id for a new instance.
fn instance_id() -> InstanceId {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let a = RandomState::new().hash_one((now, std::process::id(), n));
    let b = RandomState::new().hash_one((a, now, n));
    let mut id = [0; ID_LEN];
    id[..8].copy_from_slice(&a.to_le_bytes());
    id[8..].copy_from_slice(&b.to_le_bytes());
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_any_key() {
        let id = instance_id();
        let keys = vec![
            "ns:plain".to_owned(),
            "ns:line\nbreak\r\0".to_owned(),
            String::new(),
            "ü€😀".repeat(100),
        ];
        let decoded = decode(&encode(&id, Invalidated::Keys(&keys))).unwrap();
        assert_eq!(decoded.id, id);
        assert_eq!(decoded.body, Body::Keys(keys));
        let decoded = decode(&encode(&id, Invalidated::Prefix("ns:"))).unwrap();
        assert_eq!(decoded.body, Body::Prefix("ns:".into()));
        let decoded = decode(&encode(&id, Invalidated::All)).unwrap();
        assert_eq!(decoded.body, Body::All);
    }

    #[test]
    fn anything_else_is_not_a_message() {
        let id = instance_id();
        let good = encode(&id, Invalidated::Keys(&["a".to_owned(), "bc".to_owned()]));
        for cut in 0..good.len() {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut later = good.to_vec();
        later[1] = VERSION + 1;
        assert_eq!(decode(&later), None);
        let mut long = good.to_vec();
        long.push(0xff);
        assert_eq!(decode(&long), None);
        let mut not_utf8 = encode(&id, Invalidated::Prefix("x")).to_vec();
        let last = not_utf8.len() - 1;
        not_utf8[last] = 0xff;
        assert_eq!(decode(&not_utf8), None);
        assert_eq!(decode(b"hello"), None);
        let mut huge = good[..HEADER_LEN].to_vec();
        huge.extend([0xff; 12]);
        assert_eq!(decode(&huge), None);
    }

    #[test]
    fn instances_have_their_own_ids() {
        assert_ne!(instance_id(), instance_id());
    }
}
