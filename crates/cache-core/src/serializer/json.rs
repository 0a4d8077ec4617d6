use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Serializer;
use crate::{Error, Result};

/// JSON through `serde_json`: the default serializer of every cache.
///
/// Values are stored as compact UTF-8 JSON text, byte for byte what Python's
/// `json.dumps(..., separators=(",", ":"))` would read back. A counter written by
/// `increment` (decimal text) reads back as the right number.
///
/// ```
/// use cache_core::{Json, Serializer};
///
/// let bytes = Json.encode(&serde_json::json!({"a": 1})).unwrap();
/// assert_eq!(bytes, br#"{"a":1}"#);
/// let back: serde_json::Value = Json.decode(&bytes).unwrap();
/// assert_eq!(back["a"], 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

impl Serializer for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| {
            Error::serialization("cannot encode value as JSON")
                .with_context("serializer", "json")
                .with_source(e)
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::serialization("stored bytes are not valid JSON for the requested type")
                .with_context("serializer", "json")
                .with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trips_and_keeps_null_distinct() {
        let v: Option<u32> = None;
        let bytes = Json.encode(&v).unwrap();
        assert_eq!(bytes, b"null");
        let back: Option<u32> = Json.decode(&bytes).unwrap();
        assert_eq!(back, None);
    }

    #[test]
    fn garbage_is_a_serialization_error() {
        let err = Json.decode::<u32>(b"\xff\x00{").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
    }

    #[test]
    fn counter_text_decodes_as_number() {
        assert_eq!(Json.decode::<i64>(b"-42").unwrap(), -42);
    }
}
