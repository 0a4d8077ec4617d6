#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod serializer;

pub use error::{Error, ErrorKind, Result};
pub use serializer::{Json, RawBytes, Serializer, Utf8};
