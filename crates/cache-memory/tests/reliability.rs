//! The reliability suite (`cache_core::reliability_tests!`) against the memory backend, once
//! unbounded and once bounded (room for the scoped clear case's 110,000 keys, and a byte bound
//! that gives the oversize-value case a limit to try), plus the memory backend's own
//! oversize rule: key and value together must fit `max_bytes`.

use bytes::Bytes;
use cache_core::{Cache, ErrorKind, RawBytes};
use cache_memory::MemoryBackend;

cache_core::reliability_tests!(async { Some(MemoryBackend::new()) }; serializers {
    stored_garbage_msgpack => cache_serde::MsgPack,
    stored_garbage_cbor => cache_serde::Cbor,
});

mod bounded {
    cache_core::reliability_tests!(async {
        Some(
            cache_memory::MemoryBackend::new()
                .max_entries(200_000)
                .max_bytes(32 << 20),
        )
    });
}

/// An entry whose key and value together exceed `max_bytes` is refused even when the value
/// alone is within the capability's `max_value_len`; the old value stays and nothing else is
/// evicted to make room for it.
#[tokio::test]
async fn key_plus_value_over_max_bytes_is_refused_and_evicts_nothing() {
    let backend = MemoryBackend::new().max_bytes(4096);
    let probe = backend.clone();
    let cache = Cache::builder(backend)
        .namespace("big")
        .serializer(RawBytes)
        .build();
    cache.set("v", &Bytes::from_static(b"old")).await.unwrap();
    cache.set("w", &Bytes::from_static(b"other")).await.unwrap();
    let before = (probe.len(), probe.weight());
    // "big:v" is 5 bytes: 4092 value bytes make 4097, one over the bound
    let e = cache
        .set("v", &Bytes::from(vec![b'x'; 4092]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("4097 bytes"), "{e}");
    let e = cache
        .multi_set([
            ("n", Bytes::from_static(b"1")),
            ("v", Bytes::from(vec![b'x'; 4092])),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!((probe.len(), probe.weight()), before, "nothing evicted");
    let v: Option<Vec<u8>> = cache.get("v").await.unwrap();
    assert_eq!(v.as_deref(), Some(&b"old"[..]));
    let w: Option<Vec<u8>> = cache.get("w").await.unwrap();
    assert_eq!(w.as_deref(), Some(&b"other"[..]));
    assert!(!cache.exists("n").await.unwrap());
    // exactly the bound fits
    cache
        .set("v", &Bytes::from(vec![b'x'; 4091]))
        .await
        .unwrap();
    assert!(probe.weight() <= 4096);
}
