//! Conversion of fred's errors into the workspace's one error type, at the crate boundary.
//!
//! fred reports server replies such as `ERR …` or `WRONGTYPE …` mostly as
//! [`fred::error::ErrorKind::Unknown`] with the reply text as details, so the mapping looks at
//! both the kind and, for server replies, the leading error code.

use cache_core::{Error, ErrorKind};
use fred::error::{Error as FredError, ErrorKind as FredKind};

/// The backend name used in messages.
const NAME: &str = "redis";

/// fred's error as the source of ours: it implements `std::error::Error`, but keeping our own
/// wrapper keeps fred out of the public API (a user sees only `dyn Error`).
#[derive(Debug)]
struct FredSource(FredError);

impl std::fmt::Display for FredSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.details())
    }
}

impl std::error::Error for FredSource {}

/// The leading error code of a server error reply (`ERR`, `WRONGTYPE`, `NOSCRIPT`, …), if
/// `details` is one. Client-side messages ("Connection closed unexpectedly.") have none.
pub(crate) fn server_code(details: &str) -> Option<&str> {
    let code = details.split_ascii_whitespace().next()?;
    (code.len() >= 2 && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).then_some(code)
}

/// Whether `err` is the server's `NOSCRIPT` reply to an `EVALSHA` of an unknown script.
pub(crate) fn is_noscript(err: &FredError) -> bool {
    err.details().starts_with("NOSCRIPT")
}

/// fred's answer to a command it had no connection to write to (the connection had just
/// broken and its replacement was not under way yet).
const NOT_ROUTED: &str = "Failed to route command.";

/// Whether `err` says the command never left the client: fred had no connection to write it
/// to, so the server cannot have seen it and sending it again cannot reorder it.
pub(crate) fn never_sent(err: &Error) -> bool {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<FredSource>())
        .is_some_and(|f| {
            matches!(f.0.kind(), FredKind::Unknown | FredKind::Routing)
                && f.0.details() == NOT_ROUTED
        })
}

/// Whether an I/O error's details are rustls's handshake errors.
fn is_tls_failure(details: &str) -> bool {
    [
        "InvalidCertificate",
        "CertificateRequired",
        "HandshakeFailure",
        "AlertReceived",
        "PeerIncompatible",
        "NoCertificatesPresented",
    ]
    .iter()
    .any(|needle| details.contains(needle))
}

/// Converts a fred error of a data command.
pub(crate) fn convert(err: FredError) -> Error {
    let (kind, message, temporary): (ErrorKind, &'static str, Option<bool>) = match err.kind() {
        FredKind::Timeout => (
            ErrorKind::Timeout,
            "the redis command did not complete before the backend's command timeout",
            None,
        ),
        // fred reports a failed TLS handshake (untrusted certificate, refused client
        // certificate) as an I/O error wrapping rustls's error
        FredKind::IO if is_tls_failure(err.details()) => (
            ErrorKind::Connection,
            "the TLS handshake with redis failed (certificate not trusted or refused)",
            Some(false),
        ),
        FredKind::IO | FredKind::Canceled | FredKind::Routing | FredKind::Backpressure => (
            ErrorKind::Connection,
            "the connection to redis failed",
            None,
        ),
        #[cfg(feature = "tls")]
        FredKind::Tls => (
            ErrorKind::Connection,
            "the TLS connection to redis failed",
            Some(false),
        ),
        FredKind::Auth => (
            ErrorKind::Config,
            "redis refused the credentials; check the username and password",
            None,
        ),
        FredKind::Config | FredKind::Url => {
            (ErrorKind::Config, "invalid redis configuration", None)
        }
        FredKind::Cluster => (
            ErrorKind::Connection,
            "the redis cluster is changing or unavailable",
            None,
        ),
        FredKind::Sentinel => (
            ErrorKind::Connection,
            "redis sentinel could not give a primary",
            None,
        ),
        FredKind::Parse | FredKind::Protocol | FredKind::NotFound => {
            (ErrorKind::Unexpected, "unexpected reply from redis", None)
        }
        FredKind::InvalidArgument | FredKind::InvalidCommand | FredKind::Unknown => {
            return server_error(err);
        }
    };
    let mut e = Error::new(kind, message)
        .with_context("backend", NAME)
        .with_source(FredSource(err));
    if let Some(t) = temporary {
        e = e.with_temporary(t);
    }
    e
}

