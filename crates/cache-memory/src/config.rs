//! [`MemoryConfig`]: the settings of the memory backend as one serde struct, and its
//! `memory://` URL.

use std::sync::Arc;

use cache_core::url::{self, CACHE_PARAMS, UrlConfig};
use cache_core::{AiocacheFlavor, Backend, Error, Result};
use serde::{Deserialize, Serialize};

use crate::MemoryBuilder;

/// The URL scheme of this backend: `memory://?max_entries=100000&max_bytes=256m`.
pub const MEMORY_SCHEME: &str = "memory";

/// Every scheme [`MemoryConfig::from_url`] accepts.
pub const SCHEMES: &[&str] = &[MEMORY_SCHEME];

/// Every setting of a [`MemoryBackend`](crate::MemoryBackend), for config files and URLs.
/// Turn it into a backend with [`into_builder`](Self::into_builder) and
/// [`MemoryBuilder::build`].
///
/// Both bounds are off by default (`#[serde(default)]`); unknown fields are refused.
///
/// ```
/// use cache_memory::MemoryConfig;
///
/// let config = MemoryConfig::from_url("memory://?max_entries=100_000&max_bytes=256m")?;
/// assert_eq!(config.max_entries, Some(100_000));
/// assert_eq!(config.max_bytes, Some(256 << 20));
/// let backend = config.into_builder().build();
/// assert!(backend.is_empty());
///
/// let from_file: MemoryConfig = serde_json::from_str(r#"{ "max_entries": 1000 }"#).unwrap();
/// assert_eq!(from_file.max_entries, Some(1000));
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Most entries held at once; beyond that, entries are evicted. Default: no bound.
    pub max_entries: Option<u64>,
    /// Most bytes held at once, counting each entry's key and value lengths. Default: no
    /// bound.
    pub max_bytes: Option<u64>,
    /// Scoped `clear()` in constant time through namespace generations: each key is stored
    /// with its namespace's generation folded in, and `clear()` increments the generation
    /// instead of walking the store; the cleared entries are unreachable at once and
    /// reclaimed by their TTL, by eviction, or by the sweep. Costs a key copy per command.
    /// Default: false (`clear()` removes the namespace's entries, shard by shard).
    pub namespace_generations: bool,
    /// With namespace generations, removes the cleared generation's entries on a background
    /// thread after each `clear()`, one shard at a time. Default: false.
    pub generation_sweep: bool,
}

impl MemoryConfig {
    /// Parses `memory://`, `memory://?max_entries=…&max_bytes=…`.
    ///
    /// `max_entries` and `max_bytes` take a positive count: `100000`, `100_000`, or with a
    /// `k`, `m` or `g` suffix (powers of 1024): `64k`, `256m`; `namespace_generations` and
    /// `generation_sweep` take `true` or `false`. Each may be given once. The URL
    /// has no host, path or credentials.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) naming the problem: another
    /// scheme, credentials, a host or path, a fragment, an unknown or repeated parameter, a
    /// value that is not a positive count. The message never repeats the user-info.
    pub fn from_url(url: &str) -> Result<MemoryConfig> {
        let Some(parts) = url::split(url.trim()) else {
            return Err(Error::config(format!(
                "a memory URL starts with {MEMORY_SCHEME}://; write memory:// or \
                 memory://?max_entries=100000"
            )));
        };
        if !parts.scheme.eq_ignore_ascii_case(MEMORY_SCHEME) {
            return Err(Error::config(format!(
                "the scheme is {:?}; the memory backend reads {MEMORY_SCHEME}:// URLs",
                url::shorten(parts.scheme)
            )));
        }
        if parts.userinfo.is_some() {
            return Err(Error::config(
                "memory:// takes no credentials; remove the user-info (everything up to the `@`)",
            ));
        }
        if parts.has_fragment() {
            return Err(Error::config(
                "a fragment (#...) has no meaning in a cache URL; percent-encode a `#` in a \
                 query value as %23",
            ));
        }
        let base = parts.base();
        if !base.is_empty() && base != "/" {
            return Err(Error::config(format!(
                "memory:// takes no host or path (found {:?}); write memory:// or \
                 memory://?max_entries=100000",
                url::shorten(base)
            )));
        }
        let mut config = MemoryConfig::default();
        for param in url::Query::new(parts.query()) {
            let key = param.name;
            if param.repeated {
                return Err(Error::config(format!(
                    "memory:// parameter `{key}` is given twice"
                )));
            }
            let slot = match key {
                "max_entries" => &mut config.max_entries,
                "max_bytes" => &mut config.max_bytes,
                "namespace_generations" | "generation_sweep" => {
                    let on = match param.value.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" | "on" => true,
                        "false" | "0" | "no" | "off" => false,
                        _ => {
                            return Err(Error::config(format!(
                                "memory:// parameter `{key}`: {:?} is not true or false",
                                url::shorten(param.value)
                            )));
                        }
                    };
                    if key == "namespace_generations" {
                        config.namespace_generations = on;
                    } else {
                        config.generation_sweep = on;
                    }
                    continue;
                }
                _ => {
                    return Err(Error::config(format!(
                        "unknown memory:// parameter `{}`; expected max_entries, max_bytes, \
                         namespace_generations, generation_sweep, {}",
                        url::shorten(key),
                        CACHE_PARAMS.join(", ")
                    )));
                }
            };
            let n = url::parse_size(param.value)
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::config(format!(
                        "memory:// parameter `{key}`: {:?} is not a positive count like \
                         100000, 64k or 256m",
                        url::shorten(param.value)
                    ))
                })?;
            *slot = Some(n);
        }
        Ok(config)
    }

    /// A builder holding this configuration.
    pub fn into_builder(self) -> MemoryBuilder {
        MemoryBuilder::from_config(self)
    }
}

