use std::fmt;

use serde::Serialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible};

use super::Serializer;
use crate::{Error, Result};

/// Plain UTF-8 text for strings, numbers and booleans.
///
/// A value is stored as its text, with no quotes and no framing: `"hello"` as `hello`, `42` as
/// `42`, `-7` as `-7`, `1.5` as `1.5`, `true` as `true`. That is the format other programs,
/// `redis-cli` and Python's `str(value)` read and write, and the format `increment` uses, so a
/// counter reads back as the right number.
///
/// **Encode** accepts strings, chars, integers of every width (including `i128`/`u128`),
/// floats (shortest text that reads back to the same value: `1.5`, `1.0`, `1e300`, `NaN`,
/// `inf`) and booleans. `Some(x)` is stored as `x`, a newtype struct (`struct UserId(u64)`) as
/// its inner value and a unit enum variant as its name. Everything else is refused with an
/// [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error: `None` and `()` (they
/// have no text, and would not read back as themselves), structs, maps, sequences, tuples,
/// byte strings and enum variants with data. Use [`Json`](crate::Json) for those.
///
/// **Decode** requires valid UTF-8 and offers the text to the requested type: as a string
/// to string types, parsed to integer, float and `bool` targets (strictly, with Rust's
/// `FromStr`: no spaces, no thousands separators; `bool` also accepts Python's `True` and
/// `False`), as `Some(..)` to an `Option` and as a string to self-describing targets such as
/// `serde_json::Value`. Text that does not parse as the requested type is a
/// [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error, never a default value.
///
/// ```
/// use cache_core::{ErrorKind, Serializer, Utf8};
///
/// assert_eq!(Utf8.encode("hello").unwrap(), b"hello");
/// assert_eq!(Utf8.encode(&42_i64).unwrap(), b"42");
/// assert_eq!(Utf8.encode(&1.5_f64).unwrap(), b"1.5");
/// assert_eq!(Utf8.encode(&Some(true)).unwrap(), b"true");
///
/// assert_eq!(Utf8.decode::<i64>(b"42").unwrap(), 42);
/// assert_eq!(Utf8.decode::<String>(b"42").unwrap(), "42");
/// assert_eq!(Utf8.decode::<Option<f64>>(b"-0.25").unwrap(), Some(-0.25));
///
/// // Text that is not a number is an error, not a zero.
/// assert_eq!(Utf8.decode::<i64>(b"4x").unwrap_err().kind(), ErrorKind::Serialization);
/// // Structured values belong in Json.
/// assert_eq!(Utf8.encode(&vec![1, 2]).unwrap_err().kind(), ErrorKind::Serialization);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8;

const NAME: &str = "utf8";

impl Serializer for Utf8 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        match value.serialize(TextEncoder) {
            Ok(text) => Ok(text.into_bytes()),
            Err(TextError::Refused(message)) => {
                Err(Error::serialization(message).with_context("serializer", NAME))
            }
            Err(e @ TextError::Custom(_)) => {
                Err(Error::serialization("cannot encode value as UTF-8 text")
                    .with_context("serializer", NAME)
                    .with_source(e))
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Error::serialization("stored bytes are not valid UTF-8 text")
                .with_context("serializer", NAME)
                .with_source(e)
        })?;
        T::deserialize(TextDecoder { text }).map_err(|e| {
            Error::serialization("stored text does not read as the requested type")
                .with_context("serializer", NAME)
                .with_source(e)
        })
    }
}

/// The error of the encoder and decoder below, turned into [`Error`] at the boundary.
#[derive(Debug)]
enum TextError {
    /// The value's shape has no plain-text form; the message says which and what to use.
    Refused(String),
    /// Raised by a `Serialize`/`Deserialize` impl or by the decoder.
    Custom(String),
}

impl TextError {
    fn refused(what: impl fmt::Display) -> Self {
        TextError::Refused(format!(
            "Utf8 stores only strings, numbers and booleans, not {what}; \
             use the Json serializer for such values"
        ))
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Refused(m) | TextError::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TextError {}

impl ser::Error for TextError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        TextError::Custom(msg.to_string())
    }
}

impl de::Error for TextError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        TextError::Custom(msg.to_string())
    }
}

