//! Fuzzes the conversions of server replies into `cache_core::RawValue` behind `raw()`.
//!
//! Byte 0 picks the backend. Redis: the rest is decoded by a small byte-driven builder into a
//! nested RESP3 frame (every frame kind, up to 80 levels deep so past the converter's
//! 64-level guard; set members and map keys are scalars) and converted as `RedisBackend::raw` converts fred's replies. Memcached:
//! the rest fills a meta-protocol `MetaValue` (which fields are present, and their values)
//! and is converted as `MemcachedBackend::raw` converts meta replies. Nothing may panic.
//! Properties checked: a redis frame converts exactly when it holds no error, hello or
//! chunked frame and is at most 64 levels deep, and the converted value has the frame's
//! shape and contents (bulk strings as bytes, simple strings as lossy text); a memcached
//! reply becomes a map with one entry per field present, in a fixed order, with numbers
//! above `i64::MAX` as decimal text.

#![no_main]

use async_memcached::MetaValue;
use bytes::Bytes;
use cache_core::RawValue;
use fred::types::Resp3Frame;
use libfuzzer_sys::fuzz_target;
use redis_protocol::resp3::types::{
    FrameKind, FrameMap, FrameSet, RespVersion, VerbatimStringFormat,
};

/// Depth the redis converter accepts (its `MAX_RAW_DEPTH`).
const MAX_RAW_DEPTH: usize = 64;
/// Deepest frame the builder makes.
const MAX_BUILD_DEPTH: usize = 80;

/// Reads the fuzz input front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        for b in &mut buf {
            *b = self.byte();
        }
        u64::from_le_bytes(buf)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = usize::from(self.byte() % 32).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken.to_vec()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn leaf(kind: FrameKind, data: Vec<u8>) -> Resp3Frame {
    Resp3Frame::try_from((kind, Bytes::from(data))).unwrap_or(Resp3Frame::Null)
}

/// A frame that can be a set member or map key: redis-protocol panics when it hashes an
/// aggregate or hello frame (a server never sends one there).
fn hash_key(input: &mut Input<'_>) -> Resp3Frame {
    match build(input, MAX_BUILD_DEPTH, &mut 0) {
        Resp3Frame::Hello { .. }
        | Resp3Frame::Array { .. }
        | Resp3Frame::Push { .. }
        | Resp3Frame::Set { .. }
        | Resp3Frame::Map { .. } => Resp3Frame::Null,
        frame => frame,
    }
}

fn build(input: &mut Input<'_>, depth: usize, budget: &mut usize) -> Resp3Frame {
    *budget = budget.saturating_sub(1);
    let op = input.byte();
    let container = depth < MAX_BUILD_DEPTH && *budget > 0 && !input.is_empty();
    let children = |input: &mut Input<'_>, budget: &mut usize| {
        let n = if container { input.byte() % 6 } else { 0 };
        (0..n)
            .map(|_| build(input, depth + 1, budget))
            .collect::<Vec<_>>()
    };
    match op % 16 {
        0 => leaf(FrameKind::BlobString, input.bytes()),
        1 => leaf(FrameKind::SimpleString, input.bytes()),
        2 => Resp3Frame::VerbatimString {
            data: Bytes::from(input.bytes()),
            format: if input.byte() % 2 == 0 {
                VerbatimStringFormat::Text
            } else {
                VerbatimStringFormat::Markdown
            },
            attributes: None,
        },
        3 => leaf(FrameKind::BigNumber, input.bytes()),
        4 => Resp3Frame::Number {
            data: input.u64() as i64,
            attributes: None,
        },
        5 => Resp3Frame::Double {
            data: f64::from_bits(input.u64()),
            attributes: None,
        },
        6 => Resp3Frame::Boolean {
            data: input.byte() % 2 == 1,
            attributes: None,
        },
        7 => Resp3Frame::Null,
        8 => Resp3Frame::Array {
            data: children(input, budget),
            attributes: None,
        },
        9 => Resp3Frame::Push {
            data: children(input, budget),
            attributes: None,
        },
        10 => {
            let n = if container { input.byte() % 6 } else { 0 };
            let data = (0..n).map(|_| hash_key(input)).collect::<FrameSet<_>>();
            Resp3Frame::Set {
                data,
                attributes: None,
            }
        }
        11 => {
            let n = if container { input.byte() % 4 } else { 0 };
            let mut data = FrameMap::new();
            for _ in 0..n {
                let key = hash_key(input);
                data.insert(key, build(input, depth + 1, budget));
            }
            Resp3Frame::Map {
                data,
                attributes: None,
            }
        }
        12 => leaf(FrameKind::SimpleError, input.bytes()),
        13 => leaf(FrameKind::BlobError, input.bytes()),
        14 => Resp3Frame::ChunkedString(Bytes::from(input.bytes())),
        _ => Resp3Frame::Hello {
            version: RespVersion::RESP3,
            auth: None,
            setname: None,
        },
    }
}

