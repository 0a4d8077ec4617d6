//! The reliability cases: scoped `clear` at scale and bad input that must change nothing.
//!
//! Run by [`reliability_tests!`](crate::reliability_tests) in each backend crate's
//! `tests/reliability.rs`, next to the conformance suite, with the same factory. Each case
//! panics (fails) when the backend breaks its rule, and prints one line of figures (what it
//! wrote, checked and cleared) to stderr.
//!
//! Every bad-input case first stores a value it must not lose, then tries the bad input, then
//! checks that the error has the documented kind, that the stored value is intact and that
//! the bad key was not created. The table in `docs/reliability.md` lists what each one tries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Harness;
use crate::{Cache, ErrorKind, KeyTtl, RawBytes, Result, Serializer};

/// Keys written to the other namespaces by
/// [`clear_of_one_namespace_spares_100k_keys_of_other_namespaces`].
pub const CLEAR_OTHER_KEYS: usize = 100_000;
/// Keys written to the cleared namespace by
/// [`clear_of_one_namespace_spares_100k_keys_of_other_namespaces`].
pub const CLEAR_OWN_KEYS: usize = 10_000;
/// Entries per `multi_set` / `multi_get` call of the scoped clear case.
const BATCH: usize = 1_000;
/// Batches in flight at once.
const IN_FLIGHT: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
}

fn record(id: u64) -> Record {
    Record {
        id,
        name: format!("record-{id}"),
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// The namespace whose `clear` the scoped clear case checks, from the case's random base: glob
/// characters, a backslash and a `:` (which the default key builder escapes).
pub fn glob_namespace(base: &str) -> String {
    format!("{base}*?[a]\\:t")
}

/// Namespaces that a `clear` of [`glob_namespace`] must not touch: the base itself, the same
/// text with one glob character matched literally or by another character, a longer
/// namespace sharing its text, its parent, its child, and the text of its escaped form.
pub fn lookalike_namespaces(base: &str) -> Vec<String> {
    [
        "",
        "*",
        "*?[a]\\",
        "*?[a]\\:tt",
        "X?[a]\\:t",
        "*Xa]\\:t",
        "*?a\\:t",
        "*?[a]\\\\:t",
        "*?[a]\\%3At",
        "*?[a]\\:t:sub",
    ]
    .iter()
    .map(|s| format!("{base}{s}"))
    .collect()
}

/// Key `i` of a namespace in the scoped clear case: one of six shapes, with glob characters,
/// backslashes and `:` inside, behind one of 16 Redis hash tags (`{h0}` … `{h15}`). The tags
/// spread the keys over every primary of a cluster while letting a batch of 1,000 keys go out
/// as 16 per-slot commands instead of 1,000.
pub fn tricky_key(i: usize) -> String {
    let tag = i % 16;
    match i % 6 {
        0 => format!("{{h{tag}}}k{i}"),
        1 => format!("{{h{tag}}}k{i}*"),
        2 => format!("{{h{tag}}}?k{i}"),
        3 => format!("{{h{tag}}}[k]{i}"),
        4 => format!("{{h{tag}}}k\\{i}"),
        _ => format!("{{h{tag}}}a:b:{i}"),
    }
}

/// Writes `count` keys into `cache`, `BATCH` per `multi_set`, value of key `i` = `base + i`.
async fn fill(cache: &Cache, count: usize, base: u64, gate: &Arc<Semaphore>) {
    let mut tasks = JoinSet::new();
    for start in (0..count).step_by(BATCH) {
        let cache = cache.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let end = (start + BATCH).min(count);
            let pairs: Vec<(String, u64)> = (start..end)
                .map(|i| (tricky_key(i), base + i as u64))
                .collect();
            cache
                .with_timeout(Duration::from_secs(60))
                .multi_set(pairs.iter().map(|(k, v)| (k, v)))
                .await
                .expect("multi_set of one batch");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("a write task panicked");
    }
}

/// Reads `count` keys back from `cache`, `BATCH` per `multi_get`; `Some(base)`: every value
/// must be `base + i`; `None`: every key must be gone. Returns how many keys it checked.
async fn verify(cache: &Cache, count: usize, base: Option<u64>, gate: &Arc<Semaphore>) -> usize {
    let mut tasks = JoinSet::new();
    for start in (0..count).step_by(BATCH) {
        let cache = cache.clone();
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let end = (start + BATCH).min(count);
            let keys: Vec<String> = (start..end).map(tricky_key).collect();
            let got: Vec<Option<u64>> = cache
                .with_timeout(Duration::from_secs(60))
                .multi_get(&keys)
                .await
                .expect("multi_get of one batch");
            for (i, (key, value)) in (start..end).zip(keys.iter().zip(got)) {
                let expected = base.map(|b| b + i as u64);
                assert_eq!(
                    value,
                    expected,
                    "key {key:?} of namespace {:?}",
                    cache.default_namespace()
                );
            }
            end - start
        });
    }
    let mut checked = 0;
    while let Some(r) = tasks.join_next().await {
        checked += r.expect("a read task panicked");
    }
    checked
}

