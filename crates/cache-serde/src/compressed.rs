//! [`Compressed`]: any serializer, with its larger encodings compressed.

use std::borrow::Cow;

use cache_core::{Error, Result, Serializer};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first bytes of every compressed frame. `0xFF` never starts UTF-8 text (so never JSON or
/// `Utf8` output), never starts a CBOR item, and in MessagePack is the one-byte integer -1, a
/// complete value that nothing may follow: no encoding of `Json`, `PythonJson`, `Utf8`,
/// `MsgPack` or `Cbor` begins with these three bytes, and no frame is decimal text.
const MAGIC: [u8; 3] = [0xFF, b'c', b'z'];

/// The frame layout this version writes and reads.
const VERSION: u8 = 1;

/// The header before the varint length: magic, version, codec.
const HEADER_LEN: usize = MAGIC.len() + 2;

/// The longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Codec identifiers in the frame.
const CODEC_STORED: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const CODEC_LZ4: u8 = 2;

/// An LZ4 block expands at most about 255 times (a match length grows by 255 per extra byte):
/// a frame that claims more for its payload is refused before anything is allocated.
#[cfg(feature = "lz4")]
const LZ4_MAX_RATIO: usize = 255;

/// The compression algorithm of a [`Compressed`] serializer.
///
/// The frame records the codec, so a reader decodes values of every codec compiled in,
/// whichever one its own serializer writes: switching from LZ4 to Zstandard keeps the values
/// written before readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// [Zstandard](https://facebook.github.io/zstd/) at the given level (1 to 22; 3 is
    /// zstd's default, negative levels trade ratio for speed). Feature `zstd`.
    #[cfg(feature = "zstd")]
    Zstd {
        /// The compression level.
        level: i32,
    },
    /// [LZ4](https://lz4.org) block compression: faster than Zstandard, with a lower ratio.
    /// Feature `lz4`.
    #[cfg(feature = "lz4")]
    Lz4,
}

impl Codec {
    /// Zstandard at level 3, zstd's own default.
    #[cfg(feature = "zstd")]
    pub const ZSTD: Codec = Codec::Zstd { level: 3 };

    /// The codec's name, also [`Compressed::name`]: `"zstd"` or `"lz4"`.
    pub const fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "zstd")]
            Codec::Zstd { .. } => "zstd",
            #[cfg(feature = "lz4")]
            Codec::Lz4 => "lz4",
        }
    }

    const fn id(self) -> u8 {
        match self {
            #[cfg(feature = "zstd")]
            Codec::Zstd { .. } => CODEC_ZSTD,
            #[cfg(feature = "lz4")]
            Codec::Lz4 => CODEC_LZ4,
        }
    }
}

/// A serializer whose encodings above a size threshold are compressed: `Compressed<Json>`,
/// `Compressed<MsgPack>`, any `S: Serializer`.
///
/// `encode` runs the inner serializer. An encoding of at most
/// [`threshold`](Compressed::threshold) bytes (1 KiB by default), or one that compression does
/// not make smaller, is stored exactly as the inner serializer wrote it, so small values,
/// counters and values written without the wrapper read the same with or without it. A larger
/// encoding is stored as a compressed frame: a three-byte marker (`FF 63 7A`), a format
/// version, the codec, the decompressed length and the compressed bytes.
///
/// `decode` reads a frame when the bytes start with the marker and hands anything else to the
/// inner serializer unchanged. So a cache can turn compression on with values already stored
/// (they read as before), and turn it off again by going back to the inner serializer only if
/// no compressed value is left (or by keeping the wrapper with a threshold of `usize::MAX`,
/// which reads frames and writes none).
///
/// # Bounds
///
/// Decompression never allocates more than
/// [`max_decompressed_size`](Compressed::max_decompressed_size) (16 MiB by default): a frame
/// that claims a larger value is a [`Serialization`](cache_core::ErrorKind::Serialization)
/// error before anything is allocated, and so is a payload that inflates past the length its
/// frame claims. `encode` refuses values whose encoding is larger than that limit, so
/// everything this serializer writes, it can read. Corrupt, truncated or foreign bytes are
/// `Serialization` errors, never panics.
///
/// # The marker and other serializers
///
/// `Json`, `PythonJson`, `Utf8`, `MsgPack` and `Cbor` never write bytes that begin with the
/// marker, and a frame is never decimal text, so a frame cannot be mistaken for a counter
/// (`increment` refuses it with `InvalidArgument`, `get_counter` with `Serialization`).
/// `RawBytes` and custom serializers can write anything: `encode` wraps an inner encoding that
/// happens to begin with the marker in an uncompressed frame, so values written through
/// `Compressed` always read back; a value written by another program or without the wrapper
/// that begins with `FF 63 7A` is read as a frame (and most likely refused).
///
/// ```
/// # #[cfg(feature = "zstd")] {
/// use cache_core::{Json, Serializer};
/// use cache_serde::Compressed;
///
/// let s = Compressed::zstd(Json).threshold(256);
///
/// // small values are stored exactly as Json writes them
/// assert_eq!(s.encode(&"hi").unwrap(), b"\"hi\"");
///
/// // large ones are compressed behind the marker
/// let text = "cache ".repeat(1_000);
/// let bytes = s.encode(&text).unwrap();
/// assert!(bytes.starts_with(&[0xFF, b'c', b'z']));
/// assert!(bytes.len() < 100);
/// assert_eq!(s.decode::<String>(&bytes).unwrap(), text);
///
/// // values written by Json alone still read
/// assert_eq!(s.decode::<Vec<u32>>(b"[1,2,3]").unwrap(), [1, 2, 3]);
///
/// // a value that would inflate past the limit is an error, not an allocation
/// let small_limit = Compressed::zstd(Json).max_decompressed_size(1_000);
/// let err = small_limit.decode::<String>(&bytes).unwrap_err();
/// assert_eq!(err.kind(), cache_core::ErrorKind::Serialization);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed<S> {
    inner: S,
    codec: Codec,
    threshold: usize,
    max_decompressed_size: usize,
}

