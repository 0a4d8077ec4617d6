//! Cache URLs: the scheme picks the backend (see the `connectors` module), the
//! cache-level query parameters ([`CACHE_PARAMS`]: `namespace`, `ttl`, `timeout`,
//! `serializer`, `compression`, `key_builder`) are taken out here, and the rest of the URL goes to the
//! backend's own parser, which refuses parameters it does not know.

use std::time::Duration;

use cache_core::url::{self as core_url, CACHE_PARAMS};
use cache_core::{Error, Result, duration};

use crate::connectors::{self, Entry};
use crate::key_format::KeyFormat;
use crate::serializer::{CompressionName, SerializerName};

/// The cache-level settings a URL carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CacheParams {
    pub(crate) namespace: Option<String>,
    pub(crate) ttl: Option<Duration>,
    /// `Some(None)`: `timeout=none` (or `0`), no deadline.
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) serializer: Option<SerializerName>,
    pub(crate) compression: Option<CompressionName>,
    pub(crate) key_builder: Option<KeyFormat>,
    /// The `tier…` parameters, if any.
    pub(crate) tier: Option<crate::tier::TierConfig>,
}

/// A URL split into its backend part and its cache-level settings.
#[derive(Debug)]
pub(crate) struct CacheUrl {
    /// The backend its scheme names (its feature on).
    pub(crate) backend: &'static Entry,
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
    let Some(parts) = core_url::split(url) else {
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
    let scheme_text = parts.scheme;
    let lower = scheme_text.to_ascii_lowercase();
    let Some(backend) = Entry::find(&lower) else {
        return Err(config_error(format!(
            "unknown cache URL scheme {:?}; expected one of {}://",
            core_url::shorten(scheme_text),
            connectors::all_schemes().collect::<Vec<_>>().join("://, ")
        )));
    };
    if !backend.is_available() {
        let feature = backend.feature;
        return Err(config_error(format!(
            "the {lower}:// scheme needs the `{feature}` feature of stratacache \
             (features = [\"{feature}\"] in Cargo.toml)"
        )));
    }
    if parts.has_fragment() {
        return Err(config_error(
            "a fragment (#...) has no meaning in a cache URL; percent-encode a `#` in a \
             query value as %23"
                .into(),
        ));
    }
    let mut params = CacheParams::default();
    let mut kept: Vec<&str> = Vec::new();
    for param in core_url::Query::new(parts.query()) {
        let key = param.name;
        if crate::tier::TIER_PARAMS.contains(&key) {
            let value = core_url::decode_query_value(param.value)
                .map_err(|m| config_error(format!("URL parameter `{key}`: {m}")))?;
            if param.repeated && key != "tier_prefix" {
                return Err(config_error(format!(
                    "URL parameter `{key}` is given twice"
                )));
            }
            params
                .tier
                .get_or_insert_with(Default::default)
                .set_param(key, &value)?;
            continue;
        }
        if !CACHE_PARAMS.contains(&key) {
            kept.push(param.pair);
            continue;
        }
        let value = core_url::decode_query_value(param.value)
            .map_err(|m| config_error(format!("URL parameter `{key}`: {m}")))?;
        set_param(&mut params, key, &value)?;
        if param.repeated {
            return Err(config_error(format!(
                "URL parameter `{key}` is given twice"
            )));
        }
    }
    let base = parts.base();
    let mut backend_url = match parts.userinfo {
        Some(userinfo) => format!("{scheme_text}://{userinfo}@{base}"),
        None => format!("{scheme_text}://{base}"),
    };
    if !kept.is_empty() {
        backend_url.push('?');
        backend_url.push_str(&kept.join("&"));
    }
    Ok(CacheUrl {
        backend,
        backend_url,
        params,
    })
}

fn set_param(params: &mut CacheParams, key: &str, value: &str) -> Result<()> {
    let bad = |m: String| config_error(format!("URL parameter `{key}`: {m}"));
    match key {
        "namespace" => params.namespace = Some(value.to_owned()),
        "ttl" => {
            let ttl = duration::parse(value).map_err(bad)?;
            if ttl.is_zero() {
                return Err(bad(
                    "a default TTL of 0 would make every write fail; leave `ttl` out for \
                     entries that never expire"
                        .into(),
                ));
            }
            params.ttl = Some(ttl);
        }
        "timeout" => params.timeout = Some(core_url::parse_optional_duration(value).map_err(bad)?),
        "serializer" => params.serializer = Some(value.parse::<SerializerName>()?),
        "compression" => params.compression = Some(value.parse::<CompressionName>()?),
        "key_builder" => params.key_builder = Some(value.parse::<KeyFormat>()?),
        _ => unreachable!("only CACHE_PARAMS reach here"),
    }
    Ok(())
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
            assert_eq!(u.backend.feature, "redis");
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
            let feature = if tls { "redis-tls" } else { "redis" };
            if tls && !cfg!(feature = "redis-tls") {
                let e = parse(&with_cache_params).unwrap_err();
                assert!(e.to_string().contains("`redis-tls` feature"), "{url}: {e}");
                continue;
            }
            let parsed = parse(&with_cache_params).unwrap();
            assert_eq!(parsed.backend.feature, feature, "{url}");
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

    #[cfg(feature = "memory")]
    #[test]
    fn bad_cache_params_name_the_parameter() {
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
                .and_then(|u| cache_memory::MemoryConfig::from_url(&u.backend_url).map(|_| ()))
                .unwrap_err();
            assert_eq!(e.kind(), cache_core::ErrorKind::Config, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn memory_sizes() {
        use cache_core::url::parse_size;
        assert_eq!(parse_size("100_000"), Some(100_000));
        assert_eq!(parse_size("64k"), Some(65_536));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert!(parse_size("99999999999999999999g").is_none());
        #[cfg(feature = "memory")]
        {
            use cache_memory::MemoryConfig;
            let u = parse("memory://?max_entries=1000&max_bytes=64m&namespace=x").unwrap();
            assert_eq!(u.backend_url, "memory://?max_entries=1000&max_bytes=64m");
            let config = MemoryConfig::from_url(&u.backend_url).unwrap();
            assert_eq!(
                (config.max_entries, config.max_bytes),
                (Some(1000), Some(64 << 20))
            );
            assert_eq!(
                MemoryConfig::from_url("memory://").unwrap(),
                MemoryConfig::default()
            );
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
        let mut passwords = cache_core::testkit::Passwords::new(0xd1b5_4a32_d192_ed03);
        let mut forms: Vec<String> = vec![
            "memory://user:{pw}@h".into(),
            "memcached://user:{pw}@127.0.0.1:11211?pool_size=2&namespace=n".into(),
        ];
        let redis_schemes = crate::connectors::BACKENDS
            .iter()
            .filter(|b| b.feature.starts_with("redis"))
            .flat_map(|b| b.schemes.iter());
        for scheme in redis_schemes {
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
            let password = passwords.password();
            for form in &forms {
                let url = form.replace("{pw}", &password);
                let mut shown = format!("{:?}", crate::CacheConfig::new(url.as_str()));
                shown.push_str(&cache_core::url::redact(&url));
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
        let url = parsed.backend_url.as_str();
        match parsed.backend.feature {
            #[cfg(feature = "memory")]
            "memory" => show(cache_memory::MemoryConfig::from_url(url)),
            #[cfg(feature = "redis")]
            "redis" | "redis-tls" => show(cache_redis::RedisConfig::from_url(url)),
            #[cfg(feature = "memcached")]
            "memcached" => show(cache_memcached::MemcachedConfig::from_url(url)),
            _ => {
                let _ = (show::<()>, url);
                String::new()
            }
        }
    }

    #[test]
    fn redaction() {
        use cache_core::url::redact;
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
