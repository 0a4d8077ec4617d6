//! The standard plugins over a real `Cache`: one known sequence of commands, and every figure
//! each plugin reports for it.
//!
//! The sequence, on namespace `app` of a `MapBackend`:
//!
//! | commands | outcome seen by plugins |
//! |---|---|
//! | 3 × `set` (`a`, `b`, `c`) | ok |
//! | 4 × `get`: `a`, `b` hit; `x`, `y` miss | ok, 2 hits, 2 misses |
//! | `multi_get([a, x, y])` | ok, 1 hit, 2 misses |
//! | `add(a)`, refused with `AlreadyExists` | `AlreadyExists` |
//! | `increment(a)` on a text value | `InvalidArgument` from the backend |
//! | `get(slow)`, whose first `before` hook outlasts a 20 ms deadline | `Timeout`, once |
//!
//! Totals: 11 commands, 3 hits, 4 misses, 3 errors (1 timeout).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cache_core::plugins::CommandTiming;
use cache_core::testkit::MapBackend;
use cache_core::{
    Cache, CacheBuilder, Command, CommandInfo, ErrorKind, HitMissRatioPlugin, Json, Plugin,
    TimingPlugin, TracingPlugin,
};
use capture::{Capture, Captured};
use tracing::Level;

/// The deadline of the timed-out call.
const DEADLINE: Duration = Duration::from_millis(20);

/// Sleeps in `before` for commands on the key `slow`, far past [`DEADLINE`].
struct SlowKey;

