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
//! # Format (version 2): an entry with tags
//!
//! An entry written with [tags](crate::Tags) carries them: version 2 is version 1 with a
//! tags block between the header and the kind's body. Only entries that have tags are
//! written in version 2; every other entry is still written in version 1, byte for byte as
//! before, and both versions are read.
//!
//! | bytes | field |
//! |---|---|
//! | 0..29 | the header of version 1, with format version `2`; `created at` is the entry's write time, which tag invalidations are compared with |
//! | 29 | tag count *n* (1 to 255) |
//! | 30.. | *n* tags, each a length byte (1 to 255) and that many bytes of UTF-8 |
//! | then | the kind's body, as in version 1 |
//!
//! A value written by a plain `set` with tags (no read-through times) is a version 2 value
//! with `fresh until` and `stale until` 0: fresh for as long as the backend keeps it.
//!
//! Bytes that start with the magic but cannot be read — a version this build does not know,
//! a short header, a cut or malformed tags block, an unknown kind — are an
//! [`ErrorKind::Serialization`] error, never a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, ErrorKind, Result};

/// The first bytes of every envelope.
pub const MAGIC: [u8; 3] = [0xC1, b'S', b'C'];

/// The format version this build writes for entries without tags.
pub const VERSION: u8 = 1;

/// The format version of entries with tags: version 1 with a tags block after the header.
pub const VERSION_TAGGED: u8 = 2;

/// The most tags one entry carries (the tags block counts them in one byte).
pub const MAX_TAGS: usize = 255;

/// The longest tag in bytes (the tags block gives each tag's length in one byte).
pub const MAX_TAG_LEN: usize = 255;

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
        check_header(&bytes)?;
        let body = if bytes[3] == VERSION_TAGGED {
            HEADER + tags_block_len(&bytes)?
        } else {
            HEADER
        };
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
                payload: bytes.slice(body..),
            }),
            1 if bytes.len() == body => Ok(Stored::Negative { times }),
            1 => Err(bad("the stored value is a negative entry with a payload")),
            2 if bytes.len() >= body + TOKEN => {
                let mut token = [0u8; TOKEN];
                token.copy_from_slice(&bytes[body..body + TOKEN]);
                Ok(Stored::Lease {
                    until_ms: times.fresh_until_ms,
                    token,
                    previous: bytes.slice(body + TOKEN..),
                })
            }
            2 => Err(bad("the stored value is a lease without its token")),
            kind => Err(bad(format!(
                "the stored value is an envelope of unknown kind {kind}"
            ))),
        }
    }
}

/// Refuses an envelope shorter than its header or of a version this build does not read.
fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < HEADER {
        return Err(bad(format!(
            "the stored value is a cut envelope ({} bytes, the header alone is {HEADER})",
            bytes.len()
        )));
    }
    if bytes[3] != VERSION && bytes[3] != VERSION_TAGGED {
        return Err(bad(format!(
            "the stored value is an envelope of version {}; this build reads versions \
             {VERSION} and {VERSION_TAGGED}",
            bytes[3]
        )));
    }
    Ok(())
}

/// The length of the tags block of a version 2 envelope (`bytes` has a whole header),
/// checked: a count of at least one, every tag whole, non-empty and UTF-8.
fn tags_block_len(bytes: &[u8]) -> Result<usize> {
    let block = &bytes[HEADER..];
    let Some((&count, mut rest)) = block.split_first() else {
        return Err(bad(
            "the stored value is an envelope with tags cut before its tag count",
        ));
    };
    if count == 0 {
        return Err(bad(
            "the stored value is an envelope with tags but a tag count of 0",
        ));
    }
    for _ in 0..count {
        let Some((&len, after)) = rest.split_first() else {
            return Err(bad("the stored value is an envelope whose tags are cut"));
        };
        let len = usize::from(len);
        if len == 0 || after.len() < len {
            return Err(bad(
                "the stored value is an envelope whose tags are cut or empty",
            ));
        }
        if std::str::from_utf8(&after[..len]).is_err() {
            return Err(bad(
                "the stored value is an envelope with a tag that is not UTF-8",
            ));
        }
        rest = &after[len..];
    }
    Ok(block.len() - rest.len())
}

/// The tags of a stored entry and the time it was written: what a tag invalidation is
/// compared with. Read by [`EntryTags::read`] without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTags<'a> {
    created_ms: u64,
    block: &'a [u8],
}

