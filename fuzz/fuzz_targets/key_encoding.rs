//! Fuzzes key building and the memcached key encoding.
//!
//! The input is split into two `(namespace, key)` pairs: byte 0 holds flags (which pair has a
//! namespace, which aiocache flavor to try), bytes 1..7 three little-endian `u16` lengths of
//! the first namespace, the first key and the second namespace; the second key is the rest.
//! Parts are read as lossy UTF-8. Nothing may panic. Properties checked:
//!
//! - `DefaultKeyBuilder` is injective over namespaced pairs, puts every key of a namespace
//!   behind that namespace's prefix and no key of another namespace behind it, and leaves
//!   keys without a namespace unchanged;
//! - `AiocacheKeyBuilder` builds aiocache's documented formats and refuses spaces in
//!   memcached-flavored keys;
//! - the memcached encoding of any built key is at most 250 bytes of printable ASCII without
//!   spaces (non-empty unless the key is empty), is injective, and never equals the key of a
//!   namespace generation record.

#![no_main]

use std::borrow::Cow;

use cache_core::{AiocacheFlavor, AiocacheKeyBuilder, DefaultKeyBuilder, KeyBuilder};
use cache_memcached::__fuzz::{encode_key, generation_key};
use libfuzzer_sys::fuzz_target;

/// Longest key memcached accepts.
const MAX_KEY_LEN: usize = 250;

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 {
        return;
    }
    let flags = data[0];
    let mut body = &data[7..];
    let mut take = |i: usize| {
        let len = usize::from(u16::from_le_bytes([data[1 + 2 * i], data[2 + 2 * i]]));
        let (part, rest) = body.split_at(len % (body.len() + 1));
        body = rest;
        String::from_utf8_lossy(part)
    };
    let ns1 = take(0);
    let key1 = take(1);
    let ns2 = take(2);
    let key2 = String::from_utf8_lossy(body);
    let ns1 = (flags & 1 != 0).then_some(&*ns1);
    let ns2 = (flags & 2 != 0).then_some(&*ns2);

    check_default(ns1, &key1, ns2, &key2);
    let flavor = match (flags >> 2) % 3 {
        0 => AiocacheFlavor::Redis,
        1 => AiocacheFlavor::Memory,
        _ => AiocacheFlavor::Memcached,
    };
    check_aiocache(flavor, ns1, &key1);
    check_aiocache(flavor, ns2, &key2);
});

fn check_default(ns1: Option<&str>, key1: &str, ns2: Option<&str>, key2: &str) {
    let kb = DefaultKeyBuilder;
    let built1 = kb
        .build(key1, ns1)
        .expect("DefaultKeyBuilder accepts every pair");
    let built2 = kb
        .build(key2, ns2)
        .expect("DefaultKeyBuilder accepts every pair");
    for (ns, key, built) in [(ns1, key1, &built1), (ns2, key2, &built2)] {
        match ns {
            None => assert_eq!(built, key, "a key without a namespace is rewritten"),
            Some(ns) => {
                let prefix = kb
                    .namespace_prefix(ns)
                    .expect("every namespace has a prefix");
                assert!(
                    built.starts_with(&prefix),
                    "{built:?} lacks its prefix {prefix:?}"
                );
                assert_eq!(&built[prefix.len()..], key, "the key part is rewritten");
            }
        }
    }
    if let (Some(a), Some(b)) = (ns1, ns2) {
        if (a, key1) != (b, key2) {
            assert_ne!(
                built1, built2,
                "({a:?}, {key1:?}) and ({b:?}, {key2:?}) collide"
            );
        }
        if a != b {
            let prefix = kb
                .namespace_prefix(a)
                .expect("every namespace has a prefix");
            assert!(
                !built2.starts_with(&prefix),
                "{built2:?} of namespace {b:?} is behind the prefix {prefix:?} of {a:?}"
            );
        }
    }

    let enc1 = check_memcached(&built1);
    let enc2 = check_memcached(&built2);
    if built1 != built2 {
        assert_ne!(enc1, enc2, "{built1:?} and {built2:?} encode alike");
    }
    for ns in [ns1, ns2].into_iter().flatten() {
        let group = kb
            .namespace_prefix(ns)
            .expect("every namespace has a prefix");
        let generation = generation_key(&group);
        assert!(
            is_memcached_key(&generation),
            "bad generation key {generation:?}"
        );
        for enc in [&enc1, &enc2] {
            assert_ne!(*enc, generation, "a user key encodes as the generation key");
        }
    }
}

/// Encodes `built`, checks the result is a key memcached takes, and returns it.
fn check_memcached(built: &str) -> String {
    let enc = encode_key(built);
    assert!(
        is_memcached_key(&enc) || (built.is_empty() && enc.is_empty()),
        "{built:?} encodes as {enc:?}, which memcached refuses"
    );
    assert_eq!(encode_key(built), enc, "the encoding is not deterministic");
    enc
}

fn is_memcached_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn check_aiocache(flavor: AiocacheFlavor, ns: Option<&str>, key: &str) {
    let kb = AiocacheKeyBuilder::new(flavor);
    let built = kb.build(key, ns);
    if flavor == AiocacheFlavor::Memcached && key.contains(' ') {
        assert!(
            built.is_err(),
            "a memcached-flavored key with a space is accepted"
        );
        return;
    }
    let built = built.expect("AiocacheKeyBuilder accepts this pair");
    let expected: Cow<'_, str> = match (ns, flavor) {
        (None, _) => Cow::Borrowed(key),
        (Some(ns), AiocacheFlavor::Redis) => Cow::Owned(format!("{ns}:{key}")),
        (Some(ns), _) => Cow::Owned(format!("{ns}{key}")),
    };
    assert_eq!(built, expected);
    if let Some(ns) = ns {
        let prefix = kb
            .namespace_prefix(ns)
            .expect("every namespace has a prefix");
        assert!(built.starts_with(&prefix));
    }
    check_memcached(&built);
}
