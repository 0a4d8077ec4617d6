//! From built keys to the keys memcached stores: an injective encoding.
//!
//! Memcached keys are at most 250 bytes of printable ASCII without spaces. A built key that is
//! such a key, and whose *rest* (the text after its first `:`, or the whole key when it has no
//! `:`) does not start with `#`, is sent as it is. Every other key is sent as
//! `{group}#h{sha256 hex}` — the hash of the whole key, behind the key's *group* (its text up to
//! and including the first `:`) when that group is itself printable and short enough, else
//! behind nothing.
//!
//! Why this is injective: a verbatim key's rest never starts with `#`, an encoded key's rest
//! always does, so the two sets are disjoint; two encoded keys are equal only if their SHA-256
//! digests are. Keys of internal records (namespace generations) use the `#g` marker, which no
//! user key can produce. Characters are never rewritten.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Longest key memcached accepts.
pub(crate) const MAX_KEY_LEN: usize = 250;
/// Marks a hashed user key.
const HASHED: &str = "#h";
/// Marks a namespace generation record.
const GENERATION: &str = "#g";
/// Hex digits of a SHA-256 digest.
const DIGEST_HEX: usize = 64;

/// Whether every byte is printable ASCII other than space (what memcached and the client's
/// response parser accept in a key).
#[inline]
fn is_plain(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

/// The memcached key for `key`: `key` itself when memcached can hold it unchanged, else its
/// hashed form (see the module docs).
#[inline]
pub(crate) fn encode(key: &str) -> Cow<'_, str> {
    let bytes = key.as_bytes();
    if bytes.len() > MAX_KEY_LEN {
        return Cow::Owned(hashed(key));
    }
    // one pass over the bytes, without early exits (the loop vectorizes): every byte
    // printable, and whether any is a `#`
    let (mut plain, mut marks) = (true, false);
    for &b in bytes {
        plain &= b.wrapping_sub(0x21) <= 0x7e - 0x21;
        marks |= b == b'#';
    }
    if plain && !(marks && rest_is_marked(key)) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(hashed(key))
    }
}

/// Whether the key's rest starts with `#` (reserved for encoded and internal keys); asked only
/// of keys that hold a `#`.
#[inline]
fn rest_is_marked(key: &str) -> bool {
    let rest = match key.find(':') {
        Some(i) => &key[i + 1..],
        None => key,
    };
    rest.starts_with('#')
}

fn hex_digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(DIGEST_HEX);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The group kept in front of a hashed key, if it is printable and leaves room for the marker
/// and digest.
fn kept_group(group: &str) -> &str {
    if group.len() + 2 + DIGEST_HEX <= MAX_KEY_LEN && is_plain(group.as_bytes()) {
        group
    } else {
        ""
    }
}

fn hashed(key: &str) -> String {
    let prefix = kept_group(cache_core::generations::group(key).unwrap_or(""));
    let digest = hex_digest(&[key.as_bytes()]);
    let mut out = String::with_capacity(prefix.len() + 2 + DIGEST_HEX);
    out.push_str(prefix);
    out.push_str(HASHED);
    out.push_str(&digest);
    out
}

/// The memcached key of the generation counter of `group` (which ends with `:`).
pub(crate) fn generation_key(group: &str) -> String {
    let kept = kept_group(group);
    if kept.len() == group.len() {
        format!("{group}{GENERATION}")
    } else {
        // the digest input is tagged so it never equals a user key's digest input by design
        format!(
            "{GENERATION}{}",
            hex_digest(&[b"generation\0", group.as_bytes()])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_memcached_key(k: &str) -> bool {
        !k.is_empty() && k.len() <= MAX_KEY_LEN && is_plain(k.as_bytes())
    }

    #[test]
    fn plain_keys_pass_unchanged() {
        for k in [
            "users:42",
            "a",
            "ns:b:c",
            "x#y",
            "ns:a#b",
            "%3A:k",
            "k".repeat(250).as_str(),
        ] {
            assert_eq!(encode(k), Cow::Borrowed(k));
        }
    }

    #[test]
    fn unfit_keys_are_hashed_behind_their_group() {
        let long = format!("users:{}", "k".repeat(300));
        let e = encode(&long);
        assert!(e.starts_with("users:#h"), "{e}");
        assert_eq!(e.len(), "users:#h".len() + 64);
        let spaced = encode("users:a b");
        assert!(spaced.starts_with("users:#h"));
        let no_group = encode("a b");
        assert!(no_group.starts_with("#h"));
        let unicode = encode("users:ü");
        assert!(unicode.starts_with("users:#h"));
        let long_group = format!("{}:x y", "n".repeat(200));
        assert!(encode(&long_group).starts_with("#h"));
        let spaced_group = encode("a b:c");
        assert!(spaced_group.starts_with("#h"));
        for k in [&*long, "users:a b", "a b", "users:ü", &*long_group, "a b:c"] {
            assert!(valid_memcached_key(&encode(k)), "{k}");
        }
    }

    #[test]
    fn reserved_marker_keys_are_hashed() {
        assert!(encode("ns:#h00").starts_with("ns:#h"));
        assert_ne!(encode("ns:#h00"), "ns:#h00");
        assert!(encode("#gfoo").starts_with("#h"));
        assert_eq!(encode("ns:x#g"), "ns:x#g");
    }

    #[test]
    fn encoding_is_injective_on_lookalikes() {
        let long = "k".repeat(251);
        let inputs = [
            "a b",
            "a_b",
            "a\tb",
            "a\nb",
            "a\rb",
            "a\u{0}b",
            "a\u{7f}b",
            "ns:a b",
            "ns:a_b",
            "ns:#h",
            "ns:",
            ":",
            long.as_str(),
            &long[..250],
        ];
        let mut seen = HashSet::new();
        for k in inputs {
            let e = encode(k).into_owned();
            assert!(seen.insert(e.clone()), "collision for {k:?}: {e}");
        }
        // an encoded key, fed back as a user key, is hashed again rather than kept
        let e = encode("ns:a b").into_owned();
        assert_ne!(encode(&e), Cow::Borrowed(e.as_str()));
    }

    #[test]
    fn generation_keys_never_equal_user_keys() {
        let g = generation_key("users:");
        assert_eq!(g, "users:#g");
        for k in ["users:#g", "users:", "users:0.x"] {
            assert_ne!(encode(k), g.as_str());
        }
        let long = format!("{}:", "n".repeat(240));
        let g = generation_key(&long);
        assert!(g.starts_with("#g") && valid_memcached_key(&g));
    }
}