/// With [`CLEAR_OTHER_KEYS`] keys in ten other namespaces (glob characters, `\` and `:` in
/// namespaces and keys alike), `clear` of one namespace removes all of its
/// [`CLEAR_OWN_KEYS`] keys and none of the others; the namespace works again afterwards.
/// Backends that cannot scope a clear refuse it with `Unsupported`.
pub async fn clear_of_one_namespace_spares_100k_keys_of_other_namespaces(h: Harness) {
    let base = h.namespace().to_owned();
    let target = h.builder().namespace(glob_namespace(&base)).build();
    if !h.capability().clear_namespace {
        assert_eq!(kind(target.clear().await), ErrorKind::Unsupported);
        eprintln!(
            "scoped clear: skipped, the {} backend cannot scope a clear",
            h.backend().name()
        );
        return;
    }
    let others: Vec<Cache> = lookalike_namespaces(&base)
        .into_iter()
        .map(|ns| h.builder().namespace(ns).build())
        .collect();
    let per_other = CLEAR_OTHER_KEYS / others.len();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();

    fill(&target, CLEAR_OWN_KEYS, 0, &gate).await;
    for (n, other) in others.iter().enumerate() {
        fill(other, per_other, (n as u64 + 1) * 1_000_000, &gate).await;
    }
    let written = started.elapsed();
    assert_eq!(
        verify(&target, CLEAR_OWN_KEYS, Some(0), &gate).await,
        CLEAR_OWN_KEYS,
        "every key of the namespace to clear is there before the clear"
    );

    let clear_started = Instant::now();
    let removed = target
        .with_timeout(Duration::from_secs(120))
        .clear()
        .await
        .unwrap();
    let cleared_in = clear_started.elapsed();
    if let Some(n) = removed {
        assert_eq!(
            n, CLEAR_OWN_KEYS as u64,
            "clear counts exactly its own keys"
        );
    }

    let gone = verify(&target, CLEAR_OWN_KEYS, None, &gate).await;
    let mut survivors = 0;
    for (n, other) in others.iter().enumerate() {
        survivors += verify(other, per_other, Some((n as u64 + 1) * 1_000_000), &gate).await;
    }
    assert_eq!(gone, CLEAR_OWN_KEYS);
    assert_eq!(survivors, per_other * others.len());

    // the cleared namespace is usable again, and a second clear removes only the new key
    target.set("again", &1).await.unwrap();
    assert_eq!(target.get::<i32>("again").await.unwrap(), Some(1));
    if let Some(n) = target.clear().await.unwrap() {
        assert_eq!(n, 1);
    }
    assert_eq!(target.get::<i32>("again").await.unwrap(), None);
    eprintln!(
        "scoped clear on {}: wrote {} keys ({} in the cleared namespace, {} in {} others) in \
         {written:?}; clear took {cleared_in:?} and reported {removed:?}; checked {gone} keys \
         gone and {survivors} survivors intact",
        h.backend().name(),
        CLEAR_OWN_KEYS + survivors,
        CLEAR_OWN_KEYS,
        survivors,
        others.len(),
    );
    for other in &others {
        other
            .with_timeout(Duration::from_secs(120))
            .clear()
            .await
            .unwrap();
    }
}

