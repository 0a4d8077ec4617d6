//! Secrets never leave through `Debug`, errors or logs: a password given in a URL or to the
//! builder does not appear in the `Debug` of `RedisConfig`, `RedisBuilder`, `RedisBackend` or
//! `Cache`, in the `Display` or `Debug` (source chain included) of any error on the way —
//! bad URLs, unreadable TLS files, connection refused, credentials refused — nor in anything
//! emitted through `tracing` or `log` (fred logs through `log`) while connecting, failing,
//! running commands and closing. Both are captured by test subscribers installed for the
//! whole test binary.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use cache_core::{Cache, ErrorKind, TracingPlugin};
use cache_redis::{RedisBuilder, RedisConfig};
use cache_test_fixtures::{Server, ServerKind};

const SECRET: &str = "s3cr3t";

/// Everything logged through `tracing` and `log` by this test binary.
fn captured() -> &'static Arc<Mutex<String>> {
    static OUT: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Arc::new(Mutex::new(String::new()));
        tracing::subscriber::set_global_default(Capture(out.clone()))
            .expect("no other tracing subscriber in this test binary");
        log::set_logger(Box::leak(Box::new(LogCapture(out.clone()))))
            .expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        out
    })
}

fn log_text() -> String {
    captured().lock().unwrap().clone()
}

/// A `tracing` subscriber that writes every span and event, with all fields, to a string.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "\nspan {}", span.metadata().name());
        span.record(&mut Fields(&mut out));
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        tracing::span::Id::from_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "\nevent {}", event.metadata().target());
        event.record(&mut Fields(&mut out));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// A `log` logger that writes every record to the same string.
struct LogCapture(Arc<Mutex<String>>);

impl log::Log for LogCapture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let _ = write!(
            self.0.lock().unwrap(),
            "\nlog {} {}",
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// The error's `Display`, its `Debug` and the `Display` of every source.
fn every_text(e: &cache_core::Error) -> String {
    let mut out = format!("{e}\n{e:#}\n{e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(out, "\n{s}\n{s:?}");
        source = s.source();
    }
    out
}

fn assert_hidden(text: &str, what: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
}

#[test]
fn config_and_builder_debug_hide_the_password() {
    for url in [
        format!("redis://user:{SECRET}@127.0.0.1:6379/0"),
        format!("redis://:{SECRET}@127.0.0.1"),
        format!("redis-cluster://user:{SECRET}@127.0.0.1:7000?node=127.0.0.1:7001"),
        format!("redis-sentinel://user:{SECRET}@127.0.0.1?service_name=m"),
        format!("redis+unix://user:{SECRET}@/tmp/redis.sock"),
    ] {
        let config = RedisConfig::from_url(&url).unwrap();
        assert_eq!(config.password.as_deref(), Some(SECRET));
        assert_hidden(&format!("{config:?} {config:#?}"), "RedisConfig's Debug");
        let builder = config.into_builder();
        assert_hidden(&format!("{builder:?} {builder:#?}"), "RedisBuilder's Debug");
    }
    let builder = RedisBuilder::new().username("u").password(SECRET);
    assert_hidden(&format!("{builder:?}"), "RedisBuilder's Debug");
}

#[test]
fn bad_urls_with_a_password_never_repeat_it() {
    for url in [
        format!("redis://user:{SECRET}@h:badport"),
        format!("redis://user:{SECRET}@h:99999"),
        format!("redis://user:{SECRET}@h/999"),
        format!("redis://user:{SECRET}@h?bogus=1"),
        format!("redis://user:{SECRET}@h?command_timeout=soon"),
        format!("redis://user:{SECRET}%ZZ@h"),
        format!("redis://user:{SECRET}@h#frag"),
        format!("http://user:{SECRET}@h"),
        format!("redis-cluster://user:{SECRET}@h:1/2"),
        format!("redis://user:{SECRET}@h?tls_ca_file=/x"),
        format!("redis://user:{SECRET}@h?pool_size=0"),
    ] {
        let e = RedisConfig::from_url(&url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        assert_hidden(&every_text(&e), &format!("the error for {url:?}"));
    }
}

#[tokio::test]
async fn connection_failures_never_show_the_password() {
    let out = captured();
    // nothing listens on port 1
    let e = RedisConfig::from_url(&format!("redis://user:{SECRET}@127.0.0.1:1/0"))
        .unwrap()
        .into_builder()
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_hidden(&every_text(&e), "connection refused");
    let e = RedisConfig::from_url(&format!(
        "rediss://user:{SECRET}@127.0.0.1:1?tls_ca_file=/nonexistent/ca.pem"
    ))
    .unwrap()
    .into_builder()
    .build()
    .await
    .unwrap_err();
    assert_hidden(&every_text(&e), "unreadable CA file");
    assert_hidden(&out.lock().unwrap(), "the tracing and log output");
}

#[tokio::test]
async fn refused_and_accepted_credentials_never_show_the_password() {
    let out = captured();
    let Some(server) = Server::start(ServerKind::Redis, &["--requirepass", "the-right-one"]) else {
        return;
    };
    // a wrong password: the server's WRONGPASS reaches the caller, the password does not
    let e = RedisConfig::from_url(&format!(
        "redis://default:{SECRET}@127.0.0.1:{}",
        server.port()
    ))
    .unwrap()
    .into_builder()
    .build()
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(format!("{e:#}").contains("WRONGPASS"), "{e:#}");
    assert_hidden(&every_text(&e), "the refused-credentials error");
    drop(server);

    // the right password (the secret itself): Debug of every handle, spans and events of
    // commands, a failing command and close
    let Some(server) = Server::start(ServerKind::Redis, &["--requirepass", SECRET]) else {
        return;
    };
    let backend = RedisBuilder::new()
        .port(server.port())
        .password(SECRET)
        .build()
        .await
        .unwrap();
    assert_hidden(&format!("{backend:?} {backend:#?}"), "RedisBackend's Debug");
    let cache = Cache::builder(backend)
        .namespace("redaction")
        .plugin(TracingPlugin::new().with_keys(true))
        .build();
    assert_hidden(&format!("{cache:?}"), "Cache's Debug");
    cache.set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    cache.set("text", &"x").await.unwrap();
    let e = cache.increment("text", 1).await.unwrap_err();
    assert_hidden(&every_text(&e), "a command error");
    let e = cache
        .raw("AUTH", ["nobody", "wrong-password"])
        .await
        .unwrap_err();
    assert_hidden(&every_text(&e), "a raw command error");
    cache.close().await.unwrap();
    let e = cache.get::<i32>("k").await.unwrap_err();
    assert_hidden(&every_text(&e), "a closed-cache error");
    drop(server);

    let text = out.lock().unwrap().clone();
    assert!(
        text.contains("event stratacache"),
        "the tracing plugin's events were captured: {text}"
    );
    assert_hidden(&text, "the tracing and log output");
    assert_hidden(&log_text(), "the tracing and log output");
}
