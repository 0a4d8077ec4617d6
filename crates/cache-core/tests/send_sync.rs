//! Public types are `Send + Sync`, and every command's future is `Send`, so caches work
//! across `tokio::spawn`.

use cache_core::testkit::MapBackend;
use cache_core::{Cache, CacheBuilder, Error, Json, KeyTtl, RawValue, Scoped, Ttl};

fn is_send<T: Send>(_: &T) {}
fn is_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_and_sync() {
    is_send_sync::<Cache<Json>>();
    is_send_sync::<CacheBuilder<Json>>();
    is_send_sync::<Error>();
    is_send_sync::<Ttl>();
    is_send_sync::<KeyTtl>();
    is_send_sync::<RawValue>();
    fn scoped_is_send_sync<'a>(s: Scoped<'a, Json>) -> impl Send + Sync + 'a {
        s
    }
    let cache = Cache::new(MapBackend::new());
    let _ = scoped_is_send_sync(cache.scoped());
}

#[test]
fn command_futures_are_send() {
    let cache = Cache::new(MapBackend::new());
    is_send(&cache.get::<u32>("k"));
    is_send(&cache.set("k", &1));
    is_send(&cache.add("k", &1));
    is_send(&cache.multi_get::<u32, _, _>(["a", "b"]));
    is_send(&cache.multi_set([("a", 1)]));
    is_send(&cache.delete("k"));
    is_send(&cache.multi_delete(["a"]));
    is_send(&cache.exists("k"));
    is_send(&cache.increment("k", 1));
    is_send(&cache.expire("k", Ttl::Never));
    is_send(&cache.ttl("k"));
    is_send(&cache.compare_and_set("k", None, &1));
    is_send(&cache.clear());
    is_send(&cache.wipe_all());
    is_send(&cache.raw("PING", cache_core::NO_ARGS));
    is_send(&cache.close());
    is_send(&cache.get_or_set("k", || async { Ok::<_, std::io::Error>(1u32) }));
}

#[tokio::test]
async fn a_cache_moves_into_spawned_tasks() {
    let cache = Cache::new(MapBackend::new());
    let c = cache.clone();
    tokio::spawn(async move { c.set("k", &7).await.unwrap() })
        .await
        .unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(7));
}
