//! Namespace generations on Redis: every command of a namespace runs as one script that
//! reads the namespace's generation and works on the keys with it folded in.
//!
//! Layout (see `cache_core::generations`): a built key `{group}{rest}` is stored as
//! `{{group}}{generation}.{rest}` — the group in braces, a hash tag, so that on a cluster the
//! counter `{{group}}#g` and every key of the namespace share one hash slot and one script
//! can reach them all. `clear()` increments the counter; a background sweep (opt-in) removes
//! the keys of older generations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_core::generations::{generation_of, group, initial_generation, is_group};
use cache_core::{CallContext, ClearScope, Entry, Error, KeyTtl, OpSet, Result};
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Client, Key, Value};
use fred::types::FromValue;
use fred::util::redis_keyslot;
use tokio::sync::Semaphore;

use crate::backend::{RedisBackend, entries, key_ttl, millis};
use crate::clear::glob_escape;
use crate::error;
use crate::scripts::GENERATION;

/// Keys asked of `SCAN` per page of a sweep.
const SWEEP_PAGE: u32 = 1000;
/// Pause between two pages of a sweep.
const SWEEP_PAUSE: Duration = Duration::from_millis(10);
/// The hash tag around a group in a folded key.
const TAG_OPEN: &str = "{";
const TAG_CLOSE: &str = "}";

/// The generation state of a backend with namespace generations on.
#[derive(Debug)]
pub(crate) struct RedisGenerations {
    /// Sweeps run one at a time, so clears in a burst cannot pile scans onto the server.
    sweep: Option<Arc<Semaphore>>,
}

impl RedisGenerations {
    pub(crate) fn new(sweep: bool) -> Self {
        RedisGenerations {
            sweep: sweep.then(|| Arc::new(Semaphore::new(1))),
        }
    }
}

/// The counter key of `group`: `{group}#g`.
fn counter_key(group: &str) -> String {
    format!("{TAG_OPEN}{group}{TAG_CLOSE}#g")
}

/// The folded group: `{group}`.
fn folded_group(group: &str) -> String {
    format!("{TAG_OPEN}{group}{TAG_CLOSE}")
}

/// A key's text after its group.
#[inline]
fn rest<'k>(key: &'k str, group: &str) -> &'k str {
    &key[group.len()..]
}

fn text(s: &str) -> Value {
    Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
}

fn ttl_arg(ttl: Option<Duration>) -> Value {
    match ttl {
        Some(ttl) => Value::Integer(millis(ttl)),
        None => Value::Bytes(Bytes::new()),
    }
}

