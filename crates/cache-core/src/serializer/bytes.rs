use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Serializer;
use crate::{Error, Result};

/// Bytes as they are (work in progress).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBytes;

impl Serializer for RawBytes {
    fn name(&self) -> &'static str {
        "bytes"
    }
    fn encode<T: Serialize + ?Sized>(&self, _value: &T) -> Result<Vec<u8>> {
        Err(Error::unsupported("bytes"))
    }
    fn decode<T: DeserializeOwned>(&self, _bytes: &[u8]) -> Result<T> {
        Err(Error::unsupported("bytes"))
    }
}
