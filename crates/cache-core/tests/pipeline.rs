//! The documented pipeline order: namespace → key → encode → before → backend → after →
//! decode, for reads and writes, and hooks on timeouts.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::testkit::MapBackend;
use cache_core::{
    Backend, Cache, CallContext, CommandInfo, ErrorKind, Json, KeyBuilder, OpSet, Outcome, Plugin,
    Result, Serializer,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

#[derive(Debug, Clone)]
struct LoggingSerializer(Log);

impl Serializer for LoggingSerializer {
    fn name(&self) -> &'static str {
        "logging"
    }
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        push(&self.0, "encode");
        Json.encode(value)
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        push(&self.0, "decode");
        Json.decode(bytes)
    }
}

#[derive(Debug)]
struct LoggingKeys(Log);

impl KeyBuilder for LoggingKeys {
    fn build<'a>(&self, key: &'a str, namespace: Option<&str>) -> Result<Cow<'a, str>> {
        push(&self.0, format!("key {key} in {namespace:?}"));
        Ok(Cow::Owned(format!("{}:{key}", namespace.unwrap_or(""))))
    }
    fn namespace_prefix(&self, namespace: &str) -> Option<String> {
        Some(format!("{namespace}:"))
    }
}

struct LoggingPlugin(Log, Duration);

#[async_trait]
impl Plugin for LoggingPlugin {
    async fn before(&self, info: &CommandInfo<'_>) {
        push(&self.0, format!("before {}", info.command));
        tokio::time::sleep(self.1).await;
    }
    async fn after(&self, info: &CommandInfo<'_>, outcome: &Outcome) {
        push(
            &self.0,
            format!("after {} error={:?}", info.command, outcome.error),
        );
    }
}

#[derive(Debug)]
struct LoggingBackend {
    log: Log,
    inner: MapBackend,
}

#[async_trait]
impl Backend for LoggingBackend {
    cache_core::forward_backend!(inner: get_with_ttl, multi_get_with_ttl, capability, endpoint, multi_get, add, multi_set, delete,
        multi_delete, exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);

    fn name(&self) -> &'static str {
        "logging"
    }
    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        push(&self.log, format!("backend get {key}"));
        self.inner.get(ctx, key).await
    }
    async fn set(&self, ctx: &CallContext<'_>, key: &str, value: Bytes, op: OpSet) -> Result<()> {
        push(&self.log, format!("backend set {key}"));
        self.inner.set(ctx, key, value, op).await
    }
}

fn cache(log: &Log, hook_delay: Duration) -> Cache<LoggingSerializer> {
    Cache::builder(LoggingBackend {
        log: log.clone(),
        inner: MapBackend::new(),
    })
    .namespace("ns")
    .key_builder(LoggingKeys(log.clone()))
    .plugin(LoggingPlugin(log.clone(), hook_delay))
    .serializer(LoggingSerializer(log.clone()))
    .build()
}

#[tokio::test]
async fn write_and_read_follow_the_documented_order() {
    let log: Log = Arc::default();
    let cache = cache(&log, Duration::ZERO);
    cache.set("k", &1).await.unwrap();
    assert_eq!(
        cache.with_namespace("other").get::<i32>("k").await.unwrap(),
        None
    );
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "key k in Some(\"ns\")",
            "encode",
            "before set",
            "backend set ns:k",
            "after set error=None",
            "key k in Some(\"other\")",
            "before get",
            "backend get other:k",
            "after get error=None",
            "key k in Some(\"ns\")",
            "before get",
            "backend get ns:k",
            "after get error=None",
            "decode",
        ]
    );
}

#[tokio::test]
async fn hooks_run_inside_the_deadline_and_after_hooks_see_the_timeout() {
    let log: Log = Arc::default();
    let cache = cache(&log, Duration::from_millis(200));
    let err = cache
        .with_timeout(Duration::from_millis(20))
        .get::<i32>("k")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.context_value("op"), Some("get"));
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "key k in Some(\"ns\")",
            "before get",
            "after get error=Some(Timeout)",
        ],
        "the slow before hook counts against the deadline; the backend is never reached"
    );
}

#[tokio::test]
async fn refused_arguments_run_no_hooks() {
    let log: Log = Arc::default();
    let cache = cache(&log, Duration::ZERO);
    let err = cache
        .with_ttl(Duration::ZERO)
        .set("k", &1)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let log = log.lock().unwrap().clone();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("before") || l.starts_with("backend")),
        "{log:?}"
    );
}

/// A plugin whose `after` hook is slow, then one that records its `after` calls.
struct SlowAfter(Duration);

#[async_trait]
impl Plugin for SlowAfter {
    async fn after(&self, _info: &CommandInfo<'_>, _outcome: &Outcome) {
        tokio::time::sleep(self.0).await;
    }
}

#[tokio::test]
async fn a_deadline_passing_during_after_hooks_keeps_the_answer_and_every_after_hook() {
    let log: Log = Arc::default();
    let cache = Cache::builder(MapBackend::new())
        .timeout(Duration::from_millis(50))
        .plugin(SlowAfter(Duration::from_millis(200)))
        .plugin(LoggingPlugin(log.clone(), Duration::ZERO))
        .build();
    // The increment is applied before the deadline; the first after hook outlives it.
    assert_eq!(
        cache.increment("n", 1).await.unwrap(),
        1,
        "the backend's answer"
    );
    assert_eq!(
        cache.with_timeout(None).get_counter("n").await.unwrap(),
        Some(1),
        "applied once"
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "before increment",
            "after increment error=None",
            "before get",
            "after get error=None",
        ],
        "every plugin gets exactly one after per command"
    );
}
