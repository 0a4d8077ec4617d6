use std::fmt;

use serde::Serialize;
use serde::de::value::SeqDeserializer;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible};

use super::Serializer;
use crate::{Error, Result};

/// Bytes stored as they are, for values that already are bytes.
///
/// The backend holds exactly the bytes of the value, with no framing: use it for images,
/// compressed blobs, protobuf messages or anything encoded before it reaches the cache, and to
/// share raw values with other programs.
///
/// **Encode** accepts values that serialize as bytes ([`bytes::Bytes`],
/// `serde_bytes::ByteBuf`, `#[serde(with = "serde_bytes")]` fields), as a sequence or array
/// of `u8` (`Vec<u8>`, `&[u8]`, `[u8; N]`, which serde writes element by element) and strings
/// (`&str`, `String`: their UTF-8 bytes). `Some(x)` is stored as `x` and a newtype struct as
/// its inner value. Anything else (numbers, structs, maps, sequences of other types, `None`)
/// is an [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error: use
/// [`Json`](crate::Json) or a binary format for structured values.
///
/// **Decode** hands the stored bytes to the requested type: `Vec<u8>`, [`bytes::Bytes`],
/// `serde_bytes::ByteBuf`, `[u8; N]` (when the length matches) or `Option` of those. `String`
/// is accepted when the bytes are valid UTF-8, otherwise it is an
/// [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error. Other targets (numbers,
/// structs, maps) are refused: bytes carry no structure to read them from.
///
/// ```
/// use bytes::Bytes;
/// use cache_core::{ErrorKind, RawBytes, Serializer};
///
/// let png = vec![0x89, b'P', b'N', b'G'];
/// let stored = RawBytes.encode(&png).unwrap();
/// assert_eq!(stored, png); // verbatim
///
/// assert_eq!(RawBytes.decode::<Vec<u8>>(&stored).unwrap(), png);
/// assert_eq!(RawBytes.decode::<Bytes>(&stored).unwrap(), Bytes::from(png));
/// assert_eq!(RawBytes.encode(&Bytes::from_static(b"\x00\xff")).unwrap(), b"\x00\xff");
///
/// // Strings are their UTF-8 bytes, and read back only if they are valid UTF-8.
/// assert_eq!(RawBytes.encode("héllo").unwrap(), "héllo".as_bytes());
/// assert_eq!(RawBytes.decode::<String>(b"hello").unwrap(), "hello");
/// assert_eq!(RawBytes.decode::<String>(b"\xff").unwrap_err().kind(), ErrorKind::Serialization);
///
/// // Values that are not bytes are refused.
/// assert_eq!(RawBytes.encode(&42_u32).unwrap_err().kind(), ErrorKind::Serialization);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawBytes;

const NAME: &str = "bytes";

impl Serializer for RawBytes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        match value.serialize(BytesEncoder) {
            Ok(bytes) => Ok(bytes),
            Err(BytesError::Refused(message)) => {
                Err(Error::serialization(message).with_context("serializer", NAME))
            }
            Err(e @ BytesError::Custom(_)) => {
                Err(Error::serialization("cannot encode value as bytes")
                    .with_context("serializer", NAME)
                    .with_source(e))
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        match T::deserialize(BytesDecoder { bytes }) {
            Ok(value) => Ok(value),
            Err(BytesError::Refused(message)) => {
                Err(Error::serialization(message).with_context("serializer", NAME))
            }
            Err(e @ BytesError::Custom(_)) => Err(Error::serialization(
                "stored bytes do not read as the requested type",
            )
            .with_context("serializer", NAME)
            .with_source(e)),
        }
    }
}

/// The error of the encoder and decoder below, turned into [`Error`] at the boundary.
#[derive(Debug)]
enum BytesError {
    /// The value or target is not bytes; the message says which and what to use.
    Refused(String),
    /// Raised by a `Serialize`/`Deserialize` impl.
    Custom(String),
}

impl BytesError {
    fn refused_value(what: impl fmt::Display) -> Self {
        BytesError::Refused(format!(
            "RawBytes stores only bytes (Vec<u8>, bytes::Bytes, serde_bytes::ByteBuf) and \
             strings, not {what}; use Json or a binary format such as MsgPack for other values"
        ))
    }

