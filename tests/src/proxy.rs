//! A TCP fault proxy: it sits between a client and a server on loopback and, switched at run
//! time, delays, holds, cuts or resets the traffic it forwards.
//!
//! The proxy listens on `127.0.0.1:0`; every accepted connection gets its own connection to
//! the upstream address and two pumps, one per direction, that forward one chunk (one `read`,
//! at most [`CHUNK`] bytes) at a time. The [`Mode`] is read for every chunk:
//!
//! - [`Mode::PassThrough`] forwards at once;
//! - [`Mode::Latency`] sleeps that long before forwarding each chunk, in each direction;
//! - [`Mode::Stall`] holds the chunk (and so reads nothing more) until the mode changes; the
//!   sockets stay open.
//!
//! Two faults act on top of the mode: [`FaultProxy::reset_all`] closes every open connection
//! with a TCP reset (`SO_LINGER` 0) on both sides, and [`FaultProxy::cut_next_reply`] forwards
//! only the first `n` bytes that the server sends from the next server→client chunk on, then
//! closes that connection ([`FaultProxy::cut_replies`] does it to the next few connections
//! that receive a reply).
//!
//! [`FaultProxy::stats`] counts connections opened and alive, so a test can check that a
//! client does not leak connections, and counts every fault it injected.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Largest chunk a pump reads and forwards in one step.
pub const CHUNK: usize = 16 * 1024;

/// How the proxy forwards bytes, in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward every chunk as soon as it is read.
    #[default]
    PassThrough,
    /// Wait this long before forwarding each chunk (each direction separately).
    Latency(Duration),
    /// Forward nothing until the mode changes; connections stay open.
    Stall,
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted since the proxy started.
    pub opened: u64,
    /// Client connections open now (each with its upstream connection).
    pub alive: usize,
    /// Accepted connections whose upstream connect failed (closed at once).
    pub upstream_failures: u64,
    /// Chunks forwarded after an added latency.
    pub delayed_chunks: u64,
    /// Chunks held back while stalled.
    pub stalled_chunks: u64,
    /// Connections closed by [`FaultProxy::reset_all`].
    pub resets: u64,
    /// Replies cut by [`FaultProxy::cut_next_reply`].
    pub cuts: u64,
    /// Bytes forwarded client → server.
    pub bytes_to_server: u64,
    /// Bytes forwarded server → client.
    pub bytes_to_client: u64,
}

impl ProxyStats {
    /// Faults injected so far: delayed and held chunks, reset connections and cut replies.
    pub fn faults(&self) -> u64 {
        self.delayed_chunks + self.stalled_chunks + self.resets + self.cuts
    }
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    alive: AtomicUsize,
    upstream_failures: AtomicU64,
    delayed_chunks: AtomicU64,
    stalled_chunks: AtomicU64,
    resets: AtomicU64,
    cuts: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped to reset every open connection.
    reset: watch::Sender<u64>,
    /// An armed cut: (bytes forwarded before cutting, connections still to cut).
    cut: Mutex<Option<(u64, u64)>>,
    counters: Counters,
}

impl Shared {
    fn cut(&self) -> MutexGuard<'_, Option<(u64, u64)>> {
        self.cut.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the armed cut for one connection: its byte budget.
    fn claim_cut(&self) -> Option<u64> {
        let mut cut = self.cut();
        let (bytes, times) = (*cut)?;
        *cut = (times > 1).then_some((bytes, times - 1));
        Some(bytes)
    }
}

/// Keeps `alive` up to date for one client connection.
struct AliveGuard(Arc<Shared>);

