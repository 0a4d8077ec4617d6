//! Keys spread over a cluster's hash slots: multi-key commands split per slot and sent in one
//! pipeline, answers put back in the caller's order.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{Error, Result};
use fred::clients::WithOptions;
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Client, Key, Server, Value};
use fred::types::MultipleKeys;
use fred::util::redis_keyslot;

use crate::backend::{RedisBackend, millis, px};
use crate::error;
use crate::keys::shared_keys;
use crate::scripts::{SET_MANY_PX_LUA, script_args, script_command};

impl RedisBackend {
    /// Primaries of the cluster (from fred's cached routing table).
    pub(crate) fn primaries(&self, client: &Client) -> Result<Vec<Server>> {
        let nodes = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if nodes.is_empty() {
            Err(Error::new(
                cache_core::ErrorKind::Connection,
                "the redis cluster's primaries are not known yet",
            )
            .with_context("backend", "redis"))
        } else {
            Ok(nodes)
        }
    }

    /// `multi_get` on a cluster: one `MGET` per hash slot, all in one pipeline (concurrent
    /// round trips to the nodes), answers put back in the caller's order.
    pub(crate) async fn cluster_multi_get(
        &self,
        client: &Client,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        let groups = group_by_slot(keys.iter().map(String::as_bytes));
        if groups.len() == 1 {
            return self.mget(client, keys.iter().map(String::as_str)).await;
        }
        let pipeline = client.pipeline();
        for group in &groups {
            let keys: MultipleKeys = shared_keys(group.iter().map(|&i| keys[i].as_str())).into();
            let () = pipeline.mget(keys).await.map_err(|e| self.fail(e))?;
        }
        let answers = pipeline.try_all::<Vec<Option<Bytes>>>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        let mut out = vec![None; keys.len()];
        for (group, answer) in groups.iter().zip(answers) {
            let values = answer.map_err(|e| self.fail(e))?;
            if values.len() != group.len() {
                return Err(error::unexpected(format!(
                    "MGET of {} keys answered {} values",
                    group.len(),
                    values.len()
                )));
            }
            for (&i, v) in group.iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// `UNLINK` of `keys`: one command, or one per hash slot in one pipeline on a cluster.
    pub(crate) async fn unlink(&self, client: &Client, keys: Vec<Key>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let once = client.with_options(&self.once);
        let groups = if self.clustered {
            group_by_slot(keys.iter().map(Key::as_bytes))
        } else {
            Vec::new()
        };
        if groups.len() <= 1 {
            let n: i64 =
                unsent_again!(async { once.unlink(keys.clone()).await.map_err(|e| self.fail(e)) })?;
            return Ok(n.max(0) as u64);
        }
        let pipeline = once.pipeline();
        for group in &groups {
            let slot_keys: Vec<Key> = group.iter().map(|&i| keys[i].clone()).collect();
            let () = pipeline.unlink(slot_keys).await.map_err(|e| self.fail(e))?;
        }
        let answers = pipeline.try_all::<i64>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        let mut total = 0u64;
        for answer in answers {
            total += answer.map_err(|e| self.fail(e))?.max(0) as u64;
        }
        Ok(total)
    }

    /// `multi_set` on a cluster: atomic per hash slot, the slots written concurrently in one
    /// pipeline.
    pub(crate) async fn cluster_multi_set(
        &self,
        client: &WithOptions<Client>,
        entries: &[(String, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let groups = group_by_slot(entries.iter().map(|(k, _)| k.as_bytes()));
        if groups.len() == 1 {
            return self.set_many(client, entries, ttl).await;
        }
        let mut slots: Vec<Option<(String, Bytes)>> = entries.iter().cloned().map(Some).collect();
        let pipeline = client.pipeline();
        for group in &groups {
            let mut take = group.iter().filter_map(|&i| slots[i].take());
            if group.len() == 1 {
                if let Some((key, value)) = take.next() {
                    let () = pipeline
                        .set(key, value, ttl.map(px), None, false)
                        .await
                        .map_err(|e| self.fail(e))?;
                }
                continue;
            }
            match ttl {
                None => {
                    let pairs: Vec<(Key, Value)> =
                        take.map(|(k, v)| (Key::from(k), Value::Bytes(v))).collect();
                    pipeline.mset(pairs).await.map_err(|e| self.fail(e))?;
                }
                Some(ttl) => {
                    let mut keys = Vec::with_capacity(group.len());
                    let mut args = Vec::with_capacity(group.len() + 1);
                    args.push(Value::Integer(millis(ttl)));
                    for (k, v) in take {
                        keys.push(Key::from(k));
                        args.push(Value::Bytes(v));
                    }
                    // EVAL, not EVALSHA: a pipeline cannot fall back per command
                    let lua = Value::Bytes(Bytes::from_static(SET_MANY_PX_LUA.as_bytes()));
                    let command = script_command(false, &keys);
                    let () = pipeline
                        .custom(command, script_args(lua, keys, args))
                        .await
                        .map_err(|e| self.fail(e))?;
                }
            }
        }
        let answers = pipeline.try_all::<Value>().await;
        if answers.len() != groups.len() {
            return Err(first_error(answers, |e| self.fail(e)).unwrap_or_else(|| {
                error::unexpected("redis answered a pipeline with the wrong number of replies")
            }));
        }
        for answer in answers {
            answer.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

pub(crate) fn first_error<T>(
    answers: Vec<Result<T, FredError>>,
    convert: impl Fn(FredError) -> Error,
) -> Option<Error> {
    answers.into_iter().find_map(|a| a.err()).map(convert)
}

/// Indices of `keys` grouped by cluster hash slot, groups in order of first appearance and
/// indices in the caller's order within a group.
pub(crate) fn group_by_slot<'a>(keys: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<usize>> {
    let mut by_slot: HashMap<u16, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, key) in keys.enumerate() {
        let slot = redis_keyslot(key);
        let g = *by_slot.entry(slot).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_groups_keep_caller_order() {
        let keys = ["{a}1", "b", "{a}2", "c", "b"];
        let groups = group_by_slot(keys.iter().map(|k| k.as_bytes()));
        assert_eq!(groups[0], vec![0, 2]);
        assert_eq!(groups[1], vec![1, 4]);
        let flat: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(flat, keys.len());
    }
}
