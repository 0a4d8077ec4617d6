//! Values that verify themselves, and the rules a reader checks them against.
//!
//! A value is the text `{key}|v{version}|n{len}|{padding}`: the key it was written under, the
//! writer's version number, and `len` bytes of padding whose every byte is a function of the
//! version and its position. [`parse`] accepts only a whole, untouched value, so a value
//! returned under another key, a truncated value or two values spliced together is caught.
//!
//! # The freshness rule
//!
//! Each key has exactly one writer, and a writer's versions only grow. For every key it writes,
//! a writer keeps ([`KeyHistory`]):
//!
//! - the **floor**: the highest version it has *confirmed* — a `set` of that version that
//!   returned `Ok`, or a read that returned it;
//! - the **ceiling**: the highest version it has *sent* — every `set` it started, including
//!   those that failed or timed out (a failed write may still have reached the server).
//!
//! A read of the key must return either a miss (a restarted server has lost its data, and a
//! cache may evict) or the key's own intact value with `floor ≤ version ≤ ceiling`. A version
//! below the floor is **stale** (an older write overtook a newer one, or an old value came
//! back); above the ceiling it is **from the future** (impossible unless values are mixed up).
//! A read that passes raises the floor to the version read.
//!
//! Another task reading the key ([`Observer`]) knows less: only the writer's published
//! ceiling, read after its own read finished, and the highest version it has itself seen.
//! It checks the same rule with that floor and ceiling.

use std::collections::HashMap;
use std::fmt;

/// The value of `key` at `version`, with `len` bytes of padding.
///
/// # Panics
/// When `key` holds a `|`.
pub fn value(key: &str, version: u64, len: usize) -> String {
    assert!(!key.contains('|'), "keys of versioned values hold no '|'");
    let mut out = format!("{key}|v{version}|n{len}|");
    out.reserve(len);
    out.extend((0..len).map(|i| pad_byte(version, i)));
    out
}

fn pad_byte(version: u64, position: usize) -> char {
    char::from(b'a' + ((version.wrapping_add(position as u64)) % 26) as u8)
}

/// A value that [`parse`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The key the value was written under.
    pub key: &'a str,
    /// The writer's version.
    pub version: u64,
}

/// The key and version of an intact value; `None` for anything [`value`] did not make
/// (truncated, spliced, altered).
pub fn parse(text: &str) -> Option<Parsed<'_>> {
    let mut parts = text.splitn(4, '|');
    let key = parts.next()?;
    let version: u64 = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let len: usize = parts.next()?.strip_prefix('n')?.parse().ok()?;
    let padding = parts.next()?;
    let intact = padding.len() == len
        && padding
            .bytes()
            .enumerate()
            .all(|(i, b)| char::from(b) == pad_byte(version, i));
    intact.then_some(Parsed { key, version })
}

/// What a read returned, judged by the freshness rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key's value at an allowed version.
    Fresh(u64),
    /// A miss.
    Miss,
    /// An intact value of another key.
    WrongKey(String),
    /// Not a value [`value`] made: truncated, spliced or altered.
    Corrupt(usize),
    /// The key's value, older than a version already confirmed.
    Stale {
        /// The version read.
        got: u64,
        /// The version already confirmed.
        floor: u64,
    },
    /// The key's value at a version never written yet.
    Future {
        /// The version read.
        got: u64,
        /// The highest version sent.
        ceiling: u64,
    },
}

impl Verdict {
    /// Whether the read broke the rule (anything but `Fresh` or `Miss`).
    pub fn is_wrong(&self) -> bool {
        !matches!(self, Verdict::Fresh(_) | Verdict::Miss)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Fresh(v) => write!(f, "fresh v{v}"),
            Verdict::Miss => f.write_str("miss"),
            Verdict::WrongKey(k) => write!(f, "a value of key {k:?}"),
            Verdict::Corrupt(len) => write!(f, "a corrupt value of {len} bytes"),
            Verdict::Stale { got, floor } => write!(f, "stale v{got}, v{floor} confirmed"),
            Verdict::Future { got, ceiling } => write!(f, "v{got}, only v{ceiling} sent"),
        }
    }
}

/// Judges `read` of `key` against `floor ≤ version ≤ ceiling`.
pub fn judge(key: &str, read: Option<&str>, floor: u64, ceiling: u64) -> Verdict {
    let Some(text) = read else {
        return Verdict::Miss;
    };
    let Some(parsed) = parse(text) else {
        return Verdict::Corrupt(text.len());
    };
    if parsed.key != key {
        return Verdict::WrongKey(parsed.key.to_owned());
    }
    if parsed.version < floor {
        Verdict::Stale {
            got: parsed.version,
            floor,
        }
    } else if parsed.version > ceiling {
        Verdict::Future {
            got: parsed.version,
            ceiling,
        }
    } else {
        Verdict::Fresh(parsed.version)
    }
}

