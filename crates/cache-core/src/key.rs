//! Key building: how a (namespace, key) pair becomes the key a backend stores.

use std::borrow::Cow;
use std::fmt::Debug;

use crate::{Error, Result};

/// Builds backend keys from user keys and namespaces.
///
/// A builder must be injective over the pairs it accepts: two different
/// `(namespace, key)` pairs never give one backend key. It may refuse a pair with
/// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) instead.
pub trait KeyBuilder: Send + Sync + Debug + 'static {
    /// The backend key for `key` in `namespace` (`None`: no namespace; the cache has already
    /// resolved per-call overrides and turned an empty namespace into `None`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) for a pair this
    /// builder cannot represent.
    fn build<'a>(&self, key: &'a str, namespace: Option<&str>) -> Result<Cow<'a, str>>;

    /// A prefix that every key built in `namespace` starts with and no key of another
    /// namespace does, so that `clear` can remove exactly that namespace. `None` if the
    /// builder cannot promise one (then `clear` of a namespace is unsupported).
    fn namespace_prefix(&self, namespace: &str) -> Option<String>;
}

/// The default key format: `{namespace}:{key}`, or `key` when there is no namespace.
///
/// The namespace part is escaped so that the format stays injective: `%` becomes `%25` and
/// `:` becomes `%3A` (so the namespace ends at the first `:`). Keys are never rewritten.
/// Namespaces without `:` or `%` — the usual case — are stored exactly as written.
///
/// Keys without a namespace are stored verbatim, so a cache with no namespace sees the whole
/// keyspace, including the keys of namespaced caches; that is intended.
///
/// ```
/// use cache_core::{DefaultKeyBuilder, KeyBuilder};
///
/// let kb = DefaultKeyBuilder;
/// assert_eq!(kb.build("42", Some("users")).unwrap(), "users:42");
/// assert_eq!(kb.build("b:c", Some("a")).unwrap(), "a:b:c");
/// assert_eq!(kb.build("c", Some("a:b")).unwrap(), "a%3Ab:c");
/// assert_eq!(kb.build("42", None).unwrap(), "42");
/// assert_eq!(kb.namespace_prefix("users").unwrap(), "users:");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultKeyBuilder;

/// Whether `bytes` holds a `:` or a `%`, eight bytes at a time: this runs for every key a
/// cache builds.
fn has_colon_or_percent(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // exact as a yes/no: some byte of `v` is zero
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let v = u64::from_le_bytes(w);
        if has_zero(v ^ (ONES * u64::from(b':'))) || has_zero(v ^ (ONES * u64::from(b'%'))) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b == b':' || b == b'%')
}

fn escape_namespace(ns: &str) -> Cow<'_, str> {
    if !has_colon_or_percent(ns.as_bytes()) {
        return Cow::Borrowed(ns);
    }
    let mut out = String::with_capacity(ns.len() + 8);
    for c in ns.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

impl KeyBuilder for DefaultKeyBuilder {
    fn build<'a>(&self, key: &'a str, namespace: Option<&str>) -> Result<Cow<'a, str>> {
        match namespace {
            None => Ok(Cow::Borrowed(key)),
            Some(ns) => {
                let ns = escape_namespace(ns);
                let mut out = String::with_capacity(ns.len() + 1 + key.len());
                out.push_str(&ns);
                out.push(':');
                out.push_str(key);
                Ok(Cow::Owned(out))
            }
        }
    }

    fn namespace_prefix(&self, namespace: &str) -> Option<String> {
        Some(format!("{}:", escape_namespace(namespace)))
    }
}

/// Which of aiocache's key formats [`AiocacheKeyBuilder`] reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AiocacheFlavor {
    /// aiocache's `RedisCache`: `ns:key`, or `key` without a namespace.
    Redis,
    /// aiocache's `SimpleMemoryCache`: `nskey` (plain concatenation).
    Memory,
    /// aiocache's `MemcachedCache`: `nskey`. aiocache also rewrites spaces to `_`, which is
    /// not injective; this builder refuses namespaces and keys with spaces instead, and every
    /// key the memcached backend could not store as it is (over 250 bytes, characters outside
    /// printable ASCII, `#` right after the first `:`), so that the key stored is always the
    /// key aiocache reads. Namespace generations change every stored key: do not combine them
    /// with this format (`stratacache` refuses the combination).
    Memcached,
}

