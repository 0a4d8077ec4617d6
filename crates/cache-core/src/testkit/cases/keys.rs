//! Keys a backend cannot hold as they are: empty, long, with spaces and control characters.

use super::kind;
use crate::ErrorKind;
use crate::testkit::Harness;

/// An empty key is refused with `InvalidArgument` by every keyed command.
pub async fn empty_key_is_invalid_argument(h: Harness) {
    let cache = h.cache();
    assert_eq!(kind(cache.get::<i32>("").await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.set("", &1).await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.delete("").await), ErrorKind::InvalidArgument);
    assert_eq!(kind(cache.exists("").await), ErrorKind::InvalidArgument);
    assert_eq!(
        kind(cache.multi_get::<i32, _, _>(["a", ""]).await),
        ErrorKind::InvalidArgument
    );
}

/// A long key is stored exactly, or refused with `InvalidArgument` when the backend has a key
/// limit; a key with spaces and control characters is never confused with another key.
pub async fn long_key_is_stored_or_refused_clearly(h: Harness) {
    let cache = h.cache();
    let long = "k".repeat(10_000);
    match h.capability().max_key_len {
        Some(_) => assert_eq!(kind(cache.set(&long, &1).await), ErrorKind::InvalidArgument),
        None => {
            cache.set(&long, &1).await.unwrap();
            assert_eq!(cache.get::<i32>(&long).await.unwrap(), Some(1));
        }
    }
    for (a, b) in [("a b", "a_b"), ("a\tb", "a b"), ("a\nb", "a\rb")] {
        let ra = cache.set(a, &1).await;
        let rb = cache.set(b, &2).await;
        match (ra, rb) {
            (Ok(()), Ok(())) => {
                assert_eq!(
                    cache.get::<i32>(a).await.unwrap(),
                    Some(1),
                    "{a:?} vs {b:?}"
                );
                assert_eq!(
                    cache.get::<i32>(b).await.unwrap(),
                    Some(2),
                    "{a:?} vs {b:?}"
                );
            }
            (ra, rb) => {
                for r in [ra, rb] {
                    if let Err(e) = r {
                        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
                    }
                }
            }
        }
    }
}
