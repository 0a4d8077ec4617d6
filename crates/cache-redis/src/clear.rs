//! `clear` of a namespace (a cursor-complete `SCAN MATCH` and `UNLINK`, on every primary of a
//! cluster) and `wipe_all` (`FLUSHDB ASYNC`).

use cache_core::{Progress, Result};
use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::prelude::{Client, Key, Options, Server};
use fred::types::{ClusterHash, CustomCommand};
use tokio::task::JoinSet;

use crate::backend::RedisBackend;
use crate::cluster::group_by_slot;
use crate::error;

/// Keys asked of `SCAN` per page during `clear`; each page's matches are unlinked at once.
const SCAN_COUNT: u32 = 1000;

impl RedisBackend {
    /// `clear` of one namespace: every key matching `prefix*` (glob characters of the
    /// prefix escaped), found by a cursor-complete `SCAN` on every primary and removed with
    /// `UNLINK` page by page. Each page's removals are added to `progress` (and logged at
    /// `debug` level) as they happen, so an interrupted clear can say how far it got.
    pub(crate) async fn clear_prefix(&self, prefix: &str, progress: Progress) -> Result<u64> {
        let client = self.client()?;
        let pattern = format!("{}*", glob_escape(prefix));
        if !self.clustered {
            return self.scan_unlink(client, &pattern, &progress).await;
        }
        let mut nodes = JoinSet::new();
        for node in self.primaries(client)? {
            let client = client.clone();
            let pattern = pattern.clone();
            let once = self.once.clone();
            let progress = progress.clone();
            nodes.spawn(
                async move { scan_unlink_node(client, node, pattern, once, progress).await },
            );
        }
        let mut total = 0;
        while let Some(done) = nodes.join_next().await {
            let removed = done
                .map_err(|e| error::unexpected(format!("a clear task failed: {e}")))?
                .map_err(|e| self.fail(e))?;
            total += removed;
        }
        Ok(total)
    }

    /// The `SCAN` + `UNLINK` loop on a standalone server.
    pub(crate) async fn scan_unlink(
        &self,
        client: &Client,
        pattern: &str,
        progress: &Progress,
    ) -> Result<u64> {
        let mut cursor = String::from("0");
        let mut removed = 0;
        loop {
            let (next, keys): (String, Vec<Key>) = client
                .scan_page(cursor, pattern, Some(SCAN_COUNT), None)
                .await
                .map_err(|e| self.fail(e))?;
            let page = self.unlink(client, keys).await?;
            removed += page;
            count_page(pattern, progress, page);
            if next == "0" {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    pub(crate) async fn flush_all(&self) -> Result<()> {
        let client = self.client()?;
        let flushdb = || CustomCommand::new_static("FLUSHDB", ClusterHash::Random, false);
        if !self.clustered {
            return client
                .custom::<(), _>(flushdb(), vec!["ASYNC"])
                .await
                .map_err(|e| self.fail(e));
        }
        for node in self.primaries(client)? {
            client
                .with_cluster_node(node)
                .custom::<(), _>(flushdb(), vec!["ASYNC"])
                .await
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

/// The `SCAN` + `UNLINK` loop on one cluster primary (a task of its own).
async fn scan_unlink_node(
    client: Client,
    node: Server,
    pattern: String,
    once: Options,
    progress: Progress,
) -> Result<u64, FredError> {
    let on_node = client.with_cluster_node(node);
    let mut cursor = String::from("0");
    let mut removed = 0u64;
    loop {
        let (next, keys): (String, Vec<Key>) = on_node
            .scan_page(cursor, pattern.as_str(), Some(SCAN_COUNT), None)
            .await?;
        if !keys.is_empty() {
            // keys of one node still span many slots: one UNLINK per slot
            let groups = group_by_slot(keys.iter().map(Key::as_bytes));
            let pipeline = client.with_options(&once).pipeline();
            for group in &groups {
                let slot_keys: Vec<Key> = group.iter().map(|&i| keys[i].clone()).collect();
                let () = pipeline.unlink(slot_keys).await?;
            }
            let mut page = 0;
            for answer in pipeline.try_all::<i64>().await {
                page += answer?.max(0) as u64;
            }
            removed += page;
            count_page(&pattern, &progress, page);
        }
        if next == "0" {
            return Ok(removed);
        }
        cursor = next;
    }
}

/// Escapes the `SCAN MATCH` glob characters `* ? [ ] \` so that `prefix` matches literally.
pub(crate) fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Adds a page of removed keys to the clear's progress and logs the running total.
fn count_page(pattern: &str, progress: &Progress, page: u64) {
    if page > 0 {
        progress.add(page);
        tracing::debug!(
            pattern,
            removed = progress.get(),
            "redis clear: page unlinked"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("ns:"), "ns:");
        assert_eq!(glob_escape("a*?[b]\\:"), "a\\*\\?\\[b\\]\\\\:");
    }
}
