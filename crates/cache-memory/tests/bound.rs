//! The memory backend stays within `max_entries` and `max_bytes` at every sample, under
//! sustained writes of many times its capacity from four concurrent writers (Zipf and modulo
//! key reuse, value sizes from tiny to large so that each bound takes its turn as the binding
//! one), sampled after every batch by each writer and continuously by a
//! fifth task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Cache, ErrorKind, RawBytes, RawValue};
use cache_memory::MemoryBackend;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

const MAX_ENTRIES: u64 = 2_000;
const MAX_BYTES: u64 = 256 * 1024;
/// Distinct keys: ten times the entry bound.
const UNIVERSE: u64 = 10 * MAX_ENTRIES;
const WRITERS: u64 = 4;
const BATCHES: u64 = 100;
/// Writes per batch: 50 in one `multi_set`, 20 `set`, 10 `add`, 10 `increment`, 10
/// `compare_and_set`.
const WRITES_PER_BATCH: u64 = 100;

/// Highest entry count and weight seen, and how many samples were taken.
#[derive(Debug, Default)]
struct Samples {
    count: AtomicU64,
    max_len: AtomicU64,
    max_weight: AtomicU64,
}

impl Samples {
    /// Samples the backend through its public counters and through `raw` `LEN` / `WEIGHT`,
    /// and fails on any value over the bounds.
    async fn take(&self, backend: &MemoryBackend, cache: &Cache<RawBytes>, at: &str) {
        let (len, weight) = (backend.len(), backend.weight());
        let raw_len = int(cache.raw("LEN", Vec::<String>::new()).await.unwrap());
        let raw_weight = int(cache.raw("WEIGHT", Vec::<String>::new()).await.unwrap());
        for (l, w) in [(len, weight), (raw_len, raw_weight)] {
            assert!(l <= MAX_ENTRIES, "{at}: {l} entries > bound {MAX_ENTRIES}");
            assert!(w <= MAX_BYTES, "{at}: {w} bytes > bound {MAX_BYTES}");
            self.max_len.fetch_max(l, Ordering::Relaxed);
            self.max_weight.fetch_max(w, Ordering::Relaxed);
        }
        self.count.fetch_add(2, Ordering::Relaxed);
    }
}

fn int(v: RawValue) -> u64 {
    u64::try_from(v.as_i64().expect("LEN and WEIGHT answer integers")).unwrap()
}

/// The next key rank of writer `w`: Zipf-distributed for writers 0 and 1 (a few hot keys,
/// a long tail), a stride through the whole universe for writers 2 and 3.
fn next_rank(w: u64, i: u64, rng: &mut SmallRng, zipf: &Zipf<f64>) -> u64 {
    if w < 2 {
        zipf.sample(rng) as u64 - 1
    } else {
        (i * 7_919 + w * 1_013) % UNIVERSE
    }
}

