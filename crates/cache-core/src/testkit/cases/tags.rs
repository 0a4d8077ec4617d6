//! Tag invalidation ([`Tags`]): entries of an invalidated tag are misses everywhere, the
//! others untouched; read-through loads again; the envelope's bytes; refusals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{User, kind, user};
use crate::envelope::{EntryTags, Stored, VERSION_TAGGED};
use crate::testkit::Harness;
use crate::{Cache, Command, ErrorKind, RawBytes, ReadThrough, Tags, TimingPlugin};

/// A cache with tags, a refresh of `refresh`, in the case's namespace.
fn tagged(h: &Harness, refresh: Duration) -> Cache {
    h.builder().tags(Tags::new().refresh(refresh)).build()
}

/// A loader that counts its runs and answers `user(id)`.
fn load(
    runs: &Arc<AtomicU64>,
    id: u64,
) -> impl FnOnce() -> std::future::Ready<std::result::Result<User, std::io::Error>> + Send + 'static
{
    let runs = runs.clone();
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(user(id)))
    }
}

/// Entries written with a tag — by `set`, `add` and `multi_set` — are misses once the tag is
/// invalidated, for `get` and `exists`; entries without it (other tags, no tag) are
/// untouched; invalidating a tag no entry carries changes nothing; an entry written after
/// the invalidation is a hit; plugins see the invalidation as its own command.
pub async fn tags_invalidated_entries_are_misses_and_others_untouched(h: Harness) {
    let cache = h
        .builder()
        .tags(Tags::new())
        .plugin(TimingPlugin::new())
        .build();
    assert!(cache.capability().tags);
    cache.with_tags(["t1"]).set("a", &user(1)).await.unwrap();
    cache
        .with_tags(["t1", "t2"])
        .set("b", &user(2))
        .await
        .unwrap();
    cache.with_tags(["t2"]).set("c", &user(3)).await.unwrap();
    cache.set("d", &user(4)).await.unwrap();
    if h.capability().add {
        cache.with_tags(["t1"]).add("e", &user(5)).await.unwrap();
    }
    cache
        .with_tags(["t1"])
        .multi_set([("f", user(6)), ("g", user(7))])
        .await
        .unwrap();
    for k in ["a", "b", "c", "d", "f", "g"] {
        assert!(cache.get::<User>(k).await.unwrap().is_some(), "{k} before");
    }

    cache.invalidate_tag("t1").await.unwrap();
    for k in ["a", "b", "e", "f", "g"] {
        assert_eq!(
            cache.get::<User>(k).await.unwrap(),
            None,
            "{k} is invalidated"
        );
        assert!(!cache.exists(k).await.unwrap(), "{k} does not exist");
    }
    assert_eq!(cache.get::<User>("c").await.unwrap(), Some(user(3)));
    assert_eq!(cache.get::<User>("d").await.unwrap(), Some(user(4)));
    assert!(cache.exists("c").await.unwrap() && cache.exists("d").await.unwrap());

    // a tag nobody used: harmless, and cheap
    cache.invalidate_tag("never-used").await.unwrap();
    cache.invalidate_tags(Vec::<String>::new()).await.unwrap();
    assert_eq!(cache.get::<User>("c").await.unwrap(), Some(user(3)));
    assert_eq!(cache.get::<User>("d").await.unwrap(), Some(user(4)));

    // written again after the invalidation: a hit at once
    cache.with_tags(["t1"]).set("a", &user(11)).await.unwrap();
    assert_eq!(cache.get::<User>("a").await.unwrap(), Some(user(11)));
    if h.capability().add {
        // an invalidated entry is absent for `add`
        cache.with_tags(["t1"]).add("b", &user(12)).await.unwrap();
        assert_eq!(cache.get::<User>("b").await.unwrap(), Some(user(12)));
        assert_eq!(
            kind(cache.with_tags(["t1"]).add("b", &user(13)).await),
            ErrorKind::AlreadyExists
        );
    }
    let timing = cache.find_plugin::<TimingPlugin>().unwrap();
    assert_eq!(timing.get(Command::InvalidateTags).unwrap().count, 2);
}

/// `multi_get` answers each key alone: invalidated entries miss, the others hit, in order,
/// duplicates included; with the tag times read in one batch.
pub async fn tags_multi_get_mixes_invalidated_and_kept_entries(h: Harness) {
    let cache = tagged(&h, Duration::from_secs(1));
    cache.with_tags(["gone"]).set("a", &user(1)).await.unwrap();
    cache
        .with_tags(["kept", "other"])
        .set("b", &user(2))
        .await
        .unwrap();
    cache.set("c", &user(3)).await.unwrap();
    cache
        .with_tags(["gone", "kept"])
        .set("d", &user(4))
        .await
        .unwrap();
    cache.invalidate_tags(["gone"]).await.unwrap();
    let got: Vec<Option<User>> = cache
        .multi_get(["a", "b", "missing", "c", "d", "a", "b"])
        .await
        .unwrap();
    assert_eq!(
        got,
        [
            None,
            Some(user(2)),
            None,
            Some(user(3)),
            None,
            None,
            Some(user(2))
        ]
    );
    // another cache over the same backend reads every marker afresh
    let other = tagged(&h, Duration::ZERO);
    let got: Vec<Option<User>> = other.multi_get(["d", "b", "c"]).await.unwrap();
    assert_eq!(got, [None, Some(user(2)), Some(user(3))]);
}

