use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::clock::ManualClock;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn unbounded() -> (Store, ManualClock) {
    bounded(None, None)
}

fn bounded(max_entries: Option<u64>, max_bytes: Option<u64>) -> (Store, ManualClock) {
    let clock = ManualClock::new();
    let config = StoreConfig {
        max_entries,
        max_bytes,
    };
    (Store::new(config, Arc::new(clock.clone())), clock)
}

fn sharded(
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    shards: usize,
) -> (Store, ManualClock) {
    let clock = ManualClock::new();
    let config = StoreConfig {
        max_entries,
        max_bytes,
    };
    (
        Store::with_shards(config, Arc::new(clock.clone()), shards),
        clock,
    )
}

impl Store {
    /// Checks every shard's internal consistency and that the global counters
    /// match the contents (only meaningful when no write is in flight).
    fn check(&self) {
        let (mut len, mut weight) = (0, 0);
        for shard in self.shards.iter() {
            let (l, w) = shard.read().check_invariants(&self.ctx);
            len += l;
            weight += w;
        }
        assert_eq!(len, self.len(), "len counter");
        assert_eq!(weight, self.weight(), "weight counter");
    }
}

#[test]
fn slot_is_compact() {
    assert_eq!(std::mem::size_of::<shard::Slot>(), 64);
    assert_eq!(std::mem::align_of::<shard::Slot>(), 64);
}

#[test]
fn get_set_overwrite_and_weight() {
    let (s, _) = unbounded();
    assert_eq!(s.get("a"), None);
    assert!(s.is_empty());
    s.set("a", b("one"), None).unwrap();
    assert_eq!(s.get("a"), Some(b("one")));
    assert_eq!((s.len(), s.weight()), (1, 4));
    s.set("a", b("three"), None).unwrap();
    assert_eq!(s.get("a"), Some(b("three")));
    assert_eq!((s.len(), s.weight()), (1, 6));
    s.set("a", b(""), None).unwrap();
    assert_eq!(s.get("a"), Some(b("")));
    assert_eq!((s.len(), s.weight()), (1, 1));
    s.set("", b("empty key"), None).unwrap();
    assert_eq!(s.get(""), Some(b("empty key")));
    let long = "k".repeat(300);
    s.set(&long, b("v"), None).unwrap();
    assert_eq!(s.get(&long), Some(b("v")));
    assert_eq!(s.get(&long[..299]), None);
    assert_eq!(s.len(), 3);
    assert_eq!(s.weight(), 1 + 9 + 301);
    s.check();
}

#[test]
fn set_overwrites_ttl() {
    let (s, clock) = unbounded();
    s.set("k", b("v"), Some(ms(10))).unwrap();
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(10)));
    s.set("k", b("v2"), None).unwrap();
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);
    s.set("k", b("v3"), Some(ms(5))).unwrap();
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(5)));
    clock.advance(ms(5));
    assert_eq!(s.get("k"), None);
    s.check();
}

#[test]
fn expiry_is_exact_at_expires_at() {
    let (s, clock) = unbounded();
    clock.set(ms(1000));
    s.set("k", b("5"), Some(ms(100))).unwrap();
    clock.set(ms(1100) - us(1));
    assert_eq!(s.get("k"), Some(b("5")));
    assert!(s.contains("k"));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(1)));

    clock.set(ms(1100));
    assert_eq!(s.get("k"), None, "get at expires_at");
    assert!(!s.contains("k"));
    assert_eq!(s.ttl("k"), KeyTtl::Missing);
    assert!(!s.expire("k", None));
    assert!(!s.delete("k"));
    s.check();
}

#[test]
fn expired_entry_is_absent_for_every_write() {
    let (s, clock) = unbounded();
    let setup = |s: &Store| {
        s.set("k", b("5"), Some(ms(10))).unwrap();
        clock.advance(ms(10));
    };
    setup(&s);
    assert!(!s.contains("k"), "contains");
    assert_eq!(s.len(), 1, "contains does not reclaim");
    assert_eq!(s.add("k", b("new"), None), Ok(true), "add");
    assert_eq!(s.get("k"), Some(b("new")));

    setup(&s);
    assert_eq!(s.increment("k", 2), Ok(2), "increment");
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);

    setup(&s);
    assert_eq!(s.compare_and_set("k", Some(b"5"), b("x"), None), Ok(false));
    assert_eq!(s.compare_and_set("k", None, b("y"), None), Ok(true));
    assert_eq!(s.get("k"), Some(b("y")));

    setup(&s);
    assert!(!s.expire("k", Some(ms(100))), "expire");
    assert_eq!(s.ttl("k"), KeyTtl::Missing);

    setup(&s);
    assert!(!s.delete("k"), "delete");
    s.check();
    assert!(s.is_empty());
}