#[cache_core::async_trait]
impl UrlConfig for MemoryConfig {
    const SCHEMES: &'static [&'static str] = SCHEMES;
    const AIOCACHE_FLAVOR: AiocacheFlavor = AiocacheFlavor::Memory;

    fn from_url(url: &str) -> Result<Self> {
        MemoryConfig::from_url(url)
    }

    async fn connect(self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(self.into_builder().build()))
    }
}

#[cfg(test)]
mod tests {
    use cache_core::ErrorKind;

    use super::*;

    #[test]
    fn sizes_and_defaults() {
        assert_eq!(
            MemoryConfig::from_url("memory://?max_entries=1000&max_bytes=64m").unwrap(),
            MemoryConfig {
                max_entries: Some(1000),
                max_bytes: Some(64 << 20),
                ..MemoryConfig::default()
            }
        );
        assert_eq!(
            MemoryConfig::from_url("memory://").unwrap(),
            MemoryConfig::default()
        );
        let c = MemoryConfig::from_url("memory://?namespace_generations=true&generation_sweep=1")
            .unwrap();
        assert!(c.namespace_generations && c.generation_sweep);
        assert_eq!(
            MemoryConfig::from_url("MEMORY:///").unwrap(),
            MemoryConfig::default()
        );
        for (text, n) in [
            ("100_000", 100_000),
            ("64k", 65_536),
            ("2M", 2 << 20),
            ("1g", 1 << 30),
        ] {
            let c = MemoryConfig::from_url(&format!("memory://?max_bytes={text}")).unwrap();
            assert_eq!(c.max_bytes, Some(n), "{text}");
        }
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (url, needle) in [
            ("memory://?max_entries=ten", "`max_entries`"),
            ("memory://?max_entries=0", "`max_entries`"),
            ("memory://?max_bytes=99999999999999999999g", "`max_bytes`"),
            (
                "memory://?max_entries=1&max_entries=2",
                "`max_entries` is given twice",
            ),
            (
                "memory://?maxentries=10",
                "unknown memory:// parameter `maxentries`",
            ),
            (
                "memory://?maxentries=10",
                "generation_sweep, namespace, ttl",
            ),
            ("memory://?namespace_generations=maybe", "not true or false"),
            ("memory://host", "memory:// takes no host"),
            ("memory://u:secret@", "takes no credentials"),
            ("memory://#x", "fragment"),
            ("redis://h", "memory://"),
            ("memory", "memory://"),
        ] {
            let e = MemoryConfig::from_url(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
            assert!(!e.to_string().contains("secret"), "{url}: {e}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let c = MemoryConfig::from_url("memory://?max_entries=5").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<MemoryConfig>(&json).unwrap(), c);
        assert!(serde_json::from_str::<MemoryConfig>(r#"{"max_entry": 1}"#).is_err());
    }
}