/// The `get_or_set` family writes its entries with the call's tags and loads again once a
/// tag is invalidated: plain read-through, read-through in the envelope (fail-safe, whose
/// entries keep their logical expiry), leases, `get_or_set_many` and negative entries.
pub async fn tags_read_through_loads_again_after_invalidation(h: Harness) {
    let mut options = vec![
        ReadThrough::new(),
        ReadThrough::new().fail_safe(Duration::from_secs(60)),
    ];
    if h.capability().compare_and_set {
        options.push(ReadThrough::new().lease(Duration::from_secs(5)));
    }
    for (n, rt) in options.into_iter().enumerate() {
        let cache = h
            .builder()
            .ttl(Duration::from_secs(30))
            .tags(Tags::new())
            .read_through(rt.clone())
            .build();
        let key = format!("rt{n}");
        let runs = Arc::new(AtomicU64::new(0));
        let tagged = cache.with_tags(["user:1"]);
        assert_eq!(
            tagged.get_or_set(&key, load(&runs, 1)).await.unwrap(),
            user(1)
        );
        assert_eq!(
            tagged.get_or_set(&key, load(&runs, 2)).await.unwrap(),
            user(1)
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "{rt:?}: a hit does not load"
        );
        if rt.needs_envelope() {
            // the entry keeps its logical expiry besides its tags
            let raw: Vec<u8> = h
                .cache()
                .with_serializer(RawBytes)
                .get(&key)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(raw[3], VERSION_TAGGED);
            match Stored::decode(raw.into()).unwrap() {
                Stored::Value { times, .. } => assert!(times.fresh_until_ms > 0, "{rt:?}"),
                other => panic!("{rt:?}: {other:?}"),
            }
        }
        cache.invalidate_tag("user:1").await.unwrap();
        assert_eq!(cache.get::<User>(&key).await.unwrap(), None);
        assert_eq!(
            tagged.get_or_set(&key, load(&runs, 3)).await.unwrap(),
            user(3)
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{rt:?}: loaded again");
        assert_eq!(cache.get::<User>(&key).await.unwrap(), Some(user(3)));
    }

    // get_or_set_many, and negative entries
    let cache = h
        .builder()
        .tags(Tags::new())
        .read_through(ReadThrough::new().negative_ttl(Duration::from_secs(30)))
        .build();
    let loads = Arc::new(AtomicU64::new(0));
    let many = |cache: Cache, loads: Arc<AtomicU64>| async move {
        cache
            .with_tags(["batch"])
            .get_or_set_many(["m1", "m2", "absent"], move |missing: Vec<String>| {
                loads.fetch_add(missing.len() as u64, Ordering::SeqCst);
                async move {
                    Ok::<_, std::io::Error>(
                        missing
                            .into_iter()
                            .filter(|k| k != "absent")
                            .map(|k| (k, user(5)))
                            .collect::<Vec<_>>(),
                    )
                }
            })
            .await
            .unwrap()
    };
    let want = [Some(user(5)), Some(user(5)), None];
    assert_eq!(many(cache.clone(), loads.clone()).await, want);
    assert_eq!(many(cache.clone(), loads.clone()).await, want);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        3,
        "the negative entry answers too"
    );
    cache.invalidate_tag("batch").await.unwrap();
    assert_eq!(many(cache.clone(), loads.clone()).await, want);
    assert_eq!(loads.load(Ordering::SeqCst), 6, "every key loaded again");
}

/// The stored bytes: an entry with tags is a version 2 envelope whose tags and write time
/// read back, holding the serializer's bytes; an entry without tags in a cache with tags is
/// stored exactly as the serializer wrote it.
pub async fn tags_envelope_bytes_round_trip(h: Harness) {
    let cache = tagged(&h, Duration::from_secs(1));
    let before = crate::envelope::now_ms();
    cache
        .with_tags(["user:42", "org:7", "user:42"])
        .set("k", &user(1))
        .await
        .unwrap();
    cache.set("plain", &user(2)).await.unwrap();
    let plain_cache = h.cache();
    let raw = plain_cache.with_serializer(RawBytes);
    let stored: Vec<u8> = raw.get("k").await.unwrap().unwrap();
    let tags = EntryTags::read(&stored)
        .unwrap()
        .expect("the entry has tags");
    assert_eq!(tags.iter().collect::<Vec<_>>(), ["user:42", "org:7"]);
    assert!(tags.created_ms() >= before && tags.created_ms() <= crate::envelope::now_ms());
    let json = serde_json::to_vec(&user(1)).unwrap();
    match Stored::decode(stored.into()).unwrap() {
        Stored::Value { payload, times } => {
            assert_eq!(&payload[..], &json[..]);
            assert_eq!((times.fresh_until_ms, times.stale_until_ms), (0, 0));
        }
        other => panic!("{other:?}"),
    }
    let plain: Vec<u8> = raw.get("plain").await.unwrap().unwrap();
    assert_eq!(plain, serde_json::to_vec(&user(2)).unwrap());
    // every serializer reads its value back through the envelope
    cache
        .with_tags(["x"])
        .with_serializer(RawBytes)
        .set("bytes", &b"\xC1SC\x02 not an envelope".to_vec())
        .await
        .unwrap();
    let back: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("bytes").await.unwrap();
    assert_eq!(back.as_deref(), Some(&b"\xC1SC\x02 not an envelope"[..]));
}

