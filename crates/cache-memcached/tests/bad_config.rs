//! Bad configuration is refused before anything connects: serde configs with unknown keys or
//! values of the wrong type fail to deserialize, settings that deserialize but make no sense
//! fail `build()` with a `Config` error, and credentials in a URL (memcached's text protocol
//! has none) are refused without being repeated. URL errors are unit tests in
//! `src/config.rs` (`bad_urls_name_the_problem`).

use cache_core::ErrorKind;
use cache_memcached::{MemcachedBuilder, MemcachedConfig};

fn parse(json: &str) -> Result<MemcachedConfig, String> {
    serde_json::from_str::<MemcachedConfig>(json).map_err(|e| e.to_string())
}

#[test]
fn unknown_keys_and_wrong_types_do_not_deserialize() {
    for (json, needle) in [
        (r#"{"pool": 1}"#, "unknown field `pool`"),
        (r#"{"servers": "127.0.0.1:11211"}"#, "invalid type"),
        (r#"{"servers": [42]}"#, "did not match any variant"),
        (r#"{"pool_size": "8"}"#, "invalid type"),
        (r#"{"pool_size": -1}"#, "invalid value"),
        (r#"{"namespace_generations": "yes"}"#, "invalid type"),
        (r#"{"connect_timeout": "soon"}"#, "is not a duration"),
        (r#"{"max_item_size": 1.5}"#, "invalid type"),
        (r#""redis://h""#, "invalid type"),
    ] {
        let e = parse(json).expect_err(json);
        assert!(e.contains(needle), "{json}: {e}");
    }
    // serde reads a struct from a sequence too (fields in declaration order); an empty one
    // is every default, and a wrong element is still a type error
    assert_eq!(parse("[]").unwrap(), MemcachedConfig::default());
    assert!(parse(r#"[42]"#).is_err());
}

#[tokio::test]
async fn settings_that_make_no_sense_fail_build_before_connecting() {
    for (json, needle) in [
        (r#"{}"#, "no memcached server"),
        (
            r#"{"servers": ["127.0.0.1:1"], "pool_size": 0}"#,
            "pool_size",
        ),
        (
            r#"{"servers": ["127.0.0.1:1"], "connect_timeout": 0}"#,
            "connect_timeout",
        ),
        (
            r#"{"servers": ["127.0.0.1:1"], "max_item_size": 10}"#,
            "max_item_size",
        ),
        (
            r#"{"servers": [{"address": "127.0.0.1:1", "weight": 0}]}"#,
            "weight 0",
        ),
        (r#"{"servers": ["127.0.0.1:1", "127.0.0.1:1"]}"#, "twice"),
        (r#"{"servers": ["[::1]:11211"]}"#, "IPv6"),
        (r#"{"servers": ["127.0.0.1:0"]}"#, "port"),
    ] {
        let config = parse(json).unwrap();
        let e = config.into_builder().build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{json}: {e}");
        assert!(e.to_string().contains(needle), "{json}: {e}");
    }
    let e = MemcachedBuilder::new().build().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[test]
fn credentials_in_a_url_are_refused_and_never_repeated() {
    for url in [
        "memcached://user:s3cr3t@127.0.0.1:11211",
        "memcached://:s3cr3t@127.0.0.1",
        "memcached://s3cr3t@127.0.0.1",
    ] {
        let e = MemcachedConfig::from_url(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        let text = format!("{e}\n{e:?}");
        assert!(text.contains("no authentication"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

/// Random printable passwords (space to `~`, `@ / ? # :` included, written as they are) in
/// memcached URLs: refused as credentials, and neither the error nor its `Debug` holds them.
#[test]
fn credentials_of_any_printable_characters_are_never_repeated() {
    let mut seed = 0x0123_4567_89ab_cdef_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = 8 + (next() % 24) as usize;
        let password: String = (0..len)
            .map(|_| char::from(0x20 + (next() % 95) as u8))
            .collect();
        for url in [
            format!("memcached://user:{password}@127.0.0.1:11211"),
            format!("memcached://:{password}@127.0.0.1:11211?pool_size=2"),
            format!("memcached://h1,user:{password}@h2/"),
        ] {
            let e = MemcachedConfig::from_url(&url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
            let text = format!("{e}\n{e:?}");
            assert!(!text.contains(&password), "{password:?} in {text}");
        }
    }
}