/// Keys split by group, in first-seen order: `(group, indexes)`.
fn by_group<'k, K: AsRef<str> + 'k>(
    keys: impl Iterator<Item = &'k K>,
) -> Vec<(Option<&'k str>, Vec<usize>)> {
    let mut out: Vec<(Option<&'k str>, Vec<usize>)> = Vec::new();
    for (i, key) in keys.enumerate() {
        let g = group(key.as_ref());
        match out.iter_mut().find(|(seen, _)| *seen == g) {
            Some((_, idx)) => idx.push(i),
            None => out.push((g, vec![i])),
        }
    }
    out
}

impl RedisBackend {
    /// The group of `key` when namespace generations are on and the key has one; on a
    /// cluster a group that would make an empty hash tag is refused.
    #[inline]
    pub(crate) fn generation_group<'k>(&self, key: &'k str) -> Result<Option<&'k str>> {
        if self.generations.is_none() {
            return Ok(None);
        }
        let Some(g) = group(key) else {
            return Ok(None);
        };
        if self.clustered && g.starts_with('}') {
            return Err(Error::invalid_argument(format!(
                "with namespace generations on a cluster a namespace cannot start with '}}' \
                 (it would make an empty hash tag): {g:?}"
            )));
        }
        Ok(Some(g))
    }

    /// Runs one generation operation of `group` on `client`.
    async fn in_generation<R, C>(
        &self,
        client: &C,
        group: &str,
        op: &'static str,
        args: impl IntoIterator<Item = Value>,
    ) -> Result<R>
    where
        R: FromValue,
        C: ClientLike,
    {
        self.in_generation_or(client, group, op, args, |e| self.fail(e))
            .await
    }

    /// [`in_generation`](Self::in_generation) with the conversion of a server error.
    async fn in_generation_or<R, C>(
        &self,
        client: &C,
        group: &str,
        op: &'static str,
        args: impl IntoIterator<Item = Value>,
        on_error: impl Fn(fred::error::Error) -> Error,
    ) -> Result<R>
    where
        R: FromValue,
        C: ClientLike,
    {
        let mut argv = vec![
            Value::Integer(initial_generation() as i64),
            text(&folded_group(group)),
            Value::Bytes(Bytes::from_static(op.as_bytes())),
        ];
        argv.extend(args);
        let keys = vec![Key::from(counter_key(group))];
        self.eval_or(client, &GENERATION, keys, argv, on_error)
            .await
    }

    /// The connection for the writes of `group` (one hash slot for the whole namespace).
    fn writer(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
    ) -> Result<fred::clients::WithOptions<Client>> {
        Ok(self
            .client_for(&counter_key(group))?
            .with_options(&self.write_options(ctx)))
    }

    pub(crate) async fn gen_get(&self, group: &str, key: &str) -> Result<Option<Bytes>> {
        self.in_generation(self.client()?, group, "get", [text(rest(key, group))])
            .await
    }

    pub(crate) async fn gen_multi_get(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut out = vec![None; keys.len()];
        for (g, idx) in by_group(keys.iter()) {
            let values: Vec<Option<Bytes>> = match self.generation_group(&keys[idx[0]])? {
                Some(g) => {
                    let args = idx.iter().map(|&i| text(rest(&keys[i], g)));
                    self.in_generation(self.client()?, g, "mget", args).await?
                }
                None => {
                    debug_assert!(g.is_none());
                    let plain: Vec<String> = idx.iter().map(|&i| keys[i].clone()).collect();
                    self.plain_multi_get(&plain).await?
                }
            };
            if values.len() != idx.len() {
                return Err(error::unexpected(format!(
                    "a multi_get of {} keys answered {} values",
                    idx.len(),
                    values.len()
                )));
            }
            for (i, v) in idx.into_iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// `get_with_ttl` of `keys` (all of `group`) in one run of the generation script: the
    /// values of the folded keys with their `PTTL`.
    pub(crate) async fn gen_entries<K: AsRef<str>>(
        &self,
        group: &str,
        keys: &[K],
    ) -> Result<Vec<Option<Entry>>> {
        let args = keys.iter().map(|k| text(rest(k.as_ref(), group)));
        let reply: Value = self
            .in_generation(self.client()?, group, "entries", args)
            .await?;
        entries(reply, keys.len())
    }

    /// `multi_get_with_ttl`: one generation script run per namespace (one hash slot each),
    /// keys of no namespace as without generations; all sent concurrently.
    pub(crate) async fn gen_multi_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let groups = by_group(keys.iter());
        let indexes: Vec<Vec<usize>> = groups.iter().map(|(_, idx)| idx.clone()).collect();
        self.per_group(keys.len(), &indexes, |idx| async move {
            let Some(&first) = idx.first() else {
                return Ok(Vec::new());
            };
            match self.generation_group(&keys[first])? {
                Some(g) => {
                    let group_keys: Vec<&str> = idx.iter().map(|&i| keys[i].as_str()).collect();
                    self.gen_entries(g, &group_keys).await
                }
                None => {
                    let plain: Vec<String> = idx.iter().map(|&i| keys[i].clone()).collect();
                    self.plain_multi_entries(&plain).await
                }
            }
        })
        .await
    }

    /// `set` (or with `nx`, `add`) in the key's generation; answers whether it wrote.
    pub(crate) async fn gen_set(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        key: &str,
        value: Bytes,
        op: OpSet,
        nx: bool,
    ) -> Result<bool> {
        let client = self.writer(ctx, group)?;
        let n: i64 = unsent_again!(async {
            let args = [
                text(rest(key, group)),
                Value::Bytes(value.clone()),
                ttl_arg(op.ttl),
                text(if nx { "NX" } else { "" }),
            ];
            self.in_generation(&client, group, "set", args).await
        })?;
        Ok(n == 1)
    }

    pub(crate) async fn gen_multi_set(
        &self,
        ctx: &CallContext<'_>,
        entries: &[(String, Bytes)],
        op: OpSet,
    ) -> Result<()> {
        for (g, idx) in by_group(entries.iter().map(|(k, _)| k)) {
            match self.generation_group(&entries[idx[0]].0)? {
                Some(g) => {
                    let client = self.writer(ctx, g)?;
                    let _: Value = unsent_again!(async {
                        let mut args = Vec::with_capacity(1 + 2 * idx.len());
                        args.push(ttl_arg(op.ttl));
                        for &i in &idx {
                            let (k, v) = &entries[i];
                            args.push(text(rest(k, g)));
                            args.push(Value::Bytes(v.clone()));
                        }
                        self.in_generation(&client, g, "mset", args).await
                    })?;
                }
                None => {
                    debug_assert!(g.is_none());
                    let plain: Vec<(String, Bytes)> =
                        idx.iter().map(|&i| entries[i].clone()).collect();
                    self.plain_multi_set(ctx, &plain, op).await?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn gen_delete(&self, ctx: &CallContext<'_>, keys: &[&str]) -> Result<u64> {
        let mut removed = 0;
        for (g, idx) in by_group(keys.iter()) {
            match self.generation_group(keys[idx[0]])? {
                Some(g) => {
                    let client = self.writer(ctx, g)?;
                    let n: i64 = unsent_again!(async {
                        let args = idx.iter().map(|&i| text(rest(keys[i], g)));
                        self.in_generation(&client, g, "del", args).await
                    })?;
                    removed += n.max(0) as u64;
                }
                None => {
                    debug_assert!(g.is_none());
                    let plain = idx.iter().map(|&i| Key::from(keys[i])).collect();
                    removed += self.unlink(self.client_for(keys[idx[0]])?, plain).await?;
                }
            }
        }
        Ok(removed)
    }

    pub(crate) async fn gen_exists(&self, group: &str, key: &str) -> Result<bool> {
        let n: i64 = self
            .in_generation(self.client()?, group, "exists", [text(rest(key, group))])
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn gen_increment(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64> {
        let client = self.writer(ctx, group)?;
        unsent_again!(async {
            let args = [text(rest(key, group)), Value::Integer(delta)];
            self.in_generation_or(&client, group, "incrby", args, |e| self.increment_error(e))
                .await
        })
    }

    pub(crate) async fn gen_expire(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let client = self.writer(ctx, group)?;
        let n: i64 = unsent_again!(async {
            let args = [text(rest(key, group)), ttl_arg(ttl)];
            self.in_generation(&client, group, "expire", args).await
        })?;
        Ok(n == 1)
    }

    pub(crate) async fn gen_ttl(&self, group: &str, key: &str) -> Result<KeyTtl> {
        let ms: i64 = self
            .in_generation(self.client()?, group, "pttl", [text(rest(key, group))])
            .await?;
        key_ttl(ms)
    }

    pub(crate) async fn gen_compare_and_set(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        key: &str,
        expected: Bytes,
        new: Bytes,
        op: OpSet,
    ) -> Result<bool> {
        let client = self.writer(ctx, group)?;
        let n: i64 = unsent_again!(async {
            let args = [
                text(rest(key, group)),
                Value::Bytes(expected.clone()),
                Value::Bytes(new.clone()),
                ttl_arg(op.ttl),
            ];
            self.in_generation(&client, group, "cas", args).await
        })?;
        Ok(n == 1)
    }

    pub(crate) async fn gen_compare_and_delete(
        &self,
        ctx: &CallContext<'_>,
        group: &str,
        key: &str,
        expected: Bytes,
    ) -> Result<bool> {
        let client = self.writer(ctx, group)?;
        let n: i64 = unsent_again!(async {
            let args = [text(rest(key, group)), Value::Bytes(expected.clone())];
            self.in_generation(&client, group, "cad", args).await
        })?;
        Ok(n == 1)
    }

    /// `clear()` of a namespace: one increment of its generation; with the sweep on, the
    /// older generations' keys are removed in the background.
    pub(crate) async fn gen_clear(
        &self,
        ctx: &CallContext<'_>,
        scope: &ClearScope<'_>,
    ) -> Result<Option<u64>> {
        let ClearScope::Namespace { namespace, prefix } = *scope else {
            return Err(error::unexpected("gen_clear of the whole store"));
        };
        if !is_group(prefix) {
            return Err(Error::unsupported(format!(
                "namespace generations scope keys by their text up to the first ':'; the key \
                 builder's prefix {prefix:?} has another shape"
            ))
            .with_context("namespace", namespace));
        }
        let Some(g) = self.generation_group(prefix)? else {
            return Err(error::unexpected("a namespace prefix without a group"));
        };
        let client = self.writer(ctx, g)?;
        let generation: u64 = unsent_again!(async {
            self.in_generation(&client, g, "clear", std::iter::empty())
                .await
        })?;
        if let Some(sweep) = self.generations.as_ref().and_then(|s| s.sweep.clone()) {
            self.spawn_sweep(sweep, g, generation);
        }
        Ok(None)
    }

    /// Removes, in the background, the keys of `group` stored under a generation older than
    /// `current`: a cursor-complete `SCAN` on the node that holds the group's slot, a page at
    /// a time with a pause between pages, one sweep at a time per backend.
    fn spawn_sweep(&self, permits: Arc<Semaphore>, group: &str, current: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(client) = self.client() else {
            return;
        };
        let client = client.clone();
        let folded = folded_group(group);
        let pattern = format!("{}*", glob_escape(&folded));
        let node = if self.clustered {
            let slot = redis_keyslot(counter_key(group).as_bytes());
            match client
                .cached_cluster_state()
                .and_then(|state| state.get_server(slot).cloned())
            {
                Some(node) => Some(node),
                None => return,
            }
        } else {
            None
        };
        let once = self.once.clone();
        runtime.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let removed = sweep(client, node, once, &pattern, folded.as_bytes(), current).await;
            match removed {
                Ok(n) => tracing::debug!(pattern, removed = n, "redis: generation sweep done"),
                Err(e) => tracing::debug!(pattern, error = %e, "redis: generation sweep stopped"),
            }
        });
    }
}

/// The sweep loop; answers how many keys it removed.
async fn sweep(
    client: Client,
    node: Option<fred::prelude::Server>,
    once: fred::prelude::Options,
    pattern: &str,
    folded: &[u8],
    current: u64,
) -> Result<u64, fred::error::Error> {
    let scanner = match node {
        Some(node) => client.with_cluster_node(node),
        None => client.with_options(&once),
    };
    let mut cursor = String::from("0");
    let mut removed = 0u64;
    loop {
        let (next, keys): (String, Vec<Key>) = scanner
            .scan_page(cursor, pattern, Some(SWEEP_PAGE), None)
            .await?;
        let old: Vec<Key> = keys
            .into_iter()
            .filter(|k| generation_of(k.as_bytes(), folded).is_some_and(|g| g < current))
            .collect();
        if !old.is_empty() {
            let n: i64 = client.with_options(&once).unlink(old).await?;
            removed += n.max(0) as u64;
        }
        if next == "0" {
            return Ok(removed);
        }
        cursor = next;
        tokio::time::sleep(SWEEP_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_shares_one_hash_tag() {
        assert_eq!(counter_key("users:"), "{users:}#g");
        let folded = cache_core::generations::fold("users:42", 6, 7, TAG_OPEN, TAG_CLOSE);
        assert_eq!(folded, "{users:}7.42");
        assert_eq!(
            redis_keyslot(folded.as_bytes()),
            redis_keyslot(counter_key("users:").as_bytes())
        );
        // a group holding a brace still gives both keys one (shorter) tag
        let folded = cache_core::generations::fold("a}b:1", 4, 7, TAG_OPEN, TAG_CLOSE);
        assert_eq!(
            redis_keyslot(folded.as_bytes()),
            redis_keyslot(counter_key("a}b:").as_bytes())
        );
    }

    #[test]
    fn keys_split_by_group_in_order() {
        let keys = ["a:1", "b:1", "a:2", "plain"];
        let groups = by_group(keys.iter());
        assert_eq!(
            groups,
            vec![
                (Some("a:"), vec![0, 2]),
                (Some("b:"), vec![1]),
                (None, vec![3])
            ]
        );
    }
}
