//! TTLs: `expire`, `ttl`, expiry, precision, zero and default TTLs.

use std::time::Duration;

use super::kind;
use crate::testkit::Harness;
use crate::{ErrorKind, KeyTtl, Ttl};

/// `expire` on an existing key sets its TTL and answers `true`.
pub async fn expire_sets_ttl_on_existing_key(h: Harness) {
    let cache = h.cache();
    if !h.capability().expire {
        assert_eq!(
            kind(cache.expire("k", Duration::from_secs(1)).await),
            ErrorKind::Unsupported
        );
        return;
    }
    cache.set("k", &1).await.unwrap();
    let ttl = h.short_ttl();
    assert!(cache.expire("k", ttl).await.unwrap());
    assert!(cache.exists("k").await.unwrap());
    h.sleep_past(ttl).await;
    assert!(!cache.exists("k").await.unwrap());
}

/// `expire` on a missing key answers `false` and creates nothing.
pub async fn expire_missing_key_returns_false(h: Harness) {
    let cache = h.cache();
    if !h.capability().expire {
        return;
    }
    assert!(!cache.expire("k", Duration::from_secs(10)).await.unwrap());
    assert!(!cache.expire("k", Ttl::Never).await.unwrap());
    assert!(!cache.exists("k").await.unwrap());
}

/// `expire(Ttl::Never)` removes the expiry and answers `true` for an existing key, with or
/// without a TTL before.
pub async fn expire_never_removes_expiry_and_answers_true(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    if !cap.expire {
        return;
    }
    let ttl = h.short_ttl();
    cache.with_ttl(ttl).set("k", &1).await.unwrap();
    assert!(cache.expire("k", Ttl::Never).await.unwrap());
    assert!(
        cache.expire("k", Ttl::Never).await.unwrap(),
        "true also for a key without expiry"
    );
    if cap.ttl {
        assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::NoExpiry);
    }
    h.sleep_past(ttl).await;
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
}

/// `ttl` tells a missing key, a key without expiry and a key with time left apart.
pub async fn ttl_distinguishes_missing_no_expiry_and_remaining(h: Harness) {
    let cache = h.cache();
    if !h.capability().ttl {
        assert_eq!(kind(cache.ttl("k").await), ErrorKind::Unsupported);
        return;
    }
    assert_eq!(cache.ttl("missing").await.unwrap(), KeyTtl::Missing);
    cache.set("forever", &1).await.unwrap();
    assert_eq!(cache.ttl("forever").await.unwrap(), KeyTtl::NoExpiry);
    cache
        .with_ttl(Duration::from_secs(30))
        .set("soon", &1)
        .await
        .unwrap();
    match cache.ttl("soon").await.unwrap() {
        KeyTtl::Remaining(d) => {
            assert!(
                d <= Duration::from_secs(30) && d > Duration::from_secs(25),
                "{d:?}"
            )
        }
        other => panic!("expected Remaining, got {other:?}"),
    }
}

/// An expired entry is never returned by any read.
pub async fn expired_entry_is_never_returned(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    let ttl = h.short_ttl();
    cache.with_ttl(ttl).set("k", &1).await.unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    h.sleep_past(ttl).await;
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
    let many: Vec<Option<i32>> = cache.multi_get(["k"]).await.unwrap();
    assert_eq!(many, vec![None]);
    assert!(!cache.exists("k").await.unwrap());
    if cap.ttl {
        assert_eq!(cache.ttl("k").await.unwrap(), KeyTtl::Missing);
    }
    if cap.expire {
        assert!(!cache.expire("k", Ttl::Never).await.unwrap());
    }
    if cap.add {
        cache.add("k", &2).await.unwrap();
        assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));
    }
}