#[async_trait]
impl Plugin for SlowKey {
    async fn before(&self, info: &CommandInfo<'_>) {
        if info.keys.contains(&"slow") {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A cache over a fresh `MapBackend`, with [`SlowKey`] as its first plugin.
fn builder() -> CacheBuilder<Json> {
    Cache::builder(MapBackend::new())
        .namespace("app")
        .plugin(SlowKey)
}

/// Runs `fut` on a current-thread runtime, on this thread: thread-local `tracing`
/// subscribers and `metrics` recorders set around it see every hook.
fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(fut)
}

/// The sequence of the module docs, checking what the caller gets back.
async fn run_sequence(cache: &Cache) {
    for (key, value) in [("a", "alpha"), ("b", "beta"), ("c", "gamma")] {
        cache.set(key, value).await.unwrap();
    }
    assert_eq!(
        cache.get::<String>("a").await.unwrap().as_deref(),
        Some("alpha")
    );
    assert_eq!(
        cache.get::<String>("b").await.unwrap().as_deref(),
        Some("beta")
    );
    assert_eq!(cache.get::<String>("x").await.unwrap(), None);
    // A miss the caller replaces with a default is still a miss for the plugins.
    let y = cache.get::<String>("y").await.unwrap().unwrap_or_default();
    assert_eq!(y, "");
    let values = cache
        .multi_get::<String, _, _>(["a", "x", "y"])
        .await
        .unwrap();
    assert_eq!(values, [Some("alpha".to_owned()), None, None]);
    let err = cache.add("a", "again").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = cache.increment("a", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = cache
        .with_timeout(DEADLINE)
        .get::<String>("slow")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

// ---------------------------------------------------------------------------------------
// TimingPlugin

#[tokio::test]
async fn timing_counts_every_command_with_errors_and_timeouts() {
    let timing = Arc::new(TimingPlugin::new());
    let cache = builder().plugin(timing.clone()).build();
    run_sequence(&cache).await;

    let snapshot = timing.snapshot();
    let commands: Vec<Command> = snapshot.iter().map(|t| t.command).collect();
    assert_eq!(
        commands,
        [
            Command::Get,
            Command::MultiGet,
            Command::Set,
            Command::Add,
            Command::Increment
        ]
    );
    for t in &snapshot {
        assert_eq!(timing.get(t.command).as_ref(), Some(t));
        check_consistent(t);
    }

    let counts = |c| {
        let t = timing.get(c).unwrap();
        (t.count, t.errors, t.timeouts)
    };
    assert_eq!(counts(Command::Set), (3, 0, 0));
    assert_eq!(counts(Command::Get), (5, 1, 1));
    assert_eq!(counts(Command::MultiGet), (1, 0, 0));
    assert_eq!(
        counts(Command::Add),
        (1, 1, 0),
        "a refused add is an error outcome"
    );
    assert_eq!(counts(Command::Increment), (1, 1, 0));
    assert_eq!(timing.get(Command::Delete), None);

    let get = timing.get(Command::Get).unwrap();
    assert!(
        get.max >= DEADLINE,
        "the timed-out call lasted until its deadline: {get:?}"
    );
    assert!(get.min < get.max, "{get:?}");
    for one in [Command::MultiGet, Command::Add, Command::Increment] {
        let t = timing.get(one).unwrap();
        assert_eq!((t.min, t.max, t.mean), (t.total, t.total, t.total), "{t:?}");
    }

    timing.reset();
    assert!(timing.snapshot().is_empty());
    cache.set("a", "again").await.unwrap();
    assert_eq!(counts(Command::Set), (1, 0, 0));
}

/// `min <= mean <= max <= total`, and `mean` is `total / count`.
fn check_consistent(t: &CommandTiming) {
    assert!(
        t.count >= 1 && t.errors <= t.count && t.timeouts <= t.errors,
        "{t:?}"
    );
    assert!(
        t.min <= t.mean && t.mean <= t.max && t.max <= t.total,
        "{t:?}"
    );
    let count = u32::try_from(t.count).unwrap();
    let mean = t.total / count;
    assert_eq!(t.mean, mean, "{t:?}");
}

#[tokio::test]
async fn one_timing_plugin_serves_two_caches() {
    let timing = Arc::new(TimingPlugin::new());
    let first = builder().plugin(timing.clone()).build();
    let second = Cache::builder(MapBackend::new())
        .shared_plugin(timing.clone())
        .build();
    first.set("k", &1).await.unwrap();
    second.set("k", &2).await.unwrap();
    assert_eq!(timing.get(Command::Set).unwrap().count, 2);
}

// ---------------------------------------------------------------------------------------
// HitMissRatioPlugin

#[tokio::test]
async fn hit_miss_counts_reads_per_key() {
    let reads = Arc::new(HitMissRatioPlugin::new());
    let cache = builder().shared_plugin(reads.clone()).build();
    assert_eq!(reads.ratio(), None);
    run_sequence(&cache).await;

    assert_eq!(reads.hits(), 3, "a, b, and a in the multi_get");
    assert_eq!(reads.misses(), 4, "x, y (defaulted by the caller), x and y");
    assert_eq!(reads.total(), 7);
    assert_eq!(reads.ratio(), Some(3.0 / 7.0));
    let counts = reads.counts();
    assert_eq!((counts.hits, counts.misses, counts.total()), (3, 4, 7));

    // A multi_get of no keys reads nothing: no division by zero after a reset either.
    reads.reset();
    let none = cache
        .multi_get::<String, _, _>(Vec::<&str>::new())
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!((reads.hits(), reads.misses(), reads.total()), (0, 0, 0));
    assert_eq!(reads.ratio(), None);

    // get_or_set on a cold key: one read, one miss, then the loader.
    let v: u32 = cache
        .get_or_set("cold", || async { Ok::<_, std::io::Error>(7) })
        .await
        .unwrap();
    assert_eq!(v, 7);
    assert_eq!((reads.hits(), reads.misses()), (0, 1));
    let _: u32 = cache
        .get_or_set("cold", || async { Ok::<_, std::io::Error>(8) })
        .await
        .unwrap();
    assert_eq!((reads.hits(), reads.misses()), (1, 1));
}

// ---------------------------------------------------------------------------------------
// TracingPlugin

mod capture {
    //! A `tracing` subscriber that records every span and event into `Vec`s (for one
    //! thread: the tests run on a current-thread runtime).

    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Captured {
        pub(crate) level: Level,
        pub(crate) target: String,
        /// The span's name (`""` for events).
        pub(crate) name: String,
        pub(crate) fields: BTreeMap<String, String>,
        /// The id of the span that was current (events) or the parent (spans); 0 for none.
        pub(crate) parent: u64,
        /// The span's own id (0 for events).
        pub(crate) id: u64,
    }

    impl Captured {
        pub(crate) fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Debug, Default)]
    struct State {
        events: Vec<Captured>,
        spans: Vec<Captured>,
        metadata: Vec<&'static Metadata<'static>>,
        stack: Vec<u64>,
    }

    #[derive(Debug, Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<State>>);

    impl Capture {
        /// The events of `target`, in order.
        pub(crate) fn events(&self, target: &str) -> Vec<Captured> {
            let state = self.0.lock().unwrap();
            state
                .events
                .iter()
                .filter(|e| e.target == target)
                .cloned()
                .collect()
        }

        /// The spans of `target`, in order of creation, with every field recorded so far.
        pub(crate) fn spans(&self, target: &str) -> Vec<Captured> {
            let state = self.0.lock().unwrap();
            state
                .spans
                .iter()
                .filter(|e| e.target == target)
                .cloned()
                .collect()
        }
    }

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.0.insert(field.name().to_owned(), value.to_string());
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.0.insert(field.name().to_owned(), value.to_string());
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut state = self.0.lock().unwrap();
            let id = state.spans.len() as u64 + 1;
            let parent = match attrs.parent() {
                Some(p) => p.into_u64(),
                None if attrs.is_contextual() => state.stack.last().copied().unwrap_or(0),
                None => 0,
            };
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            state.metadata.push(attrs.metadata());
            state.spans.push(Captured {
                level: *attrs.metadata().level(),
                target: attrs.metadata().target().to_owned(),
                name: attrs.metadata().name().to_owned(),
                fields,
                parent,
                id,
            });
            Id::from_u64(id)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut state = self.0.lock().unwrap();
            let index = span.into_u64() as usize - 1;
            values.record(&mut Fields(&mut state.spans[index].fields));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let mut state = self.0.lock().unwrap();
            let parent = state.stack.last().copied().unwrap_or(0);
            state.events.push(Captured {
                level: *event.metadata().level(),
                target: event.metadata().target().to_owned(),
                name: String::new(),
                fields,
                parent,
                id: 0,
            });
        }
        fn current_span(&self) -> tracing_core::span::Current {
            let state = self.0.lock().unwrap();
            match state.stack.last() {
                Some(&id) => tracing_core::span::Current::new(
                    Id::from_u64(id),
                    state.metadata[id as usize - 1],
                ),
                None => tracing_core::span::Current::none(),
            }
        }
        fn enter(&self, span: &Id) {
            self.0.lock().unwrap().stack.push(span.into_u64());
        }
        fn exit(&self, span: &Id) {
            let mut state = self.0.lock().unwrap();
            assert_eq!(
                state.stack.pop(),
                Some(span.into_u64()),
                "spans exit in order"
            );
        }
    }
}

/// Runs the sequence on a cache with `plugin` (after [`SlowKey`]) and returns the plugin's
/// events.
fn traced_sequence(plugin: TracingPlugin) -> Vec<Captured> {
    traced_sequence_with_spans(plugin).0
}

/// Runs the sequence on a cache with `plugin`, inside a caller's `request` span, and returns
/// the plugin's events and spans, and the id of the `request` span.
fn traced_sequence_with_spans(plugin: TracingPlugin) -> (Vec<Captured>, Vec<Captured>, u64) {
    use tracing::Instrument;
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(
            async {
                let cache = builder().plugin(plugin).build();
                run_sequence(&cache).await;
            }
            .instrument(tracing::info_span!(target: "app", "request")),
        )
    });
    let request = capture.spans("app");
    assert_eq!(request.len(), 1);
    (
        capture.events(TracingPlugin::TARGET),
        capture.spans(TracingPlugin::TARGET),
        request[0].id,
    )
}

