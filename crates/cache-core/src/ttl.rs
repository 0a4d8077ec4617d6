//! Time to live: how long an entry stays, and what a key's remaining lifetime is.

use std::time::Duration;

use crate::{Capability, Error, Result};

/// How long an entry written by a call should live.
///
/// Every write takes its TTL from the call, else from the cache's default (set with
/// [`CacheBuilder::ttl`](crate::CacheBuilder::ttl)), else the entry never expires.
///
/// A zero duration is refused with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
/// — it never means "forever". Backends with millisecond precision round a sub-millisecond TTL
/// up to 1 ms; backends with whole seconds round up to the next second, so an entry never
/// expires early.
///
/// ```
/// use std::time::Duration;
/// use cache_core::Ttl;
///
/// let ttl: Ttl = Duration::from_secs(30).into();
/// assert_eq!(ttl, Ttl::After(Duration::from_secs(30)));
/// assert_eq!(Ttl::default(), Ttl::Default);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ttl {
    /// Use the cache's default TTL (no expiry if the cache has none).
    #[default]
    Default,
    /// Never expire, whatever the cache's default.
    Never,
    /// Expire after this long. Must be greater than zero.
    After(Duration),
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}

impl From<Option<Duration>> for Ttl {
    /// `None` means [`Ttl::Never`].
    fn from(d: Option<Duration>) -> Self {
        match d {
            Some(d) => Ttl::After(d),
            None => Ttl::Never,
        }
    }
}

impl Ttl {
    /// Resolves against the cache default and checks it against the backend's limits.
    /// `Ok(None)` means "no expiry".
    pub(crate) fn resolve(self, default: Ttl, capability: &Capability) -> Result<Option<Duration>> {
        let chosen = match self {
            Ttl::Default => match default {
                Ttl::Default => None,
                other => return other.resolve(Ttl::Never, capability),
            },
            Ttl::Never => None,
            Ttl::After(d) => Some(d),
        };
        match chosen {
            None => Ok(None),
            Some(d) if d.is_zero() => Err(Error::invalid_argument(
                "ttl must be greater than zero; use Ttl::Never for entries that do not expire",
            )),
            Some(d) => match capability.max_ttl {
                Some(max) if d > max => Err(Error::invalid_argument(format!(
                    "ttl {d:?} is longer than this backend's maximum of {max:?}"
                ))),
                _ => Ok(Some(d)),
            },
        }
    }
}

/// The remaining lifetime of a key, as answered by [`Cache::ttl`](crate::Cache::ttl).
///
/// The three answers are distinct on every backend: a missing key, a key that never
/// expires, and a key with time left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTtl {
    /// The key does not exist (or has already expired).
    Missing,
    /// The key exists and has no expiry.
    NoExpiry,
    /// The key exists and expires after this long (rounded up to the backend's precision).
    /// Never zero on the workspace's backends: a key that is still there reports at least
    /// one unit of the backend's precision (1 ms on memory and Redis, 1 s on memcached).
    Remaining(Duration),
}

impl KeyTtl {
    /// Whether the key exists.
    pub fn exists(&self) -> bool {
        !matches!(self, KeyTtl::Missing)
    }

    /// The remaining time, if the key exists and expires.
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            KeyTtl::Remaining(d) => Some(*d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn resolution_table() {
        let cap = Capability {
            max_ttl: Some(Duration::from_secs(100)),
            ..Capability::default()
        };
        let s = |n| Duration::from_secs(n);
        assert_eq!(Ttl::Default.resolve(Ttl::Default, &cap).unwrap(), None);
        assert_eq!(
            Ttl::Default.resolve(Ttl::After(s(5)), &cap).unwrap(),
            Some(s(5))
        );
        assert_eq!(Ttl::Never.resolve(Ttl::After(s(5)), &cap).unwrap(), None);
        assert_eq!(
            Ttl::After(s(7)).resolve(Ttl::After(s(5)), &cap).unwrap(),
            Some(s(7))
        );
        assert_eq!(
            Ttl::After(Duration::ZERO)
                .resolve(Ttl::Never, &cap)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            Ttl::Default
                .resolve(Ttl::After(Duration::ZERO), &cap)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            Ttl::After(s(101))
                .resolve(Ttl::Never, &cap)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
    }
}
