//! The crate's private error type, converted into [`cache_core::Error`] at the boundary.

use std::fmt;
use std::time::Duration;

use async_memcached::{Error as ClientError, ErrorKind as ClientErrorKind, Status};
use cache_core::{Error, ErrorKind};

/// What went wrong below the `Backend` methods.
#[derive(Debug)]
pub(crate) enum McError {
    /// The client reported an error (I/O, protocol, or a server error line).
    Client(ClientError),
    /// A command did not finish within the configured command timeout.
    Timeout(Duration),
    /// Connecting did not finish within the connect timeout.
    ConnectTimeout(Duration),
    /// The server failed to connect recently; calls fail fast until the backoff ends.
    Down(Duration),
    /// The backend was closed.
    Closed,
    /// The server answered something this crate does not expect.
    Unexpected(String),
    /// The caller's request cannot be done (a non-integer counter, an overflow).
    Invalid(String),
    /// A compare-and-swap loop kept losing to concurrent writers.
    Conflict(String),
}

impl From<ClientError> for McError {
    fn from(e: ClientError) -> Self {
        McError::Client(e)
    }
}

impl fmt::Display for McError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McError::Client(e) => write!(f, "{e}"),
            McError::Timeout(d) => write!(f, "no answer within {d:?}"),
            McError::ConnectTimeout(d) => write!(f, "connect took longer than {d:?}"),
            McError::Down(d) => write!(f, "server marked down, next connect attempt in {d:?}"),
            McError::Closed => f.write_str("backend closed"),
            McError::Unexpected(m) | McError::Invalid(m) | McError::Conflict(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for McError {}

impl McError {
    /// Whether the connection that saw this error is gone and the server's idle connections
    /// are suspect (a restart or a network cut closes them all).
    pub(crate) fn breaks_connections(&self) -> bool {
        matches!(
            self,
            McError::Client(ClientError::Io(_) | ClientError::ConnectionClosed)
        )
    }

    /// Whether the server could not be reached or did not answer: the errors that
    /// `miss_on_server_down` turns into misses on reads.
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(
            self,
            McError::Client(
                ClientError::Io(_) | ClientError::Connect(_) | ClientError::ConnectionClosed
            ) | McError::Timeout(_)
                | McError::ConnectTimeout(_)
                | McError::Down(_)
        )
    }

    /// Converts into the workspace error, naming the server.
    pub(crate) fn into_error(self, server: &str) -> Error {
        let (kind, message): (ErrorKind, String) = match &self {
            McError::Client(ClientError::Connect(_)) => (
                ErrorKind::Connection,
                format!("cannot connect to memcached server {server}"),
            ),
            McError::Client(ClientError::ConnectionClosed | ClientError::Io(_)) => (
                ErrorKind::Connection,
                format!("the connection to memcached server {server} broke"),
            ),
            McError::Client(ClientError::Protocol(status)) => map_status(status, server),
            McError::Client(ClientError::ParseError(_)) => (
                ErrorKind::Backend,
                format!("memcached server {server} sent an answer that does not parse"),
            ),
            McError::Timeout(d) => (
                ErrorKind::Timeout,
                format!(
                    "memcached server {server} did not answer within the command timeout of {d:?}"
                ),
            ),
            McError::ConnectTimeout(d) => (
                ErrorKind::Connection,
                format!("connecting to memcached server {server} took longer than {d:?}"),
            ),
            McError::Down(d) => (
                ErrorKind::Connection,
                format!(
                    "memcached server {server} refused the last connect; next attempt in {d:?}"
                ),
            ),
            McError::Closed => (ErrorKind::Closed, "the memcached backend was closed".into()),
            McError::Unexpected(m) => (
                ErrorKind::Backend,
                format!("unexpected answer from memcached server {server}: {m}"),
            ),
            McError::Invalid(m) => (ErrorKind::InvalidArgument, m.clone()),
            McError::Conflict(m) => (ErrorKind::Conflict, m.clone()),
        };
        let temporary = match &self {
            McError::Client(ClientError::Protocol(Status::Error(ClientErrorKind::Server(m)))) => {
                m.contains("out of memory")
            }
            _ => matches!(kind, ErrorKind::Connection | ErrorKind::Timeout),
        };
        let error = Error::new(kind, message)
            .with_context("server", server)
            .with_temporary(temporary);
        match self {
            McError::Client(_) => error.with_source(self),
            _ => error,
        }
    }
}

fn map_status(status: &Status, server: &str) -> (ErrorKind, String) {
    match status {
        Status::Error(ClientErrorKind::Server(m)) if m.contains("too large") => (
            ErrorKind::InvalidArgument,
            format!(
                "the value is larger than the item size limit of memcached server {server} \
                 (raise max_item_size only if the server runs with a larger -I)"
            ),
        ),
        Status::Error(ClientErrorKind::Server(m)) => (
            ErrorKind::Backend,
            format!("memcached server {server} failed the command: SERVER_ERROR {m}"),
        ),
        Status::Error(ClientErrorKind::Client(m)) if m.contains("non-numeric") => (
            ErrorKind::InvalidArgument,
            "the stored value is not a decimal integer".into(),
        ),
        Status::Error(ClientErrorKind::Client(m)) => (
            ErrorKind::InvalidArgument,
            format!("memcached refused the command: {m}"),
        ),
        Status::Error(ClientErrorKind::KeyTooLong) => (
            ErrorKind::InvalidArgument,
            "the key is longer than memcached's 250 bytes".into(),
        ),
        Status::Error(ClientErrorKind::OpaqueTooLong) => (
            ErrorKind::InvalidArgument,
            "the opaque token is longer than 32 bytes".into(),
        ),
        Status::Error(ClientErrorKind::NonexistentCommand) => (
            ErrorKind::Backend,
            format!("memcached server {server} does not know the command"),
        ),
        Status::Error(other) => (
            ErrorKind::Backend,
            format!("unexpected answer from memcached server {server}: {other}"),
        ),
        other => (
            ErrorKind::Backend,
            format!("unexpected status from memcached server {server}: {other}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_retry_status() {
        let io = McError::Client(ClientError::Io(std::io::ErrorKind::BrokenPipe.into()));
        assert!(io.breaks_connections() && io.is_unreachable());
        let e = io.into_error("127.0.0.1:1");
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.is_temporary());
        assert_eq!(e.context_value("server"), Some("127.0.0.1:1"));

        let big = McError::Client(ClientError::Protocol(Status::Error(
            ClientErrorKind::Server("object too large for cache".into()),
        )));
        let e = big.into_error("s");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(!e.is_temporary());

        let nan = McError::Client(ClientError::Protocol(Status::Error(
            ClientErrorKind::Client("cannot increment or decrement non-numeric value".into()),
        )));
        assert_eq!(nan.into_error("s").kind(), ErrorKind::InvalidArgument);

        let t = McError::Timeout(Duration::from_millis(5)).into_error("s");
        assert_eq!(t.kind(), ErrorKind::Timeout);
        assert!(t.is_temporary());
        assert_eq!(McError::Closed.into_error("s").kind(), ErrorKind::Closed);
    }
}
