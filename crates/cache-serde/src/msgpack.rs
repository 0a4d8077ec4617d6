use cache_core::{Error, Result, Serializer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::counter;

const NAME: &str = "msgpack";

/// The deepest nesting `decode` follows. Deeper input is an error, not a stack overflow.
const MAX_DEPTH: usize = 256;

/// [MessagePack](https://msgpack.org) through `rmp-serde`: compact binary, readable from
/// most languages.
///
/// Structs are written as maps keyed by field name (`rmp_serde::to_vec_named`), not as
/// positional arrays, so Python's `msgpack.unpackb` and other MessagePack libraries read
/// them as dictionaries, and adding or reordering fields does not shift values. Decoding
/// accepts structs written either way. `Vec<u8>` is written as an array of integers, as
/// serde presents it; use `bytes::Bytes` or `serde_bytes` for the compact `bin` type.
///
/// `decode` reads exactly one value: trailing bytes after it, truncated input and garbage are
/// [`ErrorKind::Serialization`](cache_core::ErrorKind::Serialization) errors, never panics.
///
/// # Counters
///
/// `increment` stores counters as decimal text, and in MessagePack the byte `6` (0x36) is
/// the positive fixint 54: a counter read with `get` would be a silently wrong number. So
/// `decode` refuses any input that is entirely `-?[0-9]+` in ASCII, with an error that says
/// to read counters with `Cache::get_counter`. To keep that rule from ever rejecting its own
/// output, `encode` writes the integers 48 to 57, whose shortest form is such a single byte,
/// as `uint 8` instead (`0xcc 0x30`..`0xcc 0x39`); every other value already starts with a
/// non-digit byte.
///
/// The limitation: a bare top-level integer from 48 to 57 written by another program in its
/// shortest form (Python's `msgpack.packb(54)` is `b"6"`) reads as that error, never as a
/// wrong number. The same integers inside arrays, maps or structs read normally.
///
/// ```
/// use cache_core::{ErrorKind, Serializer};
/// use cache_serde::MsgPack;
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// let user = User { id: 7, name: "Ada".into() };
/// let bytes = MsgPack.encode(&user).unwrap();
/// // A map with two entries keyed by field name: {"id": 7, "name": "Ada"}.
/// assert_eq!(bytes, b"\x82\xa2id\x07\xa4name\xa3Ada");
/// assert_eq!(MsgPack.decode::<User>(&bytes).unwrap(), user);
///
/// // 54 is written in two bytes, so it can never be mistaken for the text "6"...
/// assert_eq!(MsgPack.encode(&54).unwrap(), [0xcc, 54]);
/// assert_eq!(MsgPack.decode::<i64>(&[0xcc, 54]).unwrap(), 54);
/// // ...and the text "6", a counter written by `increment`, is refused.
/// let err = MsgPack.decode::<i64>(b"6").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Serialization);
/// assert!(err.message().contains("get_counter"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgPack;

impl Serializer for MsgPack {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let mut bytes = rmp_serde::to_vec_named(value).map_err(|e| {
            Error::serialization("cannot encode value as MessagePack")
                .with_context("serializer", NAME)
                .with_source(e)
        })?;
        // `decode` refuses input that is all ASCII digits (with an optional leading `-`), so
        // the output must never be such bytes. Bytes 0x00..=0x7f are positive fixints: a
        // complete value in one byte. The output is exactly one value, so when its first byte
        // is a digit (0x30..=0x39) or `-` (0x2d) it is that single byte and nothing follows;
        // every longer output starts with a byte of 0x80 or above and cannot match. `-`
        // alone has no digit and does not match either. What is left is a lone digit byte,
        // the integer 48..=57: rewrite it as `uint 8` (0xcc), the same number in two bytes.
        if let [digit @ b'0'..=b'9'] = bytes[..] {
            bytes = vec![0xcc, digit];
        }
        Ok(bytes)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        if counter::is_decimal_text(bytes) {
            return Err(counter::decimal_text_error(
                NAME,
                "MessagePack",
                "the text `6` is also the MessagePack integer 54",
            ));
        }
        let mut de = rmp_serde::Deserializer::new(bytes);
        de.set_max_depth(MAX_DEPTH);
        let value = T::deserialize(&mut de).map_err(|e| {
            Error::serialization("stored bytes are not valid MessagePack for the requested type")
                .with_context("serializer", NAME)
                .with_source(e)
        })?;
        let trailing = de.get_ref().len();
        if trailing != 0 {
            return Err(Error::serialization(format!(
                "stored bytes hold more than one MessagePack value ({trailing} bytes follow \
                 the first value)"
            ))
            .with_context("serializer", NAME));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cache_core::ErrorKind;
    use serde::Deserialize;

    use super::*;
    use crate::test_support;

    #[test]
    fn name_is_msgpack() {
        assert_eq!(MsgPack.name(), "msgpack");
    }

    #[test]
    fn structs_are_maps_with_field_names() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Point {
            x: i32,
            y: i32,
        }
        let bytes = MsgPack.encode(&Point { x: 1, y: -1 }).unwrap();
        assert_eq!(bytes, b"\x82\xa1x\x01\xa1y\xff");
        // What Python's msgpack.packb({"x": 1, "y": -1}) writes reads back as the struct.
        assert_eq!(
            MsgPack.decode::<Point>(&bytes).unwrap(),
            Point { x: 1, y: -1 }
        );
        // A positional array (rmp_serde::to_vec) is accepted as well.
        assert_eq!(
            MsgPack.decode::<Point>(b"\x92\x01\xff").unwrap(),
            Point { x: 1, y: -1 }
        );
    }

    #[test]
    fn common_values_round_trip() {
        test_support::round_trips(&MsgPack);
    }

    #[test]
    fn every_small_integer_and_the_extremes_round_trip() {
        test_support::integers_round_trip(&MsgPack);
    }

    #[test]
    fn integers_48_to_57_are_written_in_two_bytes() {
        for n in 48_u8..=57 {
            let expected = [0xcc, n];
            assert_eq!(MsgPack.encode(&n).unwrap(), expected);
            assert_eq!(MsgPack.encode(&i64::from(n)).unwrap(), expected);
            assert_eq!(MsgPack.encode(&u64::from(n)).unwrap(), expected);
            assert_eq!(MsgPack.encode(&Some(n)).unwrap(), expected);
            assert_eq!(MsgPack.decode::<i8>(&expected).unwrap(), n as i8);
        }
        // Inside a container the shortest form is kept: only a whole output matters.
        assert_eq!(MsgPack.encode(&[54]).unwrap(), [0x91, 0x36]);
        assert_eq!(MsgPack.encode(&47).unwrap(), [0x2f]);
        assert_eq!(MsgPack.encode(&58).unwrap(), [0x3a]);
    }

    #[test]
    fn counter_text_is_a_clear_error() {
        test_support::counter_text_is_refused(&MsgPack);
        // What Python's msgpack.packb(54) writes: the documented limitation.
        let err = MsgPack.decode::<i64>(&[0x36]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(err.message().contains("get_counter"), "{err}");
        // The same integer inside a container is fine.
        assert_eq!(MsgPack.decode::<Vec<i64>>(&[0x91, 0x36]).unwrap(), [54]);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let err = MsgPack.decode::<u8>(&[0x01, 0x02]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert!(err.message().contains("1 bytes follow"), "{err}");
        let mut bytes = MsgPack.encode(&BTreeMap::from([("a", 1)])).unwrap();
        bytes.push(0xc0);
        assert!(MsgPack.decode::<BTreeMap<String, i32>>(&bytes).is_err());
        // A stored value followed by a counter-like suffix is not a counter: plain error.
        let err = MsgPack.decode::<String>(b"\xa1a7").unwrap_err();
        assert!(err.message().contains("more than one"), "{err}");
    }

    #[test]
    fn wrong_types_and_truncation_are_errors() {
        let bytes = MsgPack.encode("text").unwrap();
        let err = MsgPack.decode::<u32>(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization);
        assert_eq!(err.context_value("serializer"), Some("msgpack"));
        assert!(
            MsgPack
                .decode::<u8>(&MsgPack.encode(&300).unwrap())
                .is_err()
        );
        assert!(MsgPack.decode::<String>(&bytes[..2]).is_err());
        assert!(MsgPack.decode::<String>(b"").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        test_support::deep_nesting_is_refused(&MsgPack, 0x91, 0xc0);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        test_support::garbage_is_refused(&MsgPack, 0x6d73_6770_6163_6b21);
    }
}