impl AliveGuard {
    fn new(shared: Arc<Shared>) -> AliveGuard {
        shared.counters.opened.fetch_add(1, Ordering::Relaxed);
        shared.counters.alive.fetch_add(1, Ordering::SeqCst);
        AliveGuard(shared)
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.counters.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running fault proxy. Dropping it stops accepting and resets every open connection.
pub struct FaultProxy {
    local: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("local", &self.local)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (`host:port`; the first IPv4
    /// address it resolves to, else the first address), in pass-through mode.
    ///
    /// # Errors
    /// When `upstream` does not resolve or the listener cannot be bound.
    pub async fn start(upstream: &str) -> io::Result<FaultProxy> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(upstream).await?.collect();
        let upstream = addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addresses.first())
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no upstream address"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            mode: watch::Sender::new(Mode::PassThrough),
            reset: watch::Sender::new(0),
            cut: Mutex::new(None),
            counters: Counters::default(),
        });
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            local,
            shared,
            acceptor,
        })
    }

    /// The proxy's listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The proxy's listening address as `127.0.0.1:port`.
    pub fn address(&self) -> String {
        self.local.to_string()
    }

    /// The proxy's listening port.
    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Switches the mode; chunks already being delayed or held follow the new mode when they
    /// next look at it.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Back to plain forwarding: pass-through mode, and an armed cut is disarmed.
    pub fn pass_through(&self) {
        *self.shared.cut() = None;
        self.set_mode(Mode::PassThrough);
    }

    /// Adds `latency` before every chunk, in each direction.
    pub fn set_latency(&self, latency: Duration) {
        self.set_mode(Mode::Latency(latency));
    }

    /// Stops forwarding (sockets stay open) until the mode changes.
    pub fn stall(&self) {
        self.set_mode(Mode::Stall);
    }

    /// Closes every open connection with a TCP reset on both sides (`SO_LINGER` 0). New
    /// connections are accepted as before. Returns how many connections were open.
    pub fn reset_all(&self) -> usize {
        let open = self.stats().alive;
        self.shared.reset.send_modify(|generation| *generation += 1);
        open
    }

    /// Arms a one-shot cut: from the next server→client chunk on, forward only `bytes` more
    /// bytes of that connection, then close it. [`pass_through`](Self::pass_through) disarms
    /// a cut that has not fired.
    pub fn cut_next_reply(&self, bytes: u64) {
        self.cut_replies(bytes, 1);
    }

    /// Arms a cut of the next `connections` connections that receive bytes from the server,
    /// each as [`cut_next_reply`](Self::cut_next_reply) does (`u64::MAX`: every one until
    /// [`pass_through`](Self::pass_through)).
    pub fn cut_replies(&self, bytes: u64, connections: u64) {
        *self.shared.cut() = (connections > 0).then_some((bytes, connections));
    }

    /// Whether an armed cut has not fired yet (or not on every connection it is for).
    pub fn cut_pending(&self) -> bool {
        self.shared.cut().is_some()
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            opened: c.opened.load(Ordering::Relaxed),
            alive: c.alive.load(Ordering::SeqCst),
            upstream_failures: c.upstream_failures.load(Ordering::Relaxed),
            delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
            stalled_chunks: c.stalled_chunks.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            cuts: c.cuts.load(Ordering::Relaxed),
            bytes_to_server: c.bytes_to_server.load(Ordering::Relaxed),
            bytes_to_client: c.bytes_to_client.load(Ordering::Relaxed),
        }
    }

    /// Waits until at most `limit` connections are open, or `patience` has passed (closing
    /// is noticed asynchronously: a client's close reaches the proxy a little later).
    /// Returns the number open at the end. `patience` only bounds a wait for a leak that
    /// never clears; it is not a speed requirement.
    pub async fn settle_alive(&self, limit: usize, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let alive = self.stats().alive;
            if alive <= limit || Instant::now() >= deadline {
                return alive;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.shared.reset.send_modify(|generation| *generation += 1);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let guard = AliveGuard::new(shared.clone());
                tokio::spawn(serve(guard, client));
            }
            // out of file descriptors or a connection reset before accept: try again soon
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Why a connection's forwarding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Both sides closed, an I/O error, or a cut reply: close normally.
    Close,
    /// [`FaultProxy::reset_all`]: close with a reset.
    Reset,
}

