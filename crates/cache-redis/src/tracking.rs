//! [`RedisTracking`]: RESP3 client tracking (`CLIENT TRACKING ON BCAST`) on the connections of
//! a [`RedisBackend`], as the [`Invalidator`] of an in-process tier.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cache_core::tier::{Invalidated, InvalidationSink, Invalidator};
use cache_core::{CallContext, Error, Result};
use fred::interfaces::{
    ClientInterface, ClientLike, EventInterface, KeysInterface, TrackingInterface,
};
use fred::prelude::{Client, ClientState, Expiration, Options, Value};
use fred::types::RespVersion;
use fred::types::client::Invalidation;
use fred::types::config::Server;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use crate::backend::RedisBackend;
use crate::error;

/// Default interval of the heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);
/// Default time a heartbeat may take before the connection counts as lost.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// Lifetime of the flush marker (see [`RedisTracking`], "Flushes"); refreshed every
/// [`MARKER_REFRESH`].
const MARKER_TTL: Duration = Duration::from_secs(60);
/// How often the first connection's heartbeat refreshes the flush marker's lifetime.
const MARKER_REFRESH: Duration = Duration::from_secs(10);

/// Configures [`RedisTracking`] for a backend: from [`RedisBackend::tracking`]. Set what
/// differs from the defaults, then [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build()"]
pub struct RedisTrackingBuilder {
    clients: Vec<Client>,
    clustered: bool,
    generations: bool,
    prefixes: Vec<String>,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
}

impl RedisBackend {
    /// Client tracking on this backend's connections, for an in-process tier in front of
    /// it: the server reports every change of a key under the tracked prefixes on the very
    /// connections that read, so a reply and the invalidation that follows it cannot
    /// overtake each other. The backend must speak RESP3 (`protocol=resp3`; RESP2 is the
    /// default): [`build`](RedisTrackingBuilder::build) refuses RESP2. See [`RedisTracking`].
    pub fn tracking(&self) -> RedisTrackingBuilder {
        RedisTrackingBuilder {
            clients: self.clients().to_vec(),
            clustered: self.clustered,
            generations: self.generations.is_some(),
            prefixes: Vec::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
        }
    }
}

impl RedisTrackingBuilder {
    /// Tracks the keys starting with `prefix` (a namespace's built keys start with
    /// `"{namespace}:"`). Without any prefix every key of the server is tracked.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Tracks the keys starting with any of `prefixes` (see [`prefix`](Self::prefix)).
    pub fn prefixes<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefixes.extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// How often each connection is checked with a round trip: an `EXISTS` of the flush
    /// marker (see [`RedisTracking`], "Flushes"), which serves as the `PING` and finds
    /// flushes too. Default [`DEFAULT_HEARTBEAT`] (500 ms).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long a heartbeat may wait for its answer before the connection counts as lost
    /// (the sink is told [`disconnected`](InvalidationSink::disconnected) until answers come
    /// back). Default [`DEFAULT_HEARTBEAT_TIMEOUT`] (2 s).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Checks the settings against the backend; tracking is turned on by
    /// [`Invalidator::start`].
    ///
    /// # Errors
    /// - [`ErrorKind::Unsupported`](cache_core::ErrorKind::Unsupported) for a Redis Cluster
    ///   backend, and for a backend with namespace generations (it stores keys under
    ///   generation-folded names that the server would report, not the keys the tier holds);
    /// - [`ErrorKind::Config`](cache_core::ErrorKind::Config) for a RESP2 backend (the
    ///   server pushes invalidations on the connection only in RESP3);
    /// - [`ErrorKind::InvalidArgument`](cache_core::ErrorKind::InvalidArgument) for an empty
    ///   prefix, prefixes that overlap (one starts with another: the server refuses them),
    ///   or a zero heartbeat or heartbeat timeout.
    pub fn build(self) -> Result<RedisTracking> {
        if self.clustered {
            return Err(Error::unsupported(
                "client tracking is not supported on a Redis Cluster backend: use the pub/sub \
                 invalidator, or a standalone, sentinel or Unix socket backend",
            ));
        }
        if self.generations {
            return Err(Error::unsupported(
                "client tracking cannot be combined with namespace_generations: the server \
                 reports the generation-folded key names, not the keys a tier holds; turn \
                 namespace_generations off or use the pub/sub invalidator",
            ));
        }
        if self
            .clients
            .iter()
            .any(|c| c.protocol_version() != RespVersion::RESP3)
        {
            return Err(Error::config(
                "client tracking needs the RESP3 protocol (invalidations are pushed on the \
                 connection that reads); the backend uses RESP2: set protocol to resp3",
            ));
        }
        check_prefixes(&self.prefixes)?;
        if self.heartbeat.is_zero() || self.heartbeat_timeout.is_zero() {
            return Err(Error::invalid_argument(
                "client tracking: heartbeat and heartbeat_timeout must be more than zero",
            ));
        }
        Ok(RedisTracking {
            clients: self.clients,
            prefixes: self.prefixes,
            heartbeat: self.heartbeat,
            heartbeat_timeout: self.heartbeat_timeout,
            marker: marker_key(),
            counters: Arc::new(Counters::default()),
            state: Mutex::new(State::Idle),
            closed: AtomicBool::new(false),
        })
    }
}

