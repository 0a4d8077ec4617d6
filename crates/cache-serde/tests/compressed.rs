//! `Compressed`: what it stores, what it reads back, and what it refuses.

#![cfg(all(
    feature = "zstd",
    feature = "lz4",
    feature = "msgpack",
    feature = "cbor"
))]

use cache_core::testkit::MapBackend;
use cache_core::{Cache, ErrorKind, Json, RawBytes, Serializer, Utf8};
use cache_serde::{Cbor, Codec, Compressed, MsgPack};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const MARKER: [u8; 3] = [0xFF, b'c', b'z'];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    id: u64,
    title: String,
    body: String,
    tags: Vec<String>,
}

fn page(words: usize) -> Page {
    Page {
        id: 7,
        title: "Analytical Engine".into(),
        body: "the engine weaves algebraic patterns ".repeat(words),
        tags: vec!["history".into(), "computing".into()],
    }
}

/// A frame as the format describes it: marker, version 1, codec, LEB128 length, payload.
fn frame(codec: u8, claimed: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = MARKER.to_vec();
    out.push(1);
    out.push(codec);
    let mut n = claimed;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    out
}

fn codecs() -> [Codec; 2] {
    [Codec::ZSTD, Codec::Lz4]
}

#[track_caller]
fn round_trip<S: Serializer>(s: &S, value: &Page) -> Vec<u8> {
    let bytes = s.encode(value).unwrap();
    assert_eq!(&s.decode::<Page>(&bytes).unwrap(), value);
    bytes
}

#[test]
fn small_values_are_stored_exactly_as_the_inner_serializer_writes_them() {
    for codec in codecs() {
        let small = page(1);
        assert_eq!(
            round_trip(&Compressed::new(Json, codec), &small),
            Json.encode(&small).unwrap()
        );
        assert_eq!(
            round_trip(&Compressed::new(MsgPack, codec), &small),
            MsgPack.encode(&small).unwrap()
        );
        assert_eq!(
            Compressed::new(Utf8, codec).encode(&42).unwrap(),
            b"42".to_vec()
        );
    }
}

#[test]
fn large_values_are_compressed_behind_the_marker_and_read_back() {
    let large = page(200);
    for codec in codecs() {
        let json = Compressed::new(Json, codec);
        let plain = Json.encode(&large).unwrap().len();
        let bytes = round_trip(&json, &large);
        assert!(bytes.starts_with(&MARKER), "{codec:?}");
        assert!(
            bytes.len() * 5 < plain,
            "{codec:?}: {} of {plain}",
            bytes.len()
        );
        round_trip(&Compressed::new(MsgPack, codec), &large);
        round_trip(&Compressed::new(Cbor, codec), &large);
        let text = "x".repeat(10_000);
        let utf8 = Compressed::new(Utf8, codec);
        assert_eq!(
            utf8.decode::<String>(&utf8.encode(&text).unwrap()).unwrap(),
            text
        );
    }
}

#[test]
fn the_threshold_decides_what_is_compressed() {
    let value = "y".repeat(600);
    let encoded = Json.encode(&value).unwrap();
    let s = Compressed::zstd(Json);
    assert_eq!(
        s.encode(&value).unwrap(),
        encoded,
        "under the default 1 KiB"
    );
    assert!(
        s.threshold(500)
            .encode(&value)
            .unwrap()
            .starts_with(&MARKER)
    );
    assert_eq!(s.threshold(encoded.len()).encode(&value).unwrap(), encoded);
    assert!(
        s.threshold(encoded.len() - 1)
            .encode(&value)
            .unwrap()
            .starts_with(&MARKER)
    );
    assert_eq!(s.threshold(usize::MAX).encode(&value).unwrap(), encoded);
}

#[test]
fn values_written_without_the_wrapper_stay_readable() {
    let large = page(200);
    for codec in codecs() {
        assert_eq!(
            Compressed::new(Json, codec)
                .decode::<Page>(&Json.encode(&large).unwrap())
                .unwrap(),
            large
        );
        assert_eq!(
            Compressed::new(MsgPack, codec)
                .decode::<Page>(&MsgPack.encode(&large).unwrap())
                .unwrap(),
            large
        );
        assert_eq!(
            Compressed::new(Cbor, codec)
                .decode::<Page>(&Cbor.encode(&large).unwrap())
                .unwrap(),
            large
        );
    }
}

#[test]
fn every_codec_compiled_in_is_read_whichever_one_writes() {
    let large = page(200);
    let zstd = Compressed::zstd(Json).encode(&large).unwrap();
    let lz4 = Compressed::lz4(Json).encode(&large).unwrap();
    assert_ne!(zstd, lz4);
    for reader in [Compressed::zstd(Json), Compressed::lz4(Json)] {
        assert_eq!(reader.decode::<Page>(&zstd).unwrap(), large);
        assert_eq!(reader.decode::<Page>(&lz4).unwrap(), large);
    }
}

