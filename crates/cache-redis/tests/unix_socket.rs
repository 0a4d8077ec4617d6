//! A server on a Unix domain socket, reached with a `redis+unix://` URL.

use cache_core::Cache;
use cache_redis::{RedisConfig, RedisMode};
use cache_test_fixtures::{Server, ServerKind, TempDir};

#[tokio::test]
async fn redis_unix_url_connects_and_selects_the_database() {
    let dir = TempDir::new("unix");
    let socket = dir.path().join("redis.sock");
    let socket_arg = socket.display().to_string();
    let Some(_server) = Server::start(
        ServerKind::Redis,
        &["--unixsocket", &socket_arg, "--unixsocketperm", "700"],
    ) else {
        return;
    };
    let config = RedisConfig::from_url(&format!("redis+unix://{socket_arg}?db=3")).unwrap();
    assert_eq!(config.mode, RedisMode::Unix);
    let backend = config.into_builder().build().await.unwrap();
    let cache = Cache::builder(backend).namespace("unix").build();
    cache.set("k", &"over a socket").await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("over a socket")
    );
    let db = cache
        .raw("CLIENT INFO", Vec::<String>::new())
        .await
        .unwrap();
    assert!(db.as_str().unwrap().contains(" db=3 "), "{db:?}");
}
