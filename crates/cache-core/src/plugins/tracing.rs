//! [`TracingPlugin`]: one `tracing` event per command.

use std::fmt;

use ::tracing::Level;
use async_trait::async_trait;

use super::outcome_label;
use crate::{CommandInfo, EventInfo, Outcome, Plugin};

/// Emits `event` at a level chosen at run time (`tracing` needs a constant level per call
/// site, so there is one call site per level).
macro_rules! event_at {
    ($level:expr, $($event:tt)+) => {{
        let level: Level = $level;
        if level == Level::ERROR {
            ::tracing::event!(target: TracingPlugin::TARGET, Level::ERROR, $($event)+)
        } else if level == Level::WARN {
            ::tracing::event!(target: TracingPlugin::TARGET, Level::WARN, $($event)+)
        } else if level == Level::INFO {
            ::tracing::event!(target: TracingPlugin::TARGET, Level::INFO, $($event)+)
        } else if level == Level::DEBUG {
            ::tracing::event!(target: TracingPlugin::TARGET, Level::DEBUG, $($event)+)
        } else {
            ::tracing::event!(target: TracingPlugin::TARGET, Level::TRACE, $($event)+)
        }
    }};
}

/// Creates the command span at a level chosen at run time (one call site per level).
macro_rules! span_at {
    ($level:expr, $($fields:tt)+) => {{
        let level: Level = $level;
        if level == Level::ERROR {
            ::tracing::span!(target: TracingPlugin::TARGET, Level::ERROR, $($fields)+)
        } else if level == Level::WARN {
            ::tracing::span!(target: TracingPlugin::TARGET, Level::WARN, $($fields)+)
        } else if level == Level::INFO {
            ::tracing::span!(target: TracingPlugin::TARGET, Level::INFO, $($fields)+)
        } else if level == Level::DEBUG {
            ::tracing::span!(target: TracingPlugin::TARGET, Level::DEBUG, $($fields)+)
        } else {
            ::tracing::span!(target: TracingPlugin::TARGET, Level::TRACE, $($fields)+)
        }
    }};
}

/// How [`TracingPlugin`] shows the keys of a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyMode {
    /// No `keys` field (the default): keys often hold user ids, e-mail addresses or tokens.
    #[default]
    Omit,
    /// The keys as the caller gave them, as a list: `keys=["user:1", "user:2"]`.
    Plain,
    /// A short hash of each key, as a list: `keys=[af63dc4c8601ec8c]`. See
    /// [`TracingPlugin::hashed_key`].
    Hashed,
}