impl<S: Serializer> Compressed<S> {
    /// Encodings longer than this many bytes are compressed, unless told otherwise.
    pub const DEFAULT_THRESHOLD: usize = 1024;

    /// The largest value decompression produces, unless told otherwise: 16 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 16 << 20;

    /// `inner` with `codec`, the default threshold and size limit.
    pub const fn new(inner: S, codec: Codec) -> Self {
        Compressed {
            inner,
            codec,
            threshold: Self::DEFAULT_THRESHOLD,
            max_decompressed_size: Self::DEFAULT_MAX_DECOMPRESSED_SIZE,
        }
    }

    /// `inner` with Zstandard at level 3.
    #[cfg(feature = "zstd")]
    pub const fn zstd(inner: S) -> Self {
        Compressed::new(inner, Codec::ZSTD)
    }

    /// `inner` with LZ4.
    #[cfg(feature = "lz4")]
    pub const fn lz4(inner: S) -> Self {
        Compressed::new(inner, Codec::Lz4)
    }

    /// Compresses encodings longer than `bytes` (default 1 KiB). Below a few hundred bytes
    /// compression rarely pays for its time; `0` tries every value, `usize::MAX` none (frames
    /// are still read).
    #[must_use]
    pub const fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The largest value `decode` decompresses and `encode` accepts (default 16 MiB). A frame
    /// claiming more is an error before anything is allocated; this is the most memory one
    /// stored value can make a reader allocate.
    #[must_use]
    pub const fn max_decompressed_size(mut self, bytes: usize) -> Self {
        self.max_decompressed_size = bytes;
        self
    }

    /// The serializer whose encodings are compressed.
    pub const fn inner(&self) -> &S {
        &self.inner
    }

    /// The codec `encode` uses.
    pub const fn codec(&self) -> Codec {
        self.codec
    }

    fn error(&self, message: impl Into<Cow<'static, str>>) -> Error {
        Error::serialization(message).with_context("serializer", self.codec.name())
    }

    /// The frame for `encoded`, or `encoded` itself when it is stored as it is.
    fn frame(&self, encoded: Vec<u8>) -> Result<Vec<u8>> {
        if encoded.len() > self.max_decompressed_size {
            return Err(self.error(format!(
                "the encoded value is {} bytes, more than the {} bytes this serializer \
                 decompresses (max_decompressed_size)",
                encoded.len(),
                self.max_decompressed_size
            )));
        }
        if encoded.len() > self.threshold {
            let compressed = compress(self.codec, &encoded).map_err(|e| {
                self.error("compression failed")
                    .with_source(std::io::Error::other(e))
            })?;
            let framed_len = HEADER_LEN + MAX_VARINT_LEN + compressed.len();
            if framed_len < encoded.len() {
                return Ok(write_frame(self.codec.id(), encoded.len(), &compressed));
            }
        }
        if encoded.starts_with(&MAGIC) {
            // Stored as it is, it would read as a frame.
            return Ok(write_frame(CODEC_STORED, encoded.len(), &encoded));
        }
        Ok(encoded)
    }