/// Tags on a cache without them are refused, never ignored; bad tags, commands that cannot
/// carry tags and the markers' reserved keys are refused with `InvalidArgument`.
pub async fn tags_are_refused_without_tags_and_validated(h: Harness) {
    let plain = h.cache();
    assert!(!plain.capability().tags);
    assert_eq!(
        kind(plain.with_tags(["t"]).set("k", &1).await),
        ErrorKind::Unsupported
    );
    assert_eq!(
        kind(plain.invalidate_tag("t").await),
        ErrorKind::Unsupported
    );
    assert_eq!(
        kind(plain.with_tags(["t"]).get::<u32>("k").await),
        ErrorKind::Unsupported
    );
    assert_eq!(
        plain.get::<u32>("k").await.unwrap(),
        None,
        "nothing written"
    );

    let cache = tagged(&h, Duration::from_secs(1));
    let long = "x".repeat(crate::tags::MAX_TAG_LEN + 1);
    for bad in ["", "a b", "tab\t", "nl\n", long.as_str()] {
        assert_eq!(
            kind(cache.with_tags([bad]).set("k", &1).await),
            ErrorKind::InvalidArgument,
            "{bad:?}"
        );
        assert_eq!(
            kind(cache.invalidate_tag(bad).await),
            ErrorKind::InvalidArgument
        );
    }
    let many: Vec<String> = (0..=crate::tags::MAX_TAGS_PER_ENTRY)
        .map(|i| format!("t{i}"))
        .collect();
    assert_eq!(
        kind(cache.with_tags(many.clone()).set("k", &1).await),
        ErrorKind::InvalidArgument
    );
    cache.invalidate_tags(many).await.unwrap();
    if h.capability().increment {
        assert_eq!(
            kind(cache.with_tags(["t"]).increment("n", 1).await),
            ErrorKind::InvalidArgument
        );
    }
    if h.capability().compare_and_set {
        assert_eq!(
            kind(cache.with_tags(["t"]).compare_and_set("k", None, &1).await),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        kind(cache.set("~tag:t", &1).await),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        cache.get::<u32>("k").await.unwrap(),
        None,
        "nothing written"
    );
    // counters live beside tagged entries, untagged
    if h.capability().increment {
        assert_eq!(cache.increment("n", 2).await.unwrap(), 2);
        cache.invalidate_tag("t").await.unwrap();
        assert_eq!(cache.get_counter("n").await.unwrap(), Some(2));
    }
}

/// A cache sees an invalidation made through another cache (another process, as far as the
/// tag times it keeps go) within its refresh bound, and at once with a refresh of zero.
pub async fn tags_other_caches_see_invalidations_within_refresh(h: Harness) {
    let refresh = Duration::from_millis(300);
    let reader = tagged(&h, refresh);
    let eager = tagged(&h, Duration::ZERO);
    let invalidator = tagged(&h, Duration::from_secs(1));
    reader
        .with_tags(["shared"])
        .set("k", &user(1))
        .await
        .unwrap();
    // the reader now trusts what it read about the tag for `refresh`
    assert_eq!(reader.get::<User>("k").await.unwrap(), Some(user(1)));
    assert_eq!(eager.get::<User>("k").await.unwrap(), Some(user(1)));
    invalidator.invalidate_tag("shared").await.unwrap();
    assert_eq!(eager.get::<User>("k").await.unwrap(), None, "refresh zero");
    assert_eq!(invalidator.get::<User>("k").await.unwrap(), None);
    tokio::time::sleep(refresh + Duration::from_millis(50)).await;
    assert_eq!(
        reader.get::<User>("k").await.unwrap(),
        None,
        "past the refresh"
    );
    // a write after the invalidation (a few ms later: the clocks are compared) is seen by all
    tokio::time::sleep(Duration::from_millis(5)).await;
    eager
        .with_tags(["shared"])
        .set("k", &user(2))
        .await
        .unwrap();
    for cache in [&reader, &eager, &invalidator] {
        assert_eq!(cache.get::<User>("k").await.unwrap(), Some(user(2)));
    }
}