#[test]
fn get_reclaims_expired_entry() {
    let (s, clock) = unbounded();
    s.set("k", b("v"), Some(ms(1))).unwrap();
    clock.advance(ms(1));
    assert_eq!(s.len(), 1);
    assert_eq!(s.get("k"), None);
    assert_eq!((s.len(), s.weight()), (0, 0));
    s.check();
}

#[test]
fn ttl_rounding() {
    let (s, clock) = unbounded();
    for (ttl, want) in [
        (Duration::ZERO, ms(1)),
        (Duration::from_nanos(1), ms(1)),
        (us(999), ms(1)),
        (ms(1), ms(1)),
        (us(1001), ms(2)),
        (us(1500), ms(2)),
        (Duration::from_secs(3), ms(3000)),
    ] {
        s.set("k", b("v"), Some(ttl)).unwrap();
        assert_eq!(s.ttl("k"), KeyTtl::Remaining(want), "ttl {ttl:?}");
    }
    // Sub-millisecond TTL lives exactly 1 ms.
    s.set("k", b("v"), Some(Duration::from_nanos(1))).unwrap();
    clock.advance(us(999));
    assert!(s.contains("k"));
    clock.advance(us(1));
    assert!(!s.contains("k"));

    // Remaining time rounds up to whole milliseconds.
    s.set("k", b("v"), Some(ms(1000))).unwrap();
    clock.advance(us(500));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(1000)));
    clock.advance(us(500));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(999)));
    clock.advance(ms(998) + us(1));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(1)));
    assert_eq!(s.ttl("nope"), KeyTtl::Missing);
    s.set("n", b("v"), None).unwrap();
    assert_eq!(s.ttl("n"), KeyTtl::NoExpiry);
}

#[test]
fn huge_ttl_and_late_clock_do_not_panic() {
    let (s, clock) = unbounded();
    s.set("a", b("v"), Some(Duration::MAX)).unwrap();
    s.set("b", b("v"), Some(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap();
    assert!(matches!(s.ttl("a"), KeyTtl::Remaining(d) if d > Duration::from_secs(1 << 40)));
    assert_eq!(
        s.ttl("b"),
        KeyTtl::Remaining(Duration::from_secs(100 * 365 * 86_400))
    );
    clock.set(Duration::from_secs(1 << 50));
    s.set("c", b("v"), Some(Duration::MAX)).unwrap();
    assert_eq!(s.get("c"), Some(b("v")));
    clock.set(Duration::MAX);
    s.set("d", b("v"), Some(ms(1))).unwrap();
    assert_eq!(s.get("d"), Some(b("v")));
    assert_eq!(s.get("b"), None);
    assert_eq!(
        s.get("a"),
        Some(b("v")),
        "expiry saturates far beyond the clock's range"
    );
    s.check();
}

#[test]
fn add_is_set_if_absent() {
    let (s, clock) = unbounded();
    assert_eq!(s.add("k", b("1"), Some(ms(10))), Ok(true));
    assert_eq!(s.add("k", b("2"), None), Ok(false));
    assert_eq!(s.get("k"), Some(b("1")));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(10)));
    clock.advance(ms(10));
    assert_eq!(s.add("k", b("3"), None), Ok(true));
    assert_eq!(s.get("k"), Some(b("3")));
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);
    s.check();
}

#[test]
fn delete_and_contains() {
    let (s, _) = unbounded();
    assert!(!s.delete("k"));
    s.set("k", b("v"), None).unwrap();
    assert!(s.contains("k"));
    assert!(s.delete("k"));
    assert!(!s.contains("k"));
    assert!(!s.delete("k"));
    assert_eq!((s.len(), s.weight()), (0, 0));
    s.check();
}

