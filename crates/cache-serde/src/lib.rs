#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "json")]
pub use cache_core::Json;

#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "msgpack")]
pub use msgpack::MsgPack;

#[cfg(feature = "cbor")]
mod cbor;
#[cfg(feature = "cbor")]
pub use cbor::Cbor;

#[cfg(any(feature = "zstd", feature = "lz4"))]
mod compressed;
#[cfg(any(feature = "zstd", feature = "lz4"))]
pub use compressed::{Codec, Compressed};

/// Counters stored by `increment` as decimal text, which binary formats must not misread.
#[cfg(any(feature = "msgpack", feature = "cbor"))]
mod counter {
    use cache_core::Error;

    /// Whether `bytes` is exactly the ASCII text `-?[0-9]+`, the way `increment` stores a
    /// counter on every backend.
    pub(crate) fn is_decimal_text(bytes: &[u8]) -> bool {
        let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
        !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
    }

    /// The error `decode` gives for decimal text: the format could read it, but as a
    /// different number (`example`), so it refuses instead.
    pub(crate) fn decimal_text_error(
        serializer: &'static str,
        format: &str,
        example: &str,
    ) -> Error {
        Error::serialization(format!(
            "stored bytes are decimal text (a counter written by `increment`), which {format} \
             cannot read unambiguously ({example}); read counters with `Cache::get_counter`, \
             or use the Json or Utf8 serializer"
        ))
        .with_context("serializer", serializer)
    }

    #[cfg(test)]
    mod tests {
        use super::is_decimal_text;

        #[test]
        fn recognises_exactly_optionally_signed_ascii_digits() {
            for yes in [&b"0"[..], b"6", b"-12", b"1234567", b"-0", b"007"] {
                assert!(is_decimal_text(yes), "{yes:?}");
            }
            for no in [
                &b""[..],
                b"-",
                b"+1",
                b"1-",
                b"--1",
                b" 1",
                b"1 ",
                b"1.5",
                b"\x36\x00",
            ] {
                assert!(!is_decimal_text(no), "{no:?}");
            }
        }
    }
}

