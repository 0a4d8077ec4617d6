//! Every supported shape of function compiles, and its helpers with it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::LazyLock;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use stratacache::{Cache, MemoryBackend, Ttl, cached, multi_cached};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));

fn cache() -> &'static Cache {
    &CACHE
}

/// No arguments, no return value.
#[cached(cache = CACHE)]
pub async fn unit() {}

/// Lifetimes, a `mut` argument and a pattern.
#[allow(clippy::needless_lifetimes)] // the point: a named lifetime
#[cached(cache = CACHE, key = "{name}:{__arg2:?}")]
pub(crate) async fn borrowed<'a>(name: &'a str, mut count: u32, (x, y): (u8, u8)) -> String {
    count += u32::from(x) + u32::from(y);
    format!("{name}{count}")
}

/// A where clause, a const parameter and a `Ttl` expression.
#[cached(cache = cache(), ttl = Ttl::After(Duration::from_secs(3)))]
async fn generic<T, const N: usize>(seed: u8) -> Vec<T>
where
    T: Default + Clone + Serialize + DeserializeOwned,
{
    let _ = seed;
    vec![T::default(); N]
}

/// An `impl Trait` argument.
#[cached(cache = CACHE)]
async fn implicit(value: impl Serialize + std::fmt::Display + Send) -> String {
    value.to_string()
}

/// `io::Result`, and `Result<Option<T>, E>` storing `None`.
#[cached(cache = CACHE, key = "io:{id}")]
async fn io_result(id: u32) -> std::io::Result<u32> {
    Ok(id)
}

#[cached(cache = CACHE, key = "ro:{id}", cache_none = true, namespace = "shapes")]
async fn result_option(id: u32) -> Result<Option<u32>, String> {
    Ok((id > 0).then_some(id))
}

/// Methods of a generic type; `Option<Self>` as the return type.
#[derive(Clone, Serialize, serde::Deserialize)]
struct Repo<T> {
    id: u32,
    #[serde(skip)]
    marker: PhantomData<T>,
}

impl<T: Send + Sync + 'static> Repo<T> {
    #[cached(cache = CACHE)]
    async fn find(&self, id: u32) -> Option<Self> {
        Some(Repo {
            id,
            marker: PhantomData,
        })
    }

    #[multi_cached(cache = CACHE, key = "repo:{}")]
    async fn many(&self, ids: &[u32]) -> BTreeMap<u32, u32> {
        ids.iter().map(|&i| (i, i + self.id)).collect()
    }
}

/// A set of keys and a `Result` of a `Vec` of pairs.
#[multi_cached(cache = CACHE, keys = ids, ttl = "10s")]
async fn from_set(prefix: String, ids: BTreeSet<String>) -> Result<Vec<(String, String)>, String> {
    Ok(ids
        .into_iter()
        .map(|i| (i.clone(), format!("{prefix}{i}")))
        .collect())
}

#[tokio::test]
async fn every_shape_runs() {
    unit().await;
    unit_invalidate().await.unwrap();
    assert_eq!(borrowed("a", 1, (2, 3)).await, "a6");
    assert_eq!(borrowed_key("a", &1, &(2, 3)).unwrap(), "a:(2, 3)");
    assert_eq!(generic::<u8, 2>(0).await, [0, 0]);
    assert_eq!(
        generic_key::<u8, 2>(&0).unwrap(),
        "shapes::generic::<u8, 2>[0]"
    );
    assert_eq!(implicit(5).await, "5");
    assert_eq!(io_result(3).await.unwrap(), 3);
    assert_eq!(result_option(0).await.unwrap(), None);
    assert_eq!(result_option_cached(&0).await.unwrap(), Some(None));
    let repo: Repo<u8> = Repo {
        id: 10,
        marker: PhantomData,
    };
    assert_eq!(repo.find(4).await.map(|r| r.id), Some(4));
    assert_eq!(repo.find_key(&4).unwrap(), "shapes::Repo<u8>::find[4]");
    assert_eq!(repo.many(&[1, 2]).await, BTreeMap::from([(1, 11), (2, 12)]));
    assert_eq!(repo.many_invalidate(&[1]).await.unwrap(), 1);
    let found = from_set("p".into(), BTreeSet::from(["x".into()]))
        .await
        .unwrap();
    assert_eq!(found, [("x".to_string(), "px".to_string())]);
    assert_eq!(
        from_set_invalidate(&"p".into(), &BTreeSet::from(["x".into()]))
            .await
            .unwrap(),
        1
    );
}
