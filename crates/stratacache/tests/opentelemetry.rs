//! The cache's spans exported through `tracing-opentelemetry` to an in-memory OpenTelemetry
//! exporter: names, kind, status and the database attributes of OpenTelemetry's conventions.

use std::sync::Arc;

use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use stratacache::prelude::*;
use stratacache::{Backend, Endpoint, TracingPlugin};
use tracing_subscriber::layer::SubscriberExt;

/// The memory backend, saying it is a server at `cache.internal:6379` (as a Redis would).
#[derive(Debug)]
struct Remote {
    inner: MemoryBackend,
}

#[stratacache::async_trait]
impl Backend for Remote {
    stratacache::forward_backend!(inner: get_with_ttl, multi_get_with_ttl, name, capability, get, multi_get, set, add, multi_set,
        delete, multi_delete, exists, increment, expire, ttl, compare_and_set,
        compare_and_delete, clear, raw, close);

    fn endpoint(&self) -> Option<Endpoint> {
        Some(Endpoint::new("cache.internal", Some(6379)))
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::new(key.to_owned()))
        .map(|kv| &kv.value)
}

fn string(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(|v| v.as_str().into_owned())
}

/// Runs `commands` on a cache over `backend` with the tracing plugin, and returns the spans
/// the OpenTelemetry SDK exported.
fn exported<F>(backend: Arc<dyn Backend>, commands: F) -> Vec<SpanData>
where
    F: AsyncFnOnce(Cache),
{
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let cache = Cache::builder(backend)
                    .namespace("users")
                    .plugin(TracingPlugin::new())
                    .build();
                commands(cache).await;
            });
    });
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

#[test]
fn commands_are_client_spans_with_the_database_attributes() {
    let spans = exported(Arc::new(MemoryBackend::new()), async |cache| {
        cache.set("42", &"Ada").await.unwrap();
        let _: Option<String> = cache.get("42").await.unwrap();
        cache.add("42", &"Grace").await.unwrap_err();
    });
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["set users", "get users", "add users"]);
    for (span, op) in spans.iter().zip(["set", "get", "add"]) {
        assert_eq!(span.span_kind, SpanKind::Client, "{span:?}");
        assert_eq!(string(span, "db.system.name").as_deref(), Some("memory"));
        assert_eq!(string(span, "db.operation.name").as_deref(), Some(op));
        assert_eq!(string(span, "db.namespace").as_deref(), Some("users"));
        assert_eq!(
            attribute(span, "server.address"),
            None,
            "in process: no server"
        );
    }
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(attribute(&spans[0], "error.type"), None);
    assert!(
        matches!(spans[2].status, Status::Error { .. }),
        "{:?}",
        spans[2].status
    );
    assert_eq!(
        string(&spans[2], "error.type").as_deref(),
        Some("already_exists")
    );
}

#[test]
fn a_remote_backend_names_its_server() {
    let backend = Arc::new(Remote {
        inner: MemoryBackend::new(),
    });
    let spans = exported(backend, async |cache| {
        cache.set("1", &1).await.unwrap();
    });
    assert_eq!(spans.len(), 1);
    assert_eq!(
        string(&spans[0], "server.address").as_deref(),
        Some("cache.internal")
    );
    assert_eq!(attribute(&spans[0], "server.port"), Some(&Value::I64(6379)));
}
