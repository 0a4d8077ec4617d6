//! `from_url` and `CacheConfig` over every backend this build has, against the real servers
//! `cargo x test` starts (`CACHE_TEST_*_URL`), and every configuration error a user can make.

use std::time::Duration;

#[cfg(any(feature = "redis", feature = "memcached"))]
use cache_core::testkit::server_url;
use stratacache::prelude::*;
use stratacache::{CachesConfig, HitMissRatioPlugin, RawBytes, SerializerName, TimingPlugin};

/// A namespace of its own for each test, so tests share servers safely.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `url` with `params` appended to its query.
#[cfg(any(feature = "redis", feature = "memcached"))]
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Writes, reads back, checks the TTL and the stored bytes of a cache built from a URL
/// that asked for namespace `ns`, ttl 5m, timeout 250ms and the PythonJson serializer.
async fn check_url_settings(cache: &AnyCache, ns: &str, backend: &str) {
    assert_eq!(cache.backend_name(), backend);
    assert_eq!(cache.default_namespace(), Some(ns));
    assert_eq!(cache.default_timeout(), Some(Duration::from_millis(250)));
    assert_eq!(cache.serializer().kind(), SerializerName::PythonJson);
    cache
        .set("k", &serde_json::json!({"a": 1, "b": [true, null]}))
        .await
        .unwrap();
    let back: serde_json::Value = cache.get("k").await.unwrap().unwrap();
    assert_eq!(back, serde_json::json!({"a": 1, "b": [true, null]}));
    let raw: Vec<u8> = cache
        .with_serializer(RawBytes)
        .get("k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        raw, br#"{"a": 1, "b": [true, null]}"#,
        "aiocache's JSON bytes"
    );
    match cache.ttl("k").await.unwrap() {
        KeyTtl::Remaining(left) => {
            assert!(
                left > Duration::from_secs(290) && left <= Duration::from_secs(301),
                "{left:?}"
            )
        }
        other => panic!("ttl of a write under ttl=5m: {other:?}"),
    }
    let cleared = cache.clear().await.unwrap();
    assert!(cleared.is_none_or(|n| n >= 1), "clear removed {cleared:?}");
    assert_eq!(cache.get::<serde_json::Value>("k").await.unwrap(), None);
    cache.close().await.unwrap();
}

const SETTINGS: &str = "ttl=5m&timeout=250ms&serializer=python-json";

