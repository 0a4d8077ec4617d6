//! Commands of one key while a cluster connection rebuilds its routing: sent straight to the
//! key's primary over a connection of their own, so that one failing primary does not stop the
//! keys of the others (RFC 0011).
//!
//! A fred cluster client has one routing task. When the connection to one primary breaks, that
//! task reconnects before it takes any new command, and a reconnection needs a connection to
//! every primary in `CLUSTER SLOTS` — the dead one too, until its replica is promoted. So for
//! the whole failover (the node timeout and then some) no command of any key goes out.
//!
//! Here, when fred reports a connection error on a cluster client, the client is marked
//! *rebuilding*; commands of one key then go to the key's primary (from the last routing table
//! fred learned) over a standalone connection made for the detour, and fail at once with a
//! `Connection` error when that primary is the one that is down. A probe sends `PING` through
//! the cluster client until its routing task answers again (twice in a row, since a first
//! answer may come before the reconnection began); then the client is used again and the
//! detour connections are closed.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::WithOptions;
use fred::error::{Error as FredError, ErrorKind as FredKind};
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Client, ClientState, Options, ServerConfig};
use fred::types::config::Server;
use fred::types::{Builder, ConnectHandle};
use fred::util::redis_keyslot;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::cluster::group_by_slot;

/// Pause between two probes of a rebuilding cluster client.
const PROBE_PAUSE: Duration = Duration::from_millis(50);
/// How long one probe waits for the routing task.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Answers in a row that end a detour.
const PROBES_OK: u32 = 2;

/// The detour connections of one backend (cluster mode only).
pub(crate) struct Detour {
    /// How to make a standalone connection: the cluster's settings, any server.
    template: Builder,
    /// Per cluster client of the pool: whether its routing is being rebuilt.
    rebuilding: Box<[AtomicBool]>,
    /// Per cluster client: wakes the reads waiting on it when it starts rebuilding.
    started: Box<[Notify]>,
    /// Per cluster client: keys with a write that timed out on it, which may still be sent
    /// when its routing is rebuilt; their writes take no detour until then.
    pinned: Box<[Mutex<HashSet<String>>]>,
    /// Set when the backend is closed: no more detours or probes.
    closed: AtomicBool,
    /// Standalone clients by primary, and their connection tasks.
    nodes: Mutex<HashMap<Server, (Client, ConnectHandle)>>,
}

