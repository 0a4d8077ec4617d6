//! Tag invalidation: entries written with tags carry them; a read compares them with the
//! tags' invalidation times.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use std::time::Instant;

use super::Layer;
use crate::backend::{Backend, Entry, OpSet};
use crate::context::CallContext;
use crate::envelope::{self, EntryTags, MAGIC, Stored};
use crate::plugin::Command;
use crate::tags::{MARKER_PREFIX, Tags, stamp_invalidation, stamp_now};
use crate::{Capability, Error, KeyBuilder, Result, forward_backend};

/// Tag invalidation over any backend: [`CacheBuilder::tags`](crate::CacheBuilder::tags)
/// installs it, below the cache's deadline and above the layers added with
/// [`CacheBuilder::layer`](crate::CacheBuilder::layer), and the stack's
/// [`Capability::tags`] says so.
///
/// - **Writes** (`set`, `add`, `multi_set`, `compare_and_set`) whose
///   [`CallContext::tags`] are not empty store the entry in the version 2
///   [envelope](crate::envelope), with its tags and its write time (the context's
///   [`as_of_ms`](CallContext::as_of_ms) when given, else now). Entries without tags are
///   stored as they come.
/// - **Reads** (`get`, `multi_get`) of a tagged entry answer a miss when any of its tags was
///   invalidated at or after the entry was written. The invalidation times come from the
///   tags' markers, kept in process for [`Tags::refresh`]; those missing or older are read
///   in one `multi_get` per call. Entries without tags cost a look at their first four
///   bytes. `exists` answers as `get` would (it reads the entry).
/// - A **lease** of the read-through over a tagged entry whose tag was invalidated is
///   replaced, atomically, by the same lease over nothing, so the entry is not served while
///   its key is loaded.
/// - `add`, and a `compare_and_set` that expects the key absent, treat an invalidated entry
///   as absent: they replace it with a compare-and-set on its exact bytes.
/// - A `multi_set` whose context's command is [`Command::InvalidateTags`] writes each tag's
///   marker (the time now) instead, in one `multi_set`; the layer knows its own
///   invalidations at once.
/// - `ttl` and `expire` act on the stored entry, invalidated or not; `delete`, `increment`,
///   `clear`, `raw` and the rest pass through.
#[derive(Debug, Clone)]
pub struct TagLayer {
    shared: Arc<Shared>,
}

impl TagLayer {
    /// Tag invalidation with `options`, building each marker's key with `key_builder` (the
    /// cache's, so the markers live in the namespace of the call and its `clear` removes
    /// them).
    pub fn new(options: Tags, key_builder: Arc<dyn KeyBuilder>) -> Self {
        TagLayer {
            shared: Arc::new(Shared {
                options,
                key_builder,
                known: RwLock::new(Known::default()),
            }),
        }
    }
}

impl Layer for TagLayer {
    fn layer(&self, inner: Arc<dyn Backend>) -> Arc<dyn Backend> {
        Arc::new(Tagged {
            inner,
            shared: self.shared.clone(),
        })
    }
}

#[derive(Debug)]
struct Shared {
    options: Tags,
    key_builder: Arc<dyn KeyBuilder>,
    known: RwLock<Known>,
}

/// Invalidation times read (or written) by this process: per namespace (`""`: none), per
/// tag.
#[derive(Debug, Default)]
struct Known {
    times: HashMap<String, HashMap<String, TagTime, Fast>, Fast>,
    count: usize,
}

/// The hasher of the tag table: namespaces and tags are short strings this process chose to
/// look up (not a way in for an attacker to pick colliding keys), read on every read of a
/// tagged entry; a multiply-rotate hash of 8 bytes at a time costs a fraction of SipHash.
type Fast = std::hash::BuildHasherDefault<FastHasher>;

#[derive(Debug, Default, Clone, Copy)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy)]
struct TagTime {
    /// The last invalidation (ms since the epoch; 0: never invalidated).
    at_ms: u64,
    /// When it was read: it is trusted until `read + refresh`.
    read: Instant,
}

