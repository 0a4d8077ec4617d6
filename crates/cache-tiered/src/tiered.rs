//! The tier as a [`Backend`]: the local level in front of the stack below it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::tier::{Invalidated, Invalidator, Locality};
use cache_core::{
    Backend, CallContext, Capability, ClearScope, Endpoint, Entry, KeyTtl, OpSet, RawValue, Result,
};

use crate::local::{Local, Ticket};
use crate::stats::Counters;

/// An in-process level in front of `remote`.
pub(crate) struct Tiered {
    pub(crate) local: Arc<Local>,
    pub(crate) remote: Arc<dyn Backend>,
    pub(crate) channel: Option<Arc<dyn Invalidator>>,
}

impl fmt::Debug for Tiered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tiered")
            .field("remote", &self.remote)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Tiered {
    /// Whether the local level may hold `key` now: the channel is up and delivers its changes.
    #[inline]
    fn keeps(&self, key: &str) -> bool {
        self.local.enabled() && self.channel.as_ref().is_none_or(|c| c.covers(key))
    }

    /// A ticket for a call on `key` that may leave a copy, when the local level keeps it.
    fn ticket<'a>(&'a self, key: &'a str) -> Option<Ticket<'a>> {
        self.keeps(key).then(|| self.local.ticket(key))
    }

    /// Finishes the ticket of a write (if any) with the copy it leaves.
    fn written(&self, ticket: Option<Ticket<'_>>, copy: Option<(&Bytes, Option<Duration>)>) {
        if let Some(t) = ticket {
            self.local.finish_write(t, copy);
        }
    }

    /// Tells the other instances what changed. A failure does not fail the write (it
    /// reached the remote level); it is counted and logged, and the other instances keep
    /// their copies at most until their local lifetime ends.
    async fn publish(&self, ctx: &CallContext<'_>, what: Invalidated<'_>) {
        let Some(channel) = &self.channel else { return };
        match channel.publish(ctx, what).await {
            Ok(()) => Counters::add(&self.local.counters.published),
            Err(e) => {
                Counters::add(&self.local.counters.publish_failures);
                tracing::warn!(
                    channel = channel.name(),
                    error = %e,
                    "stratacache tier: could not tell other instances about a change; their local copies end with their local lifetime"
                );
            }
        }
    }

    async fn publish_key(&self, ctx: &CallContext<'_>, key: &str) {
        if self.channel.is_some() {
            self.publish(ctx, Invalidated::Keys(&[key.to_owned()]))
                .await;
        }
    }

    /// Settles a write that the remote level may refuse (`add`, compare-and-set/-delete):
    /// done, the local copy becomes `copy` (none: dropped) and the other instances are told;
    /// refused, only this instance's copy is dropped (the stored value is not the one it
    /// expected, which the copy may be); failed, the copy is dropped and the others told (the
    /// write may have landed).
    async fn settle_conditional(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ticket: Option<Ticket<'_>>,
        answer: &Result<bool>,
        copy: Option<(&Bytes, Option<Duration>)>,
    ) {
        match answer {
            Ok(true) => self.written(ticket, copy),
            Ok(false) => {
                if let Some(t) = ticket {
                    self.local.finish(t, None);
                }
                return;
            }
            Err(_) => self.written(ticket, None),
        }
        self.publish_key(ctx, key).await;
    }

    /// A read of `key` from the remote level that leaves a copy.
    async fn read_through(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        let ticket = self.local.ticket(key);
        let entry = self.remote.get_with_ttl(ctx, key).await?;
        self.local
            .finish(ticket, entry.as_ref().map(|e| (&e.value, e.ttl)));
        Ok(entry)
    }

    /// Reads of `keys` from the remote level in one call, leaving copies of those kept.
    async fn read_many_through(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        let tickets: Vec<Option<Ticket<'_>>> = keys.iter().map(|k| self.ticket(k)).collect();
        let entries = self.remote.multi_get_with_ttl(ctx, keys).await?;
        for (ticket, entry) in tickets.into_iter().zip(&entries) {
            if let Some(t) = ticket {
                self.local
                    .finish(t, entry.as_ref().map(|e| (&e.value, e.ttl)));
            }
        }
        Ok(entries)
    }

    fn local_get(&self, key: &str, ctx: &CallContext<'_>) -> Option<Bytes> {
        if !self.local.enabled() {
            return None;
        }
        let value = self.local.get(key, ctx.memo());
        self.count(value.is_some());
        value
    }

    #[inline]
    fn count(&self, hit: bool) {
        let c = &self.local.counters;
        Counters::add(if hit { &c.local_hits } else { &c.local_misses });
    }
}