/// Converts an error of the first connection (connect, TLS handshake, `HELLO`/`AUTH`,
/// `SELECT`, sentinel and cluster discovery).
pub(crate) fn convert_connect(err: FredError) -> Error {
    if *err.kind() == FredKind::Timeout {
        return Error::new(
            ErrorKind::Timeout,
            "connecting to redis did not complete within the connect timeout",
        )
        .with_context("backend", NAME)
        .with_source(FredSource(err));
    }
    convert(err)
}

/// A server error reply, or one of fred's own client-side errors without a better kind.
fn server_error(err: FredError) -> Error {
    let details = err.details().to_owned();
    let (kind, temporary) = match server_code(&details) {
        // the server is busy or changing roles: retrying later may work
        Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY") => {
            (ErrorKind::Backend, true)
        }
        Some("NOAUTH" | "WRONGPASS") => (ErrorKind::Config, false),
        Some(_) => (ErrorKind::Backend, false),
        // fred's own errors ("Failed to route command.", "Max attempts exceeded") are about
        // the connection
        None => (ErrorKind::Connection, true),
    };
    let message = match kind {
        ErrorKind::Connection => "the connection to redis failed",
        ErrorKind::Config => "redis refused the credentials; check the username and password",
        _ => "redis answered with an error",
    };
    Error::new(kind, message)
        .with_context("backend", NAME)
        .with_temporary(temporary)
        .with_source(FredSource(err))
}

/// An [`ErrorKind::InvalidArgument`] error the server's reply `err` explains.
pub(crate) fn invalid_argument(message: &'static str, err: FredError) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
        .with_context("backend", NAME)
        .with_source(FredSource(err))
}

/// An [`ErrorKind::Unexpected`] error for a reply of the wrong shape.
pub(crate) fn unexpected(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unexpected, message.into()).with_context("backend", NAME)
}

/// The error of a call made after [`close`](cache_core::Backend::close).
pub(crate) fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the redis backend was closed").with_context("backend", NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_are_recognised() {
        assert_eq!(server_code("ERR value is not an integer"), Some("ERR"));
        assert_eq!(
            server_code("WRONGTYPE Operation against a key"),
            Some("WRONGTYPE")
        );
        assert_eq!(server_code("Connection closed unexpectedly."), None);
        assert_eq!(server_code(""), None);
        assert_eq!(server_code("A b"), None);
    }

    #[test]
    fn only_unrouted_commands_count_as_never_sent() {
        let e = |kind, details: &str| convert(FredError::new(kind, details.to_owned()));
        assert!(never_sent(&e(FredKind::Unknown, NOT_ROUTED)));
        assert!(never_sent(&e(FredKind::Routing, NOT_ROUTED)));
        assert!(!never_sent(&e(FredKind::IO, "Connection closed.")));
        assert!(!never_sent(&e(
            FredKind::Canceled,
            "Connection closed unexpectedly."
        )));
        assert!(!never_sent(&e(
            FredKind::Unknown,
            "Too many failed write attempts."
        )));
        assert!(!never_sent(&e(FredKind::Timeout, "Request timed out.")));
    }

    #[test]
    fn kinds_map_as_documented() {
        let k = |kind, details: &str| convert(FredError::new(kind, details.to_owned())).kind();
        assert_eq!(
            k(FredKind::Timeout, "Request timed out."),
            ErrorKind::Timeout
        );
        assert_eq!(k(FredKind::IO, "broken pipe"), ErrorKind::Connection);
        assert_eq!(k(FredKind::Canceled, "Canceled."), ErrorKind::Connection);
        assert_eq!(
            k(FredKind::Auth, "WRONGPASS invalid username-password pair"),
            ErrorKind::Config
        );
        assert_eq!(k(FredKind::Unknown, "ERR syntax error"), ErrorKind::Backend);
        assert_eq!(
            k(FredKind::InvalidArgument, "WRONGTYPE Operation"),
            ErrorKind::Backend
        );
        assert_eq!(
            k(FredKind::Unknown, "Failed to route command."),
            ErrorKind::Connection
        );
        let busy = convert(FredError::new(FredKind::Unknown, "BUSY Redis is busy"));
        assert_eq!(busy.kind(), ErrorKind::Backend);
        assert!(busy.is_temporary());
        let e = convert(FredError::new(FredKind::Unknown, "ERR syntax error"));
        assert!(format!("{e:#}").contains("ERR syntax error"), "{e:#}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