/// Checks shared by the tests of every binary serializer.
#[cfg(all(test, any(feature = "msgpack", feature = "cbor")))]
mod test_support {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use cache_core::{ErrorKind, Serializer};
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    use crate::counter::is_decimal_text;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        score: f64,
        tags: Vec<String>,
        parent: Option<Box<Sample>>,
        counts: BTreeMap<String, i64>,
        kind: Kind,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Plain,
        Sized(u32),
        Shaped { w: i16, h: i16 },
    }

    fn sample() -> Sample {
        let child = Sample {
            id: 1,
            name: "child".into(),
            score: -0.5,
            tags: vec![],
            parent: None,
            counts: BTreeMap::new(),
            kind: Kind::Shaped { w: -3, h: 4 },
        };
        Sample {
            id: u64::MAX,
            name: "grüße 🦀".into(),
            score: 1.5e300,
            tags: vec!["a".into(), String::new(), "c".repeat(40)],
            parent: Some(Box::new(child)),
            counts: BTreeMap::from([("x".into(), -1), ("y".into(), i64::MIN)]),
            kind: Kind::Sized(54),
        }
    }

    #[track_caller]
    fn round_trip<S: Serializer, T>(s: &S, value: &T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let bytes = s.encode(value).unwrap();
        assert!(!is_decimal_text(&bytes), "{value:?} -> {bytes:02x?}");
        assert_eq!(&s.decode::<T>(&bytes).unwrap(), value, "{bytes:02x?}");
    }

    pub(crate) fn round_trips<S: Serializer>(s: &S) {
        round_trip(s, &sample());
        round_trip(s, &vec![sample(); 3]);
        round_trip(s, &String::new());
        round_trip(s, &"6".to_owned());
        round_trip(s, &"-12".to_owned());
        round_trip(s, &true);
        round_trip(s, &'x');
        round_trip(s, &1.5_f64);
        round_trip(s, &f64::NEG_INFINITY);
        round_trip(s, &-0.0_f32);
        round_trip(s, &vec![0_u8, 48, 54, 255]);
        round_trip(s, &(1_u8, "two".to_owned(), [3_i8; 3]));
        round_trip(s, &Kind::Plain);
        round_trip(s, &());
        // A stored `None` is a value (null); the cache, not the format, tells it from a miss.
        round_trip(s, &None::<u32>);
        round_trip(s, &Some(54_u32));
        round_trip(
            s,
            &serde_json::json!({"a": [1, -2, 3.5, null, true, "x"], "b": {"c": 54}}),
        );
    }

    pub(crate) fn integers_round_trip<S: Serializer>(s: &S) {
        for n in -1000_i64..=1000 {
            round_trip(s, &n);
            if let Ok(n) = i32::try_from(n) {
                round_trip(s, &n);
            }
            if let Ok(n) = i16::try_from(n) {
                round_trip(s, &n);
            }
            if let Ok(n) = u16::try_from(n) {
                round_trip(s, &n);
            }
            if let Ok(n) = i8::try_from(n) {
                round_trip(s, &n);
            }
            if let Ok(n) = u8::try_from(n) {
                round_trip(s, &n);
            }
        }
        for n in [
            i64::MIN,
            i64::MIN + 1,
            -4_294_967_296,
            i64::from(i32::MIN),
            i64::MAX,
        ] {
            round_trip(s, &n);
        }
        for n in [u64::MAX, u64::MAX - 1, 4_294_967_296, u64::from(u32::MAX)] {
            round_trip(s, &n);
        }
        for n in [i32::MIN, i32::MAX] {
            round_trip(s, &n);
        }
    }

    pub(crate) fn counter_text_is_refused<S: Serializer>(s: &S) {
        for text in [
            &b"6"[..],
            b"0",
            b"-12",
            b"1234567",
            b"-9223372036854775808",
            b"85",
        ] {
            for err in [
                s.decode::<i64>(text).unwrap_err(),
                s.decode::<serde_json::Value>(text).unwrap_err(),
                s.decode::<String>(text).unwrap_err(),
            ] {
                assert_eq!(err.kind(), ErrorKind::Serialization);
                assert_eq!(err.context_value("serializer"), Some(s.name()));
                let message = err.message();
                assert!(message.contains("decimal text"), "{message}");
                assert!(message.contains("increment"), "{message}");
                assert!(message.contains("Cache::get_counter"), "{message}");
            }
        }
    }

    /// `open` is a one-element array header, `leaf` a null.
    pub(crate) fn deep_nesting_is_refused<S: Serializer>(s: &S, open: u8, leaf: u8) {
        let nested = |depth: usize| {
            let mut bytes = vec![open; depth];
            bytes.push(leaf);
            bytes
        };
        assert!(s.decode::<serde_json::Value>(&nested(200)).is_ok());
        for depth in [300, 1_000, 100_000] {
            let err = s.decode::<serde_json::Value>(&nested(depth)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization);
        }
    }

    /// Tiny xorshift64 generator: deterministic, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Decodes `bytes` into several targets: each gives a value or a `Serialization` error.
    fn decode_anything<S: Serializer>(s: &S, bytes: &[u8]) {
        fn check<S: Serializer, T: DeserializeOwned>(s: &S, bytes: &[u8]) -> bool {
            match s.decode::<T>(bytes) {
                Ok(_) => true,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Serialization, "{bytes:02x?}: {e}");
                    false
                }
            }
        }
        let decoded = [
            check::<S, serde_json::Value>(s, bytes),
            check::<S, Sample>(s, bytes),
            check::<S, Option<Sample>>(s, bytes),
            check::<S, String>(s, bytes),
            check::<S, i64>(s, bytes),
            check::<S, u8>(s, bytes),
            check::<S, f64>(s, bytes),
            check::<S, Vec<u8>>(s, bytes),
            check::<S, BTreeMap<String, i64>>(s, bytes),
            check::<S, Kind>(s, bytes),
        ];
        if is_decimal_text(bytes) {
            assert!(
                !decoded.contains(&true),
                "decimal text decoded: {bytes:02x?}"
            );
        }
    }

    pub(crate) fn garbage_is_refused<S: Serializer>(s: &S, seed: u64) {
        let mut rng = XorShift(seed);

        // Random byte strings, mostly short.
        for _ in 0..4_000 {
            let len = rng.below(48);
            let bytes = rng.bytes(len);
            decode_anything(s, &bytes);
        }

        // Every truncation of a real value: a strict prefix of one value is never a value.
        let valid = s.encode(&sample()).unwrap();
        for cut in 0..valid.len() {
            let prefix = &valid[..cut];
            assert!(s.decode::<Sample>(prefix).is_err(), "prefix of {cut} bytes");
            assert!(
                s.decode::<serde_json::Value>(prefix).is_err(),
                "prefix of {cut} bytes"
            );
            decode_anything(s, prefix);
        }

        // A real value with a few bytes changed, cut short or extended.
        for _ in 0..2_000 {
            let mut bytes = valid.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            match rng.below(3) {
                0 => bytes.truncate(rng.below(bytes.len() + 1)),
                1 => {
                    let extra = rng.below(4);
                    bytes.extend(rng.bytes(extra));
                }
                _ => {}
            }
            decode_anything(s, &bytes);
        }
    }
}
