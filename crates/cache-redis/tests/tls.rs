//! TLS: a redis-server with `--tls-port` and certificates made at test time.

#![cfg(feature = "tls")]

use cache_core::{Cache, ErrorKind};
use cache_redis::RedisConfig;
use cache_test_fixtures::{Server, TestPki};

fn tls_server(pki: &TestPki, require_client_cert: bool) -> Option<Server> {
    Server::start_redis_tls(
        &pki.file("server.crt"),
        &pki.file("server.key"),
        &pki.file("ca.crt"),
        require_client_cert,
    )
}

#[tokio::test]
async fn rediss_with_the_right_ca_connects() {
    let pki = TestPki::new();
    let Some(server) = tls_server(&pki, false) else {
        return;
    };
    let url = format!(
        "{}?tls_ca_file={}",
        server.url(),
        pki.file("ca.crt").display()
    );
    assert!(url.starts_with("rediss://"));
    let backend = RedisConfig::from_url(&url)
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("tls").build();
    cache.set("k", &"over tls").await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("over tls")
    );
    let pong = cache.raw("PING", cache_core::NO_ARGS).await.unwrap();
    assert_eq!(pong.as_str(), Some("PONG"));
}

#[tokio::test]
async fn a_wrong_ca_is_refused() {
    let pki = TestPki::new();
    let Some(server) = tls_server(&pki, false) else {
        return;
    };
    let url = format!(
        "{}?tls_ca_file={}",
        server.url(),
        pki.file("other-ca.crt").display()
    );
    let err = RedisConfig::from_url(&url)
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        !err.is_temporary(),
        "a certificate problem does not go away by retrying: {err}"
    );
    let text = err.to_string();
    assert!(text.contains("TLS"), "{text}");
    assert!(text.to_ascii_lowercase().contains("certificate"), "{text}");
}

#[tokio::test]
async fn plain_tcp_to_a_tls_port_fails_cleanly() {
    let pki = TestPki::new();
    let Some(server) = tls_server(&pki, false) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}?connect_timeout=1s", server.port());
    let err = RedisConfig::from_url(&url)
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Unexpected
        ),
        "{err}"
    );
}

#[tokio::test]
async fn client_certificates_when_the_server_requires_them() {
    let pki = TestPki::new();
    let Some(server) = tls_server(&pki, true) else {
        return;
    };
    let ca = pki.file("ca.crt");
    let without = RedisConfig::from_url(&format!("{}?tls_ca_file={}", server.url(), ca.display()))
        .unwrap()
        .into_builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .build()
        .await;
    let err = without.expect_err("the server requires a client certificate");
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{err}"
    );
    let backend = RedisConfig::from_url(&format!(
        "{}?tls_ca_file={}&tls_cert_file={}&tls_key_file={}",
        server.url(),
        ca.display(),
        pki.file("client.crt").display(),
        pki.file("client.key").display()
    ))
    .unwrap()
    .into_builder()
    .build()
    .await
    .unwrap();
    let cache = Cache::builder(backend).namespace("mtls").build();
    cache.set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
}

#[tokio::test]
async fn unreadable_ca_file_is_a_config_error() {
    let err = RedisConfig::from_url("rediss://127.0.0.1:1?tls_ca_file=/nonexistent/ca.pem")
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// A server whose certificate is self-signed (no CA vouches for it), for 127.0.0.1.
fn self_signed_server(pki: &TestPki) -> Option<Server> {
    let (cert, key) = pki.self_signed();
    Server::start_redis_tls(&cert, &key, &pki.file("ca.crt"), false)
}

#[tokio::test]
async fn an_untrusted_self_signed_certificate_is_refused_by_default() {
    let pki = TestPki::new();
    let Some(server) = self_signed_server(&pki) else {
        return;
    };
    // trusting a CA that did not sign it
    let url = format!(
        "{}?tls_ca_file={}",
        server.url(),
        pki.file("ca.crt").display()
    );
    let config = RedisConfig::from_url(&url).unwrap();
    assert!(
        !config.tls_accept_invalid_certs,
        "verification is on by default"
    );
    let err = config.into_builder().build().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(!err.is_temporary(), "{err}");
    assert!(
        err.to_string().to_ascii_lowercase().contains("certificate"),
        "{err}"
    );
    // the system's roots do not know it either (or there are none: a Config error)
    let err = RedisConfig::from_url(&server.url())
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Config),
        "{err}"
    );
    // explicitly off is the same as the default
    let err = RedisConfig::from_url(&format!("{url}&tls_accept_invalid_certs=false"))
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}

#[tokio::test]
async fn the_explicit_opt_out_accepts_an_untrusted_certificate() {
    let pki = TestPki::new();
    let Some(server) = self_signed_server(&pki) else {
        return;
    };
    let backend = RedisConfig::from_url(&format!("{}?tls_insecure=true", server.url()))
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("insecure").build();
    cache.set("k", &"encrypted, unauthenticated").await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("encrypted, unauthenticated")
    );
    // the builder's spelling, which also turns TLS on
    let backend = cache_redis::RedisBuilder::new()
        .port(server.port())
        .tls_accept_invalid_certs(true)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("insecure").build();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("encrypted, unauthenticated")
    );
}