/// The key as the default builder stores it, read through a cache without namespace.
fn bare(h: &Harness) -> Cache {
    h.builder().namespace("").build()
}

/// An empty key is `InvalidArgument` for every keyed command, single or multi; a multi call
/// holding one empty key writes and deletes nothing, and no key is created.
pub async fn empty_key_is_refused_by_every_command_and_changes_nothing(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    cache.set("n", &7).await.unwrap();
    let refused = |k: ErrorKind, on: bool, what: &str| {
        let expected = if on {
            ErrorKind::InvalidArgument
        } else {
            ErrorKind::Unsupported
        };
        assert!(
            k == ErrorKind::InvalidArgument || k == expected,
            "{what} of an empty key: {k:?}"
        );
    };
    refused(kind(cache.get::<i32>("").await), true, "get");
    refused(kind(cache.set("", &1).await), true, "set");
    refused(kind(cache.add("", &1).await), cap.add, "add");
    refused(kind(cache.delete("").await), true, "delete");
    refused(kind(cache.exists("").await), true, "exists");
    refused(
        kind(cache.increment("", 1).await),
        cap.increment,
        "increment",
    );
    refused(
        kind(cache.expire("", Duration::from_secs(5)).await),
        cap.expire,
        "expire",
    );
    refused(kind(cache.ttl("").await), cap.ttl, "ttl");
    refused(
        kind(cache.compare_and_set("", None, &1).await),
        cap.compare_and_set,
        "compare_and_set",
    );
    refused(
        kind(
            cache
                .get_or_set("", || async { Ok::<_, std::io::Error>(1) })
                .await,
        ),
        true,
        "get_or_set",
    );
    refused(
        kind(cache.multi_get::<i32, _, _>(["n", ""]).await),
        true,
        "multi_get",
    );
    refused(
        kind(cache.multi_set([("n", 1), ("m", 1), ("", 2)]).await),
        true,
        "multi_set",
    );
    refused(
        kind(cache.multi_delete(["n", ""]).await),
        true,
        "multi_delete",
    );
    assert_eq!(cache.get::<i32>("n").await.unwrap(), Some(7), "untouched");
    assert!(!cache.exists("m").await.unwrap(), "multi_set wrote nothing");
    let prefix = format!("{}:", h.namespace());
    assert!(
        !bare(&h).exists(&prefix).await.unwrap(),
        "no key {prefix:?} (namespace and empty key) was created"
    );
}