/// TTLs keep the backend's precision: milliseconds where the capability says so, else whole
/// seconds rounded up (never early).
pub async fn ttl_keeps_backend_precision(h: Harness) {
    let cache = h.cache();
    let cap = h.capability();
    if cap.ttl_millis {
        cache
            .with_ttl(Duration::from_millis(1_500))
            .set("k", &1)
            .await
            .unwrap();
        if cap.ttl {
            let left = cache.ttl("k").await.unwrap().remaining().expect("ttl");
            assert!(
                left > Duration::from_millis(1_000) && left <= Duration::from_millis(1_500),
                "millisecond ttl reads back as {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(cache.exists("k").await.unwrap(), "must not expire early");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(!cache.exists("k").await.unwrap(), "must expire after 1.5 s");
    } else {
        cache
            .with_ttl(Duration::from_millis(1_200))
            .set("k", &1)
            .await
            .unwrap();
        if cap.ttl {
            let left = cache.ttl("k").await.unwrap().remaining().expect("ttl");
            assert!(
                left >= Duration::from_millis(1_200),
                "rounded up, got {left:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(cache.exists("k").await.unwrap(), "must not expire early");
    }
}

/// A zero TTL is `InvalidArgument` on every write and on `expire`, and writes nothing.
pub async fn zero_ttl_is_invalid_argument_and_writes_nothing(h: Harness) {
    let cache = h.cache();
    let zero = cache.with_ttl(Duration::ZERO);
    assert_eq!(kind(zero.set("k", &1).await), ErrorKind::InvalidArgument);
    if h.capability().add {
        assert_eq!(kind(zero.add("k", &1).await), ErrorKind::InvalidArgument);
    }
    assert_eq!(
        kind(zero.multi_set([("k", 1)]).await),
        ErrorKind::InvalidArgument
    );
    assert!(!cache.exists("k").await.unwrap());
    cache.set("k", &1).await.unwrap();
    if h.capability().expire {
        assert_eq!(
            kind(cache.expire("k", Duration::ZERO).await),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    let bad_default = h.builder().ttl(Duration::ZERO).build();
    assert_eq!(
        kind(bad_default.set("d", &1).await),
        ErrorKind::InvalidArgument
    );
}

/// The cache's default TTL applies to writes that give none; a per-call TTL or `Ttl::Never`
/// overrides it.
pub async fn default_ttl_applies_and_per_call_ttl_overrides(h: Harness) {
    if !h.capability().ttl {
        return;
    }
    let cache = h.builder().ttl(Duration::from_secs(60)).build();
    cache.set("d", &1).await.unwrap();
    let left = cache
        .ttl("d")
        .await
        .unwrap()
        .remaining()
        .expect("default ttl");
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    cache.with_ttl(Ttl::Never).set("n", &1).await.unwrap();
    assert_eq!(cache.ttl("n").await.unwrap(), KeyTtl::NoExpiry);
    cache
        .with_ttl(Duration::from_secs(300))
        .set("o", &1)
        .await
        .unwrap();
    let left = cache.ttl("o").await.unwrap().remaining().expect("override");
    assert!(left > Duration::from_secs(250));
}

/// `get_with_ttl` reads a value with its remaining lifetime, in order for many keys, and a
/// miss as `None`; a value without expiry has no lifetime.
pub async fn get_with_ttl_reads_values_with_their_remaining_lifetime(h: Harness) {
    use bytes::Bytes;

    let backend = h.backend();
    let ctx = crate::CallContext::new(crate::Command::Get);
    let key = |k: &str| format!("{}:{k}", h.namespace());
    let (soon, forever, missing) = (key("soon"), key("forever"), key("missing"));
    let op = crate::OpSet::new(Some(Duration::from_secs(30)));
    backend
        .set(&ctx, &soon, Bytes::from_static(b"\x00soon\xff"), op)
        .await
        .unwrap();
    backend
        .set(
            &ctx,
            &forever,
            Bytes::from_static(b"forever"),
            crate::OpSet::new(None),
        )
        .await
        .unwrap();

    let within = |ttl: Option<Duration>| {
        let d = ttl.expect("a key written with a TTL reports one");
        assert!(
            d <= Duration::from_secs(30) && d > Duration::from_secs(25),
            "{d:?}"
        );
    };
    let got = backend.get_with_ttl(&ctx, &soon).await.unwrap().unwrap();
    assert_eq!(got.value, Bytes::from_static(b"\x00soon\xff"));
    within(got.ttl);
    let got = backend.get_with_ttl(&ctx, &forever).await.unwrap().unwrap();
    assert_eq!((got.value.as_ref(), got.ttl), (&b"forever"[..], None));
    assert_eq!(backend.get_with_ttl(&ctx, &missing).await.unwrap(), None);

    let keys = [
        forever.clone(),
        missing.clone(),
        soon.clone(),
        forever.clone(),
    ];
    let many = backend.multi_get_with_ttl(&ctx, &keys).await.unwrap();
    assert_eq!(many.len(), 4);
    assert_eq!(
        many[0].as_ref().map(|e| (e.value.as_ref(), e.ttl)),
        Some((&b"forever"[..], None))
    );
    assert_eq!(many[1], None);
    let soon_entry = many[2].as_ref().expect("a stored key is found");
    assert_eq!(soon_entry.value, Bytes::from_static(b"\x00soon\xff"));
    within(soon_entry.ttl);
    assert_eq!(many[3], many[0]);
    assert!(
        backend
            .multi_get_with_ttl(&ctx, &[])
            .await
            .unwrap()
            .is_empty()
    );
}
