//! The cache's commands as OpenTelemetry client spans, through `tracing-opentelemetry`.
//!
//! `TracingPlugin` gives every command a span whose fields follow OpenTelemetry's database
//! conventions (`db.system.name`, `db.operation.name`, `db.namespace`, `server.address`,
//! `server.port`, `error.type`), so any OpenTelemetry backend shows them without mapping.
//! Here the spans go to an in-memory exporter and are printed; a service would use
//! `opentelemetry-otlp`'s exporter instead.
//!
//! `cargo run --example opentelemetry`

use std::error::Error;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use stratacache::TracingPlugin;
use stratacache::prelude::*;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. an OpenTelemetry tracer provider and its exporter (OTLP in a service)
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    // 2. tracing's spans go to OpenTelemetry
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("my-service")));
    tracing::subscriber::set_global_default(subscriber)?;

    // 3. a cache with the tracing plugin
    let cache = Cache::builder(MemoryBackend::new())
        .namespace("users")
        .plugin(TracingPlugin::new())
        .build();
    cache.set("42", &"Ada").await?;
    let _: Option<String> = cache.get("42").await?;
    let _ = cache.add("42", &"Grace").await; // fails: already there

    provider.force_flush()?;
    for span in exporter.get_finished_spans()? {
        let attributes: Vec<String> = span
            .attributes
            .iter()
            .filter(|kv| {
                let key = kv.key.as_str();
                key.starts_with("db.") || key.starts_with("server.") || key == "error.type"
            })
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        println!(
            "{:<12} {:?} {:?} {}",
            span.name,
            span.span_kind,
            span.status,
            attributes.join(" ")
        );
    }
    provider.shutdown()?;
    Ok(())
}