/// Keys whose built form is 250, 251 (two of them, sharing 250 bytes), 10,000 (two, differing
/// in the last byte) and 100,000 bytes long are each stored under their own key, or refused
/// with `InvalidArgument` where the backend has a key limit; nothing is truncated into a
/// collision.
pub async fn keys_around_and_far_past_250_bytes_never_collide(h: Harness) {
    let cache = h.cache();
    let p = h.namespace().len() + 1;
    let k250 = "a".repeat(250 - p);
    let keys = [
        k250.clone(),
        format!("{k250}a"),
        format!("{k250}b"),
        "a".repeat(10_000 - p),
        format!("{}b", "a".repeat(10_000 - p - 1)),
        "z".repeat(100_000 - p),
    ];
    cache.set("neighbour", &"kept").await.unwrap();
    let limit = h.capability().max_key_len;
    let mut stored = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let built = p + k.len();
        match limit {
            Some(max) if built > max => {
                let e = cache.set(k, &i).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{built} bytes: {e}");
            }
            _ => {
                cache.set(k, &i).await.unwrap();
                stored.push((k, i));
            }
        }
    }
    for (k, i) in &stored {
        assert_eq!(
            cache.get::<usize>(k).await.unwrap(),
            Some(*i),
            "key of {} bytes",
            k.len() + p
        );
    }
    let got: Vec<Option<usize>> = cache
        .multi_get(stored.iter().map(|(k, _)| k.as_str()))
        .await
        .unwrap();
    assert_eq!(
        got,
        stored.iter().map(|(_, i)| Some(*i)).collect::<Vec<_>>()
    );
    if let Some((first, _)) = stored.first() {
        assert_eq!(cache.delete(first).await.unwrap(), 1);
        for (k, i) in &stored[1..] {
            assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(*i));
        }
    }
    assert_eq!(
        cache.get::<String>("neighbour").await.unwrap().as_deref(),
        Some("kept")
    );
}

/// Keys that differ only in whitespace, control characters, invisible Unicode or an ANSI
/// escape are each stored under their own key (or refused with `InvalidArgument`), and
/// deleting one leaves the others.
pub async fn whitespace_and_control_character_keys_never_collide(h: Harness) {
    let cache = h.cache();
    let keys = [
        "k",
        " ",
        "  ",
        "k ",
        " k",
        "k\t",
        "k\n",
        "k\r\n",
        "k\r",
        "k\0",
        "k\x01",
        "k\x7f",
        "k\u{a0}",
        "k\u{2028}",
        "k\u{feff}",
        "k\u{200b}",
        "\u{1b}[31mk",
        "k_",
    ];
    let mut stored = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match cache.set(k, &i).await {
            Ok(()) => stored.push((*k, i)),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{k:?}: {e}"),
        }
    }
    for (k, i) in &stored {
        assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(*i), "{k:?}");
    }
    let got: Vec<Option<usize>> = cache
        .multi_get(stored.iter().map(|(k, _)| *k))
        .await
        .unwrap();
    assert_eq!(
        got,
        stored.iter().map(|(_, i)| Some(*i)).collect::<Vec<_>>()
    );
    assert_eq!(cache.delete(" ").await.unwrap(), 1);
    for (k, i) in stored.iter().filter(|(k, _)| *k != " ") {
        assert_eq!(cache.get::<usize>(k).await.unwrap(), Some(*i), "{k:?}");
    }
}

