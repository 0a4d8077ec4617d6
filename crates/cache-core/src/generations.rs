//! Namespace generations: the layout the backends share for a `clear()` of constant cost.
//!
//! A backend with namespace generations on keeps one counter per key *group* — a built key's
//! text up to and including its first `:`, which is the namespace prefix of the default key
//! builder — and stores every key of the group with the group's current generation folded in
//! after the group. `clear()` of the namespace increments the counter: one atomic command,
//! whatever the number of keys; every key of the old generation becomes unreachable at once
//! and is reclaimed by its TTL, by eviction or by a background sweep.
//!
//! A counter that is missing (never made, evicted, flushed, lost with its server) is made
//! with a random value below 2^62 ([`initial_generation`]), so a lost counter never brings
//! back the keys of an earlier generation: the namespace reads as empty from then on.
//!
//! Keys without a `:` have no group and are stored as they are; `clear()` of a namespace
//! whose prefix is not a group (a custom key builder's) is refused by such a backend.
//!
//! How each backend spells a folded key, and how a read learns the generation, is in its
//! documentation and in the design record `docs/rfcs/0009-namespace-generations.md`.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

/// The group of `key`: its text up to and including the first `:`, if it has one.
///
/// ```
/// use cache_core::generations::group;
/// assert_eq!(group("users:42:profile"), Some("users:"));
/// assert_eq!(group("plain"), None);
/// ```
#[inline]
pub fn group(key: &str) -> Option<&str> {
    key.find(':').map(|i| &key[..=i])
}

/// Whether a namespace prefix has the shape of a group (ends with its only `:`), so that
/// clearing the namespace can be one generation bump.
///
/// ```
/// use cache_core::generations::is_group;
/// assert!(is_group("users:"));
/// assert!(!is_group("a:b:"));
/// assert!(!is_group("custom|ns|"));
/// ```
#[inline]
pub fn is_group(prefix: &str) -> bool {
    prefix.ends_with(':') && prefix.find(':') == Some(prefix.len() - 1)
}

/// `key` (whose group is its first `group_len` bytes) with `generation` folded in:
/// `{group}{generation}.{rest}`, the group wrapped in `open` and `close` (a Redis Cluster hash
/// tag: `"{"` and `"}"`; nothing: `""` and `""`).
///
/// ```
/// use cache_core::generations::fold;
/// assert_eq!(fold("users:42", 6, 17, "", ""), "users:17.42");
/// assert_eq!(fold("users:42", 6, 17, "{", "}"), "{users:}17.42");
/// ```
pub fn fold(key: &str, group_len: usize, generation: u64, open: &str, close: &str) -> String {
    let (group, rest) = key.split_at(group_len);
    let mut out = String::with_capacity(key.len() + open.len() + close.len() + 21);
    out.push_str(open);
    out.push_str(group);
    out.push_str(close);
    let _ = write!(out, "{generation}.");
    out.push_str(rest);
    out
}

/// The generation a folded key was stored under, given the folded prefix of its group
/// (`{open}{group}{close}`): `None` for a key of another shape.
///
/// ```
/// use cache_core::generations::generation_of;
/// assert_eq!(generation_of(b"{users:}17.42", b"{users:}"), Some(17));
/// assert_eq!(generation_of(b"{users:}#g", b"{users:}"), None);
/// ```
pub fn generation_of(stored: &[u8], folded_group: &[u8]) -> Option<u64> {
    let rest = stored.strip_prefix(folded_group)?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let digits = &rest[..dot];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A random starting generation in `1..2^62`, so that increments never wrap.
pub fn initial_generation() -> u64 {
    let mut h = std::hash::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    (h.finish() >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_round_trips_its_generation() {
        for (open, close) in [("", ""), ("{", "}")] {
            let folded = fold("ns:a.b:c", 3, 12345, open, close);
            let prefix = format!("{open}ns:{close}");
            assert_eq!(
                generation_of(folded.as_bytes(), prefix.as_bytes()),
                Some(12345)
            );
            assert!(folded.ends_with(".a.b:c"));
        }
        assert_eq!(generation_of(b"{ns:}x.1", b"{ns:}"), None);
        assert_eq!(generation_of(b"{ns:}.1", b"{ns:}"), None);
        assert_eq!(generation_of(b"{other:}1.1", b"{ns:}"), None);
        assert_eq!(
            generation_of(b"{ns:}99999999999999999999999.x", b"{ns:}"),
            None
        );
    }

    #[test]
    fn initial_generations_differ_and_leave_headroom() {
        let a = initial_generation();
        let b = initial_generation();
        assert_ne!(a, b);
        assert!((1..1 << 62).contains(&a) && (1..1 << 62).contains(&b));
    }
}
