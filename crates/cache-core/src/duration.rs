//! Durations as people write them in URLs and config files: `250ms`, `2s`, `1.5s`, `1m`.
//!
//! Every crate of the family reads durations through this module, so a URL parameter, a TOML
//! value and an environment variable accept the same spellings:
//!
//! ```
//! use std::time::Duration;
//! use cache_core::duration;
//!
//! assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
//! assert_eq!(duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
//! assert_eq!(duration::format(Duration::from_secs(120)), "120s");
//! assert!(duration::parse("5").unwrap_err().contains("no unit"));
//! ```

use std::time::Duration;

/// Parses `250ms`, `2s`, `1.5s`, `1m`, `1h`, `500us`, `10ns` or `0`.
///
/// # Errors
/// A message saying what is wrong (no unit, an unknown unit, not a number, too large).
pub fn parse(text: &str) -> Result<Duration, String> {
    let v = text.trim();
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{v:?} has no unit; write it like 250ms, 2s or 1m"))?;
    let (number, unit) = v.split_at(split);
    let bad = || format!("{v:?} is not a duration like 250ms or 2s");
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let nanos_per_unit: u64 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("unknown unit {unit:?} in {v:?}; use ms, s, m or h")),
    };
    let nanos = if number.contains('.') {
        let f: f64 = number.parse().map_err(|_| bad())?;
        let n = (f * nanos_per_unit as f64).round();
        if !n.is_finite() || n >= u64::MAX as f64 {
            return Err(bad());
        }
        n as u64
    } else {
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(nanos_per_unit))
            .ok_or_else(bad)?
    };
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way [`parse`] reads it, in the largest exact unit: `250ms`, `2s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0".into()
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// `#[serde(with = "cache_core::duration::serde")]` for a [`Duration`] field: reads
/// `"250ms"`, `"2s"` or an integer number of milliseconds, writes `"250ms"`.
pub mod serde {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};
    use serde::ser::Serializer;

    /// Writes the duration as text (`"250ms"`).
    ///
    /// # Errors
    /// Whatever the serializer returns.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    /// Reads `"250ms"`, `"2s"` or an integer number of milliseconds.
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration like \"250ms\" or \"2s\", or milliseconds as an integer")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_millis)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
    }

    /// The same for an `Option<Duration>` field (absent or `null` is `None`; combine with
    /// `#[serde(default)]`).
    pub mod option {
        use std::time::Duration;

        use serde::de::Deserializer;
        use serde::ser::Serializer;
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize)]
        #[serde(transparent)]
        struct Text(#[serde(with = "super")] Duration);

        /// Writes `Some` as text, `None` as `null`.
        ///
        /// # Errors
        /// Whatever the serializer returns.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            d.map(Text).serialize(s)
        }

        /// Reads an optional duration.
        ///
        /// # Errors
        /// A message naming the accepted forms.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("10ns", Duration::from_nanos(10)),
            ("500us", Duration::from_micros(500)),
            ("500µs", Duration::from_micros(500)),
            ("250ms", Duration::from_millis(250)),
            ("2s", Duration::from_secs(2)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m", Duration::from_secs(60)),
            ("2min", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 3s ", Duration::from_secs(3)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for text in [
            "",
            "5",
            "ms",
            "1.s",
            ".5s",
            "1x",
            "-1s",
            "1e3ms",
            "99999999999999999999s",
        ] {
            assert!(parse(text).is_err(), "{text} parsed");
        }
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("5d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(7),
            Duration::from_micros(3),
            Duration::from_millis(250),
            Duration::from_secs(90),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }

    #[test]
    fn serde_reads_text_and_milliseconds() {
        #[derive(::serde::Deserialize, ::serde::Serialize, Debug, PartialEq)]
        struct C {
            #[serde(with = "super::serde")]
            a: Duration,
            #[serde(with = "super::serde::option", default)]
            b: Option<Duration>,
        }
        let c: C = serde_json::from_str(r#"{"a":"250ms","b":1500}"#).unwrap();
        assert_eq!(c.a, Duration::from_millis(250));
        assert_eq!(c.b, Some(Duration::from_millis(1500)));
        let c: C = serde_json::from_str(r#"{"a":5}"#).unwrap();
        assert_eq!(c.b, None);
        assert_eq!(
            serde_json::to_string(&C {
                a: Duration::from_secs(2),
                b: None
            })
            .unwrap(),
            r#"{"a":"2s","b":null}"#
        );
        let e = serde_json::from_str::<C>(r#"{"a":"5"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no unit"), "{e}");
        let e = serde_json::from_str::<C>(r#"{"a":-5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
    }
}
