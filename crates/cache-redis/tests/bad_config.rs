//! Bad configuration is refused before anything connects: serde configs with unknown keys or
//! values of the wrong type fail to deserialize, and settings that deserialize but make no
//! sense fail `build()` with a `Config` error — not a `Connection` error, which would mean it
//! tried (every case points at port 1, where nothing listens). URL errors are unit tests in
//! `src/config.rs` (`bad_urls_name_the_problem`).

use cache_core::ErrorKind;
use cache_redis::{RedisBuilder, RedisConfig, RedisMode};

/// Deserializes a JSON config; `Err` holds serde's message.
fn parse(json: &str) -> Result<RedisConfig, String> {
    serde_json::from_str::<RedisConfig>(json).map_err(|e| e.to_string())
}

#[test]
fn unknown_keys_and_wrong_types_do_not_deserialize() {
    for (json, needle) in [
        (r#"{"hots": "cache"}"#, "unknown field `hots`"),
        (r#"{"reconnect": {"tries": 3}}"#, "unknown field `tries`"),
        (r#"{"port": "6379"}"#, "invalid type"),
        (r#"{"port": 70000}"#, "invalid value"),
        (r#"{"port": -1}"#, "invalid value"),
        (r#"{"db": 256}"#, "invalid value"),
        (r#"{"pool_size": 1.5}"#, "invalid type"),
        (r#"{"tls": "yes"}"#, "invalid type"),
        (r#"{"mode": "galaxy"}"#, "unknown variant `galaxy`"),
        (r#"{"protocol": "resp4"}"#, "unknown variant `resp4`"),
        (r#"{"connect_timeout": "soon"}"#, "is not a duration"),
        (r#"{"command_timeout": -5}"#, "cannot be negative"),
        (r#"{"nodes": "a:1"}"#, "invalid type"),
        (r#"{"password": 1234}"#, "invalid type"),
        (r#""redis://h""#, "invalid type"),
    ] {
        let e = parse(json).expect_err(json);
        assert!(e.contains(needle), "{json}: {e}");
    }
    // serde reads a struct from a sequence too (fields in declaration order); an empty one
    // is every default, and a wrong element is still a type error
    assert_eq!(parse("[]").unwrap(), RedisConfig::default());
    assert!(parse(r#"[42]"#).is_err());
}

#[tokio::test]
async fn settings_that_make_no_sense_fail_build_before_connecting() {
    let at_port_1 = |json: &str| {
        let mut config = parse(json).unwrap();
        config.port = 1;
        config
    };
    for (config, needle) in [
        (at_port_1(r#"{"pool_size": 0}"#), "pool_size"),
        (at_port_1(r#"{"pool_size": 257}"#), "pool_size"),
        (at_port_1(r#"{"endpoint": ""}"#), "empty"),
        (at_port_1(r#"{"connect_timeout": 0}"#), "connect_timeout"),
        (at_port_1(r#"{"mode": "cluster", "db": 3}"#), "database 0"),
        (at_port_1(r#"{"mode": "sentinel"}"#), "service name"),
        (at_port_1(r#"{"mode": "unix"}"#), "socket_path"),
        (at_port_1(r#"{"nodes": ["no-port"]}"#), "host:port"),
        (at_port_1(r#"{"tls_ca_file": "/x.pem"}"#), "TLS is off"),
        (
            at_port_1(r#"{"tls_accept_invalid_certs": true}"#),
            "TLS is off",
        ),
        (
            at_port_1(r#"{"tls": true, "tls_cert_file": "/c.pem"}"#),
            "together",
        ),
        (
            at_port_1(r#"{"reconnect": {"min_delay": "5s", "max_delay": "1s"}}"#),
            "longer than max_delay",
        ),
        (at_port_1(r#"{"reconnect": {"factor": 0}}"#), "factor"),
    ] {
        let what = format!("{config:?}");
        let e = config.into_builder().build().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{what}: {e}");
        assert!(e.to_string().contains(needle), "{what}: {e}");
    }
    let e = RedisBuilder::new()
        .port(0)
        .build()
        .await
        .expect_err("port 0");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let cluster = parse(r#"{"mode": "cluster"}"#).unwrap();
    assert_eq!(cluster.mode, RedisMode::Cluster);
}
