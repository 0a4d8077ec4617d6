//! Serializers: how values become bytes and back.
//!
//! A [`Serializer`] owns the conversion completely: the backend stores exactly the bytes
//! `encode` returns and `decode` receives exactly the bytes the backend holds. There is no
//! hidden text decoding in between. Bytes that do not decode give an
//! [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error (the cache adds the key
//! to it); they never panic.
//!
//! Shipped here: [`Json`] (the default), [`Utf8`] (plain text for strings, numbers and
//! booleans) and [`RawBytes`] (bytes stored as they are). `cache-serde` adds MsgPack and Cbor.

mod bytes;
mod json;
mod python_json;
mod text;

pub use self::bytes::RawBytes;
pub use self::json::Json;
pub use self::python_json::PythonJson;
pub use self::text::Utf8;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;

/// Turns values into bytes and bytes into values.
///
/// Implementations are small `Copy`-like values (`Clone + Send + Sync`); the cache keeps one
/// and a call may override it. `encode` and `decode` must be inverse for every value the
/// serializer accepts, and `decode` must never panic, whatever the input.
pub trait Serializer: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A short lowercase name (`"json"`) used in errors, config files and metrics.
    fn name(&self) -> &'static str;

    /// Encodes `value`.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) when the value cannot be
    /// represented in this format.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>>;

    /// Decodes bytes produced by `encode` (or by another program writing the same format).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) when the bytes are not a
    /// valid encoding of a `T`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T>;
}