/// A TTL past the backend's maximum (its maximum plus one second, and `Duration::MAX`) is
/// `InvalidArgument` on every write and on `expire`, and changes nothing: the old value and
/// its TTL stay, no key is created. The longest accepted TTLs (30 days, 30 days and a second,
/// a year, the maximum itself) store an entry that exists and reports that TTL; a 1 ns TTL is
/// rounded up, never taken as "forever".
pub async fn ttl_past_the_maximum_is_refused_and_long_ttls_are_kept(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    cache
        .with_ttl(Duration::from_secs(100))
        .set("k", &1)
        .await
        .unwrap();
    if let Some(max) = cap.max_ttl {
        for bad in [max + Duration::from_secs(1), Duration::MAX] {
            let c = cache.with_ttl(bad);
            assert_eq!(kind(c.set("k", &2).await), ErrorKind::InvalidArgument);
            assert_eq!(kind(c.set("new", &2).await), ErrorKind::InvalidArgument);
            if cap.add {
                assert_eq!(kind(c.add("new", &2).await), ErrorKind::InvalidArgument);
            }
            assert_eq!(
                kind(c.multi_set([("new", 2), ("k", 2)]).await),
                ErrorKind::InvalidArgument
            );
            if cap.compare_and_set {
                assert_eq!(
                    kind(c.compare_and_set("k", Some(&1), &2).await),
                    ErrorKind::InvalidArgument
                );
            }
            if cap.expire {
                assert_eq!(
                    kind(cache.expire("k", bad).await),
                    ErrorKind::InvalidArgument
                );
            }
            let by_default = h.builder().ttl(bad).build();
            assert_eq!(
                kind(by_default.set("new", &2).await),
                ErrorKind::InvalidArgument
            );
        }
        assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
        assert!(!cache.exists("new").await.unwrap(), "nothing created");
        if cap.ttl {
            let left = cache.ttl("k").await.unwrap().remaining().expect("ttl kept");
            assert!(
                left > Duration::from_secs(90) && left <= Duration::from_secs(100),
                "{left:?}"
            );
        }
    }
    let day = 86_400;
    let mut long = vec![
        Duration::from_secs(30 * day),
        Duration::from_secs(30 * day + 1),
        Duration::from_secs(365 * day),
    ];
    long.extend(cap.max_ttl);
    for (i, ttl) in long.iter().enumerate() {
        let key = format!("long{i}");
        cache.with_ttl(*ttl).set(&key, &i).await.unwrap();
        assert_eq!(
            cache.get::<usize>(&key).await.unwrap(),
            Some(i),
            "an entry with ttl {ttl:?} is there"
        );
        if cap.ttl {
            let left = cache.ttl(&key).await.unwrap().remaining().expect("ttl");
            // whole-second backends round up, and may count the second they write in
            let late = if cap.ttl_millis { 1 } else { 2 };
            assert!(
                left <= *ttl + Duration::from_secs(late) && left + Duration::from_secs(10) >= *ttl,
                "ttl {ttl:?} reads back as {left:?}"
            );
        }
    }
    cache
        .with_ttl(Duration::from_nanos(1))
        .set("tiny", &1)
        .await
        .unwrap();
    // rounded up to the backend's unit: 1 ms, or a whole second
    let unit = if cap.ttl_millis {
        Duration::from_millis(1)
    } else {
        Duration::from_secs(1)
    };
    h.sleep_past(unit).await;
    assert_eq!(
        cache.get::<i32>("tiny").await.unwrap(),
        None,
        "a 1 ns ttl expires"
    );
    if cap.ttl {
        assert_eq!(cache.ttl("tiny").await.unwrap(), KeyTtl::Missing);
    }
}

/// Largest value the oversize case allocates; backends with a larger limit skip it.
const OVERSIZE_TRY_LIMIT: usize = 64 << 20;

