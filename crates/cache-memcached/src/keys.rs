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
    let (plain, marks) = scan(bytes);
    if plain && !(marks && rest_is_marked(key)) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(hashed(key))
    }
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of `w` is below `0x21` (control, space) or above `0x7e` (DEL, non-ASCII),
/// and whether any is `#`, eight bytes at a time. Exact: the high bit of a byte of each mask
/// is set only by a byte of `w` with the property (no borrow or carry crosses into a byte
/// whose high bit is then read, because bytes with their own high bit set are caught first).
#[inline]
fn word_flags(w: u64) -> (u64, u64) {
    // a byte below 0x21: subtracting 0x21 borrows, and the byte had no high bit
    let low = w.wrapping_sub(ONES * 0x21) & !w & HIGHS;
    // a byte above 0x7e: adding 1 reaches 0x80, or the byte had its high bit already
    let high = (w.wrapping_add(ONES) | w) & HIGHS;
    // a `#`: the byte xor 0x23 is zero
    let x = w ^ (ONES * b'#' as u64);
    let hash = x.wrapping_sub(ONES) & !x & HIGHS;
    (low | high, hash)
}

/// `(every byte is printable ASCII other than space, some byte is '#')`: [`is_plain`] and a
/// search for `#` in one pass, a word at a time.
#[inline]
fn scan(bytes: &[u8]) -> (bool, bool) {
    let (mut bad, mut hash) = (0u64, 0u64);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let (b, h) = word_flags(u64::from_ne_bytes(w.try_into().expect("8 bytes")));
        bad |= b;
        hash |= h;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let last = match bytes.len().checked_sub(8) {
            // the last eight bytes, overlapping the words already read
            Some(start) => u64::from_ne_bytes(bytes[start..].try_into().expect("8 bytes")),
            None => {
                // pad with a printable byte that is not `#`
                let mut last = [b'a'; 8];
                last[..tail.len()].copy_from_slice(tail);
                u64::from_ne_bytes(last)
            }
        };
        let (b, h) = word_flags(last);
        bad |= b;
        hash |= h;
    }
    (bad == 0, hash != 0)
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
    fn the_word_scan_agrees_with_a_byte_loop() {
        let by_bytes = |b: &[u8]| (is_plain(b), b.contains(&b'#'));
        // every byte value, at every place of keys of 1 to 17 bytes, among printable bytes
        for len in 1..=17 {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut key = vec![b'k'; len];
                    key[at] = v;
                    assert_eq!(scan(&key), by_bytes(&key), "{key:?}");
                    // next to bytes that borrow or carry
                    for n in [0x00, 0x20, 0x21, 0x22, 0x23, 0x24, 0x7e, 0x7f, 0x80, 0xff] {
                        if at + 1 < len {
                            key[at + 1] = n;
                            assert_eq!(scan(&key), by_bytes(&key), "{key:?}");
                            key[at + 1] = b'k';
                        }
                        if at > 0 {
                            key[at - 1] = n;
                            assert_eq!(scan(&key), by_bytes(&key), "{key:?}");
                            key[at - 1] = b'k';
                        }
                    }
                }
            }
        }
        assert_eq!(scan(b""), (true, false));
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
