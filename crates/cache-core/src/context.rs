//! What every backend call carries besides its arguments: the command, the user's keys and
//! namespace, and the caller's deadline.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::plugin::{Command, CommandInfo};

/// When a command must have answered, and the budget it was given.
///
/// The cache sets it from its timeout (per call or per cache); the
/// [`TimeoutLayer`](crate::layer::TimeoutLayer) of the stack enforces it with one timer.
/// Layers and backends below read it to bound their own waits (a retry's back-off, a pool
/// checkout) instead of starting timers of their own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now (Tokio's clock, so a paused test clock applies).
    pub fn after(budget: Duration) -> Self {
        Deadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// A deadline at `at`, reported as a budget of `budget`.
    pub fn at(at: Instant, budget: Duration) -> Self {
        Deadline { at, budget }
    }

    /// The instant the command must have answered by.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The whole budget the caller gave the command (for error messages).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("budget", &self.budget)
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// The context of one backend call, passed down the whole stack of layers to the backend.
///
/// It tells a layer which command runs (so a retry layer can tell an idempotent read from an
/// `increment`), the keys as the user gave them and the resolved namespace (so hooks and
/// errors speak of the user's keys, while the backend receives built keys), and the caller's
/// [`Deadline`].
///
/// The [`Cache`](crate::Cache) makes one per command. Code that calls a [`Backend`]
/// directly makes its own:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::{Backend, CallContext, Command};
/// let backend = cache_core::testkit::MapBackend::new();
/// let ctx = CallContext::new(Command::Get);
/// assert_eq!(backend.get(&ctx, "k").await?, None);
/// # Ok(()) }
/// ```
///
/// [`Backend`]: crate::Backend
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    command: Command,
    namespace: Option<&'a str>,
    keys: &'a [&'a str],
    backend: &'static str,
    raw_command: Option<&'a str>,
    deadline: Option<Deadline>,
    progress: Option<&'a Progress>,
    server: Option<&'a crate::Endpoint>,
    tags: &'a [String],
    as_of_ms: Option<u64>,
    locality: crate::tier::Locality,
    memo: Option<&'a crate::tier::Memo>,
}

/// How far a long command has got: the keys a `clear` has removed so far.
///
/// The cache hands one to the backend with each `clear` ([`CallContext::progress`]); the
/// backend adds to it as it goes (page by page on Redis), so that a clear that stops early —
/// its deadline passed, the connection broke — can say how many keys it removed. Clones share
/// the count.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// A count at zero.
    pub fn new() -> Self {
        Progress::default()
    }

    /// Adds `n` keys done.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The keys done so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<'a> CallContext<'a> {
    /// A context for `command`, with no keys, no namespace and no deadline.
    pub fn new(command: Command) -> Self {
        CallContext {
            command,
            namespace: None,
            keys: &[],
            backend: "",
            raw_command: None,
            deadline: None,
            progress: None,
            server: None,
            tags: &[],
            as_of_ms: None,
            locality: crate::tier::Locality::Default,
            memo: None,
        }
    }

    /// Where the call may be answered when the stack has an in-process tier.
    pub fn with_locality(mut self, locality: crate::tier::Locality) -> Self {
        self.locality = locality;
        self
    }

    /// Where the call may be answered when the stack has an in-process tier.
    pub fn locality(&self) -> crate::tier::Locality {
        self.locality
    }

    /// Where a tier puts or finds the decoded value of a local hit
    /// ([`Scoped::get_shared`](crate::Scoped::get_shared)).
    pub fn with_memo(mut self, memo: &'a crate::tier::Memo) -> Self {
        self.memo = Some(memo);
        self
    }

    /// The decoded-value memo of the call, if the caller decodes to a shared value.
    pub fn memo(&self) -> Option<&'a crate::tier::Memo> {
        self.memo
    }

    /// The tags the entries written by this call carry (see [`Tags`](crate::Tags)); for
    /// [`Command::InvalidateTags`], the tags to invalidate.
    pub fn with_tags(mut self, tags: &'a [String]) -> Self {
        self.tags = tags;
        self
    }

    /// When the value this call writes was read from its source (ms since the Unix epoch),
    /// if that was before the write: a read-through gives the time its load started, so an
    /// invalidation made while the loader ran also covers what it loaded.
    pub fn with_as_of(mut self, as_of_ms: Option<u64>) -> Self {
        self.as_of_ms = as_of_ms;
        self
    }

    /// The tags of the entries this call writes (empty: none); for
    /// [`Command::InvalidateTags`], the tags to invalidate.
    pub fn tags(&self) -> &'a [String] {
        self.tags
    }

    /// When the value this call writes was read from its source, if given
    /// ([`with_as_of`](Self::with_as_of)).
    pub fn as_of_ms(&self) -> Option<u64> {
        self.as_of_ms
    }

    /// The user's keys, as given to the cache.
    pub fn with_keys(mut self, keys: &'a [&'a str]) -> Self {
        self.keys = keys;
        self
    }

    /// The resolved namespace (`None`: no namespace).
    pub fn with_namespace(mut self, namespace: Option<&'a str>) -> Self {
        self.namespace = namespace;
        self
    }

    /// The name of the backend at the bottom of the stack.
    pub fn with_backend(mut self, backend: &'static str) -> Self {
        self.backend = backend;
        self
    }

    /// A context for a command a layer sends on behalf of this call: `command`, with this
    /// call's namespace, backend, server and deadline, and no keys, tags or progress (set the
    /// keys with [`with_keys`](Self::with_keys)).
    pub fn on_behalf(&self, command: Command) -> CallContext<'a> {
        CallContext::new(command)
            .with_namespace(self.namespace)
            .with_backend(self.backend)
            .with_server(self.server)
            .with_deadline(self.deadline)
            .with_locality(self.locality)
    }

    /// The deadline of the call (`None`: none).
    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Where the backend reports how far a long command has got (a `clear`).
    pub fn with_progress(mut self, progress: &'a Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The backend's server, for telemetry.
    pub fn with_server(mut self, server: Option<&'a crate::Endpoint>) -> Self {
        self.server = server;
        self
    }

    /// The backend's server, if known.
    pub fn server(&self) -> Option<&'a crate::Endpoint> {
        self.server
    }

    /// The backend-native command name of a [`Command::Raw`] call.
    pub fn with_raw_command(mut self, command: &'a str) -> Self {
        self.raw_command = Some(command);
        self
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The resolved namespace, if any.
    pub fn namespace(&self) -> Option<&'a str> {
        self.namespace
    }

    /// The user's keys (not the built keys the backend receives).
    pub fn keys(&self) -> &'a [&'a str] {
        self.keys
    }

    /// The name of the backend at the bottom of the stack (empty when not set).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The backend-native command name of a [`Command::Raw`] call.
    pub fn raw_command(&self) -> Option<&'a str> {
        self.raw_command
    }

    /// The caller's deadline, if any.
    pub fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// Where to report how far a long command has got, if the caller asked.
    pub fn progress(&self) -> Option<&'a Progress> {
        self.progress
    }

    /// Adds `n` to the call's [`Progress`], if it has one.
    pub fn report_progress(&self, n: u64) {
        if let Some(p) = self.progress {
            p.add(n);
        }
    }

    /// What plugins are told about this call.
    pub fn info(&self) -> CommandInfo<'a> {
        CommandInfo {
            command: self.command,
            namespace: self.namespace,
            keys: self.keys,
            backend: self.backend,
            server: self.server,
        }
    }
}
