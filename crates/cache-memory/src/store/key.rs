//! Key storage with a small inline buffer.

/// Keys up to this many bytes are stored inside the slot, with no allocation.
pub(super) const INLINE_KEY: usize = 22;

/// The key of a slot. Short keys (the common `namespace:id` shape) live inline,
/// so a lookup compares them without touching another cache line.
pub(super) enum Key {
    /// The slot is free.
    Vacant,
    /// A key of at most [`INLINE_KEY`] bytes.
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    /// A longer key.
    Heap(Box<[u8]>),
}

impl Key {
    pub(super) fn new(key: &[u8]) -> Key {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut buf = [0; INLINE_KEY];
                buf[..key.len()].copy_from_slice(key);
                Key::Inline { len, buf }
            }
            _ => Key::Heap(key.into()),
        }
    }

    #[inline]
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Vacant => &[],
            Key::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or(&[]),
            Key::Heap(b) => b,
        }
    }

    #[inline]
    pub(super) fn is_vacant(&self) -> bool {
        matches!(self, Key::Vacant)
    }

    #[inline]
    pub(super) fn matches(&self, key: &[u8]) -> bool {
        !self.is_vacant() && self.as_bytes() == key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        for len in [0, 1, INLINE_KEY - 1, INLINE_KEY, INLINE_KEY + 1, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let key = Key::new(&bytes);
            assert_eq!(key.as_bytes(), &bytes[..]);
            assert!(key.matches(&bytes));
            assert_eq!(matches!(key, Key::Inline { .. }), len <= INLINE_KEY);
        }
        assert!(!Key::Vacant.matches(b""));
        assert!(Key::new(b"").matches(b""));
    }
}