#[async_trait]
impl Backend for Tiered {
    fn name(&self) -> &'static str {
        self.remote.name()
    }

    fn capability(&self) -> Capability {
        self.remote.capability()
    }

    fn endpoint(&self) -> Option<Endpoint> {
        self.remote.endpoint()
    }

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        let locality = ctx.locality();
        if locality == Locality::LocalOnly {
            return Ok(self.local_get(key, ctx));
        }
        if !self.keeps(key) {
            return self.remote.get(ctx, key).await;
        }
        if locality == Locality::Default
            && let Some(value) = self.local.get(key, ctx.memo())
        {
            self.count(true);
            return Ok(Some(value));
        }
        self.count(false);
        Ok(self.read_through(ctx, key).await?.map(|e| e.value))
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let locality = ctx.locality();
        if locality == Locality::LocalOnly {
            return Ok(keys.iter().map(|k| self.local_get(k, ctx)).collect());
        }
        if !self.local.enabled() {
            return self.remote.multi_get(ctx, keys).await;
        }
        let mut values: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
        let mut missed = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let hit = if locality == Locality::Default && self.keeps(key) {
                self.local.get(key, None)
            } else {
                None
            };
            self.count(hit.is_some());
            if hit.is_none() {
                missed.push(i);
            }
            values.push(hit);
        }
        if missed.is_empty() {
            return Ok(values);
        }
        if missed.len() == keys.len() {
            let entries = self.read_many_through(ctx, keys).await?;
            return Ok(entries.into_iter().map(|e| e.map(|e| e.value)).collect());
        }
        let missing: Vec<String> = missed.iter().map(|&i| keys[i].clone()).collect();
        let entries = self.read_many_through(ctx, &missing).await?;
        for (i, entry) in missed.into_iter().zip(entries) {
            values[i] = entry.map(|e| e.value);
        }
        Ok(values)
    }

    async fn get_with_ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Entry>> {
        if ctx.locality() == Locality::LocalOnly {
            if !self.local.enabled() {
                return Ok(None);
            }
            return Ok(self
                .local
                .get_with_ttl(key)
                .map(|(value, ttl)| Entry::new(value, ttl)));
        }
        if !self.keeps(key) {
            return self.remote.get_with_ttl(ctx, key).await;
        }
        self.read_through(ctx, key).await
    }

    async fn multi_get_with_ttl(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Entry>>> {
        if ctx.locality() == Locality::LocalOnly {
            let enabled = self.local.enabled();
            return Ok(keys
                .iter()
                .map(|k| {
                    enabled
                        .then(|| self.local.get_with_ttl(k))
                        .flatten()
                        .map(|(value, ttl)| Entry::new(value, ttl))
                })
                .collect());
        }
        self.read_many_through(ctx, keys).await
    }

    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        if ctx.locality() == Locality::LocalOnly {
            self.local.put_local(key, &value, op.ttl);
            return Ok(());
        }
        let ticket = self.ticket(key);
        let answer = self.remote.set(ctx, key, value.clone(), op).await;
        match answer {
            Ok(()) => self.written(ticket, Some((&value, op.ttl))),
            Err(_) => self.written(ticket, None),
        }
        self.publish_key(ctx, key).await;
        answer
    }

    async fn add(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<bool> {
        if ctx.locality() == Locality::LocalOnly {
            if self.local.get(key, None).is_some() {
                return Ok(false);
            }
            self.local.put_local(key, &value, op.ttl);
            return Ok(true);
        }
        let ticket = self.ticket(key);
        let answer = self.remote.add(ctx, key, value.clone(), op).await;
        // refused: the key holds a value this instance may not have a copy of
        self.settle_conditional(ctx, key, ticket, &answer, Some((&value, op.ttl)))
            .await;
        answer
    }

    async fn multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        if ctx.locality() == Locality::LocalOnly {
            for (k, v) in entries {
                self.local.put_local(k, v, op.ttl);
            }
            return Ok(());
        }
        let tickets: Vec<_> = entries.iter().map(|(k, _)| self.ticket(k)).collect();
        let answer = self.remote.multi_set(ctx, entries, op).await;
        // the last duplicate wins: it settles first, and the earlier ones find the key
        // written since their tickets
        for (ticket, (_, value)) in tickets.into_iter().zip(entries).rev() {
            match answer {
                Ok(()) => self.written(ticket, Some((value, op.ttl))),
                Err(_) => self.written(ticket, None),
            }
        }
        if self.channel.is_some() && !entries.is_empty() {
            let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            self.publish(ctx, Invalidated::Keys(&keys)).await;
        }
        answer
    }

    async fn delete(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        if ctx.locality() == Locality::LocalOnly {
            return Ok(self.local.remove(key));
        }
        let ticket = self.ticket(key);
        let answer = self.remote.delete(ctx, key).await;
        self.written(ticket, None);
        if !matches!(answer, Ok(false)) {
            self.publish_key(ctx, key).await;
        }
        answer
    }

    async fn multi_delete(&self, ctx: &CallContext<'_>, keys: &[String]) -> Result<u64> {
        if ctx.locality() == Locality::LocalOnly {
            return Ok(keys.iter().filter(|k| self.local.remove(k)).count() as u64);
        }
        let tickets: Vec<_> = keys.iter().map(|k| self.ticket(k)).collect();
        let answer = self.remote.multi_delete(ctx, keys).await;
        for ticket in tickets {
            self.written(ticket, None);
        }
        if !matches!(answer, Ok(0)) && !keys.is_empty() {
            self.publish(ctx, Invalidated::Keys(keys)).await;
        }
        answer
    }

    async fn exists(&self, ctx: &CallContext<'_>, key: &str) -> Result<bool> {
        if ctx.locality() == Locality::LocalOnly {
            return Ok(self.local_get(key, ctx).is_some());
        }
        self.remote.exists(ctx, key).await
    }

    async fn increment(&self, ctx: &CallContext<'_>, key: &str, delta: i64) -> Result<i64> {
        let ticket = self.ticket(key);
        let answer = self.remote.increment(ctx, key, delta).await;
        self.written(ticket, None);
        self.publish_key(ctx, key).await;
        answer
    }

    async fn expire(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let ticket = self.ticket(key);
        let answer = self.remote.expire(ctx, key, ttl).await;
        self.written(ticket, None);
        if !matches!(answer, Ok(false)) {
            self.publish_key(ctx, key).await;
        }
        answer
    }

    async fn ttl(&self, ctx: &CallContext<'_>, key: &str) -> Result<KeyTtl> {
        if ctx.locality() == Locality::LocalOnly {
            return Ok(
                match self
                    .local
                    .enabled()
                    .then(|| self.local.get_with_ttl(key))
                    .flatten()
                {
                    None => KeyTtl::Missing,
                    Some((_, None)) => KeyTtl::NoExpiry,
                    Some((_, Some(d))) => KeyTtl::Remaining(d),
                },
            );
        }
        self.remote.ttl(ctx, key).await
    }

    async fn compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Option<Bytes>,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let ticket = self.ticket(key);
        let answer = self
            .remote
            .compare_and_set(ctx, key, expected, new.clone(), op)
            .await;
        // refused: the stored value is not the expected one, which this instance's copy may be
        self.settle_conditional(ctx, key, ticket, &answer, Some((&new, op.ttl)))
            .await;
        answer
    }

    async fn compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let ticket = self.ticket(key);
        let answer = self.remote.compare_and_delete(ctx, key, expected).await;
        self.settle_conditional(ctx, key, ticket, &answer, None)
            .await;
        answer
    }

    async fn clear(&self, ctx: &CallContext<'_>, scope: ClearScope<'_>) -> Result<Option<u64>> {
        let answer = self.remote.clear(ctx, scope).await;
        match scope {
            ClearScope::Namespace { prefix, .. } => {
                self.local.drop_prefix(prefix);
                self.publish(ctx, Invalidated::Prefix(prefix)).await;
            }
            ClearScope::All => {
                self.local.drop_all();
                self.publish(ctx, Invalidated::All).await;
            }
        }
        answer
    }

    async fn raw(
        &self,
        ctx: &CallContext<'_>,
        command: &str,
        args: &[RawValue],
    ) -> Result<RawValue> {
        self.remote.raw(ctx, command, args).await
    }

    async fn close(&self, ctx: &CallContext<'_>) -> Result<()> {
        let channel = match &self.channel {
            Some(c) => c.close().await,
            None => Ok(()),
        };
        self.local.drop_all();
        let remote = self.remote.close(ctx).await;
        remote.and(channel)
    }
}
