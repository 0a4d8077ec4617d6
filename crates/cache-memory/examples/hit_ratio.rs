//! Hit-ratio study of the memory store's eviction policy (S3-FIFO).
//!
//! A cache of capacity C (1% and 10% of 100,000 keys) serves a stream of
//! 2,000,000 requests whose keys follow a Zipf law (s = 0.9 and 1.1); a miss is
//! followed by a `set`. The real store is driven (with its real shard count),
//! and compared with simple simulations of exact LRU, CLOCK, FIFO and random
//! eviction fed the same stream. The last rows mix the Zipf stream with
//! one-hit-wonder keys (a scan), the case S3-FIFO's probation queue is for.
//!
//! Run with `cargo run --release -p cache-memory --example hit_ratio`.
//! It prints a markdown table of hit ratios.

// The store is crate-private until the backend wraps it; compile its sources
// into this example to drive the real engine.
#[allow(dead_code, unreachable_pub)]
#[path = "../src/clock.rs"]
mod clock;
#[allow(dead_code, unreachable_pub)]
#[path = "../src/store.rs"]
mod store;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

const KEYS: u64 = 100_000;
const REQUESTS: usize = 2_000_000;

/// One request: a key id (ids ≥ `KEYS` are one-hit wonders).
type Stream = Vec<u64>;

/// A request stream: Zipf ranks mapped to scattered key ids, with a share of
/// one-hit-wonder keys (`scan` in 0..1).
fn stream(s: f64, scan: f64, seed: u64) -> Stream {
    let zipf = Zipf::new(KEYS as f64, s).expect("valid Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut next_cold = KEYS;
    (0..REQUESTS)
        .map(|_| {
            if scan > 0.0 && rng.random_bool(scan) {
                next_cold += 1;
                next_cold
            } else {
                let rank = zipf.sample(&mut rng) as u64 - 1;
                // Scatter ranks over the ids: the multiplier is coprime with
                // KEYS = 2^5 · 5^5, so this is a bijection of 0..KEYS.
                rank * 2_654_435_761 % KEYS
            }
        })
        .collect()
}

/// A cache simulation: `access` returns whether the key was a hit, and
/// inserts it on a miss.
trait Policy {
    fn access(&mut self, key: u64) -> bool;
}

/// The real store: `get`, and `set` on a miss.
struct Real {
    store: store::Store,
    key: String,
}

impl Policy for Real {
    fn access(&mut self, key: u64) -> bool {
        use std::fmt::Write;
        self.key.clear();
        let _ = write!(self.key, "key:{key}");
        if self.store.get(&self.key).is_some() {
            return true;
        }
        self.store
            .set(&self.key, Bytes::from_static(b"v"), None)
            .expect("entry fits");
        false
    }
}

const NIL: usize = usize::MAX;

/// Exact LRU: a hash map into an index-linked list.
struct Lru {
    cap: usize,
    map: HashMap<u64, usize>,
    keys: Vec<u64>,
    prev: Vec<usize>,
    next: Vec<usize>,
    head: usize,
    tail: usize,
}

impl Lru {
    fn new(cap: usize) -> Self {
        Lru {
            cap,
            map: HashMap::with_capacity(cap),
            keys: Vec::with_capacity(cap),
            prev: Vec::with_capacity(cap),
            next: Vec::with_capacity(cap),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n] = p;
        }
    }

    fn push_front(&mut self, i: usize) {
        self.prev[i] = NIL;
        self.next[i] = self.head;
        if self.head != NIL {
            self.prev[self.head] = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
}

impl Policy for Lru {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.unlink(i);
            self.push_front(i);
            return true;
        }
        let i = if self.map.len() >= self.cap {
            let victim = self.tail;
            self.unlink(victim);
            self.map.remove(&self.keys[victim]);
            self.keys[victim] = key;
            victim
        } else {
            self.keys.push(key);
            self.prev.push(NIL);
            self.next.push(NIL);
            self.keys.len() - 1
        };
        self.map.insert(key, i);
        self.push_front(i);
        false
    }
}

/// Classic CLOCK (second chance) with one reference bit.
struct Clock {
    cap: usize,
    map: HashMap<u64, usize>,
    keys: Vec<u64>,
    referenced: Vec<bool>,
    hand: usize,
}