impl Detour {
    pub(crate) fn new(template: Builder, pool_size: usize) -> Detour {
        Detour {
            template,
            rebuilding: (0..pool_size).map(|_| AtomicBool::new(false)).collect(),
            pinned: (0..pool_size).map(|_| Mutex::new(HashSet::new())).collect(),
            started: (0..pool_size).map(|_| Notify::new()).collect(),
            closed: AtomicBool::new(false),
            nodes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether cluster client `index` is rebuilding its routing.
    #[inline]
    pub(crate) fn rebuilding(&self, index: usize) -> bool {
        self.rebuilding
            .get(index)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Runs the read `op` on cluster client `index`, or on the detour connection of `key`'s
    /// primary if the client is rebuilding its routing — also when it starts to while the
    /// read waits: a read sent just before the failure was noticed would otherwise wait for
    /// the whole failover. A read may be sent twice; reads change nothing.
    pub(crate) async fn read<T, F, Fut>(
        &self,
        index: usize,
        cluster: &Client,
        key: &str,
        op: F,
    ) -> Result<T, FredError>
    where
        F: Fn(WithOptions<Client>) -> Fut,
        Fut: Future<Output = Result<T, FredError>>,
    {
        self.race(
            index,
            op(cluster.with_options(&Options::default())),
            || async {
                let node = self.client_for(cluster, key)?;
                op(node.with_options(&fail_fast(&Options::default()))).await
            },
        )
        .await
    }

    /// Runs `on_cluster` (a read on cluster client `index`), unless the client is rebuilding
    /// its routing or starts to while the read waits: then `on_detour`.
    pub(crate) async fn race<T, E, C, D, DF>(
        &self,
        index: usize,
        on_cluster: C,
        on_detour: D,
    ) -> Result<T, E>
    where
        C: Future<Output = Result<T, E>>,
        D: FnOnce() -> DF,
        DF: Future<Output = Result<T, E>>,
    {
        let started = self.started[index].notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if !self.rebuilding(index) {
            tokio::select! {
                biased;
                r = on_cluster => return r,
                () = started => {}
            }
        }
        on_detour().await
    }

    /// `multi_get` over the detour: one `MGET` per hash slot, on the slot's primary, all at
    /// once; fails at once with a `Connection` error when a slot's primary is the one down
    /// (a `multi_get` answers every key or none).
    pub(crate) async fn multi_get(
        &self,
        cluster: &Client,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>, FredError> {
        let groups = group_by_slot(keys.iter().map(String::as_bytes));
        let mut mgets = JoinSet::new();
        for (g, group) in groups.iter().enumerate() {
            let node = self.client_for(cluster, &keys[group[0]])?;
            let slot_keys: Vec<String> = group.iter().map(|&i| keys[i].clone()).collect();
            mgets.spawn(async move {
                let options = fail_fast(&Options::default());
                let values: Result<Vec<Option<Bytes>>, FredError> =
                    node.with_options(&options).mget(slot_keys).await;
                (g, values)
            });
        }
        let mut out = vec![None; keys.len()];
        while let Some(done) = mgets.join_next().await {
            let (g, values) =
                done.map_err(|e| FredError::new(FredKind::Unknown, format!("an MGET task: {e}")))?;
            let values = values?;
            if values.len() != groups[g].len() {
                return Err(FredError::new(
                    FredKind::Protocol,
                    format!(
                        "MGET of {} keys answered {} values",
                        groups[g].len(),
                        values.len()
                    ),
                ));
            }
            for (&i, v) in groups[g].iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Keeps the writes of `key` on cluster client `index` until its routing is rebuilt.
    pub(crate) fn pin(&self, index: usize, key: &str) {
        if let Some(keys) = self.pinned.get(index) {
            let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.insert(key.to_owned());
        }
    }

    /// Whether the writes of `key` keep to cluster client `index` (see [`pin`](Self::pin)).
    pub(crate) fn pinned(&self, index: usize, key: &str) -> bool {
        self.pinned
            .get(index)
            .is_some_and(|keys| keys.lock().unwrap_or_else(|p| p.into_inner()).contains(key))
    }

    /// The standalone client of the primary of `key`'s slot, by `cluster`'s last routing
    /// table; made (and connecting) if there is none yet.
    pub(crate) fn client_for(&self, cluster: &Client, key: &str) -> Result<Client, FredError> {
        let slot = redis_keyslot(key.as_bytes());
        let owner = cluster
            .cached_cluster_state()
            .and_then(|state| state.get_server(slot).cloned())
            .ok_or_else(|| {
                FredError::new(
                    FredKind::Cluster,
                    "the cluster is failing over and the key's primary is not known",
                )
            })?;
        self.node(&owner)
    }

    fn node(&self, server: &Server) -> Result<Client, FredError> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((client, _)) = nodes.get(server) {
            return Ok(client.clone());
        }
        let mut builder = self.template.clone();
        let mut config = builder.get_config().cloned().unwrap_or_default();
        config.server = ServerConfig::new_centralized(server.host.to_string(), server.port);
        let client = builder.set_config(config).build()?;
        let task = client.connect();
        nodes.insert(server.clone(), (client.clone(), task));
        Ok(client)
    }

    /// Connects to every primary of `cluster`'s last routing table that has no client yet.
    fn connect_primaries(&self, cluster: &Client) {
        let primaries = cluster
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        for server in &primaries {
            let _ = self.node(server);
        }
    }

    /// Stops detouring for good (the backend is closed) and closes the detour connections.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for flag in &self.rebuilding {
            flag.store(false, Ordering::Release);
        }
        self.close_nodes();
    }

    /// Closes every detour connection.
    fn close_nodes(&self) {
        let nodes: Vec<(Client, ConnectHandle)> = {
            let mut guard = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            guard.drain().map(|(_, v)| v).collect()
        };
        for (_, task) in nodes {
            task.abort();
        }
    }
}

impl Drop for Detour {
    fn drop(&mut self) {
        self.close_nodes();
    }
}

/// The options of a command sent over a detour connection: those given, and failing at once
/// when the connection is down (the primary is the one failing) rather than waiting for it.
pub(crate) fn fail_fast(options: &Options) -> Options {
    Options {
        fail_fast: true,
        ..options.clone()
    }
}

/// Called with each connection error fred reports on cluster client `index`: marks it
/// rebuilding and, if it was not, connects to the primaries and probes until it answers again.
pub(crate) fn on_error(detour: &Weak<Detour>, index: usize, cluster: &Client) {
    let Some(this) = detour.upgrade() else {
        return;
    };
    let Some(flag) = this.rebuilding.get(index) else {
        return;
    };
    if this.closed.load(Ordering::Acquire) {
        return;
    }
    if flag.swap(true, Ordering::AcqRel) {
        return;
    }
    this.started[index].notify_waiters();
    tracing::info!(
        "redis: a cluster connection failed; commands of one key go straight to their primary \
         until the routing is rebuilt"
    );
    this.connect_primaries(cluster);
    drop(this);
    let (detour, cluster) = (detour.clone(), cluster.clone());
    tokio::spawn(async move {
        let mut answered = 0;
        loop {
            tokio::time::sleep(PROBE_PAUSE).await;
            let Some(this) = detour.upgrade() else {
                return;
            };
            if this.closed.load(Ordering::Acquire) {
                return;
            }
            let probe = Options {
                timeout: Some(PROBE_TIMEOUT),
                max_attempts: Some(1),
                ..Options::default()
            };
            let ok = cluster
                .with_options(&probe)
                .ping::<fred::prelude::Value>(None)
                .await
                .is_ok()
                && cluster.state() == ClientState::Connected;
            answered = if ok { answered + 1 } else { 0 };
            if answered >= PROBES_OK {
                this.rebuilding[index].store(false, Ordering::Release);
                this.pinned[index]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                if !this.rebuilding.iter().any(|f| f.load(Ordering::Acquire)) {
                    this.close_nodes();
                }
                tracing::info!("redis: the cluster routing is rebuilt");
                return;
            }
        }
    });
}
