//! Cache URLs: the scheme picks the backend, the cache-level query parameters (`namespace`,
//! `ttl`, `timeout`, `serializer`, `key_builder`) are taken out here, and the rest of the URL
//! goes to the backend's own parser, which refuses parameters it does not know.

use std::time::Duration;

use cache_core::{Error, Result, duration};

use crate::config::KeyFormat;
use crate::serializer::SerializerName;

/// The query parameters every scheme accepts, read by the cache rather than the backend.
pub(crate) const CACHE_PARAMS: [&str; 5] =
    ["namespace", "ttl", "timeout", "serializer", "key_builder"];

/// The schemes of the Redis backend (feature `redis`).
pub(crate) const REDIS_SCHEMES: [&str; 14] = [
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
    "redis+unix",
    "valkey",
    "valkeys",
    "valkey-cluster",
    "valkeys-cluster",
    "valkey-sentinel",
    "valkeys-sentinel",
    "valkey+unix",
];

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Memory,
    Redis { tls: bool },
    Memcached,
}

impl Scheme {
    /// The feature of `stratacache` the backend needs.
    pub(crate) const fn feature(self) -> &'static str {
        match self {
            Scheme::Memory => "memory",
            Scheme::Redis { tls: false } => "redis",
            Scheme::Redis { tls: true } => "redis-tls",
            Scheme::Memcached => "memcached",
        }
    }

    pub(crate) const fn is_available(self) -> bool {
        match self {
            Scheme::Memory => cfg!(feature = "memory"),
            Scheme::Redis { tls: false } => cfg!(feature = "redis"),
            Scheme::Redis { tls: true } => cfg!(feature = "redis-tls"),
            Scheme::Memcached => cfg!(feature = "memcached"),
        }
    }
}

/// The cache-level settings a URL carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CacheParams {
    pub(crate) namespace: Option<String>,
    pub(crate) ttl: Option<Duration>,
    /// `Some(None)`: `timeout=none` (or `0`), no deadline.
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) serializer: Option<SerializerName>,
    pub(crate) key_builder: Option<KeyFormat>,
}

/// A URL split into its backend part and its cache-level settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheUrl {
    pub(crate) scheme: Scheme,
    /// The URL without the cache-level parameters (what the backend parser reads).
    pub(crate) backend_url: String,
    pub(crate) params: CacheParams,
}

fn config_error(message: String) -> Error {
    Error::config(message)
}

/// Splits `url`. Never repeats the URL's user-info (it may hold a password) in an error: the
/// user-info, which ends at the URL's last `@`, is set aside before anything else is read.
pub(crate) fn parse(url: &str) -> Result<CacheUrl> {
    let url = url.trim();
    let Some(parts) = cache_core::url::split(url) else {
        return Err(config_error(format!(
            "a cache URL starts with a scheme, like memory://, redis://host:6379 or \
             memcached://host:11211; {}",
            if url.contains(':') {
                "`://` is missing"
            } else {
                "this one has none"
            }
        )));
    };
    let (scheme_text, rest) = (parts.scheme, parts.rest);
    let lower = scheme_text.to_ascii_lowercase();
    let scheme = if lower == "memory" {
        Scheme::Memory
    } else if REDIS_SCHEMES.contains(&lower.as_str()) {
        Scheme::Redis {
            tls: lower.starts_with("rediss") || lower.starts_with("valkeys"),
        }
    } else if lower == "memcached" {
        Scheme::Memcached
    } else {
        return Err(config_error(format!(
            "unknown cache URL scheme {:?}; expected memory://, memcached:// or one of {}://",
            truncate(scheme_text),
            REDIS_SCHEMES.join("://, ")
        )));
    };
    if !scheme.is_available() {
        let feature = scheme.feature();
        return Err(config_error(format!(
            "the {lower}:// scheme needs the `{feature}` feature of stratacache \
             (features = [\"{feature}\"] in Cargo.toml)"
        )));
    }
    if rest.contains('#') {
        return Err(config_error(
            "a fragment (#...) has no meaning in a cache URL; percent-encode a `#` in a \
             query value as %23"
                .into(),
        ));
    }
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let mut params = CacheParams::default();
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !CACHE_PARAMS.contains(&key) {
            kept.push(pair);
            continue;
        }
        let value = percent_decode(value)
            .map_err(|m| config_error(format!("URL parameter `{key}`: {m}")))?;
        set_param(&mut params, key, &value)?;
    }
    let mut backend_url = match parts.userinfo {
        Some(userinfo) => format!("{scheme_text}://{userinfo}@{base}"),
        None => format!("{scheme_text}://{base}"),
    };
    if !kept.is_empty() {
        backend_url.push('?');
        backend_url.push_str(&kept.join("&"));
    }
    Ok(CacheUrl {
        scheme,
        backend_url,
        params,
    })
}