impl<'a> EntryTags<'a> {
    /// The tags of `bytes`, when they are an envelope of version 2 (with tags); `None` for
    /// anything else (plain bytes, version 1). Cheap for entries without tags: it looks at
    /// four bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when `bytes` are a version 2 envelope whose header or
    /// tags block is cut or malformed.
    pub fn read(bytes: &'a [u8]) -> Result<Option<EntryTags<'a>>> {
        if bytes.len() < 4 || bytes[..MAGIC.len()] != MAGIC || bytes[3] != VERSION_TAGGED {
            return Ok(None);
        }
        check_header(bytes)?;
        let len = tags_block_len(bytes)?;
        let mut created = [0u8; 8];
        created.copy_from_slice(&bytes[5..13]);
        Ok(Some(EntryTags {
            created_ms: u64::from_be_bytes(created),
            block: &bytes[HEADER + 1..HEADER + len],
        }))
    }

    /// When the entry was written (ms since the epoch, the writer's clock).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The tags, in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = self.block;
        std::iter::from_fn(move || {
            let (&len, after) = rest.split_first()?;
            let (tag, next) = after.split_at(usize::from(len));
            rest = next;
            // checked by `read`
            std::str::from_utf8(tag).ok()
        })
    }
}

/// `bytes` (plain bytes, or a version 1 value or negative entry) as an entry with `tags`,
/// written at `created_ms`: a version 2 envelope that keeps the times of a version 1 entry
/// (but for its write time, which becomes `created_ms`) and carries a plain value as
/// a value fresh for as long as the backend keeps it. Bytes that carry tags already and
/// leases are returned as they are, and so are all bytes when `tags` is empty.
///
/// # Errors
/// [`ErrorKind::InvalidArgument`] for more than [`MAX_TAGS`] tags, or an empty tag or one
/// longer than [`MAX_TAG_LEN`] bytes.
pub fn with_tags<S: AsRef<str>>(bytes: Bytes, tags: &[S], created_ms: u64) -> Result<Bytes> {
    if tags.is_empty() {
        return Ok(bytes);
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid_argument(format!(
            "an entry carries at most {MAX_TAGS} tags, not {}",
            tags.len()
        )));
    }
    let (kind, times, body) = match Stored::decode(bytes.clone()) {
        Ok(Stored::Value { times, payload }) if bytes[3] == VERSION => (0, times, payload),
        Ok(Stored::Negative { times }) if bytes[3] == VERSION => (1, times, Bytes::new()),
        Ok(Stored::Value { .. } | Stored::Negative { .. } | Stored::Lease { .. }) => {
            return Ok(bytes);
        }
        // plain bytes, or bytes that only look like an envelope: the value as it is
        Ok(Stored::Plain(_)) | Err(_) => (
            0,
            Times {
                created_ms,
                fresh_until_ms: 0,
                stale_until_ms: 0,
            },
            bytes,
        ),
    };
    let block: usize = tags.iter().map(|t| 1 + t.as_ref().len()).sum();
    let mut buf = BytesMut::with_capacity(HEADER + 1 + block + body.len());
    buf.put_slice(&MAGIC);
    buf.put_u8(VERSION_TAGGED);
    buf.put_u8(kind);
    buf.put_u64(created_ms);
    buf.put_u64(times.fresh_until_ms);
    buf.put_u64(times.stale_until_ms);
    buf.put_u8(tags.len() as u8);
    for tag in tags {
        let tag = tag.as_ref();
        if tag.is_empty() || tag.len() > MAX_TAG_LEN {
            return Err(Error::invalid_argument(format!(
                "a tag is 1 to {MAX_TAG_LEN} bytes, not {}",
                tag.len()
            )));
        }
        buf.put_u8(tag.len() as u8);
        buf.put_slice(tag.as_bytes());
    }
    buf.put_slice(&body);
    Ok(buf.freeze())
}