/// Runs every command in a [`tracing`](::tracing) span and emits one event when it ends.
///
/// **The span** (target [`TARGET`](Self::TARGET), name `cache command`, at the plugin's
/// [`level`](Self::level)) is entered around the `before` hooks, the backend call and the
/// `after` hooks, so what the backend logs is its child and a request span the caller entered
/// is its parent. Its fields follow OpenTelemetry's database client conventions, so that
/// `tracing-opentelemetry` exports it as a client span any OpenTelemetry backend shows
/// without mapping:
///
/// | span field | value |
/// |---|---|
/// | `otel.name` | the span's name in OpenTelemetry: `{operation} {namespace}`, or the operation alone |
/// | `otel.kind` | `client` |
/// | `db.system.name` | the backend: `redis`, `memcached`, `memory` |
/// | `db.operation.name` | the command: `get`, `multi_get`, `set`, … |
/// | `db.namespace` | the resolved namespace; absent when the command has none |
/// | `server.address`, `server.port` | the backend's server ([`Backend::endpoint`](crate::Backend::endpoint)); absent in process |
/// | `keys` | only when enabled (see below) |
/// | `error.type`, `otel.status_code` | on failure: the error kind in snake case, and `ERROR` |
/// | `outcome`, `elapsed_ms`, `hits`, `misses` | recorded when the command ends, as on the event |
///
/// A subscriber sees the recorded fields on the span's close. [`spans(false)`](Self::spans)
/// turns spans off.
///
/// **The event** (same target, message `cache command`) has these fields:
///
/// | field | value |
/// |---|---|
/// | `op` | the command: `get`, `multi_get`, `set`, … ([`Command::as_str`](crate::Command::as_str)) |
/// | `namespace` | the resolved namespace; absent when the command has none |
/// | `backend` | the backend's name |
/// | `outcome` | `ok`, or the error kind in snake case: `timeout`, `invalid_argument`, `connection`, … |
/// | `elapsed_ms` | [`Outcome::took`] in milliseconds, as a float |
/// | `hits`, `misses` | keys found and not found by a read (0 for other commands) |
/// | `keys` | only with [`with_keys`](Self::with_keys) or [`hash_keys`](Self::hash_keys) (see [`KeyMode`]) |
///
/// **Read-through decisions** of the `get_or_set` family (a stale value served, fail-safe
/// activated, a refresh started, a loader timeout, a lease taken or lost:
/// [`ReadThroughEvent`](crate::ReadThroughEvent)) are events too, at the same level and
/// target, message `cache read-through`, with `event` (its snake-case name), `namespace`,
/// `backend` and `keys` as above.
///
/// Successful commands are logged at [`Level::DEBUG`] and failed ones, timeouts included, at
/// [`Level::WARN`]; both are configurable. The event is emitted inside the command span, so
/// log lines show the span's fields too. With
/// [`before_events`](Self::before_events) (on by default) a `cache command started` event
/// with `op`, `namespace`, `backend` (and `keys` when enabled) is also emitted at
/// [`Level::TRACE`] before the command, which shows commands that never end when no deadline
/// is set.
///
/// The plugin holds only its settings: it is `Copy`, and one value may serve several caches.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, TracingPlugin};
/// use tracing::Level;
/// # let backend = cache_core::testkit::MapBackend::new();
///
/// let cache = Cache::builder(backend)
///     .namespace("users")
///     .plugin(TracingPlugin::new().level(Level::INFO).hash_keys(true))
///     .build();
/// // logs at INFO: cache command op="set" namespace="users" backend="map" outcome="ok"
/// //               elapsed_ms=0.004 hits=0 misses=0 keys=[07ee7e07b4b19223]
/// cache.set("42", &"Ada").await?;
/// assert_eq!(TracingPlugin::hashed_key("42"), "07ee7e07b4b19223");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TracingPlugin {
    level: Level,
    error_level: Level,
    keys: KeyMode,
    before_events: bool,
    spans: bool,
}

impl Default for TracingPlugin {
    fn default() -> Self {
        TracingPlugin {
            level: Level::DEBUG,
            error_level: Level::WARN,
            keys: KeyMode::Omit,
            before_events: true,
            spans: true,
        }
    }
}

impl TracingPlugin {
    /// The target of every event: `stratacache` (filter with `stratacache=debug`).
    pub const TARGET: &'static str = "stratacache";

    /// Successful commands at DEBUG, failed ones at WARN, keys left out, `before` events at
    /// TRACE.
    pub fn new() -> Self {
        TracingPlugin::default()
    }

    /// The level of the event of a successful command (default [`Level::DEBUG`]).
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// The level of the event of a failed command, timeouts included (default
    /// [`Level::WARN`]).
    pub fn error_level(mut self, level: Level) -> Self {
        self.error_level = level;
        self
    }

    /// Whether events carry the keys as given (`true`: [`KeyMode::Plain`]) or no keys
    /// (`false`: [`KeyMode::Omit`], the default).
    pub fn with_keys(mut self, enabled: bool) -> Self {
        self.keys = if enabled {
            KeyMode::Plain
        } else {
            KeyMode::Omit
        };
        self
    }

