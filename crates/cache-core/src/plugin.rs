//! Plugins: hooks that run before and after every command.
//!
//! Plugins observe; [layers](crate::layer) act. The hooks are run by a layer of the pipeline
//! that [`CacheBuilder::build`](crate::CacheBuilder::build) installs when a cache has
//! plugins, inside the error-context layer and outside the timeout layer.
//!
//! # Order
//!
//! For each command the cache runs, in this order:
//!
//! 1. resolve the namespace, build the key(s), encode the value(s);
//! 2. every plugin's [`Plugin::before`], in the order the plugins were added (inside the
//!    span of the first plugin whose [`Plugin::span`] gives one, as are steps 3 and 4);
//! 3. the rest of the stack: the deadline, the layers added with
//!    [`CacheBuilder::layer`](crate::CacheBuilder::layer), the backend;
//! 4. every plugin's [`Plugin::after`], in the same order, with the [`Outcome`] — on success
//!    and on error alike, exactly once per plugin and command;
//! 5. decode the value(s).
//!
//! The command's deadline covers steps 2 and 3: a slow `before` hook counts against it, and
//! when it passes the `after` hooks run with an outcome of kind [`ErrorKind::Timeout`]. Once
//! the stack has answered, the `after` hooks run to the end and the caller gets that answer,
//! even if the deadline passes while they run: a command that was applied is never reported
//! as timed out, and no plugin misses its `after`. Keep `after` hooks short; they delay the
//! answer. Commands refused before reaching the stack (an invalid argument, an unsupported
//! operation, a closed cache) run no hooks.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::ErrorKind;

/// The command a hook is called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// `get` (and `get_counter`).
    Get,
    /// `multi_get`.
    MultiGet,
    /// `set`.
    Set,
    /// `add`.
    Add,
    /// `multi_set`.
    MultiSet,
    /// `delete`.
    Delete,
    /// `multi_delete`.
    MultiDelete,
    /// `exists`.
    Exists,
    /// `increment`.
    Increment,
    /// `expire`.
    Expire,
    /// `ttl`.
    Ttl,
    /// `compare_and_set`.
    CompareAndSet,
    /// `compare_and_delete` (also a lock's release).
    CompareAndDelete,
    /// `clear`.
    Clear,
    /// `wipe_all`.
    WipeAll,
    /// `raw`.
    Raw,
    /// `close`.
    Close,
    /// `invalidate_tag` / `invalidate_tags`: the keys of the call are the tags.
    InvalidateTags,
}

impl Command {
    /// Whether running the command twice leaves the same state as running it once (reads,
    /// `set`, `multi_set`, `delete`, `multi_delete`, `expire`, `compare_and_delete`, `clear`,
    /// `wipe_all`, `invalidate_tags`). `add`,
    /// `increment`, `compare_and_set`, `raw` and `close` are not.
    pub const fn is_idempotent(self) -> bool {
        matches!(
            self,
            Command::Get
                | Command::MultiGet
                | Command::Exists
                | Command::Ttl
                | Command::Set
                | Command::MultiSet
                | Command::Delete
                | Command::MultiDelete
                | Command::Expire
                | Command::CompareAndDelete
                | Command::Clear
                | Command::WipeAll
                | Command::InvalidateTags
        )
    }

    /// The command's name in snake case, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Get => "get",
            Command::MultiGet => "multi_get",
            Command::Set => "set",
            Command::Add => "add",
            Command::MultiSet => "multi_set",
            Command::Delete => "delete",
            Command::MultiDelete => "multi_delete",
            Command::Exists => "exists",
            Command::Increment => "increment",
            Command::Expire => "expire",
            Command::Ttl => "ttl",
            Command::CompareAndSet => "compare_and_set",
            Command::CompareAndDelete => "compare_and_delete",
            Command::Clear => "clear",
            Command::WipeAll => "wipe_all",
            Command::Raw => "raw",
            Command::Close => "close",
            Command::InvalidateTags => "invalidate_tags",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook learns about the command being run.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo<'a> {
    /// The command.
    pub command: Command,
    /// The resolved namespace (`None`: no namespace).
    pub namespace: Option<&'a str>,
    /// The keys as the caller gave them (before key building); empty for `clear`, `raw`,
    /// `close`.
    pub keys: &'a [&'a str],
    /// The backend's name.
    pub backend: &'static str,
    /// The backend's server ([`Backend::endpoint`](crate::Backend::endpoint)), if it has one.
    pub server: Option<&'a crate::Endpoint>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Time from just before the first `before` hook to just before the first `after` hook.
    pub took: Duration,
    /// Keys found by a read (`get`, `multi_get`).
    pub hits: u64,
    /// Keys not found by a read.
    pub misses: u64,
    /// `None` on success, else the kind of the error.
    pub error: Option<ErrorKind>,
    /// For `clear`: the keys it removed as the backend counted them while it ran — also when
    /// it was interrupted (then a lower bound: a page cut off in flight may be removed but
    /// not counted). `None` for other commands, and for a clear that counted nothing (an
    /// empty namespace, or a clear by namespace generation, which removes no key itself).
    pub removed: Option<u64>,
}

impl Outcome {
    /// Whether the command succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// A hook run before and after every command.
///
/// Every method defaults to doing nothing. Hooks run inside the command's timeout, so keep
/// them short. Any `Fn(&CommandInfo, &Outcome)` closure is a plugin whose `after` is the
/// closure.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use cache_core::{Cache, CommandInfo, Outcome};
/// # #[derive(Debug)] struct NoBackend;
///
/// let errors = Arc::new(AtomicU64::new(0));
/// let counter = errors.clone();
/// let plugin = move |_: &CommandInfo<'_>, outcome: &Outcome| {
///     if !outcome.is_ok() {
///         counter.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// # fn takes_plugin(_p: impl cache_core::Plugin) {}
/// takes_plugin(plugin);
/// ```
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Runs before the backend call.
    async fn before(&self, _info: &CommandInfo<'_>) {}

    /// Runs after the backend call, with its outcome.
    async fn after(&self, _info: &CommandInfo<'_>, _outcome: &Outcome) {}

    /// A [`tracing::Span`] for the command to run in, or `None` (the default).
    ///
    /// Called once per command, before the `before` hooks. The first plugin that returns a
    /// span wins: the `before` hooks, the backend call and the `after` hooks all run inside
    /// it, so `tracing::Span::current()` in [`after`](Self::after) is that span (to record
    /// the outcome on it) and whatever the backend logs is its child.
    fn span(&self, _info: &CommandInfo<'_>) -> Option<tracing::Span> {
        None
    }

    /// A decision of the `get_or_set` family: a stale value served, fail-safe activated, a
    /// refresh started, a loader past its soft or hard timeout, a waiter coalesced, a lease
    /// taken, waited for or lost (see [`ReadThroughEvent`](crate::ReadThroughEvent)).
    /// Called on the task that decided, outside any deadline; keep it short.
    fn on_event(&self, _info: &crate::EventInfo<'_>) {}
}

#[async_trait]
impl<F> Plugin for F
where
    F: Fn(&CommandInfo<'_>, &Outcome) + Send + Sync + 'static,
{
    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        self(info, outcome)
    }
}
