//! Last known values kept in process, served while the backend cannot be read.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::Layer;
use crate::backend::{Backend, ClearScope, Entry, OpSet};
use crate::context::CallContext;
use crate::envelope::{self, Stored};
use crate::{Error, ErrorKind, Result, forward_backend};

/// Keeps the last known value of up to `entries` keys in process, and answers reads from
/// them while the backend cannot be read, within each value's fail-safe window.
///
/// Only values in the [envelope](crate::envelope) are kept (the window is in it). A value
/// is kept when a read returns it or a write stores it; it is dropped when the key is
/// deleted, overwritten by a value without the envelope, cleared, incremented, or when a
/// write fails (its state is then unknown) — unless the failed write carried the kept answer
/// itself (the same value with other times, as fail-safe writes back a stale value after a
/// failed load, or a lease over it): whichever the key holds then, the kept value is still
/// its last known answer. When `entries` are held, the oldest kept is dropped first.
///
/// A read that fails with a temporary error ([`Error::is_temporary`]) or a timeout is
/// answered from the kept values that are still servable; a fresh one reads as a hit, a
/// stale one as the stale value it is (the handle decides whether a stale value may be
/// served). A key with nothing kept still fails. [`served`](Self::served) counts the answers.
///
/// [`CacheBuilder::read_through`](crate::CacheBuilder::read_through) installs it, above the
/// cache's deadline (so a backend that hangs is answered from here when the deadline passes)
/// and below the plugin hooks (so plugins see the answer), when fail-safe is on.
#[derive(Debug, Clone)]
pub struct FailSafeLayer {
    kept: Arc<Kept>,
}

#[derive(Debug)]
struct Kept {
    max: usize,
    table: RwLock<Table>,
    served: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    values: HashMap<String, Bytes>,
    /// Keys in the order they were first kept; may hold keys dropped since.
    order: VecDeque<String>,
}

impl FailSafeLayer {
    /// Keeps up to `entries` last known values.
    pub fn new(entries: usize) -> Self {
        FailSafeLayer {
            kept: Arc::new(Kept {
                max: entries,
                table: RwLock::new(Table::default()),
                served: AtomicU64::new(0),
            }),
        }
    }

    /// Reads answered from the kept values so far (this layer and its clones).
    pub fn served(&self) -> u64 {
        self.kept.served.load(Ordering::Relaxed)
    }

    /// How many values are kept now.
    pub fn len(&self) -> usize {
        self.kept.lock().values.len()
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Layer for FailSafeLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(FailSafe {
            inner,
            kept: self.kept.clone(),
        })
    }
}