#[test]
fn expire_sets_and_removes_expiry() {
    let (s, clock) = unbounded();
    assert!(!s.expire("missing", Some(ms(5))));
    assert!(!s.expire("missing", None));
    s.set("k", b("v"), None).unwrap();
    assert!(s.expire("k", None), "existing key without ttl");
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);
    assert!(s.expire("k", Some(ms(20))));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(20)));
    clock.advance(ms(10));
    assert!(s.expire("k", None));
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);
    clock.advance(ms(100));
    assert_eq!(s.get("k"), Some(b("v")));
    assert!(s.expire("k", Some(Duration::from_nanos(1))));
    clock.advance(ms(1));
    assert!(!s.contains("k"));
    s.check();
}

#[test]
fn compare_and_set() {
    let (s, clock) = unbounded();
    assert_eq!(s.compare_and_set("k", Some(b"a"), b("b"), None), Ok(false));
    assert_eq!(s.get("k"), None);
    assert_eq!(s.compare_and_set("k", None, b("a"), Some(ms(50))), Ok(true));
    assert_eq!(s.compare_and_set("k", None, b("x"), None), Ok(false));
    assert_eq!(s.compare_and_set("k", Some(b"zz"), b("x"), None), Ok(false));
    assert_eq!(s.get("k"), Some(b("a")));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(50)));
    assert_eq!(
        s.compare_and_set("k", Some(b"a"), b("bb"), Some(ms(5))),
        Ok(true)
    );
    assert_eq!(s.get("k"), Some(b("bb")));
    assert_eq!(s.ttl("k"), KeyTtl::Remaining(ms(5)));
    assert_eq!(s.compare_and_set("k", Some(b"bb"), b("c"), None), Ok(true));
    assert_eq!(s.ttl("k"), KeyTtl::NoExpiry);
    assert_eq!(s.compare_and_set("k", Some(b""), b("d"), None), Ok(false));
    clock.advance(ms(1));
    assert_eq!(s.weight(), 2);
    s.check();
}

#[test]
fn increment_contract() {
    let (s, clock) = unbounded();
    assert_eq!(s.increment("n", 5), Ok(5));
    assert_eq!(s.get("n"), Some(b("5")));
    assert_eq!(s.ttl("n"), KeyTtl::NoExpiry);
    assert_eq!(s.increment("n", -8), Ok(-3));
    assert_eq!(s.get("n"), Some(b("-3")));
    assert_eq!(s.increment("n", 3), Ok(0));
    assert_eq!(s.get("n"), Some(b("0")));
    assert_eq!(s.increment("n", 0), Ok(0));
    assert_eq!(s.increment("m", -7), Ok(-7));
    assert_eq!(s.get("m"), Some(b("-7")));

    // Keeps the TTL.
    s.set("t", b("10"), Some(ms(100))).unwrap();
    clock.advance(ms(40));
    assert_eq!(s.increment("t", 1), Ok(11));
    assert_eq!(s.ttl("t"), KeyTtl::Remaining(ms(60)));
    assert_eq!(s.get("t"), Some(b("11")));
    clock.advance(ms(60));
    assert_eq!(s.increment("t", 1), Ok(1), "expired counter restarts");
    assert_eq!(s.ttl("t"), KeyTtl::NoExpiry);

    // Not integers: value and ttl untouched.
    for bad in [
        "",
        "-",
        "+5",
        " 5",
        "5 ",
        "05",
        "-05",
        "-0",
        "00",
        "1.0",
        "1e3",
        "abc",
        "٣",
        "0x10",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
    ] {
        s.set("bad", b(bad), Some(ms(500))).unwrap();
        assert_eq!(
            s.increment("bad", 1),
            Err(IncrementError::NotInteger),
            "{bad:?}"
        );
        assert_eq!(s.get("bad"), Some(b(bad)));
        assert_eq!(s.ttl("bad"), KeyTtl::Remaining(ms(500)));
    }
    s.set("bin", Bytes::from_static(&[0xff, 0x31]), None)
        .unwrap();
    assert_eq!(s.increment("bin", 1), Err(IncrementError::NotInteger));

    // Overflow: value untouched.
    s.set("max", b("9223372036854775807"), None).unwrap();
    assert_eq!(s.increment("max", 1), Err(IncrementError::Overflow));
    assert_eq!(s.get("max"), Some(b("9223372036854775807")));
    assert_eq!(s.increment("max", -1), Ok(i64::MAX - 1));
    s.set("min", b("-9223372036854775808"), None).unwrap();
    assert_eq!(s.increment("min", -1), Err(IncrementError::Overflow));
    assert_eq!(s.get("min"), Some(b("-9223372036854775808")));
    assert_eq!(s.increment("min", i64::MAX), Ok(-1));
    assert_eq!(s.increment("min", i64::MIN), Err(IncrementError::Overflow));
    assert_eq!(s.increment("x", i64::MIN), Ok(i64::MIN));
    assert_eq!(s.get("x"), Some(b("-9223372036854775808")));
    assert_eq!(s.increment("x", i64::MAX), Ok(-1));
    assert_eq!(s.get("x"), Some(b("-1")));
    s.check();
}