    /// Whether events carry a hash of each key instead of the key (`true`:
    /// [`KeyMode::Hashed`]). `false` turns hashing off and leaves the keys out; it never
    /// reveals them.
    pub fn hash_keys(mut self, enabled: bool) -> Self {
        if enabled {
            self.keys = KeyMode::Hashed;
        } else if self.keys == KeyMode::Hashed {
            self.keys = KeyMode::Omit;
        }
        self
    }

    /// How events show keys.
    pub fn key_mode(mut self, mode: KeyMode) -> Self {
        self.keys = mode;
        self
    }

    /// Whether a `cache command started` event is emitted at TRACE before each command
    /// (default `true`).
    pub fn before_events(mut self, enabled: bool) -> Self {
        self.before_events = enabled;
        self
    }

    /// Whether each command runs in a `cache command` span (default `true`).
    pub fn spans(mut self, enabled: bool) -> Self {
        self.spans = enabled;
        self
    }

    /// The hash [`KeyMode::Hashed`] shows for `key`: 64-bit FNV-1a of its UTF-8 bytes, as 16
    /// lowercase hex digits. It is stable across runs, processes and versions, so the events
    /// of one key can be found by hashing it.
    ///
    /// It hides keys from a casual reader of the logs, nothing more: it is not keyed and not
    /// meant to resist someone who can hash guessed keys (short ids are easy to guess).
    ///
    /// ```
    /// assert_eq!(cache_core::TracingPlugin::hashed_key("a"), "af63dc4c8601ec8c");
    /// ```
    pub fn hashed_key(key: &str) -> String {
        format!("{:016x}", fnv1a64(key.as_bytes()))
    }

    /// The `keys` field's value, or `None` to leave the field out.
    fn keys_field<'a>(
        &self,
        keys: &'a [&'a str],
    ) -> Option<::tracing::field::DisplayValue<Keys<'a>>> {
        match self.keys {
            KeyMode::Omit => None,
            mode => Some(::tracing::field::display(Keys { keys, mode })),
        }
    }
}

#[async_trait]
impl Plugin for TracingPlugin {
    async fn before(&self, info: &CommandInfo<'_>) {
        if self.before_events {
            ::tracing::event!(
                target: TracingPlugin::TARGET,
                Level::TRACE,
                op = info.command.as_str(),
                namespace = info.namespace,
                backend = info.backend,
                keys = self.keys_field(info.keys),
                "cache command started"
            );
        }
    }

    fn span(&self, info: &CommandInfo<'_>) -> Option<::tracing::Span> {
        if !self.spans {
            return None;
        }
        Some(span_at!(
            self.level,
            "cache command",
            otel.name = %SpanName(info),
            otel.kind = "client",
            db.system.name = info.backend,
            db.operation.name = info.command.as_str(),
            db.namespace = info.namespace,
            server.address = info.server.map(|s| s.address.as_str()),
            server.port = info.server.and_then(|s| s.port).map(i64::from),
            keys = self.keys_field(info.keys),
            outcome = ::tracing::field::Empty,
            removed = ::tracing::field::Empty,
            error.type = ::tracing::field::Empty,
            otel.status_code = ::tracing::field::Empty,
            elapsed_ms = ::tracing::field::Empty,
            hits = ::tracing::field::Empty,
            misses = ::tracing::field::Empty,
        ))
    }

    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        if self.spans {
            // Inside the span this plugin made (unless an earlier plugin's span won: then
            // these fields do not exist there and recording them does nothing).
            let span = ::tracing::Span::current();
            span.record("outcome", outcome_label(outcome));
            if !outcome.is_ok() {
                span.record("error.type", outcome_label(outcome));
                span.record("otel.status_code", "ERROR");
            }
            span.record("elapsed_ms", outcome.took.as_secs_f64() * 1000.0);
            span.record("hits", outcome.hits);
            span.record("misses", outcome.misses);
            if let Some(removed) = outcome.removed {
                span.record("removed", removed);
            }
        }
        let level = if outcome.is_ok() {
            self.level
        } else {
            self.error_level
        };
        event_at!(
            level,
            op = info.command.as_str(),
            namespace = info.namespace,
            backend = info.backend,
            outcome = outcome_label(outcome),
            elapsed_ms = outcome.took.as_secs_f64() * 1000.0,
            hits = outcome.hits,
            misses = outcome.misses,
            removed = outcome.removed,
            keys = self.keys_field(info.keys),
            "cache command"
        );
    }

    fn on_event(&self, info: &EventInfo<'_>) {
        let keys = [info.key];
        event_at!(
            self.level,
            event = info.event.as_str(),
            namespace = info.namespace,
            backend = info.backend,
            keys = self.keys_field(&keys),
            "cache read-through"
        );
    }
}

