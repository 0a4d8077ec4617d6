use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Serializer;
use crate::{Error, Result};

/// Plain UTF-8 text for strings, numbers and booleans (work in progress).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8;

impl Serializer for Utf8 {
    fn name(&self) -> &'static str {
        "utf8"
    }
    fn encode<T: Serialize + ?Sized>(&self, _value: &T) -> Result<Vec<u8>> {
        Err(Error::unsupported("utf8"))
    }
    fn decode<T: DeserializeOwned>(&self, _bytes: &[u8]) -> Result<T> {
        Err(Error::unsupported("utf8"))
    }
}