#[test]
fn canonical_integer_text() {
    for (text, want) in [
        ("0", Some(0)),
        ("7", Some(7)),
        ("-7", Some(-7)),
        ("10", Some(10)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("-0", None),
        ("007", None),
        ("+7", None),
        ("7\n", None),
    ] {
        assert_eq!(parse_canonical_i64(text.as_bytes()), want, "{text:?}");
    }
    let mut rng = SmallRng::seed_from_u64(7);
    let mut buf = [0; 20];
    for n in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN]
        .into_iter()
        .chain((0..1000).map(|_| rng.random::<i64>()))
    {
        let text = format_i64(n, &mut buf);
        assert_eq!(text, n.to_string().as_bytes());
        assert_eq!(parse_canonical_i64(text), Some(n));
    }
}

#[test]
fn clear_prefix_removes_exactly_matching_keys() {
    let (s, clock) = unbounded();
    for k in [
        "users:1", "users:2", "users:", "users", "user:1", "Users:1", "xusers:1", "users:10",
    ] {
        s.set(k, b("v"), None).unwrap();
    }
    s.set("users:expired", b("v"), Some(ms(1))).unwrap();
    s.set("other:expired", b("v"), Some(ms(1))).unwrap();
    clock.advance(ms(1));
    assert_eq!(s.clear_prefix("users:"), 4);
    for k in ["users:1", "users:2", "users:", "users:10", "users:expired"] {
        assert!(!s.contains(k), "{k}");
    }
    for k in ["users", "user:1", "Users:1", "xusers:1"] {
        assert!(s.contains(k), "{k}");
    }
    assert_eq!(s.len(), 5, "the other expired entry is still held");
    assert_eq!(s.clear_prefix("nothing"), 0);
    s.check();
    assert_eq!(s.clear(), 4);
    assert!(s.is_empty());
    assert_eq!(s.weight(), 0);
    s.check();
    s.set("again", b("v"), None).unwrap();
    assert_eq!(s.clear_prefix(""), 1);
    s.check();
}

#[test]
fn remove_expired_sweeps_everything() {
    let (s, clock) = unbounded();
    for i in 0..1000 {
        s.set(
            &format!("k{i}"),
            b("v"),
            Some(ms(if i % 2 == 0 { 1 } else { 100 })),
        )
        .unwrap();
    }
    clock.advance(ms(1));
    assert_eq!(s.remove_expired(), 500);
    assert_eq!(s.len(), 500);
    assert_eq!(s.remove_expired(), 0);
    s.check();
}

#[test]
fn shard_count_follows_bounds() {
    let count = |max_entries, max_bytes| {
        shard_count(
            StoreConfig {
                max_entries,
                max_bytes,
            },
            2,
        )
    };
    assert_eq!(count(None, None), 16);
    assert_eq!(count(Some(1), None), 1);
    assert_eq!(count(Some(2), None), 1);
    assert_eq!(count(Some(10), None), 1);
    assert_eq!(count(Some(128), None), 2);
    assert_eq!(count(Some(1 << 20), None), 16);
    assert_eq!(count(None, Some(100)), 1);
    assert_eq!(count(None, Some(1 << 20)), 16);
    assert_eq!(shard_count(StoreConfig::default(), 1000), MAX_SHARDS);
    assert_eq!(shard_count(StoreConfig::default(), 0), 1);
}