impl Shared {
    fn known(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The invalidation time of `tag` in `ns` if it was read within the refresh bound.
    fn fresh_time(&self, known: &Known, ns: &str, tag: &str, now: Instant) -> Option<u64> {
        self.fresh_in(known.times.get(ns)?, tag, now)
    }

    /// [`fresh_time`](Self::fresh_time) in the times of one namespace.
    #[inline]
    fn fresh_in(
        &self,
        per_ns: &HashMap<String, TagTime, Fast>,
        tag: &str,
        now: Instant,
    ) -> Option<u64> {
        let t = per_ns.get(tag)?;
        (now.saturating_duration_since(t.read) < self.options.refresh).then_some(t.at_ms)
    }

    /// Records invalidation times read (or written) at `read`; a time never goes back.
    fn record(&self, ns: &str, times: impl IntoIterator<Item = (String, u64)>, read: Instant) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        for (tag, at_ms) in times {
            if known.count >= self.options.max_tracked {
                *known = Known::default();
            }
            let Known { times, count } = &mut *known;
            let per_ns = match times.get_mut(ns) {
                Some(per_ns) => per_ns,
                None => times.entry(ns.to_owned()).or_default(),
            };
            match per_ns.get_mut(&tag) {
                Some(t) => {
                    t.at_ms = t.at_ms.max(at_ms);
                    t.read = t.read.max(read);
                }
                None => {
                    per_ns.insert(tag, TagTime { at_ms, read });
                    *count += 1;
                }
            }
        }
    }

    fn marker_key(&self, ns: Option<&str>, tag: &str) -> Result<String> {
        let key = format!("{MARKER_PREFIX}{tag}");
        Ok(self
            .key_builder
            .build(&key, ns)
            .map_err(|e| e.with_context_once("tag", tag))?
            .into_owned())
    }
}

/// The backend a [`TagLayer`] gives.
#[derive(Debug)]
struct Tagged {
    inner: Arc<dyn Backend>,
    shared: Arc<Shared>,
}

/// Whether `bytes` are a lease of the read-through (version 1, kind 2).
fn is_lease(bytes: &[u8]) -> bool {
    bytes.len() > 4 && bytes[..3] == MAGIC && bytes[3] == envelope::VERSION && bytes[4] == 2
}

