//! The value envelope: what read-through entries carry besides their value.
//!
//! An entry written by the [`get_or_set`](crate::Cache::get_or_set) family of a cache with
//! [read-through options](crate::ReadThrough) that need it (fail-safe, eager refresh, soft
//! timeouts, negative entries, leases across processes) is stored in an envelope: a small
//! header with a *logical* expiry — when the value stops being fresh — separate from the
//! *physical* one the backend enforces, so the entry outlives its TTL by the fail-safe
//! window and a stale value is still there to serve when the loader fails.
//!
//! The envelope is off by default, so values stay byte-exact for other readers (aiocache
//! interop). A cache with it on reads values written without it as they are: plain bytes
//! with no logical expiry. Plain `set`, `add`, `increment` and the locks never write one.
//!
//! # Format (version 1)
//!
//! All integers big-endian; times are milliseconds since the Unix epoch of the writer's
//! clock (0: none).
//!
//! | bytes | field |
//! |---|---|
//! | 0..3 | magic `C1 53 43` (`0xC1` never starts JSON, UTF-8 text, MessagePack or pickle) |
//! | 3 | format version (`1`) |
//! | 4 | kind: `0` value, `1` negative entry, `2` lease |
//! | 5..13 | created at |
//! | 13..21 | fresh until (value, negative) or lease held until (lease) |
//! | 21..29 | stale until: the end of the fail-safe window (value, negative; 0 for a lease) |
//! | 29.. | value: the serialized value; negative: nothing; lease: a 16-byte owner token, then the stored bytes the lease replaced (empty: none) |
//!
//! Bytes that start with the magic but cannot be read — a version this build does not know,
//! a short header, an unknown kind — are an [`ErrorKind::Serialization`] error, never a
//! panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, ErrorKind, Result};

/// The first bytes of every envelope.
pub const MAGIC: [u8; 3] = [0xC1, b'S', b'C'];

/// The format version this build writes.
pub const VERSION: u8 = 1;

const HEADER: usize = 29;
const TOKEN: usize = 16;

/// When an entry was written and how long it stays fresh, then servable as stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// When the value was written (ms since the epoch).
    pub created_ms: u64,
    /// Until when the value is fresh (ms since the epoch; 0: forever).
    pub fresh_until_ms: u64,
    /// Until when a value past its freshness may still be served by fail-safe (ms since
    /// the epoch; 0: forever). Never before `fresh_until_ms`.
    pub stale_until_ms: u64,
}

impl Times {
    /// Times for an entry written `now_ms`, fresh for `fresh` (`None`: forever), then
    /// servable as stale for `stale` more.
    pub fn new(now_ms: u64, fresh: Option<Duration>, stale: Duration) -> Self {
        match fresh {
            None => Times {
                created_ms: now_ms,
                fresh_until_ms: 0,
                stale_until_ms: 0,
            },
            Some(fresh) => {
                let fresh_until = now_ms.saturating_add(millis(fresh)).max(now_ms + 1);
                Times {
                    created_ms: now_ms,
                    fresh_until_ms: fresh_until,
                    stale_until_ms: fresh_until.saturating_add(millis(stale)),
                }
            }
        }
    }

    /// Whether the value is fresh at `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.fresh_until_ms == 0 || now_ms < self.fresh_until_ms
    }

    /// Whether the value may still be served (fresh, or stale within its window) at `now_ms`.
    pub fn is_servable(&self, now_ms: u64) -> bool {
        self.stale_until_ms == 0 || now_ms < self.stale_until_ms
    }

    /// The share of its fresh life the value has lived at `now_ms` (0 when it never
    /// expires).
    pub fn age_fraction(&self, now_ms: u64) -> f64 {
        if self.fresh_until_ms == 0 || self.fresh_until_ms <= self.created_ms {
            return 0.0;
        }
        let life = (self.fresh_until_ms - self.created_ms) as f64;
        now_ms.saturating_sub(self.created_ms) as f64 / life
    }

    /// How long the backend must keep the entry: until the end of its stale window
    /// (`None`: forever). At least 1 ms.
    pub fn physical_ttl(&self, now_ms: u64) -> Option<Duration> {
        if self.stale_until_ms == 0 {
            return None;
        }
        Some(Duration::from_millis(
            self.stale_until_ms.saturating_sub(now_ms).max(1),
        ))
    }
}

/// What stored bytes hold, read with the envelope on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Bytes without an envelope: a value written without it, fresh for as long as the
    /// backend keeps it.
    Plain(Bytes),
    /// A value with its times.
    Value {
        /// Its times.
        times: Times,
        /// The serialized value.
        payload: Bytes,
    },
    /// A negative entry: the loader found nothing, and that is cached.
    Negative {
        /// Its times.
        times: Times,
    },
    /// A lease: one caller somewhere is loading this key.
    Lease {
        /// Until when the lease holds (ms since the epoch).
        until_ms: u64,
        /// The owner's token.
        token: [u8; TOKEN],
        /// The stored bytes the lease replaced (empty: the key was absent).
        previous: Bytes,
    },
}

