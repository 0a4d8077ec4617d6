//! A serializer chosen at run time, by name, for caches built from a URL or a config file.

use std::fmt;
use std::str::FromStr;

use cache_core::{Error, Json, PythonJson, RawBytes, Result, Serializer, Utf8};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The serializers a URL (`serializer=`) or a [`CacheConfig`](crate::CacheConfig) can name.
///
/// Every name parses whatever features are on; building a cache with a serializer whose
/// feature is off fails with a [`Config`](cache_core::ErrorKind::Config) error naming the
/// feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SerializerName {
    /// [`Json`] (`json`), the default.
    #[default]
    #[serde(rename = "json")]
    Json,
    /// [`PythonJson`] (`python-json`): aiocache's JSON, byte for byte.
    #[serde(rename = "python-json", alias = "python_json")]
    PythonJson,
    /// [`Utf8`] (`utf8`): strings stored as their UTF-8 bytes.
    #[serde(rename = "utf8")]
    Utf8,
    /// [`RawBytes`] (`bytes`): byte values stored as they are.
    #[serde(rename = "bytes")]
    Bytes,
    /// `MsgPack` (`msgpack`), feature `msgpack`.
    #[serde(rename = "msgpack")]
    MsgPack,
    /// `Cbor` (`cbor`), feature `cbor`.
    #[serde(rename = "cbor")]
    Cbor,
}

impl SerializerName {
    /// Every name, in the order of the enum.
    pub const ALL: [SerializerName; 6] = [
        SerializerName::Json,
        SerializerName::PythonJson,
        SerializerName::Utf8,
        SerializerName::Bytes,
        SerializerName::MsgPack,
        SerializerName::Cbor,
    ];

    /// The name as written in URLs and config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            SerializerName::Json => "json",
            SerializerName::PythonJson => "python-json",
            SerializerName::Utf8 => "utf8",
            SerializerName::Bytes => "bytes",
            SerializerName::MsgPack => "msgpack",
            SerializerName::Cbor => "cbor",
        }
    }

    /// The Cargo feature of `stratacache` this serializer needs, if any.
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            SerializerName::MsgPack => Some("msgpack"),
            SerializerName::Cbor => Some("cbor"),
            _ => None,
        }
    }

    /// Whether this build has the serializer.
    // With every feature on, the arms agree and clippy sees a `matches!`; they differ per build.
    #[allow(clippy::match_like_matches_macro)]
    pub const fn is_available(self) -> bool {
        match self {
            SerializerName::MsgPack => cfg!(feature = "msgpack"),
            SerializerName::Cbor => cfg!(feature = "cbor"),
            _ => true,
        }
    }
}

impl fmt::Display for SerializerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SerializerName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        SerializerName::ALL
            .into_iter()
            .find(|n| n.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = SerializerName::ALL.iter().map(|n| n.as_str()).collect();
                Error::config(format!(
                    "unknown serializer {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A [`Serializer`] chosen at run time: whichever [`SerializerName`] a URL or config file
/// names. It encodes and decodes exactly as the serializer it stands for (one `match` per
/// call), so a cache built from config reads what a cache built in code wrote.
///
/// ```
/// use stratacache::{AnySerializer, SerializerName, Serializer};
///
/// let s = AnySerializer::new(SerializerName::PythonJson)?;
/// assert_eq!(s.encode(&serde_json::json!({"a": 1}))?, br#"{"a": 1}"#);
/// assert_eq!(s.name(), "python-json");
/// # Ok::<(), stratacache::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnySerializer {
    name: SerializerName,
    compression: Option<CompressionName>,
}

impl Default for AnySerializer {
    fn default() -> Self {
        AnySerializer {
            name: SerializerName::Json,
            compression: None,
        }
    }
}

/// The compressions a URL (`compression=`) or a [`CacheConfig`](crate::CacheConfig) can
/// name: the serializer's encodings of 1 KiB or more are compressed (`Compressed` of
/// cache-serde), smaller ones stored as the serializer writes them. Values written without
/// compression, or with the other codec, stay readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CompressionName {
    /// Zstandard at level 3 (`zstd`), feature `zstd`.
    #[serde(rename = "zstd")]
    Zstd,
    /// LZ4 (`lz4`), feature `lz4`.
    #[serde(rename = "lz4")]
    Lz4,
}

impl CompressionName {
    /// The name as written in URLs and config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            CompressionName::Zstd => "zstd",
            CompressionName::Lz4 => "lz4",
        }
    }

    /// Whether this build has it (its feature is on).
    pub const fn is_available(self) -> bool {
        match self {
            CompressionName::Zstd => cfg!(feature = "zstd"),
            CompressionName::Lz4 => cfg!(feature = "lz4"),
        }
    }
}

impl fmt::Display for CompressionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompressionName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(CompressionName::Zstd),
            "lz4" => Ok(CompressionName::Lz4),
            _ => Err(Error::config(format!(
                "unknown compression {:?}; expected zstd or lz4",
                cache_core::url::shorten(s)
            ))),
        }
    }
}

