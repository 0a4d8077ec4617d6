//! fred keys for many keys at once, sharing one buffer.
//!
//! `Key::from(&str)` copies each key into a buffer of its own, and fred clones each key of a
//! multi-key command once more on its way to the wire; a buffer made from a `Vec` pays a
//! second allocation at its first clone. Copying the keys of one command into a single
//! buffer that is already shared makes every key a slice of it: one allocation per command,
//! and clones that only count references.

use bytes::{Bytes, BytesMut};
use fred::prelude::Key;

/// `keys` as fred keys, slices of one shared buffer.
pub(crate) fn shared_keys<'k, I>(keys: I) -> Vec<Key>
where
    I: IntoIterator<Item = &'k str>,
    I::IntoIter: Clone,
{
    let keys = keys.into_iter();
    let total: usize = keys.clone().map(str::len).sum();
    let mut buffer = BytesMut::with_capacity(total);
    for k in keys.clone() {
        buffer.extend_from_slice(k.as_bytes());
    }
    // shared from the start: slicing and cloning only count references
    let buffer: Bytes = buffer.split().freeze();
    let mut at = 0;
    keys.map(|k| {
        let key = buffer.slice(at..at + k.len());
        at += k.len();
        Key::from(key)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::shared_keys;

    #[test]
    fn each_key_is_its_own_bytes() {
        let keys = ["a", "", "ns:key", "ключ", "a"];
        let built = shared_keys(keys.iter().copied());
        let back: Vec<&[u8]> = built.iter().map(|k| k.as_bytes()).collect();
        let want: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        assert_eq!(back, want);
        assert!(shared_keys(std::iter::empty()).is_empty());
    }
}