#[test]
fn incompressible_values_are_stored_as_they_are() {
    // xorshift noise: compression cannot shrink it
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for codec in codecs() {
        let s = Compressed::new(RawBytes, codec).threshold(0);
        let bytes = s.encode(&noise).unwrap();
        assert_eq!(bytes, noise, "{codec:?}");
        assert_eq!(s.decode::<Vec<u8>>(&bytes).unwrap(), noise);
    }
}

#[test]
fn raw_bytes_that_begin_with_the_marker_are_framed_and_read_back() {
    for codec in codecs() {
        let s = Compressed::new(RawBytes, codec);
        for value in [
            MARKER.to_vec(),
            [&MARKER[..], b"\x01\x00\x00"].concat(),
            [&MARKER[..], &[0u8; 5000][..]].concat(),
            [&MARKER[..], b"not a frame"].concat(),
        ] {
            let bytes = s.encode(&value).unwrap();
            assert!(bytes.starts_with(&MARKER));
            assert_eq!(s.decode::<Vec<u8>>(&bytes).unwrap(), value, "{codec:?}");
        }
    }
}

#[track_caller]
fn refused(s: &Compressed<Json>, bytes: &[u8], says: &str) {
    let err = s.decode::<String>(bytes).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
    assert!(err.to_string().contains(says), "{err}");
    assert_eq!(err.context_value("serializer"), Some(s.name()));
}

/// A frame that claims a huge value is refused from its header: were the claim allocated,
/// these would abort the test process (no machine has 2^40 or 2^64 bytes to give).
#[test]
fn a_frame_claiming_a_huge_size_is_an_error_not_an_allocation() {
    for codec in codecs() {
        let s = Compressed::new(Json, codec);
        let max = Compressed::<Json>::DEFAULT_MAX_DECOMPRESSED_SIZE as u64;
        for id in [0, 1, 2] {
            for claimed in [u64::MAX, 1 << 40, 1 << 32, max + 1] {
                refused(
                    &s,
                    &frame(id, claimed, b"\x28\xb5\x2f\xfd"),
                    "max_decompressed_size",
                );
            }
        }
        // the limit is the serializer's own
        let small = s.max_decompressed_size(100);
        refused(&small, &frame(1, 101, b""), "more than the 100 bytes");
    }
}

/// A payload that inflates past its frame's claim, or past the limit, is refused.
#[test]
fn a_payload_that_inflates_past_its_claim_or_the_limit_is_refused() {
    let zeros = vec![0u8; 4 << 20];
    let zstd_bomb = zstd::bulk::compress(&zeros, 19).unwrap();
    let lz4_bomb = lz4_flex::block::compress(&zeros);
    assert!(zstd_bomb.len() < 1024 && lz4_bomb.len() < 32 * 1024);
    let s = Compressed::zstd(Json).max_decompressed_size(1 << 20);
    // honest claim, over the limit
    refused(&s, &frame(1, 4 << 20, &zstd_bomb), "max_decompressed_size");
    refused(&s, &frame(2, 4 << 20, &lz4_bomb), "max_decompressed_size");
    // a small claim the payload overruns
    refused(&s, &frame(1, 1000, &zstd_bomb), "does not decompress");
    refused(&s, &frame(2, 1000, &lz4_bomb), "does not decompress");
    // a claim LZ4 cannot reach from so few bytes
    refused(&s, &frame(2, 1 << 20, b"\x00"), "does not decompress");
    // a claim larger than the content
    let small = zstd::bulk::compress(b"\"abc\"", 3).unwrap();
    refused(&s, &frame(1, 6, &small), "not the 6");
}

