use std::sync::LazyLock;

use stratacache::{Cache, MemoryBackend, cached};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));

#[cached(cache = CACHE)]
fn not_async(id: u32) -> u32 {
    id
}

#[cached(cache = CACHE, expire = "5m")]
async fn unknown_option(id: u32) -> u32 {
    id
}

#[cached(cache = CACHE, key = "user:{user_id}")]
async fn key_names_no_argument(id: u32) -> u32 {
    id
}

#[cached(cache = CACHE, key = "user:{}")]
async fn key_without_a_name(id: u32) -> u32 {
    id
}

#[cached(key = "user:{id}")]
async fn no_cache(id: u32) -> u32 {
    id
}

#[cached(cache = CACHE, ttl = "5")]
async fn ttl_without_unit(id: u32) -> u32 {
    id
}

#[cached(cache = CACHE, cache_none = true)]
async fn cache_none_without_option(id: u32) -> u32 {
    id
}

#[cached(caches = CACHE, key = "user:{id}")]
async fn registry_without_a_name(id: u32) -> u32 {
    id
}

struct Repo;

impl Repo {
    #[cached(cache = CACHE)]
    async fn mutable(&mut self, id: u32) -> u32 {
        id
    }
}

fn main() {}
