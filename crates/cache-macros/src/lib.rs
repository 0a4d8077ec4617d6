#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod expand;
mod func;
mod key;
mod options;

use proc_macro::TokenStream;

/// Caches the result of an `async fn` (a free function, or a method taking `&self`).
///
/// ```
/// # use std::sync::LazyLock;
/// # use stratacache::{Cache, MemoryBackend};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # type DbError = std::io::Error;
/// static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));
///
/// #[stratacache::cached(cache = CACHE, key = "user:{id}", ttl = "5m", namespace = "users")]
/// async fn load_user(id: u64) -> Result<User, DbError> {
///     Ok(User { id }) // the database query
/// }
/// ```
///
/// A call reads the cache; on a miss it runs the function through the cache's `get_or_set`, so
/// concurrent callers of one key share one run, and stores the result.
///
/// # Options
///
/// - `cache = EXPR` (required): the cache, evaluated on each call and used by method call, so
///   a `Cache`, a `&Cache`, a `static` `LazyLock<Cache>` or a field (`self.cache`) all work.
/// - `caches = EXPR, alias = "name"` (instead of `cache`): the shared cache of `name` in a
///   `stratacache::Caches` registry (aiocache's `alias`), fetched on each call.
/// - `key = "user:{id}"`: a template naming arguments (formatted with `Display`, or a format
///   spec such as `{id:?}`); a name that is no argument is a compile error. Without it the key
///   is the function's path, its type parameters and its arguments as a JSON array
///   (`app::users::load_user[42]`), so the arguments must implement `serde::Serialize`. Methods
///   use `Self`'s type name as the path; `self` is not part of the key.
/// - `ttl = "5m"` (a literal checked at compile time) or `ttl = EXPR` (a `Duration` or a `Ttl`);
///   without it, the cache's default TTL.
/// - `namespace = "users"` or `namespace = EXPR` (anything that is `AsRef<str>`).
/// - `unless = |v| …`: a predicate on the value about to be stored; when it holds, the value is
///   returned but not stored.
/// - `cache_none = true`: for a function returning `Option<T>` (or `Result<Option<T>, E>`),
///   also store `None` (as a null); by default only `Some` values are stored.
/// - `crate = "path"`: where the runtime is (default `::stratacache`).
///
/// # What is stored
///
/// The value, the `Some` value of an `Option` (the whole `Option` with `cache_none = true`),
/// the `Ok` value of a `Result`. An error is never stored: the caller whose run failed gets its
/// error, and callers that were waiting for that run run the function themselves. When the
/// cache fails (unreachable backend, a stored value that no longer decodes, an argument that
/// does not serialize), the function runs without it and the failure is logged (`tracing`, at
/// `warn`); a stored value that no longer decodes is replaced.
///
/// # Generated helpers
///
/// Next to `name`, with its visibility and generics (as methods for a method):
/// `name_invalidate(&args…) -> Result<bool>`, `name_refresh(args…) -> Output`,
/// `name_cached(&args…) -> Result<Option<Stored>>` and `name_key(&args…) -> Result<String>`.
/// The original body is kept as a hidden `__name_uncached`.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Caches the values of an `async fn` that loads many keys at once, key by key.
///
/// ```
/// # use std::collections::HashMap;
/// # use std::sync::LazyLock;
/// # use stratacache::{Cache, MemoryBackend};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # type DbError = std::io::Error;
/// static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::new(MemoryBackend::new()));
///
/// #[stratacache::multi_cached(cache = CACHE, keys = ids, key = "user:{}", ttl = "5m")]
/// async fn load_users(ids: Vec<u64>) -> Result<HashMap<u64, User>, DbError> {
///     Ok(ids.into_iter().map(|id| (id, User { id })).collect()) // one query for all
/// }
/// ```
///
/// The function takes a collection of keys (`Vec<K>`, `HashSet<K>`, `&[K]`, …) and returns a
/// map of the keys it found to their values (`HashMap<K, V>`, `BTreeMap<K, V>`, `Vec<(K, V)>`,
/// or a `Result` of one). A call reads every key with one `multi_get`; only the keys that
/// missed (and that no other caller is loading) reach the function, through the cache's
/// `get_or_set_many`; what it returns is stored with one `multi_set`. The call returns the map
/// of every key found, cached or loaded. A key the function does not return is not stored and
/// not in the map.
///
/// # Options
///
/// - `cache = EXPR` or `caches = EXPR, alias = "name"` (required), `ttl`, `namespace`,
///   `crate`: as for [`macro@cached`].
/// - `keys = ident`: the argument holding the keys (needed when there are several arguments).
/// - `key = "user:{}"`: a template with one `{}`, the place of each key (formatted with
///   `Display`), and optionally other arguments by name. Without it, each key is the key the
///   function's path, its other arguments and that key would get from `#[cached]`:
///   `app::load_users["eu",42]`. The template is applied once per key.
///
/// `K` must be `Clone + Eq + Hash` (the keys that missed are handed to the function and its
/// answers matched back to their cache keys), and the other arguments `Clone` (the function
/// may be called twice: a second time for keys another caller was loading and gave up).
///
/// # Generated helper
///
/// `name_invalidate(&keys, &args…) -> Result<u64>` removes the entries of those keys.
#[proc_macro_attribute]
pub fn multi_cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::multi_cached(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