#[test]
fn encode_refuses_what_decode_would_refuse() {
    let s = Compressed::lz4(Json).max_decompressed_size(1000);
    let err = s.encode(&"z".repeat(2000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Serialization);
    assert!(err.to_string().contains("max_decompressed_size"), "{err}");
    assert!(s.encode(&"z".repeat(900)).is_ok());
}

#[test]
fn malformed_frames_are_errors() {
    let s = Compressed::zstd(Json);
    refused(&s, &MARKER, "truncated");
    refused(&s, &[0xFF, b'c', b'z', 1], "truncated");
    refused(&s, &[0xFF, b'c', b'z', 1, 1], "truncated");
    refused(&s, &[0xFF, b'c', b'z', 1, 1, 0x80], "truncated");
    refused(&s, &[0xFF, b'c', b'z', 2, 1, 0], "format version 2");
    refused(&s, &frame(9, 3, b"abc"), "unknown codec 9");
    refused(&s, &frame(0, 4, b"abc"), "does not match");
    refused(&s, &frame(1, 3, b"abc"), "does not decompress");
    // an 11-byte varint, and a 10-byte one over 64 bits
    let mut long = vec![0xFF, b'c', b'z', 1, 1];
    long.extend([0x80; 10]);
    long.push(0);
    refused(&s, &long, "truncated");
    let mut over = vec![0xFF, b'c', b'z', 1, 1];
    over.extend([0xFF; 9]);
    over.push(0x02);
    refused(&s, &over, "truncated");
    // a stored frame holding valid JSON reads
    assert_eq!(s.decode::<String>(&frame(0, 5, b"\"abc\"")).unwrap(), "abc");
}

#[tokio::test]
async fn counters_stay_readable_and_frames_are_never_taken_for_counters() {
    for codec in codecs() {
        let cache = Cache::builder(MapBackend::new())
            .serializer(Compressed::new(Json, codec).threshold(0))
            .build();
        assert_eq!(cache.increment("hits", 6).await.unwrap(), 6);
        assert_eq!(cache.get::<i64>("hits").await.unwrap(), Some(6));
        assert_eq!(cache.get_counter("hits").await.unwrap(), Some(6));
        // a compressed value is neither a counter nor decimal text
        cache.set("page", &page(100)).await.unwrap();
        let raw: Vec<u8> = cache
            .with_serializer(RawBytes)
            .get("page")
            .await
            .unwrap()
            .unwrap();
        assert!(raw.starts_with(&MARKER));
        let err = cache.increment("page", 1).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert_eq!(cache.get::<Page>("page").await.unwrap(), Some(page(100)));
        let err = cache.get_counter("page").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        // MsgPack inside still refuses counter text, with its own message
        let msgpack = cache.with_serializer(Compressed::new(MsgPack, codec));
        let err = msgpack.get::<i64>("hits").await.unwrap_err();
        assert!(err.to_string().contains("get_counter"), "{err}");
    }
}

/// Decodes `bytes` with every codec and a few inner serializers: a value or a
/// `Serialization` error, never a panic.
fn decode_anything(bytes: &[u8]) {
    fn check<S: Serializer>(s: &S, bytes: &[u8]) {
        for err in [
            s.decode::<serde_json::Value>(bytes).err(),
            s.decode::<String>(bytes).err(),
            s.decode::<Vec<u8>>(bytes).err(),
            s.decode::<Page>(bytes).err(),
        ]
        .into_iter()
        .flatten()
        {
            assert_eq!(err.kind(), ErrorKind::Serialization, "{bytes:02x?}: {err}");
        }
    }
    for codec in codecs() {
        check(
            &Compressed::new(Json, codec).max_decompressed_size(1 << 16),
            bytes,
        );
        check(&Compressed::new(MsgPack, codec), bytes);
        check(&Compressed::new(RawBytes, codec), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_anything(&bytes);
    }

    #[test]
    fn arbitrary_frames_never_panic(
        codec in 0u8..4,
        claimed in prop_oneof![0u64..70_000, any::<u64>()],
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        decode_anything(&frame(codec, claimed, &payload));
    }

    /// Real frames with a few bytes changed.
    #[test]
    fn damaged_frames_never_panic(
        words in 30usize..200,
        lz4 in any::<bool>(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let s = if lz4 { Compressed::lz4(Json) } else { Compressed::zstd(Json) };
        let mut bytes = s.encode(&page(words)).unwrap();
        for (at, byte) in damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        decode_anything(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_anything(&bytes);
    }

    #[test]
    fn every_value_round_trips(
        text in ".{0,3000}",
        raw in proptest::collection::vec(any::<u8>(), 0..3000),
        threshold in prop_oneof![Just(0usize), 0usize..2048],
        lz4 in any::<bool>(),
    ) {
        let codec = if lz4 { Codec::Lz4 } else { Codec::ZSTD };
        let json = Compressed::new(Json, codec).threshold(threshold);
        let bytes = json.encode(&text).unwrap();
        prop_assert_eq!(json.decode::<String>(&bytes).unwrap(), text.clone());
        let raw_s = Compressed::new(RawBytes, codec).threshold(threshold);
        let bytes = raw_s.encode(&raw).unwrap();
        prop_assert_eq!(raw_s.decode::<Vec<u8>>(&bytes).unwrap(), raw.clone());
        let repeated = raw.repeat(3);
        let bytes = raw_s.encode(&repeated).unwrap();
        prop_assert_eq!(raw_s.decode::<Vec<u8>>(&bytes).unwrap(), repeated);
    }
}