/// `bytes` (a value or negative entry of either version) with its times replaced by
/// `times`, everything else — its tags included — kept; `None` for anything else.
pub fn with_times(bytes: &Bytes, times: Times) -> Option<Bytes> {
    match Stored::decode(bytes.clone()) {
        Ok(Stored::Value { .. } | Stored::Negative { .. }) => {}
        _ => return None,
    }
    let mut out = BytesMut::from(&bytes[..]);
    out[5..13].copy_from_slice(&times.created_ms.to_be_bytes());
    out[13..21].copy_from_slice(&times.fresh_until_ms.to_be_bytes());
    out[21..29].copy_from_slice(&times.stale_until_ms.to_be_bytes());
    Some(out.freeze())
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
    fn tagged_entries_read_back_with_their_tags_and_times() {
        let times = Times::new(1_000, Some(Duration::from_secs(2)), Duration::from_secs(10));
        // a read-through value keeps its times but for its write time
        let v = with_tags(encode_value(times, b"\"x\""), &["user:42", "org:7"], 900).unwrap();
        assert_eq!(v[3], VERSION_TAGGED);
        let tags = EntryTags::read(&v).unwrap().unwrap();
        assert_eq!(tags.created_ms(), 900);
        assert_eq!(tags.iter().collect::<Vec<_>>(), ["user:42", "org:7"]);
        let expected = Times {
            created_ms: 900,
            ..times
        };
        assert_eq!(
            Stored::decode(v.clone()).unwrap(),
            Stored::Value {
                times: expected,
                payload: Bytes::from_static(b"\"x\"")
            }
        );
        // a plain value: fresh for as long as the backend keeps it
        let p = with_tags(Bytes::from_static(b"42"), &["t"], 5_000).unwrap();
        assert_eq!(
            Stored::decode(p.clone()).unwrap(),
            Stored::Value {
                times: Times {
                    created_ms: 5_000,
                    fresh_until_ms: 0,
                    stale_until_ms: 0
                },
                payload: Bytes::from_static(b"42")
            }
        );
        // a negative entry
        let n = with_tags(encode_negative(times), &["t"], 2_000).unwrap();
        assert_eq!(
            Stored::decode(n).unwrap(),
            Stored::Negative {
                times: Times {
                    created_ms: 2_000,
                    ..times
                }
            }
        );
        // already tagged, a lease, or no tags: unchanged
        assert_eq!(with_tags(p.clone(), &["other"], 1).unwrap(), p);
        let lease = encode_lease(1, 2, [3; 16], &p);
        assert_eq!(with_tags(lease.clone(), &["t"], 1).unwrap(), lease);
        assert_eq!(
            Stored::decode(lease).unwrap(),
            Stored::Lease {
                until_ms: 2,
                token: [3; 16],
                previous: p.clone()
            }
        );
        let none: [&str; 0] = [];
        assert_eq!(
            with_tags(Bytes::from_static(b"1"), &none, 1).unwrap(),
            Bytes::from_static(b"1")
        );
        // entries without tags have none to read
        assert_eq!(EntryTags::read(&encode_value(times, b"v")).unwrap(), None);
        assert_eq!(EntryTags::read(b"plain").unwrap(), None);
        // new times keep the tags
        let later = Times::new(7_000, None, Duration::ZERO);
        let retimed = with_times(&v, later).unwrap();
        assert_eq!(
            EntryTags::read(&retimed)
                .unwrap()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            ["user:42", "org:7"]
        );
        assert!(matches!(
            Stored::decode(retimed).unwrap(),
            Stored::Value { times, .. } if times == later
        ));
        assert_eq!(with_times(&Bytes::from_static(b"plain"), later), None);
    }

    #[test]
    fn bad_tags_are_refused_when_written() {
        let long = "x".repeat(MAX_TAG_LEN + 1);
        for tags in [vec![""], vec![long.as_str()]] {
            let err = with_tags(Bytes::from_static(b"1"), &tags, 1).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        }
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| i.to_string()).collect();
        let err = with_tags(Bytes::from_static(b"1"), &many, 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }

    #[test]
    fn unreadable_tagged_envelopes_are_serialization_errors_never_panics() {
        let good = with_tags(Bytes::from_static(b"value"), &["ab", "c"], 1).unwrap();
        let mut zero = good.to_vec();
        zero[HEADER] = 0;
        let mut cut = good.to_vec();
        cut[HEADER] = 9; // more tags than there are bytes
        let mut empty = good.to_vec();
        empty[HEADER + 1] = 0;
        let mut not_utf8 = good.to_vec();
        not_utf8[HEADER + 2] = 0xFF;
        let mut future = good.to_vec();
        future[3] = 3;
        for case in [
            good[..HEADER].to_vec(),
            good[..HEADER + 2].to_vec(),
            zero,
            cut,
            empty,
            not_utf8,
            future,
        ] {
            let err = Stored::decode(Bytes::from(case.clone())).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
            if case[3] == VERSION_TAGGED {
                let err = EntryTags::read(&case).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Serialization, "{err}");
            }
        }
        // every prefix, and every single-byte change of the header and the tags block
        let negative = with_tags(
            encode_negative(Times::new(1, Some(Duration::from_secs(1)), Duration::ZERO)),
            &["n"],
            1,
        )
        .unwrap();
        for full in [good, negative] {
            for n in 0..full.len() {
                let _ = Stored::decode(full.slice(..n));
                let _ = EntryTags::read(&full[..n]).map(|t| t.map(|t| t.iter().count()));
            }
            for i in 0..full.len() {
                for flip in [0xFF, 0x01, 0x80] {
                    let mut b = full.to_vec();
                    b[i] ^= flip;
                    let _ = Stored::decode(Bytes::from(b.clone()));
                    let _ = EntryTags::read(&b).map(|t| t.map(|t| t.iter().count()));
                    let _ = with_tags(Bytes::from(b.clone()), &["t"], 1);
                    let _ = with_times(&Bytes::from(b), Times::new(1, None, Duration::ZERO));
                }
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