/// At most the first 64 characters of `text`, quoted, for error messages.
fn preview(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
        None => format!("{text:?}"),
    }
}

/// Encodes one scalar value as its text.
struct TextEncoder;

impl ser::Serializer for TextEncoder {
    type Ok = String;
    type Error = TextError;
    type SerializeSeq = Impossible<String, TextError>;
    type SerializeTuple = Impossible<String, TextError>;
    type SerializeTupleStruct = Impossible<String, TextError>;
    type SerializeTupleVariant = Impossible<String, TextError>;
    type SerializeMap = Impossible<String, TextError>;
    type SerializeStruct = Impossible<String, TextError>;
    type SerializeStructVariant = Impossible<String, TextError>;

    fn serialize_bool(self, v: bool) -> Result<String, TextError> {
        Ok(if v { "true" } else { "false" }.to_owned())
    }
    fn serialize_i8(self, v: i8) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    // `Debug` is the shortest text that parses back to the same float, keeps a `.0` on
    // whole numbers (as Python's `str` does) and switches to exponents for very large or
    // very small magnitudes instead of printing hundreds of digits.
    fn serialize_f32(self, v: f32) -> Result<String, TextError> {
        Ok(format!("{v:?}"))
    }
    fn serialize_f64(self, v: f64) -> Result<String, TextError> {
        Ok(format!("{v:?}"))
    }
    fn serialize_char(self, v: char) -> Result<String, TextError> {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> Result<String, TextError> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, TextError> {
        Err(TextError::refused(
            "a byte string (use RawBytes to store bytes as they are)",
        ))
    }
    fn serialize_none(self) -> Result<String, TextError> {
        Err(TextError::refused("None (it has no text form)"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, TextError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, TextError> {
        Err(TextError::refused("the unit value `()`"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, TextError> {
        Err(TextError::refused(format_args!("the unit struct `{name}`")))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _variant_index: u32,
        variant: &'static str,
    ) -> Result<String, TextError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, TextError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _value: &T,
    ) -> Result<String, TextError> {
        Err(TextError::refused(format_args!(
            "the enum variant `{name}::{variant}` with data"
        )))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, TextError> {
        Err(TextError::refused("a sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, TextError> {
        Err(TextError::refused("a tuple"))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, TextError> {
        Err(TextError::refused(format_args!(
            "the tuple struct `{name}`"
        )))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, TextError> {
        Err(TextError::refused(format_args!(
            "the enum variant `{name}::{variant}` with data"
        )))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, TextError> {
        Err(TextError::refused("a map"))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, TextError> {
        Err(TextError::refused(format_args!("the struct `{name}`")))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _variant_index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, TextError> {
        Err(TextError::refused(format_args!(
            "the enum variant `{name}::{variant}` with data"
        )))
    }
}

/// Offers stored text to the requested type: as a string, or parsed for numbers and `bool`.
struct TextDecoder<'de> {
    text: &'de str,
}

impl TextDecoder<'_> {
    fn parse<N>(&self, what: &str) -> Result<N, TextError>
    where
        N: std::str::FromStr,
        N::Err: fmt::Display,
    {
        self.text.parse().map_err(|e| {
            TextError::Custom(format!(
                "expected {what}, found {}: {e}",
                preview(self.text)
            ))
        })
    }
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
            visitor.$visit(self.parse::<$ty>(stringify!($ty))?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for TextDecoder<'de> {
    type Error = TextError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_borrowed_str(self.text)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        match self.text {
            "true" | "True" => visitor.visit_bool(true),
            "false" | "False" => visitor.visit_bool(false),
            other => Err(TextError::Custom(format!(
                "expected a boolean (`true` or `false`), found {}",
                preview(other)
            ))),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        let mut chars = self.text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(TextError::Custom(format!(
                "expected a single character, found {}",
                preview(self.text)
            ))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_borrowed_str(self.text)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_borrowed_str(self.text)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TextError> {
        // The text names a unit variant; a variant with data has no text form and is
        // refused by the variant access.
        visitor.visit_enum(BorrowedStrDeserializer::<TextError>::new(self.text))
    }

    // Everything else sees a string and accepts or refuses it with its own message
    // ("invalid type: string \"abc\", expected a sequence").
    serde::forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::ErrorKind;

    fn round_trip<T>(value: T, text: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        let bytes = Utf8.encode(&value).unwrap();
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), text);
        assert_eq!(Utf8.decode::<T>(&bytes).unwrap(), value);
    }

    fn refused<T: Serialize + ?Sized>(value: &T) -> Error {
        let err = Utf8.encode(value).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(
            err.message()
                .contains("Utf8 stores only strings, numbers and booleans"),
            "{err}"
        );
        assert!(err.message().contains("Json"), "{err}");
        assert_eq!(err.context_value("serializer"), Some("utf8"));
        err
    }

    fn bad_decode<T: DeserializeOwned + fmt::Debug>(bytes: &[u8]) -> Error {
        let err = Utf8.decode::<T>(bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        assert_eq!(err.context_value("serializer"), Some("utf8"));
        err
    }

    #[test]
    fn name_is_utf8() {
        assert_eq!(Utf8.name(), "utf8");
    }

    #[test]
    fn strings_and_chars_round_trip() {
        round_trip("hello".to_owned(), "hello");
        round_trip(String::new(), "");
        round_trip("grüße, 世界 🦀".to_owned(), "grüße, 世界 🦀");
        round_trip(
            "  spaces and\nnewlines  ".to_owned(),
            "  spaces and\nnewlines  ",
        );
        round_trip('x', "x");
        round_trip('🦀', "🦀");
        assert_eq!(Utf8.encode("borrowed").unwrap(), b"borrowed");
    }

    #[test]
    fn integers_of_every_width_round_trip() {
        round_trip(42_i64, "42");
        round_trip(-7_i64, "-7");
        round_trip(0_u8, "0");
        round_trip(i8::MIN, "-128");
        round_trip(u8::MAX, "255");
        round_trip(i16::MIN, "-32768");
        round_trip(u16::MAX, "65535");
        round_trip(i32::MIN, "-2147483648");
        round_trip(u32::MAX, "4294967295");
        round_trip(i64::MIN, "-9223372036854775808");
        round_trip(u64::MAX, "18446744073709551615");
        round_trip(i128::MIN, "-170141183460469231731687303715884105728");
        round_trip(u128::MAX, "340282366920938463463374607431768211455");
    }

    #[test]
    fn floats_round_trip_exactly() {
        round_trip(1.5_f64, "1.5");
        round_trip(-0.25_f64, "-0.25");
        round_trip(1.0_f64, "1.0");
        round_trip(0.1_f64 + 0.2, "0.30000000000000004");
        round_trip(1e300_f64, "1e300");
        round_trip(f64::MIN_POSITIVE, "2.2250738585072014e-308");
        round_trip(f64::INFINITY, "inf");
        round_trip(f64::NEG_INFINITY, "-inf");
        round_trip(1.1_f32, "1.1");
        round_trip(f32::MAX, "3.4028235e38");
        let nan = Utf8.encode(&f64::NAN).unwrap();
        assert_eq!(nan, b"NaN");
        assert!(Utf8.decode::<f64>(&nan).unwrap().is_nan());
    }

    #[test]
    fn booleans_round_trip_and_python_spelling_reads() {
        round_trip(true, "true");
        round_trip(false, "false");
        assert!(Utf8.decode::<bool>(b"True").unwrap());
        assert!(!Utf8.decode::<bool>(b"False").unwrap());
        bad_decode::<bool>(b"TRUE");
        bad_decode::<bool>(b"1");
        bad_decode::<bool>(b" true");
    }

    #[test]
    fn some_is_stored_as_its_value_and_reads_back_as_some() {
        assert_eq!(Utf8.encode(&Some(5_u32)).unwrap(), b"5");
        assert_eq!(Utf8.encode(&Some(Some("x"))).unwrap(), b"x");
        round_trip(Some(5_u32), "5");
        round_trip(Some("x".to_owned()), "x");
    }

    #[test]
    fn newtype_structs_and_unit_variants_are_plain_text() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct UserId(u64);
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Status {
            Active,
            Disabled,
            Other(u8),
        }
        round_trip(UserId(7), "7");
        round_trip(Status::Active, "Active");
        round_trip(Status::Disabled, "Disabled");
        refused(&Status::Other(1));
        bad_decode::<Status>(b"Unknown");
        bad_decode::<Status>(b"Other");
    }

    #[test]
    fn same_text_reads_as_the_requested_type() {
        assert_eq!(Utf8.decode::<i64>(b"42").unwrap(), 42);
        assert_eq!(Utf8.decode::<u8>(b"42").unwrap(), 42);
        assert_eq!(Utf8.decode::<f64>(b"42").unwrap(), 42.0);
        assert_eq!(Utf8.decode::<String>(b"42").unwrap(), "42");
        assert_eq!(Utf8.decode::<Option<i64>>(b"42").unwrap(), Some(42));
        assert_eq!(
            Utf8.decode::<serde_json::Value>(b"42").unwrap(),
            serde_json::Value::String("42".to_owned())
        );
    }

    #[test]
    fn counters_written_by_increment_read_back() {
        for (text, n) in [("6", 6_i64), ("-12", -12), ("1234", 1234), ("0", 0)] {
            assert_eq!(Utf8.decode::<i64>(text.as_bytes()).unwrap(), n);
        }
    }

    #[test]
    fn refuses_values_without_a_text_form() {
        refused(&None::<u32>);
        refused(&());
        refused(&vec![1, 2, 3]);
        refused(&[1_u8, 2]);
        refused(&(1, "a"));
        let mut map = BTreeMap::new();
        map.insert("a", 1);
        refused(&map);
        refused(&serde_json::json!({"a": 1}));
        refused(&serde_json::Value::Null);

        #[derive(Serialize)]
        struct Point {
            x: i32,
        }
        #[derive(Serialize)]
        struct Marker;
        #[derive(Serialize)]
        struct Pair(i32, i32);
        let err = refused(&Point { x: 1 });
        assert!(err.message().contains("`Point`"), "{err}");
        refused(&Marker);
        refused(&Pair(1, 2));

        struct Raw;
        impl Serialize for Raw {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b"raw")
            }
        }
        let err = refused(&Raw);
        assert!(err.message().contains("RawBytes"), "{err}");
    }

    #[test]
    fn an_error_raised_by_a_serialize_impl_is_the_source() {
        struct Failing;
        impl Serialize for Failing {
            fn serialize<S: ser::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("boom"))
            }
        }
        let err = Utf8.encode(&Failing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        let source = std::error::Error::source(&err).expect("the impl's error is the source");
        assert_eq!(source.to_string(), "boom");
        assert!(!err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn text_that_does_not_parse_is_an_error() {
        let err = bad_decode::<i64>(b"4x");
        assert!(format!("{err:#}").contains("\"4x\""), "{err:#}");
        bad_decode::<i64>(b"");
        bad_decode::<i64>(b" 42");
        bad_decode::<i64>(b"42\n");
        bad_decode::<i64>(b"1_000");
        bad_decode::<i64>(b"4.2");
        bad_decode::<i64>(b"9223372036854775808");
        bad_decode::<u8>(b"256");
        bad_decode::<u32>(b"-1");
        bad_decode::<f64>(b"1.5.2");
        bad_decode::<f64>(b"");
        bad_decode::<char>(b"ab");
        bad_decode::<char>(b"");
        bad_decode::<()>(b"x");
        bad_decode::<Vec<u32>>(b"1,2");
        bad_decode::<BTreeMap<String, u32>>(b"a=1");
    }

    #[test]
    fn long_text_is_cut_short_in_errors() {
        let long = "9".repeat(10_000);
        let err = bad_decode::<i64>(long.as_bytes());
        assert!(err.to_string().len() < 500, "{err}");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = bad_decode::<String>(b"ab\xffcd");
        assert!(err.message().contains("UTF-8"), "{err}");
        bad_decode::<i64>(b"\xc3");
        bad_decode::<serde_json::Value>(b"\xed\xa0\x80");
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Utf8.decode::<String>(&bytes);
            let _ = Utf8.decode::<i64>(&bytes);
            let _ = Utf8.decode::<f32>(&bytes);
            let _ = Utf8.decode::<char>(&bytes);
            let _ = Utf8.decode::<bool>(&bytes);
            let _ = Utf8.decode::<Option<u128>>(&bytes);
            let _ = Utf8.decode::<serde_json::Value>(&bytes);
            let _ = Utf8.decode::<Vec<u8>>(&bytes);
        }
    }
}