/// What the `after` event of one command of the sequence carries.
struct Expected {
    level: Level,
    op: &'static str,
    outcome: &'static str,
    hits: u64,
    misses: u64,
    keys: &'static [&'static str],
}

const fn ok(op: &'static str, hits: u64, misses: u64, keys: &'static [&'static str]) -> Expected {
    Expected {
        level: Level::DEBUG,
        op,
        outcome: "ok",
        hits,
        misses,
        keys,
    }
}

const fn failed(op: &'static str, outcome: &'static str, key: &'static [&'static str]) -> Expected {
    Expected {
        level: Level::WARN,
        op,
        outcome,
        hits: 0,
        misses: 0,
        keys: key,
    }
}

/// The `after` events of the sequence, in order.
const AFTER_EVENTS: [Expected; 11] = [
    ok("set", 0, 0, &["a"]),
    ok("set", 0, 0, &["b"]),
    ok("set", 0, 0, &["c"]),
    ok("get", 1, 0, &["a"]),
    ok("get", 1, 0, &["b"]),
    ok("get", 0, 1, &["x"]),
    ok("get", 0, 1, &["y"]),
    ok("multi_get", 1, 2, &["a", "x", "y"]),
    failed("add", "already_exists", &["a"]),
    failed("increment", "invalid_argument", &["a"]),
    failed("get", "timeout", &["slow"]),
];

