//! What an in-process tier needs from the rest of the library: per-call control of the local
//! level ([`Locality`]), decoded values kept beside local entries ([`Memo`]), and the
//! invalidation channel between instances ([`Invalidator`]), which backend crates implement
//! (Redis pub/sub, Redis client tracking) and the tier consumes.
//!
//! The tier itself (crate `cache-tiered`) is a [layer](crate::layer); it knows the backend
//! below it only through [`Backend`](crate::Backend).

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::Result;
use crate::context::CallContext;

/// Where a call may be answered when the stack has an in-process tier
/// ([`Scoped::with_locality`](crate::Scoped::with_locality)). Without a tier every value
/// means the same: the backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum Locality {
    /// Reads are answered by the local level when it holds the key, else by the remote one
    /// (which fills the local level); writes go to both.
    #[default]
    Default,
    /// Reads skip the local level and go to the remote one (refreshing the local copy);
    /// writes as by default.
    SkipLocal,
    /// Only the local level: reads never go remote (a local miss is a miss), writes change
    /// only the local level, unseen by other instances.
    LocalOnly,
}

/// A decoded value kept beside a local entry, so that a local hit through
/// [`get_shared`](crate::Scoped::get_shared) is a lookup and a reference-count increment, not
/// a decode.
///
/// The cache puts one in the [`CallContext`] of a `get_shared` call, tagged with the
/// (serializer, value type) pair it decodes to. A tier that answers from its local level
/// either [`offer`](Memo::offer)s the value it kept for that pair, or says where to
/// [`keep`](Memo::keep) the value the cache is about to decode.
pub struct Memo {
    type_id: TypeId,
    found: OnceLock<Arc<dyn Any + Send + Sync>>,
    keeper: OnceLock<(Arc<dyn MemoStore>, u64)>,
}

/// Where a tier keeps decoded values: told by the cache after it decoded a local hit.
pub trait MemoStore: Send + Sync + 'static {
    /// Keeps `value` (decoded for `type_id`) beside the local entry of `key` that the tier
    /// handed out with `token`; a store ignores it when that entry has been replaced since.
    fn keep(&self, key: &str, token: u64, type_id: TypeId, value: Arc<dyn Any + Send + Sync>);
}

impl Memo {
    /// A memo for values decoded as `type_id` (the cache uses the type of
    /// `(serializer, value)`).
    pub fn new(type_id: TypeId) -> Self {
        Memo {
            type_id,
            found: OnceLock::new(),
            keeper: OnceLock::new(),
        }
    }

    /// What the value is decoded as.
    pub fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// A tier found a decoded value of [`type_id`](Self::type_id) for the bytes it answers.
    pub fn offer(&self, value: Arc<dyn Any + Send + Sync>) {
        let _ = self.found.set(value);
    }

    /// A tier answers from a local entry with no decoded value yet: the cache gives the one it
    /// decodes to `store` with `token`.
    pub fn keep_in(&self, store: Arc<dyn MemoStore>, token: u64) {
        let _ = self.keeper.set((store, token));
    }

    /// The decoded value a tier offered, if any.
    pub fn found(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.found.get()
    }

    /// Hands a freshly decoded value to the tier that asked for it, if one did.
    pub fn keep(&self, key: &str, value: Arc<dyn Any + Send + Sync>) {
        if let Some((store, token)) = self.keeper.get() {
            store.keep(key, *token, self.type_id, value);
        }
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("found", &self.found.get().is_some())
            .field("keep", &self.keeper.get().map(|(_, token)| token))
            .finish()
    }
}

/// What an invalidation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidated<'a> {
    /// These built keys.
    Keys(&'a [String]),
    /// Every key starting with this prefix (a namespace cleared).
    Prefix(&'a str),
    /// Every key (the store was flushed, or deliveries may have been lost).
    All,
}

/// What an [`Invalidator`] delivers to: the tier's local level.
pub trait InvalidationSink: Send + Sync + 'static {
    /// Another instance (or the server) changed what this covers: local copies of it are
    /// dropped, and reads already on their way are not kept.
    fn invalidate(&self, what: Invalidated<'_>);

    /// Deliveries (re)started: the local level starts empty and may be used again.
    fn connected(&self);

    /// Deliveries stopped or may have been lost: the local level is emptied and not used
    /// until [`connected`](Self::connected).
    fn disconnected(&self);
}

/// The channel that keeps the local levels of several instances coherent: it tells other
/// instances what this one changed, and tells this one what others (or the server) changed.
///
/// Implemented by backend crates (`cache-redis`: a pub/sub backplane usable beside any
/// backend, and RESP3 client tracking on a Redis backend's own connection); consumed by the
/// tier of `cache-tiered`.
#[async_trait]
pub trait Invalidator: Send + Sync + fmt::Debug + 'static {
    /// A short name (`"redis-pubsub"`, `"redis-tracking"`), for errors and telemetry.
    fn name(&self) -> &'static str;

    /// Starts delivering to `sink`: returns once deliveries run (connected, subscribed), or
    /// the error that keeps them from starting. Called once, when the tier is built; from
    /// then on the invalidator reports losing and regaining its connection to the sink.
    async fn start(&self, sink: Arc<dyn InvalidationSink>) -> Result<()>;

    /// Tells the other instances that this one changed `what` in the remote level; returns
    /// once sent. Channels through which the server reports changes itself (client
    /// tracking) send nothing.
    async fn publish(&self, ctx: &CallContext<'_>, what: Invalidated<'_>) -> Result<()>;

    /// Whether changes to `key` are delivered (a channel may cover some prefixes only); a
    /// tier keeps no local copy of a key that is not covered.
    fn covers(&self, key: &str) -> bool;

    /// Stops deliveries and releases connections. Idempotent.
    async fn close(&self) -> Result<()>;
}