#[test]
fn tiny_entry_bounds() {
    for cap in [1u64, 2, 10] {
        let (s, _) = bounded(Some(cap), None);
        assert_eq!(s.shard_count(), 1);
        for i in 0..100 {
            let key = format!("k{i}");
            s.set(&key, b("v"), None).unwrap();
            assert!(s.len() <= cap);
            assert_eq!(s.get(&key), Some(b("v")), "a fresh entry is kept");
            if i % 3 == 0 {
                s.get(&format!("k{}", i / 2));
            }
        }
        assert_eq!(s.len(), cap);
        s.check();
    }
}

#[test]
fn byte_bound_and_too_large() {
    let (s, _) = bounded(None, Some(100));
    assert_eq!(s.set("k", Bytes::from(vec![0; 100]), None), Err(TooLarge));
    assert_eq!(s.add("k", Bytes::from(vec![0; 100]), None), Err(TooLarge));
    assert_eq!(
        s.compare_and_set("k", None, Bytes::from(vec![0; 100]), None),
        Err(TooLarge)
    );
    assert_eq!(s.get("k"), None);
    for i in 0..20 {
        s.set(&format!("k{i:02}"), Bytes::from(vec![1; 7]), None)
            .unwrap();
        assert!(s.weight() <= 100);
    }
    assert_eq!(s.len(), 10);
    s.set("k", Bytes::from(vec![0; 99]), None).unwrap();
    assert_eq!((s.len(), s.weight()), (1, 100));
    // Growing an existing value evicts the others, never the key itself.
    s.set("a", b("1"), None).unwrap();
    assert_eq!(s.len(), 1);
    s.set("a", Bytes::from(vec![0; 99]), None).unwrap();
    assert_eq!(s.get("a").map(|v| v.len()), Some(99));
    // A counter whose text cannot fit.
    let (s, _) = bounded(None, Some(4));
    assert_eq!(s.increment("n", 5), Ok(5));
    assert_eq!(s.increment("n", 100), Ok(105));
    assert_eq!(s.increment("n", 10_000), Err(IncrementError::TooLarge));
    assert_eq!(s.get("n"), Some(b("105")));
    assert_eq!(s.increment("long-key", 1), Err(IncrementError::TooLarge));
    s.check();
}

#[test]
fn zero_bounds_refuse_everything() {
    for (e, bytes) in [(Some(0), None), (None, Some(0))] {
        let (s, _) = bounded(e, bytes);
        assert_eq!(s.set("k", b("v"), None), Err(TooLarge));
        assert_eq!(s.add("k", b("v"), None), Err(TooLarge));
        assert_eq!(s.increment("k", 1), Err(IncrementError::TooLarge));
        assert!(s.is_empty());
    }
}

#[test]
fn one_value_may_use_the_whole_byte_budget_across_shards() {
    let (s, _) = sharded(None, Some(1 << 20), 8);
    assert_eq!(s.shard_count(), 8);
    for i in 0..10_000 {
        s.set(&format!("k{i}"), Bytes::from(vec![0; 90]), None)
            .unwrap();
    }
    assert!(s.weight() <= 1 << 20);
    s.set("big", Bytes::from(vec![7; (1 << 20) - 3]), None)
        .unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.weight(), 1 << 20);
    assert_eq!(s.get("big").map(|v| v.len()), Some((1 << 20) - 3));
    s.check();
}

#[test]
fn expired_entries_are_evicted_first() {
    let (s, clock) = bounded(Some(20), None);
    for i in 0..10 {
        s.set(&format!("ttl{i}"), b("v"), Some(ms(1))).unwrap();
        s.set(&format!("keep{i}"), b("v"), None).unwrap();
    }
    clock.advance(ms(1));
    for i in 0..10 {
        s.set(&format!("new{i}"), b("v"), None).unwrap();
    }
    for i in 0..10 {
        assert!(s.contains(&format!("keep{i}")), "keep{i}");
        assert!(s.contains(&format!("new{i}")), "new{i}");
    }
    s.check();
}