fn after_events(events: &[Captured]) -> Vec<&Captured> {
    events
        .iter()
        .filter(|e| e.field("message") == Some("cache command"))
        .collect()
}

fn before_events(events: &[Captured]) -> Vec<&Captured> {
    events
        .iter()
        .filter(|e| e.field("message") == Some("cache command started"))
        .collect()
}

#[test]
fn tracing_emits_one_event_per_command_without_keys_by_default() {
    let events = traced_sequence(TracingPlugin::new());
    let after = after_events(&events);
    let before = before_events(&events);
    assert_eq!(
        after.len() + before.len(),
        events.len(),
        "no other event: {events:#?}"
    );
    assert_eq!(after.len(), AFTER_EVENTS.len(), "{after:#?}");

    for (event, expected) in after.iter().zip(&AFTER_EVENTS) {
        let Expected {
            level,
            op,
            outcome,
            hits,
            misses,
            ..
        } = *expected;
        assert_eq!(event.level, level, "{event:?}");
        let names: Vec<&str> = event.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "backend",
                "elapsed_ms",
                "hits",
                "message",
                "misses",
                "namespace",
                "op",
                "outcome"
            ],
            "no keys by default: {event:?}"
        );
        assert_eq!(event.field("op"), Some(op));
        assert_eq!(event.field("namespace"), Some("app"));
        assert_eq!(event.field("backend"), Some("map"));
        assert_eq!(event.field("outcome"), Some(outcome));
        assert_eq!(event.field("hits"), Some(hits.to_string().as_str()));
        assert_eq!(event.field("misses"), Some(misses.to_string().as_str()));
        let elapsed: f64 = event.field("elapsed_ms").unwrap().parse().unwrap();
        assert!(elapsed >= 0.0, "{event:?}");
        if outcome == "timeout" {
            assert!(elapsed >= DEADLINE.as_secs_f64() * 1000.0, "{event:?}");
        }
    }

    // One TRACE event before each command, except the timed-out one: its first plugin was
    // still sleeping in `before` when the deadline passed.
    assert_eq!(before.len(), AFTER_EVENTS.len() - 1);
    for (event, expected) in before.iter().zip(&AFTER_EVENTS) {
        let op = expected.op;
        assert_eq!(event.level, Level::TRACE);
        let names: Vec<&str> = event.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["backend", "message", "namespace", "op"],
            "{event:?}"
        );
        assert_eq!(event.field("op"), Some(op));
        assert_eq!(event.field("namespace"), Some("app"));
        assert_eq!(event.field("backend"), Some("map"));
    }
}

