use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::backend::{Backend, ClearScope, Entry, OpSet};
use crate::context::CallContext;
use crate::{Capability, Error, ErrorKind, KeyTtl, RawValue, Result};

/// The simplest correct backend: one mutex around a `HashMap`, expiry checked on read with
/// Tokio's clock (so `tokio::time::pause` drives it). A reference for the conformance suite
/// and for examples; use `cache-memory` in real programs.
#[derive(Debug, Default)]
pub struct MapBackend {
    map: Mutex<HashMap<String, (Bytes, Option<Instant>)>>,
}

impl MapBackend {
    /// An empty store.
    pub fn new() -> Self {
        MapBackend::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, (Bytes, Option<Instant>)>) -> R) -> R {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, exp)| exp.is_none_or(|e| e > now));
        f(&mut map)
    }
}

/// The entry as `get_with_ttl` answers it: the remaining lifetime rounded up to whole
/// milliseconds.
fn entry(value: &Bytes, expires: Option<Instant>) -> Entry {
    let ttl = expires.map(|at| {
        let left = at.saturating_duration_since(Instant::now());
        Duration::from_millis(
            u64::try_from(left.as_nanos().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
        )
    });
    Entry::new(value.clone(), ttl)
}

fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|d| Instant::now() + d)
}

#[async_trait]
impl Backend for MapBackend {
    fn name(&self) -> &'static str {
        "map"
    }

    fn endpoint(&self) -> Option<crate::Endpoint> {
        None
    }

    fn capability(&self) -> Capability {
        Capability {
            exclusive_store: true,
            max_ttl: Some(Duration::from_secs(100 * 365 * 24 * 3600)),
            ..Capability::all()
        }
    }

    async fn get(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        Ok(self.with(|m| m.get(key).map(|(v, _)| v.clone())))
    }

    async fn multi_get(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        Ok(self.with(|m| {
            keys.iter()
                .map(|k| m.get(k).map(|(v, _)| v.clone()))
                .collect()
        }))
    }

    async fn get_with_ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        Ok(self.with(|m| m.get(key).map(|(v, exp)| entry(v, *exp))))
    }

    async fn multi_get_with_ttl(
        &self,
        _ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        Ok(self.with(|m| {
            keys.iter()
                .map(|k| m.get(k).map(|(v, exp)| entry(v, *exp)))
                .collect()
        }))
    }

    async fn set(&self, _ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        self.with(|m| m.insert(key.to_owned(), (value, deadline(op.ttl))));
        Ok(())
    }

    async fn add(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        value: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        Ok(self.with(|m| {
            if m.contains_key(key) {
                false
            } else {
                m.insert(key.to_owned(), (value, deadline(op.ttl)));
                true
            }
        }))
    }

    async fn multi_set(
        &self,
        _ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        self.with(|m| {
            for (k, v) in entries {
                m.insert(k.clone(), (v.clone(), deadline(op.ttl)));
            }
        });
        Ok(())
    }

    async fn delete(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        Ok(self.with(|m| m.remove(key).is_some()))
    }

    async fn multi_delete(&self, _ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        Ok(self.with(|m| keys.iter().filter(|k| m.remove(*k).is_some()).count() as u64))
    }

    async fn exists(&self, _ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        Ok(self.with(|m| m.contains_key(key)))
    }

    async fn increment(&self, _ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        self.with(|m| {
            let (current, exp) = match m.get(key) {
                None => (0, None),
                Some((v, exp)) => {
                    let n = std::str::from_utf8(v)
                        .ok()
                        .filter(|s| crate::testkit::cases::is_canonical_integer(s))
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| {
                            Error::invalid_argument("stored value is not a decimal integer")
                        })?;
                    (n, *exp)
                }
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                Error::invalid_argument("increment would overflow a 64-bit signed integer")
            })?;
            m.insert(key.to_owned(), (Bytes::from(next.to_string()), exp));
            Ok(next)
        })
    }

    async fn expire(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        Ok(self.with(|m| match m.get_mut(key) {
            Some((_, exp)) => {
                *exp = deadline(ttl);
                true
            }
            None => false,
        }))
    }

    async fn ttl(&self, _ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        Ok(self.with(|m| match m.get(key) {
            None => KeyTtl::Missing,
            Some((_, None)) => KeyTtl::NoExpiry,
            Some((_, Some(e))) => {
                let left = e.saturating_duration_since(Instant::now());
                // round up to whole milliseconds
                let ms = left.as_nanos().div_ceil(1_000_000) as u64;
                KeyTtl::Remaining(Duration::from_millis(ms))
            }
        }))
    }

    async fn compare_and_set(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        Ok(self.with(|m| {
            let current = m.get(key).map(|(v, _)| v);
            if current != expected.as_ref() {
                return false;
            }
            m.insert(key.to_owned(), (new, deadline(op.ttl)));
            true
        }))
    }

    async fn compare_and_delete(
        &self,
        _ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        Ok(self.with(|m| {
            if m.get(key).is_some_and(|(v, _)| *v == expected) {
                m.remove(key);
                true
            } else {
                false
            }
        }))
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        let removed = self.with(|m| {
            let before = m.len();
            match scope {
                ClearScope::All => m.clear(),
                ClearScope::Namespace { prefix, .. } => m.retain(|k, _| !k.starts_with(prefix)),
            }
            (before - m.len()) as u64
        });
        ctx.report_progress(removed);
        Ok(Some(removed))
    }

    async fn raw(
        &self,
        _ctx: &CallContext<'_>,
        command: &str,
        _args: &[RawValue],
    ) -> Result<RawValue> {
        match command.to_ascii_uppercase().as_str() {
            "PING" => Ok(RawValue::Text("PONG".into())),
            "DBSIZE" => Ok(RawValue::Int(self.with(|m| m.len()) as i64)),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown command {command:?}; the map backend knows PING and DBSIZE"),
            )),
        }
    }

    async fn close(&self, _ctx: &CallContext<'_>) -> Result<()> {
        self.with(|m| m.clear());
        Ok(())
    }
}