/// No empty prefix, no prefix that starts with another.
fn check_prefixes(prefixes: &[String]) -> Result<()> {
    if prefixes.iter().any(String::is_empty) {
        return Err(Error::invalid_argument(
            "client tracking: an empty prefix; give no prefix at all to track every key",
        ));
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return Err(Error::invalid_argument(format!(
                    "client tracking: the prefixes {a:?} and {b:?} overlap (one starts with the \
                     other), which Redis refuses; keep the shorter one"
                )));
            }
        }
    }
    Ok(())
}

/// A key name of its own for this tracker's flush marker.
fn marker_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "stratacache:tracking:{}:{nanos:x}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Counters of a [`RedisTracking`] since it was made ([`RedisTracking::stats`]).
///
/// With several connections (`pool_size` > 1) every change is reported on each of them, so
/// `messages` and `keys` count each change once per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackingStats {
    /// Invalidation messages received from the server.
    pub messages: u64,
    /// Keys named by those messages.
    pub keys: u64,
    /// Flushes seen (`FLUSHDB`/`FLUSHALL`, found by the heartbeat), each passed on as
    /// [`Invalidated::All`].
    pub flushes: u64,
    /// Times messages were lost because the reader fell behind, each passed on as
    /// [`Invalidated::All`].
    pub lagged: u64,
    /// Times the sink was told [`disconnected`](InvalidationSink::disconnected).
    pub disconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    keys: AtomicU64,
    flushes: AtomicU64,
    lagged: AtomicU64,
    disconnects: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

enum State {
    Idle,
    Running {
        shared: Arc<Shared>,
        tasks: Vec<JoinHandle<()>>,
    },
    Closed,
}

