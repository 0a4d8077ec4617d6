//! `CoalesceLayer`: concurrent `get`s become one `multi_get` below, and every caller still gets
//! exactly its own answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::layer::{CoalesceLayer, Layer};
use cache_core::testkit::MapBackend;
use cache_core::{
    Backend, Cache, CallContext, Error, ErrorKind, RawBytes, Result, forward_backend,
};
use tokio::task::JoinSet;

/// One `multi_get` that reached the backend: its namespace and keys.
type Sent = Arc<Mutex<Vec<(Option<String>, Vec<String>)>>>;

/// Records every `multi_get` and `get` that reaches it; optionally slow, or failing.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Backend>,
    sent: Sent,
    gets: Arc<Mutex<u64>>,
    delay: Duration,
    fail: bool,
}

#[async_trait]
impl Backend for Recording {
    forward_backend!(inner: get_with_ttl, multi_get_with_ttl, name, capability, endpoint, set, add, multi_set, delete, multi_delete,
        exists, increment, expire, ttl, compare_and_set, compare_and_delete, clear, raw, close);

    async fn get(&self, ctx: &CallContext<'_>, key: &str) -> Result<Option<Bytes>> {
        *self.gets.lock().unwrap() += 1;
        self.inner.get(ctx, key).await
    }

    async fn multi_get(
        &self,
        ctx: &CallContext<'_>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>> {
        self.sent
            .lock()
            .unwrap()
            .push((ctx.namespace().map(str::to_owned), keys.to_vec()));
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.fail {
            return Err(Error::new(ErrorKind::Connection, "the server went away"));
        }
        self.inner.multi_get(ctx, keys).await
    }
}

struct Setup {
    cache: Cache<RawBytes>,
    sent: Sent,
    gets: Arc<Mutex<u64>>,
    layer: CoalesceLayer,
}