#[test]
fn hot_keys_survive_a_scan() {
    let (s, _) = bounded(Some(100), None);
    for i in 0..50 {
        s.set(&format!("hot{i}"), b("v"), None).unwrap();
    }
    for _ in 0..2 {
        for i in 0..50 {
            assert!(s.get(&format!("hot{i}")).is_some());
        }
    }
    for i in 0..10_000 {
        s.set(&format!("scan{i}"), b("v"), None).unwrap();
        if i % 100 == 0 {
            for j in 0..50 {
                s.get(&format!("hot{j}"));
            }
        }
    }
    let survivors = (0..50).filter(|i| s.contains(&format!("hot{i}"))).count();
    assert_eq!(survivors, 50);
    s.check();
}

#[test]
fn ghost_readmits_to_main() {
    // A key evicted from probation and requested again goes to the main queue,
    // where it outlives a following scan. The eviction that makes room for the
    // returning key must not cost it its ghost entry (the evicted key may hash
    // to the same ghost cell: 1 in 32 here), so many stores, each with its own
    // hash seed, are tried.
    for trial in 0..200 {
        let (s, _) = bounded(Some(64), None);
        s.set("k", b("v"), None).unwrap();
        let mut i = 0;
        while s.contains("k") {
            s.set(&format!("scan{i}"), b("v"), None).unwrap();
            i += 1;
        }
        assert_eq!(i, 64, "FIFO order on probation");
        s.set("k", b("v"), None).unwrap();
        for i in 200..400 {
            s.set(&format!("scan{i}"), b("v"), None).unwrap();
        }
        assert!(
            s.contains("k"),
            "trial {trial}: the returning key was not readmitted"
        );
        s.check();
    }
}

#[test]
fn reclamation_keeps_short_ttl_writes_bounded() {
    // Guarantee: with at most L unexpired entries per shard, a shard holds at
    // most about 4/3 · L entries (see the module docs). Here every round writes
    // 100k fresh keys with a 1 ms TTL and then lets them all expire.
    for shards in [1, 16] {
        let (s, clock) = sharded(None, None, shards);
        let per_round = 100_000u64;
        let mut max_len = 0;
        for round in 0..3u64 {
            for i in 0..per_round {
                s.set(&format!("r{round}:{i}"), b("v"), Some(ms(1)))
                    .unwrap();
                if i % 1000 == 0 {
                    max_len = max_len.max(s.len());
                }
            }
            max_len = max_len.max(s.len());
            clock.advance(ms(2));
        }
        assert!(
            max_len <= per_round + per_round / 3 + 64 * shards as u64,
            "{shards} shards: len reached {max_len}"
        );
        s.check();
    }
}

#[test]
fn reclamation_under_steady_churn() {
    // 1 write per 10 µs with a 1 ms TTL: about 100 entries are unexpired at any
    // time; the store must stay near that, not grow with the number of writes.
    let (s, clock) = unbounded();
    for i in 0..200_000u64 {
        s.set(&format!("k{i}"), b("v"), Some(ms(1))).unwrap();
        clock.advance(us(10));
        if i > 1000 {
            assert!(
                s.len() <= 100 * 4 / 3 + 64 * s.shard_count() as u64,
                "len {}",
                s.len()
            );
        }
    }
    s.check();
}