/// Reproduces the keys aiocache 0.12 builds, so a Rust service can share a Redis or
/// Memcached server with a Python aiocache service.
///
/// aiocache's formats are not injective when a namespace can end where a key begins
/// (`("ab", "c")` and `("a", "bc")` with the memcached flavor); use them for interop only.
/// `clear` of a namespace removes what aiocache's own `clear(namespace)` would: every key that
/// starts with the prefix.
///
/// ```
/// use cache_core::{AiocacheFlavor, AiocacheKeyBuilder, KeyBuilder};
///
/// let redis = AiocacheKeyBuilder::new(AiocacheFlavor::Redis);
/// assert_eq!(redis.build("key", Some("test")).unwrap(), "test:key");
/// let mc = AiocacheKeyBuilder::new(AiocacheFlavor::Memcached);
/// assert_eq!(mc.build("key", Some("test")).unwrap(), "testkey");
/// assert!(mc.build("a b", Some("test")).is_err());
/// assert!(mc.build("key", Some("my test")).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiocacheKeyBuilder {
    flavor: AiocacheFlavor,
}

impl AiocacheKeyBuilder {
    /// A builder for the given aiocache backend's format.
    pub const fn new(flavor: AiocacheFlavor) -> Self {
        AiocacheKeyBuilder { flavor }
    }

    /// The format reproduced.
    pub const fn flavor(&self) -> AiocacheFlavor {
        self.flavor
    }
}

/// Longest key memcached (and aiocache's client) accepts.
const MEMCACHED_MAX_KEY: usize = 250;

/// Refuses a built memcached-flavour key that would not be stored under exactly the key
/// aiocache's `MemcachedCache` reads: aiocache rewrites spaces; the memcached backend stores
/// keys it cannot hold as they are (over 250 bytes, bytes outside printable ASCII, or text
/// after the first `:` — the whole key without one — starting with `#`, which it reserves)
/// under a hash.
fn check_memcached_key(built: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::invalid_argument(format!(
            "the aiocache memcached key format cannot share this key with aiocache: {why}"
        )))
    };
    if built.contains(' ') {
        return refuse(
            "the namespace or key holds a space, which aiocache rewrites to '_' (making two \
             keys collide)"
                .into(),
        );
    }
    if let Some(c) = built.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_ascii() {
            "a control character or whitespace"
        } else {
            "a non-ASCII character"
        };
        return refuse(format!(
            "the namespace or key holds {what}, which memcached cannot hold as it is; the \
             memcached backend would store a hash of the key"
        ));
    }
    if built.len() > MEMCACHED_MAX_KEY {
        return refuse(format!(
            "the key is {} bytes; memcached holds at most {MEMCACHED_MAX_KEY} bytes, so the \
             memcached backend would store a hash of it",
            built.len()
        ));
    }
    let rest = built.split_once(':').map_or(built, |(_, rest)| rest);
    if rest.starts_with('#') {
        return refuse(
            "its text after the first ':' (or the whole key, without one) starts with '#', \
             which the memcached backend reserves for the keys it encodes"
                .into(),
        );
    }
    Ok(())
}