#[tokio::test]
async fn memory_url_applies_every_setting() {
    let ns = unique("mem");
    let url = format!("memory://?namespace={ns}&{SETTINGS}&max_entries=100&max_bytes=1m");
    let cache = stratacache::from_url(&url).await.unwrap();
    check_url_settings(&cache, &ns, "memory").await;

    // The bound of the URL holds.
    let cache = Cache::from_url("memory://?max_entries=100").await.unwrap();
    for i in 0..1000 {
        cache.set(&i.to_string(), &i).await.unwrap();
    }
    let stored = match cache.raw("LEN", Vec::<String>::new()).await.unwrap() {
        stratacache::RawValue::Int(n) => n,
        other => panic!("LEN answered {other:?}"),
    };
    assert!(
        (1..=100).contains(&stored),
        "{stored} entries under max_entries=100"
    );
    assert_eq!(cache.default_timeout(), Some(stratacache::DEFAULT_TIMEOUT));
    assert_eq!(cache.default_namespace(), None);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_url_forms_apply_every_setting() {
    let Some(base) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    for scheme in ["redis", "valkey"] {
        let ns = unique("redis");
        let url = base.replacen("redis", scheme, 1);
        let url = with_params(
            &url,
            &format!("namespace={ns}&{SETTINGS}&pool_size=2&protocol=resp2"),
        );
        let cache = stratacache::from_url(&url).await.unwrap();
        check_url_settings(&cache, &ns, "redis").await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_cluster_url_applies_every_setting() {
    let Some(base) = server_url("CACHE_TEST_REDIS_CLUSTER_URL") else {
        return;
    };
    let ns = unique("cluster");
    let url = with_params(&base, &format!("namespace={ns}&{SETTINGS}"));
    let cache = stratacache::from_url(&url).await.unwrap();
    check_url_settings(&cache, &ns, "redis").await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_urls_apply_every_setting() {
    for var in [
        "CACHE_TEST_MEMCACHED_URL",
        "CACHE_TEST_MEMCACHED_CLUSTER_URL",
    ] {
        let Some(base) = server_url(var) else {
            return;
        };
        let ns = unique("mc");
        let url = with_params(
            &base,
            &format!("namespace={ns}&{SETTINGS}&pool_size=2&namespace_generations=true"),
        );
        let cache = stratacache::from_url(&url).await.unwrap();
        check_url_settings(&cache, &ns, "memcached").await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn aiocache_key_builder_writes_aiocache_keys() {
    let Some(base) = server_url("CACHE_TEST_REDIS_URL") else {
        return;
    };
    let ns = unique("aio");
    let url = with_params(
        &base,
        &format!("namespace={ns}&key_builder=aiocache&serializer=python-json"),
    );
    let cache = stratacache::from_url(&url).await.unwrap();
    cache.set("key", &1).await.unwrap();
    let raw = cache.raw("GET", [format!("{ns}:key")]).await.unwrap();
    assert_eq!(
        raw,
        stratacache::RawValue::Bytes(b"1".to_vec().into()),
        "aiocache's `ns:key`"
    );
    cache.delete("key").await.unwrap();
}

/// Every way to get a URL wrong, and the words the error must contain.
#[tokio::test]
async fn url_errors_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("ftp://h", "unknown cache URL scheme \"ftp\""),
        ("redis//h:1", "`://` is missing"),
        (
            "memory://?namespace=a&namespace=b",
            "`namespace` is given twice",
        ),
        ("memory://?ttl=10", "`ttl`: \"10\" has no unit"),
        ("memory://?ttl=0s", "a default TTL of 0"),
        ("memory://?timeout=soon", "`timeout`"),
        ("memory://?serializer=yaml", "unknown serializer \"yaml\""),
        ("memory://?key_builder=python", "unknown key builder"),
        ("memory://?max_entries=many", "`max_entries`"),
        (
            "memory://?capacity=10",
            "unknown memory:// parameter `capacity`",
        ),
        ("memory://somewhere", "memory:// takes no host"),
    ];
    let redis: &[(&str, &str)] = &[
        ("redis://127.0.0.1:1?pool=2", "pool"),
        ("redis://127.0.0.1:notaport", "port"),
        ("redis://127.0.0.1:1?pool_size=many", "pool_size"),
    ];
    let memcached: &[(&str, &str)] = &[
        ("memcached://127.0.0.1:1?pool=2", "pool"),
        ("memcached://?pool_size=2", "no server"),
        (
            "memcached://127.0.0.1:1?command_timeout=fast",
            "command_timeout",
        ),
    ];
    let cases = cases
        .iter()
        .chain(redis.iter().filter(|_| cfg!(feature = "redis")))
        .chain(memcached.iter().filter(|_| cfg!(feature = "memcached")));
    for (url, needle) in cases {
        let e = stratacache::from_url(url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        assert!(e.to_string().contains(needle), "{url}: {e}");
    }
}

#[tokio::test]
async fn url_errors_never_repeat_a_password() {
    for url in [
        "redis://ada:pa55w0rd@127.0.0.1:1?pool=2",
        "redis://ada:pa55w0rd@127.0.0.1:1?ttl=5",
        "memcached://ada:pa55w0rd@127.0.0.1:1",
        "nosuch://ada:pa55w0rd@h",
    ] {
        let e = stratacache::from_url(url).await.unwrap_err();
        assert!(!e.to_string().contains("pa55w0rd"), "{e}");
        assert!(!format!("{e:?}").contains("pa55w0rd"), "{e:?}");
    }
    let config = CacheConfig::new("redis://ada:pa55w0rd@127.0.0.1:1");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("pa55w0rd") && !shown.contains("ada") && shown.contains("://***@127"),
        "no part of the user-info shows: {shown}"
    );
}

const TOML: &str = r#"
[users]
url = "memory://?max_entries=1000"
namespace = "users"
ttl = "5m"
timeout = "50ms"
serializer = "python-json"
plugins = [
    { type = "tracing", keys = "hashed", level = "info" },
    { type = "hit_miss" },
    { type = "timing" },
]

[sessions]
url = "memory://"
namespace = "sessions"
"#;

#[tokio::test]
async fn toml_config_builds_every_setting_and_plugin() {
    let config: CachesConfig = toml::from_str(TOML).unwrap();
    let users = config["users"].build().await.unwrap();
    assert_eq!(users.default_namespace(), Some("users"));
    assert_eq!(users.default_ttl(), Ttl::After(Duration::from_secs(300)));
    assert_eq!(users.default_timeout(), Some(Duration::from_millis(50)));
    assert_eq!(users.serializer().kind(), SerializerName::PythonJson);
    users.set("a", &1).await.unwrap();
    assert_eq!(users.get::<i32>("a").await.unwrap(), Some(1));
    assert_eq!(users.get::<i32>("b").await.unwrap(), None);
    let ratio = users.find_plugin::<HitMissRatioPlugin>().unwrap();
    assert_eq!((ratio.hits(), ratio.misses()), (1, 1));
    let timing = users.find_plugin::<TimingPlugin>().unwrap();
    assert_eq!(timing.get(stratacache::Command::Get).unwrap().count, 2);
    assert_eq!(timing.get(stratacache::Command::Set).unwrap().count, 1);

    let sessions = config["sessions"].build().await.unwrap();
    assert_eq!(sessions.default_ttl(), Ttl::Never);
    assert_eq!(
        sessions.default_timeout(),
        Some(stratacache::DEFAULT_TIMEOUT)
    );
    assert!(sessions.find_plugin::<HitMissRatioPlugin>().is_none());
}

/// Config files with a mistake, and the words the error must contain (TOML errors quote
/// the offending line, so the field is named either way).
#[tokio::test]
async fn config_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "url = \"memory://\"\nnamespaces = \"x\"",
            "unknown field `namespaces`",
        ),
        ("url = \"memory://\"\nttl = true", "ttl"),
        ("url = \"memory://\"\nttl = \"5\"", "no unit"),
        ("url = \"memory://\"\ntimeout = -5", "negative"),
        (
            "url = \"memory://\"\nserializer = \"yaml\"",
            "unknown variant `yaml`",
        ),
        (
            "url = \"memory://\"\nplugins = [{ type = \"cache\" }]",
            "unknown variant `cache`",
        ),
        (
            "url = \"memory://\"\nplugins = [{ type = \"timing\", every = 1 }]",
            "unknown field `every`",
        ),
        ("namespace = \"x\"", "missing field `url`"),
        ("url = 5", "url"),
    ];
    for (text, needle) in cases {
        let e = toml::from_str::<CacheConfig>(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }

    // Errors found when building.
    let cases: Vec<(CacheConfig, &str)> = vec![
        (
            toml::from_str("url = \"memory://?namespace=a\"\nnamespace = \"b\"").unwrap(),
            "`namespace` is set both in the URL and as a field",
        ),
        (
            toml::from_str("url = \"memory://\"\nttl = \"0s\"").unwrap(),
            "a default TTL of 0",
        ),
        (
            toml::from_str(
                "url = \"memory://\"\nplugins = [{ type = \"tracing\", level = \"loud\" }]",
            )
            .unwrap(),
            "tracing plugin `level` is \"loud\"",
        ),
        (
            toml::from_str("url = \"memory://?tll=5m\"").unwrap(),
            "unknown memory:// parameter `tll`",
        ),
    ];
    for (config, needle) in cases {
        let e = config.build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{config:?}");
        assert!(e.to_string().contains(needle), "{config:?}: {e}");
    }
}

#[test]
fn environment_variables_are_read_and_checked() {
    let config = CacheConfig::from_vars(
        "APP_CACHE",
        [
            ("APP_CACHE_URL", "memory://"),
            ("APP_CACHE_NAMESPACE", "users"),
            ("APP_CACHE_TTL", "30s"),
            ("APP_CACHE_TIMEOUT", "20ms"),
            ("APP_CACHE_SERIALIZER", "python_json"),
            ("APP_CACHE_KEY_BUILDER", "aiocache"),
            ("APP_CACHE_PLUGINS", "tracing,hit_miss, timing"),
            ("APP_OTHER", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(config.url, "memory://");
    assert_eq!(config.namespace.as_deref(), Some("users"));
    assert_eq!(config.ttl, Some(Duration::from_secs(30)));
    assert_eq!(config.timeout, Some(Duration::from_millis(20)));
    assert_eq!(config.serializer, Some(SerializerName::PythonJson));
    assert_eq!(config.key_builder, Some(stratacache::KeyFormat::Aiocache));
    assert_eq!(config.plugins.len(), 3);

    for (vars, needle) in [
        (
            vec![("APP_CACHE_NAMESPACE", "x")],
            "APP_CACHE_URL is not set",
        ),
        (
            vec![("APP_CACHE_URL", "memory://"), ("APP_CACHE_TIMEOUTS", "1s")],
            "unknown environment variable APP_CACHE_TIMEOUTS",
        ),
        (
            vec![("APP_CACHE_URL", "memory://"), ("APP_CACHE_TTL", "soon")],
            "APP_CACHE_TTL",
        ),
        (
            vec![
                ("APP_CACHE_URL", "memory://"),
                ("APP_CACHE_SERIALIZER", "xml"),
            ],
            "APP_CACHE_SERIALIZER: unknown serializer",
        ),
        (
            vec![
                ("APP_CACHE_URL", "memory://"),
                ("APP_CACHE_PLUGINS", "tracing,logs"),
            ],
            "APP_CACHE_PLUGINS: unknown plugin \"logs\"",
        ),
    ] {
        let e = CacheConfig::from_vars("APP_CACHE", vars).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[tokio::test]
async fn registry_shares_one_instance_per_name_and_creates_new_ones() {
    let config: CachesConfig = toml::from_str(TOML).unwrap();
    let caches = Caches::from_config(config);
    assert_eq!(caches.names().collect::<Vec<_>>(), ["sessions", "users"]);

    // Concurrent first calls: one instance (every task writes, one read sees all writes).
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let caches = caches.clone();
            tokio::spawn(async move {
                let users = caches.get("users").await.unwrap();
                users.set(&format!("k{i}"), &i).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let users = caches.get("users").await.unwrap();
    for i in 0..16 {
        assert_eq!(users.get::<i32>(&format!("k{i}")).await.unwrap(), Some(i));
    }

    // `create` is a separate instance (a separate memory store), with overrides applied.
    let fresh = caches.create("users").await.unwrap();
    assert_eq!(fresh.get::<i32>("k0").await.unwrap(), None);
    let other = caches
        .create_with("users", |c| {
            c.namespace = Some("admins".into());
            c.ttl = None;
        })
        .await
        .unwrap();
    assert_eq!(other.default_namespace(), Some("admins"));
    assert_eq!(other.default_ttl(), Ttl::Never);

    let e = caches.get("user").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("configured: sessions, users"), "{e}");

    caches.close_all().await.unwrap();
    let e = caches
        .get("users")
        .await
        .unwrap()
        .get::<i32>("k0")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    // Created instances are their owner's: still open.
    assert_eq!(fresh.get::<i32>("k0").await.unwrap(), None);
}

#[tokio::test]
async fn a_failed_build_is_retried_by_the_next_get() {
    let caches = Caches::new([("bad", CacheConfig::new("memory://?max_entries=0"))]);
    for _ in 0..2 {
        let e = caches.get("bad").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("max_entries"), "{e}");
    }
}

/// aiocache's memcached keys and namespace generations do not mix: generations put a number
/// into every stored key, so a Python service would never find them. The combination is a
/// `Config` error naming both, before anything connects (the URLs point at port 1).
#[cfg(feature = "memcached")]
#[tokio::test]
async fn aiocache_keys_with_namespace_generations_are_refused() {
    for url in [
        "memcached://127.0.0.1:1?namespace_generations=true&key_builder=aiocache",
        "memcached://127.0.0.1:1?key_builder=aiocache&namespace_generations=1&namespace=users",
    ] {
        let e = stratacache::from_url(url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("namespace_generations") && text.contains("aiocache"),
            "{url}: {e}"
        );
    }
    let mut config = CacheConfig::new("memcached://127.0.0.1:1?namespace_generations=true");
    config.key_builder = Some(stratacache::KeyFormat::Aiocache);
    let e = config.build().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

/// `compression=` in a URL (and `compression` in a config) compresses the large encodings of
/// the serializer it names, stores small ones as the serializer writes them, and reads values
/// written without it.
#[cfg(all(feature = "zstd", feature = "lz4"))]
#[tokio::test]
async fn compression_from_url_and_config_compresses_large_values_and_reads_plain_ones() {
    use stratacache::{CacheConfig, CompressionName};

    let big = "stratacache ".repeat(1_000);
    for (cache, codec) in [
        (
            stratacache::from_url("memory://?compression=zstd")
                .await
                .unwrap(),
            "zstd",
        ),
        (
            CacheConfig::new("memory://")
                .compression(CompressionName::Lz4)
                .build()
                .await
                .unwrap(),
            "lz4",
        ),
    ] {
        cache.set("big", &big).await.unwrap();
        cache.set("small", &"hi").await.unwrap();
        let raw = cache.with_serializer(RawBytes);
        let stored: Vec<u8> = raw.get("big").await.unwrap().unwrap();
        assert!(
            stored.starts_with(&[0xFF, b'c', b'z']),
            "{codec}: a compressed frame"
        );
        assert!(
            stored.len() < big.len() / 4,
            "{codec}: {} bytes stored",
            stored.len()
        );
        let small: Vec<u8> = raw.get("small").await.unwrap().unwrap();
        assert_eq!(small, b"\"hi\"", "{codec}: small values stay plain JSON");
        assert_eq!(cache.get::<String>("big").await.unwrap(), Some(big.clone()));
        // written without compression, still read
        raw.set("plain", &b"[1,2,3]".to_vec()).await.unwrap();
        assert_eq!(
            cache.get::<Vec<u32>>("plain").await.unwrap(),
            Some(vec![1, 2, 3])
        );
    }
    let e = stratacache::from_url("memory://?compression=brotli")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown compression"), "{e}");
    let e = CacheConfig::new("memory://?compression=zstd")
        .compression(CompressionName::Zstd)
        .build()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("both in the URL and as a field"),
        "{e}"
    );
}

/// A config serializes to what it says (for a service to print its effective settings) and
/// reads back the same, except the password, which is never written.
#[test]
fn a_config_serializes_without_its_secrets_and_reads_back() {
    use stratacache::{CacheConfig, PluginConfig};

    let config: CacheConfig = serde_json::from_str(
        r#"{ "url": "redis://app:s3cret@cache.internal:6379/2?pool_size=2",
             "namespace": "users", "ttl": "5m", "timeout": "50ms", "serializer": "msgpack",
             "key_builder": "aiocache",
             "plugins": [{ "type": "tracing", "keys": "hashed" }, { "type": "hit_miss" }] }"#,
    )
    .unwrap();
    let shown = serde_json::to_string(&config).unwrap();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("app:"), "{shown}");
    let back: CacheConfig = serde_json::from_str(&shown).unwrap();
    assert_eq!(back.url, "redis://***@cache.internal:6379/2?pool_size=2");
    assert_eq!(
        (
            &back.namespace,
            back.ttl,
            back.timeout,
            back.serializer,
            back.key_builder
        ),
        (
            &config.namespace,
            config.ttl,
            config.timeout,
            config.serializer,
            config.key_builder
        )
    );
    assert_eq!(back.plugins, config.plugins);
    assert!(matches!(back.plugins[1], PluginConfig::HitMiss {}));
}