/// Keeps a tier's local level coherent with a Redis server through RESP3 client tracking in
/// broadcast mode (`CLIENT TRACKING ON BCAST PREFIX …`), on every connection of the backend
/// it was made from ([`RedisBackend::tracking`]).
///
/// # How it works
///
/// [`start`](Invalidator::start) turns tracking on for each connection of the backend's pool
/// (the connections that read), and a task per connection passes every invalidation the
/// server pushes on it to the sink as [`Invalidated::Keys`]. As reads and invalidations share
/// a connection, the server's reply to a read always comes before the invalidation of a
/// later change of the key. The server reports every change of a tracked key: writes of
/// other clients, **this backend's own writes** (no `NOLOOP`: a tier drops its copy of a key
/// it just wrote and reads it again), expiry and eviction.
/// [`publish`](Invalidator::publish) therefore sends nothing.
///
/// # Prefixes and server cost
///
/// Broadcast mode keeps no per-key state on the server; its cost is CPU per write,
/// proportional to the number of prefixes of all tracking clients, and a message per
/// matching change to each tracking connection. Give the prefixes of the tier's namespaces
/// (`"users:"`). With no prefix, every key of the server is tracked: every write anywhere on
/// the server (every database) sends a message to each tracking connection — use it only on
/// a server dedicated to this cache. Prefixes must not overlap.
///
/// # Flushes
///
/// The server announces `FLUSHDB`/`FLUSHALL` with a "null" invalidation, which fred 10.1
/// drops without passing it on. The heartbeat finds flushes instead: [`start`](Invalidator::start)
/// writes a marker key (`stratacache:tracking:…`, lifetime 60 s, refreshed every 10 s) in
/// the backend's database, and each heartbeat checks it is still there. A missing marker
/// (a flush, or its eviction) is passed on as [`Invalidated::All`] and written again; so a
/// flush reaches the sink within one heartbeat interval plus a round trip, and local copies
/// may outlive a flush by that long. A flush of another database is not reported (it
/// leaves this one's keys alone).
///
/// # Falling behind
///
/// fred hands invalidations over through a bounded queue per connection (256 messages on a
/// backend from [`RedisBuilder`](crate::RedisBuilder), fred's default of 32 on clients made
/// elsewhere). When the reader falls further behind, messages are lost: that is passed on as
/// [`Invalidated::All`] and counted in [`TrackingStats::lagged`].
///
/// # Losing the connection
///
/// A connection error, a reconnection, or a heartbeat (a round trip on each tracking
/// connection every `heartbeat`, default 500 ms) not answered within `heartbeat_timeout`
/// (default 2 s) tells the sink [`disconnected`](InvalidationSink::disconnected). fred does
/// not turn tracking on again on a new connection: the heartbeat does it (`CLIENT TRACKING
/// OFF`, then `ON`) and tells the sink [`connected`](InvalidationSink::connected) once every
/// connection is tracked and answering again.
///
/// # Limits
///
/// Not for a Redis Cluster backend, nor with namespace generations, nor over RESP2
/// ([`build`](RedisTrackingBuilder::build) refuses them). On a sentinel backend, a failover
/// is a reconnection like any other, and the new primary's connection is tracked again (not
/// covered by this crate's tests). Servers without broadcast tracking (Dragonfly) make
/// [`start`](Invalidator::start) fail. Closing the backend stops deliveries (the sink is
/// told `disconnected`). Drop a started tracker only after [`close`](Invalidator::close):
/// dropping it stops its tasks and tells the sink `disconnected`, but leaves tracking on for
/// the connections (the server keeps sending messages nobody reads).
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use std::time::Duration;
/// use cache_redis::RedisBuilder;
///
/// // invalidations are pushed over RESP3
/// let backend = RedisBuilder::from_url("redis://127.0.0.1:6379?protocol=resp3")?
///     .build()
///     .await?;
/// let tracking = backend
///     .tracking()
///     .prefixes(["users:", "orders:"])
///     .heartbeat(Duration::from_millis(250))
///     .build()?;
/// // hand `backend` and `tracking` to the in-process tier, which calls `start` with its sink
/// assert!(cache_core::tier::Invalidator::covers(&tracking, "users:42"));
/// # Ok(()) }
/// ```
pub struct RedisTracking {
    clients: Vec<Client>,
    prefixes: Vec<String>,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
    marker: String,
    counters: Arc<Counters>,
    state: Mutex<State>,
    closed: AtomicBool,
}

impl fmt::Debug for RedisTracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTracking")
            .field("connections", &self.clients.len())
            .field("prefixes", &self.prefixes)
            .field("heartbeat", &self.heartbeat)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for RedisTracking {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let State::Running { tasks, shared } = state {
            for task in tasks.drain(..) {
                task.abort();
            }
            shared.stop();
        }
    }
}

impl RedisTracking {
    /// The tracked prefixes (empty: every key).
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// Counters since this tracker was made.
    pub fn stats(&self) -> TrackingStats {
        let c = &self.counters;
        TrackingStats {
            messages: c.messages.load(Ordering::Relaxed),
            keys: c.keys.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
        }
    }

    /// Whether deliveries run: started, not closed, and every connection tracked and
    /// answering the heartbeat.
    pub fn is_connected(&self) -> bool {
        match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Running { shared, .. } => shared.health().announced,
            _ => false,
        }
    }

    fn link(&self) -> Link {
        Link {
            prefixes: self.prefixes.clone(),
            marker: self.marker.clone(),
            timeout: self.heartbeat_timeout,
        }
    }
}

/// What every connection's task needs to (re)enable tracking and beat.
#[derive(Clone)]
struct Link {
    prefixes: Vec<String>,
    marker: String,
    timeout: Duration,
}

impl Link {
    fn options(&self) -> Options {
        Options {
            timeout: Some(self.timeout),
            max_attempts: Some(1),
            ..Options::default()
        }
    }

    /// `CLIENT TRACKING OFF` then `ON BCAST PREFIX …` (the server refuses `ON` with a prefix
    /// the connection tracks already).
    async fn enable(&self, client: &Client) -> Result<()> {
        let run = async {
            client.stop_tracking().await?;
            client
                .start_tracking(self.prefixes.clone(), true, false, false, false)
                .await
        };
        match tokio::time::timeout(self.timeout, run).await {
            // the server's reply names the reason (no ACL permission, no BCAST support)
            Ok(result) => result.map_err(|e| {
                let reply = error::server_code(e.details())
                    .is_some()
                    .then(|| e.details().to_owned());
                let converted = error::convert(e);
                match reply {
                    Some(reply) => converted.with_context("reply", reply),
                    None => converted,
                }
            }),
            Err(_) => Err(Error::new(
                cache_core::ErrorKind::Timeout,
                "CLIENT TRACKING was not answered within the heartbeat timeout",
            )),
        }
    }