impl Kept {
    fn lock(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `value` for `key` when it is in the envelope (for a lease, the value it
    /// replaced, which is still the key's last known answer); forgets the key otherwise.
    fn note(&self, key: &str, value: &Bytes) {
        if self.max == 0 {
            return;
        }
        let value = match Stored::decode(value.clone()) {
            Ok(Stored::Value { .. } | Stored::Negative { .. }) => value.clone(),
            Ok(Stored::Lease { previous, .. })
                if matches!(
                    Stored::decode(previous.clone()),
                    Ok(Stored::Value { .. } | Stored::Negative { .. })
                ) =>
            {
                previous
            }
            _ => {
                self.forget(key);
                return;
            }
        };
        // The common case, a hit on a value kept already, takes only the read lock.
        if self
            .read()
            .values
            .get(key)
            .is_some_and(|kept| *kept == value)
        {
            return;
        }
        let value = &value;
        let mut table = self.lock();
        if let Some(old) = table.values.get_mut(key) {
            *old = value.clone();
            return;
        }
        while table.values.len() >= self.max {
            let Some(oldest) = table.order.pop_front() else {
                break;
            };
            table.values.remove(&oldest);
        }
        table.values.insert(key.to_owned(), value.clone());
        table.order.push_back(key.to_owned());
        // `order` may hold keys forgotten since; keep it from growing without bound.
        if table.order.len() > 2 * self.max.max(16) {
            let Table { values, order } = &mut *table;
            order.retain(|k| values.contains_key(k));
        }
    }

    fn forget(&self, key: &str) {
        if self.max == 0 || !self.read().values.contains_key(key) {
            return;
        }
        self.lock().values.remove(key);
    }

    /// A write of `value` to `key` failed: the key holds its former value or `value`. The
    /// kept value stays when `value` carries the same answer, else it is forgotten.
    fn write_failed(&self, key: &str, value: &Bytes) {
        if self.max == 0 {
            return;
        }
        let mut table = self.lock();
        let same = match (table.values.get(key), answer_of(value)) {
            (Some(kept), Some(written)) => answer_of(kept) == Some(written),
            _ => false,
        };
        if !same {
            table.values.remove(key);
        }
    }

    /// The kept value of `key`, if it may still be served.
    fn servable(&self, key: &str, now_ms: u64) -> Option<Bytes> {
        let table = self.read();
        let value = table.values.get(key)?;
        match Stored::decode(value.clone()) {
            Ok(Stored::Value { times, .. } | Stored::Negative { times })
                if times.is_servable(now_ms) =>
            {
                Some(value.clone())
            }
            _ => None,
        }
    }
}

/// The answer stored bytes give a read-through: `Some(Some(payload))` for a value,
/// `Some(None)` for a negative entry, the answer of the bytes it replaced for a lease;
/// `None` for anything else (bytes without the envelope, a lease over nothing).
fn answer_of(bytes: &Bytes) -> Option<Option<Bytes>> {
    let carried = |stored| match stored {
        Ok(Stored::Value { payload, .. }) => Some(Some(payload)),
        Ok(Stored::Negative { .. }) => Some(None),
        _ => None,
    };
    match Stored::decode(bytes.clone()) {
        Ok(Stored::Lease { previous, .. }) => carried(Stored::decode(previous)),
        stored => carried(stored),
    }
}

/// Whether a failed read may be answered from the kept values.
/// The lifetime a stale value served through [`Backend::get_with_ttl`] reports: the shortest
/// there is, so a tier above never keeps a stale answer as if it were fresh.
const STALE_TTL: std::time::Duration = std::time::Duration::from_millis(1);

/// A kept value answered through [`Backend::get_with_ttl`].
fn stale_entry(value: Bytes) -> Entry {
    Entry::new(value, Some(STALE_TTL))
}

fn may_answer(e: &Error) -> bool {
    e.is_temporary() || e.kind() == ErrorKind::Timeout
}

#[cold]
fn log_served(ctx: &CallContext<'_>, e: &Error, keys: usize) {
    tracing::warn!(
        op = ctx.command().as_str(),
        backend = ctx.backend(),
        keys,
        error = %format_args!("{e:#}"),
        "the backend failed; answering from the last known values (fail-safe)"
    );
}

/// The backend a [`FailSafeLayer`] gives.
#[derive(Debug)]
struct FailSafe {
    inner: Arc<dyn Backend>,
    kept: Arc<Kept>,
}

impl FailSafe {
    /// Keeps what a read found, forgets what it did not, and answers a failed read from
    /// the values kept (`stale` makes an answer of a kept value).
    fn read<T>(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        answer: Result<Option<T>>,
        value: impl Fn(&T) -> &Bytes,
        stale: impl Fn(Bytes) -> T,
    ) -> Result<Option<T>> {
        match answer {
            Ok(found) => {
                match &found {
                    Some(v) => self.kept.note(key, value(v)),
                    None => self.kept.forget(key),
                }
                Ok(found)
            }
            Err(e) if may_answer(&e) => match self.kept.servable(key, envelope::now_ms()) {
                Some(kept) => {
                    self.kept.served.fetch_add(1, Ordering::Relaxed);
                    log_served(ctx, &e, 1);
                    Ok(Some(stale(kept)))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// [`read`](Self::read) of many keys: a failed read is answered when any key was kept.
    fn read_many<T>(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
        answer: Result<Vec<Option<T>>>,
        value: impl Fn(&T) -> &Bytes,
        stale: impl Fn(Bytes) -> T,
    ) -> Result<Vec<Option<T>>> {
        match answer {
            Ok(found) => {
                for (key, v) in keys.iter().zip(&found) {
                    match v {
                        Some(v) => self.kept.note(key, value(v)),
                        None => self.kept.forget(key),
                    }
                }
                Ok(found)
            }
            Err(e) if may_answer(&e) => {
                let now = envelope::now_ms();
                let answer: Vec<Option<T>> = keys
                    .iter()
                    .map(|k| self.kept.servable(k, now).map(&stale))
                    .collect();
                let served = answer.iter().filter(|v| v.is_some()).count();
                if served == 0 {
                    return Err(e);
                }
                self.kept.served.fetch_add(1, Ordering::Relaxed);
                log_served(ctx, &e, served);
                Ok(answer)
            }
            Err(e) => Err(e),
        }
    }

    fn after_write(&self, key: &str, value: &Bytes, answer: &Result<bool>) {
        match answer {
            Ok(true) => self.kept.note(key, value),
            Ok(false) => {}
            Err(_) => self.kept.write_failed(key, value),
        }
    }
}

#[async_trait]
impl Backend for FailSafe {
    forward_backend!(inner: name, capability, endpoint, exists, expire, ttl, raw);

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        let answer = self.inner.get(ctx, key).await;
        self.read(ctx, key, answer, |v| v, |v| v)
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let answer = self.inner.multi_get(ctx, keys).await;
        self.read_many(ctx, keys, answer, |v| v, |v| v)
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        let answer = self.inner.get_with_ttl(ctx, key).await;
        self.read(ctx, key, answer, |e| &e.value, stale_entry)
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        let answer = self.inner.multi_get_with_ttl(ctx, keys).await;
        self.read_many(ctx, keys, answer, |e| &e.value, stale_entry)
    }

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        let answer = self.inner.set(ctx, key, value.clone(), op).await;
        self.after_write(
            key,
            &value,
            &answer.as_ref().map(|()| true).map_err(Clone::clone),
        );
        answer
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        let answer = self.inner.add(ctx, key, value.clone(), op).await;
        self.after_write(key, &value, &answer);
        answer
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        let answer = self.inner.multi_set(ctx, entries, op).await;
        for (key, value) in entries {
            match &answer {
                Ok(()) => self.kept.note(key, value),
                Err(_) => self.kept.write_failed(key, value),
            }
        }
        answer
    }

    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        self.kept.forget(key);
        self.inner.delete(ctx, key).await
    }

    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        for key in keys {
            self.kept.forget(key);
        }
        self.inner.multi_delete(ctx, keys).await
    }

    async fn increment(&self, ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        self.kept.forget(key);
        self.inner.increment(ctx, key, delta).await
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let answer = self
            .inner
            .compare_and_set(ctx, key, expected, new.clone(), op)
            .await;
        self.after_write(key, &new, &answer);
        answer
    }

    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let answer = self.inner.compare_and_delete(ctx, key, expected).await;
        if !matches!(answer, Ok(false)) {
            self.kept.forget(key);
        }
        answer
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        {
            let mut table = self.kept.lock();
            match scope {
                ClearScope::All => *table = Table::default(),
                ClearScope::Namespace { prefix, .. } => {
                    table.values.retain(|k, _| !k.starts_with(prefix));
                }
            }
        }
        self.inner.clear(ctx, scope).await
    }

    async fn close(&self, ctx: &CallContext<'_>) -> Result<()> {
        *self.kept.lock() = Table::default();
        self.inner.close(ctx).await
    }
}