impl Tagged {
    fn ns<'c>(ctx: &CallContext<'c>) -> &'c str {
        ctx.namespace().unwrap_or("")
    }

    /// `value` with the call's tags, if it has any.
    fn tag(&self, ctx: &CallContext<'_>, value: Bytes) -> Result<Bytes> {
        if ctx.tags().is_empty() {
            return Ok(value);
        }
        let created = ctx.as_of_ms().unwrap_or_else(stamp_now);
        envelope::with_tags(value, ctx.tags(), created)
    }

    /// Reads the invalidation times of `tags` in the call's namespace that are not known
    /// fresh, in one `multi_get` of their markers.
    async fn refresh(&self, ctx: &CallContext<'_>, tags: &[&str]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let ns = ctx.namespace();
        let keys = tags
            .iter()
            .map(|t| self.shared.marker_key(ns, t))
            .collect::<Result<Vec<String>>>()?;
        let user: Vec<&str> = keys.iter().map(String::as_str).collect();
        let read_ctx = ctx
            .on_behalf(Command::MultiGet)
            .with_namespace(ns)
            .with_keys(&user);
        let sent = Instant::now();
        let values = self.inner.multi_get(&read_ctx, &keys).await?;
        let mut times = Vec::with_capacity(tags.len());
        for ((tag, key), value) in tags.iter().zip(&keys).zip(values) {
            let at_ms = match value {
                None => 0,
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::serialization(
                            "a tag's marker does not hold an invalidation time (decimal ms)",
                        )
                        .with_context("key", key)
                        .with_context("tag", *tag)
                    })?,
            };
            times.push(((*tag).to_owned(), at_ms));
        }
        self.shared.record(Self::ns(ctx), times, sent);
        Ok(())
    }

    /// For each of `entries`, whether a tag of it was invalidated at or after it was
    /// written. Reads the markers not known fresh, all in one round trip.
    async fn invalidated(
        &self,
        ctx: &CallContext<'_>,
        entries: &[EntryTags<'_>],
    ) -> Result<Vec<bool>> {
        let ns = Self::ns(ctx);
        let judge = |shared: &Shared, now: Instant, missing: &mut Vec<String>| {
            let known = shared.known();
            entries
                .iter()
                .map(|entry| {
                    let mut gone = false;
                    for tag in entry.iter() {
                        match shared.fresh_time(&known, ns, tag, now) {
                            Some(at) => gone |= at >= entry.created_ms(),
                            None if !missing.iter().any(|m| m == tag) => {
                                missing.push(tag.to_owned())
                            }
                            None => {}
                        }
                    }
                    gone
                })
                .collect::<Vec<bool>>()
        };
        let mut missing = Vec::new();
        let now = Instant::now();
        let answer = judge(&self.shared, now, &mut missing);
        if missing.is_empty() {
            return Ok(answer);
        }
        drop(answer);
        let tags: Vec<&str> = missing.iter().map(String::as_str).collect();
        self.refresh(ctx, &tags).await?;
        // judged again with what was just read (recorded as read when it was sent, so fresh
        // for this call even with a refresh of zero)
        let known = self.shared.known();
        let at = |tag: &str| {
            known
                .times
                .get(ns)
                .and_then(|m| m.get(tag))
                .map_or(0, |t| t.at_ms)
        };
        Ok(entries
            .iter()
            .map(|entry| entry.iter().any(|tag| at(tag) >= entry.created_ms()))
            .collect())
    }

    /// Whether `entry` is invalidated, from the tag times known fresh in process alone;
    /// `None` when a time is missing or too old (it must be read).
    fn judge_known(&self, ns: &str, entry: &EntryTags<'_>) -> Option<bool> {
        let now = Instant::now();
        let known = self.shared.known();
        let per_ns = known.times.get(ns)?;
        let mut unknown = false;
        for tag in entry.iter() {
            match self.shared.fresh_in(per_ns, tag, now) {
                Some(at) if at >= entry.created_ms() => return Some(true),
                Some(_) => {}
                None => unknown = true,
            }
        }
        (!unknown).then_some(false)
    }

    /// Whether one entry is invalidated: from the times known in process, else after reading
    /// the missing ones.
    async fn invalidated_one(&self, ctx: &CallContext<'_>, entry: EntryTags<'_>) -> Result<bool> {
        match self.judge_known(Self::ns(ctx), &entry) {
            Some(gone) => Ok(gone),
            None => Ok(self.invalidated(ctx, &[entry]).await?[0]),
        }
    }

    /// What a read of `key` answers for the stored `bytes`: them, or `None` when they are
    /// a tagged entry whose tag was invalidated. A lease over such an entry is replaced by
    /// the same lease over nothing.
    async fn visible(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        bytes: Bytes,
    ) -> Result<Option<Bytes>> {
        if let Some(tags) = EntryTags::read(&bytes).map_err(|e| e.with_context_once("key", key))? {
            let gone = self.invalidated_one(ctx, tags).await?;
            return Ok((!gone).then_some(bytes));
        }
        if !is_lease(&bytes) {
            return Ok(Some(bytes));
        }
        self.lease_over_invalidated(ctx, key, bytes).await
    }

    /// A lease: when what it replaced is a tagged entry whose tag was invalidated, the lease
    /// alone (over nothing) is put in its place, or the key removed when the lease is over.
    /// The values of a multi-key read that the tags leave visible.
    async fn visible_many(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
        mut values: Vec<Option<Bytes>>,
    ) -> Result<Vec<Option<Bytes>>> {
        let mut tagged = Vec::new();
        let mut at = Vec::new();
        let mut leases = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let Some(bytes) = value else { continue };
            match EntryTags::read(bytes) {
                Ok(Some(tags)) => {
                    tagged.push(tags);
                    at.push(i);
                }
                Ok(None) if is_lease(bytes) => leases.push(i),
                Ok(None) => {}
                Err(e) => return Err(e.with_context_once("key", &keys[i])),
            }
        }
        if !tagged.is_empty() {
            let gone = self.invalidated(ctx, &tagged).await?;
            drop(tagged);
            for (i, gone) in at.into_iter().zip(gone) {
                if gone {
                    values[i] = None;
                }
            }
        }
        for i in leases {
            if let Some(bytes) = values[i].take() {
                values[i] = self.lease_over_invalidated(ctx, &keys[i], bytes).await?;
            }
        }
        Ok(values)
    }

    async fn lease_over_invalidated(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        bytes: Bytes,
    ) -> Result<Option<Bytes>> {
        let Ok(Stored::Lease {
            until_ms, previous, ..
        }) = Stored::decode(bytes.clone())
        else {
            return Ok(Some(bytes));
        };
        let Ok(Some(tags)) = EntryTags::read(&previous) else {
            return Ok(Some(bytes));
        };
        if !self.invalidated_one(ctx, tags).await? {
            return Ok(Some(bytes));
        }
        if !self.inner.capability().compare_and_set {
            return Ok(None);
        }
        let now = envelope::now_ms();
        let keys = [key];
        if until_ms <= now {
            let del = ctx.on_behalf(Command::CompareAndDelete).with_keys(&keys);
            self.inner.compare_and_delete(&del, key, bytes).await?;
            return Ok(None);
        }
        let alone = bytes.slice(..bytes.len() - previous.len());
        let cas = ctx.on_behalf(Command::CompareAndSet).with_keys(&keys);
        let keep = Duration::from_millis(until_ms - now + 1_000);
        let op = OpSet::new(self.inner.capability().keep_within(Some(keep)));
        if self
            .inner
            .compare_and_set(&cas, key, Some(bytes), alone.clone(), op)
            .await?
        {
            Ok(Some(alone))
        } else {
            Ok(None)
        }
    }

    /// After a write that needed `key` absent failed: when what `key` holds is an entry
    /// whose tag was invalidated, `new` replaces it if it is still there, atomically.
    async fn replace_invalidated(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        if !self.inner.capability().compare_and_set {
            return Ok(false);
        }
        let keys = [key];
        let sub = |command| ctx.on_behalf(command).with_keys(&keys);
        let Some(current) = self.inner.get(&sub(Command::Get), key).await? else {
            // gone meanwhile: the write may go in where there is nothing
            return self
                .inner
                .compare_and_set(&sub(Command::CompareAndSet), key, None, new, op)
                .await;
        };
        let Some(tags) = EntryTags::read(&current).ok().flatten() else {
            return Ok(false);
        };
        if !self.invalidated_one(ctx, tags).await? {
            return Ok(false);
        }
        self.inner
            .compare_and_set(&sub(Command::CompareAndSet), key, Some(current), new, op)
            .await
    }

    /// Writes the marker of each tag of the call: the time now.
    async fn invalidate(&self, ctx: &CallContext<'_>) -> Result<()> {
        let tags = ctx.tags();
        if tags.is_empty() {
            return Ok(());
        }
        let ns = ctx.namespace();
        let at = stamp_invalidation();
        let value = Bytes::from(at.to_string());
        let entries = tags
            .iter()
            .map(|t| Ok((self.shared.marker_key(ns, t)?, value.clone())))
            .collect::<Result<Vec<(String, Bytes)>>>()?;
        let op = OpSet::new(
            self.inner
                .capability()
                .keep_within(self.shared.options.marker_ttl),
        );
        self.inner.multi_set(ctx, &entries, op).await?;
        // this process sees its own invalidation at once
        self.shared.record(
            Self::ns(ctx),
            tags.iter().map(|t| (t.clone(), at)),
            Instant::now(),
        );
        Ok(())
    }
}

