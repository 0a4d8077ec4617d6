//! Ketama consistent hashing: which server holds a key.
//!
//! The continuum follows libketama: server `i` with weight `w_i` out of a total `W` gets
//! `floor(w_i / W * 40 * n)` MD5 digests of `"{address}-{k}"`, each cut into four
//! little-endian `u32` points. A key's point is the first four bytes (little-endian) of its MD5
//! digest; its server is the owner of the first continuum point at or after it, wrapping to
//! the first point. Adding or removing a server moves only the keys whose nearest point
//! changed: about `1/n` of them.

use md5::{Digest, Md5};

/// Digests per server per unit of weight share (libketama: 40 digests = 160 points).
const DIGESTS_PER_SERVER: f64 = 40.0;

/// The continuum of a set of weighted servers.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    /// `(point, server index)`, sorted by point.
    points: Vec<(u32, u32)>,
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(bytes);
    h.finalize().into()
}

impl Ring {
    /// A continuum over `servers` as `(address, weight)`; weights must be at least 1.
    pub(crate) fn new(servers: &[(&str, u32)]) -> Ring {
        let total: u64 = servers.iter().map(|(_, w)| u64::from(*w)).sum();
        let n = servers.len() as f64;
        let mut points = Vec::new();
        for (index, (address, weight)) in servers.iter().enumerate() {
            let share = f64::from(*weight) / total.max(1) as f64;
            let digests = ((share * DIGESTS_PER_SERVER * n).floor() as usize).max(1);
            for k in 0..digests {
                let d = md5(format!("{address}-{k}").as_bytes());
                for part in d.chunks_exact(4) {
                    let point = u32::from_le_bytes([part[0], part[1], part[2], part[3]]);
                    points.push((point, index as u32));
                }
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The index of the server holding `key`.
    #[inline]
    pub(crate) fn server_for(&self, key: &[u8]) -> usize {
        let d = md5(key);
        let h = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        let i = self.points.partition_point(|(p, _)| *p < h);
        let (_, server) = self
            .points
            .get(i)
            .or_else(|| self.points.first())
            .copied()
            .unwrap_or((0, 0));
        server as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        (0..30_000).map(|i| format!("ns:key-{i}")).collect()
    }

    #[test]
    fn spreads_keys_evenly_over_equal_servers() {
        let ring = Ring::new(&[
            ("10.0.0.1:11211", 1),
            ("10.0.0.2:11211", 1),
            ("10.0.0.3:11211", 1),
        ]);
        let mut count = [0usize; 3];
        for k in keys() {
            count[ring.server_for(k.as_bytes())] += 1;
        }
        for c in count {
            assert!((7_000..13_000).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn weights_shift_the_share() {
        let ring = Ring::new(&[("a:1", 3), ("b:1", 1)]);
        let heavy = keys()
            .iter()
            .filter(|k| ring.server_for(k.as_bytes()) == 0)
            .count();
        let share = heavy as f64 / 30_000.0;
        assert!((0.65..0.85).contains(&share), "{share}");
    }

    #[test]
    fn adding_a_server_moves_only_its_share() {
        let three = Ring::new(&[("a:1", 1), ("b:1", 1), ("c:1", 1)]);
        let four = Ring::new(&[("a:1", 1), ("b:1", 1), ("c:1", 1), ("d:1", 1)]);
        let mut moved = 0;
        for k in keys() {
            let before = three.server_for(k.as_bytes());
            let after = four.server_for(k.as_bytes());
            if before != after {
                assert_eq!(after, 3, "a key moved between old servers");
                moved += 1;
            }
        }
        let share = moved as f64 / 30_000.0;
        assert!((0.15..0.35).contains(&share), "{share}");
    }

    #[test]
    fn losing_a_server_moves_only_its_keys() {
        let three = Ring::new(&[("a:1", 1), ("b:1", 1), ("c:1", 1)]);
        let two = Ring::new(&[("a:1", 1), ("c:1", 1)]);
        for k in keys() {
            let before = three.server_for(k.as_bytes());
            let after = two.server_for(k.as_bytes());
            match before {
                0 => assert_eq!(after, 0),
                2 => assert_eq!(after, 1),
                _ => {}
            }
        }
    }

    #[test]
    fn is_deterministic() {
        let a = Ring::new(&[("a:1", 1), ("b:1", 2)]);
        let b = Ring::new(&[("a:1", 1), ("b:1", 2)]);
        for k in keys().iter().take(1000) {
            assert_eq!(a.server_for(k.as_bytes()), b.server_for(k.as_bytes()));
        }
    }
}
