//! Durations as people write them in URLs and config files: `250ms`, `2s`, `1.5s`, `1m`,
//! `7d`, and compounds such as `1h30m`.
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
//! assert_eq!(duration::parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
//! assert_eq!(duration::parse("1h30m"), Ok(Duration::from_secs(5_400)));
//! assert_eq!(duration::format(Duration::from_secs(120)), "120s");
//! assert!(duration::parse("5").unwrap_err().contains("no unit"));
//! ```

use std::time::Duration;

/// The units [`parse`] reads, largest first, with their length in nanoseconds.
const UNITS: [(&[&str], u64); 7] = [
    (&["d"], 86_400_000_000_000),
    (&["h"], 3_600_000_000_000),
    (&["m", "min"], 60_000_000_000),
    (&["s"], 1_000_000_000),
    (&["ms"], 1_000_000),
    (&["us", "µs"], 1_000),
    (&["ns"], 1),
];

/// Parses a duration: `0`, or one or more `<number><unit>` parts, largest unit first.
///
/// Units: `d` (days of 24 hours), `h`, `m` or `min`, `s`, `ms`, `us` or `µs`, `ns`. A number
/// is decimal digits with an optional fraction (`1.5s`). Parts may be written together
/// (`1h30m`, `2d12h`, `1m30.5s`) or separated by spaces (`1h 30m`); each unit appears at most
/// once, in decreasing order. Leading and trailing spaces are ignored.
///
/// A number without a unit (`5`, `1h30`) is refused rather than guessed: seconds and
/// milliseconds are both common, and a wrong guess is off by a factor of a thousand.
///
/// # Errors
/// A message saying what is wrong: no unit, an unknown unit, units repeated or out of order,
/// not a number, or too large (more than `u64::MAX` nanoseconds, about 584 years).
pub fn parse(text: &str) -> Result<Duration, String> {
    let v = text.trim();
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("{v:?} is not a duration like 250ms, 2s or 1h30m");
    if v.is_empty() {
        return Err(bad());
    }
    let mut rest = v;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit read: the next one must be smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(if after.is_empty() && !number.is_empty() {
                format!("{v:?} has no unit; write it like 250ms, 2s, 1m or 1h30m")
            } else {
                bad()
            });
        }
        if number.is_empty()
            || number.starts_with('.')
            || number.ends_with('.')
            || number.matches('.').count() > 1
        {
            return Err(bad());
        }
        let Some(index) = UNITS.iter().position(|(names, _)| names.contains(&unit)) else {
            return Err(format!(
                "unknown unit {unit:?} in {v:?}; use d, h, m, s, ms, us or ns"
            ));
        };
        if last.is_some_and(|l| index <= l) {
            return Err(format!(
                "{v:?} repeats a unit or has them out of order; write the largest first, \
                 each once, like 1h30m"
            ));
        }
        last = Some(index);
        let nanos_per_unit = UNITS[index].1;
        let nanos = if number.contains('.') {
            let f: f64 = number.parse().map_err(|_| bad())?;
            let n = (f * nanos_per_unit as f64).round();
            if !n.is_finite() || n >= u64::MAX as f64 {
                return Err(too_large(v));
            }
            n as u64
        } else {
            number
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(nanos_per_unit))
                .ok_or_else(|| too_large(v))?
        };
        total = total.checked_add(nanos).ok_or_else(|| too_large(v))?;
        rest = after.trim_start();
    }
    Ok(Duration::from_nanos(total))
}

fn too_large(v: &str) -> String {
    format!("{v:?} is too large for a duration (at most about 584 years)")
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
            ("7d", Duration::from_secs(7 * 86_400)),
            ("0.5d", Duration::from_secs(43_200)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn reads_compound_durations_largest_unit_first() {
        for (text, want) in [
            ("1h30m", Duration::from_secs(5_400)),
            ("1h 30m", Duration::from_secs(5_400)),
            ("2d12h", Duration::from_secs(2 * 86_400 + 12 * 3_600)),
            ("1d1h1m1s", Duration::from_secs(86_400 + 3_600 + 61)),
            ("1m30.5s", Duration::from_millis(90_500)),
            ("2min5s", Duration::from_secs(125)),
            ("1s500ms", Duration::from_millis(1_500)),
            ("1ms250us", Duration::from_micros(1_250)),
            ("1us5ns", Duration::from_nanos(1_005)),
            ("1.5h15m", Duration::from_secs(6_300)),
            (" 1h  30m ", Duration::from_secs(5_400)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_repeated_or_unordered_units() {
        for text in ["30m1h", "1h1h", "1m1min", "1s1m", "5ms1s", "1d2d"] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("out of order"), "{text}: {e}");
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
            "1h30",
            "1h 30",
            "1h-30m",
            "1..5s",
            "1.2.3s",
            "h1",
            "1 h",
            "1h,30m",
            "1y",
            "213504d",
            "5 5s",
        ] {
            assert!(parse(text).is_err(), "{text} parsed");
        }
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("1h30").unwrap_err().contains("no unit"));
        assert!(parse("5y").unwrap_err().contains("unknown unit"));
        assert!(parse("213504d").unwrap_err().contains("too large"));
        // the largest duration parse reads: u64::MAX nanoseconds
        assert_eq!(
            parse("213503d23h34m33s709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
        assert!(parse("213503d23h34m33s709551616ns").is_err());
    }

    #[test]
    fn never_panics_on_any_text() {
        let pieces = [
            "0",
            "1",
            "9",
            ".",
            "d",
            "h",
            "m",
            "min",
            "s",
            "ms",
            "us",
            "µs",
            "ns",
            " ",
            "x",
            "-",
            "18446744073709551615",
            "1e9",
        ];
        // every sequence of up to three pieces
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let text = format!("{a}{b}{c}");
                    if let Ok(d) = parse(&text) {
                        assert!(d.as_nanos() <= u128::from(u64::MAX), "{text}");
                    }
                }
            }
        }
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
