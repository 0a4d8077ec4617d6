//! The one error type of the workspace.
//!
//! Every fallible call returns [`Result<T>`](crate::Result). An [`Error`] carries an
//! [`ErrorKind`] to match on, a human message, key/value context added by the layers it
//! travelled through (operation, key, namespace, backend, …) and, where there is one, the
//! underlying cause as [`std::error::Error::source`]. A cache miss is never an error.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in a form to match on.
///
/// New kinds may be added in minor releases, so matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `add` found the key already present.
    AlreadyExists,
    /// The command did not finish before its deadline.
    Timeout,
    /// A value could not be encoded, or stored bytes could not be decoded.
    Serialization,
    /// The caller passed something the cache refuses: a zero TTL, an oversize key or value,
    /// an increment of a value that is not an integer, an increment that would overflow, …
    InvalidArgument,
    /// The backend cannot do this (see its [`Capability`](crate::Capability)).
    Unsupported,
    /// The backend could not be reached, or the connection broke.
    Connection,
    /// The backend answered with an error of its own.
    Backend,
    /// A conditional write lost to a concurrent writer.
    Conflict,
    /// The cache was closed with [`Cache::close`](crate::Cache::close).
    Closed,
    /// A configuration value, URL or builder setting is invalid.
    Config,
    /// The loader given to `get_or_set` failed; its error is the [`source`](StdError::source).
    Loader,
    /// Anything else: a bug or an answer the backend should never give.
    Unexpected,
}

impl ErrorKind {
    /// The kind's name as a static string, for logs and metrics labels.
    pub const fn into_static(self) -> &'static str {
        match self {
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Serialization => "Serialization",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::Connection => "Connection",
            ErrorKind::Backend => "Backend",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Closed => "Closed",
            ErrorKind::Config => "Config",
            ErrorKind::Loader => "Loader",
            ErrorKind::Unexpected => "Unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.into_static())
    }
}

/// The error of every cache operation.
///
/// Cheap to clone (the source is shared), so one failure can reach several waiters, as
/// `get_or_set` does when a shared loader fails.
///
/// # Display
///
/// `{}` describes this error only: its kind, message and context, as
/// `Kind: message (name: value, …)`. The underlying cause is not repeated there; it is
/// [`source()`](StdError::source), so error reporters (`anyhow`, `eyre`, `tracing`'s error
/// fields) print each cause once. The alternate form `{:#}` appends the whole chain of causes,
/// `: cause: cause of the cause`, for a one-line log without a reporter.
///
/// ```
/// use std::error::Error as _;
/// use cache_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::InvalidArgument, "ttl must be greater than zero")
///     .with_context("key", "user:42");
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// assert_eq!(err.to_string(), "InvalidArgument: ttl must be greater than zero (key: user:42)");
///
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = Error::new(ErrorKind::Connection, "cannot connect").with_source(refused);
/// assert_eq!(err.to_string(), "Connection: cannot connect");
/// assert_eq!(err.source().map(|s| s.to_string()).as_deref(), Some("refused"));
/// assert_eq!(format!("{err:#}"), "Connection: cannot connect: refused");
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    context: Vec<(&'static str, String)>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
    temporary: bool,
}

impl Error {
    /// A new error of `kind` with a message that says what happened.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        let temporary = matches!(kind, ErrorKind::Timeout | ErrorKind::Connection);
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
            temporary,
        }
    }

    /// Adds one `name: value` pair of context (operation, key, namespace, backend, …).
    #[must_use]
    pub fn with_context(mut self, name: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((name, value.to_string()));
        self
    }

    /// Sets the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Sets the underlying cause from an already shared error.
    #[must_use]
    pub fn with_shared_source(mut self, source: Arc<dyn StdError + Send + Sync + 'static>) -> Self {
        self.source = Some(source);
        self
    }

    /// Marks whether retrying the same call may succeed. [`ErrorKind::Timeout`] and
    /// [`ErrorKind::Connection`] are temporary unless told otherwise.
    #[must_use]
    pub fn with_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without kind or context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The context pairs, oldest first.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The value of the first context pair called `name`, if any.
    pub fn context_value(&self, name: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether retrying the same call may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Shorthand for an [`ErrorKind::InvalidArgument`] error.
    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for an [`ErrorKind::Serialization`] error.
    pub fn serialization(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Serialization, message)
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for an [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// Adds the context pair only if a pair of that name is not there yet.
    #[must_use]
    pub(crate) fn with_context_once(self, name: &'static str, value: impl fmt::Display) -> Self {
        if self.context_value(name).is_some() {
            self
        } else {
            self.with_context(name, value)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (name, value)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{name}: {value}")?;
            }
            f.write_str(")")?;
        }
        if f.alternate() {
            let mut cause = StdError::source(self);
            while let Some(e) = cause {
                write!(f, ": {e}")?;
                cause = e.source();
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.field("temporary", &self.temporary).finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_kind_message_and_context_and_leaves_the_source_to_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::new(ErrorKind::Connection, "cannot connect")
            .with_context("backend", "redis")
            .with_context("endpoint", "127.0.0.1:6379")
            .with_source(io);
        assert_eq!(
            err.to_string(),
            "Connection: cannot connect (backend: redis, endpoint: 127.0.0.1:6379)"
        );
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("refused")
        );
        assert!(err.is_temporary());
        assert_eq!(err.context_value("endpoint"), Some("127.0.0.1:6379"));
    }

    /// A chain printer (what anyhow, eyre and tracing do) shows every cause exactly once.
    #[test]
    fn a_chain_printer_shows_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let inner = Error::new(ErrorKind::Connection, "cannot connect").with_source(io);
        let outer = Error::new(ErrorKind::Loader, "the loader failed").with_source(inner);
        let mut lines = Vec::new();
        let mut next: Option<&(dyn StdError + 'static)> = Some(&outer);
        while let Some(e) = next {
            lines.push(e.to_string());
            next = e.source();
        }
        assert_eq!(
            lines,
            [
                "Loader: the loader failed",
                "Connection: cannot connect",
                "refused"
            ]
        );
        let report = lines.join("\n");
        assert_eq!(report.matches("refused").count(), 1, "{report}");
    }

    #[test]
    fn alternate_display_appends_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let inner = Error::new(ErrorKind::Connection, "cannot connect").with_source(io);
        let outer = Error::new(ErrorKind::Loader, "the loader failed")
            .with_context("key", "k")
            .with_source(inner);
        assert_eq!(
            format!("{outer:#}"),
            "Loader: the loader failed (key: k): Connection: cannot connect: refused"
        );
        let alone = Error::new(ErrorKind::Timeout, "deadline passed");
        assert_eq!(format!("{alone:#}"), "Timeout: deadline passed");
    }

    #[test]
    fn only_timeouts_and_connection_errors_are_temporary_by_default() {
        assert!(Error::new(ErrorKind::Timeout, "t").is_temporary());
        assert!(!Error::new(ErrorKind::Serialization, "s").is_temporary());
        assert!(
            !Error::new(ErrorKind::Timeout, "t")
                .with_temporary(false)
                .is_temporary()
        );
    }

    #[test]
    fn error_is_send_sync_and_clone() {
        fn assert_traits<T: Send + Sync + Clone + 'static>() {}
        assert_traits::<Error>();
    }
}
