use cache_core::{Error, Result, Serializer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::counter;

const NAME: &str = "cbor";

/// [CBOR](https://www.rfc-editor.org/rfc/rfc8949) (RFC 8949) through `ciborium`: a compact,
/// self-describing binary format with an IETF standard and libraries in most languages.
///
/// Structs are written as maps keyed by field name and `Vec<u8>` as an array of integers, as
/// serde presents it (use `bytes::Bytes` or `serde_bytes` for the compact byte-string type).
/// `decode` reads exactly one value: trailing bytes after it, truncated input and garbage are
/// [`ErrorKind::Serialization`](cache_core::ErrorKind::Serialization) errors, never panics.
/// Nesting deeper than 256 levels is refused.
///
/// # Counters
///
/// `increment` stores counters as decimal text, and CBOR reads some of those bytes as a
/// different number: the byte `0` (0x30) is the integer -17 and the bytes `85` are -54. A
/// counter read with `get` would be silently wrong, so `decode` refuses any input that is
/// entirely `-?[0-9]+` in ASCII, with an error that says to read counters with
/// `Cache::get_counter`. To keep that rule from ever rejecting its own output, `encode`
/// writes the few integers whose shortest form is made of ASCII digits with a longer
/// argument instead (CBOR allows any argument width): -17..=-24 (`0x30`..`0x37`) as
/// `0x38 0x10`..`0x38 0x17`, -49..=-58 (`0x38 0x30`..`0x38 0x39`) as `0x39 0x00 0x30`..,
/// and the 100 integers from -12337 to -14650 written `0x39` plus two digit bytes as `0x3a`
/// with a four-byte argument.
///
/// The limitation: one of those integers written by another program in its shortest form,
/// as a bare top-level value, reads as that error, never as a wrong number. The same
/// integers inside arrays, maps or structs read normally.
///
/// ```
/// use cache_core::{ErrorKind, Serializer};
/// use cache_serde::Cbor;
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// let user = User { id: 7, name: "Ada".into() };
/// let bytes = Cbor.encode(&user).unwrap();
/// // A map with two entries keyed by field name: {"id": 7, "name": "Ada"}.
/// assert_eq!(bytes, b"\xa2\x62id\x07\x64name\x63Ada");
/// assert_eq!(Cbor.decode::<User>(&bytes).unwrap(), user);
///
/// // -54 is written so that it can never be mistaken for the text "85"...
/// assert_eq!(Cbor.encode(&-54).unwrap(), [0x39, 0x00, 0x35]);
/// assert_eq!(Cbor.decode::<i64>(&[0x39, 0x00, 0x35]).unwrap(), -54);
/// // ...and the text "85", a counter written by `increment`, is refused.
/// let err = Cbor.decode::<i64>(b"85").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Serialization);
/// assert!(err.message().contains("get_counter"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cbor;

impl Serializer for Cbor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        ciborium::into_writer(value, &mut bytes).map_err(|e| {
            Error::serialization("cannot encode value as CBOR")
                .with_context("serializer", NAME)
                .with_source(e)
        })?;
        if counter::is_decimal_text(&bytes) {
            bytes = widen_digit_encoding(&bytes)?;
        }
        Ok(bytes)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        if counter::is_decimal_text(bytes) {
            return Err(counter::decimal_text_error(
                NAME,
                "CBOR",
                "the text `6` is also the CBOR integer -23",
            ));
        }
        let mut rest = bytes;
        // The default recursion limit of `from_reader` is 256 levels.
        let value = ciborium::from_reader::<T, _>(&mut rest).map_err(|e| {
            Error::serialization("stored bytes are not valid CBOR for the requested type")
                .with_context("serializer", NAME)
                .with_source(e)
        })?;
        if !rest.is_empty() {
            return Err(Error::serialization(format!(
                "stored bytes hold more than one CBOR value ({} bytes follow the first value)",
                rest.len()
            ))
            .with_context("serializer", NAME));
        }
        Ok(value)
    }
}

