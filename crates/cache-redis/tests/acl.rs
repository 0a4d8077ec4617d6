//! ACL users and passwords on a private redis-server.

use cache_core::{Cache, ErrorKind};
use cache_redis::{RedisBuilder, RedisConfig};
use cache_test_fixtures::{Server, ServerKind};

/// A server whose default user is off, with `alice` (everything) and `bob` (keys `bob:*`
/// only). Alice's password holds characters that must be percent-encoded in a URL.
fn acl_server() -> Option<Server> {
    Server::start(
        ServerKind::Redis,
        &[
            "--user",
            "default",
            "off",
            "--user",
            "alice",
            "on",
            ">s3cr@t:/pw",
            "~*",
            "&*",
            "+@all",
            "--user",
            "bob",
            "on",
            ">bobpw",
            "~bob:*",
            "+@all",
        ],
    )
}

#[tokio::test]
async fn the_right_user_and_password_connect() {
    let Some(server) = acl_server() else { return };
    let url = format!(
        "redis://alice:s3cr%40t%3A%2Fpw@127.0.0.1:{}/0",
        server.port()
    );
    let backend = RedisConfig::from_url(&url)
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("acl").build();
    cache.set("k", &42).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(42));
    let who = cache.raw("ACL WHOAMI", Vec::<String>::new()).await.unwrap();
    assert_eq!(who.as_str(), Some("alice"));
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_authentication_error() {
    let Some(server) = acl_server() else { return };
    let err = RedisBuilder::new()
        .port(server.port())
        .username("alice")
        .password("wrong")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!err.is_temporary());
    // the server's reply is the source: the chain, as an error reporter prints it
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(text.contains("WRONGPASS"), "{text}");
    assert!(
        !text.contains("wrong\""),
        "the password is never echoed: {text}"
    );
}

#[tokio::test]
async fn no_credentials_where_required_is_a_clear_authentication_error() {
    let Some(server) = acl_server() else { return };
    let err = RedisBuilder::new()
        .port(server.port())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");
}

#[tokio::test]
async fn a_forbidden_key_is_a_backend_error_naming_the_permission() {
    let Some(server) = acl_server() else { return };
    let backend = RedisBuilder::new()
        .port(server.port())
        .username("bob")
        .password("bobpw")
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(backend).namespace("bob").build();
    cache.set("mine", &1).await.unwrap();
    let other = cache.with_namespace("alice");
    let err = other.set("theirs", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(format!("{err:#}").contains("NOPERM"), "{err:#}");
    assert_eq!(
        cache.get::<i32>("mine").await.unwrap(),
        Some(1),
        "the connection still works"
    );
}
