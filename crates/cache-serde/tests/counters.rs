//! Counters written by `increment` read back through `get` with every serializer: the right
//! number, or a clear error — never a silently wrong number.

use cache_core::testkit::MapBackend;
use cache_core::{Cache, ErrorKind, Json, RawBytes, Utf8};
use cache_serde::{Cbor, MsgPack};

#[tokio::test]
async fn get_of_a_counter_is_right_or_a_clear_error_with_every_serializer() {
    let cache = Cache::new(MapBackend::new());
    for n in [0i64, 6, 9, 10, 42, -1, -17, 1234, i64::MAX, i64::MIN + 1] {
        let key = format!("c{n}");
        cache.increment(&key, n).await.unwrap();
        assert_eq!(cache.get_counter(&key).await.unwrap(), Some(n));
        assert_eq!(
            cache.with_serializer(Json).get::<i64>(&key).await.unwrap(),
            Some(n)
        );
        assert_eq!(
            cache.with_serializer(Utf8).get::<i64>(&key).await.unwrap(),
            Some(n)
        );
        let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get(&key).await.unwrap();
        assert_eq!(raw, Some(n.to_string().into_bytes()));
        for err in [
            cache
                .with_serializer(MsgPack)
                .get::<i64>(&key)
                .await
                .unwrap_err(),
            cache
                .with_serializer(Cbor)
                .get::<i64>(&key)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Serialization, "{n}: {err}");
            assert!(err.to_string().contains("get_counter"), "{err}");
            assert_eq!(err.context_value("key"), Some(key.as_str()));
        }
    }
}

#[tokio::test]
async fn msgpack_and_cbor_values_never_look_like_counters() {
    let cache = Cache::new(MapBackend::new());
    for n in -70_000i64..70_000 {
        if n % 97 != 0 && !(-100..100).contains(&n) {
            continue;
        }
        cache.with_serializer(MsgPack).set("m", &n).await.unwrap();
        assert_eq!(
            cache
                .with_serializer(MsgPack)
                .get::<i64>("m")
                .await
                .unwrap(),
            Some(n)
        );
        cache.with_serializer(Cbor).set("c", &n).await.unwrap();
        assert_eq!(
            cache.with_serializer(Cbor).get::<i64>("c").await.unwrap(),
            Some(n)
        );
    }
}