/// A span's OpenTelemetry name, `{operation} {namespace}` (or the operation alone), formatted
/// only when a subscriber records it.
struct SpanName<'a>(&'a CommandInfo<'a>);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.namespace {
            Some(ns) => write!(f, "{} {ns}", self.0.command.as_str()),
            None => f.write_str(self.0.command.as_str()),
        }
    }
}

/// The keys of a command, formatted only when a subscriber records the event.
struct Keys<'a> {
    keys: &'a [&'a str],
    mode: KeyMode,
}

impl fmt::Display for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            KeyMode::Hashed => {
                f.write_str("[")?;
                for (i, key) in self.keys.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{:016x}", fnv1a64(key.as_bytes()))?;
                }
                f.write_str("]")
            }
            _ => fmt::Debug::fmt(self.keys, f),
        }
    }
}

/// 64-bit FNV-1a: small, fast and stable, which is all a log correlation hash needs (and
/// all the coalescing layer needs to tell keys apart).
pub(crate) const fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(TracingPlugin::hashed_key(""), "cbf29ce484222325");
        assert_eq!(TracingPlugin::hashed_key("foobar"), "85944171f73967e8");
    }

    #[test]
    fn keys_are_formatted_as_lists() {
        let keys = ["user:1", "a \"quoted\" key"];
        let plain = Keys {
            keys: &keys,
            mode: KeyMode::Plain,
        };
        assert_eq!(plain.to_string(), r#"["user:1", "a \"quoted\" key"]"#);
        let hashed = Keys {
            keys: &["a", "foobar"],
            mode: KeyMode::Hashed,
        };
        assert_eq!(hashed.to_string(), "[af63dc4c8601ec8c, 85944171f73967e8]");
    }

    #[test]
    fn settings() {
        let default = TracingPlugin::new();
        assert_eq!(default, TracingPlugin::default());
        assert_eq!(default.level, Level::DEBUG);
        assert_eq!(default.error_level, Level::WARN);
        assert_eq!(default.keys, KeyMode::Omit);
        assert!(default.before_events);
        assert!(default.spans);
        assert!(!default.spans(false).spans);

        assert_eq!(default.with_keys(true).keys, KeyMode::Plain);
        assert_eq!(default.hash_keys(true).keys, KeyMode::Hashed);
        assert_eq!(
            default.with_keys(true).hash_keys(true).keys,
            KeyMode::Hashed
        );
        assert_eq!(default.hash_keys(true).with_keys(false).keys, KeyMode::Omit);
        assert_eq!(
            default.hash_keys(true).hash_keys(false).keys,
            KeyMode::Omit,
            "turning hashing off never reveals keys"
        );
        assert_eq!(
            default.with_keys(true).hash_keys(false).keys,
            KeyMode::Plain
        );
        assert_eq!(default.key_mode(KeyMode::Hashed).keys, KeyMode::Hashed);

        let custom = default
            .level(Level::INFO)
            .error_level(Level::ERROR)
            .before_events(false);
        assert_eq!(custom.level, Level::INFO);
        assert_eq!(custom.error_level, Level::ERROR);
        assert!(!custom.before_events);
    }
}
