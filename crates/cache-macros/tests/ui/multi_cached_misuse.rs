use std::collections::HashMap;
use std::sync::LazyLock;

use stratacache::{Cache, MemoryBackend, multi_cached};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));

#[multi_cached(cache = CACHE)]
async fn returns_a_list(ids: Vec<u32>) -> Vec<u32> {
    ids
}

#[multi_cached(cache = CACHE)]
async fn returns_an_option(ids: Vec<u32>) -> Option<HashMap<u32, u32>> {
    Some(ids.into_iter().map(|i| (i, i)).collect())
}

#[multi_cached(cache = CACHE)]
async fn which_keys(region: String, ids: Vec<u32>) -> HashMap<u32, String> {
    ids.into_iter().map(|i| (i, region.clone())).collect()
}

#[multi_cached(cache = CACHE, key = "user:{ids}")]
async fn template_names_the_keys(ids: Vec<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|i| (i, i)).collect()
}

#[multi_cached(cache = CACHE, key = "users")]
async fn template_without_a_place(ids: Vec<u32>) -> HashMap<u32, u32> {
    ids.into_iter().map(|i| (i, i)).collect()
}

fn main() {}