/// Whether the converter must accept `frame` at `depth`.
fn convertible(frame: &Resp3Frame, depth: usize) -> bool {
    if depth > MAX_RAW_DEPTH {
        return false;
    }
    match frame {
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => {
            data.iter().all(|f| convertible(f, depth + 1))
        }
        Resp3Frame::Set { data, .. } => data.iter().all(|f| convertible(f, depth + 1)),
        Resp3Frame::Map { data, .. } => data
            .iter()
            .all(|(k, v)| convertible(k, depth + 1) && convertible(v, depth + 1)),
        Resp3Frame::SimpleError { .. }
        | Resp3Frame::BlobError { .. }
        | Resp3Frame::Hello { .. }
        | Resp3Frame::ChunkedString(_) => false,
        _ => true,
    }
}

/// Whether `value` is the conversion of `frame`.
fn converted(frame: &Resp3Frame, value: &RawValue) -> bool {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    match (frame, value) {
        (Resp3Frame::BlobString { data, .. }, RawValue::Bytes(b)) => data == b,
        (
            Resp3Frame::SimpleString { data, .. }
            | Resp3Frame::VerbatimString { data, .. }
            | Resp3Frame::BigNumber { data, .. },
            RawValue::Text(t),
        ) => text(data) == *t,
        (Resp3Frame::Number { data, .. }, RawValue::Int(i)) => data == i,
        (Resp3Frame::Double { data, .. }, RawValue::Float(f)) => data.to_bits() == f.to_bits(),
        (Resp3Frame::Boolean { data, .. }, RawValue::Bool(b)) => data == b,
        (Resp3Frame::Null, RawValue::Nil) => true,
        (Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. }, RawValue::Array(a)) => {
            data.len() == a.len() && data.iter().zip(a).all(|(f, v)| converted(f, v))
        }
        // a set converts in its iteration order, which a clone keeps
        (Resp3Frame::Set { data, .. }, RawValue::Array(a)) => {
            data.len() == a.len() && data.iter().zip(a).all(|(f, v)| converted(f, v))
        }
        (Resp3Frame::Map { data, .. }, RawValue::Map(m)) => {
            data.len() == m.len()
                && data
                    .iter()
                    .zip(m)
                    .all(|((fk, fv), (k, v))| converted(fk, k) && converted(fv, v))
        }
        _ => false,
    }
}

fn redis(input: &mut Input<'_>) {
    let mut budget = 512;
    let frame = build(input, 0, &mut budget);
    let expect_ok = convertible(&frame, 0);
    match cache_redis::__fuzz::raw_reply(frame.clone()) {
        Ok(value) => {
            assert!(expect_ok, "{frame:?} converts, but should fail");
            assert!(converted(&frame, &value), "{frame:?} converts as {value:?}");
        }
        Err(e) => assert!(!expect_ok, "{frame:?} fails to convert: {e}"),
    }
}

fn memcached(input: &mut Input<'_>) {
    let present = u16::from_le_bytes([input.byte(), input.byte()]);
    let has = |bit: u16| present & (1 << bit) != 0;
    let mut value = MetaValue::default();
    if has(0) {
        value.data = Some(input.bytes());
    }
    if has(1) {
        value.key = Some(input.bytes());
    }
    if has(2) {
        value.cas = Some(input.u64());
    }
    if has(3) {
        value.flags = Some(input.u64() as u32);
    }
    if has(4) {
        value.ttl_remaining = Some(input.u64() as i64);
    }
    if has(5) {
        value.size = Some(input.u64());
    }
    if has(6) {
        value.hit_before = Some(input.byte() % 2 == 1);
    }
    if has(7) {
        value.last_accessed = Some(input.u64());
    }
    if has(8) {
        value.opaque_token = Some(input.bytes());
    }
    if has(9) {
        value.is_stale = Some(input.byte() % 2 == 1);
    }
    if has(10) {
        value.is_recache_winner = Some(input.byte() % 2 == 1);
    }

    let bytes = |b: &Option<Vec<u8>>| b.clone().map(|b| RawValue::Bytes(Bytes::from(b)));
    let number =
        |n: u64| i64::try_from(n).map_or_else(|_| RawValue::Text(n.to_string()), RawValue::Int);
    let expected: Vec<(RawValue, RawValue)> = [
        ("value", bytes(&value.data)),
        ("key", bytes(&value.key)),
        ("cas", value.cas.map(number)),
        ("flags", value.flags.map(|f| RawValue::Int(i64::from(f)))),
        ("ttl", value.ttl_remaining.map(RawValue::Int)),
        ("size", value.size.map(number)),
        ("hit_before", value.hit_before.map(RawValue::Bool)),
        ("last_accessed", value.last_accessed.map(number)),
        ("opaque", bytes(&value.opaque_token)),
        ("stale", value.is_stale.map(RawValue::Bool)),
        ("win", value.is_recache_winner.map(RawValue::Bool)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (RawValue::Text(k.to_owned()), v)))
    .collect();

    let reply = cache_memcached::__fuzz::meta_reply(value);
    assert_eq!(reply, RawValue::Map(expected));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut input = Input(rest);
    if selector % 2 == 0 {
        redis(&mut input);
    } else {
        memcached(&mut input);
    }
});
