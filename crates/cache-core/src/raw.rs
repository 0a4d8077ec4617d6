//! Backend-neutral values for the [`raw`](crate::Cache::raw) escape hatch.

use bytes::Bytes;

/// No arguments, for a raw command that takes none: `cache.raw("PING", NO_ARGS)`.
pub const NO_ARGS: [RawValue; 0] = [];

/// A value passed to or returned by a raw backend command.
///
/// Redis replies map onto it one to one (nil, integer, double, boolean, bulk string,
/// simple string, array, map); other backends use the subset they need.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// No value (Redis nil, a miss).
    Nil,
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Binary-safe bytes (Redis bulk string).
    Bytes(Bytes),
    /// Text (Redis simple string or status, such as `OK` or `PONG`).
    Text(String),
    /// An ordered list of values.
    Array(Vec<RawValue>),
    /// Key/value pairs in the order the backend gave them.
    Map(Vec<(RawValue, RawValue)>),
}

impl RawValue {
    /// The value as text, if it is text or UTF-8 bytes.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RawValue::Text(s) => Some(s),
            RawValue::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (or decimal text).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            RawValue::Int(i) => Some(*i),
            other => other.as_str().and_then(|s| s.parse().ok()),
        }
    }
}

impl From<&str> for RawValue {
    fn from(s: &str) -> Self {
        RawValue::Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for RawValue {
    fn from(s: String) -> Self {
        RawValue::Bytes(Bytes::from(s))
    }
}

impl From<&[u8]> for RawValue {
    fn from(b: &[u8]) -> Self {
        RawValue::Bytes(Bytes::copy_from_slice(b))
    }
}

impl From<Vec<u8>> for RawValue {
    fn from(b: Vec<u8>) -> Self {
        RawValue::Bytes(Bytes::from(b))
    }
}

impl From<Bytes> for RawValue {
    fn from(b: Bytes) -> Self {
        RawValue::Bytes(b)
    }
}

impl From<i64> for RawValue {
    fn from(i: i64) -> Self {
        RawValue::Int(i)
    }
}

impl From<f64> for RawValue {
    fn from(f: f64) -> Self {
        RawValue::Float(f)
    }
}

impl From<bool> for RawValue {
    fn from(b: bool) -> Self {
        RawValue::Bool(b)
    }
}