    /// Whether the connection the client uses now has tracking on (`CLIENT TRACKINGINFO`);
    /// `false` when that cannot be told.
    async fn tracking_on(&self, client: &Client) -> bool {
        let info = tokio::time::timeout(
            self.timeout,
            client.client_trackinginfo::<HashMap<String, Value>>(),
        )
        .await;
        let flags = match info {
            Ok(Ok(mut info)) => info.remove("flags"),
            _ => None,
        };
        flags
            .and_then(|flags| flags.convert::<Vec<String>>().ok())
            .is_some_and(|flags| flags.iter().any(|f| f == "on"))
    }

    /// Writes the flush marker.
    async fn mark(&self, client: &Client) -> Result<()> {
        let expiry = Expiration::PX(crate::backend::millis(MARKER_TTL));
        client
            .with_options(&self.options())
            .set::<(), _, _>(self.marker.as_str(), 1, Some(expiry), None, false)
            .await
            .map_err(error::convert)
    }

    /// One heartbeat: whether the marker is still there (with `refresh`, its lifetime is
    /// renewed on the way).
    async fn beat(&self, client: &Client, refresh: bool) -> Result<bool> {
        let client = client.with_options(&self.options());
        let answer: std::result::Result<i64, _> = if refresh {
            client
                .pexpire(
                    self.marker.as_str(),
                    crate::backend::millis(MARKER_TTL),
                    None,
                )
                .await
        } else {
            client.exists(self.marker.as_str()).await
        };
        answer.map(|n| n > 0).map_err(error::convert)
    }
}

/// What the tasks of all connections share.
struct Shared {
    sink: Arc<dyn InvalidationSink>,
    counters: Arc<Counters>,
    marker: String,
    health: Mutex<Health>,
}

struct Health {
    /// Per connection: tracked and answering.
    ok: Vec<bool>,
    /// Whether the sink was last told `connected`.
    announced: bool,
    stopped: bool,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether connection `index` counts as healthy.
    fn is_ok(&self, index: usize) -> bool {
        self.health().ok.get(index).copied().unwrap_or(false)
    }

    /// Records connection `index` as healthy or not, and tells the sink when that changes
    /// whether every connection is.
    fn set_ok(&self, index: usize, ok: bool) {
        let mut health = self.health();
        if let Some(slot) = health.ok.get_mut(index) {
            *slot = ok;
        }
        self.announce(&mut health);
    }

    fn announce(&self, health: &mut Health) {
        let all = !health.stopped && health.ok.iter().all(|ok| *ok);
        if all && !health.announced {
            health.announced = true;
            tracing::info!("redis tracking: invalidations flow");
            self.sink.connected();
        } else if !all && health.announced {
            health.announced = false;
            Counters::add(&self.counters.disconnects, 1);
            tracing::warn!("redis tracking: invalidations may be lost, local copies dropped");
            self.sink.disconnected();
        }
    }

    fn stop(&self) {
        let mut health = self.health();
        health.stopped = true;
        self.announce(&mut health);
    }

    fn deliver(&self, invalidation: Invalidation) {
        let keys: Vec<String> = invalidation
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k.as_bytes()).into_owned())
            .filter(|k| *k != self.marker)
            .collect();
        if keys.is_empty() && !invalidation.keys.is_empty() {
            // only the marker (tracked when every key is)
            return;
        }
        Counters::add(&self.counters.messages, 1);
        if keys.is_empty() {
            // a null invalidation, should fred ever pass one on: a flush
            Counters::add(&self.counters.flushes, 1);
            self.sink.invalidate(Invalidated::All);
            return;
        }
        Counters::add(&self.counters.keys, keys.len() as u64);
        self.sink.invalidate(Invalidated::Keys(&keys));
    }

    fn flushed(&self) {
        Counters::add(&self.counters.flushes, 1);
        tracing::info!("redis tracking: the database was flushed");
        self.sink.invalidate(Invalidated::All);
    }

    fn lagged(&self, n: u64) {
        Counters::add(&self.counters.lagged, 1);
        tracing::warn!(
            lost = n,
            "redis tracking: invalidations lost, local copies dropped"
        );
        self.sink.invalidate(Invalidated::All);
    }
}