/// Re-encodes one complete CBOR value that consists only of ASCII digits (and maybe a
/// leading `-`) with a wider argument, so that it no longer looks like decimal text.
///
/// Why these three shapes are the only ones: a CBOR item starts with a byte whose top three
/// bits are its major type and low five bits its "additional information". The digits
/// 0x30..=0x39 are major type 1 (negative integer, value `-1 - argument`):
///
/// - 0x30..=0x37 carry the argument 16..=23 in the byte itself: a complete one-byte item
///   (-17..=-24), so in a single-value output it is the whole output;
/// - 0x38 takes a one-byte argument: a complete two-byte item;
/// - 0x39 takes a two-byte argument: a complete three-byte item.
///
/// `-` (0x2d) is the one-byte item -14, so an output starting with it is that byte alone,
/// which has no digit and does not match. No other first byte is a digit or `-`, so any other
/// output cannot be all digits. The encoder writes exactly one item, hence the only all-digit
/// outputs are `[0x30..=0x37]`, `[0x38, d]` and `[0x39, d, d]` with digit bytes `d`. Each gets
/// the next wider argument, which is valid CBOR for the same number (RFC 8949 allows
/// non-shortest arguments; only "deterministic" encoding forbids them) and whose second byte
/// (0x10..=0x17 or 0x00) is not a digit.
fn widen_digit_encoding(bytes: &[u8]) -> Result<Vec<u8>> {
    match *bytes {
        [b @ 0x30..=0x37] => Ok(vec![0x38, b - 0x20]),
        [0x38, a] => Ok(vec![0x39, 0x00, a]),
        [0x39, a, b] => Ok(vec![0x3a, 0x00, 0x00, a, b]),
        // Not reachable by the argument above; an error rather than a panic all the same.
        _ => Err(
            Error::serialization("the CBOR encoder produced bytes that read as decimal text")
                .with_context("serializer", NAME),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cache_core::ErrorKind;
    use serde::Deserialize;

    use super::*;
    use crate::test_support;

    /// Shortest CBOR encoding of a negative integer, straight from the encoder.
    fn shortest(n: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(&n, &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn name_is_cbor() {
        assert_eq!(Cbor.name(), "cbor");
    }

    #[test]
    fn structs_are_maps_with_field_names() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Point {
            x: i32,
            y: i32,
        }
        let bytes = Cbor.encode(&Point { x: 1, y: -1 }).unwrap();
        assert_eq!(bytes, b"\xa2\x61x\x01\x61y\x20");
        assert_eq!(Cbor.decode::<Point>(&bytes).unwrap(), Point { x: 1, y: -1 });
    }

    #[test]
    fn common_values_round_trip() {
        test_support::round_trips(&Cbor);
    }

    #[test]
    fn every_small_integer_and_the_extremes_round_trip() {
        test_support::integers_round_trip(&Cbor);
        for n in -70_000_i64..=-10_000 {
            assert_eq!(Cbor.decode::<i64>(&Cbor.encode(&n).unwrap()).unwrap(), n);
        }
    }

    #[test]
    fn integers_with_all_digit_shortest_forms_are_widened() {
        let mut widened = 0;
        for n in -100_000_i64..=100_000 {
            let bytes = Cbor.encode(&n).unwrap();
            assert!(!counter::is_decimal_text(&bytes), "{n} -> {bytes:02x?}");
            if bytes != shortest(n) {
                widened += 1;
            }
        }
        // 8 one-byte, 10 two-byte and 100 three-byte forms.
        assert_eq!(widened, 8 + 10 + 100);
        assert_eq!(Cbor.encode(&-17).unwrap(), [0x38, 0x10]);
        assert_eq!(Cbor.encode(&-24).unwrap(), [0x38, 0x17]);
        assert_eq!(Cbor.encode(&-49).unwrap(), [0x39, 0x00, 0x30]);
        assert_eq!(Cbor.encode(&-58).unwrap(), [0x39, 0x00, 0x39]);
        assert_eq!(Cbor.encode(&-12595).unwrap(), [0x3a, 0, 0, b'1', b'2']);
        // Untouched inside a container, and next to the widened ranges.
        assert_eq!(Cbor.encode(&[-17]).unwrap(), [0x81, 0x30]);
        assert_eq!(Cbor.encode(&-16).unwrap(), [0x2f]);
        assert_eq!(Cbor.encode(&-25).unwrap(), [0x38, 0x18]);
    }

    #[test]
    fn counter_text_is_a_clear_error() {
        test_support::counter_text_is_refused(&Cbor);
        // Shortest forms another program would write for -23, -54 and -12595.
        for bytes in [shortest(-23), shortest(-54), shortest(-12595)] {
            let err = Cbor.decode::<i64>(&bytes).unwrap_err();
            assert!(err.message().contains("get_counter"), "{err}");
        }
        assert_eq!(Cbor.decode::<Vec<i64>>(&[0x81, 0x36]).unwrap(), [-23]);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let err = Cbor.decode::<u8>(&[0x01, 0x02]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(err.message().contains("1 bytes follow"), "{err}");
        let mut bytes = Cbor.encode(&BTreeMap::from([("a", 1)])).unwrap();
        bytes.push(0xf6);
        assert!(Cbor.decode::<BTreeMap<String, i32>>(&bytes).is_err());
        let err = Cbor.decode::<String>(b"\x61a7").unwrap_err();
        assert!(err.message().contains("more than one"), "{err}");
    }

    #[test]
    fn wrong_types_and_truncation_are_errors() {
        let bytes = Cbor.encode("text").unwrap();
        let err = Cbor.decode::<u32>(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert_eq!(err.context_value("serializer"), Some("cbor"));
        assert!(Cbor.decode::<u8>(&Cbor.encode(&300).unwrap()).is_err());
        assert!(Cbor.decode::<String>(&bytes[..2]).is_err());
        assert!(Cbor.decode::<String>(b"").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        test_support::deep_nesting_is_refused(&Cbor, 0x81, 0xf6);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        test_support::garbage_is_refused(&Cbor, 0x6362_6f72_2121_2121);
    }
}