fn set_param(params: &mut CacheParams, key: &str, value: &str) -> Result<()> {
    let repeated = || config_error(format!("URL parameter `{key}` is given twice"));
    let bad = |m: String| config_error(format!("URL parameter `{key}`: {m}"));
    match key {
        "namespace" => {
            if params.namespace.replace(value.to_owned()).is_some() {
                return Err(repeated());
            }
        }
        "ttl" => {
            let ttl = duration::parse(value).map_err(bad)?;
            if ttl.is_zero() {
                return Err(bad(
                    "a default TTL of 0 would make every write fail; leave `ttl` out for \
                     entries that never expire"
                        .into(),
                ));
            }
            if params.ttl.replace(ttl).is_some() {
                return Err(repeated());
            }
        }
        "timeout" => {
            let timeout = if value.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(duration::parse(value).map_err(bad)?).filter(|d| !d.is_zero())
            };
            if params.timeout.replace(timeout).is_some() {
                return Err(repeated());
            }
        }
        "serializer" => {
            let name = value.parse::<SerializerName>()?;
            if params.serializer.replace(name).is_some() {
                return Err(repeated());
            }
        }
        "key_builder" => {
            let format = value.parse::<KeyFormat>()?;
            if params.key_builder.replace(format).is_some() {
                return Err(repeated());
            }
        }
        _ => unreachable!("only CACHE_PARAMS reach here"),
    }
    Ok(())
}

/// The settings of a `memory://` URL's backend part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MemoryParams {
    pub(crate) max_entries: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
}

/// Reads `memory://?max_entries=…&max_bytes=…` (after the cache-level parameters were taken
/// out).
pub(crate) fn parse_memory(backend_url: &str) -> Result<MemoryParams> {
    let parts = cache_core::url::split(backend_url);
    if parts.is_some_and(|p| p.userinfo.is_some()) {
        return Err(config_error(
            "memory:// takes no credentials; remove the user-info (everything up to the `@`)"
                .into(),
        ));
    }
    let rest = parts.map(|p| p.rest).unwrap_or_default();
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, query),
        None => (rest, ""),
    };
    if !base.is_empty() && base != "/" {
        return Err(config_error(format!(
            "memory:// takes no host or path (found {:?}); write memory:// or \
             memory://?max_entries=100000",
            truncate(base)
        )));
    }
    let mut params = MemoryParams::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "max_entries" => &mut params.max_entries,
            "max_bytes" => &mut params.max_bytes,
            _ => {
                return Err(config_error(format!(
                    "unknown memory:// parameter `{}`; expected max_entries, max_bytes, {}",
                    truncate(key),
                    CACHE_PARAMS.join(", ")
                )));
            }
        };
        let n = parse_size(value)
            .map_err(|m| config_error(format!("memory:// parameter `{key}`: {m}")))?;
        if slot.replace(n).is_some() {
            return Err(config_error(format!(
                "memory:// parameter `{key}` is given twice"
            )));
        }
    }
    Ok(params)
}

/// `1000`, `64k`, `256m`, `2g` (powers of 1024), or `_` separators: `100_000`.
pub(crate) fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim().replace('_', "");
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "{:?} is not a positive count like 100000, 64k or 256m",
                truncate(text)
            )
        })
}

/// Decodes `%XX` escapes (and `+` as a space, as in form-encoded queries).
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("invalid percent-encoding (expected %XX with two hex digits)")?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the percent-decoded value is not UTF-8".into())
}

