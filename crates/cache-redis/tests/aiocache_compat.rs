//! Sharing a Redis with Python's aiocache 0.12: the keys and bytes of its wire traces
//! (aiocache-spec.md, appendix A), on a private server so the fixed key `test:key` collides
//! with nothing.

use std::time::Duration;

use bytes::Bytes;
use cache_core::{AiocacheFlavor, AiocacheKeyBuilder, Cache, Json, KeyTtl, PythonJson, RawValue};
use cache_redis::RedisBuilder;
use cache_test_fixtures::{Server, ServerKind};
use serde_json::{Value, json};

async fn aiocache_like(server: &Server) -> Cache<Json> {
    let backend = RedisBuilder::new()
        .port(server.port())
        .build()
        .await
        .unwrap();
    Cache::builder(backend)
        .namespace("test")
        .key_builder(AiocacheKeyBuilder::new(AiocacheFlavor::Redis))
        .build()
}

/// The stored bytes of `key`, read without namespace or serializer.
async fn stored(cache: &Cache<Json>, key: &str) -> Option<Bytes> {
    match cache.raw("GET", [key]).await.unwrap() {
        RawValue::Nil => None,
        RawValue::Bytes(b) => Some(b),
        other => panic!("GET answered {other:?}"),
    }
}

#[tokio::test]
async fn set_uses_aiocaches_key_and_json_text() {
    let Some(server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let cache = aiocache_like(&server).await;
    // aiocache: SET test:key "{\"a\": 1}"
    cache.set("key", &json!({"a": 1})).await.unwrap();
    let bytes = stored(&cache, "test:key")
        .await
        .expect("stored under test:key");
    // The key is aiocache's exactly. `Json` writes the same document compact (`{"a":1}`);
    // both sides read either form.
    assert_eq!(&bytes[..], br#"{"a":1}"#);
    let as_python_reads: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(as_python_reads, json!({"a": 1}));
    // With `PythonJson` the bytes are aiocache's byte for byte: SET test:key "{\"a\": 1}".
    cache
        .with_serializer(PythonJson)
        .set("key", &json!({"a": 1}))
        .await
        .unwrap();
    let bytes = stored(&cache, "test:key")
        .await
        .expect("stored under test:key");
    assert_eq!(&bytes[..], br#"{"a": 1}"#);
    assert_eq!(
        cache.raw("EXISTS", ["key"]).await.unwrap(),
        RawValue::Int(0),
        "nothing is stored under the bare key"
    );
}

#[tokio::test]
async fn values_written_by_aiocache_read_back() {
    let Some(server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let cache = aiocache_like(&server).await;
    // exactly the commands of the trace, as another client sends them
    cache.raw("SET", ["test:key", r#"{"a": 1}"#]).await.unwrap();
    cache.raw("SETEX", ["test:k2", "10", "1"]).await.unwrap();
    cache
        .raw("PSETEX", ["test:k3", "1500", "\"text\""])
        .await
        .unwrap();
    cache
        .raw("MSET", ["test:a", "1", "test:b", "2"])
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Value>("key").await.unwrap(),
        Some(json!({"a": 1}))
    );
    assert_eq!(cache.get::<i64>("k2").await.unwrap(), Some(1));
    assert_eq!(
        cache.get::<String>("k3").await.unwrap().as_deref(),
        Some("text")
    );
    let many: Vec<Option<i64>> = cache.multi_get(["a", "b", "c"]).await.unwrap();
    assert_eq!(many, vec![Some(1), Some(2), None]);
    // aiocache's increment is INCRBY on the same key: counters are shared
    assert_eq!(cache.increment("a", 3).await.unwrap(), 4);
    assert_eq!(stored(&cache, "test:a").await.as_deref(), Some(&b"4"[..]));
    match cache.ttl("k3").await.unwrap() {
        KeyTtl::Remaining(left) => assert!(left <= Duration::from_millis(1500)),
        other => panic!("PSETEX's TTL reads back as {other:?}"),
    }
    // aiocache's clear(namespace="test") removes test:*; ours removes the same keys
    cache.raw("SET", ["other:key", "1"]).await.unwrap();
    assert_eq!(cache.clear().await.unwrap(), Some(5));
    assert_eq!(
        stored(&cache, "other:key").await.as_deref(),
        Some(&b"1"[..])
    );
}

#[tokio::test]
async fn writes_use_the_commands_of_the_trace() {
    let Some(server) = Server::start(ServerKind::Redis, &[]) else {
        return;
    };
    let cache = aiocache_like(&server).await;
    // add → SET test:k4 1 NX; a second add of the same key is refused, as in aiocache
    cache.add("k4", &1).await.unwrap();
    assert!(cache.add("k4", &2).await.is_err());
    assert_eq!(stored(&cache, "test:k4").await.as_deref(), Some(&b"1"[..]));
    // set with ttl=0.25 → millisecond precision, as PSETEX / SET … PX
    cache
        .with_ttl(Duration::from_millis(250))
        .set("k5", &1)
        .await
        .unwrap();
    let pttl = cache
        .raw("PTTL", ["test:k5"])
        .await
        .unwrap()
        .as_i64()
        .unwrap();
    assert!((1..=250).contains(&pttl), "{pttl}");
    // multi_set with ttl=5 → every key gets the TTL
    cache
        .with_ttl(Duration::from_secs(5))
        .multi_set([("a", 1), ("b", 2)])
        .await
        .unwrap();
    for key in ["test:a", "test:b"] {
        let pttl = cache.raw("PTTL", [key]).await.unwrap().as_i64().unwrap();
        assert!((4_000..=5_000).contains(&pttl), "{key}: {pttl}");
    }
}