/// A value one byte over the backend's limit is `InvalidArgument` for `set`, `add`,
/// `multi_set` and `compare_and_set`, and changes nothing: the old value stays, no key is
/// created, and a `multi_set` with one oversize value writes none of its values.
pub async fn value_over_the_limit_is_refused_and_keeps_the_old_value(h: Harness) {
    let cap = h.capability();
    let Some(max) = cap.max_value_len.filter(|m| *m <= OVERSIZE_TRY_LIMIT) else {
        eprintln!(
            "oversize values: skipped on {}, its limit is {:?} bytes",
            h.backend().name(),
            cap.max_value_len
        );
        return;
    };
    let owner = h.cache();
    let cache = owner.with_serializer(RawBytes);
    let old = Bytes::from_static(b"old");
    let big = Bytes::from(vec![b'x'; max + 1]);
    cache.set("v", &old).await.unwrap();
    let e = cache.set("v", &big).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(e.context_value("key"), Some("v"), "{e}");
    if cap.add {
        assert_eq!(
            kind(cache.add("fresh", &big).await),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        kind(
            cache
                .multi_set([("w", old.clone()), ("v", big.clone())])
                .await
        ),
        ErrorKind::InvalidArgument
    );
    if cap.compare_and_set {
        assert_eq!(
            kind(cache.compare_and_set("v", Some(&old), &big).await),
            ErrorKind::InvalidArgument
        );
    }
    let kept: Option<Vec<u8>> = cache.get("v").await.unwrap();
    assert_eq!(kept.as_deref(), Some(&b"old"[..]));
    assert!(!cache.exists("fresh").await.unwrap());
    assert!(!cache.exists("w").await.unwrap(), "multi_set wrote nothing");
}

/// Stored values that are not canonical decimal integers (empty, spaces, signs, leading
/// zeros, floats, exponents, hex, digits of other scripts, text, binary, numbers past `i64`)
/// make `increment` fail with `InvalidArgument` — even with a delta of 0 — and stay
/// byte-for-byte as they were.
///
/// One exception, checked exactly: memcached pads a counter that its own `decr` shortened
/// with trailing spaces, so the memcached backend reads `5 ` as the counter 5 (and increments
/// it exactly); every other backend refuses it like the rest.
pub async fn increment_of_a_non_counter_is_refused_and_changes_nothing(h: Harness) {
    if !h.capability().increment {
        return;
    }
    let owner = h.cache();
    let raw = owner.with_serializer(RawBytes);
    let values: [&[u8]; 21] = [
        b"",
        b" ",
        b"abc",
        b"1.5",
        b"1e3",
        b"0x10",
        b"12abc",
        b"1_000",
        b"+5",
        b"05",
        b"-0",
        b" 5",
        b"5\n",
        b"5\0",
        "\u{663}".as_bytes(),
        b"\xff\xfe",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"99999999999999999999999",
        b"\"5\"",
        b"[5]",
    ];
    for (i, v) in values.iter().enumerate() {
        let key = format!("v{i}");
        raw.set(&key, &Bytes::from_static(v)).await.unwrap();
        for delta in [1, 0, -1] {
            let e = owner.increment(&key, delta).await.unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidArgument,
                "increment by {delta} of {:?}: {e}",
                String::from_utf8_lossy(v)
            );
        }
        let kept: Option<Vec<u8>> = raw.get(&key).await.unwrap();
        assert_eq!(kept.as_deref(), Some(*v), "value of {key} untouched");
    }
    raw.set("padded", &Bytes::from_static(b"5 ")).await.unwrap();
    if h.backend().name() == "memcached" {
        assert_eq!(owner.increment("padded", 1).await.unwrap(), 6);
        assert_eq!(owner.increment("padded", -2).await.unwrap(), 4);
        assert_eq!(owner.get_counter("padded").await.unwrap(), Some(4));
    } else {
        let e = owner.increment("padded", 1).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let kept: Option<Vec<u8>> = raw.get("padded").await.unwrap();
        assert_eq!(kept.as_deref(), Some(&b"5 "[..]));
    }
}

