//! Fuzzes every serializer's `decode` on arbitrary bytes.
//!
//! Byte 0 picks the serializer (`Json`, `PythonJson`, `Utf8`, `RawBytes`, `MsgPack`, `Cbor`)
//! and the target type (`serde_json::Value`, a struct, `i64`, `String`, `Vec<u8>`); the rest
//! is the stored value. Decoding may fail but never panic. Property checked: when a value
//! decodes, encoding it succeeds (for the self-describing formats; `Utf8` and `RawBytes`
//! may refuse some shapes) and decoding that encoding gives the value back (floats may move
//! by rounding in the JSON parser, within a relative 1e-12).

#![no_main]

use std::fmt::Debug;

use cache_core::{Json, PythonJson, RawBytes, Serializer, Utf8};
use cache_serde::{Cbor, MsgPack};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A typical cached record.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    parent: Option<i32>,
    kind: Kind,
    blob: Vec<u8>,
}

/// An enum inside the record (unit, newtype and struct variants).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Count(u32),
    Pair { a: bool, b: String },
}

/// Equality up to the float rounding of a text round trip.
trait Same {
    fn same(&self, other: &Self) -> bool;
}

macro_rules! same_by_eq {
    ($($t:ty),*) => {$(
        impl Same for $t {
            fn same(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}
same_by_eq!(Record, i64, String, Vec<u8>);

impl Same for serde_json::Value {
    fn same(&self, other: &Self) -> bool {
        use serde_json::Value as V;
        match (self, other) {
            (V::Number(a), V::Number(b)) if a.is_f64() || b.is_f64() => {
                match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                    _ => false,
                }
            }
            (V::Array(a), V::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (V::Object(a), V::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v.same(w)))
            }
            (a, b) => a == b,
        }
    }
}

fn round_trip<S, T>(serializer: &S, bytes: &[u8], encode_must_work: bool)
where
    S: Serializer,
    T: Serialize + DeserializeOwned + Same + Debug,
{
    let Ok(value) = serializer.decode::<T>(bytes) else {
        return;
    };
    let encoded = match serializer.encode(&value) {
        Ok(encoded) => encoded,
        Err(e) => {
            assert!(
                !encode_must_work,
                "{}: decoded {value:?} but cannot encode it: {e}",
                serializer.name()
            );
            return;
        }
    };
    let again: T = serializer.decode(&encoded).unwrap_or_else(|e| {
        panic!(
            "{}: {value:?} encodes as {encoded:?}, which does not decode: {e}",
            serializer.name()
        )
    });
    assert!(
        value.same(&again),
        "{}: {value:?} comes back as {again:?}",
        serializer.name()
    );
}

fn run<S: Serializer>(serializer: &S, target: u8, bytes: &[u8], total: bool) {
    match target % 5 {
        0 => round_trip::<S, serde_json::Value>(serializer, bytes, total),
        1 => round_trip::<S, Record>(serializer, bytes, total),
        2 => round_trip::<S, i64>(serializer, bytes, total),
        3 => round_trip::<S, String>(serializer, bytes, total),
        _ => round_trip::<S, Vec<u8>>(serializer, bytes, total),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let target = selector / 6;
    match selector % 6 {
        0 => run(&Json, target, bytes, true),
        1 => run(&PythonJson, target, bytes, true),
        2 => run(&Utf8, target, bytes, false),
        3 => run(&RawBytes, target, bytes, false),
        4 => run(&MsgPack, target, bytes, true),
        _ => run(&Cbor, target, bytes, true),
    }
});