/// A value for batch `batch`: 1 to 16 bytes in the first third of the batches (the entry
/// bound binds), 256 to 4,096 bytes in the second (the byte bound binds), either at random
/// in the last.
fn value(batch: u64, rng: &mut SmallRng) -> Bytes {
    let tiny = match batch * 3 / BATCHES {
        0 => true,
        1 => false,
        _ => rng.random_bool(0.5),
    };
    let len = if tiny {
        rng.random_range(1..=16)
    } else {
        rng.random_range(256..=4_096)
    };
    Bytes::from(vec![b'v'; len])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_and_bytes_stay_within_bounds_under_concurrent_overwrites() {
    let backend = MemoryBackend::new()
        .max_entries(MAX_ENTRIES)
        .max_bytes(MAX_BYTES);
    let cache = Cache::builder(backend.clone())
        .namespace("bound")
        .serializer(RawBytes)
        .build();
    let samples = Arc::new(Samples::default());
    let done = Arc::new(AtomicBool::new(false));
    let written_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    let sampler = {
        let (backend, cache, samples, done) = (
            backend.clone(),
            cache.clone(),
            samples.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                samples.take(&backend, &cache, "sampler").await;
                tokio::task::yield_now().await;
            }
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (backend, cache, samples, written_bytes) = (
                backend.clone(),
                cache.clone(),
                samples.clone(),
                written_bytes.clone(),
            );
            tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(w);
                let zipf = Zipf::new(UNIVERSE as f64, 1.1).unwrap();
                let mut i = 0;
                let mut next = |rng: &mut SmallRng| {
                    i += 1;
                    next_rank(w, i, rng, &zipf)
                };
                for batch in 0..BATCHES {
                    let mut bytes = 0;
                    let pairs: Vec<(String, Bytes)> = (0..50)
                        .map(|_| (format!("k{}", next(&mut rng)), value(batch, &mut rng)))
                        .collect();
                    bytes += pairs.iter().map(|(_, v)| v.len()).sum::<usize>();
                    cache.multi_set(pairs).await.unwrap();
                    for j in 0..20 {
                        let key = format!("k{}", next(&mut rng));
                        let v = value(batch, &mut rng);
                        bytes += v.len();
                        if j % 5 == 0 {
                            let short = cache.with_ttl(Duration::from_millis(20));
                            short.set(&key, &v).await.unwrap();
                        } else {
                            cache.set(&key, &v).await.unwrap();
                        }
                    }
                    for _ in 0..10 {
                        let key = format!("k{}", next(&mut rng));
                        let v = value(batch, &mut rng);
                        bytes += v.len();
                        match cache.add(&key, &v).await {
                            Ok(()) => {}
                            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
                        }
                    }
                    for _ in 0..10 {
                        let key = format!("c{}", next(&mut rng));
                        cache.increment(&key, 1).await.unwrap();
                    }
                    for _ in 0..10 {
                        let key = format!("k{}", next(&mut rng));
                        let v = value(batch, &mut rng);
                        bytes += v.len();
                        let current: Option<Bytes> = cache.get(&key).await.unwrap();
                        // a lost race or an eviction in between is fine; the bound is not
                        cache
                            .compare_and_set(&key, current.as_ref(), &v)
                            .await
                            .unwrap();
                    }
                    written_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                    samples
                        .take(&backend, &cache, &format!("writer {w} after batch {batch}"))
                        .await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::Release);
    sampler.await.unwrap();

    let writes = WRITERS * BATCHES * WRITES_PER_BATCH;
    let bytes = written_bytes.load(Ordering::Relaxed);
    assert!(writes >= 10 * MAX_ENTRIES, "{writes} writes");
    assert!(bytes >= 10 * MAX_BYTES, "{bytes} bytes written");
    let count = samples.count.load(Ordering::Relaxed);
    let max_len = samples.max_len.load(Ordering::Relaxed);
    let max_weight = samples.max_weight.load(Ordering::Relaxed);
    assert!(
        count >= 2 * WRITERS * BATCHES,
        "every batch was sampled: {count}"
    );
    // the bounds were reached (eviction really ran), never passed
    assert!(max_len > MAX_ENTRIES / 2, "max entries {max_len}");
    assert!(max_weight > MAX_BYTES / 2, "max weight {max_weight}");
    // still a working cache
    cache
        .set("after", &Bytes::from_static(b"fresh"))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = cache.get("after").await.unwrap();
    assert_eq!(back.as_deref(), Some(&b"fresh"[..]));
    eprintln!(
        "memory bound: {writes} writes ({bytes} value bytes) by {WRITERS} writers over {UNIVERSE} \
         keys in {:?}; {count} samples; max {max_len} entries (bound {MAX_ENTRIES}), max \
         {max_weight} bytes (bound {MAX_BYTES})",
        started.elapsed()
    );
}

/// Every live entry removed to make room is counted, and nothing else is: writing 1,000
/// distinct keys into room for 100 evicts exactly 900; overwrites, deletes and expiry do not
/// count.
#[tokio::test]
async fn evictions_count_the_entries_removed_to_make_room() {
    let backend = MemoryBackend::new().max_entries(100);
    let cache = Cache::new(backend.clone());
    for i in 0..100 {
        cache.set(&format!("k{i}"), &i).await.unwrap();
    }
    for i in 0..100 {
        cache.set(&format!("k{i}"), &(i + 1)).await.unwrap();
    }
    cache.delete("k0").await.unwrap();
    cache
        .with_ttl(Duration::from_millis(1))
        .set("short", &0)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(backend.remove_expired(), 1);
    assert_eq!(backend.evictions(), 0, "no room was needed yet");
    for i in 0..1_000 {
        cache.set(&format!("n{i}"), &i).await.unwrap();
    }
    assert_eq!(backend.len(), 100);
    assert_eq!(
        backend.evictions(),
        1_000 - 1,
        "99 old keys and 900 new ones made room"
    );
}