#[test]
fn tracing_runs_each_command_in_a_span_that_records_its_outcome() {
    let (events, spans, request) = traced_sequence_with_spans(TracingPlugin::new());
    assert_eq!(
        spans.len(),
        AFTER_EVENTS.len(),
        "one span per command: {spans:#?}"
    );
    for (span, expected) in spans.iter().zip(&AFTER_EVENTS) {
        let Expected {
            level,
            op,
            outcome,
            hits,
            misses,
            ..
        } = *expected;
        assert_eq!(span.name, "cache command");
        // A span's level is fixed when it opens: the success level, whatever the outcome.
        assert_eq!(span.level, Level::DEBUG, "{span:?} (event level {level})");
        assert_eq!(
            span.parent, request,
            "the caller's span is the parent: {span:?}"
        );
        let names: Vec<&str> = span.fields.keys().map(String::as_str).collect();
        let mut want = vec![
            "db.namespace",
            "db.operation.name",
            "db.system.name",
            "elapsed_ms",
            "hits",
            "misses",
            "otel.kind",
            "otel.name",
            "outcome",
        ];
        if outcome != "ok" {
            want.extend(["error.type", "otel.status_code"]);
            want.sort_unstable();
        }
        assert_eq!(names, want, "no keys, no server in process: {span:?}");
        assert_eq!(span.field("db.operation.name"), Some(op));
        assert_eq!(span.field("otel.name"), Some(format!("{op} app").as_str()));
        assert_eq!(span.field("otel.kind"), Some("client"));
        assert_eq!(span.field("db.namespace"), Some("app"));
        assert_eq!(span.field("db.system.name"), Some("map"));
        assert_eq!(span.field("outcome"), Some(outcome), "{span:?}");
        if outcome != "ok" {
            assert_eq!(span.field("error.type"), Some(outcome), "{span:?}");
            assert_eq!(span.field("otel.status_code"), Some("ERROR"));
        }
        assert_eq!(span.field("hits"), Some(hits.to_string().as_str()));
        assert_eq!(span.field("misses"), Some(misses.to_string().as_str()));
    }
    // Every event of a command is emitted inside that command's span.
    let after = after_events(&events);
    for (event, span) in after.iter().zip(&spans) {
        assert_eq!(event.parent, span.id, "{event:?} outside {span:?}");
    }
    for (event, span) in before_events(&events).iter().zip(&spans) {
        assert_eq!(event.parent, span.id, "{event:?} outside {span:?}");
    }
}