/// At most 64 characters of user input, for messages.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// `url` for `Debug` output: the user-info and secret query values hidden (see
/// [`cache_core::url::redact`]).
pub(crate) fn redact(url: &str) -> String {
    cache_core::url::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_params_are_taken_out_and_the_rest_kept_in_order() {
        let u = parse(
            "redis://h:1/2?pool_size=4&namespace=users%2Fv1&ttl=5m&timeout=50ms\
             &protocol=resp2&serializer=msgpack&key_builder=aiocache",
        );
        if cfg!(feature = "redis") {
            let u = u.unwrap();
            assert_eq!(u.scheme, Scheme::Redis { tls: false });
            assert_eq!(u.backend_url, "redis://h:1/2?pool_size=4&protocol=resp2");
            assert_eq!(u.params.namespace.as_deref(), Some("users/v1"));
            assert_eq!(u.params.ttl, Some(Duration::from_secs(300)));
            assert_eq!(u.params.timeout, Some(Some(Duration::from_millis(50))));
            assert_eq!(u.params.serializer, Some(SerializerName::MsgPack));
            assert_eq!(u.params.key_builder, Some(KeyFormat::Aiocache));
        } else {
            assert!(u.unwrap_err().to_string().contains("`redis` feature"));
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_schemes_are_the_backends_own() {
        let mut ours: Vec<&str> = REDIS_SCHEMES.to_vec();
        let mut theirs: Vec<&str> = cache_redis::SCHEMES.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }

    /// Every Redis URL form reaches the backend's parser whole, minus the cache's parameters.
    /// (Connecting is covered against real servers in `tests/from_url.rs` and in the
    /// cache-redis tests: TLS, Unix socket, cluster.)
    #[cfg(feature = "redis")]
    #[test]
    fn every_redis_form_reaches_the_backend_parser() {
        use cache_redis::{RedisConfig, RedisMode};
        for (url, mode, tls) in [
            ("redis://u:p@h:7/2", RedisMode::Standalone, false),
            ("rediss://h", RedisMode::Standalone, true),
            ("valkey://h", RedisMode::Standalone, false),
            ("valkeys://h", RedisMode::Standalone, true),
            (
                "redis-cluster://h:1?node=h:2&node=h:3",
                RedisMode::Cluster,
                false,
            ),
            ("rediss-cluster://h:1", RedisMode::Cluster, true),
            ("valkey-cluster://h:1", RedisMode::Cluster, false),
            ("valkeys-cluster://h:1", RedisMode::Cluster, true),
            (
                "redis-sentinel://h:26379?service_name=main",
                RedisMode::Sentinel,
                false,
            ),
            (
                "rediss-sentinel://h?service_name=main",
                RedisMode::Sentinel,
                true,
            ),
            (
                "valkey-sentinel://h?service_name=main",
                RedisMode::Sentinel,
                false,
            ),
            (
                "valkeys-sentinel://h?service_name=main",
                RedisMode::Sentinel,
                true,
            ),
            ("redis+unix:///run/redis.sock", RedisMode::Unix, false),
            ("valkey+unix:///run/redis.sock", RedisMode::Unix, false),
        ] {
            let with_cache_params = if url.contains('?') {
                format!("{url}&namespace=n&ttl=1m&timeout=none")
            } else {
                format!("{url}?namespace=n&ttl=1m&timeout=none")
            };
            let parsed = parse(&with_cache_params).unwrap();
            assert_eq!(parsed.scheme, Scheme::Redis { tls }, "{url}");
            assert_eq!(parsed.backend_url, url);
            assert_eq!(parsed.params.namespace.as_deref(), Some("n"));
            let config = RedisConfig::from_url(&parsed.backend_url).unwrap();
            assert_eq!(config.mode, mode, "{url}");
            assert_eq!(config.tls, tls, "{url}");
        }
    }

    #[test]
    fn timeouts_can_be_switched_off() {
        for text in ["none", "NONE", "0"] {
            let u = parse(&format!("memory://?timeout={text}"));
            if cfg!(feature = "memory") {
                assert_eq!(u.unwrap().params.timeout, Some(None), "{text}");
            }
        }
    }

    #[test]
    fn bad_cache_params_name_the_parameter() {
        if !cfg!(feature = "memory") {
            return;
        }
        for (url, needle) in [
            ("memory://?ttl=5", "`ttl`: \"5\" has no unit"),
            ("memory://?ttl=0", "`ttl`: a default TTL of 0"),
            ("memory://?timeout=fast", "`timeout`"),
            ("memory://?serializer=yaml", "unknown serializer \"yaml\""),
            ("memory://?key_builder=weird", "unknown key builder"),
            (
                "memory://?namespace=a&namespace=b",
                "`namespace` is given twice",
            ),
            (
                "memory://?namespace=%zz",
                "`namespace`: invalid percent-encoding",
            ),
            ("memory://?max_entries=ten", "`max_entries`"),
            ("memory://?max_entries=0", "`max_entries`"),
            (
                "memory://?maxentries=10",
                "unknown memory:// parameter `maxentries`",
            ),
            ("memory://host", "memory:// takes no host"),
            ("memory://#x", "fragment"),
            ("ftp://x", "unknown cache URL scheme \"ftp\""),
            ("localhost:6379", "`://` is missing"),
            ("", "this one has none"),
        ] {
            let e = parse(url)
                .and_then(|u| parse_memory(&u.backend_url).map(|_| ()))
                .unwrap_err();
            assert_eq!(e.kind(), cache_core::ErrorKind::Config, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_size("100_000"), Ok(100_000));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("99999999999999999999g").is_err());
        if cfg!(feature = "memory") {
            let u = parse("memory://?max_entries=1000&max_bytes=64m&namespace=x").unwrap();
            assert_eq!(u.backend_url, "memory://?max_entries=1000&max_bytes=64m");
            assert_eq!(
                parse_memory(&u.backend_url).unwrap(),
                MemoryParams {
                    max_entries: Some(1000),
                    max_bytes: Some(64 << 20)
                }
            );
            assert_eq!(parse_memory("memory://").unwrap(), MemoryParams::default());
        }
    }

    #[test]
    fn errors_never_repeat_a_password() {
        for url in [
            "redis://user:s3cr3t@h:1?ttl=5",
            "redis://user:s3cr3t@h:1?namespace=%zz",
            "nosuch://user:s3cr3t@h:1",
            "redis://user:s3cr3t@h:1#frag",
        ] {
            let e = parse(url).unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
            assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
        }
    }

    /// Random printable passwords (space to `~`, as they are, `@ / ? # :` included) in every
    /// URL form of every scheme: no `Debug` of the config, no error of the cache's URL parser
    /// or of the backend's, and no `Debug` of a parsed backend config holds the password.
    #[test]
    fn no_output_of_any_url_form_holds_the_password() {
        let mut seed = 0xd1b5_4a32_d192_ed03_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut forms: Vec<String> = vec![
            "memory://user:{pw}@h".into(),
            "memcached://user:{pw}@127.0.0.1:11211?pool_size=2&namespace=n".into(),
        ];
        for scheme in REDIS_SCHEMES {
            let rest = if scheme.ends_with("+unix") {
                "/tmp/redis.sock?db=1&namespace=n"
            } else if scheme.ends_with("-cluster") {
                "h:7000?node=h2:7001&ttl=1m"
            } else if scheme.ends_with("-sentinel") {
                "s1:26379/2?service_name=main&namespace=n"
            } else {
                "h:6379/0?pool_size=2&namespace=n&timeout=50ms"
            };
            forms.push(format!("{scheme}://user:{{pw}}@{rest}"));
            // a password written in the user name's place
            forms.push(format!("{scheme}://{{pw}}@{rest}"));
        }
        for _ in 0..400 {
            let len = 8 + (next() % 24) as usize;
            let password: String = (0..len)
                .map(|_| char::from(0x20 + (next() % 95) as u8))
                .collect();
            for form in &forms {
                let url = form.replace("{pw}", &password);
                let mut shown = format!("{:?}", crate::CacheConfig::new(url.as_str()));
                shown.push_str(&redact(&url));
                match parse(&url) {
                    Err(e) => shown.push_str(&format!("{e} {e:?}")),
                    Ok(parsed) => shown.push_str(&backend_outputs(&parsed)),
                }
                assert!(
                    !shown.contains(&password),
                    "the password {password:?} of {form} shows: {shown}"
                );
            }
        }
    }

    /// What the backend's own parser shows of a URL: its error, or its config's `Debug`.
    fn backend_outputs(parsed: &CacheUrl) -> String {
        fn show<T: std::fmt::Debug>(r: Result<T>) -> String {
            match r {
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("{e} {e:?}"),
            }
        }
        match parsed.scheme {
            Scheme::Memory => show(parse_memory(&parsed.backend_url)),
            #[cfg(feature = "redis")]
            Scheme::Redis { .. } => show(cache_redis::RedisConfig::from_url(&parsed.backend_url)),
            #[cfg(feature = "memcached")]
            Scheme::Memcached => show(cache_memcached::MemcachedConfig::from_url(
                &parsed.backend_url,
            )),
            #[allow(unreachable_patterns)]
            _ => String::new(),
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("redis://user:s3cr3t@h:1/0?pool_size=2"),
            "redis://***@h:1/0?pool_size=2"
        );
        assert_eq!(redact("redis://s3cr3t@h"), "redis://***@h");
        assert_eq!(redact("redis://:p@ss@h"), "redis://***@h");
        assert_eq!(
            redact("redis://user:s3#cr/t?x@h:6379/0"),
            "redis://***@h:6379/0"
        );
        assert_eq!(
            redact("redis-sentinel://h?sentinel_password=x&db=1"),
            "redis-sentinel://h?sentinel_password=***&db=1"
        );
        assert_eq!(redact("memory://?namespace=a"), "memory://?namespace=a");
        assert_eq!(redact("no scheme"), "no scheme");
    }
}
