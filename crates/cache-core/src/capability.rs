//! What a backend can do, as data.

use std::time::Duration;

/// What a backend supports. The [`Cache`](crate::Cache) refuses a switched-off operation with
/// one [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error, and the conformance
/// suite checks exactly that instead of the operation.
///
/// Built by backends with struct update syntax:
///
/// ```
/// use cache_core::Capability;
///
/// let cap = Capability { ttl_millis: true, max_key_len: Some(250), ..Capability::all() };
/// assert!(cap.add);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capability {
    /// `add` is atomic (set-if-absent in one step).
    pub add: bool,
    /// `increment` is supported (atomically).
    pub increment: bool,
    /// `expire` is supported.
    pub expire: bool,
    /// `ttl` (remaining lifetime) is supported.
    pub ttl: bool,
    /// TTLs keep millisecond precision; if false, they are rounded up to whole seconds.
    pub ttl_millis: bool,
    /// The longest TTL the backend accepts, if it has a limit.
    pub max_ttl: Option<Duration>,
    /// `multi_get` / `multi_set` / `multi_delete` take one round trip (or one batch per server).
    pub native_multi: bool,
    /// `multi_set` applies values and TTL to all keys atomically.
    pub atomic_multi_set: bool,
    /// `compare_and_set` is supported (atomically).
    pub compare_and_set: bool,
    /// `clear` can remove exactly one namespace's keys.
    pub clear_namespace: bool,
    /// The backend owns its store alone (in-process memory): `clear` without a namespace
    /// empties it. Shared servers set this to false, and `clear` without a namespace is refused.
    pub exclusive_store: bool,
    /// `raw` commands are supported.
    pub raw: bool,
    /// Longest built key in bytes, if limited.
    pub max_key_len: Option<usize>,
    /// Largest value in bytes, if limited.
    pub max_value_len: Option<usize>,
    /// Entries can carry tags and be invalidated by tag
    /// ([`Cache::invalidate_tag`](crate::Cache::invalidate_tag)). A property of the stack,
    /// not of a backend: the [`TagLayer`](crate::layer::TagLayer) that
    /// [`CacheBuilder::tags`](crate::CacheBuilder::tags) installs turns it on, over any
    /// backend. Backends leave it off, and so does [`Capability::all`].
    pub tags: bool,
}

impl Capability {
    /// Every operation of a backend on, no limits, millisecond TTLs, not an exclusive store
    /// ([`tags`](Self::tags), which a layer gives, off).
    pub const fn all() -> Self {
        Capability {
            add: true,
            increment: true,
            expire: true,
            ttl: true,
            ttl_millis: true,
            max_ttl: None,
            native_multi: true,
            atomic_multi_set: true,
            compare_and_set: true,
            clear_namespace: true,
            exclusive_store: false,
            raw: true,
            max_key_len: None,
            max_value_len: None,
            tags: false,
        }
    }
}

impl Capability {
    /// `ttl` cut to [`max_ttl`](Self::max_ttl): how long the backend can keep an entry the
    /// read-through would keep longer (its TTL plus the fail-safe window).
    pub(crate) fn keep_within(&self, ttl: Option<Duration>) -> Option<Duration> {
        match (ttl, self.max_ttl) {
            (Some(t), Some(max)) if t > max => Some(max),
            (t, _) => t,
        }
    }
}
