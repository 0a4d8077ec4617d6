use std::sync::LazyLock;

use stratacache::{Cache, MemoryBackend, cached};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));

struct Query {
    id: u32,
}

#[cached(cache = CACHE)]
async fn find(query: Query) -> u32 {
    query.id
}

fn main() {}
