//! The errors of the memory backend, as [`cache_core::Error`]s.

use cache_core::{Error, ErrorKind};

use crate::store::IncrementError;

/// An entry of `len` bytes (key + value) that can never fit the bound of `max_bytes`.
pub(crate) fn too_large(len: usize, max_bytes: Option<u64>) -> Error {
    Error::invalid_argument(format!(
        "entry of {len} bytes (key + value) can never fit the memory backend's bound of {} bytes",
        max_bytes.unwrap_or(u64::MAX)
    ))
}

/// A failed `increment`; `too_large` gives the error of a counter that cannot fit the bound.
pub(crate) fn increment(e: IncrementError, too_large: impl FnOnce() -> Error) -> Error {
    match e {
        IncrementError::NotInteger => {
            Error::invalid_argument("stored value is not a decimal integer; cannot increment")
        }
        IncrementError::Overflow => {
            Error::invalid_argument("increment would overflow a 64-bit signed integer")
        }
        IncrementError::TooLarge => too_large(),
    }
}

/// A `raw` command the backend does not know.
pub(crate) fn unknown_command(command: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!(
            "unknown memory command {command:?}; known: PING, LEN (or DBSIZE), WEIGHT, REMOVE_EXPIRED"
        ),
    )
}