    fn refused_target(what: &str) -> Self {
        BytesError::Refused(format!(
            "RawBytes reads stored bytes only into bytes (Vec<u8>, bytes::Bytes, \
             serde_bytes::ByteBuf) or a String, not into {what}"
        ))
    }
}

impl fmt::Display for BytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BytesError::Refused(m) | BytesError::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BytesError {}

impl ser::Error for BytesError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        BytesError::Custom(msg.to_string())
    }
}

impl de::Error for BytesError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        BytesError::Custom(msg.to_string())
    }
}

/// Generates `Serializer` methods that refuse a scalar with `$error(<description>)`.
macro_rules! refuse_scalars {
    ($error:path; $($method:ident($ty:ty) => $what:literal),* $(,)?) => {$(
        fn $method(self, _v: $ty) -> Result<Self::Ok, BytesError> {
            Err($error($what))
        }
    )*};
}

/// Generates the compound `Serializer` methods, all refused with `$error(<description>)`.
/// `serialize_seq` and `serialize_tuple` are written by hand where they are accepted.
macro_rules! refuse_compounds {
    ($error:path) => {
        fn serialize_tuple_struct(
            self,
            name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleStruct, BytesError> {
            Err($error(format_args!("the tuple struct `{name}`")))
        }
        fn serialize_tuple_variant(
            self,
            name: &'static str,
            _variant_index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeTupleVariant, BytesError> {
            Err($error(format_args!("the enum variant `{name}::{variant}`")))
        }
        fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, BytesError> {
            Err($error("a map"))
        }
        fn serialize_struct(
            self,
            name: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStruct, BytesError> {
            Err($error(format_args!("the struct `{name}`")))
        }
        fn serialize_struct_variant(
            self,
            name: &'static str,
            _variant_index: u32,
            variant: &'static str,
            _len: usize,
        ) -> Result<Self::SerializeStructVariant, BytesError> {
            Err($error(format_args!("the enum variant `{name}::{variant}`")))
        }
        fn serialize_unit(self) -> Result<Self::Ok, BytesError> {
            Err($error("the unit value `()`"))
        }
        fn serialize_unit_struct(self, name: &'static str) -> Result<Self::Ok, BytesError> {
            Err($error(format_args!("the unit struct `{name}`")))
        }
        fn serialize_unit_variant(
            self,
            name: &'static str,
            _variant_index: u32,
            variant: &'static str,
        ) -> Result<Self::Ok, BytesError> {
            Err($error(format_args!("the enum variant `{name}::{variant}`")))
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            name: &'static str,
            _variant_index: u32,
            variant: &'static str,
            _value: &T,
        ) -> Result<Self::Ok, BytesError> {
            Err($error(format_args!("the enum variant `{name}::{variant}`")))
        }
    };
}

/// Encodes a bytes-like value as its bytes.
struct BytesEncoder;

impl ser::Serializer for BytesEncoder {
    type Ok = Vec<u8>;
    type Error = BytesError;
    type SerializeSeq = ByteSeq;
    type SerializeTuple = ByteSeq;
    type SerializeTupleStruct = Impossible<Vec<u8>, BytesError>;
    type SerializeTupleVariant = Impossible<Vec<u8>, BytesError>;
    type SerializeMap = Impossible<Vec<u8>, BytesError>;
    type SerializeStruct = Impossible<Vec<u8>, BytesError>;
    type SerializeStructVariant = Impossible<Vec<u8>, BytesError>;

    fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, BytesError> {
        Ok(v.to_vec())
    }
    fn serialize_str(self, v: &str) -> Result<Vec<u8>, BytesError> {
        Ok(v.as_bytes().to_vec())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq, BytesError> {
        Ok(ByteSeq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<ByteSeq, BytesError> {
        Ok(ByteSeq(Vec::with_capacity(len)))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, BytesError> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, BytesError> {
        value.serialize(self)
    }
    fn serialize_none(self) -> Result<Vec<u8>, BytesError> {
        Err(BytesError::refused_value("None"))
    }

    refuse_scalars! { BytesError::refused_value;
        serialize_bool(bool) => "a boolean",
        serialize_i8(i8) => "a number",
        serialize_i16(i16) => "a number",
        serialize_i32(i32) => "a number",
        serialize_i64(i64) => "a number",
        serialize_i128(i128) => "a number",
        serialize_u8(u8) => "a number",
        serialize_u16(u16) => "a number",
        serialize_u32(u32) => "a number",
        serialize_u64(u64) => "a number",
        serialize_u128(u128) => "a number",
        serialize_f32(f32) => "a number",
        serialize_f64(f64) => "a number",
        serialize_char(char) => "a char",
    }
    refuse_compounds!(BytesError::refused_value);
}

/// Collects the elements of a sequence or tuple, each of which must be a `u8`.
struct ByteSeq(Vec<u8>);

impl ser::SerializeSeq for ByteSeq {
    type Ok = Vec<u8>;
    type Error = BytesError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BytesError> {
        self.0.push(value.serialize(ByteElement)?);
        Ok(())
    }
    fn end(self) -> Result<Vec<u8>, BytesError> {
        Ok(self.0)
    }
}

impl ser::SerializeTuple for ByteSeq {
    type Ok = Vec<u8>;
    type Error = BytesError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BytesError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Vec<u8>, BytesError> {
        Ok(self.0)
    }
}

/// Accepts one `u8` element of a byte sequence and refuses everything else.
struct ByteElement;

impl ByteElement {
    fn refused(what: impl fmt::Display) -> BytesError {
        BytesError::refused_value(format_args!(
            "a sequence containing {what} (only u8 elements)"
        ))
    }
}

impl ser::Serializer for ByteElement {
    type Ok = u8;
    type Error = BytesError;
    type SerializeSeq = Impossible<u8, BytesError>;
    type SerializeTuple = Impossible<u8, BytesError>;
    type SerializeTupleStruct = Impossible<u8, BytesError>;
    type SerializeTupleVariant = Impossible<u8, BytesError>;
    type SerializeMap = Impossible<u8, BytesError>;
    type SerializeStruct = Impossible<u8, BytesError>;
    type SerializeStructVariant = Impossible<u8, BytesError>;

    fn serialize_u8(self, v: u8) -> Result<u8, BytesError> {
        Ok(v)
    }

    refuse_scalars! { ByteElement::refused;
        serialize_bool(bool) => "a boolean",
        serialize_i8(i8) => "an i8",
        serialize_i16(i16) => "an i16",
        serialize_i32(i32) => "an i32",
        serialize_i64(i64) => "an i64",
        serialize_i128(i128) => "an i128",
        serialize_u16(u16) => "a u16",
        serialize_u32(u32) => "a u32",
        serialize_u64(u64) => "a u64",
        serialize_u128(u128) => "a u128",
        serialize_f32(f32) => "an f32",
        serialize_f64(f64) => "an f64",
        serialize_char(char) => "a char",
        serialize_str(&str) => "a string",
        serialize_bytes(&[u8]) => "a byte string",
    }
    refuse_compounds!(ByteElement::refused);

    fn serialize_none(self) -> Result<u8, BytesError> {
        Err(ByteElement::refused("None"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<u8, BytesError> {
        Err(ByteElement::refused("an Option"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _value: &T,
    ) -> Result<u8, BytesError> {
        Err(ByteElement::refused(format_args!("the struct `{name}`")))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, BytesError> {
        Err(ByteElement::refused("a sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, BytesError> {
        Err(ByteElement::refused("a tuple"))
    }
}

/// Hands the stored bytes to the requested type.
struct BytesDecoder<'de> {
    bytes: &'de [u8],
}

impl<'de> BytesDecoder<'de> {
    fn visit_elements<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        let mut seq = SeqDeserializer::new(self.bytes.iter().copied());
        let value = visitor.visit_seq(&mut seq)?;
        // Refuses a target that takes fewer elements than stored (`[u8; 4]` from 5 bytes).
        seq.end()?;
        Ok(value)
    }
}

macro_rules! refuse_targets {
    ($($method:ident => $what:literal),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, BytesError> {
            Err(BytesError::refused_target($what))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for BytesDecoder<'de> {
    type Error = BytesError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_borrowed_bytes(self.bytes)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_borrowed_bytes(self.bytes)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_byte_buf(self.bytes.to_vec())
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        self.visit_elements(visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BytesError> {
        self.visit_elements(visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        match std::str::from_utf8(self.bytes) {
            Ok(text) => visitor.visit_borrowed_str(text),
            Err(e) => Err(BytesError::Refused(format!(
                "stored bytes are not valid UTF-8 text ({e}); read them as bytes instead"
            ))),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BytesError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_borrowed_bytes(self.bytes)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BytesError> {
        visitor.visit_unit()
    }

    refuse_targets! {
        deserialize_bool => "a boolean",
        deserialize_i8 => "a number",
        deserialize_i16 => "a number",
        deserialize_i32 => "a number",
        deserialize_i64 => "a number",
        deserialize_i128 => "a number",
        deserialize_u8 => "a number",
        deserialize_u16 => "a number",
        deserialize_u32 => "a number",
        deserialize_u64 => "a number",
        deserialize_u128 => "a number",
        deserialize_f32 => "a number",
        deserialize_f64 => "a number",
        deserialize_char => "a char",
        deserialize_unit => "the unit value `()`",
        deserialize_map => "a map",
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _visitor: V,
    ) -> Result<V::Value, BytesError> {
        Err(BytesError::refused_target(&format!(
            "the unit struct `{name}`"
        )))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, BytesError> {
        Err(BytesError::refused_target(&format!(
            "the tuple struct `{name}`"
        )))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, BytesError> {
        Err(BytesError::refused_target(&format!("the struct `{name}`")))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, BytesError> {
        Err(BytesError::refused_target(&format!("the enum `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use serde::Deserialize;

    use super::*;
    use crate::ErrorKind;

    /// `serde_bytes::ByteBuf` without the dependency: serializes through `serialize_bytes`
    /// and deserializes through `deserialize_byte_buf`.
    #[derive(Debug, PartialEq)]
    struct ByteBuf(Vec<u8>);

    impl Serialize for ByteBuf {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    fn refused<T: Serialize + ?Sized>(value: &T) -> Error {
        let err = RawBytes.encode(value).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(
            err.message().starts_with("RawBytes stores only bytes"),
            "{err}"
        );
        assert_eq!(err.context_value("serializer"), Some("bytes"));
        err
    }

    fn bad_decode<T: DeserializeOwned + fmt::Debug>(bytes: &[u8]) -> Error {
        let err = RawBytes.decode::<T>(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        assert_eq!(err.context_value("serializer"), Some("bytes"));
        err
    }

    const SAMPLES: [&[u8]; 5] = [b"", b"\x00", b"hello", b"\xff\xfe\x00\x01", b"6"];

    #[test]
    fn name_is_bytes() {
        assert_eq!(RawBytes.name(), "bytes");
    }

    #[test]
    fn vec_u8_round_trips_verbatim() {
        for sample in SAMPLES {
            let v = sample.to_vec();
            assert_eq!(RawBytes.encode(&v).unwrap(), sample);
            assert_eq!(RawBytes.decode::<Vec<u8>>(sample).unwrap(), v);
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(RawBytes.encode(&all).unwrap(), all);
        assert_eq!(RawBytes.decode::<Vec<u8>>(&all).unwrap(), all);
    }

    #[test]
    fn slices_and_arrays_are_bytes() {
        let slice: &[u8] = b"abc";
        assert_eq!(RawBytes.encode(slice).unwrap(), b"abc");
        assert_eq!(RawBytes.encode(&slice).unwrap(), b"abc");
        assert_eq!(RawBytes.encode(&[1_u8, 2, 3]).unwrap(), [1, 2, 3]);
        assert_eq!(RawBytes.decode::<[u8; 3]>(&[1, 2, 3]).unwrap(), [1, 2, 3]);
        bad_decode::<[u8; 3]>(&[1, 2]);
        bad_decode::<[u8; 3]>(&[1, 2, 3, 4]);
        assert_eq!(RawBytes.encode(&[0_u8; 0]).unwrap(), b"");
    }

    #[test]
    fn bytes_and_byte_bufs_round_trip() {
        for sample in SAMPLES {
            let b = Bytes::copy_from_slice(sample);
            assert_eq!(RawBytes.encode(&b).unwrap(), sample);
            assert_eq!(RawBytes.decode::<Bytes>(sample).unwrap(), b);

            let buf = ByteBuf(sample.to_vec());
            assert_eq!(RawBytes.encode(&buf).unwrap(), sample);
            assert_eq!(RawBytes.decode::<ByteBuf>(sample).unwrap(), buf);
        }
    }

    #[test]
    fn strings_are_their_utf8_bytes() {
        assert_eq!(RawBytes.encode("héllo").unwrap(), "héllo".as_bytes());
        assert_eq!(RawBytes.encode(&"x".to_owned()).unwrap(), b"x");
        assert_eq!(
            RawBytes.decode::<String>("héllo".as_bytes()).unwrap(),
            "héllo"
        );
        assert_eq!(RawBytes.decode::<String>(b"").unwrap(), "");
        let err = bad_decode::<String>(b"ab\xff");
        assert!(err.message().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn options_and_newtypes_are_transparent() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Blob(Bytes);
        assert_eq!(RawBytes.encode(&Some(vec![1_u8, 2])).unwrap(), [1, 2]);
        assert_eq!(
            RawBytes.decode::<Option<Vec<u8>>>(&[1, 2]).unwrap(),
            Some(vec![1, 2])
        );
        let blob = Blob(Bytes::from_static(b"xyz"));
        assert_eq!(RawBytes.encode(&blob).unwrap(), b"xyz");
        assert_eq!(RawBytes.decode::<Blob>(b"xyz").unwrap(), blob);
    }

    #[test]
    fn refuses_values_that_are_not_bytes() {
        refused(&42_u32);
        refused(&1.5_f64);
        refused(&true);
        refused(&'c');
        refused(&());
        refused(&None::<Vec<u8>>);
        let mut map = BTreeMap::new();
        map.insert("a", 1);
        refused(&map);
        refused(&serde_json::json!({"a": 1}));
        #[derive(Serialize)]
        struct Point {
            x: i32,
        }
        let err = refused(&Point { x: 1 });
        assert!(err.message().contains("`Point`"), "{err}");

        let err = refused(&vec![1_u32, 2]);
        assert!(err.message().contains("only u8 elements"), "{err}");
        refused(&vec![-1_i8]);
        refused(&vec!["a"]);
        refused(&vec![vec![1_u8]]);
        refused(&vec![Some(1_u8)]);
        refused(&(1_u8, "a"));
    }

    #[test]
    fn an_error_raised_by_a_serialize_impl_is_the_source() {
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: ser::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("boom"))
            }
        }
        let err = RawBytes.encode(&Failing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        let source = std::error::Error::source(&err).expect("the impl's error is the source");
        assert_eq!(source.to_string(), "boom");
        assert!(!err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn refuses_targets_that_are_not_bytes() {
        let err = bad_decode::<i64>(b"42");
        assert!(err.message().contains("not into a number"), "{err}");
        bad_decode::<bool>(b"true");
        bad_decode::<f64>(b"1.5");
        bad_decode::<()>(b"");
        bad_decode::<BTreeMap<String, u8>>(b"{}");
        bad_decode::<serde_json::Value>(b"{}");
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Point {
            x: i32,
        }
        bad_decode::<Point>(b"x");
        // Elements are handed over as u8; a narrower element type is an error.
        bad_decode::<Vec<i8>>(&[200]);
        assert_eq!(RawBytes.decode::<Vec<u16>>(&[1, 2]).unwrap(), [1, 2]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let len = (next() % 32) as usize;
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert_eq!(RawBytes.decode::<Vec<u8>>(&input).unwrap(), input);
            assert_eq!(RawBytes.decode::<Bytes>(&input).unwrap(), input);
            match RawBytes.decode::<String>(&input) {
                Ok(s) => assert_eq!(s.as_bytes(), input),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Serialization),
            }
            let _ = RawBytes.decode::<[u8; 4]>(&input);
            let _ = RawBytes.decode::<serde_json::Value>(&input);
        }
    }
}