/// A writer's knowledge of one key: see the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// Highest version confirmed (acknowledged write or read).
    pub floor: u64,
    /// Highest version sent.
    pub ceiling: u64,
}

/// The keys one writer owns and what it knows of each.
#[derive(Debug, Default)]
pub struct Writer {
    keys: HashMap<String, KeyHistory>,
}

impl Writer {
    /// A writer that has written nothing yet.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Records that a `set` of `key` at `version` is about to be sent.
    pub fn sending(&mut self, key: &str, version: u64) {
        let h = self.keys.entry(key.to_owned()).or_default();
        h.ceiling = h.ceiling.max(version);
    }

    /// Records that the `set` of `key` at `version` returned `Ok`.
    pub fn acknowledged(&mut self, key: &str, version: u64) {
        let h = self.keys.entry(key.to_owned()).or_default();
        h.floor = h.floor.max(version);
    }

    /// Judges a read of `key`; a fresh read raises the floor.
    pub fn read(&mut self, key: &str, read: Option<&str>) -> Verdict {
        let h = self.keys.entry(key.to_owned()).or_default();
        let verdict = judge(key, read, h.floor, h.ceiling);
        if let Verdict::Fresh(v) = verdict {
            h.floor = h.floor.max(v);
        }
        verdict
    }

    /// What is known of `key`.
    pub fn history(&self, key: &str) -> KeyHistory {
        self.keys.get(key).copied().unwrap_or_default()
    }
}

/// A reader of keys other tasks write: remembers the highest version seen of each.
#[derive(Debug, Default)]
pub struct Observer {
    seen: HashMap<String, u64>,
}

impl Observer {
    /// An observer that has seen nothing yet.
    pub fn new() -> Observer {
        Observer::default()
    }

    /// Judges a read of `key`, given the writer's published `ceiling` read after the read
    /// finished; a fresh read raises the version seen.
    pub fn read(&mut self, key: &str, read: Option<&str>, ceiling: u64) -> Verdict {
        let seen = self.seen.entry(key.to_owned()).or_default();
        let verdict = judge(key, read, *seen, ceiling);
        if let Verdict::Fresh(v) = verdict {
            *seen = (*seen).max(v);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back_and_damage_is_caught() {
        let v = value("t1-k2", 42, 100);
        assert_eq!(
            parse(&v),
            Some(Parsed {
                key: "t1-k2",
                version: 42
            })
        );
        assert_eq!(parse(&v[..v.len() - 1]), None, "truncated");
        let mut spliced = v.clone();
        spliced.replace_range(50..60, &value("t1-k2", 43, 100)[50..60]);
        assert_eq!(parse(&spliced), None, "bytes of another version");
        assert_eq!(parse(&format!("{v}x")), None, "extended");
        assert_eq!(parse(""), None);
        assert_eq!(parse(&value("k", 0, 0)).unwrap().version, 0);
    }

    #[test]
    fn writer_rule() {
        let mut w = Writer::new();
        assert_eq!(w.read("k", None), Verdict::Miss);
        w.sending("k", 1);
        w.acknowledged("k", 1);
        w.sending("k", 2); // failed: may or may not have landed
        assert_eq!(w.read("k", Some(&value("k", 1, 3))), Verdict::Fresh(1));
        assert_eq!(w.read("k", Some(&value("k", 2, 3))), Verdict::Fresh(2));
        assert_eq!(
            w.read("k", Some(&value("k", 1, 3))),
            Verdict::Stale { got: 1, floor: 2 }
        );
        assert_eq!(
            w.read("k", Some(&value("k", 3, 3))),
            Verdict::Future { got: 3, ceiling: 2 }
        );
        assert_eq!(
            w.read("k", Some(&value("j", 2, 3))),
            Verdict::WrongKey("j".into())
        );
        assert!(w.read("k", Some("k|v2|n3|ab")).is_wrong());
        assert_eq!(w.read("k", None), Verdict::Miss, "a miss is allowed");
        assert_eq!(
            w.history("k"),
            KeyHistory {
                floor: 2,
                ceiling: 2
            }
        );
    }

    #[test]
    fn observer_rule() {
        let mut o = Observer::new();
        assert_eq!(o.read("k", Some(&value("k", 5, 1)), 5), Verdict::Fresh(5));
        assert_eq!(
            o.read("k", Some(&value("k", 4, 1)), 6),
            Verdict::Stale { got: 4, floor: 5 }
        );
        assert_eq!(
            o.read("k", Some(&value("k", 7, 1)), 6),
            Verdict::Future { got: 7, ceiling: 6 }
        );
    }
}