#[test]
fn tracing_spans_hide_keys_unless_enabled_and_can_be_turned_off() {
    let (_, spans, _) = traced_sequence_with_spans(TracingPlugin::new().hash_keys(true));
    assert_eq!(spans.len(), AFTER_EVENTS.len());
    for (span, expected) in spans.iter().zip(&AFTER_EVENTS) {
        let hashes: Vec<String> = expected
            .keys
            .iter()
            .map(|k| TracingPlugin::hashed_key(k))
            .collect();
        assert_eq!(
            span.field("keys"),
            Some(format!("[{}]", hashes.join(", ")).as_str())
        );
    }
    let (_, spans, _) = traced_sequence_with_spans(TracingPlugin::new().with_keys(true));
    assert_eq!(spans[7].field("keys"), Some(r#"["a", "x", "y"]"#));

    let (events, spans, _) = traced_sequence_with_spans(TracingPlugin::new().spans(false));
    assert!(spans.is_empty(), "{spans:#?}");
    assert_eq!(after_events(&events).len(), AFTER_EVENTS.len());
}

#[test]
fn tracing_shows_keys_when_enabled() {
    let events = traced_sequence(TracingPlugin::new().with_keys(true));
    let after = after_events(&events);
    assert_eq!(after.len(), AFTER_EVENTS.len());
    for (event, expected) in after.iter().zip(&AFTER_EVENTS) {
        let keys = expected.keys;
        assert_eq!(event.field("keys"), Some(format!("{keys:?}").as_str()));
    }
    assert_eq!(after[7].field("keys"), Some(r#"["a", "x", "y"]"#));
    let before = before_events(&events);
    assert_eq!(before[0].field("keys"), Some(r#"["a"]"#));
}

/// A map backend that says it is a server at `cache.internal:6379`.
#[derive(Debug)]
struct Remote {
    inner: MapBackend,
}

#[async_trait]
impl cache_core::Backend for Remote {
    cache_core::forward_backend!(inner: get_with_ttl, multi_get_with_ttl, name, capability, get, multi_get, set, add, multi_set,
        delete, multi_delete, exists, increment, expire, ttl, compare_and_set,
        compare_and_delete, clear, raw, close);

    fn endpoint(&self) -> Option<cache_core::Endpoint> {
        Some(cache_core::Endpoint::new("cache.internal", Some(6379)))
    }
}

#[test]
fn tracing_spans_name_the_server_of_a_remote_backend() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(async {
            let cache = Cache::builder(Remote {
                inner: MapBackend::new(),
            })
            .plugin(TracingPlugin::new())
            .build();
            cache.set("k", &1).await.unwrap();
        })
    });
    let spans = capture.spans(TracingPlugin::TARGET);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].field("server.address"), Some("cache.internal"));
    assert_eq!(spans[0].field("server.port"), Some("6379"));
    assert_eq!(
        spans[0].field("otel.name"),
        Some("set"),
        "no namespace: the operation"
    );
    assert_eq!(spans[0].field("db.namespace"), None);
}

#[test]
fn tracing_reports_read_through_decisions_with_keys_as_configured() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(async {
            let cache = builder()
                .plugin(TracingPlugin::new().hash_keys(true))
                .build();
            let v: u32 = cache
                .get_or_set("rt", || async { Ok::<_, std::io::Error>(5) })
                .await
                .unwrap();
            assert_eq!(v, 5);
        })
    });
    let events = capture.events(TracingPlugin::TARGET);
    let decisions: Vec<&Captured> = events
        .iter()
        .filter(|e| e.field("message") == Some("cache read-through"))
        .collect();
    assert_eq!(decisions.len(), 1, "{events:?}");
    assert_eq!(decisions[0].field("event"), Some("load_started"));
    assert_eq!(
        decisions[0].field("keys"),
        Some(format!("[{}]", TracingPlugin::hashed_key("rt")).as_str())
    );
}

#[test]
fn tracing_hashes_keys_when_asked() {
    let events = traced_sequence(TracingPlugin::new().hash_keys(true));
    let after = after_events(&events);
    assert_eq!(after.len(), AFTER_EVENTS.len());
    for (event, expected) in after.iter().zip(&AFTER_EVENTS) {
        let keys = expected.keys;
        let hashes: Vec<String> = keys.iter().map(|k| TracingPlugin::hashed_key(k)).collect();
        let shown = event.field("keys").unwrap();
        assert_eq!(shown, format!("[{}]", hashes.join(", ")));
        assert!(!shown.contains('"'), "{shown} holds a plain key");
    }
    assert_eq!(
        after[0].field("keys"),
        Some("[af63dc4c8601ec8c]"),
        "FNV-1a 64 of \"a\""
    );
}

#[test]
fn tracing_levels_and_before_events_are_configurable() {
    let events = traced_sequence(
        TracingPlugin::new()
            .level(Level::INFO)
            .error_level(Level::ERROR)
            .before_events(false),
    );
    assert!(before_events(&events).is_empty());
    let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
    let mut expected = vec![Level::INFO; 8];
    expected.extend([Level::ERROR, Level::ERROR, Level::ERROR]);
    assert_eq!(levels, expected);
}

#[test]
fn tracing_leaves_out_an_absent_namespace() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        block_on(async {
            let cache = Cache::builder(MapBackend::new())
                .plugin(TracingPlugin::new().before_events(false))
                .build();
            cache.set("k", &1).await.unwrap();
        })
    });
    let events = capture.events(TracingPlugin::TARGET);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field("namespace"), None);
    assert_eq!(events[0].field("op"), Some("set"));
}

// ---------------------------------------------------------------------------------------
// MetricsPlugin