fn setup(layer: CoalesceLayer, delay: Duration, fail: bool) -> Setup {
    let sent = Sent::default();
    let gets = Arc::new(Mutex::new(0));
    let recording: Arc<dyn Backend> = Arc::new(Recording {
        inner: Arc::new(MapBackend::new()),
        sent: sent.clone(),
        gets: gets.clone(),
        delay,
        fail,
    });
    let cache = Cache::builder(recording)
        .serializer(RawBytes)
        .layer(layer.clone())
        .build();
    Setup {
        cache,
        sent,
        gets,
        layer,
    }
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_go_down_as_few_multi_gets_and_each_caller_gets_its_own_answer() {
    let s = setup(CoalesceLayer::new(), Duration::ZERO, false);
    for i in 0..200 {
        s.cache.set(&format!("k{i}"), &value(i)).await.unwrap();
    }
    for _round in 0..20 {
        let mut tasks = JoinSet::new();
        for i in 0..200usize {
            let cache = s.cache.clone();
            tasks.spawn(async move {
                // every fifth key is absent
                let key = if i % 5 == 0 {
                    format!("absent{i}")
                } else {
                    format!("k{i}")
                };
                let got: Option<Bytes> = cache.get(&key).await.unwrap();
                (i, got)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, got) = done.unwrap();
            let expected = (i % 5 != 0).then(|| value(i));
            assert_eq!(got, expected, "the answer of key {i}");
        }
    }
    let sent = s.sent.lock().unwrap();
    let keys_sent: usize = sent.iter().map(|(_, keys)| keys.len()).sum();
    assert_eq!(keys_sent, 4000, "every read went down once");
    assert_eq!(
        *s.gets.lock().unwrap(),
        0,
        "no single-key get reached the backend"
    );
    assert_eq!(s.layer.reads(), 4000);
    assert_eq!(s.layer.batches(), sent.len() as u64);
    assert!(
        sent.len() < 4000 / 4,
        "{} batches for 4000 concurrent reads: the reads were not gathered",
        sent.len()
    );
    assert!(
        sent.iter().all(|(_, keys)| keys.len() <= 128),
        "no batch over max_batch"
    );
}

#[tokio::test]
async fn a_key_read_twice_in_one_batch_is_sent_once() {
    let s = setup(CoalesceLayer::new(), Duration::ZERO, false);
    s.cache.set("k", &value(1)).await.unwrap();
    let reads = (0..10).map(|_| s.cache.get::<Bytes>("k"));
    let answers = futures_join_all(reads).await;
    for a in answers {
        assert_eq!(a.unwrap(), Some(value(1)));
    }
    let sent = s.sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "one batch: {sent:?}");
    assert_eq!(sent[0].1, vec!["k".to_owned()], "the key sent once");
}

#[tokio::test]
async fn reads_in_different_namespaces_are_never_batched_together() {
    let s = setup(CoalesceLayer::new(), Duration::ZERO, false);
    s.cache
        .with_namespace("a")
        .set("k", &value(1))
        .await
        .unwrap();
    s.cache
        .with_namespace("b")
        .set("k", &value(2))
        .await
        .unwrap();
    let a = s.cache.with_namespace("a");
    let b = s.cache.with_namespace("b");
    let (x, y, z) = tokio::join!(
        a.get::<Bytes>("k"),
        b.get::<Bytes>("k"),
        a.get::<Bytes>("k")
    );
    assert_eq!(x.unwrap(), Some(value(1)));
    assert_eq!(y.unwrap(), Some(value(2)));
    assert_eq!(z.unwrap(), Some(value(1)));
    let sent = s.sent.lock().unwrap();
    assert_eq!(sent.len(), 2, "one batch per namespace: {sent:?}");
    for (ns, keys) in sent.iter() {
        let ns = ns.as_deref().expect("a namespaced batch");
        assert_eq!(keys, &vec![format!("{ns}:k")]);
    }
}

#[tokio::test]
async fn a_failed_batch_fails_each_of_its_reads_with_the_same_error() {
    let s = setup(CoalesceLayer::new(), Duration::ZERO, true);
    let (x, y) = tokio::join!(s.cache.get::<Bytes>("a"), s.cache.get::<Bytes>("b"));
    for r in [x, y] {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.to_string().contains("the server went away"), "{e}");
    }
    assert_eq!(s.sent.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_gives_up_strands_no_other_reader() {
    // the backend takes 100 ms; the first reader (whose read started the batch) gives up
    // after 10 ms, the others wait
    let s = setup(CoalesceLayer::new(), Duration::from_millis(100), false);
    s.cache.set("a", &value(1)).await.unwrap();
    s.cache.set("b", &value(2)).await.unwrap();
    let quick = s.cache.with_timeout(Duration::from_millis(10));
    let patient = s.cache.with_timeout(Duration::from_secs(5));
    let (first, second, third) = tokio::join!(
        quick.get::<Bytes>("a"),
        patient.get::<Bytes>("a"),
        patient.get::<Bytes>("b"),
    );
    assert_eq!(first.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(second.unwrap(), Some(value(1)));
    assert_eq!(third.unwrap(), Some(value(2)));
}

#[tokio::test]
async fn a_batch_of_one_and_a_full_batch_go_at_once() {
    let s = setup(CoalesceLayer::new().max_batch(2), Duration::ZERO, false);
    for i in 0..5 {
        s.cache.set(&format!("k{i}"), &value(i)).await.unwrap();
    }
    let reads = (0..5).map(|i| {
        let cache = s.cache.clone();
        async move { cache.get::<Bytes>(&format!("k{i}")).await }
    });
    for (i, a) in futures_join_all(reads).await.into_iter().enumerate() {
        assert_eq!(a.unwrap(), Some(value(i)));
    }
    let sent = s.sent.lock().unwrap();
    assert!(
        sent.iter().all(|(_, k)| k.len() <= 2),
        "max_batch 2: {sent:?}"
    );
    assert_eq!(sent.iter().map(|(_, k)| k.len()).sum::<usize>(), 5);
}

#[tokio::test]
async fn other_commands_pass_straight_through() {
    let s = setup(CoalesceLayer::new(), Duration::ZERO, false);
    s.cache.set("k", &value(1)).await.unwrap();
    let got: Vec<Option<Bytes>> = s.cache.multi_get(["k", "x"]).await.unwrap();
    assert_eq!(got, vec![Some(value(1)), None]);
    assert!(s.cache.exists("k").await.unwrap());
    assert_eq!(s.layer.reads(), 0, "only single-key gets are coalesced");
    assert_eq!(
        s.sent.lock().unwrap().len(),
        1,
        "the caller's own multi_get"
    );
}

#[test]
fn without_a_runtime_a_read_goes_down_alone() {
    let backend: Arc<dyn Backend> = Arc::new(MapBackend::new());
    let layer = CoalesceLayer::new();
    let stack = layer.layer(backend);
    let ctx = CallContext::new(cache_core::Command::Get);
    let got = cache_core::testkit::block_on_without_runtime(stack.get(&ctx, "k"));
    assert_eq!(got.unwrap(), None);
    assert_eq!((layer.reads(), layer.batches()), (1, 1));
}

/// Runs the futures concurrently on the current task (so they join one batch).
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("finished")).collect()
}