/// Forwards one client connection until it ends.
async fn serve(guard: AliveGuard, mut client: TcpStream) {
    let shared = guard.0.clone();
    let mut reset = shared.reset.subscribe();
    let upstream = tokio::select! {
        r = TcpStream::connect(shared.upstream) => r,
        _ = reset.changed() => {
            abort(&shared, &client, None);
            return;
        }
    };
    let mut upstream = match upstream {
        Ok(s) => s,
        Err(_) => {
            shared
                .counters
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            // the client sees its connection reset, as if the server refused it
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let ending = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let to_server = pump(&shared, false, &mut client_read, &mut upstream_write);
        let to_client = pump(&shared, true, &mut upstream_read, &mut client_write);
        tokio::pin!(to_server, to_client);
        let (mut to_server_done, mut to_client_done) = (false, false);
        loop {
            tokio::select! {
                r = &mut to_server, if !to_server_done => match r {
                    Ok(Pumped::Eof) => to_server_done = true,
                    Ok(Pumped::Cut) | Err(_) => break Ending::Close,
                },
                r = &mut to_client, if !to_client_done => match r {
                    Ok(Pumped::Eof) => to_client_done = true,
                    Ok(Pumped::Cut) | Err(_) => break Ending::Close,
                },
                _ = reset.changed() => break Ending::Reset,
            }
            if to_server_done && to_client_done {
                break Ending::Close;
            }
        }
    };
    if ending == Ending::Reset {
        abort(&shared, &client, Some(&upstream));
    }
    drop((client, upstream, guard));
}

/// Makes the coming close of `client` (and `upstream`) a reset, and counts it.
fn abort(shared: &Shared, client: &TcpStream, upstream: Option<&TcpStream>) {
    let _ = client.set_zero_linger();
    if let Some(upstream) = upstream {
        let _ = upstream.set_zero_linger();
    }
    shared.counters.resets.fetch_add(1, Ordering::Relaxed);
}

/// How a pump ended without an I/O error.
enum Pumped {
    /// The source closed; the destination's write side was shut down.
    Eof,
    /// A cut fired: the destination got its bytes and the connection is to be closed.
    Cut,
}

/// Forwards `src` to `dst` chunk by chunk, applying the mode; `to_client` pumps also apply an
/// armed cut.
async fn pump(
    shared: &Shared,
    to_client: bool,
    src: &mut ReadHalf<'_>,
    dst: &mut WriteHalf<'_>,
) -> io::Result<Pumped> {
    let mut mode = shared.mode.subscribe();
    let mut buf = vec![0u8; CHUNK];
    // bytes this connection may still forward before it is cut (claimed from `shared.cut`)
    let mut budget: Option<u64> = None;
    let bytes = if to_client {
        &shared.counters.bytes_to_client
    } else {
        &shared.counters.bytes_to_server
    };
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            let _ = dst.shutdown().await;
            return Ok(Pumped::Eof);
        }
        let mut held = false;
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::PassThrough => break,
                Mode::Latency(latency) => {
                    tokio::time::sleep(latency).await;
                    shared
                        .counters
                        .delayed_chunks
                        .fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Mode::Stall => {
                    if !held {
                        held = true;
                        shared
                            .counters
                            .stalled_chunks
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    if mode.changed().await.is_err() {
                        return Ok(Pumped::Eof);
                    }
                }
            }
        }
        if to_client && budget.is_none() {
            budget = shared.claim_cut();
        }
        match budget {
            Some(left) if left <= n as u64 => {
                let left = left as usize;
                dst.write_all(&buf[..left]).await?;
                dst.flush().await?;
                bytes.fetch_add(left as u64, Ordering::Relaxed);
                shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
                return Ok(Pumped::Cut);
            }
            Some(left) => budget = Some(left - n as u64),
            None => {}
        }
        dst.write_all(&buf[..n]).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers each read with `reply(request)`, on its own task.
    async fn upstream(reply: fn(&[u8]) -> Vec<u8>) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&reply(&buf[..n])).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (address, task)
    }

    fn echo(request: &[u8]) -> Vec<u8> {
        request.to_vec()
    }

    /// 100 000 bytes `0, 1, 2, …` (mod 251), whatever the request.
    fn big(_: &[u8]) -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 251) as u8).collect()
    }

    async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        got
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn pass_through_forwards_both_ways_and_counts_connections() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let mut a = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut b = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
        assert_eq!(round_trip(&mut b, b"world").await, b"world");
        let stats = proxy.stats();
        assert_eq!((stats.opened, stats.alive), (2, 2));
        assert_eq!((stats.bytes_to_server, stats.bytes_to_client), (10, 10));
        assert_eq!(stats.faults(), 0);
        drop(a);
        assert_eq!(proxy.settle_alive(1, PATIENCE).await, 1);
        drop(b);
        assert_eq!(proxy.settle_alive(0, PATIENCE).await, 0);
        assert_eq!(proxy.stats().opened, 2);
    }

    #[tokio::test]
    async fn latency_delays_every_chunk_in_each_direction() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        proxy.set_latency(Duration::from_millis(30));
        assert_eq!(proxy.mode(), Mode::Latency(Duration::from_millis(30)));
        let started = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");
        // a lower bound only: sleeps never end early
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(proxy.stats().delayed_chunks, 2);
        proxy.pass_through();
        assert_eq!(round_trip(&mut s, b"pong").await, b"pong");
        assert_eq!(proxy.stats().delayed_chunks, 2);
    }

    #[tokio::test]
    async fn stall_holds_bytes_and_keeps_the_connection_until_resumed() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"one").await, b"one");
        proxy.stall();
        s.write_all(b"two").await.unwrap();
        let mut got = [0u8; 3];
        let waited = tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut got)).await;
        assert!(waited.is_err(), "nothing passes a stalled proxy");
        assert_eq!(proxy.stats().stalled_chunks, 1);
        assert_eq!(proxy.stats().alive, 1);
        proxy.pass_through();
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"two");
    }

    #[tokio::test]
    async fn reset_all_resets_open_connections_and_accepts_new_ones() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let mut a = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut a, b"x").await, b"x");
        assert_eq!(proxy.reset_all(), 1);
        let mut buf = [0u8; 8];
        match a.read(&mut buf).await {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => assert_eq!(n, 0, "a reset connection delivers nothing more"),
        }
        assert_eq!(proxy.settle_alive(0, PATIENCE).await, 0);
        assert_eq!(proxy.stats().resets, 1);
        let mut b = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut b, b"again").await, b"again");
    }

    #[tokio::test]
    async fn cut_forwards_only_the_first_bytes_of_the_next_reply_then_closes() {
        let (up, _task) = upstream(big).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let full = big(b"");
        // within the first chunk, and spanning several chunks
        for cut in [0u64, 1, 100, CHUNK as u64 + 7, 99_999] {
            let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
            proxy.cut_next_reply(cut);
            assert!(proxy.cut_pending());
            s.write_all(b"get").await.unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got).await; // EOF or a reset, after the cut
            assert_eq!(got.len() as u64, cut, "cut at {cut}");
            assert_eq!(got, full[..got.len()]);
            assert!(!proxy.cut_pending());
        }
        assert_eq!(proxy.stats().cuts, 5);
        // the next connection gets the whole reply
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(b"get").await.unwrap();
        let mut got = vec![0u8; full.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, full);
        drop(s);
        assert_eq!(proxy.settle_alive(0, PATIENCE).await, 0);
    }

    #[tokio::test]
    async fn repeated_cuts_hit_the_next_connections_in_turn() {
        let (up, _task) = upstream(big).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        proxy.cut_replies(10, 2);
        for expected in [10usize, 10, 100_000] {
            let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
            s.write_all(b"get").await.unwrap();
            let mut got = Vec::new();
            if expected < 100_000 {
                let _ = s.read_to_end(&mut got).await;
            } else {
                got.resize(expected, 0);
                s.read_exact(&mut got).await.unwrap();
            }
            assert_eq!(got.len(), expected);
        }
        assert!(!proxy.cut_pending());
        proxy.cut_replies(1, u64::MAX);
        assert!(proxy.cut_pending());
        proxy.pass_through();
        assert!(!proxy.cut_pending());
        assert_eq!(proxy.stats().cuts, 2);
    }

    #[tokio::test]
    async fn pass_through_disarms_a_pending_cut() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        proxy.cut_next_reply(1);
        proxy.pass_through();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"whole").await, b"whole");
        assert_eq!(proxy.stats().cuts, 0);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_client_connection() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let proxy = FaultProxy::start(&dead).await.unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut buf = [0u8; 1];
        assert!(!matches!(s.read(&mut buf).await, Ok(n) if n > 0));
        assert_eq!(proxy.settle_alive(0, PATIENCE).await, 0);
        let stats = proxy.stats();
        assert_eq!((stats.opened, stats.upstream_failures), (1, 1));
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (up, _task) = upstream(echo).await;
        let proxy = FaultProxy::start(&up).await.unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, b"x").await, b"x");
        drop(proxy);
        let mut buf = [0u8; 1];
        assert!(!matches!(s.read(&mut buf).await, Ok(n) if n > 0));
    }
}