impl Policy for Clock {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.referenced[i] = true;
            return true;
        }
        if self.keys.len() < self.cap {
            self.map.insert(key, self.keys.len());
            self.keys.push(key);
            self.referenced.push(false);
            return false;
        }
        while self.referenced[self.hand] {
            self.referenced[self.hand] = false;
            self.hand = (self.hand + 1) % self.cap;
        }
        let i = self.hand;
        self.hand = (self.hand + 1) % self.cap;
        self.map.remove(&self.keys[i]);
        self.keys[i] = key;
        self.map.insert(key, i);
        false
    }
}

/// FIFO: evict in insertion order, hits change nothing.
struct Fifo {
    cap: usize,
    map: HashMap<u64, ()>,
    queue: VecDeque<u64>,
}

impl Policy for Fifo {
    fn access(&mut self, key: u64) -> bool {
        if self.map.contains_key(&key) {
            return true;
        }
        if self.queue.len() >= self.cap
            && let Some(victim) = self.queue.pop_front()
        {
            self.map.remove(&victim);
        }
        self.queue.push_back(key);
        self.map.insert(key, ());
        false
    }
}

/// Random eviction.
struct Random {
    cap: usize,
    map: HashMap<u64, usize>,
    keys: Vec<u64>,
    rng: SmallRng,
}

impl Policy for Random {
    fn access(&mut self, key: u64) -> bool {
        if self.map.contains_key(&key) {
            return true;
        }
        if self.keys.len() < self.cap {
            self.map.insert(key, self.keys.len());
            self.keys.push(key);
        } else {
            let i = self.rng.random_range(0..self.keys.len());
            self.map.remove(&self.keys[i]);
            self.keys[i] = key;
            self.map.insert(key, i);
        }
        false
    }
}

fn hit_ratio(policy: &mut dyn Policy, stream: &Stream) -> f64 {
    let hits = stream.iter().filter(|&&k| policy.access(k)).count();
    hits as f64 / stream.len() as f64
}

fn main() {
    println!(
        "{} keys, {} requests per row, Zipf ranks scattered over the keys; miss → set.\n",
        KEYS, REQUESTS
    );
    println!(
        "| workload | capacity | shards | stratacache (S3-FIFO) | LRU | CLOCK | FIFO | random |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let workloads = [
        (0.9, 0.0, "Zipf 0.9"),
        (1.1, 0.0, "Zipf 1.1"),
        (0.9, 0.3, "Zipf 0.9 + 30% one-hit keys"),
    ];
    for (s, scan, name) in workloads {
        let stream = stream(s, scan, 42);
        for cap in [KEYS / 100, KEYS / 10] {
            let config = store::StoreConfig {
                max_entries: Some(cap),
                max_bytes: None,
            };
            let real = store::Store::new(config, Arc::new(clock::SystemClock::new()));
            let shards = real.shard_count();
            let mut real = Real {
                store: real,
                key: String::new(),
            };
            let cap = cap as usize;
            let ours = hit_ratio(&mut real, &stream);
            let lru = hit_ratio(&mut Lru::new(cap), &stream);
            let clock = hit_ratio(
                &mut Clock {
                    cap,
                    map: HashMap::with_capacity(cap),
                    keys: Vec::with_capacity(cap),
                    referenced: Vec::with_capacity(cap),
                    hand: 0,
                },
                &stream,
            );
            let fifo = hit_ratio(
                &mut Fifo {
                    cap,
                    map: HashMap::with_capacity(cap),
                    queue: VecDeque::with_capacity(cap),
                },
                &stream,
            );
            let random = hit_ratio(
                &mut Random {
                    cap,
                    map: HashMap::with_capacity(cap),
                    keys: Vec::with_capacity(cap),
                    rng: SmallRng::seed_from_u64(7),
                },
                &stream,
            );
            let pct = |r: f64| format!("{:.2}%", r * 100.0);
            println!(
                "| {name} | {cap} | {shards} | **{}** | {} | {} | {} | {} |",
                pct(ours),
                pct(lru),
                pct(clock),
                pct(fifo),
                pct(random)
            );
        }
    }
}