/// Passes the invalidations pushed on one connection to the sink.
async fn forward(
    shared: Arc<Shared>,
    index: usize,
    mut rx: tokio::sync::broadcast::Receiver<Invalidation>,
) {
    loop {
        match rx.recv().await {
            Ok(invalidation) => shared.deliver(invalidation),
            Err(RecvError::Lagged(n)) => shared.lagged(n),
            Err(RecvError::Closed) => {
                // the client was closed (QUIT)
                shared.set_ok(index, false);
                return;
            }
        }
    }
}

/// Watches one connection: errors and reconnections, and the heartbeat that turns tracking
/// on again and finds flushes.
async fn watch(
    shared: Arc<Shared>,
    link: Link,
    index: usize,
    client: Client,
    heartbeat: Duration,
    mut errors: tokio::sync::broadcast::Receiver<(fred::error::Error, Option<Server>)>,
    mut reconnects: tokio::sync::broadcast::Receiver<Server>,
) {
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let refresh_every = (MARKER_REFRESH.as_millis() / heartbeat.as_millis().max(1)).max(1);
    let mut beats: u128 = 0;
    let mut tracked = true;
    loop {
        tokio::select! {
            // events first, in the order fred sent them: errors of failed attempts come
            // before the reconnection that ends them
            biased;
            event = errors.recv() => {
                if matches!(event, Err(RecvError::Closed)) {
                    shared.set_ok(index, false);
                    return;
                }
                tracing::debug!(connection = index, "redis tracking: connection error");
                tracked = false;
                shared.set_ok(index, false);
                continue;
            }
            event = reconnects.recv() => {
                if matches!(event, Err(RecvError::Closed)) {
                    shared.set_ok(index, false);
                    return;
                }
                // A new connection: not tracked yet, and messages may have been lost —
                // unless this announcement is late: tracking was turned on again after the
                // connection was made (the sink was told `disconnected` before that).
                if tracked && shared.is_ok(index) && link.tracking_on(&client).await {
                    continue;
                }
                tracked = false;
                shared.set_ok(index, false);
            }
            _ = ticker.tick() => {}
        }
        let recovering = !tracked;
        if recovering {
            // fred still says `Connected` while it waits to reconnect, but not once it tries
            if client.state() != ClientState::Connected {
                shared.set_ok(index, false);
                continue;
            }
            drain(&mut errors, &mut reconnects);
            match link.enable(&client).await {
                Ok(()) => tracked = true,
                Err(e) => {
                    tracing::debug!(connection = index, error = %e, "redis tracking: not on yet");
                    shared.set_ok(index, false);
                    continue;
                }
            }
        }
        beats += 1;
        let refresh = index == 0 && beats.is_multiple_of(refresh_every);
        let present = match link.beat(&client, refresh).await {
            Ok(present) => present,
            Err(e) => {
                tracing::debug!(connection = index, error = %e, "redis tracking: heartbeat failed");
                // tracking is turned on again before the connection counts as healthy
                tracked = false;
                shared.set_ok(index, false);
                continue;
            }
        };
        // Events that came while tracking was turned on may tell of the outage that ends
        // here (fred queued the commands until it reconnected), or of a new one. The
        // connection in use now has tracking on only if it is the one turned on above.
        if recovering && drain(&mut errors, &mut reconnects) && !link.tracking_on(&client).await {
            tracked = false;
            shared.set_ok(index, false);
            continue;
        }
        if !present {
            shared.flushed();
            if let Err(e) = link.mark(&client).await {
                tracing::debug!(error = %e, "redis tracking: marker not written");
            }
        }
        shared.set_ok(index, true);
    }
}