#[test]
fn add_race_has_one_winner() {
    let (s, _) = unbounded();
    let s = Arc::new(s);
    let threads = 4;
    for round in 0..200 {
        let key = format!("race{round}");
        let barrier = Arc::new(Barrier::new(threads));
        let wins: usize = (0..threads)
            .map(|t| {
                let (s, barrier, key) = (s.clone(), barrier.clone(), key.clone());
                thread::spawn(move || {
                    barrier.wait();
                    usize::from(s.add(&key, Bytes::from(vec![t as u8]), None).unwrap())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1, "round {round}");
    }
    s.check();
}

#[test]
fn cas_and_increment_are_atomic_under_contention() {
    let (s, _) = unbounded();
    let s = Arc::new(s);
    let threads = 4;
    let per_thread = 2000;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let s = s.clone();
            thread::spawn(move || {
                for _ in 0..per_thread {
                    s.increment("counter", 1).unwrap();
                    // A CAS-based counter: retry until the swap wins.
                    loop {
                        let cur = s.get("cas");
                        let n: u64 = cur
                            .as_ref()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let next = Bytes::from((n + 1).to_string());
                        if s.compare_and_set("cas", cur.as_deref(), next, None)
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = (threads * per_thread).to_string();
    assert_eq!(s.get("counter"), Some(b(&total)));
    assert_eq!(s.get("cas"), Some(b(&total)));
    s.check();
}

/// Writers hammer a small store with 10× its capacity of keys (reused, with
/// varying sizes and TTLs) while a sampler checks the bounds after each op.
fn storm(max_entries: Option<u64>, max_bytes: Option<u64>, shards: usize) {
    let (s, clock) = sharded(max_entries, max_bytes, shards);
    let s = Arc::new(s);
    let cap = max_entries.unwrap_or_else(|| max_bytes.unwrap_or(1000) / 20);
    let keys = cap * 10;
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (s, stop, samples) = (s.clone(), stop.clone(), samples.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (len, weight) = (s.len(), s.weight());
                assert!(len <= max_entries.unwrap_or(u64::MAX), "len {len}");
                assert!(weight <= max_bytes.unwrap_or(u64::MAX), "weight {weight}");
                samples.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (s, clock) = (s.clone(), clock.clone());
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                for op in 0..30_000u64 {
                    let key = format!("key:{}", rng.random_range(0..keys));
                    let len = rng.random_range(0..64usize);
                    let ttl = rng.random_bool(0.3).then(|| ms(rng.random_range(1..5)));
                    match rng.random_range(0..8u8) {
                        0 => drop(s.add(&key, Bytes::from(vec![1; len]), ttl).unwrap()),
                        1 => drop(s.delete(&key)),
                        2 => drop(s.increment(&key, 3)),
                        3 => {
                            let cur = s.get(&key);
                            let new = Bytes::from(vec![2; len]);
                            s.compare_and_set(&key, cur.as_deref(), new, ttl).unwrap();
                        }
                        4 => drop(s.expire(&key, ttl)),
                        5 => drop(s.get(&key)),
                        _ => s.set(&key, Bytes::from(vec![0; len]), ttl).unwrap(),
                    }
                    let (len, weight) = (s.len(), s.weight());
                    assert!(len <= max_entries.unwrap_or(u64::MAX), "len {len}");
                    assert!(weight <= max_bytes.unwrap_or(u64::MAX), "weight {weight}");
                    if t == 0 && op % 500 == 0 {
                        clock.advance(ms(1));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(samples.load(Ordering::Relaxed) > 0);
    s.check();
    if let Some(max) = max_entries {
        assert!(
            s.len() > max / 2,
            "the store fills up: {} of {max}",
            s.len()
        );
    }
}

#[test]
fn storm_entry_bound_one_shard() {
    storm(Some(10), None, 1);
}

#[test]
fn storm_entry_bound_many_shards() {
    storm(Some(100), None, 8);
}

#[test]
fn storm_byte_bound_many_shards() {
    storm(None, Some(2000), 8);
}

#[test]
fn storm_both_bounds() {
    storm(Some(50), Some(1500), 4);
}

#[test]
fn storm_tiny() {
    storm(Some(1), None, 1);
    storm(Some(2), Some(130), 2);
}

#[test]
fn matches_a_model_under_random_operations() {
    // Unbounded store vs a HashMap model with explicit expiry times (µs).
    let (s, clock) = sharded(None, None, 4);
    let mut model: HashMap<String, (Bytes, Option<u64>)> = HashMap::new();
    let mut rng = SmallRng::seed_from_u64(42);
    let mut now_us = 0u64;
    let live = |m: &HashMap<String, (Bytes, Option<u64>)>, k: &str, now: u64| {
        m.get(k)
            .filter(|(_, exp)| exp.is_none_or(|e| now < e))
            .cloned()
    };
    for step in 0..50_000 {
        let key = format!("p{}:{}", rng.random_range(0..3), rng.random_range(0..60));
        let ttl = rng.random_bool(0.4).then(|| us(rng.random_range(1..5000)));
        let expiry = ttl.map(|t| now_us + (t.as_micros() as u64).div_ceil(1000) * 1000);
        let value = Bytes::from(format!("v{}", rng.random_range(0..5)));
        let cur = live(&model, &key, now_us);
        match rng.random_range(0..12u8) {
            0 | 1 => {
                s.set(&key, value.clone(), ttl).unwrap();
                model.insert(key, (value, expiry));
            }
            2 => {
                let ok = s.add(&key, value.clone(), ttl).unwrap();
                assert_eq!(ok, cur.is_none());
                if ok {
                    model.insert(key, (value, expiry));
                }
            }
            3 => {
                assert_eq!(s.delete(&key), cur.is_some());
                model.remove(&key);
            }
            4 => {
                let delta = rng.random_range(-3..4);
                let want = match &cur {
                    None => Ok(delta),
                    Some((v, _)) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .map(|n| n + delta)
                        .ok_or(IncrementError::NotInteger),
                };
                assert_eq!(s.increment(&key, delta), want, "step {step}");
                if let Ok(n) = want {
                    let exp = cur.and_then(|(_, e)| e);
                    model.insert(key, (Bytes::from(n.to_string()), exp));
                }
            }
            5 => {
                assert_eq!(s.expire(&key, ttl), cur.is_some());
                if let Some((v, _)) = cur {
                    model.insert(key, (v, expiry));
                } else {
                    model.remove(&key);
                }
            }
            6 => {
                let expected = if rng.random_bool(0.5) {
                    cur.as_ref().map(|(v, _)| v.clone())
                } else {
                    Some(b("v1"))
                };
                let ok = s
                    .compare_and_set(&key, expected.as_deref(), value.clone(), ttl)
                    .unwrap();
                assert_eq!(ok, cur.map(|(v, _)| v) == expected);
                if ok {
                    model.insert(key, (value, expiry));
                }
            }
            7 => {
                let want = match &cur {
                    None => KeyTtl::Missing,
                    Some((_, None)) => KeyTtl::NoExpiry,
                    Some((_, Some(e))) => KeyTtl::Remaining(ms((e - now_us).div_ceil(1000))),
                };
                assert_eq!(s.ttl(&key), want);
            }
            8 => {
                if rng.random_ratio(1, 50) {
                    let prefix = format!("p{}:", rng.random_range(0..3));
                    let want = model
                        .iter()
                        .filter(|(k, (_, e))| {
                            k.starts_with(&prefix) && e.is_none_or(|e| now_us < e)
                        })
                        .count() as u64;
                    assert_eq!(s.clear_prefix(&prefix), want);
                    model.retain(|k, _| !k.starts_with(&prefix));
                }
            }
            9 => {
                let step_us = rng.random_range(0..800);
                now_us += step_us;
                clock.advance(us(step_us));
            }
            10 => assert_eq!(s.contains(&key), cur.is_some()),
            _ => assert_eq!(s.get(&key), cur.map(|(v, _)| v), "step {step}"),
        }
        if step % 5000 == 0 {
            s.check();
        }
    }
    s.check();
    let live_count = model
        .values()
        .filter(|(_, e)| e.is_none_or(|e| now_us < e))
        .count() as u64;
    s.remove_expired();
    assert_eq!(s.len(), live_count);
    assert_eq!(s.clear(), live_count);
}

#[test]
fn bounded_store_stays_consistent_under_random_operations() {
    let (s, clock) = sharded(Some(40), Some(900), 2);
    let mut rng = SmallRng::seed_from_u64(3);
    for step in 0..100_000 {
        let key = format!("k{}", rng.random_range(0..200));
        let ttl = rng.random_bool(0.3).then(|| ms(rng.random_range(1..20)));
        let value = Bytes::from(vec![b'x'; rng.random_range(0..60)]);
        match rng.random_range(0..6u8) {
            0 => drop(s.add(&key, value, ttl).unwrap()),
            1 => drop(s.delete(&key)),
            2 => drop(s.increment(&key, 1)),
            3 => clock.advance(us(rng.random_range(0..2000))),
            4 => drop(s.get(&key)),
            _ => s.set(&key, value, ttl).unwrap(),
        }
        assert!(s.len() <= 40 && s.weight() <= 900);
        if step % 1000 == 0 {
            s.check();
        }
    }
    s.check();
}
