//! The conformance suite against a standalone redis-server (`CACHE_TEST_REDIS_URL`), once
//! with the defaults (RESP2, one connection) and once over RESP3 with a pool of two and no
//! client-side command timeout, once through the request-coalescing layer, once over fred
//! clients built by the program (`RedisBackend::from_clients`), and with namespace
//! generations (also through the coalescing layer, with the sweep on).

use cache_core::testkit::server_url;
use cache_core::{Backend, CallContext, Command, ErrorKind, OpSet};
use cache_redis::{RedisBackend, RedisConfig};

async fn backend_with(params: &str) -> Option<RedisBackend> {
    let url = server_url("CACHE_TEST_REDIS_URL")?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = if params.is_empty() {
        url
    } else {
        format!("{url}{sep}{params}")
    };
    let config = RedisConfig::from_url(&url).expect("CACHE_TEST_REDIS_URL is a redis URL");
    Some(
        config
            .into_builder()
            .build()
            .await
            .expect("connect to CACHE_TEST_REDIS_URL"),
    )
}

cache_core::conformance_tests!(backend_with(""));

/// Through the request-coalescing layer: single-key reads go down as `MGET`s.
mod coalesced {
    cache_core::conformance_tests!(async {
        super::backend_with("").await.map(|b| {
            cache_core::layer::Layer::layer(
                &cache_core::layer::CoalesceLayer::new(),
                std::sync::Arc::new(b),
            )
        })
    });
}

/// Over fred clients the program built itself (`RedisBackend::from_clients`): a pool of two.
mod from_clients {
    use cache_redis::RedisBackend;
    use cache_redis::fred::prelude::{Builder, ClientLike, Config};

    async fn backend() -> Option<RedisBackend> {
        let url = cache_core::testkit::server_url("CACHE_TEST_REDIS_URL")?;
        let config = Config::from_url(&url).expect("a fred URL");
        let mut clients = Vec::new();
        for _ in 0..2 {
            let client = Builder::from_config(config.clone())
                .build()
                .expect("a client");
            client
                .init()
                .await
                .expect("connect to CACHE_TEST_REDIS_URL");
            clients.push(client);
        }
        let backend = RedisBackend::from_clients(clients).expect("a backend");
        assert_eq!(backend.mode(), cache_redis::RedisMode::Standalone);
        assert!(!backend.server().contains('@'), "{}", backend.server());
        Some(backend)
    }

    cache_core::conformance_tests!(backend());

    #[test]
    fn no_client_is_an_invalid_argument() {
        let err = RedisBackend::from_clients([]).unwrap_err();
        assert_eq!(err.kind(), cache_core::ErrorKind::InvalidArgument, "{err}");
    }
}

/// With namespace generations: `clear()` is one increment, every command one script.
mod generations {
    cache_core::conformance_tests!(super::backend_with("namespace_generations=true"));
}

/// Generations through the request-coalescing layer: single-key reads go down as multi-gets.
mod generations_coalesced {
    cache_core::conformance_tests!(async {
        super::backend_with("namespace_generations=true&generation_sweep=true")
            .await
            .map(|b| {
                cache_core::layer::Layer::layer(
                    &cache_core::layer::CoalesceLayer::new(),
                    std::sync::Arc::new(b),
                )
            })
    });
}

mod resp3_pool {
    cache_core::conformance_tests!(super::backend_with(
        "protocol=resp3&pool_size=2&command_timeout=0"
    ));
}

#[tokio::test]
async fn a_closed_backend_answers_closed_without_hanging() {
    let Some(backend) = backend_with("").await else {
        return;
    };
    let cx = CallContext::new(Command::Set);
    backend
        .set(&cx, "closing", "1".into(), OpSet::default())
        .await
        .unwrap();
    backend.close(&cx).await.unwrap();
    backend.close(&cx).await.unwrap();
    let err = backend.get(&cx, "closing").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let err = backend
        .multi_get(&cx, &["closing".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_a_connection_error() {
    // nothing listens on port 1
    let err = RedisConfig::from_url("redis://127.0.0.1:1")
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.is_temporary());
    assert!(
        err.to_string().contains("127.0.0.1:1"),
        "names the server: {err}"
    );
}

#[tokio::test]
async fn scripts_survive_a_script_flush_and_are_cached_again() {
    let Some(backend) = backend_with("").await else {
        return;
    };
    let cache = cache_core::Cache::builder(backend)
        .namespace(cache_core::testkit::random_namespace())
        .build();
    // what a server restart does to the script cache
    cache
        .raw("SCRIPT FLUSH", Vec::<String>::new())
        .await
        .unwrap();
    cache.set("k", &1).await.unwrap();
    assert!(cache.compare_and_set("k", Some(&1), &2).await.unwrap());
    assert!(cache.expire("k", cache_core::Ttl::Never).await.unwrap());
    // the first call loaded the script (EVAL); later calls run it by hash (EVALSHA)
    let known = cache
        .raw(
            "SCRIPT EXISTS",
            ["cd85d25289d4cecfb3703518ecd9cc28cc072c94"],
        )
        .await
        .unwrap();
    assert_eq!(
        known,
        cache_core::RawValue::Array(vec![cache_core::RawValue::Int(1)])
    );
    assert!(cache.compare_and_set("k", Some(&2), &3).await.unwrap());
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(3));
}

/// The backend names its server for telemetry: `server.address` and `server.port`.
#[tokio::test]
async fn the_endpoint_is_the_configured_server() {
    let Some(backend) = backend_with("").await else {
        return;
    };
    let url = server_url("CACHE_TEST_REDIS_URL").unwrap();
    let config = RedisConfig::from_url(&url).unwrap();
    let endpoint = backend.endpoint().expect("a server");
    assert_eq!(endpoint.address, config.endpoint);
    assert_eq!(endpoint.port, Some(config.port));
}