/// Takes the queued connection events; whether there were any.
fn drain(
    errors: &mut tokio::sync::broadcast::Receiver<(fred::error::Error, Option<Server>)>,
    reconnects: &mut tokio::sync::broadcast::Receiver<Server>,
) -> bool {
    let mut any = false;
    while !matches!(
        errors.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {
        any = true;
    }
    while !matches!(
        reconnects.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {
        any = true;
    }
    any
}

#[async_trait]
impl Invalidator for RedisTracking {
    fn name(&self) -> &'static str {
        "redis-tracking"
    }

    /// Turns tracking on for every connection of the backend, writes the flush marker,
    /// starts the tasks, and tells the sink [`connected`](InvalidationSink::connected).
    ///
    /// # Errors
    /// `Closed` after [`close`](Invalidator::close); `InvalidArgument` when already started;
    /// the connection or server error that kept tracking from being turned on (then nothing
    /// keeps running).
    ///
    /// # Cancel safety
    /// Dropping the future may leave tracking on for some connections but starts no task;
    /// `start` may be called again.
    async fn start(&self, sink: Arc<dyn InvalidationSink>) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(error::closed());
        }
        if !matches!(
            *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Idle
        ) {
            return Err(Error::invalid_argument(
                "RedisTracking::start was called already",
            ));
        }
        let link = self.link();
        // subscribed before tracking is on, so that nothing is missed
        let mut receivers = Vec::with_capacity(self.clients.len());
        for client in &self.clients {
            receivers.push((
                client.invalidation_rx(),
                client.error_rx(),
                client.reconnect_rx(),
            ));
        }
        let mut enabled = Ok(());
        for client in &self.clients {
            enabled = link
                .enable(client)
                .await
                .map_err(|e| e.with_context("during", "CLIENT TRACKING ON"));
            if enabled.is_err() {
                break;
            }
        }
        if enabled.is_ok()
            && let Some(first) = self.clients.first()
        {
            enabled = link.mark(first).await;
        }
        if let Err(e) = enabled {
            // best effort: leave no connection tracked
            for client in &self.clients {
                let _ = tokio::time::timeout(link.timeout, client.stop_tracking()).await;
            }
            return Err(e);
        }
        let shared = Arc::new(Shared {
            sink: sink.clone(),
            counters: self.counters.clone(),
            marker: self.marker.clone(),
            health: Mutex::new(Health {
                ok: vec![true; self.clients.len()],
                announced: false,
                stopped: false,
            }),
        });
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Idle) || self.closed.load(Ordering::Acquire) {
            return Err(Error::invalid_argument(
                "RedisTracking was started or closed meanwhile",
            ));
        }
        let mut tasks = Vec::with_capacity(self.clients.len() * 2);
        for (index, (client, (invalidations, errors, reconnects))) in
            self.clients.iter().zip(receivers).enumerate()
        {
            tasks.push(tokio::spawn(forward(shared.clone(), index, invalidations)));
            tasks.push(tokio::spawn(watch(
                shared.clone(),
                link.clone(),
                index,
                client.clone(),
                self.heartbeat,
                errors,
                reconnects,
            )));
        }
        {
            let mut health = shared.health();
            shared.announce(&mut health);
        }
        *state = State::Running { shared, tasks };
        Ok(())
    }

    /// Sends nothing: the server reports the changes itself.
    async fn publish(&self, _ctx: &CallContext<'_>, _what: Invalidated<'_>) -> Result<()> {
        Ok(())
    }

    fn covers(&self, key: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Stops the tasks, tells the sink [`disconnected`](InvalidationSink::disconnected) if
    /// it was connected, and sends `CLIENT TRACKING OFF` on the connections that are up
    /// (waiting at most the heartbeat timeout for each) and removes the flush marker.
    /// Idempotent; the backend stays usable.
    ///
    /// # Errors
    /// None: a connection that does not answer is left as it is.
    ///
    /// # Cancel safety
    /// Once the future is first polled the tasks are stopped; dropping it may leave tracking
    /// on for some connections (the server stops it when they close).
    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let previous = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Closed,
        );
        let State::Running { shared, tasks } = previous else {
            return Ok(());
        };
        for task in tasks {
            task.abort();
        }
        shared.stop();
        let link = self.link();
        for client in &self.clients {
            if !client.is_connected() {
                continue;
            }
            match tokio::time::timeout(link.timeout, client.stop_tracking()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "redis CLIENT TRACKING OFF failed"),
                Err(_) => tracing::debug!("redis CLIENT TRACKING OFF timed out"),
            }
        }
        if let Some(first) = self.clients.first().filter(|c| c.is_connected()) {
            let deleted: std::result::Result<i64, _> = first
                .with_options(&link.options())
                .del(self.marker.as_str())
                .await;
            if let Err(e) = deleted {
                tracing::debug!(error = %e, "redis tracking marker not removed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_or_empty_prefixes_are_refused() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(check_prefixes(&p(&[])).is_ok());
        assert!(check_prefixes(&p(&["users:", "orders:"])).is_ok());
        let e = check_prefixes(&p(&["users:", "users:admins:"])).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        assert!(check_prefixes(&p(&["a", "a"])).is_err());
        assert!(check_prefixes(&p(&["a:", ""])).is_err());
    }

    #[test]
    fn marker_keys_differ() {
        assert_ne!(marker_key(), marker_key());
    }
}