#[async_trait]
impl Backend for Tagged {
    forward_backend!(inner: name, endpoint, delete, multi_delete, increment, expire, ttl,
        compare_and_delete, clear, raw, close);

    fn capability(&self) -> Capability {
        Capability {
            tags: true,
            ..self.inner.capability()
        }
    }

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        match self.inner.get(ctx, key).await? {
            Some(bytes) => self.visible(ctx, key, bytes).await,
            None => Ok(None),
        }
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let values = self.inner.multi_get(ctx, keys).await?;
        self.visible_many(ctx, keys, values).await
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        let Some(entry) = self.inner.get_with_ttl(ctx, key).await? else {
            return Ok(None);
        };
        let ttl = entry.ttl;
        Ok(self
            .visible(ctx, key, entry.value)
            .await?
            .map(|value| Entry::new(value, ttl)))
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        let entries = self.inner.multi_get_with_ttl(ctx, keys).await?;
        let ttls: Vec<_> = entries.iter().map(|e| e.as_ref().map(|e| e.ttl)).collect();
        let values = entries.into_iter().map(|e| e.map(|e| e.value)).collect();
        let values = self.visible_many(ctx, keys, values).await?;
        Ok(values
            .into_iter()
            .zip(ttls)
            .map(|(value, ttl)| Some(Entry::new(value?, ttl?)))
            .collect())
    }

    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        let read = ctx.on_behalf(Command::Get).with_keys(ctx.keys());
        match self.inner.get(&read, key).await? {
            None => Ok(false),
            Some(bytes) => match EntryTags::read(&bytes) {
                Ok(Some(tags)) => Ok(!self.invalidated_one(ctx, tags).await?),
                // not an entry with tags (a lease, bytes that only look like an envelope):
                // it exists
                _ => Ok(true),
            },
        }
    }

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        let value = self.tag(ctx, value)?;
        self.inner.set(ctx, key, value, op).await
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        let value = self.tag(ctx, value)?;
        if self.inner.add(ctx, key, value.clone(), op).await? {
            return Ok(true);
        }
        self.replace_invalidated(ctx, key, value, op).await
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        if ctx.command() == Command::InvalidateTags {
            return self.invalidate(ctx).await;
        }
        if ctx.tags().is_empty() {
            return self.inner.multi_set(ctx, entries, op).await;
        }
        let tagged = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.tag(ctx, v.clone())?)))
            .collect::<Result<Vec<(String, Bytes)>>>()?;
        self.inner.multi_set(ctx, &tagged, op).await
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let new = self.tag(ctx, new)?;
        let absent = expected.is_none();
        if self
            .inner
            .compare_and_set(ctx, key, expected, new.clone(), op)
            .await?
        {
            return Ok(true);
        }
        if !absent {
            return Ok(false);
        }
        self.replace_invalidated(ctx, key, new, op).await
    }
}