    /// The inner serializer's bytes: `bytes` itself, or the content of its frame.
    fn unframe<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let Some(rest) = bytes.strip_prefix(&MAGIC) else {
            return Ok(Cow::Borrowed(bytes));
        };
        let [version, codec, rest @ ..] = rest else {
            return Err(self.error("stored compressed frame is truncated"));
        };
        if *version != VERSION {
            return Err(self.error(format!(
                "stored compressed frame has format version {version}; this version of \
                 cache-serde reads version {VERSION}"
            )));
        }
        let (len, payload) =
            read_varint(rest).ok_or_else(|| self.error("stored compressed frame is truncated"))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.max_decompressed_size)
            .ok_or_else(|| {
                self.error(format!(
                    "stored compressed frame claims {len} bytes, more than the {} bytes this \
                     serializer decompresses (max_decompressed_size)",
                    self.max_decompressed_size
                ))
            })?;
        let content = match *codec {
            CODEC_STORED if payload.len() == len => return Ok(Cow::Borrowed(payload)),
            CODEC_STORED => {
                return Err(self.error("stored frame length does not match its content"));
            }
            CODEC_ZSTD => decompress_zstd(payload, len),
            CODEC_LZ4 => decompress_lz4(payload, len),
            other => Err(format!("unknown codec {other}")),
        }
        .map_err(|e| self.error(format!("stored compressed frame does not decompress: {e}")))?;
        if content.len() != len {
            return Err(self.error(format!(
                "stored compressed frame decompresses to {} bytes, not the {len} it claims",
                content.len()
            )));
        }
        Ok(Cow::Owned(content))
    }
}

impl<S: Serializer> Serializer for Compressed<S> {
    fn name(&self) -> &'static str {
        self.codec.name()
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        self.frame(self.inner.encode(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let content = self.unframe(bytes)?;
        self.inner.decode(&content)
    }
}

fn write_frame(codec: u8, len: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + MAX_VARINT_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(codec);
    let mut n = len as u64;
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

/// An unsigned LEB128 number and the bytes after it; `None` when truncated or over 64 bits.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && bits > 1 {
            return None;
        }
        n |= bits << shift;
        if byte & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

fn compress(codec: Codec, data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match codec {
        #[cfg(feature = "zstd")]
        Codec::Zstd { level } => zstd_impl::compress(data, level),
        #[cfg(feature = "lz4")]
        Codec::Lz4 => Ok(lz4_flex::block::compress(data)),
    }
}

#[cfg(feature = "zstd")]
fn decompress_zstd(payload: &[u8], len: usize) -> std::result::Result<Vec<u8>, String> {
    zstd_impl::decompress(payload, len)
}

#[cfg(not(feature = "zstd"))]
fn decompress_zstd(_: &[u8], _: usize) -> std::result::Result<Vec<u8>, String> {
    Err("it was compressed with zstd, and the `zstd` feature of cache-serde is off".into())
}

#[cfg(feature = "lz4")]
fn decompress_lz4(payload: &[u8], len: usize) -> std::result::Result<Vec<u8>, String> {
    if len
        > payload
            .len()
            .saturating_mul(LZ4_MAX_RATIO)
            .saturating_add(16)
    {
        return Err(format!(
            "{} bytes of LZ4 cannot hold {len} bytes",
            payload.len()
        ));
    }
    let mut out = vec![0; len];
    let written = lz4_flex::block::decompress_into(payload, &mut out).map_err(|e| e.to_string())?;
    out.truncate(written);
    Ok(out)
}

#[cfg(not(feature = "lz4"))]
fn decompress_lz4(_: &[u8], _: usize) -> std::result::Result<Vec<u8>, String> {
    Err("it was compressed with lz4, and the `lz4` feature of cache-serde is off".into())
}

/// Zstandard through one compression and one decompression context per thread: creating a
/// context costs more than compressing a small value.
#[cfg(feature = "zstd")]
mod zstd_impl {
    use std::cell::RefCell;

    use zstd::bulk::{Compressor, Decompressor};

    thread_local! {
        static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
        static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    }

    pub(super) fn compress(data: &[u8], level: i32) -> Result<Vec<u8>, String> {
        COMPRESSOR.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|e| e.to_string())?;
            if slot.is_none() {
                *slot = Some(Compressor::new(level).map_err(|e| e.to_string())?);
            }
            let compressor = slot.as_mut().ok_or("no zstd compressor")?;
            compressor
                .set_compression_level(level)
                .map_err(|e| e.to_string())?;
            compressor.compress(data).map_err(|e| e.to_string())
        })
    }

    /// At most `capacity` bytes: zstd refuses a frame that records a larger size before
    /// allocating, and stops when the output would grow past it.
    pub(super) fn decompress(payload: &[u8], capacity: usize) -> Result<Vec<u8>, String> {
        DECOMPRESSOR.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|e| e.to_string())?;
            if slot.is_none() {
                *slot = Some(Decompressor::new().map_err(|e| e.to_string())?);
            }
            let decompressor = slot.as_mut().ok_or("no zstd decompressor")?;
            decompressor
                .decompress(payload, capacity)
                .map_err(|e| e.to_string())
        })
    }
}
