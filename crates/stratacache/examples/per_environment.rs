//! One service, three environments: the code below never names a backend. A config file
//! does, and swapping the file (or one environment variable) moves the service from the
//! in-process memory backend to Redis or Memcached.
//!
//! ```text
//! cargo run --example per_environment                                   # examples/config/memory.toml
//! cargo run --example per_environment --features redis -- crates/stratacache/examples/config/redis.toml
//! cargo run --example per_environment --features memcached -- crates/stratacache/examples/config/memcached.toml
//! APP_CACHE_USERS_URL=redis://10.0.0.5:6379 cargo run --example per_environment --features redis
//! ```
//!
//! The file is a table of named caches (see `examples/config/*.toml`); each
//! `APP_CACHE_<NAME>_URL` environment variable replaces the URL of one cache, so secrets
//! and hosts stay out of the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratacache::prelude::*;
use stratacache::{CachesConfig, HitMissRatioPlugin};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

/// The slow thing the cache saves us from calling.
#[derive(Default)]
struct Database {
    loads: AtomicU64,
}

impl Database {
    async fn load_user(&self, id: u64) -> std::io::Result<User> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(User {
            id,
            name: format!("user-{id}"),
        })
    }
}

/// The service: it holds caches by name and never knows which backend is behind them.
struct UserService {
    users: AnyCache,
    sessions: AnyCache,
    db: Arc<Database>,
}

impl UserService {
    async fn new(caches: &Caches, db: Arc<Database>) -> Result<Self> {
        Ok(UserService {
            users: caches.get("users").await?,
            sessions: caches.get("sessions").await?,
            db,
        })
    }

    async fn user(&self, id: u64) -> Result<User> {
        let db = self.db.clone();
        self.users
            .get_or_set(
                &id.to_string(),
                move || async move { db.load_user(id).await },
            )
            .await
    }

    async fn login(&self, token: &str, id: u64) -> Result<()> {
        self.sessions.set(token, &id).await
    }

    async fn session(&self, token: &str) -> Result<Option<u64>> {
        self.sessions.get(token).await
    }
}

fn load_config() -> std::result::Result<CachesConfig, Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/config/memory.toml").to_owned()
    });
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut config: CachesConfig = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    for (name, cache) in &mut config {
        let var = format!("APP_CACHE_{}_URL", name.to_ascii_uppercase());
        if let Ok(url) = std::env::var(&var) {
            cache.url = url;
        }
    }
    println!("config: {path}");
    Ok(config)
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let caches = Caches::from_config(load_config()?);
    let db = Arc::new(Database::default());
    let service = UserService::new(&caches, db.clone()).await?;
    println!(
        "backend: users on {}, sessions on {}",
        service.users.backend_name(),
        service.sessions.backend_name()
    );
    // Start from a clean namespace so that the figures below are the same on every run.
    service.users.clear().await?;
    service.sessions.clear().await?;

    for id in [1, 2, 1, 1, 2, 3] {
        let user = service.user(id).await?;
        println!("user({id}) -> {}", user.name);
    }
    service.login("token-abc", 1).await?;
    println!(
        "session(token-abc) -> {:?}",
        service.session("token-abc").await?
    );
    println!(
        "session(expired)   -> {:?}",
        service.session("expired").await?
    );

    let ratio = service
        .users
        .find_plugin::<HitMissRatioPlugin>()
        .expect("the config file adds a hit_miss plugin to `users`");
    println!(
        "database loads: {} for 6 lookups; users cache: {} hits, {} misses",
        db.loads.load(Ordering::Relaxed),
        ratio.hits(),
        ratio.misses()
    );
    assert_eq!(
        db.loads.load(Ordering::Relaxed),
        3,
        "one load per distinct user"
    );
    caches.close_all().await?;
    Ok(())
}
