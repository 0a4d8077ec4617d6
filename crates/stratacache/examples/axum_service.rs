//! An HTTP service with a cached endpoint: `GET /users/{id}` answers from the cache and
//! loads from the (slow) database only on a miss, once per key however many requests
//! arrive together (`get_or_set` runs one loader per key and process).
//!
//! ```text
//! cargo run --example axum_service                      # serves on 127.0.0.1:3000, memory backend
//! APP_CACHE_URL=redis://127.0.0.1:6379 cargo run --example axum_service --features redis
//! cargo run --example axum_service -- --self-test        # serves, calls itself, checks, exits
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stratacache::prelude::*;
use stratacache::{HitMissRatioPlugin, PluginConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[derive(Clone)]
struct AppState {
    users: AnyCache,
    loads: Arc<AtomicU64>,
}

async fn load_user(loads: &AtomicU64, id: u64) -> Result<User, std::io::Error> {
    loads.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    if id == 0 {
        return Err(std::io::Error::other("user 0 does not exist"));
    }
    Ok(User {
        id,
        name: format!("user-{id}"),
    })
}

async fn user(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<User>, (StatusCode, String)> {
    let loads = state.loads.clone();
    state
        .users
        .get_or_set(&id.to_string(), move || async move {
            load_user(&loads, id).await
        })
        .await
        .map(Json)
        .map_err(|e| match e.kind() {
            ErrorKind::Timeout | ErrorKind::Connection => {
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })
}

#[derive(Serialize)]
struct Stats {
    loads: u64,
    hits: u64,
    misses: u64,
}

async fn stats(State(state): State<AppState>) -> Json<Stats> {
    let ratio = state.users.find_plugin::<HitMissRatioPlugin>();
    Json(Stats {
        loads: state.loads.load(Ordering::Relaxed),
        hits: ratio.map_or(0, |r| r.hits()),
        misses: ratio.map_or(0, |r| r.misses()),
    })
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/stats", get(stats))
        .with_state(state)
}

/// One HTTP/1.1 GET over a fresh connection; the status line and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let self_test = std::env::args().any(|a| a == "--self-test");
    let mut config = match std::env::var("APP_CACHE_URL") {
        Ok(_) => CacheConfig::from_env("APP_CACHE")?,
        Err(_) => CacheConfig::new("memory://?max_entries=100000"),
    };
    if config.namespace.is_none() {
        config.namespace = Some("http-users".into());
    }
    config.plugins.push(PluginConfig::HitMiss {});
    let users = config.build().await?;
    users.clear().await?;
    let state = AppState {
        users,
        loads: Arc::new(AtomicU64::new(0)),
    };

    let addr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "listening on http://{addr}/users/42 (backend: {})",
        state.users.backend_name()
    );
    let server = tokio::spawn(axum::serve(listener, app(state.clone())).into_future());
    if !self_test {
        server.await??;
        return Ok(());
    }

    // 20 concurrent requests for one cold user: one database load.
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(http_get(addr, "/users/42")))
        .collect();
    for request in requests {
        let (status, body) = request.await??;
        assert!(status.contains("200"), "{status}");
        assert_eq!(serde_json::from_str::<User>(&body)?.name, "user-42");
    }
    let (status, body) = http_get(addr, "/users/0").await?;
    println!("GET /users/0 -> {status}: {body}");
    assert!(status.contains("500"), "{status}");
    let (_, stats) = http_get(addr, "/stats").await?;
    println!("GET /stats -> {stats}");
    let loads = state.loads.load(Ordering::Relaxed);
    assert_eq!(
        loads, 2,
        "one load for user 42 (20 requests), one failed load for user 0"
    );
    println!("self-test passed: 21 requests, {loads} database loads");
    server.abort();
    state.users.close().await?;
    Ok(())
}