#[cfg(feature = "metrics")]
mod metrics_plugin {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use cache_core::MetricsPlugin;
    use metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };

    use super::*;

    /// Counters and histogram samples by `name{label=value,…}` (labels sorted).
    #[derive(Debug, Default)]
    struct TestRecorder {
        counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
        histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
        descriptions: Mutex<Vec<(String, Option<Unit>)>>,
    }

    #[derive(Debug, Default)]
    struct Samples(Mutex<Vec<f64>>);

    impl HistogramFn for Samples {
        fn record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    fn series(key: &Key) -> String {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl TestRecorder {
        fn counters(&self) -> BTreeMap<String, u64> {
            let counters = self.counters.lock().unwrap();
            counters
                .iter()
                .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                .collect()
        }

        fn histograms(&self) -> BTreeMap<String, Vec<f64>> {
            let histograms = self.histograms.lock().unwrap();
            histograms
                .iter()
                .map(|(k, v)| (k.clone(), v.0.lock().unwrap().clone()))
                .collect()
        }

        fn describe(&self, key: KeyName, unit: Option<Unit>) {
            let mut descriptions = self.descriptions.lock().unwrap();
            descriptions.push((key.as_str().to_owned(), unit));
        }
    }

    impl Recorder for TestRecorder {
        fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.describe(key, unit);
        }
        fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.describe(key, unit);
        }
        fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.describe(key, unit);
        }
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut counters = self.counters.lock().unwrap();
            Counter::from_arc(counters.entry(series(key)).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let mut histograms = self.histograms.lock().unwrap();
            Histogram::from_arc(histograms.entry(series(key)).or_default().clone())
        }
    }

    fn recorded_sequence(plugin: MetricsPlugin) -> TestRecorder {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            plugin.describe();
            block_on(async {
                let cache = builder().plugin(plugin).build();
                run_sequence(&cache).await;
            })
        });
        recorder
    }

    const COMMANDS: [(&str, u64); 6] = [
        ("{backend=map,op=add,outcome=already_exists}", 1),
        ("{backend=map,op=get,outcome=ok}", 4),
        ("{backend=map,op=get,outcome=timeout}", 1),
        ("{backend=map,op=increment,outcome=invalid_argument}", 1),
        ("{backend=map,op=multi_get,outcome=ok}", 1),
        ("{backend=map,op=set,outcome=ok}", 3),
    ];

    fn expected_counters(prefix: &str) -> BTreeMap<String, u64> {
        let mut expected: BTreeMap<String, u64> = COMMANDS
            .iter()
            .map(|(labels, n)| (format!("{prefix}commands_total{labels}"), *n))
            .collect();
        expected.insert(format!("{prefix}hits_total{{backend=map}}"), 3);
        expected.insert(format!("{prefix}misses_total{{backend=map}}"), 4);
        expected
    }

    #[test]
    fn metrics_count_and_time_every_command() {
        let recorder = recorded_sequence(MetricsPlugin::new());
        assert_eq!(recorder.counters(), expected_counters("stratacache_"));

        let histograms = recorder.histograms();
        let sizes: Vec<(String, usize)> = histograms
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect();
        let expected: Vec<(String, usize)> = COMMANDS
            .iter()
            .map(|(labels, n)| {
                let name = format!("stratacache_command_duration_seconds{labels}");
                (name, usize::try_from(*n).unwrap())
            })
            .collect();
        assert_eq!(sizes, expected);
        for samples in histograms.values() {
            assert!(
                samples.iter().all(|s| (0.0..5.0).contains(s)),
                "{samples:?}"
            );
        }
        let timeout =
            &histograms["stratacache_command_duration_seconds{backend=map,op=get,outcome=timeout}"];
        assert!(timeout[0] >= DEADLINE.as_secs_f64(), "{timeout:?}");

        let descriptions = recorder.descriptions.lock().unwrap().clone();
        assert_eq!(
            descriptions,
            [
                ("stratacache_commands_total".to_owned(), Some(Unit::Count)),
                (
                    "stratacache_command_duration_seconds".to_owned(),
                    Some(Unit::Seconds)
                ),
                ("stratacache_hits_total".to_owned(), Some(Unit::Count)),
                ("stratacache_misses_total".to_owned(), Some(Unit::Count)),
                (
                    "stratacache_read_through_events_total".to_owned(),
                    Some(Unit::Count)
                ),
            ]
        );
    }

    #[test]
    fn metrics_prefix_is_configurable() {
        let recorder = recorded_sequence(MetricsPlugin::with_prefix("myapp_cache"));
        assert_eq!(recorder.counters(), expected_counters("myapp_cache_"));
        assert!(
            recorder
                .histograms()
                .keys()
                .all(|k| k.starts_with("myapp_cache_command_duration_seconds{"))
        );
    }

    #[test]
    fn metrics_follow_opentelemetry_conventions_when_asked() {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            block_on(async {
                let cache = Cache::builder(super::Remote {
                    inner: MapBackend::new(),
                })
                .plugin(MetricsPlugin::opentelemetry())
                .build();
                cache.set("k", &1).await.unwrap();
                assert_eq!(cache.get::<u32>("x").await.unwrap(), None);
                let err = cache.add("k", &2).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::AlreadyExists);
            })
        });
        let server = "server.address=cache.internal,server.port=6379";
        let counters = recorder.counters();
        let expected: BTreeMap<String, u64> = [
            format!("stratacache.commands{{db.operation.name=add,db.system.name=map,error.type=already_exists,{server}}}"),
            format!("stratacache.commands{{db.operation.name=get,db.system.name=map,{server}}}"),
            format!("stratacache.commands{{db.operation.name=set,db.system.name=map,{server}}}"),
        ]
        .into_iter()
        .map(|k| (k, 1))
        .chain([
            ("stratacache.hits{db.system.name=map}".to_owned(), 0),
            ("stratacache.misses{db.system.name=map}".to_owned(), 1),
        ])
        .collect();
        assert_eq!(counters, expected);
        let durations: Vec<String> = recorder.histograms().into_keys().collect();
        assert_eq!(
            durations,
            [
                format!(
                    "db.client.operation.duration{{db.operation.name=add,db.system.name=map,error.type=already_exists,{server}}}"
                ),
                format!(
                    "db.client.operation.duration{{db.operation.name=get,db.system.name=map,{server}}}"
                ),
                format!(
                    "db.client.operation.duration{{db.operation.name=set,db.system.name=map,{server}}}"
                ),
            ]
        );
    }

    #[test]
    fn metrics_count_no_reads_for_writes_only() {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            block_on(async {
                let cache = Cache::builder(MapBackend::new())
                    .plugin(MetricsPlugin::new())
                    .build();
                cache.set("k", &1).await.unwrap();
                cache.delete("k").await.unwrap();
            })
        });
        let counters: Vec<String> = recorder.counters().into_keys().collect();
        assert_eq!(
            counters,
            [
                "stratacache_commands_total{backend=map,op=delete,outcome=ok}",
                "stratacache_commands_total{backend=map,op=set,outcome=ok}",
            ]
        );
    }

    #[test]
    fn metrics_count_read_through_events_by_event() {
        let recorder = TestRecorder::default();
        metrics::with_local_recorder(&recorder, || {
            block_on(async {
                let cache = Cache::builder(MapBackend::new())
                    .plugin(MetricsPlugin::new())
                    .read_through(
                        cache_core::ReadThrough::new().hard_timeout(Duration::from_millis(20)),
                    )
                    .build();
                let slow = || async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<u32, std::io::Error>(1)
                };
                let (a, b) = tokio::join!(cache.get_or_set("k", slow), cache.get_or_set("k", slow));
                assert!(a.is_err() && b.is_err());
            })
        });
        let events: BTreeMap<String, u64> = recorder
            .counters()
            .into_iter()
            .filter(|(k, _)| k.starts_with("stratacache_read_through_events_total"))
            .collect();
        let expected: BTreeMap<String, u64> = [
            "{backend=map,event=hard_timeout}",
            "{backend=map,event=load_started}",
            "{backend=map,event=waiter_coalesced}",
        ]
        .into_iter()
        .map(|labels| (format!("stratacache_read_through_events_total{labels}"), 1))
        .collect();
        assert_eq!(events, expected);
    }
}
