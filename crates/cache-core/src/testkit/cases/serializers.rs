//! Serializers: undecodable bytes, per-call serializers and codecs, binary values.

use bytes::Bytes;

use super::{User, kind};
use crate::testkit::Harness;
use crate::{ErrorKind, RawBytes, Utf8};

/// Bytes that do not decode give a `Serialization` error naming the key, never a panic or a
/// wrong value.
pub async fn undecodable_bytes_are_a_serialization_error_naming_the_key(h: Harness) {
    let cache = h.cache();
    cache
        .with_serializer(RawBytes)
        .set("bad", &Bytes::from_static(b"\xff\xfe not json {"))
        .await
        .unwrap();
    let err = cache.get::<User>("bad").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert_eq!(err.context_value("key"), Some("bad"));
    assert!(err.to_string().contains("bad"));
    let err = cache.multi_get::<User, _, _>(["bad"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    // a value of the wrong shape
    cache.set("shape", &"a string").await.unwrap();
    assert_eq!(
        kind(cache.get::<User>("shape").await),
        ErrorKind::Serialization
    );
}

/// A per-call serializer writes and reads that call's bytes.
pub async fn per_call_serializer_override(h: Harness) {
    let cache = h.cache();
    cache
        .with_serializer(Utf8)
        .set("t", &"plain")
        .await
        .unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("t").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"plain"[..]));
    assert_eq!(
        kind(cache.get::<String>("t").await),
        ErrorKind::Serialization,
        "plain text is not JSON"
    );
    cache.set("j", &"json").await.unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("j").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"\"json\""[..]));
    let custom = h.builder().serializer(Utf8).build();
    custom.set("n", &5).await.unwrap();
    assert_eq!(custom.get::<i64>("n").await.unwrap(), Some(5));
}

/// Per-call encode and decode functions replace the serializer for that call only.
pub async fn per_call_encode_and_decode_functions(h: Harness) {
    let cache = h.cache();
    cache
        .set_encoded("k", "v4lu3", |s: &str| Ok(s.as_bytes().to_vec()))
        .await
        .unwrap();
    let raw: Option<Vec<u8>> = cache.with_serializer(RawBytes).get("k").await.unwrap();
    assert_eq!(raw.as_deref(), Some(&b"v4lu3"[..]));
    let upper = cache
        .get_decoded("k", |b| Ok(String::from_utf8_lossy(b).to_uppercase()))
        .await
        .unwrap();
    assert_eq!(upper.as_deref(), Some("V4LU3"));
    let err = cache
        .get_decoded::<(), _>("k", |_| {
            Err(crate::Error::serialization("custom decoder refused"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert_eq!(err.context_value("key"), Some("k"));
    assert_eq!(
        cache.get_decoded("missing", |_| Ok(1)).await.unwrap(),
        None,
        "the decoder does not run on a miss"
    );
}

/// Binary values (all 256 byte values, CR LF inside) round-trip exactly.
pub async fn binary_values_round_trip_exactly(h: Harness) {
    let owner = h.cache();
    let cache = owner.with_serializer(RawBytes);
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend_from_slice(b"\r\nEND\r\n\0");
    cache.set("bin", &Bytes::from(value.clone())).await.unwrap();
    let back: Option<Vec<u8>> = cache.get("bin").await.unwrap();
    assert_eq!(back, Some(value));
    cache.set("empty", &Bytes::new()).await.unwrap();
    let back: Option<Vec<u8>> = cache.get("empty").await.unwrap();
    assert_eq!(back, Some(Vec::new()), "an empty value is a value");
}
