//! The quickstart: every command of the API on the in-process memory backend.
//!
//! Run with `cargo run --example quickstart`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratacache::prelude::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cache = Cache::builder(MemoryBackend::new().max_entries(100_000))
        .namespace("users")
        .ttl(Duration::from_secs(300))
        .timeout(Duration::from_millis(50))
        .build();

    let ada = User {
        id: 42,
        name: "Ada".into(),
    };
    cache.set("42", &ada).await?;
    let back: Option<User> = cache.get("42").await?;
    println!("set/get      users:42 -> {back:?}");
    assert_eq!(back.as_ref(), Some(&ada));

    match cache.add("42", &ada).await {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            println!("add          users:42 refused: {e}")
        }
        other => panic!("add of an existing key must fail, got {other:?}"),
    }
    cache
        .add(
            "43",
            &User {
                id: 43,
                name: "Grace".into(),
            },
        )
        .await?;
    println!("add          users:43 stored");

    cache.increment("hits", 1).await?;
    let hits = cache.increment("hits", 41).await?;
    println!(
        "increment    hits -> {hits} (stored as text, read back: {:?})",
        cache.get_counter("hits").await?
    );

    cache
        .with_ttl(Duration::from_millis(200))
        .set("session", &"abc")
        .await?;
    println!("ttl          session -> {:?}", cache.ttl("session").await?);
    println!(
        "expire       session for 10 s -> key exists: {}",
        cache.expire("session", Duration::from_secs(10)).await?
    );
    println!(
        "expire       session never -> key exists: {}",
        cache.expire("session", Ttl::Never).await?
    );
    println!("ttl          session -> {:?}", cache.ttl("session").await?);

    cache.multi_set([("1", "one"), ("2", "two")]).await?;
    let many: Vec<Option<String>> = cache.multi_get(["1", "2", "3"]).await?;
    println!("multi_get    [1, 2, 3] -> {many:?}");
    println!(
        "multi_delete [1, 2, 3] -> {} removed",
        cache.multi_delete(["1", "2", "3"]).await?
    );

    let loaded: User = cache
        .get_or_set("7", || async {
            println!("get_or_set   users:7 missing: loading it once");
            Ok::<_, std::io::Error>(User {
                id: 7,
                name: "Linus".into(),
            })
        })
        .await?;
    let again: User = cache
        .get_or_set("7", || async {
            Err::<User, _>(std::io::Error::other("not called"))
        })
        .await?;
    println!("get_or_set   users:7 -> {loaded:?}, second call served from the cache: {again:?}");

    println!("exists       users:42 -> {}", cache.exists("42").await?);
    println!(
        "delete       users:42 -> {} removed",
        cache.delete("42").await?
    );
    println!(
        "clear        namespace users -> {:?} removed",
        cache.clear().await?
    );
    cache.close().await?;
    println!(
        "close        done; later calls fail with {:?}",
        cache.get::<User>("43").await.unwrap_err().kind()
    );
    Ok(())
}