impl AnySerializer {
    /// The serializer called `name`.
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) naming the feature to enable when the
    /// serializer is not compiled in.
    pub fn new(name: SerializerName) -> Result<Self> {
        match name.feature() {
            Some(feature) if !name.is_available() => Err(Error::config(format!(
                "serializer `{name}` needs the `{feature}` feature of stratacache \
                 (features = [\"{feature}\"] in Cargo.toml)"
            ))),
            _ => Ok(AnySerializer {
                name,
                compression: None,
            }),
        }
    }

    /// The serializer called `name`, its large encodings compressed with `compression`.
    ///
    /// # Errors
    /// [`Config`](cache_core::ErrorKind::Config) naming the feature to enable when the
    /// serializer or the compression is not compiled in.
    pub fn with_compression(
        name: SerializerName,
        compression: Option<CompressionName>,
    ) -> Result<Self> {
        let mut any = AnySerializer::new(name)?;
        if let Some(c) = compression {
            if !c.is_available() {
                return Err(Error::config(format!(
                    "compression `{c}` needs the `{c}` feature of stratacache \
                     (features = [\"{c}\"] in Cargo.toml)"
                )));
            }
            any.compression = Some(c);
        }
        Ok(any)
    }

    /// Which serializer this is.
    pub const fn kind(&self) -> SerializerName {
        self.name
    }

    /// The compression of its large encodings, if any.
    pub const fn compression(&self) -> Option<CompressionName> {
        self.compression
    }

    /// This serializer without compression, wrapped in its compression, if it has one.
    #[cfg(any(feature = "zstd", feature = "lz4"))]
    fn compressed(&self) -> Option<cache_serde::Compressed<AnySerializer>> {
        let codec = match self.compression? {
            #[cfg(feature = "zstd")]
            CompressionName::Zstd => cache_serde::Codec::ZSTD,
            #[cfg(feature = "lz4")]
            CompressionName::Lz4 => cache_serde::Codec::Lz4,
            // refused by `with_compression` when its feature is off
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        let plain = AnySerializer {
            name: self.name,
            compression: None,
        };
        Some(cache_serde::Compressed::new(plain, codec))
    }
}

/// The error of a serializer missing from this build (never reached: [`AnySerializer::new`]
/// refuses those names).
#[allow(dead_code)]
fn not_compiled(name: SerializerName) -> Error {
    Error::config(format!("serializer `{name}` is not compiled in"))
}

impl Serializer for AnySerializer {
    fn name(&self) -> &'static str {
        self.name.as_str()
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        #[cfg(any(feature = "zstd", feature = "lz4"))]
        if let Some(compressed) = self.compressed() {
            return compressed.encode(value);
        }
        match self.name {
            SerializerName::Json => Json.encode(value),
            SerializerName::PythonJson => PythonJson.encode(value),
            SerializerName::Utf8 => Utf8.encode(value),
            SerializerName::Bytes => RawBytes.encode(value),
            #[cfg(feature = "msgpack")]
            SerializerName::MsgPack => cache_serde::MsgPack.encode(value),
            #[cfg(feature = "cbor")]
            SerializerName::Cbor => cache_serde::Cbor.encode(value),
            #[allow(unreachable_patterns)]
            other => Err(not_compiled(other)),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        #[cfg(any(feature = "zstd", feature = "lz4"))]
        if let Some(compressed) = self.compressed() {
            return compressed.decode(bytes);
        }
        match self.name {
            SerializerName::Json => Json.decode(bytes),
            SerializerName::PythonJson => PythonJson.decode(bytes),
            SerializerName::Utf8 => Utf8.decode(bytes),
            SerializerName::Bytes => RawBytes.decode(bytes),
            #[cfg(feature = "msgpack")]
            SerializerName::MsgPack => cache_serde::MsgPack.decode(bytes),
            #[cfg(feature = "cbor")]
            SerializerName::Cbor => cache_serde::Cbor.decode(bytes),
            #[allow(unreachable_patterns)]
            other => Err(not_compiled(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for name in SerializerName::ALL {
            assert_eq!(name.as_str().parse::<SerializerName>().unwrap(), name);
            assert_eq!(name.to_string(), name.as_str());
        }
        assert_eq!(
            "Python_JSON".parse::<SerializerName>().unwrap(),
            SerializerName::PythonJson
        );
        let e = "yaml".parse::<SerializerName>().unwrap_err();
        assert_eq!(e.kind(), cache_core::ErrorKind::Config);
        assert!(e.to_string().contains("json, python-json"), "{e}");
    }

    #[test]
    fn encodes_like_the_serializer_it_names() {
        let value = serde_json::json!({"user": "ada", "n": [1, 2]});
        let any = AnySerializer::new(SerializerName::Json).unwrap();
        assert_eq!(any.encode(&value).unwrap(), Json.encode(&value).unwrap());
        let any = AnySerializer::new(SerializerName::PythonJson).unwrap();
        assert_eq!(
            any.encode(&value).unwrap(),
            PythonJson.encode(&value).unwrap()
        );
        let back: serde_json::Value = any.decode(&any.encode(&value).unwrap()).unwrap();
        assert_eq!(back, value);
        let any = AnySerializer::new(SerializerName::Utf8).unwrap();
        assert_eq!(any.encode("héllo").unwrap(), "héllo".as_bytes());
        let any = AnySerializer::new(SerializerName::Bytes).unwrap();
        let bytes: Vec<u8> = any.decode(&[0, 255]).unwrap();
        assert_eq!(bytes, [0, 255]);
    }

    #[test]
    fn feature_gated_serializers_name_their_feature() {
        for name in [SerializerName::MsgPack, SerializerName::Cbor] {
            match AnySerializer::new(name) {
                Ok(s) => {
                    assert!(name.is_available());
                    let back: Vec<u32> = s.decode(&s.encode(&vec![1u32, 2]).unwrap()).unwrap();
                    assert_eq!(back, [1, 2]);
                }
                Err(e) => {
                    assert!(!name.is_available());
                    let feature = name.feature().unwrap();
                    assert!(
                        e.to_string().contains(&format!("`{feature}` feature")),
                        "{e}"
                    );
                }
            }
        }
    }
}