impl Stored {
    /// Reads stored bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when they start with the magic but are not an envelope
    /// this build reads.
    pub fn decode(bytes: Bytes) -> Result<Stored> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Ok(Stored::Plain(bytes));
        }
        if bytes.len() < HEADER {
            return Err(bad(format!(
                "the stored value is a cut envelope ({} bytes, the header alone is {HEADER})",
                bytes.len()
            )));
        }
        if bytes[3] != VERSION {
            return Err(bad(format!(
                "the stored value is an envelope of version {}; this build reads version \
                 {VERSION}",
                bytes[3]
            )));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let times = Times {
            created_ms: word(5),
            fresh_until_ms: word(13),
            stale_until_ms: word(21),
        };
        match bytes[4] {
            0 => Ok(Stored::Value {
                times,
                payload: bytes.slice(HEADER..),
            }),
            1 if bytes.len() == HEADER => Ok(Stored::Negative { times }),
            1 => Err(bad("the stored value is a negative entry with a payload")),
            2 if bytes.len() >= HEADER + TOKEN => {
                let mut token = [0u8; TOKEN];
                token.copy_from_slice(&bytes[HEADER..HEADER + TOKEN]);
                Ok(Stored::Lease {
                    until_ms: times.fresh_until_ms,
                    token,
                    previous: bytes.slice(HEADER + TOKEN..),
                })
            }
            2 => Err(bad("the stored value is a lease without its token")),
            kind => Err(bad(format!(
                "the stored value is an envelope of unknown kind {kind}"
            ))),
        }
    }
}

fn bad(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Serialization, message)
}

fn header(buf: &mut BytesMut, kind: u8, a: u64, b: u64, c: u64) {
    buf.put_slice(&MAGIC);
    buf.put_u8(VERSION);
    buf.put_u8(kind);
    buf.put_u64(a);
    buf.put_u64(b);
    buf.put_u64(c);
}

/// A value in its envelope.
pub fn encode_value(times: Times, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER + payload.len());
    header(
        &mut buf,
        0,
        times.created_ms,
        times.fresh_until_ms,
        times.stale_until_ms,
    );
    buf.put_slice(payload);
    buf.freeze()
}

/// A negative entry.
pub fn encode_negative(times: Times) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER);
    header(
        &mut buf,
        1,
        times.created_ms,
        times.fresh_until_ms,
        times.stale_until_ms,
    );
    buf.freeze()
}

/// A lease held until `until_ms` by `token`, over the `previous` stored bytes (empty: none).
pub fn encode_lease(now_ms: u64, until_ms: u64, token: [u8; TOKEN], previous: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER + TOKEN + previous.len());
    header(&mut buf, 2, now_ms, until_ms, 0);
    buf.put_slice(&token);
    buf.put_slice(previous);
    buf.freeze()
}

/// Now, in ms since the Unix epoch (the clock every process of a fleet compares).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_written() {
        let times = Times::new(1_000, Some(Duration::from_secs(2)), Duration::from_secs(10));
        assert_eq!(times.fresh_until_ms, 3_000);
        assert_eq!(times.stale_until_ms, 13_000);
        let v = encode_value(times, b"\"x\"");
        assert_eq!(
            Stored::decode(v).unwrap(),
            Stored::Value {
                times,
                payload: Bytes::from_static(b"\"x\"")
            }
        );
        assert_eq!(
            Stored::decode(encode_negative(times)).unwrap(),
            Stored::Negative { times }
        );
        let lease = encode_lease(5, 99, [7; 16], b"prev");
        assert_eq!(
            Stored::decode(lease).unwrap(),
            Stored::Lease {
                until_ms: 99,
                token: [7; 16],
                previous: Bytes::from_static(b"prev")
            }
        );
    }

    #[test]
    fn bytes_without_the_magic_are_plain() {
        for plain in [&b""[..], b"\"json\"", b"\xC1S", b"\xC1SX....", b"42"] {
            assert_eq!(
                Stored::decode(Bytes::copy_from_slice(plain)).unwrap(),
                Stored::Plain(Bytes::copy_from_slice(plain))
            );
        }
    }

    #[test]
    fn unreadable_envelopes_are_serialization_errors_never_panics() {
        let good = encode_value(Times::new(1, None, Duration::ZERO), b"v");
        let mut future = good.to_vec();
        future[3] = 9;
        let mut kind = good.to_vec();
        kind[4] = 7;
        let mut neg = encode_negative(Times::new(1, None, Duration::ZERO)).to_vec();
        neg.push(0);
        let cases: Vec<Vec<u8>> = vec![
            good[..10].to_vec(),
            future,
            kind,
            neg,
            encode_lease(1, 2, [0; 16], b"")[..HEADER + 3].to_vec(),
        ];
        for case in cases {
            let err = Stored::decode(Bytes::from(case)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
        }
        // every prefix of every kind, and every single-byte change of the header
        for full in [
            good.clone(),
            encode_negative(Times::new(1, Some(Duration::from_secs(1)), Duration::ZERO)),
            encode_lease(1, 2, [1; 16], b"abc"),
        ] {
            for n in 0..full.len() {
                let _ = Stored::decode(full.slice(..n));
            }
            for i in 0..HEADER {
                let mut b = full.to_vec();
                b[i] ^= 0xFF;
                let _ = Stored::decode(Bytes::from(b));
            }
        }
    }

    #[test]
    fn times_say_fresh_stale_and_gone() {
        let t = Times::new(
            1_000,
            Some(Duration::from_millis(100)),
            Duration::from_millis(50),
        );
        assert!(t.is_fresh(1_099) && !t.is_fresh(1_100));
        assert!(t.is_servable(1_149) && !t.is_servable(1_150));
        assert_eq!(t.physical_ttl(1_000), Some(Duration::from_millis(150)));
        assert_eq!(t.physical_ttl(2_000), Some(Duration::from_millis(1)));
        assert!((t.age_fraction(1_050) - 0.5).abs() < 1e-9);
        let forever = Times::new(1_000, None, Duration::from_secs(1));
        assert!(forever.is_fresh(u64::MAX) && forever.is_servable(u64::MAX));
        assert_eq!(forever.physical_ttl(5), None);
        assert_eq!(forever.age_fraction(9_999), 0.0);
    }
}