impl KeyBuilder for AiocacheKeyBuilder {
    fn build<'a>(&self, key: &'a str, namespace: Option<&str>) -> Result<Cow<'a, str>> {
        let built = match (namespace, self.flavor) {
            (None, _) => Cow::Borrowed(key),
            (Some(ns), AiocacheFlavor::Redis) => Cow::Owned(format!("{ns}:{key}")),
            (Some(ns), _) => Cow::Owned(format!("{ns}{key}")),
        };
        if self.flavor == AiocacheFlavor::Memcached {
            check_memcached_key(&built)?;
        }
        Ok(built)
    }

    fn namespace_prefix(&self, namespace: &str) -> Option<String> {
        Some(match self.flavor {
            AiocacheFlavor::Redis => format!("{namespace}:"),
            _ => namespace.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_scan_finds_what_a_byte_loop_finds() {
        // every position of each byte value in strings of 1 to 24 bytes, over every filler
        for len in 1..=24usize {
            for at in 0..len {
                for b in 0..=255u8 {
                    for filler in [b'a', 0, 0x7f, 0x80, 0xff, b':' ^ 1, b'%' ^ 0x80] {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        let expected = s.iter().any(|&c| c == b':' || c == b'%');
                        assert_eq!(has_colon_or_percent(&s), expected, "{s:?}");
                    }
                }
            }
        }
        assert!(!has_colon_or_percent(b""));
    }

    #[test]
    fn default_builder_is_injective_on_tricky_pairs() {
        let kb = DefaultKeyBuilder;
        let pairs = [
            ("a:b", "c"),
            ("a", "b:c"),
            ("a%3Ab", "c"),
            ("a%", "c"),
            ("a", "%c"),
            ("", "x"),
            ("x", ""),
        ];
        let mut seen = std::collections::HashSet::new();
        for (ns, key) in pairs {
            let built = kb.build(key, Some(ns)).unwrap().into_owned();
            assert!(seen.insert(built.clone()), "collision on {built}");
            assert!(built.starts_with(&kb.namespace_prefix(ns).unwrap()));
        }
    }

    /// Every pair the memcached flavour accepts is stored under exactly the key aiocache's
    /// `MemcachedCache` reads; every other pair is refused, naming the reason.
    #[test]
    fn memcached_flavour_refuses_every_key_aiocache_would_read_elsewhere() {
        let mc = AiocacheKeyBuilder::new(AiocacheFlavor::Memcached);
        let long = "k".repeat(250);
        for (ns, key, reason) in [
            (Some("my ns"), "k", "space"),
            (Some("ns"), "a b", "space"),
            (None, "a b", "space"),
            (Some("ns"), "a\tb", "control"),
            (Some("ns\n"), "k", "control"),
            (Some("ns"), "caf\u{e9}", "non-ASCII"),
            (Some("ns"), "a\u{7f}", "control"),
            (Some("ns"), &long[..249], "250 bytes"),
            (None, &long[..], ""),
            (None, "#k", "'#'"),
            (Some("a:"), "#k", "'#'"),
            (Some("a"), ":#k", "'#'"),
        ] {
            match mc.build(key, ns) {
                Ok(built) => assert!(
                    reason.is_empty(),
                    "{ns:?} {key:?} built {built:?}, not refused for {reason}"
                ),
                Err(e) => {
                    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
                    assert!(
                        !reason.is_empty() && e.to_string().contains(reason),
                        "{ns:?} {key:?}: {e}"
                    );
                    assert!(e.to_string().contains("aiocache"), "{e}");
                }
            }
        }
        for (ns, key, built) in [
            (Some("test"), "key", "testkey"),
            (Some("a:"), "b#c", "a:b#c"),
            (Some("ns"), "#k", "ns#k"),
            (None, "k:v", "k:v"),
        ] {
            assert_eq!(mc.build(key, ns).unwrap(), built);
        }
        // the other flavours store any text
        let redis = AiocacheKeyBuilder::new(AiocacheFlavor::Redis);
        assert_eq!(redis.build("a b", Some("my ns")).unwrap(), "my ns:a b");
    }

    #[test]
    fn prefix_of_one_namespace_never_matches_another() {
        let kb = DefaultKeyBuilder;
        let p = kb.namespace_prefix("a").unwrap();
        assert!(!kb.build("x", Some("a:b")).unwrap().starts_with(&p));
        assert!(!kb.build("x", Some("ab")).unwrap().starts_with(&p));
    }
}