/// Stored bytes that `serializer` cannot decode give a `Serialization` error naming the key on
/// `get`, `multi_get` and `get_or_set` (whose loader does not run), and change nothing: the
/// bytes stay as they were and a neighbouring value still reads back. A valid encoding
/// followed by junk is refused the same way (never read as its first value).
pub async fn stored_garbage_is_a_serialization_error_and_changes_nothing<S: Serializer>(
    h: Harness,
    serializer: S,
) {
    let owner = h.cache();
    let cache = owner.with_serializer(serializer.clone());
    let raw = owner.with_serializer(RawBytes);
    owner.set("good", &record(1)).await.unwrap();
    // serializers of plain values (Utf8, RawBytes) cannot encode a struct: no valid encoding
    // to cut short or extend then
    let valid = serializer.encode(&record(2)).ok();
    let mut noise = Vec::with_capacity(64);
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push((x >> 24) as u8);
    }
    let mut garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\xfd\xfc".to_vec(),
        b"\xc1".to_vec(),
        b"\x00".to_vec(),
        b"{\"id\":".to_vec(),
        b"not json {".to_vec(),
        noise,
    ];
    if let Some(valid) = &valid {
        garbage.push(valid[..valid.len() / 2].to_vec());
    }
    for (i, g) in garbage.iter().enumerate() {
        let key = format!("bad{i}");
        raw.set(&key, &Bytes::from(g.clone())).await.unwrap();
        let e = cache.get::<Record>(&key).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Serialization,
            "{} decoding {g:?}: {e}",
            serializer.name()
        );
        assert_eq!(e.context_value("key"), Some(key.as_str()), "{e}");
        let e = cache
            .multi_get::<Record, _, _>([key.as_str(), "bad0"])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
        let e = cache
            .get_or_set(&key, || async {
                Err::<Record, _>(std::io::Error::other("the loader ran"))
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Serialization,
            "the stored bytes fail, the loader does not run: {e}"
        );
        let kept: Option<Vec<u8>> = raw.get(&key).await.unwrap();
        assert_eq!(
            kept.as_deref(),
            Some(g.as_slice()),
            "stored bytes untouched"
        );
    }
    raw.set("utf8", &Bytes::from_static(b"\xff\xfe\xfd\xfc"))
        .await
        .unwrap();
    assert_eq!(
        kind(cache.get::<String>("utf8").await),
        ErrorKind::Serialization,
        "invalid UTF-8 is not a string in {}",
        serializer.name()
    );
    if let Some(mut trailing) = valid {
        trailing.extend_from_slice(b"\x00junk");
        raw.set("trailing", &Bytes::from(trailing)).await.unwrap();
        let e = cache.get::<Record>("trailing").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
        let kept: Option<Vec<u8>> = raw.get("trailing").await.unwrap();
        assert!(kept.is_some_and(|k| k.ends_with(b"\x00junk")));
    }
    assert_eq!(owner.get::<Record>("good").await.unwrap(), Some(record(1)));
}

/// Expands to one `#[tokio::test]` per reliability case, each calling
/// [`reliability`](crate::testkit::reliability)`::<name>` with a fresh
/// [`Harness`](crate::testkit::Harness) over the backend that `$factory` gives (as for
/// [`conformance_tests!`](crate::conformance_tests)). The core serializers (`Json`,
/// `PythonJson`, `Utf8`, `RawBytes`) get the stored-garbage case; more serializers are added
/// by name:
///
/// ```ignore
/// cache_core::reliability_tests!(backend(); serializers {
///     stored_garbage_msgpack => cache_serde::MsgPack,
///     stored_garbage_cbor => cache_serde::Cbor,
/// });
/// ```
#[macro_export]
macro_rules! reliability_tests {
    ($factory:expr) => {
        $crate::reliability_tests!($factory; serializers {});
    };
    ($factory:expr; serializers { $($name:ident => $serializer:expr),* $(,)? }) => {
        $crate::__reliability_cases!($factory;
            clear_of_one_namespace_spares_100k_keys_of_other_namespaces,
            empty_key_is_refused_by_every_command_and_changes_nothing,
            keys_around_and_far_past_250_bytes_never_collide,
            whitespace_and_control_character_keys_never_collide,
            ttl_past_the_maximum_is_refused_and_long_ttls_are_kept,
            value_over_the_limit_is_refused_and_keeps_the_old_value,
            increment_of_a_non_counter_is_refused_and_changes_nothing,
        );
        $crate::__reliability_serializers!($factory;
            stored_garbage_json => $crate::Json,
            stored_garbage_python_json => $crate::PythonJson,
            stored_garbage_utf8 => $crate::Utf8,
            stored_garbage_raw_bytes => $crate::RawBytes,
            $($name => $serializer,)*
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reliability_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = ($factory).await else { return };
                $crate::testkit::reliability::$case($crate::testkit::Harness::new(backend)).await;
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reliability_serializers {
    ($factory:expr; $($name:ident => $serializer:expr),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(backend) = ($factory).await else { return };
                $crate::testkit::reliability::stored_garbage_is_a_serialization_error_and_changes_nothing(
                    $crate::testkit::Harness::new(backend),
                    $serializer,
                )
                .await;
            }
        )*
    };
}
